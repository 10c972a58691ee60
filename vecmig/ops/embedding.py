"""What ``backfill`` and ``reconcile`` share: filling a vector with an embedder from a text template.

Their parameters, their plan-time checks, the embedder checked against the live vector, the job
that writes (``vecmig.datapath.jobs.BackfillJob``), and their reverse: neither deletes anything on
the way back. What they wrote goes with the op that made room for it, which the same downgrade
undoes: the target's ``create_collection`` (its reverse drops the collection) or the ``add_vector``
of an in-place backfill (its reverse drops the vector).
"""

from __future__ import annotations

from dataclasses import dataclass

from vecmig.datapath.jobs import BackfillJob, Worker
from vecmig.datapath.text import parse_template
from vecmig.errors import PlanError
from vecmig.ops.base import Op, nothing_to_undo, require_collection
from vecmig.ops.checks import check_filter, check_vector_mapping, collection_behind, names, vector_mapping
from vecmig.schema import SchemaView


@dataclass
class EmbeddingOp(Op):
    """Embed each point's text (``text``, a jinja2 template over the payload) with ``embedder`` into
    ``vector``: in place (``target`` left out: a named vector of ``source``) or into ``target``. A
    sparse vector is filled by a sparse embedder (``provider = bm25``), a dense one by a dense one."""

    source: str = ""
    vector: str = ""
    embedder: str = ""
    text: str = ""
    target: str | None = None
    vectors: dict[str, str] | list[str] | None = None
    filter: dict | None = None
    batch_size: int = 256
    #: batches in work at once; default: the embedder's ``concurrency`` + 1 (the model stays busy while a batch is written)
    workers: int | None = None
    max_rate: float | None = None

    def what(self) -> str:
        into = f"{self.source}.{self.vector}" if self.target is None else f"{self.source} -> {self.target}.{self.vector}"
        return f"{self.op_name} {into}"

    def copied_vectors(self) -> dict[str, str]:
        return vector_mapping(self.vectors or {}, None)

    def validate(self, view: SchemaView, backend) -> None:
        what = self.what()
        src = require_collection(view, self.source, what)
        if self.target is None:
            dst = src
            if self.vectors:
                raise PlanError(f"{what}: `vectors` copies vectors into another collection: it needs `target`")
        else:
            dst = require_collection(view, self.target, what)
            if dst.name == src.name:
                raise PlanError(f"{what}: the target is the source collection {src.name!r}: leave `target` out to {self.op_name} in place")
        spec = dst.vectors.get(self.vector) or dst.sparse_vectors.get(self.vector)
        if spec is None:
            hint = "add it with add_vector before this op" if self.target is None else "declare it in the target's create_collection"
            raise PlanError(f"{what}: collection {dst.name!r} has no vector {self.vector!r} (it has {names(dst)}): {hint}")
        if getattr(spec, "multivector", False):
            raise PlanError(f"{what}: {self.vector!r} is a multivector: one embedding per point can't fill it")
        if spec.embedder and spec.embedder != self.embedder:
            raise PlanError(f"{what}: {dst.name}.{self.vector} was declared with embedder {spec.embedder!r}, not {self.embedder!r}: vectors of two models can't share one vector")
        copied = self.copied_vectors()
        check_vector_mapping(src, dst, copied, what, implicit=False)
        if self.vector in copied.values():
            raise PlanError(f"{what}: {self.vector!r} is both copied (`vectors`) and backfilled")
        parse_template(self.text, what)
        check_filter(backend, self.filter, what)

    def embedder_names(self, view: SchemaView | None = None) -> dict[str, int | str | None]:
        """The embedders this op needs -> the size of the vector each fills, as ``view`` has it (SPARSE
        for a sparse vector, None when unknown): the runner probes each embedder at plan time and compares."""
        return {self.embedder: view.filled_size(self.target or self.source, self.vector) if view is not None else None}

    def live_embedder(self, ctx):
        """The embedder, checked against the vector as the live store has it now."""
        from vecmig.embed import load_embedder

        what = self.what()
        embedder = load_embedder(self.embedder, ctx.config)
        live = ctx.backend.get_collection(collection_behind(ctx.backend, self.target or self.source))
        if live is not None and self.vector in live.sparse_vectors:
            if not embedder.sparse:
                raise PlanError(f"{what}: {self.vector!r} is a sparse vector and embedder {self.embedder!r} makes dense vectors")
            return embedder
        spec = live.vectors.get(self.vector) if live is not None else None
        if spec is None:
            raise PlanError(f"{what}: the vector {self.vector!r} does not exist (any more)")
        if embedder.sparse:
            raise PlanError(f"{what}: {self.vector!r} is a dense vector and embedder {self.embedder!r} makes sparse vectors")
        if spec.size and embedder.dimension != spec.size:
            raise PlanError(f"{what}: embedder {self.embedder!r} makes {embedder.dimension}-d vectors, and {self.vector!r} has {spec.size} dimensions")
        return embedder

    def job(self, source: str, target: str | None) -> BackfillJob:
        """The write rule of this op, over the collections ``source`` and ``target`` stand for now."""
        return BackfillJob(source, self.vector, self.embedder, self.text, target, self.copied_vectors(), self.filter)

    def worker(self, ctx, embedder) -> Worker:
        return Worker(ctx.backend, {self.embedder: embedder})

    def reverse(self, undo):
        return nothing_to_undo(self.what(), self.source, self.vector, self.target)

    def reverse_partial(self, checkpoint):
        return self.reverse(None)
