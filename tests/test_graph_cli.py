"""The revision graph through the installed `vecmig` command on an embedded store: after each
command, the heads recorded, what the store says is applied, and what the revisions made."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import store_snapshot

pytestmark = pytest.mark.e2e

#: (revision, down_revision, depends_on, branch_label): every revision creates a collection c_<rev>
TRUNK = [
    ("s1", None, None, None), ("s2", "s1", None, None), ("s3", "s2", None, None), ("s4", "s3", None, None),
    ("z1", "s2", None, "zed"), ("z2", "z1", None, None),
    ("f1", "s1", None, None), ("f2", "f1", None, "fin"), ("f3", "f2", None, None),
]
ROOTS = [
    ("a1", None, None, "main"), ("a2", "a1", None, None), ("a3", "a2", None, None),
    ("y1", None, None, "search"), ("y2", "y1", "a2", None), ("y3", "y2", None, None),
]


def graph(project, shape) -> None:
    for rev, down, deps, label in shape:
        extra = (f"depends_on: {deps}\n" if deps else "") + (f"branch_labels: [{label}]\n" if label else "")
        body = extra + f"upgrade:\n  - create_collection: {{name: c_{rev}, vectors: {{v: {{size: 4, distance: cosine}}}}}}\ndowngrade: auto\n"
        project.revision(rev, down, body)


def heads(project) -> list[str]:
    return json.loads(project.run("current", "--json").stdout)["heads"]


def applied(project) -> list[str]:
    """What the store says is applied (`history -i`); its step records must say the same."""
    rows = json.loads(project.run("history", "-i", "--json").stdout)
    for row in rows:
        assert bool(row["applied_at"]) == row["applied"], row
    return sorted(row["revision"] for row in rows if row["applied"])


def made(project) -> list[str]:
    """The revisions whose collection is in the store."""
    names = store_snapshot(project.config(), with_state=False)["collections"]
    return sorted(name.removeprefix("c_") for name in names)


def test_stamp_onto_another_branch_keeps_the_line_the_store_is_on(project):
    graph(project, TRUNK)
    project.run("upgrade", "s4")
    assert heads(project) == ["s4"] and applied(project) == made(project) == ["s1", "s2", "s3", "s4"]

    plan = project.run("stamp", "z1", "--plan").stdout
    assert "Heads: s4 -> s4, z1" in plan and "Counted as applied: z1" in plan and "nothing was written" in plan
    assert heads(project) == ["s4"] and applied(project) == ["s1", "s2", "s3", "s4"]

    assert "Stamped: s4 -> s4, z1" in project.run("stamp", "z1").stdout
    assert heads(project) == ["s4", "z1"] and applied(project) == ["s1", "s2", "s3", "s4", "z1"]

    # s3 and s4 still count as applied: `upgrade heads` runs only what is missing (it would fail on c_s3 otherwise)
    project.run("upgrade", "heads")
    assert heads(project) == ["f3", "s4", "z2"]
    assert applied(project) == ["f1", "f2", "f3", "s1", "s2", "s3", "s4", "z1", "z2"]
    assert made(project) == ["f1", "f2", "f3", "s1", "s2", "s3", "s4", "z2"]  # z1 was stamped, never run

    project.run("stamp", "s3")
    assert heads(project) == ["f3", "s3", "z2"] and "s4" not in applied(project)
    project.run("stamp", "--purge", "z1")
    assert heads(project) == ["z1"] and applied(project) == ["s1", "s2", "z1"]


def test_stamp_takes_several_targets_and_label_forms(project):
    graph(project, TRUNK)
    project.run("stamp", "s4", "zed")
    assert heads(project) == ["s4", "z1"] and applied(project) == ["s1", "s2", "s3", "s4", "z1"]
    project.run("stamp", "fin@head")
    assert heads(project) == ["f3", "s4", "z1"]
    result = json.loads(project.run("stamp", "fin@base", "--json").stdout)
    assert result["heads"] == ["s4", "z1"] and result["unapplied"] == ["f3", "f2", "f1"] and result["stamped"]
    assert heads(project) == ["s4", "z1"] and applied(project) == ["s1", "s2", "s3", "s4", "z1"]
    assert made(project) == []  # stamping runs nothing


def test_a_bare_label_upgrades_to_the_revision_that_declares_it(project):
    graph(project, TRUNK)
    project.run("upgrade", "fin")
    assert heads(project) == ["f2"] and applied(project) == made(project) == ["f1", "f2", "s1"]
    project.run("upgrade", "fin@head")
    assert heads(project) == ["f3"] and made(project) == ["f1", "f2", "f3", "s1"]
    history = json.loads(project.run("history", "-r", "fin:", "--json").stdout)
    assert [r["revision"] for r in history] == ["f3", "f2"]


def test_label_relative_steps_move_one_branch(project):
    graph(project, TRUNK)
    project.run("upgrade", "s2")
    project.run("upgrade", "zed@+1")
    assert heads(project) == ["z1"] and made(project) == ["s1", "s2", "z1"]
    project.run("upgrade", "fin@+2")
    assert heads(project) == ["f2", "z1"] and made(project) == ["f1", "f2", "s1", "s2", "z1"]
    project.run("downgrade", "fin@-1", "--yes")
    assert heads(project) == ["f1", "z1"] and applied(project) == made(project) == ["f1", "s1", "s2", "z1"]
    project.run("upgrade", "fin@head")
    project.run("downgrade", "f1+1", "--yes")  # down to f2, the revision above f1
    assert heads(project) == ["f2", "z1"] and applied(project) == made(project) == ["f1", "f2", "s1", "s2", "z1"]


def test_relative_steps_after_a_dependency_on_another_line(project):
    graph(project, ROOTS)
    project.run("upgrade", "y2")
    assert heads(project) == ["a2", "y2"] and applied(project) == made(project) == ["a1", "a2", "y1", "y2"]
    project.run("upgrade", "+1")
    assert heads(project) == ["a2", "y3"] and made(project) == ["a1", "a2", "y1", "y2", "y3"]
    project.run("downgrade", "-1", "--yes")
    assert heads(project) == ["a2", "y2"] and applied(project) == made(project) == ["a1", "a2", "y1", "y2"]
    project.run("downgrade", "-1", "--yes")
    assert heads(project) == ["a2", "y1"] and applied(project) == made(project) == ["a1", "a2", "y1"]
    before = store_snapshot(project.config())
    proc = project.run("downgrade", "-1", "--yes", check=False)
    assert proc.returncode == 1
    assert proc.stderr == "error: -1: the store is at several heads (a2, y1): name the revision to downgrade to, e.g. `a2-1`\n"
    assert store_snapshot(project.config()) == before
    project.run("downgrade", "search@-1", "--yes")
    assert heads(project) == ["a2"] and made(project) == ["a1", "a2"]


def test_current_json_says_which_heads_are_script_heads_and_applied(project):
    graph(project, ROOTS)
    project.run("upgrade", "y3")
    revisions = {r["revision"]: r for r in json.loads(project.run("current", "--json").stdout)["revisions"]}
    assert set(revisions) == {"a2", "y3"}
    assert revisions["y3"]["is_head"] and not revisions["a2"]["is_head"]  # a3 is the script's head of main
    assert revisions["a2"]["applied"] and revisions["y3"]["applied"]


def test_heads_resolving_dependencies_and_revision_splice_and_merge_label(project):
    graph(project, ROOTS[:2] + ROOTS[3:5])  # a1 -> a2 and y1 -> y2, y2 depends on a2
    assert [r["revision"] for r in json.loads(project.run("heads", "--json").stdout)] == ["a2", "y2"]
    resolved = json.loads(project.run("heads", "--resolve-dependencies", "--json").stdout)
    assert [r["revision"] for r in resolved] == ["y2"]

    proc = project.run("revision", "-m", "off a1", "--head", "a1", check=False)
    assert proc.returncode == 1 and proc.stderr == (
        "error: --head a1: revision a1 is not a head (a2 is above it): pass --splice to start a new branch "
        "from it, or continue its line with --head a1@head\n"
    )
    project.run("revision", "-m", "off a1", "--head", "a1", "--splice", "--rev-id", "b1")
    assert sorted(r["revision"] for r in json.loads(project.run("heads", "--json").stdout)) == ["a2", "b1", "y2"]

    project.run("revision", "-m", "uses search", "--head", "b1", "--depends-on", "search", "--rev-id", "b2")
    assert "depends_on: [search]" in (project.root / "versions" / "b2_uses_search.yaml").read_text()

    project.run("merge", "a2", "b2", "-m", "join", "--rev-id", "m1", "--branch-label", "joined")
    merge = json.loads(project.run("show", "joined", "--json").stdout)
    assert merge["revision"] == "m1" and merge["down_revision"] == ["a2", "b2"] and merge["branch_labels"] == ["joined"]


def test_edit_opens_the_revision_in_the_editor(project, tmp_path):
    graph(project, TRUNK)
    opened = tmp_path / "opened.txt"
    editor = tmp_path / "editor.py"
    editor.write_text(f"import sys\nopen({str(opened)!r}, 'a').write(sys.argv[1] + '\\n')\n", encoding="utf-8")
    project.run("edit", "fin", EDITOR=f"{sys.executable} {editor}")
    project.run("edit", "s2@heads", EDITOR=f"{sys.executable} {editor}")
    assert opened.read_text().split() == [str(project.root / "versions" / f"{r}_r.yaml") for r in ("f2", "s4", "z2")]
    project.run("upgrade", "zed")
    project.run("edit", "current", EDITOR=f"{sys.executable} {editor}")
    assert opened.read_text().split()[-1] == str(project.root / "versions" / "z1_r.yaml")
    proc = project.run("edit", "zed", EDITOR=f"{sys.executable} -c 'import sys; sys.exit(3)'", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("error: edit: the editor ") and "exited 3 on versions/z1_r.yaml" in proc.stderr


def test_quiet_prints_nothing_but_json_and_errors(project):
    graph(project, TRUNK)
    proc = project.run("-q", "upgrade", "s2")
    assert proc.stdout == "" and heads(project) == ["s2"]
    assert project.run("-q", "stamp", "z1").stdout == "" and heads(project) == ["z1"]
    assert project.run("-q", "history").stdout == ""
    assert json.loads(project.run("-q", "current", "--json").stdout)["heads"] == ["z1"]
    proc = project.run("-q", "stamp", "nosuch", check=False)
    assert proc.returncode == 1 and proc.stdout == "" and proc.stderr == "error: unknown revision 'nosuch': see `vecmig history` for the ids\n"


# every bad input: one `error:` line naming what is wrong and what to do, exit 1, store and versions untouched
BAD = [
    (["stamp", "s2", "s4"], "error: stamp: s2 is below s4: stamp one revision per line"),
    (["stamp", "nosuch"], "error: unknown revision 'nosuch': see `vecmig history` for the ids"),
    (["stamp", "s2+1"], "error: stamp s2+1: stamp takes revisions, not steps: name a revision (`vecmig history` lists them)"),
    (["upgrade", "fin@-1"], "error: 'fin@-1' is below the store: use `vecmig downgrade fin@-1`"),
    (["upgrade", "s2@head"], "error: revision s2 has several heads (s4, z2): name one of them"),
    (["upgrade", "fin@s4"], "error: revision s4 is not on branch 'fin': see `vecmig history -r fin@base:fin@heads`"),
    (["downgrade", "fin@-1"], "error: fin@-1: nothing on fin's lines is applied (the store is at s4, z1)"),
    (["downgrade", "-1"], "error: -1: the store is at several heads (s4, z1): name the revision to downgrade to, e.g. `s4-1`"),
    (["downgrade", "s1+1"], "error: s1+1: the line branches after s1 (f1, s2): name a revision by id, label@head or label@+N"),
    (["history", "-r", "fin@head:fin@base"], "error: history range 'fin@head:fin@base': fin@base can only be the older end: write fin@base:fin@head"),
    (["revision", "-m", "x", "--head", "s2"], "error: --head s2: revision s2 is not a head (s4, z2 are above it): pass --splice to start a new branch from it, or name a head (see `vecmig heads`)"),
    (["merge", "s3", "z2"], "error: merge: revision s3 is not a head (s4 is above it): pass --splice to merge it anyway, or merge s3@head instead"),
    (["edit", "nosuch"], "error: unknown revision 'nosuch': see `vecmig history` for the ids"),
    (["show", "base"], "error: 'base' is not a revision (it is below the first one): name a revision, e.g. an id or label@head"),
]


def test_bad_graph_input_gets_one_line_and_changes_nothing(project):
    graph(project, TRUNK)
    project.run("upgrade", "s4")
    project.run("stamp", "z1")
    before = store_snapshot(project.config())
    files = sorted(p.name for p in (project.root / "versions").iterdir())
    for args, expected in BAD:
        proc = project.run(*args, check=False, EDITOR="true")
        assert (proc.returncode, proc.stderr) == (1, expected + "\n"), args
        assert store_snapshot(project.config()) == before, args
        assert sorted(p.name for p in (project.root / "versions").iterdir()) == files, args
