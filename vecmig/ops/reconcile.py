"""``reconcile``: bring the target of a backfill in line with its source after live writes.

Each pass compares the two (``vecmig.datapath.compare.Comparison``) and repairs page by page with
the backfill's own write rule (``BackfillJob.process``): target points the source no longer has are
deleted, stale ones re-embedded (overwriting: their text changed since), missing ones added
insert-only (a point the application wrote meanwhile wins). Passes repeat until one finds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from vecmig.datapath.compare import Comparison, Page, Tally, scan_progress
from vecmig.datapath.jobs import BackfillJob, Worker
from vecmig.datapath.points import read_vectors
from vecmig.errors import CheckFailed
from vecmig.ops.base import register
from vecmig.ops.checks import collection_behind
from vecmig.ops.embedding import EmbeddingOp


@register("reconcile")
@dataclass
class Reconcile(EmbeddingOp):
    """Delete target points the source no longer has, re-embed points whose text changed, add the
    points that are missing; pass after pass until one finds nothing (at most ``max_passes``)."""

    max_passes: int = 3

    def apply(self, ctx):
        what = self.what()
        backend = ctx.backend
        source = collection_behind(backend, self.source)
        target = collection_behind(backend, self.target) if self.target is not None else None
        job, worker = self.job(source, target), self.worker(ctx, self.live_embedder(ctx))
        saved = (ctx.state.get_checkpoint(ctx.checkpoint_key) if ctx.state is not None else None) or {}
        totals = {k: int(saved.get(k) or 0) for k in ("deleted", "reembedded", "added")}
        passes = int(saved.get("passes") or 0)
        if saved:
            ctx.echo(f"  {what}: resuming after pass {passes}")
        for _ in range(self.max_passes):
            passes += 1
            comparison = Comparison(backend, source, target, self.vector, job.template, self.filter,
                                    source_vectors=list(self.copied_vectors()), page_size=max(self.batch_size, backend.scan_page_size))
            with scan_progress(ctx.progress, backend, source, target, self.filter, f"{what} (pass {passes})") as bar:
                comparison.on_read = bar.update
                for page in comparison.pages():
                    repair(job, worker, page)
            tally = comparison.tally
            totals["deleted"] += tally.extra
            totals["reembedded"] += tally.stale
            totals["added"] += tally.missing
            if ctx.state is not None:
                ctx.state.set_checkpoint(ctx.checkpoint_key, {"passes": passes, **totals})
            ctx.echo(f"  {what}: pass {passes}: {tally.source} source points; " + describe_repairs(tally))
            if tally.clean:
                return {"passes": passes, **totals, "source_points": tally.source, "target_points": tally.target}
        raise CheckFailed(
            f"{what}: still not in line after {self.max_passes} passes (the last one: {describe_repairs(tally)}): "
            "the application changed points faster than reconcile repaired them; re-run to continue, or raise `max_passes`"
        )


def repair(job: BackfillJob, worker: Worker, page: Page) -> None:
    """One page of differences made right with the job's write rule."""
    backend = worker.backend
    if page.extra and job.target is not None:
        backend.delete(job.target, page.extra)
    if page.stale:
        job.process(worker, page.stale, overwrite=True)
    if page.missing:  # as the backfill writes them: insert-only, a point the application wrote meanwhile wins
        points = backend.retrieve(job.source, page.missing, with_vectors=read_vectors(job.vectors.keys()))
        if points:
            job.process(worker, points)


def describe_repairs(tally: Tally) -> str:
    if tally.clean:
        return "nothing to repair"
    parts = []
    if tally.extra:
        parts.append(f"{tally.extra} deleted (not in the source){tally.example('extra')}")
    if tally.stale:
        parts.append(f"{tally.stale} re-embedded (stale){tally.example('stale')}")
    if tally.missing:
        parts.append(f"{tally.missing} added (missing){tally.example('missing')}")
    return ", ".join(parts)
