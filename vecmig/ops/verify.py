"""The gates of an online model switch, after the backfill and before the cut-over:
``reconcile`` brings the target in line with writes the backfill could not see, and ``verify``
checks that it is, and that search through the new vector is good enough.

Both compare a source with its target in one pass (``Comparison``):

* ids (into another collection): the target holds exactly the source's points (those matching
  ``filter``): none missing, none extra (a point the application deleted while the backfill ran
  must not come back);
* text hashes (with ``text``): every target point's ``_vecmig_text_hash_<vector>`` equals the hash
  of the text rendered from the point's *current* source payload. The hash is written together
  with the vector, so a current hash also stands for a vector that is there. Without ``text``,
  each point is checked to have the vector at all.

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

Search quality (``verify``):

* overlap@k: for each query, the ids the old vector returns (``old_vector`` of the source, queried
  with ``old_embedder``) against those the new one returns (``vector``, queried with ``embedder``);
  |old ∩ new| / k, averaged. Queries are explicit (``queries``) or rendered with the ``query``
  template (default ``text``) from the payload of ``sample`` source points drawn uniformly with a
  fixed seed. Without ``old_embedder`` a sampled point queries the old vector with its own stored
  old vector ("query by example"), so overlap needs no old model at hand. A sampled point is left
  out of both of its lists: it is its own nearest neighbour in both spaces, and counting it would
  add 1/k to every score whatever the models.
* recall@k on a golden set (``golden``: ``[{query, relevant: [ids]}]``, inline or a JSONL file next
  to the revision): |top-k ∩ relevant| / min(k, |relevant|), averaged over the queries.

Neither op changes the schema, so neither has anything to undo: verify only reads, and what
reconcile writes belongs to the target, which the target's own reverse (``drop_collection``, or
``drop_vector`` in place) takes away. Their measurements are their journaled undo data.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from vecmig.errors import PlanError, ScriptError, VecmigError
from vecmig.ops.files import iter_jsonl
from vecmig.ops.base import Op, register, require_collection
from vecmig.ops.data import Backfill, NothingToUndo, check_filter, collection_behind, names
from vecmig.pipeline import BackfillJob, TemplateError, TextTemplate, as_list, embed_for_store, read_vectors, renamed, text_hash, text_hash_field
from vecmig.schema import CollectionSpec, Point, SchemaView

#: example ids shown per kind of difference
EXAMPLES = 5
#: samples are drawn with a fixed seed: the same data gives the same sample, run after run
SEED = 0
#: seconds waited before each reading again of the points a pass found different: an application
#: write still under way (source written, target not yet) is not a difference
SETTLE_DELAYS = (0.0, 0.05, 0.15, 0.3)
#: more differences than this are read again once only
SETTLE_LIMIT = 10_000


class CheckFailed(VecmigError):
    """A gate found the data not ready: the message gives the measured numbers and which check failed."""


def point_key(value: Any) -> int | str:
    """An id as it compares across stores and files: integers as ints, UUIDs in canonical lower case."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text


def require_dense(coll: CollectionSpec, vector: str, what: str, *, role: str = "vector") -> None:
    """``coll`` has a dense, single vector named ``vector``."""
    if vector in coll.sparse_vectors:
        raise PlanError(f"{what}: {role} {vector!r} of {coll.name!r} is sparse: only dense vectors can be compared or derived")
    spec = coll.vectors.get(vector)
    if spec is None:
        raise PlanError(f"{what}: collection {coll.name!r} has no vector {vector!r} (it has {names(coll)})")
    if spec.multivector:
        raise PlanError(f"{what}: {role} {vector!r} of {coll.name!r} is a multivector: one vector per point is needed")


def vector_size(view: SchemaView | None, collection: str | None, vector: str | None) -> int | str | None:
    """The size of ``collection.vector`` as ``view`` has it (SPARSE for a sparse vector), None when unknown."""
    return view.filled_size(collection, vector) if view is not None else None


def parse_template(source: str | None, what: str) -> TextTemplate | None:
    """A TextTemplate, or None; a template jinja2 can't parse is a PlanError."""
    if not source:
        return None
    try:
        return TextTemplate(source)
    except TemplateError as e:
        raise PlanError(f"{what}: {e}") from None


class Reservoir:
    """A uniform sample of ``size`` items from a stream of unknown length (Algorithm R), seeded."""

    def __init__(self, size: int, seed: int = SEED):
        self.size, self.items, self.seen = size, [], 0
        self._random = random.Random(seed)

    def offer(self, item: Any) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
            return
        slot = self._random.randrange(self.seen)
        if slot < self.size:
            self.items[slot] = item


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------------------------------
# comparing a source with its target


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
        for page in self._scroll(self.source, False, self.filter):
            for p in page:
                wanted.add(p.id)
                if self.sampler is not None:
                    self.sampler.offer(p.id)
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


def _scan_progress(ctx, backend, source: str, target: str | None, filter: dict | None, label: str):
    """A progress bar over the points a comparison reads (the source, then the target)."""
    from vecmig.progress import silent

    total = backend.count(source, filter) + (backend.count(target) if target is not None else 0)
    return (ctx.progress or silent().progress)(total, label)


# ---------------------------------------------------------------------------------------------------
# verify


def load_golden(op: Op, golden: list[dict] | str, what: str) -> list[tuple[str, set]]:
    """``golden`` as [(query, {relevant ids})]: inline, or a JSONL file next to the revision."""
    if not isinstance(golden, str):
        return [(g["query"], {point_key(i) for i in g["relevant"]}) for g in golden]
    path = (op.source_dir or Path.cwd()) / golden
    if not path.is_file():
        raise PlanError(f"{what}: golden file {golden!r} not found next to the revision ({path.parent})")
    out = []
    for lineno, row in iter_jsonl(path):
        query = row.get("query") if isinstance(row, dict) else None
        relevant = row.get("relevant") if isinstance(row, dict) else None
        if not isinstance(query, str) or not query.strip() or not isinstance(relevant, list) or not relevant:
            raise ScriptError(f'{path}:{lineno}: each line must be {{"query": "...", "relevant": [ids]}} with a query and at least one id')
        out.append((query, {point_key(i) for i in relevant}))
    if not out:
        raise ScriptError(f"{path}: no golden queries in the file")
    return out


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@register("verify")
@dataclass
class Verify(Op):
    """The gate before cut over: ids, text hashes and search quality of ``target`` (or of ``vector``
    in place) against ``source``. Fails with the measured numbers; journals them when it passes."""

    source: str = ""
    target: str | None = None
    vector: str | None = None
    embedder: str | None = None
    text: str | None = None
    filter: dict | None = None
    old_vector: str | None = None
    old_embedder: str | None = None
    query: str | None = None
    queries: list[str] | None = None
    sample: int = 50
    k: int = 10
    min_overlap: float | None = None
    golden: list[dict] | str | None = None
    min_recall: float | None = None

    def what(self) -> str:
        where = f"{self.source} -> {self.target}" if self.target is not None else self.source
        return f"verify {where}.{self.vector}" if self.vector is not None else f"verify {where}"

    def validate(self, view: SchemaView, backend) -> None:
        what = self.what()
        src = require_collection(view, self.source, what)
        dst = src
        if self.target is not None:
            dst = require_collection(view, self.target, what)
            if dst.name == src.name:
                raise PlanError(f"{what}: the target is the source collection {src.name!r}: leave `target` out to verify a vector in place")
        elif self.vector is None:
            raise PlanError(f"{what}: in place (no `target`) verify checks a vector of the source: name it with `vector`")
        if self.vector is not None:
            if self.vector not in dst.sparse_vectors or self.old_vector is not None or self.golden is not None:
                require_dense(dst, self.vector, what)  # a sparse vector: text hashes and presence only
            declared = (dst.vectors.get(self.vector) or dst.sparse_vectors[self.vector]).embedder
            if declared and self.embedder and declared != self.embedder:
                raise PlanError(f"{what}: {dst.name}.{self.vector} was declared with embedder {declared!r}, not {self.embedder!r}")
        elif self.text or self.old_vector or self.golden:
            raise PlanError(f"{what}: text hashes and search quality are checked on a vector: name it with `vector`")
        parse_template(self.text, what)
        parse_template(self.query, what)
        self._validate_quality(src, what)
        check_filter(backend, self.filter, what)

    def _validate_quality(self, src: CollectionSpec, what: str) -> None:
        if self.old_embedder and not self.old_vector:
            raise PlanError(f"{what}: `old_embedder` queries the source's old vector: name it with `old_vector`")
        if self.old_vector is not None:
            require_dense(src, self.old_vector, what, role="old_vector")
            if not self.embedder:
                raise PlanError(f"{what}: overlap@k searches the new vector too: name the embedder of {self.vector!r} with `embedder`")
            if self.queries and not self.old_embedder:
                raise PlanError(f"{what}: explicit `queries` need `old_embedder` to search {self.old_vector!r}; without it, leave `queries` out and sampled points query by their own old vector")
            if not self.queries and not (self.query or self.text):
                raise PlanError(f"{what}: overlap@k needs query texts: `queries`, or a `query` (or `text`) template over the payload of sampled points")
        elif self.queries or self.query:
            raise PlanError(f"{what}: `queries`/`query` are for overlap@k, which compares with the old vector: name it with `old_vector`")
        if self.min_overlap is not None and self.old_vector is None:
            raise PlanError(f"{what}: `min_overlap` needs overlap@k: name the source's old vector with `old_vector`")
        if self.golden is not None:
            if not self.embedder:
                raise PlanError(f"{what}: golden queries search {self.vector!r}: name its embedder with `embedder`")
            load_golden(self, self.golden, what)
        if self.min_recall is not None and self.golden is None:
            raise PlanError(f"{what}: `min_recall` is measured on golden queries: give them with `golden`")

    def embedder_names(self, view: SchemaView | None = None) -> dict[str, int | str | None]:
        out: dict[str, int | str | None] = {}
        if self.old_embedder:
            out[self.old_embedder] = vector_size(view, self.source, self.old_vector)
        if self.embedder:
            out[self.embedder] = vector_size(view, self.target or self.source, self.vector)
        return out

    def apply(self, ctx):
        what = self.what()
        backend = ctx.backend
        source = collection_behind(backend, self.source)
        target = collection_behind(backend, self.target) if self.target is not None else None
        by_sample = self.old_vector is not None and not self.queries
        comparison = Comparison(backend, source, target, self.vector, parse_template(self.text, what), self.filter,
                                page_size=backend.scan_page_size, sampler=Reservoir(self.sample) if by_sample else None)
        with _scan_progress(ctx, backend, source, target, self.filter, what) as bar:
            comparison.on_read = bar.update
            for _ in comparison.pages():
                pass
        tally = comparison.tally
        result: dict[str, Any] = {"source_points": tally.source}
        lines = [f"points: source {tally.source}" + (f", target {tally.target}" if target is not None else "")]
        failures = []
        if target is not None:
            result.update(target_points=tally.target, missing=tally.missing, extra=tally.extra)
            lines.append(f"ids: {tally.missing} missing in the target{tally.example('missing')}, {tally.extra} not in the source{tally.example('extra')}")
            if tally.missing or tally.extra:
                failures.append(f"ids differ: {tally.missing} source points missing in the target{tally.example('missing')}, "
                                f"{tally.extra} target points not in the source{tally.example('extra')}")
        if self.vector is not None:
            kind = "text hashes" if self.text else "vectors present"
            result["stale"] = tally.stale
            lines.append(f"{kind}: {tally.checked} checked, {tally.stale} stale{tally.example('stale')}")
            if tally.stale:
                why = "no vector, or embedded from a text that has changed since" if self.text else f"no vector {self.vector!r}"
                failures.append(f"{tally.stale} points are stale ({why}){tally.example('stale')}")
        if failures:
            failures[-1] += ": run reconcile"
        if self.old_vector is not None:
            overlap, count, how = self.measure_overlap(ctx, source, target, comparison.sampler)
            result.update(k=self.k, overlap=overlap, overlap_queries=count)
            shown = "n/a" if overlap is None else f"{overlap:.3f}"
            lines.append(f"overlap@{self.k} {self.old_vector} vs {self.vector}: {shown} over {count} {how}")
            if self.min_overlap is not None and (overlap is None or overlap < self.min_overlap):
                failures.append(f"overlap@{self.k} {shown} < min_overlap {self.min_overlap} ({count} {how})")
        if self.golden is not None:
            recall, old_recall, count = self.measure_recall(ctx, source, target)
            result.update(k=self.k, recall=recall, recall_queries=count)
            line = f"recall@{self.k} on {count} golden queries: {recall:.3f}"
            if old_recall is not None:
                result["old_recall"] = old_recall
                line += f" (old vector {self.old_vector!r}: {old_recall:.3f})"
            lines.append(line)
            if self.min_recall is not None and recall < self.min_recall:
                failures.append(f"recall@{self.k} {recall:.3f} < min_recall {self.min_recall} ({count} golden queries)")
        result["examples"] = {k: v for k, v in tally.examples.items() if v}
        ctx.echo(f"  {what}:")
        for line in lines:
            ctx.echo(f"    {line}")
        if failures:
            raise CheckFailed(f"{what} failed: " + "; ".join(failures))
        return result

    def measure_overlap(self, ctx, source: str, target: str | None, sampler: Reservoir | None) -> tuple[float | None, int, str]:
        """overlap@k of old and new search results: (mean overlap, queries, what the queries were)."""
        from vecmig.embed import load_embedder

        new = load_embedder(self.embedder, ctx.config)
        old = load_embedder(self.old_embedder, ctx.config) if self.old_embedder else None
        backend = ctx.backend
        if self.queries:
            texts, how = list(self.queries), "queries"
        else:
            wanted = [] if old is not None else [self.old_vector]
            points = backend.retrieve(source, sampler.items, with_vectors=wanted or False) if sampler.items else []
            if old is None:
                points = [p for p in points if p.vectors.get(self.old_vector) is not None]
            template = parse_template(self.query or self.text, self.what())
            texts = [template.render(p) for p in points]
            how = "sampled points" + ("" if old is not None else " queried by example")
        if not texts:
            return None, 0, how
        old_queries = old.embed_queries(texts) if old is not None else [p.vectors[self.old_vector] for p in points]
        new_queries = new.embed_queries(texts)
        new_filter = None if target is not None else self.filter
        # a sampled point is its own nearest neighbour in both spaces: it is left out of both lists
        selves = [None] * len(texts) if self.queries else [point_key(p.id) for p in points]
        limit = self.k if self.queries else self.k + 1

        def top(collection, vector, query, flt, self_id):
            hits = [point_key(h[0]) for h in backend.search(collection, vector, as_list(query), limit=limit, filter=flt)]
            return [i for i in hits if i != self_id][: self.k]

        scores = []
        for self_id, old_q, new_q in zip(selves, old_queries, new_queries):
            before = top(source, self.old_vector, old_q, self.filter, self_id)
            after = top(target or source, self.vector, new_q, new_filter, self_id)
            if before:
                scores.append(len(set(before) & set(after)) / min(self.k, len(before)))
        return mean(scores), len(scores), how

    def measure_recall(self, ctx, source: str, target: str | None) -> tuple[float, float | None, int]:
        """recall@k of the new vector on the golden queries, and of the old one when it can be queried."""
        from vecmig.embed import load_embedder

        golden = load_golden(self, self.golden, self.what())
        texts = [q for q, _ in golden]
        searches = [(target or source, self.vector, load_embedder(self.embedder, ctx.config), None if target else self.filter)]
        if self.old_vector is not None and self.old_embedder:
            searches.append((source, self.old_vector, load_embedder(self.old_embedder, ctx.config), self.filter))
        recalls = []
        for collection, vector, embedder, flt in searches:
            scores = []
            for (_, relevant), q in zip(golden, embedder.embed_queries(texts)):
                found = {point_key(h[0]) for h in ctx.backend.search(collection, vector, as_list(q), limit=self.k, filter=flt)}
                scores.append(len(found & relevant) / min(self.k, len(relevant)))
            recalls.append(mean(scores))
        return recalls[0], (recalls[1] if len(recalls) > 1 else None), len(golden)

    def data_files(self):
        return [self.golden] if isinstance(self.golden, str) else []

    def reverse(self, undo):
        return NothingToUndo(undoes=self.what(), reason="verify only reads")


# ---------------------------------------------------------------------------------------------------
# reconcile


@register("reconcile")
@dataclass
class Reconcile(Backfill):
    """Bring the target of a backfill in line with its source after live writes: delete target points
    the source no longer has, re-embed points whose text changed, add the points that are missing;
    pass after pass until one finds nothing. Takes the backfill's parameters and checks them alike."""

    max_passes: int = 3

    def what(self) -> str:
        if self.target is None:
            return f"reconcile {self.source}.{self.vector}"
        return f"reconcile {self.source} -> {self.target}.{self.vector}"

    def apply(self, ctx):
        what = self.what()
        backend = ctx.backend
        embedder = self.live_embedder(ctx)
        source = collection_behind(backend, self.source)
        target = collection_behind(backend, self.target) if self.target is not None else None
        template = TextTemplate(self.text)
        saved = (ctx.state.get_checkpoint(ctx.checkpoint_key) if ctx.state is not None else None) or {}
        totals = {k: int(saved.get(k) or 0) for k in ("deleted", "reembedded", "added")}
        passes = int(saved.get("passes") or 0)
        if saved:
            ctx.echo(f"  {what}: resuming after pass {passes}")
        for _ in range(self.max_passes):
            passes += 1
            comparison = Comparison(backend, source, target, self.vector, template, self.filter,
                                    source_vectors=list(self.copied_vectors()), page_size=max(self.batch_size, backend.scan_page_size))
            with _scan_progress(ctx, backend, source, target, self.filter, f"{what} (pass {passes})") as bar:
                comparison.on_read = bar.update
                for page in comparison.pages():
                    self.repair(backend, source, target, page, embedder, template)
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

    def repair(self, backend, source: str, target: str | None, page: Page, embedder, template) -> None:
        if page.extra:
            backend.delete(target, page.extra)
        if page.stale:
            texts = [template.render(p) for p in page.stale]
            vectors = embed_for_store(embedder, texts)
            hash_field, copied = text_hash_field(self.vector), self.copied_vectors()
            if target is None:
                out = [Point(p.id, {hash_field: text_hash(t)}, {self.vector: v}) for p, t, v in zip(page.stale, texts, vectors)]
            else:  # the payload of the source merged in, the vector overwritten: no conditional write can help here
                out = [Point(p.id, {**p.payload, hash_field: text_hash(t)}, {**renamed(p, copied), self.vector: v})
                       for p, t, v in zip(page.stale, texts, vectors)]
            backend.update_vectors(target or source, out)
        if page.missing:  # as the backfill writes them: insert-only, a point the application wrote meanwhile wins
            points = backend.retrieve(source, page.missing, with_vectors=read_vectors(self.copied_vectors().keys()))
            if points:
                BackfillJob(backend, source, self.vector, embedder, template, target, self.copied_vectors()).process(points)

    def reverse(self, undo):
        if self.target is None:
            reason = f"what it wrote goes with {self.source}.{self.vector} itself (drop_vector)"
        else:
            reason = f"what it wrote goes with {self.target!r} (drop_collection)"
        return NothingToUndo(undoes=self.what(), reason=reason)


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
