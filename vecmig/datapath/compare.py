"""The comparison engine: a source collection against its target (or a vector in place against the
text it should have been embedded from), a page of differences at a time. ``verify`` counts the
differences; ``reconcile`` repairs each page with its job's write rule.

Order of reads, and why it is safe under live writes: the source's ids are read first; then the
target is scrolled page by page, and for each page the same ids are read again from the source.
The Router writes the source before the target on upsert and deletes the target before the source,
so a target point whose source is gone at that second read was deleted (or resurrected by the
backfill): reconcile may delete it. A target point the first read missed but the second finds was
created during the pass and is compared like the others. A point found stale, missing in the
target or extra in it is read again at the end of the pass (the source, then the target), in a few
rounds a little apart (``SETTLE_DELAYS``), and counts only if it still differs: an application
write that has reached the source but not yet the target is not a difference, and a pass that only
saw such writes is clean. What changes after a pass read it is found by the next pass:
reconcile repeats passes until one finds nothing (``max_passes``), because Weaviate has no
conditional write to make a single pass exact, and ``verify`` re-checks right before cut over.
Payload fields the text template does not use are not compared. A reconcile stopped half-way
resumes with a new pass: what it repaired is current by then and is not redone (its checkpoint
keeps the pass count and totals).

Memory: the source's ids (those matching ``filter``) are held in one in-memory set for the pass:
about 65 MB per million integer ids, 125 MB per million UUID ids (CPython, measured). Everything
else streams a page at a time. Beyond tens of millions of points, a merge of the two id-ordered
scrolls would need no set; it is not done yet.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from vecmig.datapath.points import read_vectors
from vecmig.datapath.sample import Reservoir
from vecmig.datapath.text import TextTemplate, text_hash, text_hash_field
from vecmig.schema import Point

#: example ids shown per kind of difference
EXAMPLES = 5
#: seconds waited before each reading again of the points a pass found different: an application
#: write still under way (source written, target not yet) is not a difference
SETTLE_DELAYS = (0.0, 0.05, 0.15, 0.3)
#: more differences than this are read again once only
SETTLE_LIMIT = 10_000


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class Page:
    """What one page of a comparison found: target ids not in the source, current source points whose
    target vector is stale or missing, and source ids missing in the target."""

    extra: list = field(default_factory=list)
    stale: list[Point] = field(default_factory=list)
    missing: list = field(default_factory=list)


@dataclass
class Tally:
    """The counts of one comparison pass, with a few example ids of each kind of difference."""

    source: int = 0
    target: int = 0
    checked: int = 0
    missing: int = 0
    extra: int = 0
    stale: int = 0
    examples: dict[str, list] = field(default_factory=lambda: {"missing": [], "extra": [], "stale": []})

    def add(self, page: Page) -> None:
        for kind, ids in (("extra", page.extra), ("stale", [p.id for p in page.stale]), ("missing", page.missing)):
            setattr(self, kind, getattr(self, kind) + len(ids))
            room = EXAMPLES - len(self.examples[kind])
            self.examples[kind].extend(ids[:room] if room > 0 else [])

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.stale)

    def example(self, kind: str) -> str:
        shown = ", ".join(json.dumps(i) for i in self.examples[kind])
        return f" (e.g. {shown})" if shown else ""


@dataclass
class Comparison:
    """One pass comparing ``target`` with ``source`` (``target`` None: the vector in place), yielding
    the differences it confirms (``settle``) as ``Page``s of at most ``page_size`` points, so that a
    caller can repair a page at a time.

    ``template`` None: the vector's presence is checked instead of its text hash; ``vector`` None
    too: ids only. ``source_vectors`` are read with the current source points the stale ones are
    built from (the vectors reconcile copies along). ``sampler`` is offered every source id.
    """

    backend: Any
    source: str
    target: str | None
    vector: str | None
    template: TextTemplate | None = None
    filter: dict | None = None
    source_vectors: list[str] = field(default_factory=list)
    page_size: int = 256
    sampler: Reservoir | None = None
    on_read: Callable[[int], Any] | None = None
    tally: Tally = field(default_factory=Tally)

    def pages(self) -> Iterator[Page]:
        """The differences of the pass, found by the scan and confirmed at its end (``settle``)."""
        pages = self._in_place() if self.target is None else self._into_target()
        counted: dict = {}  # suspect id -> whether tally.source counts it (it was in the source)
        for page in pages:
            counted.update((p.id, True) for p in page.stale)
            counted.update((i, True) for i in page.missing)
            counted.update((i, False) for i in page.extra)
        for page in self.settle(counted):
            self.tally.add(page)
            yield page

    def settle(self, counted: dict) -> Iterator[Page]:
        """Read the points a pass found different again, until they are in line or ``SETTLE_DELAYS``
        run out; yield those that still differ.

        An application write through the Router lands in the source, then in the target (a delete: in
        the target, then in the source), and a pass reads the two at different moments: it may see a
        point stale, missing or extra while a write is under way, or one that happened between its
        two reads. Such a difference is gone when read again a moment later; one that a backfill left
        behind, or a lost write, is not. Each round reads the source, then the target, waiting a
        little longer each time. ``counted`` (id -> whether ``tally.source`` counts the point) is
        kept up to date as points turn out to be gone from the source, or back in it.
        """
        ids = list(counted)
        for round_, delay in enumerate(SETTLE_DELAYS):
            if not ids:
                return
            if delay:
                time.sleep(delay)
            still: list = []
            # that many differences are not writes under way: read once, not round after round
            last = round_ == len(SETTLE_DELAYS) - 1 or len(ids) > SETTLE_LIMIT
            for chunk in chunks(ids, self.page_size):
                page = self._read_again(chunk, counted)
                if last:
                    yield page
                still.extend(page.extra + [p.id for p in page.stale] + page.missing)
            if last:
                return
            ids = still

    def _read_again(self, ids: list, counted: dict) -> Page:
        """The differences ``ids`` still show: the source read first, then the target."""
        if self.target is None:
            now = self.backend.retrieve(self.source, ids, with_vectors=self._presence_vectors())
            gone = len(ids) - len(now)
            self.tally.source -= gone
            self.tally.target -= gone
            return Page(stale=[p for p in now if not self.is_current(p, p)])
        current = {p.id: p for p in self.backend.retrieve(self.source, ids, with_vectors=read_vectors(self.source_vectors))}
        stored = {p.id: p for p in self.backend.retrieve(self.target, ids, with_vectors=self._presence_vectors())}
        page = Page()
        for i in ids:
            in_source = i in current and (counted[i] or self._selected(i))
            if in_source != counted[i]:  # deleted from the source meanwhile, or (again) written to it
                self.tally.source += 1 if in_source else -1
                counted[i] = in_source
            if not in_source:
                if i in stored:
                    page.extra.append(i)
            elif i not in stored:
                page.missing.append(i)
            elif not self.is_current(stored[i], current[i]):
                page.stale.append(current[i])
        return page

    def is_current(self, stored: Point, current: Point) -> bool:
        """Whether ``stored`` (the target's point) carries the vector of ``current``'s text (the source's point)."""
        if self.vector is None:
            return True
        if self.template is None:
            value = stored.vectors.get(self.vector)
            return value is not None and len(value) > 0
        return stored.payload.get(text_hash_field(self.vector)) == text_hash(self.template.render(current))

    def _scroll(self, collection: str, with_vectors, filter=None) -> Iterator[list[Point]]:
        for page in self.backend.scroll(collection, batch_size=self.page_size, with_vectors=with_vectors, filter=filter):
            if self.on_read is not None:
                self.on_read(len(page))
            yield page

    def _presence_vectors(self) -> list[str] | bool:
        return [self.vector] if self.vector is not None and self.template is None else False

    def _in_place(self) -> Iterator[Page]:
        for page in self._scroll(self.source, self._presence_vectors(), self.filter):
            self.tally.source += len(page)
            self.tally.target += len(page)
            self.tally.checked += len(page)
            for p in page:
                if self.sampler is not None:
                    self.sampler.offer(p.id)
            yield Page(stale=[p for p in page if not self.is_current(p, p)])

    def _into_target(self) -> Iterator[Page]:
        wanted: set = set()
        for ids in self.backend.scan_ids(self.source, self.filter):  # ids only, in the store's large id pages
            if self.on_read is not None:
                self.on_read(len(ids))
            wanted.update(ids)
            if self.sampler is not None:
                for point_id in ids:
                    self.sampler.offer(point_id)
        self.tally.source = len(wanted)
        read_back = read_vectors(self.source_vectors)
        for page in self._scroll(self.target, self._presence_vectors()):
            self.tally.target += len(page)
            # the source read again, after the target page: a point created meanwhile is in the source already
            current = {p.id: p for p in self.backend.retrieve(self.source, [p.id for p in page], with_vectors=read_back)}
            known, extra = [], []
            for p in page:
                if p.id in wanted:
                    wanted.discard(p.id)
                elif p.id in current and self._selected(p.id):  # created in the source after its ids were read
                    self.tally.source += 1
                else:
                    extra.append(p.id)
                    continue
                if p.id in current:
                    known.append(p)
                else:  # deleted from the source since its ids were read
                    self.tally.source -= 1
                    extra.append(p.id)
            stale = [current[p.id] for p in known if not self.is_current(p, current[p.id])]
            self.tally.checked += len(known)
            yield Page(extra=extra, stale=stale)
        # read again before they count as missing (``settle``): some were deleted meanwhile
        yield Page(missing=sorted(wanted, key=lambda i: (isinstance(i, str), i)))

    def _selected(self, point_id) -> bool:
        """Whether a point of the source matches ``filter`` (asked point by point: only for points created during the pass)."""
        if not self.filter:
            return True
        return self.backend.count(self.source, {"must": [self.filter, {"has_id": [point_id]}]}) > 0


def scan_progress(progress, backend, source: str, target: str | None, filter: dict | None, label: str):
    """A progress bar over the points a comparison reads (the source, then the target)."""
    if progress is None:
        from vecmig.progress import silent

        progress = silent().progress
    total = backend.count(source, filter) + (backend.count(target) if target is not None else 0)
    return progress(total, label)
