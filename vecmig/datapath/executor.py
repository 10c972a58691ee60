"""Executors: what runs a job (``vecmig.datapath.jobs``) over its source, with its checkpoint.

``LocalExecutor`` runs it in this process on the bounded, overlapped ``Pipeline``. An executor is
given the job, the ``Worker`` its batches are processed with, and where to keep the checkpoint;
it returns ``RunStats``. The ops never drive the engine themselves: ``OpContext.run_job`` hands
their job to the executor the run was configured with.

The checkpoint holds ``{cursor, after_id, done, total, scan}``: ``scan`` is a digest of what the
cursor depends on (``job.scan_key()``), so a checkpoint of another scan is never resumed. It is
left in place at the end; the runner clears it once the op is journaled done.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from vecmig.datapath.pipeline import Pipeline, RunStats


def scan_fingerprint(job) -> str:
    """What the saved cursor depends on: a checkpoint of another scan is not resumed."""
    return hashlib.sha256(json.dumps(job.scan_key(), sort_keys=True, default=str).encode()).hexdigest()[:16]


class LocalExecutor:
    """Runs a job in this process: one scan cursor, ``workers`` batches in work at once."""

    name = "local"

    def run(
        self,
        job,
        worker,
        *,
        state=None,
        checkpoint_key: str | None = None,
        batch_size: int = 256,
        workers: int = 1,
        queue_depth: int | None = None,
        max_rate: float | None = None,
        page_size: int | None = None,
        progress: Callable[..., Any] | None = None,
        echo: Callable[[str], Any] = lambda _: None,
    ) -> RunStats:
        backend = worker.backend
        fingerprint = scan_fingerprint(job)
        resume = state.get_checkpoint(checkpoint_key) if state is not None and checkpoint_key else None
        if resume and resume.get("scan") != fingerprint:
            echo(f"  {job.label}: the checkpoint is of another scan (source, target, vectors or filter changed): starting over")
            resume = None
        total = backend.count(job.source, job.filter)
        done = int((resume or {}).get("done") or 0)
        if resume:
            echo(f"  {job.label}: resuming after {done} of {total} points")

        def commit(doc: dict) -> None:
            if state is not None and checkpoint_key:
                state.set_checkpoint(checkpoint_key, {**doc, "total": total, "scan": fingerprint})

        page = max(batch_size, page_size or backend.scan_page_size)

        def scan(cursor):
            return backend.scroll_pages(job.source, batch_size=page, with_vectors=job.with_vectors(), filter=job.filter, cursor=cursor)

        def process(points):
            job.process(worker, points)

        if progress is None:
            from vecmig.progress import silent

            progress = silent().progress
        with progress(total, job.label, done=min(done, total)) as bar:
            pipeline = Pipeline(scan, process, batch_size=batch_size, workers=workers, queue_depth=queue_depth,
                                max_rate=max_rate, commit=commit, progress=bar)
            stats = pipeline.run(resume)
        echo(f"  {job.label}: {stats.points} points in {stats.seconds:.1f}s ({stats.rate:.0f} points/s)")
        return stats
