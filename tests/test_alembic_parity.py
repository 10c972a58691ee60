"""The revision graph against Alembic itself: the same graphs and the same commands, run through
vecmig on an embedded Qdrant store and through Alembic (``alembic.command``) on sqlite, must leave
the same revisions applied. Where vecmig differs on purpose (the README's "Differences from
Alembic"), a test shows both behaviours."""

from __future__ import annotations

import io
import textwrap
import warnings
from pathlib import Path

import pytest

pytest.importorskip("alembic", reason="Alembic is in the `test` extra: pip install -e '.[test]'")

from alembic import command as alembic_command  # noqa: E402
from alembic.config import Config as AlembicConfig  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory as AlembicScripts  # noqa: E402

from vecmig import command  # noqa: E402
from vecmig.config import Config  # noqa: E402
from vecmig.errors import VecmigError  # noqa: E402

#: (revision, down_revision, depends_on, branch_labels)
SHAPES = {
    # a trunk with two labelled branches: zed off s2, and f1 -> f2 (labelled fin) -> f3 off s1
    "trunk": [
        ("s1", None, None, None), ("s2", "s1", None, None), ("s3", "s2", None, None), ("s4", "s3", None, None),
        ("z1", "s2", None, "zed"), ("z2", "z1", None, None),
        ("f1", "s1", None, None), ("f2", "f1", None, "fin"), ("f3", "f2", None, None),
    ],
    # two labelled roots; y2 depends on a2, the middle of the other line
    "roots": [
        ("a1", None, None, "main"), ("a2", "a1", None, None), ("a3", "a2", None, None),
        ("y1", None, None, "search"), ("y2", "y1", "a2", None), ("y3", "y2", None, None),
    ],
    # a merge, then more revisions
    "merge": [
        ("a", None, None, None), ("b", "a", None, None), ("c", "a", None, None),
        ("m", ("b", "c"), None, None), ("n", "m", None, None), ("o", "n", None, None),
    ],
    # depends_on naming a branch label
    "labeldep": [
        ("a1", None, None, "main"), ("a2", "a1", None, None),
        ("y1", None, None, None), ("y2", "y1", "main", None),
    ],
}

ALEMBIC_ENV = '''
from alembic import context
from sqlalchemy import create_engine

engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
'''


class AlembicTwin:
    """An Alembic project with the same graph (migrations that do nothing), on sqlite."""

    def __init__(self, root: Path, shape):
        (root / "versions").mkdir(parents=True)
        (root / "env.py").write_text(ALEMBIC_ENV, encoding="utf-8")
        (root / "script.py.mako").write_text("", encoding="utf-8")
        for rev, down, deps, labels in shape:
            (root / "versions" / f"{rev}_r.py").write_text(
                f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = {labels!r}\ndepends_on = {deps!r}\n\n"
                "def upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n",
                encoding="utf-8",
            )
        self.url = f"sqlite:///{root / 'alembic.db'}"
        self.cfg = AlembicConfig(stdout=io.StringIO())
        self.cfg.set_main_option("script_location", str(root))
        self.cfg.set_main_option("sqlalchemy.url", self.url)

    def run(self, name: str, *args, **kwargs) -> str:
        self.cfg.stdout = io.StringIO()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning (e.g. "downgrade -1 from multiple heads") is a refusal here
            getattr(alembic_command, name)(self.cfg, *args, **kwargs)
        return self.cfg.stdout.getvalue()

    def heads(self) -> list[str]:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.url)
        try:
            with engine.connect() as connection:
                return sorted(MigrationContext.configure(connection).get_current_heads())
        finally:
            engine.dispose()

    def applied(self) -> set[str]:
        """What the version table means: its heads and everything they need, by Alembic's own map."""
        scripts = AlembicScripts.from_config(self.cfg)
        return {r.revision for r in scripts.revision_map.iterate_revisions(tuple(self.heads()), "base")}

    def history(self, rng: str) -> list[str]:
        return [line.split(" -> ", 1)[1].split()[0].rstrip(",") for line in self.run("history", rev_range=rng).splitlines() if " -> " in line]


class VecmigTwin:
    """A vecmig project with the same graph (revisions without ops), on an embedded Qdrant store."""

    def __init__(self, root: Path, shape):
        (root / "versions").mkdir(parents=True)
        (root / "vecmig.ini").write_text("[vecmig]\nurl = qdrant+local://store\nscript_location = versions\n", encoding="utf-8")
        for rev, down, deps, labels in shape:
            text = f"revision: {rev}\ndown_revision: {list(down) if isinstance(down, tuple) else down or 'null'}\n"
            text += f"depends_on: {deps}\n" if deps else ""
            text += f"branch_labels: [{labels}]\n" if labels else ""
            (root / "versions" / f"{rev}_r.yaml").write_text(text + "upgrade: []\n", encoding="utf-8")
        self.cfg = Config.load(root / "vecmig.ini")

    def run(self, name: str, *args, **kwargs):
        return getattr(command, name)(self.cfg, *args, **kwargs)

    def heads(self) -> list[str]:
        return command.current(self.cfg)["heads"]

    def applied(self) -> set[str]:
        """What the store says is applied: `history -i`, checked against the step records."""
        rows = command.history(self.cfg, indicate_current=True)
        for row in rows:  # a revision is applied exactly when its step record says when it was applied
            assert bool(row["applied_at"]) == row["applied"], row
        return {row["revision"] for row in rows if row["applied"]}

    def history(self, rng: str) -> list[str]:
        return [row["revision"] for row in command.history(self.cfg, rng)]

    def graph(self):
        return command.script_directory(self.cfg).graph


@pytest.fixture
def twins(tmp_path):
    def make(shape: str) -> tuple[VecmigTwin, AlembicTwin]:
        return VecmigTwin(tmp_path / "vecmig", SHAPES[shape]), AlembicTwin(tmp_path / "alembic", SHAPES[shape])

    return make


def call(twin, line: str):
    """Run `upgrade T`, `downgrade T`, `stamp [--purge] T...`; return None, or the error."""
    name, *args = line.split()
    kwargs = {}
    if "--purge" in args:
        args.remove("--purge")
        kwargs["purge"] = True
    if name == "stamp":
        args = [args[0] if len(args) == 1 and isinstance(twin, AlembicTwin) else tuple(args)]
    try:
        twin.run(name, *args, **kwargs)
    except VecmigError as e:
        return f"vecmig: {e}"
    except Exception as e:  # Alembic's CommandError, RevisionError, an assertion inside it, a warning
        if isinstance(twin, VecmigTwin):
            raise
        return f"alembic: {type(e).__name__}: {e}"
    return None


def run_side_by_side(vecmig: VecmigTwin, alembic: AlembicTwin, script: str) -> None:
    """Each line of ``script`` through both; ``!`` before a command: both must refuse it (and
    vecmig's store must be untouched). After each command both must have the same revisions
    applied, and vecmig's heads must be the maximal ones of them."""
    graph = vecmig.graph()
    for line in (part.strip() for part in script.split(";")):
        refused = line.startswith("!")
        line = line.lstrip("!")
        before = vecmig.heads(), vecmig.applied()
        v_error, a_error = call(vecmig, line), call(alembic, line)
        if refused:
            assert v_error and a_error, f"{line}: both should refuse it (vecmig: {v_error}; alembic: {a_error})"
            assert (vecmig.heads(), vecmig.applied()) == before, f"{line}: the store changed after an error"
            continue
        assert v_error is None and a_error is None, f"{line}: vecmig: {v_error}; alembic: {a_error}"
        applied = alembic.applied()
        assert vecmig.applied() == applied, f"{line}: vecmig has {sorted(vecmig.applied())}, alembic {sorted(applied)}"
        assert vecmig.heads() == graph.heads_of(applied), line
        assert set(alembic.heads()) <= set(vecmig.heads()), line


# -- the same as Alembic --------------------------------------------------------------------------------

def test_stamp_across_branches_moves_only_the_targets_lines(twins):
    run_side_by_side(*twins("trunk"), """
        upgrade s4; stamp z1; stamp z2; stamp s3; upgrade heads; stamp s2; stamp base; stamp s4 z1;
        stamp f1; stamp s1; stamp heads; stamp --purge s3; stamp zed; stamp fin@head; stamp fin@base;
        stamp --purge f3 z1
    """)


def test_stamp_across_lines_that_depend_on_each_other(twins):
    run_side_by_side(*twins("roots"), """
        upgrade heads; stamp a1; stamp y2; stamp a3; stamp search@base; stamp y1 a2; stamp y3; stamp main@head;
        !stamp -1; !stamp nosuch
    """)


def test_bare_labels_name_the_revision_that_declares_them(twins):
    run_side_by_side(*twins("trunk"), """
        upgrade fin; upgrade zed; upgrade fin@head; downgrade fin; downgrade zed; upgrade zed@head;
        downgrade s2; upgrade f1@head; downgrade f1
    """)


def test_label_relative_steps_and_rev_at_head(twins):
    run_side_by_side(*twins("trunk"), """
        upgrade s2; !upgrade +1; upgrade zed@+1; upgrade fin@+1; upgrade fin@+1; downgrade fin@-1;
        upgrade fin@head; !upgrade s2@head; downgrade f1+1; upgrade fin@f1+2; upgrade zed@s2+1;
        upgrade zed@heads; downgrade zed@-1
    """)


def test_relative_steps_after_a_cross_line_dependency(twins):
    run_side_by_side(*twins("roots"), """
        upgrade y2; upgrade +1; downgrade -1; downgrade -1; !upgrade +2; upgrade main@+1;
        downgrade main@-1; upgrade search@head; downgrade search@base; upgrade heads; downgrade main@base;
        upgrade search@head; downgrade -2
    """)


def test_rev_plus_n_down_to_a_merge_and_up_from_it(twins):
    run_side_by_side(*twins("merge"), """
        upgrade b; upgrade m; upgrade +1; downgrade b+1; upgrade m+2; downgrade n-1; !downgrade n-2;
        upgrade c+3; !upgrade o+1; downgrade base; upgrade +1; !upgrade +1
    """)


def test_depends_on_may_name_a_branch_label(twins):
    run_side_by_side(*twins("labeldep"), "upgrade y2; upgrade heads; downgrade main@base; upgrade y1; stamp y2")


@pytest.mark.parametrize("rng", [
    "fin:", "zed:", ":fin", "base:heads", "s2:", "f1@head:", ":zed@head", "s2:zed", "fin@f1:", "z1:z2",
])
def test_history_ranges_list_what_alembic_lists(twins, rng):
    vecmig, alembic = twins("trunk")
    assert sorted(vecmig.history(rng)) == sorted(alembic.history(rng))


@pytest.mark.parametrize("rng", ["main@base:main@head", "search:", ":search", "a2:", "base:search@head"])
def test_history_ranges_on_labelled_roots_list_what_alembic_lists(twins, rng):
    vecmig, alembic = twins("roots")
    assert sorted(vecmig.history(rng)) == sorted(alembic.history(rng))


def test_heads_and_heads_resolving_dependencies(twins):
    vecmig, alembic = twins("labeldep")
    for resolve in (False, True):
        shown = {line.split()[0] for line in alembic.run("heads", resolve_dependencies=resolve).splitlines()}
        assert {r["revision"] for r in vecmig.run("heads", resolve_dependencies=resolve)} == shown


# -- where vecmig differs on purpose (README: "Differences from Alembic") ------------------------------------

def test_minus_one_from_several_heads_is_refused_where_alembic_picks_a_head(twins):
    vecmig, alembic = twins("roots")
    for twin in (vecmig, alembic):
        call(twin, "upgrade a2")
        call(twin, "upgrade y1")
    assert call(vecmig, "downgrade -1") == (
        "vecmig: -1: the store is at several heads (a2, y1): name the revision to downgrade to, e.g. `a2-1`"
    )
    assert "downgrade -1 from multiple heads is ambiguous" in call(alembic, "downgrade -1")  # a warning, then it picks one


def test_minus_n_steps_down_through_a_merge_where_alembic_refuses(twins):
    vecmig, alembic = twins("merge")
    for twin in (vecmig, alembic):
        call(twin, "upgrade o")
    assert call(alembic, "downgrade -3") == "alembic: CommandError: Ambiguous walk"
    assert call(vecmig, "downgrade -3") is None
    assert vecmig.heads() == ["b", "c"] and vecmig.applied() == {"a", "b", "c"}


def test_label_at_base_off_a_shared_trunk_removes_that_branch_where_alembic_removes_the_tree(twins):
    vecmig, alembic = twins("trunk")
    for twin in (vecmig, alembic):
        call(twin, "upgrade heads")
        assert call(twin, "downgrade fin@base") is None
    assert alembic.applied() == set()
    assert vecmig.heads() == ["s4", "z2"] and vecmig.applied() == {"s1", "s2", "s3", "s4", "z1", "z2"}


def test_history_base_to_head_with_several_heads_lists_everything_where_alembic_refuses(twins):
    vecmig, alembic = twins("trunk")
    with pytest.raises(Exception, match="Multiple head revisions"):
        alembic.history("base:head")
    assert sorted(vecmig.history("base:head")) == sorted(r for r, *_ in SHAPES["trunk"])


def test_label_at_base_in_a_history_range_is_the_branch_where_alembic_starts_at_base(twins):
    vecmig, alembic = twins("trunk")
    assert alembic.history("fin@base:fin@head") == ["f3", "f2", "f1", "s1"]
    assert vecmig.history("fin@base:fin@head") == ["f3", "f2", "f1"]


def test_stamping_two_revisions_of_one_line_is_refused_where_alembic_records_both(twins):
    vecmig, alembic = twins("trunk")
    assert call(alembic, "stamp s2 s4") is None and alembic.heads() == ["s2", "s4"]
    assert call(vecmig, "stamp s2 s4") == "vecmig: stamp: s2 is below s4: stamp one revision per line"
    assert vecmig.heads() == []


def test_a_dependency_target_stays_a_recorded_head_where_alembic_leaves_it_out(twins):
    vecmig, alembic = twins("roots")
    for twin in (vecmig, alembic):
        call(twin, "upgrade y2")
    assert alembic.heads() == ["y2"] and vecmig.heads() == ["a2", "y2"]
    assert vecmig.applied() == alembic.applied() == {"a1", "a2", "y1", "y2"}


def test_a_new_revision_on_a_revision_that_is_not_a_head_needs_splice_in_both(twins, tmp_path):
    vecmig, alembic = twins("trunk")
    (tmp_path / "alembic" / "script.py.mako").write_text(textwrap.dedent('''
        revision = ${repr(up_revision)}
        down_revision = ${repr(down_revision)}
        branch_labels = None
        depends_on = None
    '''), encoding="utf-8")
    with pytest.raises(Exception, match="Revision s2 is not a head revision; please specify --splice"):
        alembic.run("revision", message="x", head="s2", rev_id="x1")
    with pytest.raises(VecmigError, match="revision s2 is not a head .*: pass --splice"):
        vecmig.run("revision", "x", head="s2", rev_id="x1")
    alembic.run("revision", message="x", head="s2", rev_id="x1", splice=True)
    assert vecmig.run("revision", "x", head="s2", rev_id="x1", splice=True).down_revisions == ("s2",)
