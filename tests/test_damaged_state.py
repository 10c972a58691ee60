"""A damaged or missing state collection: one line naming the record and the repair, exit 1, the
store untouched; and the repair it names works."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import Project, store_snapshot

pytestmark = pytest.mark.e2e

CREATE = """
upgrade:
  - create_collection: {name: products_v1, vectors: {v: {size: 4, distance: cosine}}}
  - create_alias: {alias: products, collection: products_v1}
downgrade: auto
"""

SEED = """
upgrade:
  - bulk_insert: {collection: products_v1, points: [{id: 1, payload: {kind: a}, vectors: {v: [1, 0, 0, 0]}}]}
downgrade: auto
"""

LOCK = {"owner": "0f1e", "host": "elsewhere", "user": "ops", "pid": 4242, "command": "upgrade head", "acquired_at": "2025-01-01T00:00:00+00:00"}


def revisions(project: Project) -> None:
    project.revision("aaa111", None, CREATE, "create products")
    project.revision("bbb222", "aaa111", SEED, "seed products")


@pytest.fixture(scope="module")
def applied_store(tmp_path_factory):
    """The store folder of a project upgraded to bbb222, copied into each test (one upgrade per module)."""
    project = Project(tmp_path_factory.mktemp("applied") / "proj", "qdrant+local://store")
    revisions(project)
    project.run("upgrade", "head")
    return project.root / "store"


@pytest.fixture
def applied(project, applied_store) -> Project:
    revisions(project)
    shutil.copytree(applied_store, project.root / "store")
    return project


# what is done to the state collection


def put(key, doc):
    def damage(backend, state):
        state.records.put(key, doc)

    return damage


def keyless_point(backend, state):
    from qdrant_client import models

    backend.client.upsert(state.name, [models.PointStruct(id=12345, vector={}, payload={"kind": "step", "doc": {"status": "done"}})])


def delete_state(backend, state):
    backend.client.delete_collection(state.name)


def replace_state(backend, state):
    from qdrant_client import models

    backend.client.delete_collection(state.name)
    backend.client.create_collection(state.name, vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE))
    backend.client.upsert(state.name, [models.PointStruct(id=i, vector=[1.0, 0.0], payload={"title": f"t{i}"}) for i in (1, 2)])


def empty_state(backend, state):
    backend.client.delete_collection(state.name)
    state.ensure()


MISSING = "this store has no vecmig state (collection 'vecmig_state' is missing) but has collections products_v1 (aliases products)"
FOREIGN = "collection 'vecmig_state' is not vecmig's state"

# (id, damage, command, expected parts of the one error line)
CASES = [
    ("heads-is-a-string", put("heads", "bbb222"), ["current"],
     ["state record 'heads' in collection 'vecmig_state' is a string", "`vecmig stamp REV --purge`"]),
    ("heads-lists-ints", put("heads", {"heads": [1, 2]}), ["upgrade", "head"],
     ["state record 'heads' in collection 'vecmig_state' lists 1 among the heads", "`vecmig stamp REV --purge`"]),
    ("step-is-a-list", put("step/bbb222", ["done"]), ["history", "-i"],
     ["state record 'step/bbb222' in collection 'vecmig_state' is a list", "`vecmig stamp bbb222`"]),
    ("journal-is-a-number", put("journal/bbb222/up/0", 7), ["downgrade", "-1", "--yes"],
     ["state record 'journal/bbb222/up/0' in collection 'vecmig_state' is a number", "`vecmig stamp bbb222`"]),
    ("lock-is-a-list", put("lock", ["ops"]), ["lock", "status"],
     ["state record 'lock' in collection 'vecmig_state' is a list", "`vecmig lock release`"]),
    ("lock-expires-at-is-a-string", put("lock", {**LOCK, "expires_at": "tomorrow"}), ["status"],
     ["state record 'lock' in collection 'vecmig_state' has expires_at 'tomorrow'", "`vecmig lock release`"]),
    ("record-without-key", keyless_point, ["current"],
     ["state collection 'vecmig_state' holds point 12345 (kind 'step') without a `key` field", "delete that point"]),
    ("state-deleted-current", delete_state, ["current"], [MISSING, "`vecmig stamp REV`"]),
    ("state-deleted-history", delete_state, ["history", "-i"], [MISSING, "`vecmig stamp REV`"]),
    ("state-deleted-status", delete_state, ["status"], [MISSING, "`vecmig stamp REV`"]),
    ("state-deleted-upgrade", delete_state, ["upgrade", "head"],
     [MISSING, "applying the revisions from base to them fails", "collection 'products_v1' already exists", "`vecmig stamp REV`"]),
    ("state-deleted-downgrade", delete_state, ["downgrade", "base", "--yes"], [MISSING, "`vecmig stamp REV`"]),
    ("state-emptied-current", empty_state, ["current"],
     ["this store has no vecmig state (collection 'vecmig_state' holds no vecmig records)", "`vecmig stamp REV`"]),
    ("state-replaced-current", replace_state, ["current"], [FOREIGN, "ids 1, 2", "set state_collection in vecmig.ini"]),
    ("state-replaced-upgrade", replace_state, ["upgrade", "head"], [FOREIGN, "set state_collection in vecmig.ini"]),
    ("state-replaced-stamp", replace_state, ["stamp", "bbb222"], [FOREIGN, "set state_collection in vecmig.ini"]),
]


def damage(project: Project, how) -> None:
    from vecmig.command import open_store

    with open_store(project.config()) as (backend, state):
        how(backend, state)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_damaged_state_gets_one_line_naming_the_record_and_the_repair(applied, case):
    _, how, args, expected = case
    damage(applied, how)
    before = store_snapshot(applied.config())
    proc = applied.run(*args, check=False)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for part in expected:
        assert part in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and "unexpected" not in proc.stderr
    assert store_snapshot(applied.config()) == before


# (id, damage, the repair the error names)
REPAIRS = [
    ("heads-is-a-string", put("heads", "bbb222"), ["stamp", "bbb222", "--purge"]),
    ("step-is-a-list", put("step/bbb222", ["done"]), ["stamp", "bbb222"]),
    ("journal-is-a-number", put("journal/bbb222/up/0", 7), ["stamp", "bbb222"]),
    ("lock-expires-at-is-a-string", put("lock", {**LOCK, "expires_at": "tomorrow"}), ["lock", "release"]),
    ("state-deleted", delete_state, ["stamp", "bbb222"]),
    ("state-emptied", empty_state, ["stamp", "bbb222"]),
]


@pytest.mark.parametrize("case", REPAIRS, ids=[c[0] for c in REPAIRS])
def test_the_repair_the_error_names_brings_the_store_back(applied, case):
    _, how, repair = case
    damage(applied, how)
    applied.run(*repair)
    current = json.loads(applied.run("current", "--json").stdout)
    assert current["heads"] == ["bbb222"] and current["revisions"][0]["applied_at"]
    assert json.loads(applied.run("status", "--json").stdout)["state"] == "idle"
    assert "Nothing to do" in applied.run("upgrade", "head").stdout
    applied.run("downgrade", "aaa111", "--yes")  # and the store still downgrades: the seed is undone
    assert store_snapshot(applied.config(), with_state=False)["collections"]["products_v1"] == []


def test_a_new_store_is_at_base_and_a_store_of_other_collections_is_adopted_by_the_first_upgrade(project):
    revisions(project)
    assert "at base (nothing applied)" in project.run("current").stdout
    from qdrant_client import models

    from vecmig.command import open_store

    with open_store(project.config()) as (backend, _):
        backend.client.create_collection("other_app", vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE))
    proc = project.run("current", check=False)
    assert proc.returncode == 1 and "has collections other_app" in proc.stderr and "the first `vecmig upgrade` starts the state" in proc.stderr
    project.run("upgrade", "head")
    assert json.loads(project.run("current", "--json").stdout)["heads"] == ["bbb222"]
