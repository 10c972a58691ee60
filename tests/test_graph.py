"""RevisionGraph: pure graph logic, no files and no store (like Alembic's tests/test_revision.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from vecmig.errors import GraphError
from vecmig.script.graph import DOWN, UP, RevisionGraph


@dataclass
class Rev:
    revision: str
    down_revisions: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    branch_labels: tuple[str, ...] = ()
    slug: str = "r"

    @property
    def path(self) -> Path:
        return Path("versions") / f"{self.revision}_{self.slug}.yaml"


def rev(rev_id: str, *down: str, deps=(), labels=(), slug="r") -> Rev:
    return Rev(rev_id, tuple(down), tuple(deps), tuple(labels), slug)


def ids(revisions) -> list[str]:
    return [r.revision for r in revisions]


def error(fn, *args) -> str:
    with pytest.raises(GraphError) as e:
        fn(*args)
    return str(e.value)


@pytest.fixture
def linear() -> RevisionGraph:
    """a -> b -> c -> d"""
    return RevisionGraph([rev("a"), rev("b", "a"), rev("c", "b"), rev("d", "c")])


@pytest.fixture
def forked() -> RevisionGraph:
    """a -> b1 -> b2 and a -> c1 -> c2: two heads from one branch point."""
    return RevisionGraph([rev("a"), rev("b1", "a"), rev("b2", "b1"), rev("c1", "a"), rev("c2", "c1")])


@pytest.fixture
def merged() -> RevisionGraph:
    """a -> b -> m, a -> c -> m, m -> n."""
    return RevisionGraph([rev("a"), rev("b", "a"), rev("c", "a"), rev("m", "b", "c"), rev("n", "m")])


@pytest.fixture
def two_roots() -> RevisionGraph:
    """Two independent lines; y2 depends on a2 of the other line. Labels on both roots."""
    return RevisionGraph([
        rev("a1", labels=["main"]), rev("a2", "a1"), rev("a3", "a2"),
        rev("y1", labels=["search"]), rev("y2", "y1", deps=["a2"]),
    ])


# -- construction checks ----------------------------------------------------------------------------

def test_duplicate_id_names_both_files():
    msg = error(RevisionGraph, [rev("a", slug="one"), rev("a", slug="two")])
    assert msg == "revision id 'a' is in two files, versions/a_one.yaml and versions/a_two.yaml: give one of them a new id"


def test_missing_parent_names_the_file_and_the_id():
    msg = error(RevisionGraph, [rev("a"), rev("b", "nosuch")])
    assert msg == "versions/b_r.yaml: down_revision 'nosuch' is not a known revision: fix the id or restore the missing file"


def test_missing_dependency_names_the_file_and_the_id():
    msg = error(RevisionGraph, [rev("a", deps=["zz"])])
    assert msg == "versions/a_r.yaml: depends_on 'zz' is neither a revision id nor a branch label: use the full id of an existing revision, or a label"


def test_depends_on_may_name_a_branch_label():
    g = RevisionGraph([rev("a1", labels=["main"]), rev("a2", "a1"), rev("y1"), rev("y2", "y1", deps=["main"])])
    assert g.dependencies("y2") == ("a1",)
    assert g.ancestors(["y2"]) == {"y2", "y1", "a1"} and g.heads == ["a2", "y2"]
    assert ids(g.upgrade_path([], "y2")) == ["a1", "y1", "y2"]


def test_two_revision_cycle_is_listed_with_the_files():
    msg = error(RevisionGraph, [rev("c1", "c2"), rev("c2", "c1")])
    assert msg == "revision cycle c1 -> c2 -> c1: fix down_revision or depends_on in one of versions/c1_r.yaml, versions/c2_r.yaml"


def test_revision_that_is_its_own_parent_is_a_cycle():
    assert error(RevisionGraph, [rev("a", "a")]).startswith("revision cycle a -> a:")


def test_cycle_behind_a_sound_revision_lists_only_the_cycle():
    msg = error(RevisionGraph, [rev("a"), rev("b", "a", "d"), rev("c", "b"), rev("d", "c")])
    assert msg.startswith("revision cycle b -> c -> d -> b:")


def test_cycle_through_depends_on_is_found():
    msg = error(RevisionGraph, [rev("a", deps=["b"]), rev("b", "a")])
    assert msg.startswith("revision cycle a -> b -> a:")


def test_branch_label_declared_twice_names_both_files():
    msg = error(RevisionGraph, [rev("a", labels=["x"]), rev("b", "a", labels=["x"])])
    assert msg == "branch label 'x' is declared twice, in versions/a_r.yaml and versions/b_r.yaml: keep it on one revision"


def test_branch_label_equal_to_a_revision_id_is_refused():
    msg = error(RevisionGraph, [rev("a"), rev("b", "a", labels=["a"])])
    assert msg == "versions/b_r.yaml: branch label 'a' is also a revision id: pick another label"


@pytest.mark.parametrize("word", ["head", "heads", "base", "current"])
def test_reserved_words_are_neither_ids_nor_labels(word):
    assert error(RevisionGraph, [rev(word)]) == f"versions/{word}_r.yaml: {word!r} is a reserved word, not a revision id: pick another id"
    assert "reserved word, not a branch label" in error(RevisionGraph, [rev("a", labels=[word])])


def test_empty_graph_has_no_heads_and_upgrade_does_nothing():
    g = RevisionGraph([])
    assert g.heads == [] and g.bases == [] and len(g) == 0
    assert g.upgrade_path([], "head") == []
    assert error(g.get, "head") == "no revisions yet: write one with `vecmig revision -m MESSAGE`"


def test_long_history_needs_no_recursion():
    n = 5000
    g = RevisionGraph([rev("r0")] + [rev(f"r{i}", f"r{i - 1}") for i in range(1, n)])
    assert g.heads == [f"r{n - 1}"]
    assert len(g.upgrade_path([], "head")) == n
    assert ids(g.downgrade_path([f"r{n - 1}"], "base"))[0] == f"r{n - 1}"


# -- shape ----------------------------------------------------------------------------------------

def test_linear_graph_has_one_head_and_one_base(linear):
    assert linear.heads == ["d"] and linear.bases == ["a"] and linear.branch_points() == []
    assert "c" in linear and "zz" not in linear


def test_fork_has_two_heads_and_a_branch_point(forked):
    assert forked.heads == ["b2", "c2"] and forked.branch_points() == ["a"]


def test_merge_joins_heads(merged):
    assert merged.heads == ["n"] and merged.branch_points() == ["a"]


def test_depends_on_target_stays_a_head():
    g = RevisionGraph([rev("a"), rev("x"), rev("b", "a", deps=["x"])])
    assert g.heads == ["b", "x"] and g.bases == ["a", "x"]


def test_ancestors_and_descendants_follow_depends_on(two_roots):
    assert two_roots.ancestors(["y2"]) == {"y2", "y1", "a2", "a1"}
    assert two_roots.descendants(["a2"]) == {"a2", "a3", "y2"}
    assert two_roots.ancestors([]) == set()


def test_unknown_id_in_a_set_operation_is_an_error(linear):
    assert error(linear.ancestors, ["zz"]) == "unknown revision 'zz': see `vecmig history` for the ids"


def test_applied_is_everything_below_the_heads(two_roots):
    assert two_roots.applied(["y2"]) == {"a1", "a2", "y1", "y2"}


def test_heads_of_keeps_a_dependency_target_as_a_head(two_roots):
    assert two_roots.heads_of({"a1", "a2", "y1", "y2"}) == ["a2", "y2"]
    assert two_roots.heads_of(set()) == []


def test_heads_after_moves_the_head_one_step(linear):
    assert linear.heads_after(["b"], "c", UP) == ["c"]
    assert linear.heads_after(["c"], "c", DOWN) == ["b"]
    assert linear.heads_after(["a"], "a", DOWN) == []


def test_heads_after_unapplying_a_merge_leaves_both_parents(merged):
    assert merged.heads_after(["m"], "m", DOWN) == ["b", "c"]
    assert merged.heads_after(["b", "c"], "m", UP) == ["m"]


def test_heads_after_rejects_an_unknown_direction(linear):
    with pytest.raises(ValueError):
        linear.heads_after(["a"], "b", "sideways")


def test_topo_puts_parents_and_dependencies_first_whatever_the_input_order(two_roots):
    order = two_roots.topo({"y2", "a3", "a1", "y1", "a2"})
    assert order.index("a2") < order.index("y2") and order.index("y1") < order.index("y2")
    assert order.index("a1") < order.index("a2") < order.index("a3")
    shuffled = RevisionGraph([rev("y2", "y1", deps=["a2"]), rev("a3", "a2"), rev("y1", labels=["search"]), rev("a2", "a1"), rev("a1", labels=["main"])])
    assert shuffled.topo({"y2", "a3", "a1", "y1", "a2"}) == order


def test_topo_lists_one_line_before_the_next(forked):
    assert forked.topo(["c2", "b2", "c1", "b1", "a"]) == ["a", "b1", "b2", "c1", "c2"]


def test_labels_map_each_label_to_its_revision(two_roots):
    assert two_roots.labels == {"main": "a1", "search": "y1"}


# -- naming revisions -------------------------------------------------------------------------------

def test_get_by_exact_id_and_unique_prefix():
    g = RevisionGraph([rev("abc123"), rev("abd456", "abc123"), rev("ab", "abd456")])
    assert g.get("abc123").revision == "abc123"
    assert g.get("abd").revision == "abd456"
    assert g.get("ab").revision == "ab"  # an exact id wins over being a prefix of others


def test_ambiguous_prefix_lists_the_candidates():
    g = RevisionGraph([rev("abc1"), rev("abc2", "abc1")])
    assert error(g.get, "abc") == "ambiguous revision 'abc': it starts abc1, abc2: give more characters"


@pytest.mark.parametrize("ref", ["zzzz", ""])
def test_unknown_revision_says_where_to_look(linear, ref):
    assert error(linear.get, ref) == f"unknown revision {ref!r}: see `vecmig history` for the ids"


def test_a_bare_label_names_the_revision_that_declares_it_and_label_at_head_its_head(two_roots):
    assert two_roots.get("main").revision == "a1"
    assert two_roots.get("main@head").revision == "a3"
    assert two_roots.get("search@head").revision == "y2"


def test_label_on_a_line_that_forks_again_has_no_single_head():
    g = RevisionGraph([rev("a", labels=["l"]), rev("b", "a"), rev("c", "a")])
    assert error(g.get, "l@head") == "branch 'l' has several heads (b, c): name one of them"


def test_unknown_label_lists_the_known_ones(two_roots):
    assert error(two_roots.get, "nope@head") == "unknown branch label 'nope': the labels are main, search"


def test_label_at_base_is_not_a_revision(two_roots):
    assert error(two_roots.get, "main@base") == "'main@base' is not a revision: write `main@head` (or `main@base` as a downgrade target)"


def test_head_names_the_single_head_or_refuses(linear, forked):
    assert linear.get("head").revision == "d"
    assert error(forked.get, "head") == "multiple heads (b2, c2): name one of them"


# -- upgrade paths ----------------------------------------------------------------------------------

def test_upgrade_head_from_base_applies_every_revision_in_order(linear):
    assert ids(linear.upgrade_path([], "head")) == ["a", "b", "c", "d"]


def test_upgrade_head_from_the_middle_applies_the_rest(linear):
    assert ids(linear.upgrade_path(["b"], "head")) == ["c", "d"]


def test_upgrade_when_already_at_head_does_nothing(linear):
    assert linear.upgrade_path(["d"], "head") == []
    assert linear.upgrade_path(["d"], "b") == []


def test_upgrade_head_with_several_heads_says_what_to_do(forked):
    assert error(forked.upgrade_path, [], "head") == "multiple heads (b2, c2): use `vecmig upgrade heads` or `vecmig merge heads`"


def test_upgrade_heads_applies_every_line_one_after_the_other(forked):
    assert ids(forked.upgrade_path([], "heads")) == ["a", "b1", "b2", "c1", "c2"]
    assert ids(forked.upgrade_path(["b2"], "heads")) == ["c1", "c2"]


def test_upgrade_to_an_id_or_prefix_stops_there(linear):
    assert ids(linear.upgrade_path([], "b")) == ["a", "b"]
    assert ids(linear.upgrade_path(["a"], "c")) == ["b", "c"]


def test_upgrade_to_a_label_head_applies_only_that_line_and_what_it_needs(two_roots):
    assert ids(two_roots.upgrade_path([], "search@head")) == ["a1", "a2", "y1", "y2"]
    assert ids(two_roots.upgrade_path([], "main@head")) == ["a1", "a2", "a3"]


def test_upgrade_to_a_merge_applies_both_lines(merged):
    assert ids(merged.upgrade_path(["b"], "m")) == ["c", "m"]


def test_upgrade_relative_steps_from_base_and_from_the_current_head(linear):
    assert ids(linear.upgrade_path([], "+1")) == ["a"]
    assert ids(linear.upgrade_path(["a"], "+2")) == ["b", "c"]


def test_upgrade_relative_steps_from_a_named_revision(linear):
    assert ids(linear.upgrade_path(["a"], "b+1")) == ["b", "c"]


def test_upgrade_relative_past_the_head_is_refused(linear):
    assert error(linear.upgrade_path, ["b"], "+3") == "+3: there are only 2 revisions above b: use `vecmig upgrade head`"


def test_upgrade_relative_where_the_line_forks_is_refused(forked):
    msg = error(forked.upgrade_path, ["a"], "+1")
    assert msg == "+1: the line branches after a (b1, c1): name a revision by id, label@head or label@+N"


def test_upgrade_relative_from_several_heads_asks_which_line(forked):
    msg = error(forked.upgrade_path, ["b1", "c1"], "+1")
    assert msg == "+1: the store is at several heads (b1, c1): say which line, e.g. `vecmig upgrade b1+1`"
    assert ids(forked.upgrade_path(["b1", "c1"], "b1+1")) == ["b2"]


@pytest.mark.parametrize("target", ["-1", "base", "x@-1", "x@base"])
def test_upgrade_to_a_lower_target_points_to_downgrade(linear, target):
    assert error(linear.upgrade_path, ["c"], target) == f"{target!r} is below the store: use `vecmig downgrade {target}`"


def test_upgrade_to_rev_minus_n_names_the_revision_below_it(linear):
    assert ids(linear.upgrade_path(["a"], "d-1")) == ["b", "c"]
    assert linear.upgrade_path(["c"], "b-1") == []  # a is applied: nothing to do


def test_upgrade_pulls_in_dependencies_from_another_line(two_roots):
    assert ids(two_roots.upgrade_path(["a1"], "y2")) == ["a2", "y1", "y2"]


# -- downgrade paths ----------------------------------------------------------------------------------

def test_downgrade_to_base_unapplies_everything_newest_first(linear):
    assert ids(linear.downgrade_path(["d"], "base")) == ["d", "c", "b", "a"]


def test_downgrade_relative_steps_from_the_head(linear):
    assert ids(linear.downgrade_path(["d"], "-1")) == ["d"]
    assert ids(linear.downgrade_path(["d"], "-3")) == ["d", "c", "b"]
    assert ids(linear.downgrade_path(["d"], "-4")) == ["d", "c", "b", "a"]


def test_downgrade_relative_below_base_is_refused(linear):
    assert error(linear.downgrade_path, ["b"], "-3") == "-3: only 2 revisions are applied on this line: use `vecmig downgrade base`"


def test_downgrade_relative_at_base_has_nothing_to_do(linear):
    assert error(linear.downgrade_path, [], "-1") == "-1: nothing to downgrade, the store is at base"


def test_downgrade_relative_from_several_heads_asks_for_a_revision(forked):
    msg = error(forked.downgrade_path, ["b2", "c2"], "-1")
    assert msg == "-1: the store is at several heads (b2, c2): name the revision to downgrade to, e.g. `b2-1`"


def test_downgrade_one_step_from_a_merge_unapplies_only_the_merge(merged):
    assert ids(merged.downgrade_path(["m"], "-1")) == ["m"]
    assert error(merged.downgrade_path, ["m"], "-2") == "-2: m merges b, c: name the revision to downgrade to"


def test_downgrade_to_a_revision_unapplies_what_continues_it(linear):
    assert ids(linear.downgrade_path(["d"], "b")) == ["d", "c"]
    assert linear.downgrade_path(["d"], "d") == []


def test_downgrade_to_a_branch_point_unapplies_both_lines(forked):
    assert ids(forked.downgrade_path(["b2", "c2"], "a")) == ["c2", "c1", "b2", "b1"]


def test_downgrade_to_one_parent_of_a_merge_keeps_the_other_line(merged):
    assert ids(merged.downgrade_path(["n"], "b")) == ["n", "m"]
    assert merged.heads_of(merged.applied(["n"]) - {"n", "m"}) == ["b", "c"]


def test_downgrade_to_an_unapplied_revision_is_refused(linear):
    msg = error(linear.downgrade_path, ["b"], "c")
    assert msg == "revision c is not applied (the store is at b): nothing to downgrade to; `vecmig history -i` shows what is applied"


def test_downgrade_unapplies_dependents_first(two_roots):
    assert ids(two_roots.downgrade_path(["a3", "y2"], "a1")) == ["y2", "a3", "a2"]


def test_downgrade_relative_to_a_named_revision(linear):
    assert ids(linear.downgrade_path(["d"], "c-1")) == ["d", "c"]
    assert ids(linear.downgrade_path(["d"], "c-3")) == ["d", "c", "b", "a"]  # exactly down to base
    assert error(linear.downgrade_path, ["d"], "c-4") == "c-4: there are only 3 revisions from c down to base: use `vecmig downgrade base`"


def test_downgrade_relative_to_a_named_merge_is_ambiguous(merged):
    assert error(merged.downgrade_path, ["n"], "m-1") == "m-1: m merges b, c: name the revision to downgrade to"


def test_downgrade_label_at_base_unapplies_that_line_and_its_dependents(two_roots):
    assert ids(two_roots.downgrade_path(["a3", "y2"], "search@base")) == ["y2", "y1"]
    assert ids(two_roots.downgrade_path(["a3", "y2"], "main@base")) == ["y2", "a3", "a2", "a1"]


def test_label_on_a_later_revision_covers_its_line_down_to_the_fork():
    g = RevisionGraph([rev("a"), rev("b1", "a"), rev("b2", "b1", labels=["bee"]), rev("c1", "a")])
    assert ids(g.downgrade_path(["b2", "c1"], "bee@base")) == ["b2", "b1"]


def test_downgrade_to_an_upper_target_points_to_upgrade(linear):
    assert error(linear.downgrade_path, ["b"], "+1") == "'+1' is above the store: use `vecmig upgrade +1`"


# -- history -----------------------------------------------------------------------------------------

def test_history_lists_every_revision_newest_first(linear, forked):
    assert ids(linear.history()) == ["d", "c", "b", "a"]
    assert ids(forked.history()) == ["c2", "c1", "b2", "b1", "a"]


@pytest.mark.parametrize("rng, expected", [
    ("b:c", ["c", "b"]),
    ("b:", ["d", "c", "b"]),
    (":b", ["b", "a"]),
    ("base:head", ["d", "c", "b", "a"]),
    ("base:heads", ["d", "c", "b", "a"]),
    ("head:", ["d"]),
    ("current:head", ["d", "c", "b"]),
    (":current", ["b", "a"]),
    ("current:", ["d", "c", "b"]),
    (":base", []),
])
def test_history_ranges(linear, rng, expected):
    assert ids(linear.history(rng, current_heads=["b"])) == expected


def test_history_current_at_base_means_from_the_start_or_nothing(linear):
    assert ids(linear.history("current:", current_heads=[])) == ["d", "c", "b", "a"]
    assert linear.history(":current", current_heads=[]) == []


def test_history_range_newer_first_is_refused(linear):
    assert error(linear.history, "c:b") == "history range 'c:b': c is not older than b: write OLDER:NEWER"


@pytest.mark.parametrize("rng", ["abc", "a:b:c"])
def test_history_range_needs_one_colon(linear, rng):
    assert error(linear.history, rng) == f"history range {rng!r}: write OLDER:NEWER, e.g. base:head, abc1:, :abc1, current:head, label@base:label@head"


def test_history_range_with_a_label_and_a_dependency(two_roots):
    assert ids(two_roots.history(":search@head")) == ["y2", "y1", "a2", "a1"]
    assert ids(two_roots.history(":search")) == ["y1"]  # the label's own revision and what it needs


# -- the shapes of issue 13: labelled branches, lines that depend on each other, stamping -----------

@pytest.fixture
def trunk() -> RevisionGraph:
    """s1 -> s2 -> s3 -> s4; zed: s2 -> z1 -> z2; f1 off s1, fin on f2: s1 -> f1 -> f2 -> f3."""
    return RevisionGraph([
        rev("s1"), rev("s2", "s1"), rev("s3", "s2"), rev("s4", "s3"),
        rev("z1", "s2", labels=["zed"]), rev("z2", "z1"),
        rev("f1", "s1"), rev("f2", "f1", labels=["fin"]), rev("f3", "f2"),
    ])


@pytest.fixture
def crossdep() -> RevisionGraph:
    """Two labelled roots; y2 depends on a2, the middle of the other line."""
    return RevisionGraph([
        rev("a1", labels=["main"]), rev("a2", "a1"), rev("a3", "a2"),
        rev("y1", labels=["search"]), rev("y2", "y1", deps=["a2"]), rev("y3", "y2"),
    ])


@pytest.fixture
def merged_on() -> RevisionGraph:
    """a -> b, a -> c, merged by m, then n -> o."""
    return RevisionGraph([rev("a"), rev("b", "a"), rev("c", "a"), rev("m", "b", "c"), rev("n", "m"), rev("o", "n")])


def store_after(g: RevisionGraph, heads, command: str, target: str) -> list[str]:
    path = g.upgrade_path(heads, target) if command == "upgrade" else g.downgrade_path(heads, target)
    applied = g.applied(heads)
    applied = applied | set(ids(path)) if command == "upgrade" else applied - set(ids(path))
    return g.heads_of(applied)


def test_upgrade_to_a_bare_label_stops_at_the_revision_that_declares_it(trunk):
    assert ids(trunk.upgrade_path([], "fin")) == ["s1", "f1", "f2"]
    assert ids(trunk.upgrade_path(["f2"], "fin@head")) == ["f3"]
    assert ids(trunk.upgrade_path([], "zed")) == ["s1", "s2", "z1"]


def test_downgrade_to_a_bare_label_keeps_the_labelled_revision(trunk):
    assert ids(trunk.downgrade_path(["f3", "s4"], "fin")) == ["f3"]


def test_history_from_a_label_lists_its_branch(trunk):
    assert ids(trunk.history("fin:")) == ["f3", "f2"]
    assert ids(trunk.history("zed:")) == ["z2", "z1"]
    assert ids(trunk.history(":fin")) == ["f2", "f1", "s1"]


def test_history_above_a_revision_follows_its_line_not_what_depends_on_it(crossdep):
    assert ids(crossdep.history("a2:")) == ["a3", "a2"]
    assert ids(crossdep.history("current:", current_heads=["a2", "y1"])) == ["y3", "y2", "y1", "a3", "a2"]


def test_label_at_base_in_a_history_range_is_the_branch_alone(trunk, crossdep):
    assert ids(trunk.history("fin@base:fin@head")) == ["f3", "f2", "f1"]
    assert ids(trunk.history("base:fin@head")) == ["f3", "f2", "f1", "s1"]
    assert ids(crossdep.history("main@base:main@head")) == ["a3", "a2", "a1"]
    assert error(trunk.history, "fin@head:fin@base") == "history range 'fin@head:fin@base': fin@base can only be the older end: write fin@base:fin@head"


def test_history_base_to_head_with_several_heads_lists_everything(trunk):
    assert len(trunk.history("base:head")) == len(trunk) == len(trunk.history("base:heads"))


def test_rev_at_head_is_the_head_of_the_line_through_it(trunk):
    assert trunk.get("f1@head").revision == "f3"
    assert error(trunk.get, "s2@head") == "revision s2 has several heads (s4, z2): name one of them"
    assert trunk.resolve("s2@heads") == ["s4", "z2"]
    assert ids(trunk.upgrade_path(["s4"], "s2@heads")) == ["z1", "z2"]


def test_label_at_rev_checks_the_revision_is_on_the_branch(trunk):
    assert trunk.get("fin@f1").revision == "f1"
    assert error(trunk.get, "fin@s4") == "revision s4 is not on branch 'fin': see `vecmig history -r fin@base:fin@heads`"


def test_label_plus_n_steps_up_that_branch_from_where_the_store_is(trunk):
    assert store_after(trunk, ["s2"], "upgrade", "zed@+1") == ["z1"]
    # the store is on another branch: fin starts from the highest applied revision on its lines (s1)
    assert store_after(trunk, ["z1"], "upgrade", "fin@+1") == ["f1", "z1"]
    assert store_after(trunk, ["f1", "z1"], "upgrade", "fin@+2") == ["f3", "z1"]
    assert store_after(trunk, [], "upgrade", "fin@+1") == ["s1"]
    assert error(trunk.upgrade_path, ["f3"], "fin@+1") == "fin@+1: there are only 0 revisions above f3 on fin: use `vecmig upgrade fin@head`"


def test_label_minus_n_steps_down_that_branch_only(trunk):
    assert store_after(trunk, ["f2", "z1"], "downgrade", "fin@-1") == ["f1", "z1"]
    assert store_after(trunk, ["f3", "s4"], "downgrade", "fin@-3") == ["s4"]
    assert store_after(trunk, ["s4", "z2"], "downgrade", "zed@-2") == ["s4"]
    assert error(trunk.downgrade_path, ["s4"], "fin@-1") == "fin@-1: nothing on fin's lines is applied (the store is at s4)"


def test_rev_plus_n_as_a_downgrade_target(trunk, merged_on):
    assert store_after(trunk, ["f3"], "downgrade", "f1+1") == ["f2"]
    assert store_after(merged_on, ["o"], "downgrade", "b+1") == ["m"]
    assert error(trunk.downgrade_path, ["f3", "s4"], "s1+1") == "s1+1: the line branches after s1 (f1, s2): name a revision by id, label@head or label@+N"
    assert store_after(trunk, ["f3", "s4"], "downgrade", "fin@s1+1") == ["f1", "s4"]


def test_label_at_rev_as_a_downgrade_target_undoes_only_that_branch(trunk):
    assert store_after(trunk, ["f3", "s4"], "downgrade", "fin@s1") == ["s4"]
    assert store_after(trunk, ["s4", "z2"], "downgrade", "zed@s2-1") == ["s1"]


def test_a_head_another_head_depends_on_is_not_where_relative_steps_start(crossdep):
    heads = store_after(crossdep, [], "upgrade", "y2")
    assert heads == ["a2", "y2"] and crossdep.tips(heads) == ["y2"]  # a2 stays a head: a3 is not applied
    assert store_after(crossdep, heads, "upgrade", "+1") == ["a2", "y3"]
    assert store_after(crossdep, ["a2", "y3"], "downgrade", "-1") == ["a2", "y2"]
    assert store_after(crossdep, ["a2", "y2"], "downgrade", "-1") == ["a2", "y1"]
    msg = error(crossdep.downgrade_path, ["a2", "y1"], "-1")  # two lines, neither needs the other
    assert msg == "-1: the store is at several heads (a2, y1): name the revision to downgrade to, e.g. `a2-1`"


def test_label_relative_steps_on_lines_that_depend_on_each_other(crossdep):
    assert store_after(crossdep, ["a1", "y1"], "downgrade", "main@-1") == ["y1"]
    assert store_after(crossdep, [], "upgrade", "main@+1") == ["a1"]
    assert store_after(crossdep, ["a3", "y3"], "downgrade", "search@base") == ["a3"]
    assert store_after(crossdep, ["a3", "y3"], "downgrade", "main@base") == ["y1"]


def test_heads_resolving_dependencies_leaves_out_a_depended_on_head():
    g = RevisionGraph([rev("a1"), rev("a2", "a1"), rev("y1"), rev("y2", "y1", deps=["a2"])])
    assert g.heads == ["a2", "y2"] and g.tips(g.heads) == ["y2"]


def test_minus_n_steps_down_through_a_merge(merged_on):
    assert store_after(merged_on, ["o"], "downgrade", "-3") == ["b", "c"]
    assert store_after(merged_on, ["m"], "downgrade", "-1") == ["b", "c"]
    assert error(merged_on.downgrade_path, ["o"], "-4") == "-4: m merges b, c: name the revision to downgrade to"


def test_label_at_base_on_a_branch_off_a_shared_trunk_removes_that_branch_only(trunk):
    assert store_after(trunk, ["f3", "s4", "z2"], "downgrade", "fin@base") == ["s4", "z2"]
    assert store_after(trunk, ["f3", "s4", "z2"], "downgrade", "zed@base") == ["f3", "s4"]


# -- stamp ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("before, targets, after", [
    (["s4"], ["z1"], ["s4", "z1"]),             # another branch: only its own line moves
    (["s4", "z1"], ["z2"], ["s4", "z2"]),
    (["s4", "z2"], ["s3"], ["s3", "z2"]),       # down one line, the other stays
    (["f3", "s4", "z2"], ["s2"], ["f3", "s2"]),  # s2 is below both s4 and z2
    (["f3", "s4", "z2"], ["base"], []),
    ([], ["s4", "z1"], ["s4", "z1"]),           # several targets, one per line
    (["s4", "z1"], ["f1"], ["f1", "s4", "z1"]),
    (["f1", "s4", "z1"], ["s1"], ["s1"]),
    (["s3"], ["heads"], ["f3", "s4", "z2"]),
    (["s3"], ["zed"], ["s3", "z1"]),            # a bare label is the revision that declares it
    (["s3", "z1"], ["fin@head"], ["f3", "s3", "z1"]),
    (["f3", "z2"], ["fin@base"], ["z2"]),       # the branch's own line goes
    (["f3"], ["fin@base"], ["s1"]),             # ... and only that: s1 is the shared trunk
])
def test_stamp_moves_only_the_lines_the_targets_are_on(trunk, before, targets, after):
    assert trunk.stamp_heads(before, targets) == after


def test_stamp_purge_replaces_every_head(trunk):
    assert trunk.stamp_heads(["f3", "s4"], ["z1"], purge=True) == ["z1"]


def test_stamp_across_lines_that_depend_on_each_other(crossdep):
    assert crossdep.stamp_heads(["a3", "y3"], ["a1"]) == ["a1"]  # y2 needs a2: the search line goes too
    assert crossdep.stamp_heads(["a2", "y1"], ["y2"]) == ["a2", "y2"]
    assert crossdep.stamp_heads(["a3", "y1"], ["y2"]) == ["a3", "y2"]


@pytest.mark.parametrize("targets, expected", [
    (["s2", "s4"], "stamp: s2 is below s4: stamp one revision per line"),
    (["-1"], "stamp -1: stamp takes revisions, not steps: name a revision (`vecmig history` lists them)"),
    (["zz"], "unknown revision 'zz': see `vecmig history` for the ids"),
    (["head"], "multiple heads (f3, s4, z2): name one of them"),
    ([], "stamp: name a revision (or base, heads, label@head)"),
])
def test_stamp_refuses_targets_it_cannot_record(trunk, targets, expected):
    assert error(trunk.stamp_heads, ["s4"], targets) == expected


def test_label_relative_steps_with_several_heads_on_its_lines_ask_for_one():
    g = RevisionGraph([rev("r", labels=["root"]), rev("p", "r"), rev("q", "r")])
    assert error(g.downgrade_path, ["p", "q"], "root@-1") == "root@-1: the store has several heads on root's lines (p, q): name one, e.g. `p-1`"
    assert error(g.upgrade_path, ["r"], "root@+1") == "root@+1: the line branches after r (p, q): name a revision by id, label@head or label@+N"
