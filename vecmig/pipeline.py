"""The data engine of ``copy`` and ``backfill``: read -> render -> embed -> write, stages overlapped.

    reader thread --(queue of queue_depth batches)--> `workers` threads --> main thread
    scroll pages, cut into batches, paced              render, embed, write    commit the checkpoint

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

Text hashes: with each vector it writes, backfill stores the sha256 (hex) of the exact text it
embedded, in the payload field ``text_hash_field(vector)`` = ``_vecmig_text_hash_<vector>``
(``_vecmig_text_hash`` for the unnamed vector) — keyed by vector name, the same rule in a new
collection and in place, so that one collection can hold vectors of several backfills and a copy
keeps each hash next to its vector. Reconcile and verify compare it with the current text.
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from vecmig.errors import ScriptError, VecmigError
from vecmig.schema import Point

TEXT_HASH_FIELD = "_vecmig_text_hash"
#: seconds a blocked thread waits before it looks at the stop flag again
POLL = 0.05

Cursor = Any
Scan = Callable[[Cursor], Iterator[tuple[list[Point], Cursor]]]


def text_hash_field(vector: str) -> str:
    """The payload field holding the hash of the text embedded into ``vector``."""
    return f"{TEXT_HASH_FIELD}_{vector}" if vector else TEXT_HASH_FIELD


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TemplateError(ScriptError):
    """A backfill's text template doesn't fit a point's payload (a field is missing, ...)."""


class TextTemplate:
    """A jinja2 template over a point's payload, rendered in a sandbox with strict undefined.

    A field the template uses and the payload lacks is an error naming the point and the field;
    null values count as missing (Weaviate doesn't store nulls: the same template behaves the same
    on every store). Optional fields: ``{{ description | default('') }}``.
    """

    def __init__(self, source: str):
        from jinja2 import StrictUndefined, TemplateSyntaxError
        from jinja2.sandbox import SandboxedEnvironment

        self.source = source
        env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        try:
            self._template = env.from_string(source)
        except TemplateSyntaxError as e:
            raise TemplateError(f"text template {source!r}: line {e.lineno}: {e.message}") from None

    def render(self, point: Point) -> str:
        from jinja2 import UndefinedError
        from jinja2.exceptions import SecurityError

        fields = {k: v for k, v in point.payload.items() if v is not None}
        try:
            return self._template.render(fields)
        except UndefinedError as e:
            name = undefined_name(str(e))
            have = ", ".join(sorted(fields)) or "no fields"
            raise TemplateError(
                f"point {point.id!r}: the text template uses {name!r}, which the point's payload doesn't have "
                f"(it has {have}): fix the data, or write {{{{ {name} | default('') }}}} for an optional field"
            ) from None
        except SecurityError as e:
            raise TemplateError(f"point {point.id!r}: the text template did something the sandbox forbids: {e}") from None
        except Exception as e:
            raise TemplateError(f"point {point.id!r}: rendering the text template failed: {type(e).__name__}: {e}") from None


def undefined_name(message: str) -> str:
    """The missing name in jinja2's "'x' is undefined" / "... has no attribute 'x'" messages."""
    m = re.search(r"has no attribute '([^']+)'", message) or re.search(r"'([^']+)' is undefined", message)
    return m.group(1) if m else message


class Throttle:
    """Paces a stream to ``rate`` items per second: the k-th batch goes out at start + (items before it) / rate."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] = time.sleep):
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.start: float | None = None
        self.sent = 0

    def wait(self, n: int) -> None:
        if not self.rate:
            return
        now = self.clock()
        if self.start is None:
            self.start = now
        due = self.start + self.sent / self.rate
        if due > now:
            self.sleep(due - now)
        self.sent += n


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
    ):
        if batch_size < 1 or workers < 1:
            raise ValueError("batch_size and workers must be at least 1")
        self.scan, self.process, self.commit, self.progress = scan, process, commit, progress
        self.batch_size, self.workers = batch_size, workers
        self.queue_depth = queue_depth or 2 * workers
        self.max_rate = max_rate

    def run(self, resume: dict | None = None) -> RunStats:
        resume = resume or {}
        self.stats = RunStats(resumed_at=int(resume.get("done") or 0))
        self._stop = threading.Event()
        self._turn = threading.Condition()
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
        throttle = Throttle(self.max_rate, sleep=self._stop.wait)
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
                throttle.wait(len(chunk))
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


# ---------------------------------------------------------------------------------------------------
# the two jobs


@dataclass
class CopyJob:
    """Points of ``source`` into ``target``: payload as is, vectors picked and renamed by ``vectors``
    ({old: new}). ``overwrite=False`` writes insert-only: a point that exists in the target (written by
    the application meanwhile) is kept."""

    backend: Any
    source: str
    target: str
    vectors: dict[str, str] = field(default_factory=dict)
    filter: dict | None = None
    overwrite: bool = False

    @property
    def label(self) -> str:
        return f"copy {self.source} -> {self.target}"

    def with_vectors(self) -> bool | list[str]:
        return read_vectors(self.vectors)

    def scan_key(self) -> dict:
        return {"job": "copy", "source": self.source, "target": self.target, "vectors": self.vectors, "filter": self.filter}

    def process(self, points: list[Point]) -> None:
        out = [Point(p.id, dict(p.payload), renamed(p, self.vectors)) for p in points]
        self.backend.upsert(self.target, out, insert_only=not self.overwrite)


@dataclass
class BackfillJob:
    """Embed each point's rendered text into ``vector``: in place (``target`` None: a named vector of
    the source, written only where it is missing) or into ``target`` (insert-only, with the payload
    and the ``vectors`` {old: new} copied along). The text's hash goes with the vector."""

    backend: Any
    source: str
    vector: str
    embedder: Any
    template: TextTemplate
    target: str | None = None
    vectors: dict[str, str] = field(default_factory=dict)
    filter: dict | None = None

    @property
    def label(self) -> str:
        return f"backfill {self.source}.{self.vector}" if self.target is None else f"backfill {self.source} -> {self.target}.{self.vector}"

    def with_vectors(self) -> bool | list[str]:
        # in place the target vector is read too: points that have it already are skipped unembedded
        return read_vectors([self.vector] if self.target is None else self.vectors)

    def scan_key(self) -> dict:
        return {"job": "backfill", "source": self.source, "target": self.target, "vector": self.vector,
                "vectors": self.vectors, "filter": self.filter}

    def process(self, points: list[Point]) -> None:
        if self.target is None:
            points = [p for p in points if not p.vectors.get(self.vector)]
            if not points:
                return
        texts = [self.template.render(p) for p in points]
        embedded = embed_for_store(self.embedder, texts)
        if len(embedded) != len(points):
            raise VecmigError(f"{self.label}: embedder {self.embedder.name!r} returned {len(embedded)} vectors for {len(points)} texts")
        hash_field = text_hash_field(self.vector)
        if self.target is None:
            out = [Point(p.id, {hash_field: text_hash(t)}, {self.vector: v}) for p, t, v in zip(points, texts, embedded)]
            self.backend.update_vectors(self.source, out, only_if_missing=self.vector)
        else:
            out = [
                Point(p.id, {**p.payload, hash_field: text_hash(t)}, {**renamed(p, self.vectors), self.vector: v})
                for p, t, v in zip(points, texts, embedded)
            ]
            self.backend.upsert(self.target, out, insert_only=True)


def read_vectors(names) -> bool | list[str]:
    """``with_vectors`` for a scan that needs ``names`` (the unnamed vector needs all of them)."""
    names = list(names)
    if not names:
        return False
    return True if "" in names else names


def renamed(point: Point, vectors: dict[str, str]) -> dict[str, Any]:
    return {new: point.vectors[old] for old, new in vectors.items() if old in point.vectors}


def as_list(vector: Any) -> list[float]:
    return vector.tolist() if hasattr(vector, "tolist") else list(vector)


def embed_for_store(embedder, texts: list[str], *, query: bool = False) -> list[list[float] | dict]:
    """``texts`` embedded as documents (or queries) into vectors as Points and searches take them:
    lists of floats, or ``{"indices", "values"}`` from a sparse embedder (``embedder.sparse``)."""
    if getattr(embedder, "sparse", False):
        vectors = embedder.embed_sparse_queries(texts) if query else embedder.embed_sparse_documents(texts)
        return [as_stored(v) for v in vectors]
    return [as_list(v) for v in (embedder.embed_queries(texts) if query else embedder.embed_documents(texts))]


def as_stored(vector: Any) -> list[float] | dict:
    """A vector as a Point carries it: a list of floats, or ``{"indices", "values"}`` for a sparse one
    (given as that dict or as ``(indices, values)`` with those names, e.g. a SparseVector)."""
    if isinstance(vector, dict):
        return {"indices": list(vector["indices"]), "values": list(vector["values"])}
    if hasattr(vector, "indices") and hasattr(vector, "values"):
        return {"indices": list(vector.indices), "values": list(vector.values)}
    return as_list(vector)


# ---------------------------------------------------------------------------------------------------
# running a job with its checkpoint


def scan_fingerprint(job) -> str:
    """What the saved cursor depends on: a checkpoint of another scan is not resumed."""
    return hashlib.sha256(json.dumps(job.scan_key(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_job(
    backend,
    job,
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
    """Run ``job`` through a Pipeline, resuming from and checkpointing to ``state`` under ``checkpoint_key``.

    The checkpoint holds ``{cursor, after_id, done, total, scan}``; it is left in place at the end
    (the runner clears it once the op is journaled done).
    """
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

    if progress is None:
        from vecmig.progress import silent

        progress = silent().progress
    with progress(total, job.label, done=min(done, total)) as bar:
        pipeline = Pipeline(scan, job.process, batch_size=batch_size, workers=workers, queue_depth=queue_depth,
                            max_rate=max_rate, commit=commit, progress=bar)
        stats = pipeline.run(resume)
    echo(f"  {job.label}: {stats.points} points in {stats.seconds:.1f}s ({stats.rate:.0f} points/s)")
    return stats
