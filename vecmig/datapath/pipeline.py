"""The bounded, overlapped engine a job runs on in one process: read -> process (render, embed, write).

    reader thread --(queue of queue_depth batches)--> `workers` threads --> main thread
    scroll pages, cut into batches, paced              job.process             commit the checkpoint

* The reader scrolls the source in large pages (``Backend.scan_page_size``), cuts them into batches
  of ``batch_size`` and hands them on through a bounded queue, paced to ``max_rate`` points/s.
* A worker takes the next batch and does the rest to it: render the texts, embed them, write.
  With several workers the embedding of one batch overlaps the writing of another, and requests
  to a remote embedder or store run side by side.
* Batches finish out of order. The main thread commits the *contiguous prefix* of written batches:
  after each batch that extends it, the checkpoint says where the next run starts. A worker starts
  a batch only while it is fewer than ``workers`` batches ahead of that prefix, so at any moment
  at most ``workers`` batches are in flight or written past the checkpoint: a run killed with
  kill -9 redoes at most one batch per worker; a run stopped by an error first writes and commits
  what the other workers were finishing.

Memory is one scroll page plus ``queue_depth + 2 * workers`` batches (queued, waiting for their
turn, in work or written ahead of the prefix), whatever the collection's size.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from vecmig.schema import Point

#: seconds a blocked thread waits before it looks at the stop flag again
POLL = 0.05

Cursor = Any
Scan = Callable[[Cursor], Iterator[tuple[list[Point], Cursor]]]


class Throttle:
    """Paces one stream, or several together, to ``rate`` items per second in all: the k-th batch goes
    out at start + (items before it) / rate. Thread-safe: partitions scanned side by side share one."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] = time.sleep):
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.start: float | None = None
        self.sent = 0
        self._lock = threading.Lock()

    def wait(self, n: int, sleep: Callable[[float], Any] | None = None) -> None:
        """Wait until ``n`` more items may go (``sleep``: how this caller waits, e.g. a stop flag's wait)."""
        if not self.rate:
            return
        with self._lock:
            now = self.clock()
            if self.start is None:
                self.start = now
            due = self.start + self.sent / self.rate
            self.sent += n
        if due > now:
            (sleep or self.sleep)(due - now)


@dataclass
class Batch:
    """A run of consecutive points of one scroll page, numbered in reading order."""

    seq: int
    points: list[Point]
    #: where the next run starts once this batch and every one before it is written
    resume: dict
    #: points read from the start of the op up to and including this batch
    done: int


@dataclass
class RunStats:
    """What one run did, and how full its buffers got (the memory bound, observed)."""

    batches: int = 0
    points: int = 0
    resumed_at: int = 0
    seconds: float = 0.0
    #: most batches waiting in the reader's queue at once (at most queue_depth)
    max_queued: int = 0
    #: most batches taken by workers past the committed prefix at once (at most workers)
    max_ahead: int = 0

    @property
    def rate(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else 0.0


_END = object()


class Pipeline:
    """Runs ``scan`` -> ``process`` (in ``workers`` threads) -> ``commit``; see the module docstring.

    ``scan(cursor)`` yields (page, cursor after it) as ``Backend.scroll_pages`` does. ``process``
    takes a non-empty list of points and writes whatever they become. ``commit(doc)`` is called in
    the caller's thread with ``{"cursor", "after_id", "done"}`` each time the written prefix grows:
    handing that doc back to ``run`` resumes right after it.
    """

    def __init__(
        self,
        scan: Scan,
        process: Callable[[list[Point]], Any],
        *,
        batch_size: int = 256,
        workers: int = 1,
        queue_depth: int | None = None,
        max_rate: float | None = None,
        commit: Callable[[dict], Any] | None = None,
        progress: Any = None,
        throttle: Throttle | None = None,
    ):
        if batch_size < 1 or workers < 1:
            raise ValueError("batch_size and workers must be at least 1")
        self.scan, self.process, self.commit, self.progress = scan, process, commit, progress
        self.batch_size, self.workers = batch_size, workers
        self.queue_depth = queue_depth or 2 * workers
        #: ``max_rate`` points/s; a shared ``throttle`` paces several pipelines together instead
        self.throttle = throttle or Throttle(max_rate)
        self._stop = threading.Event()
        self._turn = threading.Condition()
        #: ``halt`` was called: the scan did not reach its end
        self.halted = False

    def run(self, resume: dict | None = None) -> RunStats:
        resume = resume or {}
        self.stats = RunStats(resumed_at=int(resume.get("done") or 0))
        self._committed = 0  # seq of the first batch not yet committed
        self._queue: queue.Queue = queue.Queue(maxsize=self.queue_depth)
        self._events: queue.Queue = queue.Queue()
        started = time.monotonic()
        threads = [threading.Thread(target=self._read, args=(resume,), name="vecmig-read", daemon=True)]
        threads += [threading.Thread(target=self._work, name=f"vecmig-worker-{i}", daemon=True) for i in range(self.workers)]
        for t in threads:
            t.start()
        try:
            error = self._collect(len(threads))
        finally:  # also on Ctrl-C or a failed checkpoint write: stop the others before going
            self._halt()
            for t in threads:
                t.join(timeout=5)
            self.stats.seconds = time.monotonic() - started
        if error is not None:
            raise error
        return self.stats

    # main thread: commit the contiguous prefix ------------------------------------------------------

    def _collect(self, running: int) -> BaseException | None:
        finished: dict[int, Batch] = {}
        error = None
        while running:
            try:
                kind, item = self._events.get(timeout=POLL)
            except queue.Empty:
                continue
            if kind == "exit":
                running -= 1
            elif kind == "error":
                error = error or item
                self._halt()
            else:
                finished[item.seq] = item
                self._commit_prefix(finished)
        return error

    def _commit_prefix(self, finished: dict[int, Batch]) -> None:
        """Checkpoint the end of the contiguous run of written batches, then let workers move on."""
        seq, last, points = self._committed, None, 0
        while seq in finished:
            last = finished.pop(seq)
            points += len(last.points)
            seq += 1
        if last is None:
            return
        if self.commit is not None:
            self.commit({**last.resume, "done": last.done})
        with self._turn:  # only now: a worker never runs further ahead of the *saved* checkpoint
            self.stats.batches += seq - self._committed
            self._committed = seq
            self._turn.notify_all()
        self.stats.points += points
        if self.progress is not None and points:
            self.progress.update(points)

    def halt(self) -> None:
        """Stop (from another thread, before or during ``run``): no new batch is started; ``run``
        returns once the batches in work are done. A pipeline runs once."""
        self.halted = True
        self._halt()

    def _halt(self) -> None:
        self._stop.set()
        with self._turn:
            self._turn.notify_all()

    # reader ------------------------------------------------------------------------------------------

    def _read(self, resume: dict) -> None:
        try:
            self._read_batches(resume)
        except BaseException as e:
            self._events.put(("error", e))
        finally:
            self._events.put(("exit", None))

    def _read_batches(self, resume: dict) -> None:
        cursor = resume.get("cursor")
        skip_through = resume.get("after_id")
        done = self.stats.resumed_at
        seq = 0
        first = True
        for page, after in self.scan(cursor):
            if self._stop.is_set():
                return
            start = 0
            if first and skip_through is not None:
                ids = [p.id for p in page]
                # written by the last run; if that point is gone, the page is redone (writes are idempotent)
                start = ids.index(skip_through) + 1 if skip_through in ids else 0
            first = False
            if start >= len(page):  # nothing left in this page: still move the checkpoint past it
                if not self._hand_on(Batch(seq, [], {"cursor": after, "after_id": None}, done)):
                    return
                seq += 1
            for i in range(start, len(page), self.batch_size):
                chunk = page[i : i + self.batch_size]
                done += len(chunk)
                last_of_page = i + len(chunk) == len(page)
                resume_at = {"cursor": after, "after_id": None} if last_of_page else {"cursor": cursor, "after_id": chunk[-1].id}
                self.throttle.wait(len(chunk), sleep=self._stop.wait)
                if not self._hand_on(Batch(seq, chunk, resume_at, done)):
                    return
                seq += 1
            cursor = after
        for _ in range(self.workers):
            if not self._hand_on(_END):
                return

    def _hand_on(self, item) -> bool:
        """Put ``item`` on the queue, waiting while it is full; False once the run stops."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=POLL)
            except queue.Full:
                continue
            self.stats.max_queued = max(self.stats.max_queued, self._queue.qsize())
            return True
        return False

    # workers -----------------------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None or not self._wait_turn(batch.seq):
                    return
                if batch.points:
                    self.process(batch.points)
                self._events.put(("done", batch))
        except BaseException as e:
            self._events.put(("error", e))
        finally:
            self._events.put(("exit", None))

    def _next_batch(self) -> Batch | None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=POLL)
            except queue.Empty:
                continue
            return None if item is _END else item
        return None

    def _wait_turn(self, seq: int) -> bool:
        """Wait until ``seq`` is fewer than ``workers`` batches past the committed prefix; False on stop."""
        with self._turn:
            while seq >= self._committed + self.workers:
                if self._stop.is_set():
                    return False
                self._turn.wait(POLL)
            if self._stop.is_set():
                return False
            self.stats.max_ahead = max(self.stats.max_ahead, seq - self._committed + 1)
            return True
