"""The example projects in examples/ run end to end, and the store shows what each guide promises.

Each test copies an example to a temp folder, points it at a store with VECMIG_URL (embedded Qdrant
in the temp folder, or the shared Weaviate test server), drives the installed `vecmig` through
`upgrade head`, a one-step `downgrade` and `upgrade head` again, and checks the store through the
backend: where the alias points, which vectors every point has and of what size, that the counts
match, that search through each vector finds a point by its own text, and that the old data is
untouched by the way back.

The Weaviate examples use fixed collection names (ECommerceProducts, as in the tutorial), so each
Weaviate test drops them before and after, and keeps its state in a collection of its own.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import Project

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: every name the Weaviate examples create, aliases first (Weaviate keeps an alias whose collection is gone)
WEAVIATE_ALIASES = ("ECommerceProduction",)
WEAVIATE_COLLECTIONS = ("ECommerce_v2", "ECommerceProducts")


class Example(Project):
    """An example project copied to a temp folder, run against the store at ``url``."""

    def __init__(self, name: str, root: Path, url: str, state_collection: str | None = None):
        shutil.copytree(EXAMPLES / name, root, ignore=shutil.ignore_patterns(".vecmig", "__pycache__"))
        self.root, self.url = root, url
        if state_collection:
            ini = root / "vecmig.ini"
            text = ini.read_text(encoding="utf-8")
            assert "\n[vecmig]\n" in text
            ini.write_text(text.replace("\n[vecmig]\n", f"\n[vecmig]\nstate_collection = {state_collection}\n", 1), encoding="utf-8")

    def run(self, *args, check: bool = True, timeout: float = 300, **env):
        return super().run(*args, check=check, timeout=timeout, VECMIG_URL=self.url, **env)

    def config(self):
        from vecmig.config import Config

        return Config.load(self.root / "vecmig.ini", url=self.url)

    def store(self):
        from vecmig.command import open_store

        return open_store(self.config())

    def embed(self, embedder: str, texts: list[str]) -> list[list[float]]:
        from vecmig.embed import load_embedder

        return [v.tolist() for v in load_embedder(embedder, self.config()).embed_queries(texts)]


def points_of(backend, collection: str) -> dict:
    """id -> (payload, {vector name: np.array}) of every point."""
    return {p.id: (p.payload, {k: np.asarray(v, dtype=np.float32) for k, v in p.vectors.items()})
            for page in backend.scroll(collection, batch_size=256, with_vectors=True) for p in page}


def same_points(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key, (payload, vectors) in a.items():
        other_payload, other_vectors = b[key]
        if payload != other_payload or vectors.keys() != other_vectors.keys():
            return False
        if not all(np.allclose(v, other_vectors[n], atol=1e-6) for n, v in vectors.items()):
            return False
    return True


def vector_sizes(points: dict) -> set[tuple[str, int]]:
    """{(vector name, size)} over all points; a point missing a vector shows as a smaller set per point."""
    return {(name, len(v)) for _, vectors in points.values() for name, v in vectors.items()}


def finds_itself(example: Example, backend, collection: str, vector: str, embedder: str, points: dict, ids, text) -> None:
    """Searching ``vector`` with ``embedder``'s embedding of a point's own text finds that point first."""
    queries = example.embed(embedder, [text(points[i][0]) for i in ids])
    for i, query in zip(ids, queries):
        hits = backend.search(collection, vector, query, limit=5)
        assert hits and hits[0][0] == i, f"{collection}.{vector}: {i} searched by its own text found {[h[0] for h in hits]}"
        assert hits[0][1] > 0.99  # cosine similarity of a text with itself


def product_text(payload: dict) -> str:
    return f"{payload['name']}. {payload['description']}"


def question_text(payload: dict) -> str:
    return f"{payload['category']}: {payload['question']} {payload['answer']}"


# -- stores ---------------------------------------------------------------------------------------

def drop_weaviate_names(url: str, state_collection: str | None = None) -> None:
    from vecmig.backends import connect
    from vecmig.config import Config

    backend = connect(Config(url=url))
    try:
        aliases = backend.list_aliases()
        for alias in WEAVIATE_ALIASES:
            if alias in aliases:
                backend.drop_alias(alias)
        existing = set(backend.list_collections())
        for name in (*WEAVIATE_COLLECTIONS, *([state_collection] if state_collection else [])):
            if name in existing:
                backend.drop_collection(name)
    finally:
        backend.close()


@pytest.fixture(params=[pytest.param("weaviate", marks=pytest.mark.weaviate), "qdrant-local"])
def store_url(request, tmp_path):
    """The Weaviate examples run on the real Weaviate server and, unchanged, on embedded Qdrant.
    Yields (url, state collection or None)."""
    if request.param == "qdrant-local":
        yield f"qdrant+local://{tmp_path / 'store'}", None
        return
    url = request.getfixturevalue("weaviate_url")
    state = f"VecmigStateExamples{uuid.uuid4().hex[:8]}"
    drop_weaviate_names(url)
    try:
        yield url, state
    finally:
        drop_weaviate_names(url, state)


# -- Weaviate: switching vectorizers, Method A (collection aliases) ------------------------------

def test_weaviate_switching_vectorizers_method_a_cuts_the_alias_over_and_back(store_url, tmp_path):
    url, state = store_url
    ex = Example("weaviate-switching-vectorizers", tmp_path / "proj", url, state)
    ex.run("upgrade", "head")

    with ex.store() as (backend, _):
        assert backend.list_aliases()["ECommerceProduction"] == "ECommerce_v2"
        old, new = points_of(backend, "ECommerceProducts"), points_of(backend, "ECommerce_v2")
        assert len(old) == len(new) == 50 == backend.count("ECommerceProduction")
        assert vector_sizes(old) == {("original_vector", 32)} and all(len(v) == 1 for _, v in old.values())
        assert vector_sizes(new) == {("new_vector", 64)} and all(len(v) == 1 for _, v in new.values())
        for i, (payload, _) in old.items():  # the properties came along (an alias swap alone moves no data)
            assert {k: new[i][0][k] for k in ("name", "description", "category", "price", "brand")} == \
                   {k: payload[k] for k in ("name", "description", "category", "price", "brand")}
        # queries through the alias now search the new collection with the new model
        finds_itself(ex, backend, "ECommerceProduction", "new_vector", "new_model", new, [1, 17, 50], product_text)
    ex.run("check")

    ex.run("downgrade", "-1", "--yes")
    with ex.store() as (backend, _):
        assert backend.list_aliases()["ECommerceProduction"] == "ECommerceProducts"
        assert "ECommerce_v2" not in backend.list_collections()
        assert same_points(points_of(backend, "ECommerceProducts"), old)  # the old collection is untouched
        finds_itself(ex, backend, "ECommerceProduction", "original_vector", "old_model", old, [1, 17, 50], product_text)

    ex.run("upgrade", "head")
    with ex.store() as (backend, _):
        assert backend.list_aliases()["ECommerceProduction"] == "ECommerce_v2"
        assert backend.count("ECommerce_v2") == 50
        assert same_points(points_of(backend, "ECommerceProducts"), old)
    assert "(current)" in ex.run("history", "-i").stdout.splitlines()[0]


# -- Weaviate: switching vectorizers, Method B (a new named vector) ------------------------------

def test_weaviate_add_named_vector_method_b_fills_the_new_vector_in_place(store_url, tmp_path):
    url, state = store_url
    ex = Example("weaviate-add-named-vector", tmp_path / "proj", url, state)
    ex.run("upgrade", "53f41f4f0060")  # the catalogue, with the old model's vectors only
    with ex.store() as (backend, _):
        before = points_of(backend, "ECommerceProducts")
    assert len(before) == 50 and vector_sizes(before) == {("original_vector", 32)}

    ex.run("upgrade", "head")
    with ex.store() as (backend, _):
        after = points_of(backend, "ECommerceProducts")
        assert len(after) == 50 == backend.count("ECommerceProducts")
        assert all(set(v) == {"original_vector", "new_vector"} for _, v in after.values())  # every object
        assert vector_sizes(after) == {("original_vector", 32), ("new_vector", 64)}
        for i, (payload, vectors) in before.items():  # the old vector and the properties stay as they were
            assert np.allclose(after[i][1]["original_vector"], vectors["original_vector"], atol=1e-6)
            assert {k: v for k, v in after[i][0].items() if not k.startswith("_vecmig_")} == \
                   {k: v for k, v in payload.items() if not k.startswith("_vecmig_")}
        # both vectors answer queries side by side: target_vector original_vector vs new_vector
        finds_itself(ex, backend, "ECommerceProducts", "original_vector", "old_model", after, [2, 25, 49], product_text)
        finds_itself(ex, backend, "ECommerceProducts", "new_vector", "new_model", after, [2, 25, 49], product_text)

    if url.startswith("weaviate"):
        # Weaviate can't drop a named vector: the downgrade is refused before anything is written
        proc = ex.run("downgrade", "-1", "--yes", check=False)
        assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
        assert "can't drop a named vector" in proc.stderr and "repoint_alias" in proc.stderr
        with ex.store() as (backend, _):
            assert same_points(points_of(backend, "ECommerceProducts"), after)
        assert "(current)" in ex.run("history", "-i").stdout.splitlines()[0]
        return

    ex.run("downgrade", "-1", "--yes")  # Qdrant drops the vector
    with ex.store() as (backend, _):
        back = points_of(backend, "ECommerceProducts")
        assert vector_sizes(back) == {("original_vector", 32)}
        assert all(np.allclose(back[i][1]["original_vector"], v["original_vector"], atol=1e-6) for i, (_, v) in before.items())
    ex.run("check")
    ex.run("upgrade", "head")
    with ex.store() as (backend, _):
        assert vector_sizes(points_of(backend, "ECommerceProducts")) == {("original_vector", 32), ("new_vector", 64)}


# -- Qdrant: model migration (side by side, then a new collection behind the alias) --------------

def hybrid_search(ex: Example, backend, collection: str, text: str, limit: int = 5) -> list:
    """Qdrant's hybrid query: a dense (new_model) and a sparse (bm25) prefetch, fused by reciprocal rank."""
    from qdrant_client import models

    from vecmig.embed import load_embedder

    keywords = load_embedder("bm25", ex.config()).embed_sparse_queries([text])[0]
    result = backend.client.query_points(collection, prefetch=[
        models.Prefetch(query=ex.embed("new_model", [text])[0], using="new", limit=20),
        models.Prefetch(query=models.SparseVector(indices=keywords.indices, values=keywords.values), using="keywords", limit=20),
    ], query=models.FusionQuery(fusion=models.Fusion.RRF), limit=limit)
    return [p.id for p in result.points]


def test_qdrant_model_migration_side_by_side_then_alias_swap_then_hybrid(tmp_path):
    ex = Example("qdrant-model-migration", tmp_path / "proj", f"qdrant+local://{tmp_path / 'store'}")
    ex.run("upgrade", "28a19f3981b7")  # up to the alias swap: dense vectors only
    sample = [0, 57, 123, 256, 399]

    with ex.store() as (backend, _):
        assert backend.list_aliases() == {"questions": "questions_v2"}
        v1, v2 = points_of(backend, "questions_v1"), points_of(backend, "questions_v2")
        assert len(v1) == len(v2) == 400 == backend.count("questions")
        # side by side: every point of questions_v1 has both models' vectors
        assert all(set(v) == {"old", "new"} for _, v in v1.values())
        assert vector_sizes(v1) == {("old", 32), ("new", 64)}
        # the new collection: the new model only, and the payloads came along
        assert all(set(v) == {"new"} for _, v in v2.values()) and vector_sizes(v2) == {("new", 64)}
        assert all(v2[i][0]["question"] == p["question"] and v2[i][0]["category"] == p["category"] for i, (p, _) in v1.items())
        # using: old vs using: new on the same collection: each finds a question by its own text,
        # and the two models' neighbourhoods overlap
        finds_itself(ex, backend, "questions_v1", "old", "old_model", v1, sample, question_text)
        finds_itself(ex, backend, "questions_v1", "new", "new_model", v1, sample, question_text)
        overlaps = []
        for i in sample:
            text = question_text(v1[i][0])
            by_old = {h[0] for h in backend.search("questions_v1", "old", ex.embed("old_model", [text])[0], limit=10)}
            by_new = {h[0] for h in backend.search("questions_v1", "new", ex.embed("new_model", [text])[0], limit=10)}
            overlaps.append(len(by_old & by_new) / 10)
        assert np.mean(overlaps) >= 0.3, overlaps
        # and a question about a state capital finds state capitals with either model
        for vector, model in (("old", "old_model"), ("new", "new_model")):
            hits = backend.search("questions_v1", vector, ex.embed(model, ["STATE CAPITALS: Its capital is Austin"])[0], limit=3)
            assert sum(h[2]["category"] == "STATE CAPITALS" for h in hits) >= 2, (vector, hits)
        # applications querying the alias get the new collection
        finds_itself(ex, backend, "questions", "new", "new_model", v2, sample, question_text)
    ex.run("check")

    ex.run("upgrade", "head")  # dense -> hybrid: the sparse vector keywords, filled by bm25
    with ex.store() as (backend, _):
        assert backend.get_collection("questions_v2").sparse_vectors["keywords"].modifier == "idf"
        points = {p.id: p for page in backend.scroll("questions", with_vectors=["keywords"]) for p in page}
        assert len(points) == 400 and all(p.vectors["keywords"]["indices"] for p in points.values())
        # an exact keyword (a question's answer) finds its question first with hybrid search; the
        # dense model alone doesn't have it in its top 5
        for i in (24, 82, 118, 200):  # Duluth, Wrigley Field, Tom Landry, Shreveport
            answer = v2[i][0]["answer"]
            assert hybrid_search(ex, backend, "questions", answer)[0] == i, answer
            dense = [h[0] for h in backend.search("questions", "new", ex.embed("new_model", [answer])[0], limit=5)]
            assert i not in dense, answer
        answers = [(i, v2[i][0]["answer"]) for i in range(0, 400, 8)]
        by_hybrid = sum(hybrid_search(ex, backend, "questions", a, limit=1) == [i] for i, a in answers)
        by_dense = sum(backend.search("questions", "new", ex.embed("new_model", [a])[0], limit=1)[0][0] == i for i, a in answers)
        assert by_hybrid >= 2 * by_dense and by_hybrid >= 25, (by_hybrid, by_dense)
    ex.run("check")
    ex.run("downgrade", "-1", "--yes")  # drop the sparse vector: questions_v2 as it was before
    with ex.store() as (backend, _):
        assert backend.get_collection("questions_v2").sparse_vectors == {}
        assert same_points(points_of(backend, "questions_v2"), v2)

    ex.run("downgrade", "-1", "--yes")  # undo the alias swap
    with ex.store() as (backend, _):
        assert backend.list_aliases() == {"questions": "questions_v1"}
        assert "questions_v2" not in backend.list_collections()
        assert same_points(points_of(backend, "questions_v1"), v1)

    ex.run("downgrade", "-1", "--yes")  # undo the side-by-side vector
    with ex.store() as (backend, _):
        back = points_of(backend, "questions_v1")
        assert vector_sizes(back) == {("old", 32)} and len(back) == 400
        assert all(np.allclose(back[i][1]["old"], v["old"], atol=1e-6) for i, (_, v) in v1.items())
    ex.run("check")

    ex.run("upgrade", "head")
    with ex.store() as (backend, _):
        assert backend.list_aliases() == {"questions": "questions_v2"}
        assert backend.count("questions_v2") == 400
        assert vector_sizes(points_of(backend, "questions_v1")) == {("old", 32), ("new", 64)}
        assert set(backend.get_collection("questions_v2").sparse_vectors) == {"keywords"}


def test_every_example_has_a_readme_and_a_config_with_an_overridable_url():
    from vecmig.config import Config

    names = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())
    assert names == ["qdrant-model-migration", "weaviate-add-named-vector", "weaviate-switching-vectorizers"]
    for name in names:
        assert (EXAMPLES / name / "README.md").is_file()
        ini = (EXAMPLES / name / "vecmig.ini").read_text(encoding="utf-8")
        assert "url = ${VECMIG_URL:-" in ini
        cfg = Config.load(EXAMPLES / name / "vecmig.ini")
        sparse = {"bm25"} if name == "qdrant-model-migration" else set()  # its dense -> hybrid revision
        assert set(cfg.embedders) == {"old_model", "new_model"} | sparse
        assert all(e["provider"] == ("bm25" if n in sparse else "static") for n, e in cfg.embedders.items())
