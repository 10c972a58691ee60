"""The routing table, the routing ops (dual_write, end_dual_write, route_reads and their reverse)
and the application-side Router, on embedded Qdrant and a real Weaviate server.

Embedders are the shipped static model at two sizes: ``small`` (32-d) and ``large`` (64-d)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from vecmig.backends import connect
from vecmig.config import Config
from vecmig.embed import load_embedder
from vecmig.errors import BackendError, PlanError, ScriptError
from vecmig.ops import build_op
from vecmig.ops.base import OpContext
from vecmig.datapath.text import text_hash, text_hash_field
from vecmig.progress import silent
from vecmig.routing import Route, RoutingError, RoutingTable, Target
from vecmig.runtime import Router
from vecmig.schema import Point, SchemaView
from vecmig.state import StateStore

pytest.importorskip("static_model", reason="the static embedder needs tokenlearn-static-model (pip install 'vecmig[static]')")

EMBEDDERS = {"small": {"provider": "static", "dimensions": "32"}, "large": {"provider": "static"}}
OLD_TEXT = "{{ title }}"
NEW_TEXT = "{{ title }}. {{ body }}"


def config(**kw) -> Config:
    return Config(embedders=EMBEDDERS, routing_ttl=kw.pop("routing_ttl", 0.0), **kw)


@pytest.fixture(params=["qdrant-memory", "weaviate"])
def backend(request):
    url = "qdrant+memory://" if request.param == "qdrant-memory" else request.getfixturevalue("weaviate_url")
    b = connect(Config(url=url))
    before = set(b.list_collections())
    yield b
    for alias, coll in b.list_aliases().items():
        if coll not in before:
            b.drop_alias(alias)
    for name in set(b.list_collections()) - before:
        b.drop_collection(name)
    b.close()


@pytest.fixture
def qdrant():
    b = connect(Config(url="qdrant+memory://"))
    yield b
    b.close()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


class Migrator:
    """Applies ops as the runner does: validate against the live view, apply, keep the undo."""

    def __init__(self, backend, cfg: Config | None = None):
        self.backend = backend
        self.config = cfg or config()
        self.state = StateStore(backend.records(unique("Vecmig_state")))
        self.state.ensure()
        self.table = RoutingTable(self.state.records)
        self.lines: list[str] = []

    def view(self) -> SchemaView:
        return SchemaView.from_backend(self.backend, exclude={self.state.name})

    def ctx(self, key: str | None = None) -> OpContext:
        return OpContext(backend=self.backend, config=self.config, state=self.state, revision=None,
                         checkpoint_key=key or unique("k"), echo=self.lines.append, progress=silent().progress)

    def run(self, op, key: str | None = None):
        view = self.view()
        op.validate(view, self.backend)
        op.forward(view)
        return op.apply(self.ctx(key))

    def apply(self, name: str, params: dict, key: str | None = None):
        op = build_op(name, params, "test")
        return op, self.run(op, key)

    def reverse(self, op, undo):
        back = op.reverse(undo)
        self.run(back)
        return back

    def router(self, name: str, **kw) -> Router:
        return Router(self.backend, name, config=self.config, records=self.state.records, **kw)


def two_collections(m: Migrator) -> tuple[str, str]:
    """v1 with a 32-d vector `small`, v2 with a 64-d vector `large`."""
    v1, v2 = unique("Products_v1"), unique("Products_v2")
    m.apply("create_collection", {"name": v1, "vectors": {"small": {"size": 32, "distance": "cosine"}}})
    m.apply("create_collection", {"name": v2, "vectors": {"large": {"size": 64, "distance": "cosine"}}})
    return v1, v2


def targets(v1: str, v2: str) -> list[dict]:
    return [
        {"collection": v1, "vector": "small", "embedder": "small", "text": OLD_TEXT},
        {"collection": v2, "vector": "large", "embedder": "large", "text": NEW_TEXT},
    ]


def content(m: Migrator, name: str) -> dict | None:
    route = m.table.get(name)
    return route.content() if route else None


# ---------------------------------------------------------------------------------------------------
# the ops


def test_routing_ops_reverse_in_reverse_order_restores_each_previous_route_exactly(backend):
    m = Migrator(backend)
    v1, v2 = two_collections(m)
    name = unique("products")

    dual, dual_undo = m.apply("dual_write", {"name": name, "targets": targets(v1, v2)})
    after_dual = content(m, name)
    assert dual_undo == {"previous": None}
    assert [w["collection"] for w in after_dual["writes"]] == [v1, v2]
    assert after_dual["read"] == {"collection": v1, "vector": "small", "embedder": "small", "text": None}  # reads stay on the source

    reads, reads_undo = m.apply("route_reads", {"name": name, "collection": v2, "vector": "large", "embedder": "large"})
    after_reads = content(m, name)
    assert reads_undo == {"previous": after_dual}
    assert after_reads["read"]["collection"] == v2 and after_reads["writes"] == after_dual["writes"]

    end, end_undo = m.apply("end_dual_write", {"name": name, "keep": v2})
    assert end_undo == {"previous": after_reads}
    assert [w["collection"] for w in content(m, name)["writes"]] == [v2]
    epochs = [m.table.get(name).epoch]

    m.reverse(end, end_undo)
    assert content(m, name) == after_reads
    epochs.append(m.table.get(name).epoch)
    m.reverse(reads, reads_undo)
    assert content(m, name) == after_dual
    epochs.append(m.table.get(name).epoch)
    back = m.reverse(dual, dual_undo)
    assert m.table.get(name) is None  # there was no route before dual_write
    assert back.describe() == f'restore_route(name="{name}", removed)'
    assert epochs == [3, 4, 5]  # every change, a restore too, moves the epoch on


def test_the_routing_record_format(qdrant):
    m = Migrator(qdrant)
    v1, v2 = two_collections(m)
    m.apply("dual_write", {"name": "products", "targets": targets(v1, v2)})
    doc = m.state.records.get("routing/products")
    assert set(doc) == {"read", "writes", "epoch", "updated_at"}
    assert doc["epoch"] == 1 and doc["updated_at"]
    assert doc["writes"][1] == {"collection": v2, "vector": "large", "embedder": "large", "text": NEW_TEXT}
    assert list(m.table.all()) == ["products"]


def test_setting_the_same_route_again_is_no_change(qdrant):
    m = Migrator(qdrant)
    v1, v2 = two_collections(m)
    m.apply("dual_write", {"name": "p", "targets": targets(v1, v2)})
    _, undo = m.apply("dual_write", {"name": "p", "targets": targets(v1, v2)})
    assert m.table.get("p").epoch == 1
    assert undo["previous"] == content(m, "p")


def test_a_resumed_routing_op_journals_the_route_from_before_its_first_attempt(qdrant):
    m = Migrator(qdrant)
    v1, v2 = two_collections(m)
    op = build_op("dual_write", {"name": "p", "targets": targets(v1, v2)}, "test")
    m.run(op, key="rev/up/0")  # wrote the route, then "crashed" before the journal said done
    assert m.run(op, key="rev/up/0") == {"previous": None}


def test_changing_write_targets_waits_one_routing_ttl_and_says_so(qdrant):
    m = Migrator(qdrant, config(routing_ttl=0.3))
    v1, v2 = two_collections(m)
    started = time.monotonic()
    m.apply("dual_write", {"name": "p", "targets": targets(v1, v2)})
    assert time.monotonic() - started >= 0.3
    assert any("waiting 0.3s (routing_ttl)" in line for line in m.lines)
    m.lines.clear()
    started = time.monotonic()
    m.apply("route_reads", {"name": "p", "collection": v2, "vector": "large", "embedder": "large"})
    assert time.monotonic() - started < 0.3 and not m.lines  # reads only: nothing to wait for


def test_end_dual_write_refuses_to_stop_writing_where_reads_go(qdrant):
    m = Migrator(qdrant)
    v1, v2 = two_collections(m)
    m.apply("dual_write", {"name": "p", "targets": targets(v1, v2)})
    with pytest.raises(RoutingError, match="route_reads to .* first"):
        m.apply("end_dual_write", {"name": "p", "keep": v2})
    m.apply("create_collection", {"name": "other", "vectors": {"x": {"size": 4}}})
    with pytest.raises(RoutingError, match="none of its write targets"):
        m.apply("end_dual_write", {"name": "p", "keep": "other"})
    m.apply("end_dual_write", {"name": "p", "keep": v1})  # the rollback: back to the source alone
    assert [t.collection for t in m.table.get("p").writes] == [v1]


def test_plan_time_checks_name_the_problem(qdrant):
    m = Migrator(qdrant)
    v1, v2 = two_collections(m)
    qdrant.create_alias("products", v1)
    cases = [
        ({"collection": "nope", "vector": "small", "embedder": "small"}, "does not exist"),
        ({"collection": v1, "vector": "nope", "embedder": "small"}, "has no vector 'nope'"),
        ({"collection": "products", "vector": "small", "embedder": "small"}, "is an alias"),
        ({"collection": v1, "vector": "small", "embedder": "small", "text": "{{ title"}, "text template"),
    ]
    for target, message in cases:
        with pytest.raises(PlanError, match=message):
            m.apply("dual_write", {"name": "p", "targets": [target]})
    with pytest.raises(PlanError, match="same vector of the same collection"):
        m.apply("dual_write", {"name": "p", "targets": [targets(v1, v2)[0], targets(v1, v2)[0]]})
    with pytest.raises(PlanError, match="one model makes vectors of one size"):
        m.apply("dual_write", {"name": "p", "targets": [targets(v1, v2)[0], {**targets(v1, v2)[1], "embedder": "small"}]})
    m.apply("route_reads", {"name": "p", "collection": "products", "vector": "small", "embedder": "small"})  # reads may use an alias
    with pytest.raises(ScriptError, match="embedder"):
        build_op("route_reads", {"name": "p", "collection": v1, "vector": "small"}, "test")


def test_a_vector_declared_with_an_embedder_takes_no_other(qdrant):
    view = Migrator(qdrant).view()
    create = build_op("create_collection", {"name": "c", "vectors": {"v": {"size": 32, "embedder": "small"}}}, "test")
    create.validate(view, qdrant)
    create.forward(view)  # planned in the same run: the view knows which embedder fills `v`
    op = build_op("dual_write", {"name": "p", "targets": [{"collection": "c", "vector": "v", "embedder": "large"}]}, "test")
    with pytest.raises(PlanError, match="declared with embedder 'small'"):
        op.validate(view, qdrant)


def test_routing_ops_name_their_embedders_with_the_vector_sizes(qdrant):
    m = Migrator(qdrant)
    v1, v2 = two_collections(m)
    op = build_op("dual_write", {"name": "p", "targets": targets(v1, v2)}, "test")
    assert op.embedder_names(m.view()) == {"small": 32, "large": 64}
    reads = build_op("route_reads", {"name": "p", "collection": v2, "vector": "large", "embedder": "large"}, "test")
    assert reads.embedder_names() == {"large": None}


# ---------------------------------------------------------------------------------------------------
# the Router


def embedded(name: str, text: str, kind: str = "documents") -> np.ndarray:
    emb = load_embedder(name, config())
    return (emb.embed_documents if kind == "documents" else emb.embed_queries)([text])[0]


POINTS = [
    {"id": 1, "payload": {"title": "Red running shoes", "body": "Light, for the road"}},
    {"id": 2, "payload": {"title": "Blue rain coat", "body": "Keeps you dry"}},
    {"id": 3, "payload": {"title": "Green tea", "body": "Loose leaves, 200 g"}},
]


def dual_write_on(backend):
    m = Migrator(backend)
    v1, v2 = two_collections(m)
    m.apply("dual_write", {"name": "products", "targets": targets(v1, v2)})
    return m, v1, v2


def test_upsert_writes_every_target_with_its_own_embedder_template_and_text_hash(backend):
    m, v1, v2 = dual_write_on(backend)
    m.router("products").upsert(POINTS)
    for collection, vector, template in ((v1, "small", "{title}"), (v2, "large", "{title}. {body}")):
        stored = {p.id: p for p in backend.retrieve(collection, [1, 2, 3], with_vectors=True)}
        assert sorted(stored) == [1, 2, 3]
        for raw in POINTS:
            point, text = stored[raw["id"]], template.format(**raw["payload"])
            assert np.allclose(point.vectors[vector], embedded(vector, text), atol=1e-5)
            assert point.payload[text_hash_field(vector)] == text_hash(text)
            assert point.payload["title"] == raw["payload"]["title"]


def test_delete_removes_the_points_from_every_target(backend):
    m, v1, v2 = dual_write_on(backend)
    router = m.router("products")
    router.upsert(POINTS)
    router.delete([1, 3])
    assert [p.id for p in backend.retrieve(v1, [1, 2, 3])] == [2]
    assert [p.id for p in backend.retrieve(v2, [1, 2, 3])] == [2]


def test_search_embeds_the_query_with_the_read_targets_embedder_and_follows_route_reads(backend):
    m, v1, v2 = dual_write_on(backend)
    spies, queries = query_spies(m.config)
    router = m.router("products", ttl=0, embedders=spies)
    router.upsert(POINTS)
    # a point only v2 has: a search that finds it went to v2
    only_v2 = {"title": "Wool socks", "body": "Warm feet"}
    backend.upsert(v2, [Point(9, only_v2, {"large": embedded("large", "Wool socks. Warm feet").tolist()})])
    queries.clear()

    hits = router.search("Wool socks. Warm feet", limit=4)
    assert 9 not in [h[0] for h in hits] and queries == ["small"]
    assert hits[0][2]["title"] in {p["payload"]["title"] for p in POINTS}

    m.apply("route_reads", {"name": "products", "collection": v2, "vector": "large", "embedder": "large"})
    hits = router.search("Wool socks. Warm feet", limit=4)
    assert hits[0][0] == 9 and hits[0][2]["title"] == "Wool socks" and queries == ["small", "large"]
    assert len(router.search("shoes", limit=2, filter={"must": [{"key": "title", "match": {"value": "Green tea"}}]})) == 1


def query_spies(cfg: Config) -> tuple[dict, list[str]]:
    """The two embedders, recording which one embeds each query."""
    calls: list[str] = []

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def embed_queries(self, texts):
            calls.append(self.inner.name)
            return self.inner.embed_queries(texts)

        def __getattr__(self, attr):
            return getattr(self.inner, attr)

    return {name: Spy(load_embedder(name, cfg)) for name in ("small", "large")}, calls


class Recorder:
    """A backend that records the point writes and deletes it passes on (and can fail some)."""

    def __init__(self, inner, fail_on: str | None = None):
        self.inner, self.fail_on, self.calls = inner, fail_on, []

    def upsert(self, collection, points, **kw):
        self.calls.append(("upsert", collection, sorted(points[0].vectors)))
        if collection == self.fail_on:
            raise BackendError(f"writing to {collection!r}: refused")
        return self.inner.upsert(collection, points, **kw)

    def delete(self, collection, ids):
        self.calls.append(("delete", collection))
        return self.inner.delete(collection, ids)

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


def test_router_writes_the_source_first_and_deletes_from_it_last(qdrant):
    m, v1, v2 = dual_write_on(qdrant)
    spy = Recorder(qdrant)
    router = Router(spy, "products", config=m.config, records=m.state.records)
    router.upsert(POINTS)
    router.delete([1])
    assert spy.calls == [("upsert", v1, ["small"]), ("upsert", v2, ["large"]), ("delete", v2), ("delete", v1)]


def test_a_failed_source_write_writes_no_other_target(qdrant):
    m, v1, v2 = dual_write_on(qdrant)
    spy = Recorder(qdrant, fail_on=v1)
    with pytest.raises(BackendError, match="refused"):
        Router(spy, "products", config=m.config, records=m.state.records).upsert(POINTS)
    assert [c[1] for c in spy.calls] == [v1]
    assert qdrant.retrieve(v2, [1, 2, 3]) == []


def test_targets_in_one_collection_are_written_together(qdrant):
    m = Migrator(qdrant)
    m.apply("create_collection", {"name": "c", "vectors": {"small": {"size": 32}, "large": {"size": 64}}})
    m.apply("dual_write", {"name": "p", "targets": [
        {"collection": "c", "vector": "small", "embedder": "small", "text": OLD_TEXT},
        {"collection": "c", "vector": "large", "embedder": "large", "text": NEW_TEXT},
    ]})
    spy = Recorder(qdrant)
    Router(spy, "p", config=m.config, records=m.state.records).upsert(POINTS[:1])
    assert spy.calls == [("upsert", "c", ["large", "small"])]
    stored = qdrant.retrieve("c", [1], with_vectors=True)[0]
    assert set(stored.vectors) == {"small", "large"}
    assert {text_hash_field("small"), text_hash_field("large")} <= set(stored.payload)
    with pytest.raises(RoutingError, match="more than one"):
        m.apply("end_dual_write", {"name": "p", "keep": "c"})


def test_precomputed_vectors_are_written_as_given(qdrant):
    m, v1, v2 = dual_write_on(qdrant)
    given = [1.0] + [0.0] * 31
    m.router("products").upsert([{**POINTS[0], "vectors": {"small": given}}])
    small = qdrant.retrieve(v1, [1], with_vectors=True)[0]
    assert np.allclose(small.vectors["small"], given)
    large = qdrant.retrieve(v2, [1], with_vectors=True)[0]
    assert np.allclose(large.vectors["large"], embedded("large", "Red running shoes. Light, for the road"), atol=1e-5)
    with pytest.raises(RoutingError, match="no write target writes"):
        m.router("products").upsert([{**POINTS[0], "vectors": {"other": given}}])


def test_a_point_missing_a_template_field_fails_before_any_write(qdrant):
    m, v1, v2 = dual_write_on(qdrant)
    with pytest.raises(RoutingError, match=r"uses 'body'.*default\(''\)"):
        m.router("products").upsert([{"id": 5, "payload": {"title": "No body"}}])
    assert qdrant.retrieve(v1, [5]) == [] and qdrant.retrieve(v2, [5]) == []


def test_a_missing_route_is_a_clear_error(qdrant):
    m = Migrator(qdrant)
    with pytest.raises(RoutingError, match="route 'nothing' does not exist"):
        m.router("nothing").search("x")


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_route_is_cached_for_ttl_and_re_read_after_it(qdrant):
    m, v1, v2 = dual_write_on(qdrant)
    clock = Clock()
    router = m.router("products", ttl=5.0, clock=clock)
    assert router.route().read.collection == v1
    m.apply("route_reads", {"name": "products", "collection": v2, "vector": "large", "embedder": "large"})
    clock.now += 4.9
    assert router.route().read.collection == v1  # not before the ttl
    clock.now += 0.1
    assert router.route().read.collection == v2 and router.route().epoch == 2  # after it
    m.apply("route_reads", {"name": "products", "collection": v1, "vector": "small", "embedder": "small"})
    assert router.refresh().read.collection == v1


def test_the_route_is_cached_with_the_real_clock_too(qdrant):
    m, v1, v2 = dual_write_on(qdrant)
    router = m.router("products", ttl=0.2)
    router.route()
    m.apply("route_reads", {"name": "products", "collection": v2, "vector": "large", "embedder": "large"})
    assert router.route().read.collection == v1
    time.sleep(0.25)
    assert router.route().read.collection == v2


def test_a_write_that_outlived_its_route_is_done_again_on_the_new_targets(qdrant):
    """The race the runner's wait covers: dual-write turned on while a slow write was embedding."""
    m = Migrator(qdrant)
    v1, v2 = two_collections(m)
    m.apply("dual_write", {"name": "products", "targets": targets(v1, v2)[:1]})
    clock = Clock()

    class Slow:  # dual-write goes on while this embeds, and the embedding takes longer than the ttl
        name = "small"

        def embed_documents(self, texts):
            if not m.table.get("products").writes[1:]:
                m.apply("dual_write", {"name": "products", "targets": targets(v1, v2)})
                clock.now += 6.0
            return load_embedder("small", m.config).embed_documents(texts)

    router = m.router("products", ttl=5.0, clock=clock, embedders={"small": Slow()})
    router.route()
    router.upsert(POINTS[:1])
    assert [p.id for p in qdrant.retrieve(v2, [1])] == [1]


def test_routers_share_a_route_across_threads(qdrant):
    from concurrent.futures import ThreadPoolExecutor

    m, v1, v2 = dual_write_on(qdrant)
    router = m.router("products", ttl=0.01)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: router.upsert([{"id": 100 + i, "payload": {"title": f"t{i}", "body": "b"}}]), range(32)))
        results = list(pool.map(lambda i: router.search(f"t{i}", limit=1), range(8)))
    assert qdrant.count(v1) == qdrant.count(v2) == 32
    assert all(len(r) == 1 for r in results)


def test_router_open_connects_from_a_config(tmp_path):
    url = f"qdrant+local://{tmp_path}/store"
    backend = connect(Config(url=url))
    try:
        m = Migrator(backend)
        v1, v2 = two_collections(m)
        m.apply("dual_write", {"name": "products", "targets": targets(v1, v2)})
        state = m.state.name
    finally:
        backend.close()
    cfg = config(url=url, state_collection=state)
    with Router.open("products", cfg) as router:
        router.upsert(POINTS)
        assert router.search("Green tea", limit=1)[0][0] == 3
        assert router.ttl == cfg.routing_ttl


def test_importing_the_runtime_imports_no_client_or_model_library():
    code = (
        "import sys, vecmig.runtime\n"
        "heavy = ('qdrant_client', 'weaviate', 'numpy', 'jinja2', 'static_model', 'grpc')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_route_and_target_round_trip_through_their_documents():
    route = Route("p", Target("a", "v", "e"), (Target("a", "v", "e", "{{ t }}"), Target("b", "w", "f", None)), 3, "now")
    assert Route.from_doc("p", route.to_doc()) == route
    assert route.source == Target("a", "v", "e", "{{ t }}")


def test_a_model_switch_revision_upgrades_and_downgrades_the_route_through_the_runner(project):
    from vecmig import command
    from vecmig.progress import Reporter

    project.write("vecmig.ini", """
        [vecmig]
        url = qdrant+local://store
        script_location = versions
        routing_ttl = 0.1

        [embedder:small]
        provider = static
        dimensions = 32

        [embedder:large]
        provider = static
    """)
    project.revision("a1", None, """
        upgrade:
          - create_collection: {name: products_v1, vectors: {small: {size: 32, embedder: small}}}
          - dual_write: {name: products, targets: [{collection: products_v1, vector: small, embedder: small, text: "{{ title }}"}]}
    """)
    project.revision("b2", "a1", """
        upgrade:
          - create_collection: {name: products_v2, vectors: {large: {size: 64, embedder: large}}}
          - dual_write:
              name: products
              targets:
                - {collection: products_v1, vector: small, embedder: small, text: "{{ title }}"}
                - {collection: products_v2, vector: large, embedder: large, text: "{{ title }}. {{ body }}"}
          - route_reads: {name: products, collection: products_v2, vector: large, embedder: large}
        downgrade: auto
    """)
    cfg = project.config()
    lines: list[str] = []
    reporter = Reporter(quiet=False)
    reporter.line = lines.append
    command.upgrade(cfg, "head", reporter=reporter)
    assert sum("waiting 0.1s (routing_ttl)" in line for line in lines) == 2

    with Router.open("products", cfg) as router:
        route = router.route()
        assert [t.collection for t in route.writes] == ["products_v1", "products_v2"] and route.read.collection == "products_v2"
        router.upsert(POINTS)
        assert router.search("Green tea. Loose leaves, 200 g", limit=1)[0][0] == 3

    plan = command.downgrade(cfg, "a1", plan_only=True)
    assert [op.op_name for op in plan.steps[0].ops] == ["restore_route", "restore_route", "drop_collection"]
    command.downgrade(cfg, "a1", confirm=lambda plan: True)
    with Router.open("products", cfg) as router:
        route = router.route()
        assert [t.collection for t in route.writes] == ["products_v1"] and route.read.collection == "products_v1"
        assert route.epoch == 5
        assert router.search("Green tea", limit=1)[0][0] == 3
