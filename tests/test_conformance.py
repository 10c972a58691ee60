"""One suite for every backend: each op applied, inspected through the backend, and reversed;
then the state store. Embedded Qdrant always runs; other stores join when they are available."""

from __future__ import annotations

import os
import uuid

import pytest

from vecmig.config import Config
from vecmig.errors import PlanError
from vecmig.ops import build_op
from vecmig.ops.base import OpContext
from vecmig.progress import silent
from vecmig.schema import SchemaView
from vecmig.state import StateStore

def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


class Applier:
    """Applies ops the way the runner does: validate against a view, apply, journal undo."""

    def __init__(self, backend):
        self.backend = backend
        self.state = StateStore(backend.records(unique("Vecmig_state")))
        self.state.ensure()

    def view(self) -> SchemaView:
        return SchemaView.from_backend(self.backend, exclude={self.state.name})

    def apply(self, name: str, params: dict):
        op = build_op(name, params, "test")
        op.validate(self.view(), self.backend)
        ctx = OpContext(backend=self.backend, config=Config(), state=self.state, revision=None, checkpoint_key=unique("k"),
                        echo=lambda _: None, progress=silent().progress)
        return op, op.apply(ctx)

    def reverse(self, op, undo):
        back = op.reverse(undo)
        back.validate(self.view(), self.backend)
        ctx = OpContext(backend=self.backend, config=Config(), state=self.state, revision=None, checkpoint_key=unique("k"),
                        echo=lambda _: None, progress=silent().progress)
        back.apply(ctx)


def create(applier, name, **extra):
    params = {"name": name, "vectors": {"old": {"size": 4, "distance": "cosine"}}, **extra}
    return applier.apply("create_collection", params)


def test_create_collection_then_its_reverse_drops_it(backend):
    a, name = Applier(backend), unique("Products")
    op, undo = create(a, name, payload_indexes={"category": "keyword"})
    spec = backend.get_collection(name)
    assert spec.vectors["old"].size == 4 and spec.vectors["old"].distance == "cosine"
    a.reverse(op, undo)
    assert backend.get_collection(name) is None


def test_add_vector_adds_a_named_vector_and_reverse_drops_it(backend):
    a, name = Applier(backend), unique("Products")
    create(a, name)
    params = {"collection": name, "name": "new", "size": 8, "distance": "dot"}
    if backend.unsupported("add_vector", backend.get_collection(name)):
        with pytest.raises(PlanError, match="new collection|alias"):
            a.apply("add_vector", params)
        return
    op, undo = a.apply("add_vector", params)
    assert backend.get_collection(name).vectors["new"].distance == "dot"
    if backend.unsupported("drop_vector", backend.get_collection(name)):
        with pytest.raises(PlanError, match="alias"):
            a.reverse(op, undo)
        return
    a.reverse(op, undo)
    assert "new" not in backend.get_collection(name).vectors


def test_alias_create_repoint_and_reverse_point_back(backend):
    a = Applier(backend)
    v1, v2, alias = unique("Products_v1"), unique("Products_v2"), unique("Products")
    create(a, v1)
    create(a, v2)
    create_op, create_undo = a.apply("create_alias", {"alias": alias, "collection": v1})
    assert backend.list_aliases()[alias] == v1
    op, undo = a.apply("repoint_alias", {"alias": alias, "to": v2})
    assert backend.list_aliases()[alias] == v2 and undo == {"previous": v1}
    a.reverse(op, undo)
    assert backend.list_aliases()[alias] == v1
    with pytest.raises(PlanError, match="still points at it"):
        a.apply("drop_collection", {"name": v1})
    drop_op, drop_undo = a.apply("drop_alias", {"alias": alias})
    assert alias not in backend.list_aliases()
    a.reverse(drop_op, drop_undo)
    assert backend.list_aliases()[alias] == v1
    a.reverse(create_op, create_undo)
    assert alias not in backend.list_aliases()


def test_bulk_insert_is_idempotent_and_reverse_deletes_those_ids(backend):
    a, name = Applier(backend), unique("Items")
    create(a, name, properties={"title": "text"} if backend.kind == "weaviate" else {})
    points = [{"id": i, "payload": {"title": f"t{i}"}, "vectors": {"old": [1.0, i, 0.0, 0.5]}} for i in range(1, 40)]
    op, undo = a.apply("bulk_insert", {"collection": name, "points": points, "batch_size": 16})
    a.apply("bulk_insert", {"collection": name, "points": points, "batch_size": 16})
    assert backend.count(name) == 39
    got = {p.id: p for p in backend.retrieve(name, [1, 2], with_vectors=True)}
    assert got[2].payload["title"] == "t2" and len(got[2].vectors["old"]) == 4
    a.reverse(op, undo)
    assert backend.count(name) == 0


def test_payload_index_create_and_reverse(backend):
    a, name = Applier(backend), unique("Items")
    create(a, name, properties={"category": "text"} if backend.kind == "weaviate" else {})
    op, undo = a.apply("create_payload_index", {"collection": name, "field": "category", "type": "keyword"})
    a.reverse(op, undo)


def test_state_store_heads_journal_lock_and_checkpoint(backend):
    state = StateStore(backend.records(unique("Vecmig_state")))
    state.ensure()
    state.set_heads(["abc"])
    run, _ = state.begin_step("abc", "up", "sum")
    state.record_op("abc", "up", 0, {"run": run, "status": "done"})
    state.set_checkpoint("abc/up/0", {"written": 7})
    assert state.heads() == ["abc"]
    assert state.journal_entry("abc", "up", 0)["status"] == "done"
    assert state.get_checkpoint("abc/up/0")["written"] == 7
    other = StateStore(backend.records(state.name))
    state.acquire_lock(ttl=30, timeout=0, command="upgrade head", heartbeat=False)
    with pytest.raises(Exception, match="holds the migration lock"):
        other.acquire_lock(ttl=30, timeout=0, command="upgrade head", heartbeat=False)
    state.release_lock()
    backend.drop_collection(state.name)


@pytest.fixture(params=["qdrant-local", "qdrant-server", "weaviate"])
def store_url(request, tmp_path):
    if request.param == "qdrant-local":
        return f"qdrant+local://{tmp_path / 'store'}"
    if request.param == "qdrant-server":
        return os.environ.get("VECMIG_TEST_QDRANT_URL") or pytest.skip("set VECMIG_TEST_QDRANT_URL=qdrant://host:6333 to run against a Qdrant server")
    return request.getfixturevalue("weaviate_url")


STAIRWAY = [
    ("""
upgrade:
  - create_collection:
      name: {v1}
      vectors: {{old: {{size: 4, distance: cosine}}}}
      properties: {{title: text}}
  - create_alias: {{alias: {alias}, collection: {v1}}}
""", "create"),
    ("""
upgrade:
  - bulk_insert:
      collection: {v1}
      points:
        - {{id: 1, payload: {{title: one}}, vectors: {{old: [1, 0, 0, 0]}}}}
        - {{id: 2, payload: {{title: two}}, vectors: {{old: [0, 1, 0, 0]}}}}
""", "seed"),
    ("""
upgrade:
  - create_collection:
      name: {v2}
      vectors: {{new: {{size: 8, distance: dot}}}}
      properties: {{title: text}}
  - repoint_alias: {{alias: {alias}, to: {v2}}}
""", "switch"),
]


@pytest.mark.e2e
def test_cli_stairway_upgrade_downgrade_upgrade_on_every_backend(store_url, tmp_path):
    """upgrade head, downgrade base, upgrade head again: the store ends where it was."""
    from tests.conftest import Project

    project = Project(tmp_path / "proj", store_url)
    suffix = uuid.uuid4().hex[:8]
    names = {"v1": f"Products_v1_{suffix}", "v2": f"Products_v2_{suffix}", "alias": f"Products_{suffix}"}
    ini = project.root / "vecmig.ini"
    ini.write_text(ini.read_text() + f"state_collection = VecmigState_{suffix}\n")
    down = None
    for i, (body, message) in enumerate(STAIRWAY):
        project.revision(f"st{i}", down, body.format(**names), message)
        down = f"st{i}"

    def aliases():
        from vecmig.command import open_store

        with open_store(project.config()) as (backend, _):
            return {a: c for a, c in backend.list_aliases().items() if a == names["alias"]}

    project.run("upgrade", "head")
    assert aliases() == {names["alias"]: names["v2"]}
    project.run("downgrade", "base", "--yes")
    assert aliases() == {}
    project.run("upgrade", "head")
    assert aliases() == {names["alias"]: names["v2"]}
    assert '"at_head": true' in project.run("current", "--json").stdout
    project.run("downgrade", "base", "--yes")
