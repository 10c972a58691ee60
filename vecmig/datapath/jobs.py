"""The data ops' jobs, as data: what to read and how to write each batch.

An op builds a job (pgroll's backfill-as-data): its source, filter and the vectors a scan reads,
and ``process(worker, points)``, the one write rule of its kind. An executor (``vecmig.datapath.executor``)
scans the source and hands batches to ``process``; reconcile's repair calls the same ``process``.
A job holds names and values only — no connection, no model — so it can be sent to another
process; the ``Worker`` it is given there holds the store and the embedders.

Writes never overwrite what the application dual-writes meanwhile: into another collection they
are insert-only, in place a vector is written only where it is missing (``overwrite=True`` is
reconcile's repair of a point it found stale). Each write is idempotent by id, so a batch done
twice (a resume, a retried task) ends the same.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from vecmig.datapath.points import as_list, embed_for_store, has, read_vectors, renamed
from vecmig.datapath.text import template_for, text_hash, text_hash_field
from vecmig.errors import VecmigError
from vecmig.schema import Point


@dataclass
class Worker:
    """What a job's batches are processed with, in the process that runs them: the store, and the
    embedders by name (loaded and checked against the vectors they fill before a job starts)."""

    backend: Any
    embedders: dict[str, Any] = field(default_factory=dict)
    #: what jobs count besides points (e.g. "skipped"), summed over every batch
    counts: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, what: str, n: int) -> None:
        with self._lock:
            self.counts[what] += n


@dataclass
class CopyJob:
    """Points of ``source`` into ``target``: payload as is, vectors picked and renamed by ``vectors``
    ({old: new}). ``overwrite=False`` writes insert-only: a point that exists in the target (written by
    the application meanwhile) is kept."""

    source: str
    target: str
    vectors: dict[str, str] = field(default_factory=dict)
    filter: dict | None = None
    overwrite: bool = False
    #: insert-only with no window at all (no reconcile follows a copy): the application dual-writes the target
    exact: bool = False

    @property
    def label(self) -> str:
        return f"copy {self.source} -> {self.target}"

    def with_vectors(self) -> bool | list[str]:
        return read_vectors(self.vectors)

    def scan_key(self) -> dict:
        return {"job": "copy", "source": self.source, "target": self.target, "vectors": self.vectors, "filter": self.filter}

    def process(self, worker: Worker, points: list[Point]) -> None:
        out = [Point(p.id, dict(p.payload), renamed(p, self.vectors)) for p in points]
        worker.backend.upsert(self.target, out, insert_only=not self.overwrite, exact=self.exact)


@dataclass
class BackfillJob:
    """Embed each point's rendered ``text`` with the embedder ``embedder`` into ``vector``: in place
    (``target`` None: a named vector of the source, written only where it is missing) or into
    ``target`` (insert-only, with the payload and the ``vectors`` {old: new} copied along). The
    text's hash goes with the vector."""

    source: str
    vector: str
    embedder: str
    text: str
    target: str | None = None
    vectors: dict[str, str] = field(default_factory=dict)
    filter: dict | None = None

    @property
    def label(self) -> str:
        return f"backfill {self.source}.{self.vector}" if self.target is None else f"backfill {self.source} -> {self.target}.{self.vector}"

    @property
    def template(self):
        return template_for(self.text)

    def with_vectors(self) -> bool | list[str]:
        # in place the target vector is read too: points that have it already are skipped unembedded
        return read_vectors([self.vector] if self.target is None else self.vectors)

    def scan_key(self) -> dict:
        return {"job": "backfill", "source": self.source, "target": self.target, "vector": self.vector,
                "vectors": self.vectors, "filter": self.filter}

    def process(self, worker: Worker, points: list[Point], *, overwrite: bool = False) -> None:
        """Render, embed, write. ``overwrite``: the points are stale (reconcile): their vector is
        replaced, and into a target their payload merged, whatever is stored."""
        if self.target is None and not overwrite:
            points = [p for p in points if not p.vectors.get(self.vector)]
        if not points:
            return
        texts = [self.template.render(p) for p in points]
        embedder = worker.embedders[self.embedder]
        embedded = embed_for_store(embedder, texts)
        if len(embedded) != len(points):
            raise VecmigError(f"{self.label}: embedder {self.embedder!r} returned {len(embedded)} vectors for {len(points)} texts")
        hash_field = text_hash_field(self.vector)
        if self.target is None:
            out = [Point(p.id, {hash_field: text_hash(t)}, {self.vector: v}) for p, t, v in zip(points, texts, embedded)]
            worker.backend.update_vectors(self.source, out, only_if_missing=None if overwrite else self.vector)
            return
        out = [Point(p.id, {**p.payload, hash_field: text_hash(t)}, {**renamed(p, self.vectors), self.vector: v})
               for p, t, v in zip(points, texts, embedded)]
        if overwrite:  # the payload of the source merged in, the vector replaced: no conditional write can help here
            worker.backend.update_vectors(self.target, out)
        else:
            worker.backend.upsert(self.target, out, insert_only=True)


@dataclass
class TransformJob:
    """``to_vector`` = ``transform(from_vector)`` for each point: in place (``target`` None: only where
    ``to_vector`` is missing) or into ``target`` (insert-only, payload copied). The text hash of the
    old vector goes with the new one. Points without ``from_vector`` are counted as "skipped"."""

    source: str
    from_vector: str
    to_vector: str
    transform: Callable[[Any], Any]
    target: str | None = None
    filter: dict | None = None
    #: what the checkpoint depends on besides the scan: the method and the map's sha256
    method: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        into = f"{self.source}.{self.to_vector}" if self.target is None else f"{self.target}.{self.to_vector}"
        return f"transform_vectors {self.source}.{self.from_vector} -> {into}"

    def with_vectors(self) -> bool | list[str]:
        return read_vectors([self.from_vector, self.to_vector] if self.target is None else [self.from_vector])

    def scan_key(self) -> dict:
        return {"job": "transform_vectors", "source": self.source, "target": self.target, "from": self.from_vector,
                "to": self.to_vector, "filter": self.filter, **self.method}

    def process(self, worker: Worker, points: list[Point]) -> None:
        import numpy as np

        if self.target is None:
            points = [p for p in points if not has(p, self.to_vector)]
        usable = [p for p in points if has(p, self.from_vector)]
        if len(usable) < len(points):
            worker.count("skipped", len(points) - len(usable))
        if not usable:
            return
        derived = self.transform(np.asarray([p.vectors[self.from_vector] for p in usable], dtype=np.float32))
        old_hash, new_hash = text_hash_field(self.from_vector), text_hash_field(self.to_vector)
        hashes = [{new_hash: p.payload[old_hash]} if old_hash in p.payload else {} for p in usable]
        if self.target is None:
            out = [Point(p.id, h, {self.to_vector: as_list(v)}) for p, h, v in zip(usable, hashes, derived)]
            worker.backend.update_vectors(self.source, out, only_if_missing=self.to_vector)
        else:
            out = [Point(p.id, {**p.payload, **h}, {self.to_vector: as_list(v)}) for p, h, v in zip(usable, hashes, derived)]
            worker.backend.upsert(self.target, out, insert_only=True)
