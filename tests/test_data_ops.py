"""copy and backfill, and the backend API they stand on (scroll_pages, filters, insert-only upserts,
conditional vector writes, search), on every backend like tests/test_conformance.py: embedded
Qdrant always, a Qdrant server and the real Weaviate server when available."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from test_conformance import Applier

from vecmig.config import Config
from vecmig.errors import PlanError
from vecmig.ops import build_op
from vecmig.datapath.text import TemplateError, TextTemplate, text_hash, text_hash_field
from vecmig.schema import CollectionSpec, Point, SchemaView, VectorSpec

PROPERTIES = {"name": "text", "description": "text", "category": "keyword", "price": "int"}
CATEGORIES = ("books", "games", "tools")
TEMPLATE = "{{ name }}. {{ description }}"
EMBEDDERS = Config(embedders={"static": {"provider": "static"}})


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def item(i: int) -> Point:
    payload = {"name": f"item {i}", "description": f"a thing of kind {i % 7}", "category": CATEGORIES[i % 3], "price": i}
    return Point(i, payload, {"old": [1.0, float(i % 5), float(i % 3), 0.5]})


def make(backend, prefix: str, vectors: dict[str, int], points: list[Point] = ()) -> str:
    name = unique(prefix)
    backend.create_collection(CollectionSpec(name, vectors={v: VectorSpec(size) for v, size in vectors.items()}, properties=PROPERTIES))
    if points:
        backend.upsert(name, list(points))
    return name


def all_points(backend, name: str, with_vectors=True) -> dict:
    return {p.id: p for page in backend.scroll(name, batch_size=500, with_vectors=with_vectors) for p in page}


def static_embedder():
    from vecmig.embed import load_embedder

    return load_embedder("static", EMBEDDERS)


def unit(rows) -> np.ndarray:
    a = np.asarray(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)  # Qdrant stores cosine vectors normalized


class DataApplier(Applier):
    """Applies ops like the runner, with the static embedder configured."""

    def apply(self, name, params):
        from vecmig.ops.base import OpContext
        from vecmig.progress import silent

        op = build_op(name, params, "test")
        op.validate(self.view(), self.backend)
        ctx = OpContext(backend=self.backend, config=EMBEDDERS, state=self.state, revision=None,
                        checkpoint_key=unique("k"), echo=lambda _: None, progress=silent().progress)
        return op, op.apply(ctx)


# the backend API -------------------------------------------------------------------------------------


def test_scroll_pages_cursor_resumes_after_its_page(backend):  # noqa: F811
    name = make(backend, "Items", {"old": 4}, [item(i) for i in range(1, 24)])
    pages = list(backend.scroll_pages(name, batch_size=5))
    assert [len(p) for p, _ in pages] == [5, 5, 5, 5, 3]
    ids = [p.id for page, _ in pages for p in page]
    assert ids == list(range(1, 24))
    resumed = list(backend.scroll_pages(name, batch_size=5, cursor=pages[1][1]))
    assert [p.id for page, _ in resumed for p in page] == ids[10:]
    assert list(backend.scroll_pages(name, batch_size=5, cursor=pages[-1][1])) == []
    assert list(backend.scroll(name, batch_size=10))[0][0].vectors == {}


FILTERS = [
    ({"must": [{"key": "category", "match": {"value": "books"}}]}, lambda p: p["category"] == "books"),
    ({"should": [{"key": "category", "match": {"value": "books"}}, {"key": "price", "range": {"lt": 4}}]},
     lambda p: p["category"] == "books" or p["price"] < 4),
    ({"must": [{"key": "category", "match": {"any": ["games", "tools"]}}], "must_not": [{"key": "price", "range": {"gte": 10, "lte": 15}}]},
     lambda p: p["category"] in ("games", "tools") and not 10 <= p["price"] <= 15),
    ({"must": [{"must_not": {"key": "category", "match": {"except": ["games"]}}}, {"has_id": [1, 4, 5, 7, 9]}]},
     lambda p: p["category"] == "games" and p["price"] in (1, 4, 5, 7, 9)),
]


@pytest.mark.parametrize("flt, wanted", FILTERS, ids=["must", "should", "any-range-must_not", "nested-except-has_id"])
def test_filters_select_the_same_points_on_every_backend(backend, flt, wanted):  # noqa: F811
    name = make(backend, "Items", {"old": 4}, [item(i) for i in range(1, 21)])
    expected = [i for i in range(1, 21) if wanted(item(i).payload)]
    assert 0 < len(expected) < 20
    assert backend.invalid_filter(flt) is None
    pages = list(backend.scroll_pages(name, batch_size=6, filter=flt))
    assert [p.id for page, _ in pages for p in page] == expected
    assert backend.count(name, flt) == len(expected)


def test_filters_weaviate_cant_express_are_refused_by_name(backend):  # noqa: F811
    assert backend.invalid_filter({"must": [{"key": "category", "match": {"valeu": "x"}}]})
    if backend.kind == "weaviate":
        assert "min_should" in backend.invalid_filter({"min_should": {"conditions": [], "min_count": 1}})
        assert "nested" in backend.invalid_filter({"must": [{"key": "meta.brand", "match": {"value": "x"}}]})
        assert "is_empty" in backend.invalid_filter({"must": [{"is_empty": {"key": "name"}}]})


def test_upsert_insert_only_keeps_the_points_that_exist(backend):  # noqa: F811
    name = make(backend, "Items", {"old": 4}, [item(1), item(2)])
    newer = Point(2, {**item(2).payload, "name": "written by the app"}, {"old": [0.0, 0.0, 1.0, 0.0]})
    backend.upsert(name, [newer])
    backend.upsert(name, [item(2), item(3)], insert_only=True)
    got = all_points(backend, name)
    assert sorted(got) == [1, 2, 3]
    assert got[2].payload["name"] == "written by the app"
    assert np.allclose(unit(got[2].vectors["old"]), [0, 0, 1, 0])


def test_update_vectors_writes_only_missing_vectors_and_merges_the_payload(backend):  # noqa: F811
    name = make(backend, "Items", {"old": 4, "new": 2}, [item(i) for i in (1, 2, 3)])
    backend.update_vectors(name, [Point(2, {"_mark": "app"}, {"new": [0.0, 1.0]})])
    backend.update_vectors(name, [
        Point(1, {"_mark": "backfill"}, {"new": [1.0, 0.0]}),
        Point(2, {"_mark": "backfill"}, {"new": [1.0, 0.0]}),
        Point(99, {"_mark": "backfill"}, {"new": [1.0, 0.0]}),  # not there (deleted meanwhile): skipped
    ], only_if_missing="new")
    got = all_points(backend, name)
    assert sorted(got) == [1, 2, 3]
    assert got[1].payload == {**item(1).payload, "_mark": "backfill"} and np.allclose(got[1].vectors["new"], [1, 0])
    assert got[2].payload["_mark"] == "app" and np.allclose(got[2].vectors["new"], [0, 1])
    assert "new" not in got[3].vectors and "_mark" not in got[3].payload
    assert np.allclose(unit(got[1].vectors["old"]), unit(item(1).vectors["old"]))


def test_guarded_vector_writes_as_sent_to_a_qdrant_server():
    """The server path (conditions evaluated by Qdrant per point), run on local mode, which implements them."""
    from vecmig.backends import connect

    b = connect(Config(url="qdrant+memory://"))
    b.server_version()
    b.embedded = False  # take the path a server >= 1.17 gets
    b.create_collection(CollectionSpec("c", vectors={"old": VectorSpec(4), "new": VectorSpec(2)}))
    b.upsert("c", [item(1), item(2)])
    b.update_vectors("c", [Point(2, {"_mark": "app"}, {"new": [0.0, 1.0]})])
    b.update_vectors("c", [Point(1, {"_mark": "fill"}, {"new": [1.0, 0.0]}), Point(2, {"_mark": "fill"}, {"new": [1.0, 0.0]})], only_if_missing="new")
    got = {p.id: p for p in b.retrieve("c", [1, 2], with_vectors=True)}
    assert got[1].payload["_mark"] == "fill" and np.allclose(got[1].vectors["new"], [1, 0])
    assert got[2].payload["_mark"] == "app" and np.allclose(got[2].vectors["new"], [0, 1])


def test_search_ranks_by_similarity_with_qdrant_style_scores(backend):  # noqa: F811
    name = unique("Items")
    backend.create_collection(CollectionSpec(name, vectors={"v": VectorSpec(3, "cosine"), "e": VectorSpec(3, "euclid")}, properties=PROPERTIES))
    rows = {1: [1.0, 0.0, 0.0], 2: [0.8, 0.6, 0.0], 3: [0.0, 1.0, 0.0], 4: [0.0, 0.0, 1.0]}
    backend.upsert(name, [Point(i, item(i).payload, {"v": r, "e": r}) for i, r in rows.items()])
    hits = backend.search(name, "v", [1.0, 0.1, 0.0], limit=3)
    assert [h[0] for h in hits] == [1, 2, 3]
    assert hits[0][1] == pytest.approx(1 / np.sqrt(1.01), abs=1e-4) and hits[0][2]["name"] == "item 1"
    # distances 2, 2.10 and 2.45 (4 filtered out): one right order on every store
    hits = backend.search(name, "e", [1.0, 0.0, 2.0], limit=2, filter={"must_not": [{"has_id": [4]}]})
    assert [h[0] for h in hits] == [1, 2] and hits[0][1] == pytest.approx(2.0, abs=1e-4)


# copy ------------------------------------------------------------------------------------------------


def test_copy_writes_exactly_insert_only_into_a_collection_a_route_dual_writes(backend, monkeypatch):  # noqa: F811
    """No reconcile follows a copy: into a target the application dual-writes (a route writes to it,
    through an alias or not), it asks the store for insert-only writes with no window (``exact``)."""
    from vecmig.routing import RoutingTable, Target

    a = DataApplier(backend)
    source = make(backend, "Products_v1", {"old": 4}, [item(i) for i in range(1, 6)])
    target = make(backend, "Products_v2", {"old": 4})
    seen = []
    upsert = backend.upsert
    monkeypatch.setattr(backend, "upsert", lambda *args, **kw: (seen.append(kw.get("exact")), upsert(*args, **kw))[1])
    a.apply("copy", {"source": source, "target": target})
    alias = unique("Products_live")
    backend.create_alias(alias, target)
    RoutingTable(a.state.records).set_writes(unique("products"), [Target(source, "old"), Target(alias, "old")])
    a.apply("copy", {"source": source, "target": target})
    assert seen == [False, True]  # 5 points: one write each time, without a route and with one
    backend.drop_alias(alias)


def test_copy_renames_vectors_and_copies_only_what_the_filter_matches(backend):  # noqa: F811
    a = DataApplier(backend)
    source = make(backend, "Products_v1", {"old": 4, "other": 2}, [item(i) for i in range(1, 31)])
    target = make(backend, "Products_v2", {"legacy": 4})
    flt = {"must": [{"key": "category", "match": {"any": ["books", "games"]}}]}
    a.apply("copy", {"source": source, "target": target, "vectors": {"old": "legacy"}, "filter": flt, "batch_size": 4, "workers": 3})
    copied, originals = all_points(backend, target), all_points(backend, source)
    expected = [i for i in range(1, 31) if item(i).payload["category"] in ("books", "games")]
    assert sorted(copied) == expected and backend.count(target) == len(expected)
    for i in expected:
        assert copied[i].payload == originals[i].payload
        assert set(copied[i].vectors) == {"legacy"}
        assert np.allclose(copied[i].vectors["legacy"], originals[i].vectors["old"], atol=1e-6)


def test_copy_keeps_target_points_unless_told_to_overwrite(backend):  # noqa: F811
    a = DataApplier(backend)
    source = make(backend, "Products_v1", {"old": 4}, [item(i) for i in range(1, 6)])
    target = make(backend, "Products_v2", {"old": 4}, [Point(3, {"name": "newer"}, {"old": [0.0, 1.0, 0.0, 0.0]})])
    op, _ = a.apply("copy", {"source": source, "target": target})
    assert all_points(backend, target)[3].payload == {"name": "newer"} and op.reverse(None).op_name == "nothing_to_undo"
    op, _ = a.apply("copy", {"source": source, "target": target, "overwrite": True})
    assert all_points(backend, target)[3].payload == item(3).payload
    assert op.irreversible and op.reverse(None) is None


def test_copy_is_checked_at_plan_time(backend):  # noqa: F811
    source = make(backend, "Products_v1", {"old": 4})
    target = make(backend, "Products_v2", {"new": 8})
    view = SchemaView.from_backend(backend)

    def check(params, match):
        with pytest.raises(PlanError, match=match):
            build_op("copy", params, "test").validate(view, backend)

    check({"source": unique("Nope"), "target": target}, "does not exist")
    check({"source": source, "target": target}, "has no vector 'old'.*vectors: \\{old: new\\}")
    check({"source": source, "target": target, "vectors": {"old": "new"}}, "4 dimensions.*8.*backfill")
    check({"source": source, "target": source, "vectors": []}, "same collection")
    check({"source": source, "target": target, "vectors": [], "filter": {"must": [{"key": "x", "match": {"nope": 1}}]}}, "filter")


# backfill --------------------------------------------------------------------------------------------


def assert_embedded(backend, collection, vector, originals: dict, ids):
    """Every vector is the static embedder's embedding of the rendered text, with that text's hash."""
    got = all_points(backend, collection)
    template = TextTemplate(TEMPLATE)
    texts = [template.render(originals[i]) for i in ids]
    expected = static_embedder().embed_documents(texts)
    assert np.allclose(unit([got[i].vectors[vector] for i in ids]), unit(expected), atol=1e-5)
    assert [got[i].payload[text_hash_field(vector)] for i in ids] == [text_hash(t) for t in texts]
    return got


def test_backfill_into_a_new_collection_embeds_every_point(backend):  # noqa: F811
    a = DataApplier(backend)
    source = make(backend, "Products_v1", {"old": 4}, [item(i) for i in range(1, 51)])
    target = make(backend, "Products_v2", {"static": 64, "legacy": 4})
    _, undo = a.apply("backfill", {"source": source, "target": target, "vector": "static", "embedder": "static", "text": TEMPLATE,
                                   "vectors": {"old": "legacy"}, "batch_size": 8, "workers": 3})
    assert undo["points"] == 50 and undo["fingerprint"]["dimension"] == 64
    originals = all_points(backend, source)
    got = assert_embedded(backend, target, "static", originals, range(1, 51))
    assert got[7].payload["category"] == originals[7].payload["category"]
    assert np.allclose(unit(got[7].vectors["legacy"]), unit(originals[7].vectors["old"]), atol=1e-6)


def test_backfill_in_place_fills_a_new_named_vector(backend):  # noqa: F811
    a = DataApplier(backend)
    source = make(backend, "Products", {"old": 4}, [item(i) for i in range(1, 41)])
    a.apply("add_vector", {"collection": source, "name": "static", "size": 64})
    flt = {"must_not": [{"key": "category", "match": {"value": "tools"}}]}
    a.apply("backfill", {"source": source, "vector": "static", "embedder": "static", "text": TEMPLATE, "filter": flt, "batch_size": 7})
    got = all_points(backend, source)
    filled = [i for i in range(1, 41) if item(i).payload["category"] != "tools"]
    assert_embedded(backend, source, "static", got, filled)
    assert all("static" not in got[i].vectors for i in range(1, 41) if i not in filled)
    assert all(np.allclose(unit(got[i].vectors["old"]), unit(item(i).vectors["old"])) for i in range(1, 41))


def test_dropping_a_backfilled_vector_drops_its_text_hashes_too(backend):  # noqa: F811
    a = DataApplier(backend)
    source = make(backend, "Products", {"old": 4}, [item(i) for i in range(1, 11)])
    add, _ = a.apply("add_vector", {"collection": source, "name": "static", "size": 64})
    if backend.unsupported("drop_vector", backend.get_collection(source)):
        pytest.skip(f"{backend.describe()} can't drop a vector")
    a.apply("backfill", {"source": source, "vector": "static", "embedder": "static", "text": TEMPLATE})
    assert all(text_hash_field("static") in p.payload for p in all_points(backend, source, with_vectors=False).values())
    a.reverse(add, None)
    got = all_points(backend, source)
    assert all("static" not in p.vectors and text_hash_field("static") not in p.payload for p in got.values())
    assert all(p.payload == item(i).payload for i, p in got.items())


@pytest.mark.parametrize("in_place", [False, True], ids=["new-collection", "in-place"])
def test_backfill_never_overwrites_a_newer_dual_written_point(backend, in_place):  # noqa: F811
    a = DataApplier(backend)
    source = make(backend, "Products_v1", {"old": 4}, [item(i) for i in range(1, 21)])
    app_vector = static_embedder().embed_documents(["written by the app"])[0].tolist()
    app_payload = {**item(5).payload, "name": "renamed by the app", text_hash_field("static"): text_hash("written by the app")}
    if in_place:
        target = source
        a.apply("add_vector", {"collection": source, "name": "static", "size": 64})
        backend.upsert(source, [Point(5, app_payload, {"old": item(5).vectors["old"], "static": app_vector})])
        params = {"source": source, "vector": "static", "embedder": "static", "text": TEMPLATE}
    else:
        target = make(backend, "Products_v2", {"static": 64})
        backend.upsert(target, [Point(5, app_payload, {"static": app_vector})])
        params = {"source": source, "target": target, "vector": "static", "embedder": "static", "text": TEMPLATE}
    a.apply("backfill", {**params, "batch_size": 4})
    got = all_points(backend, target)
    assert got[5].payload["name"] == "renamed by the app"
    assert got[5].payload[text_hash_field("static")] == text_hash("written by the app")
    assert np.allclose(unit(got[5].vectors["static"]), unit(app_vector), atol=1e-5)
    originals = all_points(backend, source)
    assert_embedded(backend, target, "static", originals, [i for i in range(1, 21) if i != 5])


def test_a_point_missing_a_template_field_stops_the_backfill_naming_it(backend):  # noqa: F811
    a = DataApplier(backend)
    broken = Point(7, {"name": "no description"}, {"old": [1.0, 0.0, 0.0, 0.0]})
    source = make(backend, "Products_v1", {"old": 4}, [item(i) for i in range(1, 7)] + [broken])
    target = make(backend, "Products_v2", {"static": 64})
    with pytest.raises(TemplateError, match=r"point 7: the text template uses 'description'"):
        a.apply("backfill", {"source": source, "target": target, "vector": "static", "embedder": "static", "text": TEMPLATE})


def test_backfill_is_checked_at_plan_time(backend):  # noqa: F811
    source = make(backend, "Products_v1", {"old": 4})
    target = make(backend, "Products_v2", {"static": 64})
    view = SchemaView.from_backend(backend)
    base = {"source": source, "vector": "static", "embedder": "static", "text": TEMPLATE}

    def check(params, match):
        with pytest.raises(PlanError, match=match):
            build_op("backfill", {**base, **params}, "test").validate(view, backend)

    check({}, "has no vector 'static'.*add_vector")
    check({"target": unique("Nope")}, "does not exist")
    check({"target": target, "vector": "nope"}, "has no vector 'nope'.*create_collection")
    check({"target": source}, "leave `target` out")
    check({"target": target, "text": "{{ name "}, "text template")
    check({"vectors": {"old": "old"}}, "needs `target`")
    check({"target": target, "vectors": {"old": "static"}}, "4 dimensions.*64")
    op = build_op("backfill", {**base, "target": target}, "test")
    op.validate(view, backend)
    assert op.embedder_names(view) == {"static": 64}


def test_downgrade_auto_undoes_the_standard_model_switch_revision(tmp_path):
    """create_collection + backfill + repoint_alias, upgraded and downgraded through vecmig.command."""
    from conftest import Project
    from vecmig import command
    from vecmig.progress import silent

    project = Project(tmp_path / "proj", "qdrant+local://store")
    ini = project.root / "vecmig.ini"
    ini.write_text(ini.read_text() + "\n[embedder:static]\nprovider = static\n")
    project.revision("a1", None, """
        upgrade:
          - create_collection: {name: products_v1, vectors: {old: {size: 4}}}
          - create_alias: {alias: products, collection: products_v1}
          - bulk_insert: {collection: products_v1, file: seed.jsonl}
        """)
    import json

    (project.root / "versions" / "seed.jsonl").write_text(
        "".join(json.dumps({"id": p.id, "payload": p.payload, "vectors": p.vectors}) + "\n" for p in map(item, range(1, 31))))
    project.revision("b2", "a1", f"""
        upgrade:
          - create_collection: {{name: products_v2, vectors: {{static: {{size: 64, embedder: static}}}}}}
          - backfill: {{source: products, target: products_v2, vector: static, embedder: static, text: "{TEMPLATE}"}}
          - repoint_alias: {{alias: products, to: products_v2}}
        downgrade: auto
        """)
    cfg = project.config()
    command.upgrade(cfg, "head", reporter=silent())
    with command.open_store(cfg) as (backend, _):
        assert backend.list_aliases() == {"products": "products_v2"} and backend.count("products_v2") == 30
    plan = command.downgrade(cfg, "a1", reporter=silent())
    assert [op.op_name for op in plan.steps[0].ops] == ["repoint_alias", "nothing_to_undo", "drop_collection"]
    with command.open_store(cfg) as (backend, _):
        assert backend.list_aliases() == {"products": "products_v1"} and "products_v2" not in backend.list_collections()
    command.upgrade(cfg, "head", reporter=silent())
    with command.open_store(cfg) as (backend, _):
        assert backend.count("products") == 30
