"""``verify``: the gate of an online model switch, after the backfill (and ``reconcile``) and before the
cut-over: the target holds what the source holds, embedded from the current texts, and search
through the new vector is good enough. Fails with the measured numbers; journals them when it passes.

Ids and text hashes come from one pass of the comparison engine (``vecmig.datapath.compare``):

* ids (into another collection): the target holds exactly the source's points (those matching
  ``filter``): none missing, none extra (a point the application deleted while the backfill ran
  must not come back);
* text hashes (with ``text``): every target point's ``_vecmig_text_hash_<vector>`` equals the hash
  of the text rendered from the point's *current* source payload. The hash is written together
  with the vector, so a current hash also stands for a vector that is there. Without ``text``,
  each point is checked to have the vector at all.

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

verify only reads: it has nothing to undo. Its measurements are its journaled undo data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vecmig.datapath.compare import Comparison, scan_progress
from vecmig.datapath.points import as_list, point_key
from vecmig.datapath.sample import Reservoir
from vecmig.datapath.text import parse_template
from vecmig.errors import CheckFailed, PlanError, ScriptError
from vecmig.ops.base import NothingToUndo, Op, register, require_collection
from vecmig.ops.checks import check_filter, collection_behind, require_dense, vector_size
from vecmig.ops.files import iter_jsonl
from vecmig.schema import CollectionSpec, SchemaView


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
        with scan_progress(ctx.progress, backend, source, target, self.filter, what) as bar:
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
