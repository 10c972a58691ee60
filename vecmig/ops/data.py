"""Data ops: ``copy`` (points between collections) and ``backfill`` (fill a vector with a model).

Both run on the pipeline (``vecmig/pipeline.py``): overlapped stages, bounded memory, a checkpoint
after each written batch, resume after a crash redoing at most one batch per worker. Where they
write into data the application may be writing too (dual-write), they never overwrite it: the
target is written insert-only, and an in-place backfill writes a vector only where it is missing.

What is guaranteed against concurrent application writes (dual-write on):
- Qdrant server >= 1.17: decided by Qdrant point by point. Into another collection: upserts with
  ``update_mode: insert_only``. In place: ``update_vectors`` and the hash's ``set_payload`` guarded
  by ``must_not: has_vector V``. A point the application wrote first is never overwritten.
- Embedded Qdrant: one process at a time; the check and the write happen under the store's lock.
- Qdrant server < 1.17: read, then write; a write landing in between is overwritten.
- Weaviate into another collection: objects are created one by one with REST's create, which
  Weaviate refuses for an id that exists: exact, at about a quarter of the speed of a batch.
- Weaviate in place: no conditional write exists; the vectors are read, then written one by one
  (PATCH merges vectors and properties): a vector the application writes in between is
  overwritten. The reconcile step after the backfill compares each point's text hash with its
  current text and repairs those points.
- A point the application deletes after the backfill read it may be written back into a new
  collection (not in place: writes there skip missing ids). Reconcile deletes such points.

Reverse: neither op deletes anything on the way back. What they wrote goes with the op that made
room for it, which the same downgrade undoes: the target's ``create_collection`` (its reverse drops
the collection) or the ``add_vector`` of an in-place backfill (its reverse drops the vector). So the
standard revision ``create_collection + backfill + repoint_alias`` downgrades with ``auto``.
Points copied into a collection that outlives the downgrade stay there: write an explicit
``downgrade:`` (``delete_points``) if that matters. ``copy`` with ``overwrite: true`` replaces
target points and can't be undone.
"""

from __future__ import annotations

from dataclasses import dataclass

from vecmig.errors import PlanError
from vecmig.ops.base import Op, register, require_collection
from vecmig.schema import CollectionSpec, SchemaView


def vector_mapping(vectors: dict[str, str] | list[str] | None, source: CollectionSpec | None) -> dict[str, str]:
    """``vectors`` as {source name: target name}; None means every vector of ``source`` by its own name."""
    if vectors is None:
        return {n: n for n in source.vector_names()} if source is not None else {}
    if isinstance(vectors, list):
        return {n: n for n in vectors}
    return dict(vectors)


def names(spec: CollectionSpec) -> str:
    return ", ".join(repr(n) for n in spec.vector_names()) or "none"


def check_vector_mapping(src: CollectionSpec, dst: CollectionSpec, mapping: dict[str, str], what: str, *, implicit: bool) -> None:
    """Each source vector exists, its target name exists with the same kind and size, and no two land on one."""
    seen: dict[str, str] = {}
    for old, new in mapping.items():
        if old not in src.vector_names():
            raise PlanError(f"{what}: source {src.name!r} has no vector {old!r} (it has {names(src)})")
        if new not in dst.vector_names():
            hint = ": choose the vectors to copy (and rename them) with `vectors: {old: new}`" if implicit else ""
            raise PlanError(f"{what}: target {dst.name!r} has no vector {new!r} (it has {names(dst)}){hint}")
        if new in seen:
            raise PlanError(f"{what}: vectors {seen[new]!r} and {old!r} would both be written to {new!r}")
        seen[new] = old
        if (old in src.sparse_vectors) != (new in dst.sparse_vectors):
            raise PlanError(f"{what}: vector {old!r} -> {new!r}: one is sparse and the other dense")
        a, b = src.vectors.get(old), dst.vectors.get(new)
        if a is not None and b is not None:
            if a.size and b.size and a.size != b.size:
                raise PlanError(f"{what}: vector {old!r} has {a.size} dimensions, {dst.name}.{new} has {b.size}: a different model needs backfill, not copy")
            if a.multivector != b.multivector:
                raise PlanError(f"{what}: vector {old!r} -> {new!r}: one is a multivector and the other is not")


def check_filter(backend, filter: dict | None, what: str) -> None:
    problem = filter and backend.invalid_filter(filter)
    if problem:
        raise PlanError(f"{what}: {problem}")


def collection_behind(backend, name: str) -> str:
    """The collection ``name`` stands for right now (itself, or an alias's target)."""
    return backend.list_aliases().get(name, name)


@dataclass
class NothingToUndo(Op):
    """The reverse of a copy or backfill: what it wrote goes with another op's reverse (see the
    module docstring). Not registered: revision files don't write it; plans show why it is empty."""

    op_name = "nothing_to_undo"

    undoes: str = ""
    reason: str = ""

    def describe(self) -> str:
        return f"nothing_to_undo({self.undoes}: {self.reason})"

    def apply(self, ctx):
        return None


@register("copy")
@dataclass
class Copy(Op):
    """Copy points (payload and chosen vectors, renamed by ``vectors: {old: new}``) from ``source``
    into ``target``, optionally only those matching ``filter``; insert-only unless ``overwrite``."""

    source: str = ""
    target: str = ""
    vectors: dict[str, str] | list[str] | None = None
    filter: dict | None = None
    overwrite: bool = False
    batch_size: int = 256
    workers: int = 2
    max_rate: float | None = None

    @property
    def irreversible(self):  # type: ignore[override]
        if self.overwrite:
            return f"copy with overwrite replaces points of {self.target!r}: write an explicit downgrade to restore them"
        return None

    def what(self) -> str:
        return f"copy {self.source} -> {self.target}"

    def validate(self, view: SchemaView, backend) -> None:
        what = self.what()
        src = require_collection(view, self.source, what)
        dst = require_collection(view, self.target, what)
        if src.name == dst.name:
            raise PlanError(f"{what}: source and target are the same collection {src.name!r}")
        check_vector_mapping(src, dst, vector_mapping(self.vectors, src), what, implicit=self.vectors is None)
        check_filter(backend, self.filter, what)

    def embedder_names(self, view: SchemaView | None = None) -> dict[str, int | None]:
        return {}

    def apply(self, ctx):
        from vecmig.pipeline import CopyJob, run_job

        source = ctx.backend.get_collection(collection_behind(ctx.backend, self.source))
        if source is None:
            raise PlanError(f"{self.what()}: collection {self.source!r} does not exist")
        job = CopyJob(ctx.backend, self.source, self.target, vector_mapping(self.vectors, source), self.filter, self.overwrite)
        stats = run_job(ctx.backend, job, state=ctx.state, checkpoint_key=ctx.checkpoint_key, batch_size=self.batch_size,
                        workers=self.workers, max_rate=self.max_rate, progress=ctx.progress, echo=ctx.echo)
        return {"points": stats.resumed_at + stats.points}

    def reverse(self, undo):
        if self.overwrite:
            return None
        return NothingToUndo(undoes=self.what(), reason=f"the copied points go with {self.target!r} (drop_collection)")

    def reverse_partial(self, checkpoint):
        return self.reverse(None)


@register("backfill")
@dataclass
class Backfill(Op):
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
        if self.target is None:
            return f"backfill {self.source}.{self.vector}"
        return f"backfill {self.source} -> {self.target}.{self.vector}"

    def copied_vectors(self) -> dict[str, str]:
        return vector_mapping(self.vectors or {}, None)

    def validate(self, view: SchemaView, backend) -> None:
        from vecmig.pipeline import TemplateError, TextTemplate

        what = self.what()
        src = require_collection(view, self.source, what)
        if self.target is None:
            dst = src
            if self.vectors:
                raise PlanError(f"{what}: `vectors` copies vectors into another collection: it needs `target`")
        else:
            dst = require_collection(view, self.target, what)
            if dst.name == src.name:
                raise PlanError(f"{what}: the target is the source collection {src.name!r}: leave `target` out to backfill in place")
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
        try:
            TextTemplate(self.text)
        except TemplateError as e:
            raise PlanError(f"{what}: {e}") from None
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

    def apply(self, ctx):
        from vecmig.pipeline import BackfillJob, TextTemplate, run_job

        embedder = self.live_embedder(ctx)
        job = BackfillJob(ctx.backend, self.source, self.vector, embedder, TextTemplate(self.text), self.target,
                          self.copied_vectors(), self.filter)
        workers = self.workers or embedder.concurrency + 1
        stats = run_job(ctx.backend, job, state=ctx.state, checkpoint_key=ctx.checkpoint_key, batch_size=self.batch_size,
                        workers=workers, max_rate=self.max_rate, progress=ctx.progress, echo=ctx.echo)
        return {"points": stats.resumed_at + stats.points, "embedder": self.embedder, "fingerprint": embedder.fingerprint()}

    def reverse(self, undo):
        if self.target is None:
            reason = f"the vectors go with {self.source}.{self.vector} itself (drop_vector)"
        else:
            reason = f"the points go with {self.target!r} (drop_collection)"
        return NothingToUndo(undoes=self.what(), reason=reason)

    def reverse_partial(self, checkpoint):
        return self.reverse(None)
