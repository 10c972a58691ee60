"""The sparse (BM25) embedder, and dense -> hybrid: filling a sparse vector by backfill, verify,
reconcile and the Router on embedded Qdrant; plan-time checks that sparse embedders fill sparse
vectors only (and dense ones dense vectors only), and that Weaviate refuses sparse vectors."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from vecmig.backends import connect
from vecmig.config import Config
from vecmig.embed import create_embedder, fingerprint_changes
from vecmig.embed.bm25 import ENGLISH_STOP_WORDS, minimal_stem, term_index
from vecmig.errors import EmbedderError, PlanError
from vecmig.ops import build_op
from vecmig.ops.base import OpContext
from vecmig.errors import CheckFailed
from vecmig.datapath.text import text_hash, text_hash_field
from vecmig.progress import silent
from vecmig.schema import CollectionSpec, Point, SchemaView, SparseVectorSpec, VectorSpec
from vecmig.state import StateStore

EMBEDDERS = {"bm25": {"provider": "bm25"}, "static": {"provider": "static"}}
TEXT = "{{ title }}. {{ body }}"
DOCS = {
    1: ("Trail shoes", "Grippy soles for muddy runs"),
    2: ("Road shoes", "Light and fast on asphalt"),
    3: ("Wool socks", "Warm feet in winter"),
    4: ("Rain jacket", "Keeps you dry on muddy trails"),
    5: ("Headlamp XR-7", "Bright light for night runs"),
}


def bm25(**settings):
    return create_embedder("bm25", {"provider": "bm25", **settings})


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# -- the embedder ----------------------------------------------------------------------------------


def test_term_indices_are_a_stable_hash_the_same_in_every_process():
    terms = ["fox", "austin", "straße", "東京"]
    # pinned: the low 31 bits of blake2b, the same on every machine (no vocabulary, no Python hash())
    assert [term_index(t) for t in terms] == [336060690, 1896473346, 1809275746, 1247089134]
    code = f"from vecmig.embed.bm25 import term_index; print([term_index(t) for t in {terms!r}])"
    for seed in ("0", "12345"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout
        assert json.loads(out) == [term_index(t) for t in terms]
    vec = bm25().embed_sparse_documents(["The quick brown fox"])[0]
    code = "from vecmig.embed import create_embedder; v = create_embedder('b', {'provider': 'bm25'}).embed_sparse_documents(['The quick brown fox'])[0]; print([v.indices, v.values])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "7"}).stdout
    assert json.loads(out) == [vec.indices, vec.values]


def test_terms_are_casefolded_unicode_words_without_stop_words():
    e = bm25()
    assert e.terms("The Fox's QUICK jump, isn't it? Straße naïve 42 snake_case 東京") == \
           ["fox", "quick", "jump", "isn't", "strasse", "naïve", "42", "snake", "case", "東京"]
    assert "the" in ENGLISH_STOP_WORDS and bm25(stopwords="none").terms("The fox and it") == ["the", "fox", "and", "it"]
    assert bm25(stemmer="minimal").terms("Queries about state capitals") == ["query", "about", "state", "capital"]


@pytest.mark.parametrize("word, stem", [
    ("queries", "query"), ("capitals", "capital"), ("boxes", "boxe"), ("dogs", "dog"), ("class", "class"),
    ("status", "status"), ("aies", "aies"), ("eies", "eies"), ("shoes", "shoes"), ("trees", "trees"), ("is", "is"), ("news", "new"),
])
def test_the_minimal_stemmer_reduces_english_plurals_as_harmans_s_stemmer(word, stem):
    assert minimal_stem(word) == stem


def test_document_weights_are_bm25_term_frequency_saturation():
    e = bm25()
    vec = e.embed_sparse_documents(["fox fox fox dog"])[0]
    weights = dict(zip(vec.indices, vec.values))
    norm = 1.2 * (1 - 0.75 + 0.75 * 4 / 256)
    assert weights[term_index("fox")] == pytest.approx(3 * 2.2 / (3 + norm))
    assert weights[term_index("dog")] == pytest.approx(1 * 2.2 / (1 + norm))
    assert vec.indices == sorted(vec.indices) and len(vec.indices) == 2
    # saturation (length normalization off): each occurrence adds less, and the weight stays under k1 + 1
    tf = [bm25(b="0").embed_sparse_documents([" ".join(["fox"] * n)])[0].values[0] for n in (1, 2, 3, 1000)]
    assert tf[0] == pytest.approx(1.0) and tf[1] - tf[0] > tf[2] - tf[1] > 0 and tf[2] < tf[3] < 2.2
    # longer documents weigh a term less (b), unless b = 0; k1 = 0 weighs every term 1
    short, long = e.embed_sparse_documents(["fox dog", "fox " + "dog " * 600])
    assert short.values[short.indices.index(term_index("fox"))] > long.values[long.indices.index(term_index("fox"))]
    flat = bm25(b="0").embed_sparse_documents(["fox dog", "fox " + "cat " * 600])
    assert flat[0].values[flat[0].indices.index(term_index("fox"))] == pytest.approx(flat[1].values[flat[1].indices.index(term_index("fox"))])
    assert bm25(k1="0").embed_sparse_documents(["fox fox dog"])[0].values == [1.0, 1.0]
    assert bm25(avg_len="2").embed_sparse_documents(["fox dog cat"])[0].values[0] < e.embed_sparse_documents(["fox dog cat"])[0].values[0]
    assert e.embed_sparse_documents(["", "the and of"]) == [([], []), ([], [])]


def test_query_weights_are_one_per_unique_term():
    vec = bm25().embed_sparse_queries(["Fox, fox and the DOG"])[0]
    assert sorted(vec.indices) == sorted({term_index("fox"), term_index("dog")}) and vec.values == [1.0, 1.0]


def test_a_sparse_embedder_has_no_dimension_and_refuses_dense_calls():
    e = bm25(batch_size="2", query_prefix="\"query: \"")
    assert e.sparse and e.dimension is None
    with pytest.raises(EmbedderError, match=r"^\[embedder:bm25\] makes sparse vectors: use embed_sparse_documents"):
        e.embed_documents(["x"])
    docs = e.embed_sparse_documents([f"word{i}" for i in range(5)])  # three batches, in order
    assert [d.indices for d in docs] == [[term_index(f"word{i}")] for i in range(5)]
    assert sorted(e.embed_sparse_queries(["fox"])[0].indices) == sorted([term_index("query"), term_index("fox")])


def test_the_fingerprint_hashes_the_probes_sparse_vector_and_its_settings():
    fp = bm25().fingerprint()
    assert fp["provider"] == "bm25" and fp["sparse"] is True and fp["dimension"] is None
    assert fp["options"] == {"k1": 1.2, "b": 0.75, "avg_len": 256.0, "stopwords": "english", "stemmer": "none"}
    assert fingerprint_changes(fp, bm25().fingerprint()) == []
    assert fingerprint_changes(fp, bm25(k1="1.5").fingerprint())[0].startswith("options:")
    # a sparse probe is exact: the same settings with another tokenization is a different model
    changed = {**fp, "probe_sha256": "0" * 64}
    assert fingerprint_changes(changed, fp) == ["probe embedding differs: the model behind this embedder has changed"]
    static = create_embedder("static", {"provider": "static"}).fingerprint()
    assert "sparse: False -> True" in fingerprint_changes(static, fp)


@pytest.mark.parametrize("settings, message", [
    ({"k1": "x"}, r"k1: 'x' is not a number"),
    ({"k1": "-1"}, r"k1: -1.0 is less than 0"),
    ({"b": "1.5"}, r"b: 1.5 is more than 1"),
    ({"avg_len": "0"}, r"avg_len: must be more than 0"),
    ({"stopwords": "french"}, r"stopwords: 'french' is not one of english, none"),
    ({"stemmer": "porter"}, r"stemmer: 'porter' is not one of none, minimal"),
    ({"model": "splade"}, r"model: 'splade' is not a model of provider bm25"),
    ({"dimension": "128"}, r"dimension: a sparse embedder has no dimension: remove the key"),
    ({"normalize": "true"}, r"normalize: sparse term weights are not normalized"),
    ({"k_1": "1"}, r"k_1: unknown key for provider 'bm25': did you mean 'k1'\?"),
])
def test_bad_settings_are_one_line_errors_naming_the_section_and_key(settings, message):
    with pytest.raises(EmbedderError, match=r"^\[embedder:bm25\] " + message):
        bm25(**settings)


# -- filling a sparse vector on embedded Qdrant ---------------------------------------------------


@pytest.fixture
def qdrant():
    b = connect(Config(url="qdrant+memory://"))
    yield b
    b.close()


class Applier:
    """Validates and applies ops as the runner does (plan-time embedder probes too), with bm25 configured."""

    def __init__(self, backend):
        self.backend = backend
        self.config = Config(embedders=EMBEDDERS, routing_ttl=0.0)
        self.state = StateStore(backend.records(unique("Vecmig_state")))
        self.state.ensure()

    def view(self) -> SchemaView:
        return SchemaView.from_backend(self.backend, exclude={self.state.name})

    def plan(self, name: str, params: dict):
        from vecmig.runner import Plan, probe_embedders

        op = build_op(name, params, "test")
        view = self.view()
        op.use_dimensions(probe_embedders(op, view, self.config, Plan("up", [], []), self.state))
        op.validate(view, self.backend)
        return op

    def apply(self, name: str, params: dict):
        op = self.plan(name, params)
        ctx = OpContext(backend=self.backend, config=self.config, state=self.state, revision=None,
                        checkpoint_key=unique("k"), echo=lambda _: None, progress=silent().progress)
        return op.apply(ctx)


def products(backend, *, sparse: bool = False) -> str:
    name = unique("products")
    spec = CollectionSpec(name, vectors={"dense": VectorSpec(4)}, sparse_vectors={"keywords": SparseVectorSpec("idf")} if sparse else {})
    backend.create_collection(spec)
    backend.upsert(name, [Point(i, {"title": t, "body": b}, {"dense": [1.0, float(i), 0.0, 1.0]}) for i, (t, b) in DOCS.items()])
    return name


def hybrid_hits(backend, collection: str, text: str) -> list:
    """Qdrant's hybrid query: a dense and a sparse prefetch, fused by reciprocal rank."""
    from qdrant_client import models

    e = bm25()
    query = e.embed_sparse_queries([text])[0]
    result = backend.client.query_points(collection, prefetch=[
        models.Prefetch(query=[1.0, 0.0, 0.0, 1.0], using="dense", limit=10),
        models.Prefetch(query=models.SparseVector(indices=query.indices, values=query.values), using="keywords", limit=10),
    ], query=models.FusionQuery(fusion=models.Fusion.RRF), limit=5)
    return [p.id for p in result.points]


def test_backfill_fills_a_sparse_vector_added_in_place_and_verify_checks_its_text_hashes(qdrant):
    a = Applier(qdrant)
    name = products(qdrant)
    a.apply("add_vector", {"collection": name, "name": "keywords", "sparse": True, "modifier": "idf", "embedder": "bm25"})
    assert qdrant.get_collection(name).sparse_vectors["keywords"].modifier == "idf"
    assert a.apply("backfill", {"source": name, "vector": "keywords", "embedder": "bm25", "text": TEXT})["points"] == 5
    points = {p.id: p for p in qdrant.retrieve(name, list(DOCS), with_vectors=True)}
    for i, (title, body) in DOCS.items():
        expected = bm25().embed_sparse_documents([f"{title}. {body}"])[0]
        got = points[i].vectors["keywords"]
        assert got == {"indices": expected.indices, "values": pytest.approx(expected.values)}
        assert points[i].payload[text_hash_field("keywords")] == text_hash(f"{title}. {body}")
        assert len(points[i].vectors["dense"]) == 4
    # sparse search: Qdrant applies the IDF; the point with the rare exact keyword comes first
    query = bm25().embed_sparse_queries(["XR-7"])[0]
    assert qdrant.search(name, "keywords", {"indices": query.indices, "values": query.values}, limit=3)[0][0] == 5
    assert hybrid_hits(qdrant, name, "headlamp xr-7")[0] == 5

    a.apply("verify", {"source": name, "vector": "keywords", "text": TEXT})
    qdrant.upsert(name, [Point(3, {"title": "Wool socks", "body": "now with merino"}, {"dense": [1.0, 3.0, 0.0, 1.0]})])
    with pytest.raises(CheckFailed, match=r"1 points are stale"):
        a.apply("verify", {"source": name, "vector": "keywords", "text": TEXT})
    assert a.apply("reconcile", {"source": name, "vector": "keywords", "embedder": "bm25", "text": TEXT})["reembedded"] == 1
    a.apply("verify", {"source": name, "vector": "keywords", "text": TEXT})
    # overlap@k and golden recall search dense vectors only: refused for the sparse one, as before
    with pytest.raises(PlanError, match=r"vector 'keywords' of '.*' is sparse: only dense vectors can be compared"):
        a.plan("verify", {"source": name, "vector": "keywords", "embedder": "bm25", "text": TEXT, "old_vector": "dense", "min_overlap": 0.1})


def test_backfill_fills_a_sparse_vector_of_a_new_collection_with_the_dense_vectors_copied_along(qdrant):
    a = Applier(qdrant)
    source = products(qdrant)
    target = unique("products_hybrid")
    a.apply("create_collection", {"name": target, "vectors": {"dense": {"size": 4}},
                                  "sparse_vectors": {"keywords": {"modifier": "idf", "embedder": "bm25"}}})
    a.apply("backfill", {"source": source, "target": target, "vector": "keywords", "embedder": "bm25", "text": TEXT, "vectors": ["dense"]})
    got = {p.id: p for page in qdrant.scroll(target, with_vectors=True) for p in page}
    assert set(got) == set(DOCS) and all(set(p.vectors) == {"dense", "keywords"} for p in got.values())
    assert all(p.payload["title"] == DOCS[i][0] and text_hash_field("keywords") in p.payload for i, p in got.items())
    a.apply("verify", {"source": source, "target": target, "vector": "keywords", "text": TEXT})
    assert hybrid_hits(qdrant, target, "xr-7 headlamp")[0] == 5


def test_the_router_writes_sparse_targets_with_their_sparse_embedder_and_searches_them(qdrant):
    from vecmig.runtime import Router

    a = Applier(qdrant)
    name = unique("shop")
    a.apply("create_collection", {"name": name, "vectors": {"dense": {"embedder": "static"}}, "sparse_vectors": {"keywords": {"modifier": "idf"}}})
    a.apply("dual_write", {"name": "shop", "targets": [
        {"collection": name, "vector": "dense", "embedder": "static", "text": TEXT},
        {"collection": name, "vector": "keywords", "embedder": "bm25", "text": TEXT},
    ]})
    router = Router(qdrant, "shop", config=a.config, records=a.state.records, ttl=0)
    router.upsert([{"id": i, "payload": {"title": t, "body": b}} for i, (t, b) in DOCS.items()])
    stored = qdrant.retrieve(name, [5], with_vectors=True)[0]
    expected = bm25().embed_sparse_documents(["Headlamp XR-7. Bright light for night runs"])[0]
    assert stored.vectors["keywords"] == {"indices": expected.indices, "values": pytest.approx(expected.values)}
    assert len(stored.vectors["dense"]) == 64
    assert stored.payload[text_hash_field("keywords")] == text_hash("Headlamp XR-7. Bright light for night runs")
    a.apply("route_reads", {"name": "shop", "collection": name, "vector": "keywords", "embedder": "bm25"})
    assert router.search("xr-7", limit=3)[0][0] == 5  # the query embedded by bm25 as a query


# -- plan-time checks -----------------------------------------------------------------------------


def test_a_sparse_embedder_fills_only_sparse_vectors_and_a_dense_one_only_dense_vectors(qdrant):
    a = Applier(qdrant)
    name = products(qdrant, sparse=True)
    with pytest.raises(PlanError, match=r"^backfill: embedder 'bm25' \(bm25 bm25\) makes sparse vectors: it fills a sparse vector only"):
        a.plan("backfill", {"source": name, "vector": "dense", "embedder": "bm25", "text": TEXT})
    with pytest.raises(PlanError, match=r"^backfill: the vector is sparse and embedder 'static' \(static tokenlearn\) makes dense vectors: use a sparse embedder"):
        a.plan("backfill", {"source": name, "vector": "keywords", "embedder": "static", "text": TEXT})
    with pytest.raises(PlanError, match=r"^create_collection: embedder 'bm25' .* makes sparse vectors"):
        a.plan("create_collection", {"name": unique("c"), "vectors": {"text": {"embedder": "bm25"}}})
    with pytest.raises(PlanError, match=r"^add_vector: the vector is sparse and embedder 'static'"):
        a.plan("add_vector", {"collection": name, "name": "more", "sparse": True, "embedder": "static"})
    with pytest.raises(PlanError, match=r"^dual_write: embedder 'bm25' .* makes sparse vectors"):
        a.plan("dual_write", {"name": "shop", "targets": [{"collection": name, "vector": "dense", "embedder": "bm25", "text": TEXT}]})
    view, declared = a.view(), unique("c")
    a.plan("create_collection", {"name": declared, "vectors": {"dense": {"size": 4}}, "sparse_vectors": {"k": {"embedder": "bm25"}}}).forward(view)
    with pytest.raises(PlanError, match=r"was declared with embedder 'bm25', not 'other'"):
        build_op("backfill", {"source": name, "target": declared, "vector": "k", "embedder": "other", "text": TEXT}, "t").validate(view, qdrant)


@pytest.mark.weaviate
def test_weaviate_refuses_sparse_vectors_at_plan_time(weaviate_url):
    backend = connect(Config(url=weaviate_url))
    name = unique("Hybrid")
    a = Applier(backend)
    try:
        backend.create_collection(CollectionSpec(name, vectors={"dense": VectorSpec(4)}, properties={"title": "text"}))
        with pytest.raises(PlanError, match=r"Weaviate has no sparse vectors; its built-in BM25 keyword search"):
            a.plan("add_vector", {"collection": name, "name": "keywords", "sparse": True, "modifier": "idf", "embedder": "bm25"})
        with pytest.raises(PlanError, match=r"Weaviate has no sparse vectors"):
            a.plan("create_collection", {"name": unique("Hybrid"), "vectors": {"dense": {"size": 4}}, "sparse_vectors": {"k": {"modifier": "idf"}}})
    finally:
        for coll in (name, a.state.name):
            if coll in backend.list_collections():
                backend.drop_collection(coll)
        backend.close()
