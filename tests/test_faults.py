"""Faults: a revision file edited under its half-done step, rollback after a kill, Ctrl-C and SIGTERM.

Whatever the user edits or kills, vecmig never skips an op, never undoes one that didn't run, and
never leaves part of one behind after a rollback. Each test drives the installed `vecmig` script
against an embedded store and compares the store before and after.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.conftest import store_snapshot

pytestmark = pytest.mark.e2e

BASE = """
upgrade:
  - create_collection: {name: docs, vectors: {v: {size: 4, distance: cosine}}}
  - bulk_insert: {collection: docs, file: base.jsonl}
downgrade: auto
"""

#: fails at the backfill: the points have no `title`
HALF_DONE = """
upgrade:
  - add_vector: {collection: docs, name: nv, embedder: static}
  - backfill: {source: docs, vector: nv, embedder: static, text: "{{ title }}"}
"""

#: the file as the user edits it after the failure: an op in front, the template fixed
EDITED = """
upgrade:
  - bulk_insert: {{collection: docs, {points}}}
  - add_vector: {{collection: docs, name: nv, embedder: static}}
  - backfill: {{source: docs, vector: nv, embedder: static, text: "{{{{ text }}}}"}}
"""

NEW_POINTS = "file: new.jsonl"  # 50 points that aren't in the store
OVER_OLD_POINTS = "points: [" + ", ".join(f"{{id: {i}, payload: {{text: again {i}}}, vectors: {{v: [0, 0, 1, 0]}}}}" for i in range(10)) + "]"


def points(first: int, n: int, word: str) -> str:
    return "".join(json.dumps({"id": i, "payload": {"text": f"{word} {i}"}, "vectors": {"v": [1.0, float(i % 5), 0.5, 0.1]}}) + "\n"
                   for i in range(first, first + n))


def docs_project(project):
    ini = project.root / "vecmig.ini"
    ini.write_text(ini.read_text() + "[embedder:static]\nprovider = static\n")
    project.write("versions/base.jsonl", points(0, 40, "doc"))
    project.write("versions/new.jsonl", points(100, 50, "new"))
    project.revision("base01", None, BASE, "docs")
    project.run("upgrade", "head")


def state_records(project) -> dict:
    from vecmig.command import open_store

    with open_store(project.config()) as (_, state):
        return {k: v for kind in ("heads", "step", "journal", "checkpoint") for k, v in state.records.scan(kind).items()}


def one_error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def count(project, collection: str) -> int:
    from vecmig.command import open_store

    with open_store(project.config()) as (backend, _):
        return backend.count(collection)


@pytest.mark.parametrize("edit", [NEW_POINTS, OVER_OLD_POINTS], ids=["new-points-in-front", "old-points-upserted-in-front"])
def test_a_file_edited_under_its_half_done_upgrade_is_refused_and_rollback_undoes_only_what_ran(project, edit):
    docs_project(project)
    path = project.revision("nv0001", "base01", HALF_DONE, "new vector")
    failed = project.run("upgrade", "head", check=False)
    assert "uses 'title'" in one_error_line(failed) and "vecmig rollback" in failed.stderr
    before = store_snapshot(project.config())
    path.write_text(path.read_text().split("upgrade:")[0] + EDITED.format(points=edit).lstrip())

    for args in (["upgrade", "head", "--plan"], ["upgrade", "head"], ["upgrade", "head", "--accept-checksums"]):
        line = one_error_line(project.run(*args, check=False))
        assert "nv0001_r.yaml" in line and "upgrade[0] add_vector, which the interrupted run did" in line
        assert "vecmig rollback" in line
    assert store_snapshot(project.config()) == before  # nothing skipped, nothing written

    plan = json.loads(project.run("rollback", "--plan", "--json").stdout)
    assert [op.split("(")[0] for op in plan["steps"][0]["ops"]] == ["nothing_to_undo", "drop_vector"]  # from the journal
    project.run("rollback", "--yes")
    after = store_snapshot(project.config(), with_state=False)
    assert after == {**before, "collections": {"docs": before["collections"]["docs"]}}  # points 0-39 untouched
    assert count(project, "docs") == 40

    out = project.run("upgrade", "head").stdout  # a fresh run of the edited file
    assert "+ bulk_insert" in out and "already done" not in out
    assert count(project, "docs") == (90 if edit == NEW_POINTS else 40)
    assert json.loads(project.run("current", "--json").stdout)["heads"] == ["nv0001"]


def test_an_edit_that_only_changes_what_is_still_to_run_is_adopted_with_accept_checksums(project):
    docs_project(project)
    gate = """
        upgrade:
          - add_vector: {collection: docs, name: nv, embedder: static}
          - backfill: {source: docs, vector: nv, embedder: static, text: "{{ text }}"}
          - verify: {source: docs, vector: nv, embedder: static, text: "{{ text }}", k: 1, min_recall: 1.0,
                     golden: [{query: doc 3, relevant: [999]}]}
        """
    path = project.revision("nv0001", "base01", gate, "new vector")
    assert "verify" in one_error_line(project.run("upgrade", "head", check=False))
    path.write_text(path.read_text().replace("relevant: [999]", "relevant: [3]"))  # the gate's golden set fixed

    line = one_error_line(project.run("upgrade", "head", check=False))
    assert "changed while its upgrade was half-done" in line and "--accept-checksums" in line and "vecmig rollback" in line
    out = project.run("upgrade", "head", "--accept-checksums").stdout
    assert "(resuming)" in out and out.count("(already done)") == 2 and "+ verify" in out
    assert json.loads(project.run("current", "--json").stdout)["heads"] == ["nv0001"]
    project.run("validate")  # the adopted file is the applied one


def test_an_edited_seed_file_under_a_half_done_bulk_insert_is_refused(project):
    docs_project(project)
    project.write("versions/more.jsonl", points(200, 3000, "more"))
    project.revision("more01", "base01", """
        upgrade:
          - bulk_insert: {collection: docs, file: more.jsonl, batch_size: 50}
        """, "more docs")
    killed_in_bulk_insert(project)
    project.write("versions/more.jsonl", points(500, 3000, "other"))
    line = one_error_line(project.run("upgrade", "head", check=False))
    assert "more.jsonl (read by upgrade[0] bulk_insert, which the interrupted run started) changed" in line


def killed_in_bulk_insert(project) -> int:
    """Kill -9 `vecmig upgrade head` part-way through a bulk_insert; the points it got to."""
    proc = project.popen("upgrade", "head")
    bulk_insert_under_way(project)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    written = count(project, "docs")
    assert 40 < written < 3040, written
    return written


def bulk_insert_under_way(project) -> None:
    """Wait until the running bulk_insert has written some batches (its checkpoint says so)."""
    from vecmig.backends import parse_url
    from vecmig.status import read_status_file

    cfg = project.config()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mirrored = read_status_file(parse_url(cfg.url).status_file(cfg.here)) or {}
        for step in mirrored.get("steps", []):
            for op in step.get("ops", []):
                if op.get("op") == "bulk_insert" and (op.get("checkpoint") or {}).get("written", 0) >= 300:
                    return True
        time.sleep(0.02)
    raise AssertionError("the bulk_insert never got going")


def test_rollback_after_a_kill_inside_bulk_insert_deletes_what_it_wrote_and_clears_its_checkpoint(project):
    docs_project(project)
    before = store_snapshot(project.config(), with_state=False)
    project.write("versions/more.jsonl", points(200, 3000, "more"))
    project.revision("more01", "base01", """
        upgrade:
          - bulk_insert: {collection: docs, file: more.jsonl, batch_size: 50}
        """, "more docs")
    killed_in_bulk_insert(project)
    assert json.loads(project.run("status", "--json").stdout)["state"] == "interrupted"

    plan = json.loads(project.run("rollback", "--plan", "--json").stdout)
    (op,) = plan["steps"][0]["ops"]
    assert op.startswith('delete_points(collection="docs"')
    project.run("rollback", "--yes")
    assert store_snapshot(project.config(), with_state=False) == before  # the 40 old points, nothing else
    assert not [k for k in state_records(project) if k.startswith("checkpoint/")]
    assert json.loads(project.run("status", "--json").stdout)["state"] == "idle"
    assert "No drift" in project.run("check").stdout

    project.run("upgrade", "head")  # a fresh run starts from the first point, not from the old cursor
    assert count(project, "docs") == 3040


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_stops_cleanly_with_one_line_saying_where_and_the_ways_on(project, sig):
    docs_project(project)
    project.write("versions/more.jsonl", points(200, 3000, "more"))
    project.revision("more01", "base01", """
        upgrade:
          - bulk_insert: {collection: docs, file: more.jsonl, batch_size: 50}
        """, "more docs")
    proc = project.popen("upgrade", "head")
    bulk_insert_under_way(project)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: interrupted in upgrade[0] bulk_insert of more01 (")
    assert "of 3,000 points done)" in line and "`vecmig upgrade` resumes" in line and "`vecmig rollback` undoes" in line
    assert project.run("lock", "status").stdout.strip() == "unlocked"
    status = json.loads(project.run("status", "--json").stdout)
    assert status["state"] == "interrupted"
    out = project.run("upgrade", "head").stdout
    assert "(resuming)" in out
    assert count(project, "docs") == 3040


def test_a_python_revision_stopped_in_its_custom_step_resumes_where_it_stopped(project):
    project.write("versions/py0001_steps.py", '''
        """steps"""
        import os

        revision = "py0001"
        down_revision = None


        def fail_once(ctx):
            if os.environ.get("FAIL_STEP"):
                raise RuntimeError("the step failed")
            ctx.backend.upsert("docs", [])


        def upgrade(op):
            op.create_collection(name="docs", vectors={"v": {"size": 4}})
            op.run(fail_once, reverse=lambda ctx: None, description="fail once")
        ''')
    failed = project.run("upgrade", "head", check=False, FAIL_STEP="1")
    assert "the step failed" in one_error_line(failed)
    out = project.run("upgrade", "head").stdout  # the step's functions are matched by name, in a new process
    assert "(resuming)" in out and "= create_collection" in out and "(already done)" in out and "+ run(fail once)" in out
