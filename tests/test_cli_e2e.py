"""End to end: the installed `vecmig` script against an embedded Qdrant store."""

from __future__ import annotations

import json
import re
import signal
import time

import pytest

pytestmark = pytest.mark.e2e

CREATE = """
upgrade:
  - create_collection:
      name: {name}
      vectors: {{v: {{size: 4, distance: cosine}}}}
      payload_indexes: {{kind: keyword}}
  - create_alias: {{alias: {alias}, collection: {name}}}
downgrade: auto
"""

SEED = """
upgrade:
  - bulk_insert:
      collection: {name}
      points:
        - {{id: 1, payload: {{kind: a}}, vectors: {{v: [1, 0, 0, 0]}}}}
        - {{id: 2, payload: {{kind: b}}, vectors: {{v: [0, 1, 0, 0]}}}}
downgrade: auto
"""


def linear(project):
    project.revision("aaa111", None, CREATE.format(name="products_v1", alias="products"), "create products")
    project.revision("bbb222", "aaa111", SEED.format(name="products_v1"), "seed products")


def status(project) -> dict:
    return json.loads(project.run("current", "--json").stdout)


def test_upgrade_head_applies_every_revision_and_current_reports_head(project):
    linear(project)
    out = project.run("upgrade", "head").stdout
    assert "Upgrade aaa111 (create products)" in out and "Upgrade bbb222 (seed products)" in out
    cur = status(project)
    assert cur["heads"] == ["bbb222"] and cur["at_head"] is True
    project.run("current", "--check-heads")
    snap = json.loads(project.run("show", "bbb222", "--json").stdout)
    assert snap["downgrade"] == "auto"


def test_plan_shows_the_ops_and_writes_nothing(project):
    linear(project)
    out = project.run("upgrade", "head", "--plan").stdout
    assert "create_collection" in out and "bulk_insert" in out and "nothing was written" in out
    assert status(project)["heads"] == []
    plan = json.loads(project.run("upgrade", "head", "--plan", "--json").stdout)
    assert plan["applied"] is False and [s["revision"] for s in plan["steps"]] == ["aaa111", "bbb222"]


def test_downgrade_walks_back_one_revision_then_to_base(project):
    from tests.conftest import store_snapshot

    linear(project)
    project.run("upgrade", "head")
    proc = project.run("downgrade", "-1", check=False)
    assert proc.returncode == 1 and "deletes data" in proc.stderr and "--yes" in proc.stderr
    project.run("downgrade", "-1", "--yes")
    assert status(project)["heads"] == ["aaa111"]
    snap = store_snapshot(project.config())
    assert snap["collections"]["products_v1"] == [] and snap["aliases"] == {"products": "products_v1"}
    proc = project.run("downgrade", "base", check=False)
    assert proc.returncode == 1 and "--yes" in proc.stderr  # dropping a collection needs consent
    project.run("downgrade", "base", "--yes")
    snap = store_snapshot(project.config())
    assert "products_v1" not in snap["collections"] and snap["aliases"] == {}
    assert status(project)["heads"] == []


def test_stairway_upgrade_downgrade_upgrade_ends_in_the_same_store(project):
    from tests.conftest import store_snapshot

    linear(project)
    project.run("upgrade", "head")
    first = store_snapshot(project.config(), with_state=False)
    project.run("downgrade", "base", "--yes")
    project.run("upgrade", "head")
    assert store_snapshot(project.config(), with_state=False) == first


def test_history_lists_newest_first_and_marks_current(project):
    linear(project)
    project.run("upgrade", "aaa111")
    out = project.run("history", "-i").stdout.splitlines()
    assert out[0].startswith("aaa111 -> bbb222") and "(head)" in out[0]
    assert out[1].startswith("<base> -> aaa111") and "(current)" in out[1]
    rows = json.loads(project.run("history", "--json", "-r", "aaa111:bbb222").stdout)
    assert [r["revision"] for r in rows] == ["bbb222", "aaa111"]


def test_stamp_adopts_an_existing_store_without_running_ops(project):
    linear(project)
    project.run("upgrade", "head")
    project.run("stamp", "base")
    assert status(project)["heads"] == []
    project.run("stamp", "head")
    assert status(project)["heads"] == ["bbb222"]
    assert "Nothing to do" in project.run("upgrade", "head").stdout


def test_two_branches_are_merged_and_upgraded_together(project):
    project.revision("root01", None, "upgrade: []\n", "root")
    project.revision("left01", "root01", CREATE.format(name="left_v1", alias="left"), "left")
    project.revision("right1", "root01", CREATE.format(name="right_v1", alias="right"), "right")
    proc = project.run("upgrade", "head", check=False)
    assert proc.returncode == 1 and "multiple heads" in proc.stderr and "merge" in proc.stderr
    project.run("merge", "-m", "join branches", "--rev-id", "merge1")
    heads = json.loads(project.run("heads", "--json").stdout)
    assert [h["revision"] for h in heads] == ["merge1"]
    project.run("upgrade", "head")
    assert status(project)["heads"] == ["merge1"]
    from tests.conftest import store_snapshot

    assert set(store_snapshot(project.config())["aliases"]) == {"left", "right"}
    project.run("downgrade", "root01", "--yes")
    assert status(project)["heads"] == ["root01"]


def test_changed_applied_file_blocks_upgrade_until_accepted(project):
    linear(project)
    project.run("upgrade", "aaa111")
    path = next(project.root.glob("versions/aaa111_*.yaml"))
    path.write_text(path.read_text() + "# edited\n")
    proc = project.run("upgrade", "head", check=False)
    assert proc.returncode == 1 and "changed after it was applied" in proc.stderr
    proc = project.run("validate", check=False)
    assert proc.returncode == 1 and "changed after it was applied" in proc.stdout
    project.run("upgrade", "head", "--accept-checksums")
    assert project.run("validate").returncode == 0


def test_check_reports_drift_between_revisions_and_store(project):
    linear(project)
    project.run("upgrade", "head")
    assert "No drift" in project.run("check").stdout
    from vecmig.command import open_store

    with open_store(project.config()) as (backend, _):
        backend.drop_alias("products")
    proc = project.run("check", check=False)
    assert proc.returncode == 1 and "alias 'products' should point at 'products_v1'" in proc.stdout


def big_seed(project, n: int) -> None:
    lines = [json.dumps({"id": i, "payload": {"kind": "k", "n": i}, "vectors": {"v": [1.0, float(i % 7), 0.5, 0.25]}}) for i in range(n)]
    project.write("versions/points.jsonl", "\n".join(lines) + "\n")
    project.revision("big001", None, """
        upgrade:
          - create_collection: {name: items, vectors: {v: {size: 4, distance: cosine}}}
          - bulk_insert: {collection: items, file: points.jsonl, batch_size: 50}
          - create_alias: {alias: items_live, collection: items}
        downgrade: auto
        """, "load items")


def count(project, collection: str) -> int:
    from vecmig.command import open_store

    with open_store(project.config()) as (backend, _):
        return backend.count(collection)


def test_killed_upgrade_resumes_at_the_first_op_not_done(project):
    big_seed(project, 6000)
    proc = project.popen("upgrade", "head")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the bulk insert is under way, then kill -9
        line = proc.stdout.readline()
        if "+ create_collection" in line:
            time.sleep(1.5)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    written = count(project, "items")
    assert 0 < written < 6000, written
    out = project.run("upgrade", "head").stdout
    assert "(resuming)" in out and "= create_collection" in out and "already done" in out
    resumed_at = int(re.search(r"resuming after (\d+) of 6000 points", out).group(1))
    assert written - 50 <= resumed_at <= written  # at most the one batch in flight is written again
    assert count(project, "items") == 6000
    assert status(project)["heads"] == ["big001"]
    from tests.conftest import store_snapshot

    assert store_snapshot(project.config())["aliases"] == {"items_live": "items"}


def test_a_second_runner_fails_clearly_or_waits_and_applies_nothing_twice(project):
    big_seed(project, 3000)
    first = project.popen("upgrade", "head")
    while "+ create_collection" not in first.stdout.readline():
        pass
    second = project.run("upgrade", "head", check=False)
    assert second.returncode == 1
    assert "in use by another vecmig process" in second.stderr or "holds the migration lock" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    third = project.popen("--lock-timeout", "120", "upgrade", "head")
    assert first.wait(timeout=120) == 0
    out, err = third.communicate(timeout=120)
    assert third.returncode == 0, err
    assert "Nothing to do" in out
    assert count(project, "items") == 3000


SWITCH = """
upgrade:
  - create_collection:
      name: products_v2
      vectors: {{v2: {{embedder: static{size}}}}}
  - backfill: {{source: products_v1, target: products_v2, vector: v2, embedder: static, text: "{{{{ kind }}}} product"}}
  - repoint_alias: {{alias: products, to: products_v2}}
downgrade: auto
"""


def with_static_embedder(project, extra: str = "") -> None:
    ini = project.root / "vecmig.ini"
    ini.write_text(ini.read_text() + f"[embedder:static]\nprovider = static\n{extra}")


def test_plan_probes_each_embedder_and_shows_its_fingerprint_and_the_size_check(project):
    linear(project)
    with_static_embedder(project)
    project.revision("ccc333", "bbb222", SWITCH.format(size=""), "switch to static")
    out = project.run("upgrade", "head", "--plan").stdout
    assert re.search(r"Embedder static: static tokenlearn, 64-d, normalize=\w+, probe [0-9a-f]{12}", out)
    assert "create_collection: static makes 64-d vectors, taken as the vector's size" in out
    assert "backfill: static makes 64-d vectors, the vector's size is 64: ok" in out
    plan = json.loads(project.run("upgrade", "head", "--plan", "--json").stdout)
    assert plan["embedders"]["static"]["dimension"] == 64
    project.run("upgrade", "head")
    assert count(project, "products_v2") == 2
    assert "No drift" in project.run("check").stdout


def test_a_vector_size_that_the_embedder_does_not_make_is_a_plan_time_error(project):
    from tests.conftest import store_snapshot

    linear(project)
    with_static_embedder(project)
    project.run("upgrade", "head")
    before = store_snapshot(project.config())
    project.revision("ccc333", "bbb222", SWITCH.format(size=", size: 384"), "switch to static")
    proc = project.run("upgrade", "head", check=False)
    assert proc.returncode == 1
    assert "size is 384 but embedder 'static' (static tokenlearn) makes 64-d vectors" in proc.stderr
    assert store_snapshot(project.config()) == before


def test_a_changed_model_behind_an_embedder_name_is_refused(project):
    linear(project)
    with_static_embedder(project)
    project.revision("ccc333", "bbb222", SWITCH.format(size=""), "switch to static")
    project.run("upgrade", "head")
    ini = project.root / "vecmig.ini"
    ini.write_text(ini.read_text() + "dimensions = 32\n")
    project.revision("ddd444", "ccc333", """
        upgrade:
          - add_vector: {collection: products_v2, name: small, embedder: static}
        """, "another vector")
    proc = project.run("upgrade", "head", check=False)
    assert proc.returncode == 1
    assert "embedder 'static' is not the model that embedded the data under that name" in proc.stderr


def test_status_shows_a_running_upgrade_from_another_shell_then_the_interrupted_one(project):
    big_seed(project, 6000)
    proc = project.popen("upgrade", "head")
    while "+ create_collection" not in proc.stdout.readline():
        pass
    time.sleep(1.0)
    running = json.loads(project.run("status", "--json").stdout)  # the embedded store is busy: read the run's status file
    assert running["state"] == "running" and running["source"].startswith("status file")
    (op,) = [o for o in running["steps"][0]["ops"] if o["op"] == "bulk_insert"]
    assert 0 < op["progress"]["done"] < 6000 and op["progress"]["total"] == 6000
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    interrupted = json.loads(project.run("status", "--json").stdout)
    assert interrupted["state"] == "interrupted" and interrupted["lock"]["stale"] is True
    assert interrupted["steps"][0]["revision"] == "big001"
    assert "interrupted" in project.run("status").stdout
    project.run("upgrade", "head")
    assert json.loads(project.run("status", "--json").stdout)["state"] == "idle"


def test_validate_no_store_checks_the_files_without_connecting(project):
    linear(project)
    out = project.run("--url", "qdrant://127.0.0.1:9", "validate", "--no-store").stdout
    assert "2 revision files OK" in out
    project.revision("bad001", "bbb222", "upgrade:\n  - create_colection: {name: x}\n")
    proc = project.run("--url", "qdrant://127.0.0.1:9", "validate", "--no-store", check=False)
    assert proc.returncode == 1 and "unknown op 'create_colection'" in proc.stdout


GATED_SWITCH = """
upgrade:
  - create_collection: {name: products_v2, vectors: {v: {size: 4, distance: cosine}}}
  - copy: {source: products_v1, target: products_v2, filter: {must: [{key: kind, match: {value: a}}]}}
  - repoint_alias: {alias: products, to: products_v2}
  - verify: {source: products_v1, target: products_v2}
downgrade: auto
"""


def test_rollback_undoes_an_upgrade_stopped_by_a_failed_gate_and_the_store_is_back_at_its_heads(project):
    from tests.conftest import store_snapshot

    linear(project)
    project.run("upgrade", "head")
    before = store_snapshot(project.config())
    path = project.revision("ccc333", "bbb222", GATED_SWITCH, "switch products")
    failed = project.run("upgrade", "head", check=False)
    assert failed.returncode == 1 and "verify" in failed.stderr and "vecmig rollback" in failed.stderr
    assert status(project)["heads"] == ["bbb222"]
    assert store_snapshot(project.config())["aliases"] == {"products": "products_v2"}  # half-way: the alias moved

    refused = project.run("downgrade", "-1", "--yes", check=False)
    assert refused.returncode == 1 and "stopped half-way" in refused.stderr and "vecmig rollback" in refused.stderr
    plan = json.loads(project.run("rollback", "--plan", "--json").stdout)
    assert plan["direction"] == "rollback" and plan["heads_before"] == plan["heads_after"] == ["bbb222"]
    assert [op.split("(")[0] for op in plan["steps"][0]["ops"]] == ["repoint_alias", "nothing_to_undo", "drop_collection"]
    assert project.run("rollback", check=False).returncode == 1  # it drops a collection: needs --yes
    out = project.run("rollback", "--yes").stdout
    assert "Roll back the interrupted upgrade of ccc333" in out

    after = store_snapshot(project.config())
    for snap in (before, after):
        snap["collections"].pop("vecmig_state")  # the journal keeps the story
    assert after == before  # collections, points and aliases as they were
    assert status(project)["heads"] == ["bbb222"]
    assert "Nothing to roll back" in project.run("rollback").stdout
    path.write_text(path.read_text().replace("filter: {must: [{key: kind, match: {value: a}}]}", "vectors: {v: v}"))
    project.run("upgrade", "head")  # a fresh run of the fixed revision
    assert status(project)["heads"] == ["ccc333"] and count(project, "products_v2") == 2


def killed_after_applying_op_0(project, rev_id: str) -> None:
    """The store as a run killed between applying op 0 of ``rev_id`` and journaling it leaves it."""
    from vecmig.command import open_store, script_directory

    cfg = project.config()
    rev = script_directory(cfg).get_revision(rev_id)
    op = rev.upgrade_ops(cfg)[0]
    with open_store(cfg) as (backend, state):
        state.ensure()
        run, _ = state.begin_step(rev_id, "up", rev.checksum)
        state.record_op(rev_id, "up", 0, {"run": run, "op": op.op_name, "checksum": rev.checksum, "status": "started"})
        backend.create_collection(op.spec())


@pytest.mark.parametrize("way_out", ["upgrade", "rollback"])
def test_an_op_applied_by_a_killed_run_but_never_journaled_is_found_in_the_store(project, way_out):
    linear(project)
    killed_after_applying_op_0(project, "aaa111")
    if way_out == "upgrade":  # resumes: the collection is there, so create_collection is taken as done
        out = project.run("upgrade", "head").stdout
        assert "(resuming)" in out and "applied by the interrupted run, found in the store" in out
        assert status(project)["heads"] == ["bbb222"] and count(project, "products_v1") == 2
        project.run("downgrade", "base", "--yes")  # its reverse needs no journaled undo data
    else:  # undone: the collection the killed run created is dropped too
        plan = json.loads(project.run("rollback", "--plan", "--json").stdout)
        assert [op.split("(")[0] for op in plan["steps"][0]["ops"]] == ["drop_collection"]
        project.run("rollback", "--yes")
        assert status(project)["heads"] == []
        project.run("upgrade", "head")  # a fresh run creates it again
    from tests.conftest import store_snapshot

    assert set(store_snapshot(project.config())["collections"]) <= {"products_v1", "vecmig_state"}


def test_history_i_marks_every_applied_revision(project):
    linear(project)
    project.revision("ccc333", "bbb222", "upgrade: []\n", "later")
    project.run("upgrade", "bbb222")
    out = project.run("history", "-i").stdout.splitlines()
    assert "(head)" in out[0] and "(applied)" not in out[0] and "(current)" not in out[0]
    assert out[1].startswith("aaa111 -> bbb222") and out[1].endswith("(current), seed products")
    assert out[2].startswith("<base> -> aaa111") and "(applied)" in out[2]
    assert "(applied)" not in project.run("history").stdout  # without -i the store isn't asked


def test_without_a_config_nothing_runs_but_init_and_an_explicit_store(project):
    linear(project)
    (project.root / "vecmig.ini").unlink()
    proc = project.run("history", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: no vecmig.ini in {project.root}")
    # a store named on the command line (or by VECMIG_URL) with a versions/ folder here is enough
    project.run("--url", "qdrant+local://store", "upgrade", "head")
    assert json.loads(project.run("current", "--json", VECMIG_URL="qdrant+local://store").stdout)["heads"] == ["bbb222"]
    assert not (project.root / ".vecmig").exists()
    # ... but not without versions/: the folder this runs in isn't a project
    elsewhere = project.root / "elsewhere"
    elsewhere.mkdir()
    proc = project.run("-c", "nowhere/vecmig.ini", "current", check=False)
    assert proc.returncode == 1 and "nowhere/vecmig.ini: config file not found" in proc.stderr
    import subprocess

    from tests.conftest import VECMIG

    proc = subprocess.run([VECMIG, "--url", "qdrant+local://store", "current"], cwd=elsewhere, env=project.env(), capture_output=True, text=True)
    assert proc.returncode == 1 and "no versions/ folder for the store --url or VECMIG_URL names" in proc.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == []
    subprocess.run([VECMIG, "init"], cwd=elsewhere, env=project.env(), check=True, capture_output=True)
    assert (elsewhere / "vecmig.ini").is_file()


def test_init_writes_a_gitignore_for_the_store_and_suggests_the_shipped_embedder(tmp_path):
    import subprocess

    from tests.conftest import VECMIG

    subprocess.run([VECMIG, "init", "p1"], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "p1" / ".gitignore").read_text().splitlines()[-1] == ".vecmig/"
    ini = (tmp_path / "p1" / "vecmig.ini").read_text()
    assert "; provider = static\n; model = tokenlearn" in ini and "pip install 'vecmig[static]'" in ini
    assert "sentence-transformers" not in ini
    # an existing .gitignore keeps its lines and gets the missing one once
    (tmp_path / "p2").mkdir()
    (tmp_path / "p2" / ".gitignore").write_text("*.pyc")
    subprocess.run([VECMIG, "init", "p2", "--url", "qdrant+local://data/store"], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "p2" / ".gitignore").read_text() == "*.pyc\n.vecmig/\ndata/store/\n"
    (tmp_path / "p3").mkdir()
    (tmp_path / "p3" / ".gitignore").write_text(".vecmig\n")
    subprocess.run([VECMIG, "init", "p3"], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "p3" / ".gitignore").read_text() == ".vecmig\n"


def test_a_python_step_without_reverse_is_irreversible_but_needs_no_consent(project):
    project.write("versions/ppp111_steps.py", """
        revision = "ppp111"
        down_revision = None

        def upgrade(op):
            op.run(lambda ctx: None, description="note the time")
            op.run(lambda ctx: None, description="wipe the cache", destructive=True)
    """)
    plan = project.run("upgrade", "head", "--plan").stdout
    assert "    1. run(note the time)" in plan and "  ! 2. run(wipe the cache)" in plan
    proc = project.run("upgrade", "head", check=False)  # not a terminal: refused without --yes
    assert proc.returncode == 1 and "this plan deletes data (ppp111: run(wipe the cache))" in proc.stderr
    project.write("versions/ppp111_steps.py", """
        revision = "ppp111"
        down_revision = None

        def upgrade(op):
            op.run(lambda ctx: None, description="note the time")
    """)
    project.run("upgrade", "head")  # irreversible, not destructive: no --yes needed
    proc = project.run("downgrade", "-1", check=False)
    assert proc.returncode == 1 and "can't be undone (a custom Python step without `reverse=`)" in proc.stderr
