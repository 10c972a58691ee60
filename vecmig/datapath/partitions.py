"""Partition plans: a source split into id ranges that are scanned side by side, each with its own cursor.

A plan is made once per op run, from ids sampled in the source (``Backend.sample_ids``), sorted in
the order scans yield points (``points.order_key``): partition k holds the ids from split k-1
(inclusive) up to split k (exclusive), the first and last open-ended. The plan is stored with the
op's checkpoint and every resume reuses it, whatever the partition or worker count says then — a
plan made again would cut the ranges elsewhere, and a partition's saved cursor would no longer
mark what it has done. A point inserted behind a cursor during the run is caught by ``reconcile``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from vecmig.datapath.points import order_key

#: fewer points than this per partition are not worth a cursor of their own (``partitions: auto``)
MIN_PER_PARTITION = 10_000
#: ids sampled per partition to place its bounds
SAMPLE_PER_PARTITION = 64


def how_many(requested: int | str | None, points: int, parallelism: int) -> int:
    """The number of partitions: ``requested`` (an int, or "auto": one per unit of the executor's
    parallelism, with at least ``MIN_PER_PARTITION`` points each), never more than there are points."""
    if requested in (None, "auto"):
        wanted = min(parallelism, points // MIN_PER_PARTITION)
    else:
        wanted = int(requested)
    return max(1, min(wanted, points))


@dataclass
class PartitionPlan:
    """Where the partitions of one op's scan begin and end, and which collection was split."""

    #: the collection the ids were sampled from (behind the alias the op names)
    collection: str
    #: the first id of partitions 1..n-1, in scan order
    splits: list

    @property
    def count(self) -> int:
        return len(self.splits) + 1

    def bounds(self, k: int) -> tuple[Any, Any]:
        """(first id, id after the last) of partition ``k``; None where it is open."""
        lo = self.splits[k - 1] if k > 0 else None
        hi = self.splits[k] if k < len(self.splits) else None
        return lo, hi

    def to_doc(self) -> dict:
        return {"collection": self.collection, "splits": list(self.splits)}

    @classmethod
    def from_doc(cls, doc: dict) -> "PartitionPlan":
        return cls(doc["collection"], list(doc["splits"]))


def make_plan(backend, source: str, collection: str, filter: dict | None, partitions: int) -> PartitionPlan:
    """Split ``source`` (standing for ``collection``) into about ``partitions`` ranges of equal size."""
    if partitions <= 1:
        return PartitionPlan(collection, [])
    sample = sorted(set(backend.sample_ids(source, partitions * SAMPLE_PER_PARTITION, filter)), key=order_key)
    splits = []
    for k in range(1, partitions):
        split = sample[len(sample) * k // partitions] if sample else None
        if split is not None and split != sample[0] and (not splits or split != splits[-1]):
            splits.append(split)
    return PartitionPlan(collection, splits)


def scan_range(backend, source: str, lo, hi, cursor, **scroll) -> Iterator[tuple[list, Any]]:
    """``backend.scroll_pages`` of the ids from ``lo`` (inclusive) to ``hi`` (exclusive), from ``cursor``
    (a saved one) or else from ``lo``; a page that reaches ``hi`` is cut there and ends the scan."""
    if cursor is None and lo is not None:
        cursor = backend.cursor_from(lo)
    stop = order_key(hi) if hi is not None else None
    for page, after in backend.scroll_pages(source, cursor=cursor, **scroll):
        if stop is None:
            yield page, after
            continue
        inside = [p for p in page if order_key(p.id) < stop]
        at = backend.cursor_id(after)  # where the scan goes on: past the range, it is done
        if len(inside) < len(page) or (at is not None and order_key(at) >= stop):
            yield inside, {"end": True}
            return
        yield page, after
