"""Data ops: ``copy`` (points between collections) and ``backfill`` (fill a vector with a model).

Each builds its job (``vecmig.datapath.jobs``) and hands it to the run's executor: overlapped stages, bounded memory, a checkpoint
after each written batch, resume after a crash redoing at most one batch per worker. Where they
write into data the application may be writing too (dual-write), they never overwrite it: the
target is written insert-only, and an in-place backfill writes a vector only where it is missing.

What is guaranteed against concurrent application writes (dual-write on):
- Qdrant server >= 1.17: decided by Qdrant point by point. Into another collection: upserts with
  ``update_mode: insert_only``. In place: ``update_vectors`` and the hash's ``set_payload`` guarded
  by ``must_not: has_vector V``. A point the application wrote first is never overwritten.
- Embedded Qdrant: one process at a time; the check and the write happen under the store's lock.
- Qdrant server < 1.17: read, then write; a write landing in between is overwritten.
- Weaviate into another collection: gRPC batches. Weaviate's batch replaces an object that exists
  and has no insert-only mode, so each batch first fetches which of its ids exist and writes only
  the others. An application write landing between that fetch and the batch (milliseconds) is
  overwritten with the older version the op read, and a point deleted in between is written back.
  After a backfill, reconcile repairs both: the point's text hash no longer matches its source's
  text (stale: re-embedded, the source's payload merged in), or the point is not in the source
  (extra: deleted); its passes repeat until one finds nothing, so its own batches ("missing"
  repairs) are checked too. The live-writer switch test into a new collection on a Weaviate
  server ends with 0 lost writes and 0 resurrected deletes over 10 seeded runs, and over 20 of 21
  more with that window widened to 50 ms (30 application writes landed in the window; none was
  lost; the other run stopped before the backfill wrote anything, its cause not found).
  Not repaired: a write in that window that changes only payload fields the text template does
  not read (reconcile compares text hashes) keeps the older values. ``copy`` has no reconcile: into
  a collection a route dual-writes, it asks for ``exact`` insert-only writes (one REST create per
  missing object, which Weaviate refuses for an id that exists: no window); elsewhere it batches.
- Weaviate in place: no conditional write exists; the vectors are read, then written one by one
  (PATCH merges vectors and properties): a vector the application writes in between is
  overwritten. The reconcile step after the backfill compares each point's text hash with its
  current text and repairs those points. Weaviate's PATCH itself reads the object first and writes
  its other named vectors back as read: an application write landing inside one PATCH keeps its
  properties but can get its other vectors (e.g. the old model's) reverted, which reconcile of
  the new vector does not see.
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

from vecmig.datapath.jobs import CopyJob, Worker
from vecmig.errors import PlanError
from vecmig.ops.base import NothingToUndo, Op, register, require_collection
from vecmig.ops.checks import check_filter, check_vector_mapping, collection_behind, vector_mapping
from vecmig.ops.embedding import EmbeddingOp
from vecmig.schema import SchemaView


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
    partitions: int | str = "auto"

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
        source = ctx.backend.get_collection(collection_behind(ctx.backend, self.source))
        if source is None:
            raise PlanError(f"{self.what()}: collection {self.source!r} does not exist")
        target = collection_behind(ctx.backend, self.target)
        job = CopyJob(self.source, self.target, vector_mapping(self.vectors, source), self.filter, self.overwrite,
                      exact=dual_written(ctx, target))
        stats = ctx.run_job(job, Worker(ctx.backend), batch_size=self.batch_size, workers=self.workers, max_rate=self.max_rate,
                            partitions=self.partitions)
        return {"points": stats.resumed_at + stats.points}

    def reverse(self, undo):
        if self.overwrite:
            return None
        return NothingToUndo(undoes=self.what(), reason=f"the copied points go with {self.target!r} (drop_collection)")

    def reverse_partial(self, checkpoint):
        return self.reverse(None)


@register("backfill")
@dataclass
class Backfill(EmbeddingOp):
    """Embed each point's text (``text``, a jinja2 template over the payload) with ``embedder`` into
    ``vector``: in place (``target`` left out: a named vector of ``source``) or into ``target``. A
    sparse vector is filled by a sparse embedder (``provider = bm25``), a dense one by a dense one.
    ``partitions``: id ranges of the source scanned side by side (``vecmig.datapath.partitions``)."""

    partitions: int | str = "auto"

    def apply(self, ctx):
        embedder = self.live_embedder(ctx)
        workers = self.workers or embedder.concurrency + 1
        stats = ctx.run_job(self.job(self.source, self.target), self.worker(ctx, embedder), batch_size=self.batch_size,
                            workers=workers, max_rate=self.max_rate, partitions=self.partitions)
        return {"points": stats.resumed_at + stats.points, "embedder": self.embedder, "fingerprint": embedder.fingerprint()}


def dual_written(ctx, collection: str) -> bool:
    """Whether a route sends the application's writes to ``collection`` (through an alias or not)."""
    if ctx.state is None:
        return False
    from vecmig.routing import RoutingTable

    return any(collection_behind(ctx.backend, t.collection) == collection
               for route in RoutingTable(ctx.state.records).all().values() for t in route.writes)
