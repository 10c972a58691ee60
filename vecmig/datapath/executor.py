"""Executors: what runs a job (``vecmig.datapath.jobs``) over its source, with its checkpoint.

``LocalExecutor`` runs it in this process. An executor is given the job, the ``Worker`` its batches
are processed with, and where to keep the checkpoint; it returns ``RunStats``. The ops never drive
the engine themselves: ``OpContext.run_job`` hands their job to the executor of the run.

Partitions (``vecmig.datapath.partitions``): the source is split into id ranges, each scanned by a
``Pipeline`` of its own (its own cursor, ``workers`` split among the partitions running at once,
one shared ``max_rate``). Checkpoints, under the op's key ``K``:

* one partition: ``K`` holds ``{cursor, after_id, done, total, scan}``;
* several: ``K`` holds ``{partitions: the plan, scan, total, done}`` — the plan is made on the first
  run and reused by every resume — and ``K/<k>`` the cursor of partition k (``finished`` once its
  range is done). A kill redoes at most one batch per worker of each partition.

``scan`` is a digest of what the cursors depend on (``job.scan_key()``): a checkpoint of another scan
is never resumed. Checkpoints are left in place at the end; the runner clears them once the op is
journaled done.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from typing import Any, Callable

from vecmig.datapath.partitions import PartitionPlan, how_many, make_plan, scan_range
from vecmig.datapath.pipeline import Pipeline, RunStats, Throttle
from vecmig.errors import PlanError


def scan_fingerprint(job) -> str:
    """What the saved cursor depends on: a checkpoint of another scan is not resumed."""
    return hashlib.sha256(json.dumps(job.scan_key(), sort_keys=True, default=str).encode()).hexdigest()[:16]


class LocalExecutor:
    """Runs a job in this process: each partition on its own cursor, ``workers`` batches in work at once."""

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
        partitions: int | str | None = 1,
        queue_depth: int | None = None,
        max_rate: float | None = None,
        page_size: int | None = None,
        progress: Callable[..., Any] | None = None,
        echo: Callable[[str], Any] = lambda _: None,
    ) -> RunStats:
        run = JobRun(job, worker, state, checkpoint_key, echo)
        plan = run.plan(partitions, parallelism=workers)
        if progress is None:
            from vecmig.progress import silent

            progress = silent().progress
        options = {"batch_size": batch_size, "queue_depth": queue_depth, "page": max(batch_size, page_size or worker.backend.scan_page_size)}
        with progress(run.total, job.label, done=min(run.done(), run.total)) as bar:
            if plan.count == 1:
                stats = run.partition(0, plan, workers=workers, throttle=Throttle(max_rate), bar=bar, **options)
            else:
                stats = run.partitions(plan, workers=workers, throttle=Throttle(max_rate), bar=LockedBar(bar), **options)
        echo(f"  {job.label}: {stats.points} points in {stats.seconds:.1f}s ({stats.rate:.0f} points/s)"
             + (f", {plan.count} partitions" if plan.count > 1 else ""))
        return stats


class JobRun:
    """One run of a job: its checkpoint records, its partition plan and its partitions' pipelines."""

    def __init__(self, job, worker, state, key: str | None, echo):
        self.job, self.worker, self.state, self.key, self.echo = job, worker, state, key, echo
        self.backend = worker.backend
        self.fingerprint = scan_fingerprint(job)
        self.total = self.backend.count(job.source, job.filter)
        self.saved = self._load(key) or {}
        self._lock = threading.Lock()
        self._done: dict[int, int] = {}

    def _load(self, key: str | None) -> dict | None:
        doc = self.state.get_checkpoint(key) if self.state is not None and key else None
        if doc and doc.get("scan") != self.fingerprint:
            self.echo(f"  {self.job.label}: the checkpoint is of another scan (source, target, vectors or filter changed): starting over")
            return None
        return doc

    def plan(self, requested, *, parallelism: int) -> PartitionPlan:
        """The stored plan of an interrupted run, else a new one (stored before any write)."""
        collection = self.backend.list_aliases().get(self.job.source, self.job.source)
        if "partitions" in self.saved:
            plan = PartitionPlan.from_doc(self.saved["partitions"])
            if plan.collection != collection:
                raise PlanError(
                    f"{self.job.label}: the interrupted run split {plan.collection!r}, and {self.job.source!r} is now "
                    f"{collection!r}: `vecmig rollback` undoes that run, then the op starts over"
                )
            return plan
        if self.saved:  # a one-partition run under way: go on as it was
            return PartitionPlan(collection, [])
        # embedded Qdrant sorts every id for each page it reads: parallel cursors only add to that
        auto_one = requested in (None, "auto") and self.backend.exclusive
        count = how_many(requested, self.total, parallelism) if self.backend.ranged_scans and not auto_one else 1
        if requested not in (None, "auto") and count < int(requested):
            why = f"{self.total} points" if self.backend.ranged_scans else "this store can't start a scan at an id"
            self.echo(f"  {self.job.label}: {count} partitions, not {requested} ({why})")
        plan = make_plan(self.backend, self.job.source, collection, self.job.filter, count)
        if plan.count > 1 and self.state is not None and self.key:
            self.state.set_checkpoint(self.key, self._summary(plan))
        return plan

    def done(self) -> int:
        return int(self.saved.get("done") or 0)

    def _summary(self, plan: PartitionPlan) -> dict:
        return {"partitions": plan.to_doc(), "scan": self.fingerprint, "total": self.total, "done": sum(self._done.values())}

    def partition(self, k: int, plan: PartitionPlan, *, workers: int, throttle: Throttle, bar, batch_size, queue_depth, page,
                  pipelines: list | None = None) -> RunStats:
        """Scan partition ``k`` from its saved cursor to the end of its range."""
        single = plan.count == 1
        key = self.key if single else f"{self.key}/{k}"
        resume = (self.saved if single else self._load(key)) or {}
        if resume.get("finished"):
            return RunStats(resumed_at=int(resume.get("done") or 0))
        lo, hi = plan.bounds(k)

        def scan(cursor):
            return scan_range(self.backend, self.job.source, lo, hi, cursor, batch_size=page,
                              with_vectors=self.job.with_vectors(), filter=self.job.filter)

        def process(points):
            self.job.process(self.worker, points)

        def commit(doc: dict) -> None:
            if self.state is None or not self.key:
                return
            self.state.set_checkpoint(key, {**doc, "total": self.total, "scan": self.fingerprint})
            if not single:
                with self._lock:
                    self._done[k] = doc["done"]
                    self.state.set_checkpoint(self.key, self._summary(plan))

        pipeline = Pipeline(scan, process, batch_size=batch_size, workers=workers, queue_depth=queue_depth,
                            commit=commit, progress=bar, throttle=throttle)
        if pipelines is not None:
            pipelines.append(pipeline)
        self._done[k] = int(resume.get("done") or 0)
        stats = pipeline.run(resume)
        if not single and not pipeline.halted and self.state is not None and self.key:
            self.state.set_checkpoint(key, {**(self.state.get_checkpoint(key) or {}), "done": self._done[k],
                                            "scan": self.fingerprint, "finished": True})
        return stats

    def partitions(self, plan: PartitionPlan, *, workers: int, throttle: Throttle, bar, **options) -> RunStats:
        """Every partition not finished yet, ``min(workers, partitions)`` of them at once; the first
        error (or Ctrl-C) halts the others, which finish the batches they are writing."""
        todo: queue.Queue = queue.Queue()
        for k in range(plan.count):
            self._done[k] = int((self._load(f"{self.key}/{k}") or {}).get("done") or 0)  # finished ones count too
            todo.put(k)
        running = max(1, min(workers, plan.count))
        per_partition = max(1, workers // running)
        pipelines: list[Pipeline] = []
        results: list[RunStats] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def drive() -> None:
            while not stop.is_set():
                try:
                    k = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    results.append(self.partition(k, plan, workers=per_partition, throttle=throttle, bar=bar,
                                                  pipelines=pipelines, **options))
                except BaseException as e:
                    errors.append(e)
                    halt()

        def halt() -> None:
            stop.set()
            for p in list(pipelines):
                p.halt()

        started = time.monotonic()
        threads = [threading.Thread(target=drive, name=f"vecmig-partitions-{i}", daemon=True) for i in range(running)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(timeout=0.1)  # short waits: Ctrl-C reaches this thread
        except BaseException:
            halt()
            for t in threads:
                t.join(timeout=10)
            raise
        if errors:
            raise errors[0]
        total = RunStats(seconds=time.monotonic() - started)
        for r in results:
            total.resumed_at += r.resumed_at
            total.batches += r.batches
            total.points += r.points
            total.max_queued = max(total.max_queued, r.max_queued)
            total.max_ahead = max(total.max_ahead, r.max_ahead)
        return total


class LockedBar:
    """A progress bar several partitions update."""

    def __init__(self, bar):
        self._bar, self._lock = bar, threading.Lock()

    def update(self, n: int) -> None:
        with self._lock:
            self._bar.update(n)
