"""Revision files (YAML and Python), the versions folder, and new revisions from templates."""

from __future__ import annotations

import hashlib
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from vecmig.config import Config
from vecmig.errors import GraphError, ScriptError
from vecmig.ops.base import OPS, Op, OpContext, register
from vecmig.script import CallOp, Operations, ScriptDirectory, load_revision
from vecmig.script.directory import slugify


@dataclass
class Note(Op):
    """A test-only op, so that these tests don't depend on the real vocabulary's parameters."""

    text: str = ""

    @classmethod
    def from_params(cls, params, where, source_dir=None):
        if set(params) - {"text"}:
            raise ScriptError(f"{where}: note takes only `text`")
        return cls(**params, source_dir=source_dir)

    def reverse(self, undo):
        return Note(text=f"undo {self.text}")


#: the templates vecmig ships (partials, named _*, are not templates)
PACKAGE_TEMPLATES = sorted(
    p.name.removesuffix(".j2").removesuffix(".yaml")
    for p in (Path(__file__).parent.parent / "vecmig" / "templates" / "revision").glob("[!_]*.j2")
)


@pytest.fixture(autouse=True)
def note_op():
    import vecmig.ops  # noqa: F401  (the real ops first, as revisions import them)

    register("note")(Note)
    yield
    OPS.pop("note", None)


@pytest.fixture
def cfg(tmp_path, monkeypatch) -> Config:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "versions").mkdir()
    return Config(script_location=tmp_path / "versions", template_location=tmp_path / "templates", x={"limit": "5"})


def write(name: str, text: str) -> Path:
    path = Path.cwd() / "versions" / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def script_error(path: Path) -> str:
    with pytest.raises(ScriptError) as e:
        load_revision(path)
    return str(e.value)


def needs_op(name: str):
    if name not in OPS:
        pytest.skip(f"the {name} op is not registered")


# -- YAML files --------------------------------------------------------------------------------------

def test_yaml_revision_header_and_checksum(cfg):
    path = write("ab12_first.yaml", """
        revision: ab12
        down_revision: null
        branch_labels: main
        message: first one
        upgrade:
          - note: {text: hello}
          - note:
        """)
    rev = load_revision(path)
    assert (rev.revision, rev.down_revisions, rev.branch_labels, rev.depends_on) == ("ab12", (), ("main",), ())
    assert rev.message == "first one" and rev.kind == "yaml" and rev.path == path
    assert rev.checksum == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rev.is_base and not rev.is_merge


def test_yaml_ops_are_built_in_order_and_downgrade_defaults_to_auto(cfg):
    rev = load_revision(write("a_x.yaml", "revision: a\ndown_revision: null\nupgrade:\n  - note: {text: one}\n  - note:\n"))
    assert [op.text for op in rev.upgrade_ops()] == ["one", ""]
    assert rev.upgrade_ops()[0].source_dir == rev.path.parent
    assert rev.downgrade_ops() is None


def test_yaml_explicit_downgrade_list_and_merge_parents(cfg):
    rev = load_revision(write("m_x.yml", """
        revision: m
        down_revision: [a, b]
        depends_on: [c]
        upgrade: []
        downgrade:
          - note: {text: back}
        """))
    assert rev.down_revisions == ("a", "b") and rev.is_merge and rev.depends_on == ("c",)
    assert [op.text for op in rev.downgrade_ops()] == ["back"]


def test_yaml_upgrade_key_left_empty_means_no_ops(cfg):
    rev = load_revision(write("a_x.yaml", "revision: a\ndown_revision: null\nupgrade:\n  # - note: {text: later}\n"))
    assert rev.upgrade_ops() == []


def test_checksum_is_stable_and_changes_with_any_byte(cfg):
    path = write("a_x.yaml", "revision: a\ndown_revision: null\n")
    first = load_revision(path).checksum
    assert load_revision(path).checksum == first
    path.write_text(path.read_text() + "# a comment\n")
    assert load_revision(path).checksum != first


@pytest.mark.parametrize("text, expected", [
    ("revision: a\ndown_revision: null\nupgrade: [\n", "versions/bad_x.yaml, line 4, column 1: invalid YAML: expected the node content, but found '<stream end>': fix the YAML (indentation, brackets, quotes)"),
    ("revision: \"a\ndown_revision: null\n", "versions/bad_x.yaml, line 3, column 1: invalid YAML: found unexpected end of stream (while scanning a quoted scalar at line 1): fix the YAML (indentation, brackets, quotes)"),
    ("revision: a\n  down_revision: null\n", "versions/bad_x.yaml, line 2, column 16: invalid YAML: mapping values are not allowed here: fix the YAML (indentation, brackets, quotes)"),
    ("", "versions/bad_x.yaml: the file is empty: a revision needs at least `revision:` and `down_revision:` (see `vecmig revision`)"),
    ("- just\n- a list\n", "versions/bad_x.yaml: a revision file is a YAML mapping (revision:, down_revision:, upgrade:, ...), not a list"),
    ("revision: a\nupgrade: []\n", "versions/bad_x.yaml: `down_revision` is missing: add `down_revision: null` for a first revision, or the parent's id"),
    ("down_revision: null\n", "versions/bad_x.yaml: `revision` is missing: add `revision: <id>` (the id at the start of the file name)"),
    ("revision: a\ndown_revision: null\nupgarde: []\n", "versions/bad_x.yaml: unknown key 'upgarde': did you mean 'upgrade'?"),
    ("revision: a\ndown_revision: null\ncolour: blue\n", "versions/bad_x.yaml: unknown key 'colour': the keys are revision, down_revision, branch_labels, depends_on, message, upgrade, downgrade"),
    ("revision: 123456\ndown_revision: null\n", "versions/bad_x.yaml: revision: 123456 is not of type 'string': expected a revision id of letters, digits and _ (quote an id YAML would read as a number or boolean)"),
    ("revision: a-b\ndown_revision: null\n", "versions/bad_x.yaml: revision: 'a-b' does not match '^[A-Za-z0-9_]+$': expected a revision id of letters, digits and _ (quote an id YAML would read as a number or boolean)"),
    ("revision: a\ndown_revision: [b, 'c d']\n", "versions/bad_x.yaml: down_revision[1]: 'c d' does not match '^[A-Za-z0-9_]+$': expected null for a first revision, the parent's id, or a list of ids for a merge"),
    ("revision: a\ndown_revision: null\nmessage: [x]\n", "versions/bad_x.yaml: message: ['x'] is not of type 'string': expected a string (quote it)"),
    ("revision: a\ndown_revision: null\nupgrade: note\n", "versions/bad_x.yaml: upgrade: 'note' is not of type 'null', 'array': expected a list of ops, each `- op_name: {params}`"),
    ("revision: a\ndown_revision: null\nupgrade:\n  - note:\n    text: x\n", "versions/bad_x.yaml: upgrade[0]: an op is a mapping with one key, the op name (`- create_collection: {name: ...}`), got keys note, text: check the indentation"),
    ("revision: a\ndown_revision: null\nupgrade:\n  - note\n", "versions/bad_x.yaml: upgrade[0]: an op is a mapping with one key, the op name (`- create_collection: {name: ...}`), got string: check the indentation"),
    ("revision: a\ndown_revision: null\nupgrade:\n  - {1: {}}\n", "versions/bad_x.yaml: upgrade[0]: an op is a mapping with one key, the op name (`- create_collection: {name: ...}`), got keys 1: check the indentation"),
    ("revision: a\ndown_revision: null\nupgrade:\n  - note: hello\n", "versions/bad_x.yaml: upgrade[0].note: the parameters of note are a mapping, got string: write `note: {key: value, ...}`"),
    ("revision: a\ndown_revision: null\ndowngrade: manual\n", "versions/bad_x.yaml: downgrade: 'manual' is not allowed: expected `auto` or a list of ops ([] when there is nothing to undo)"),
    ("revision: a\ndown_revision: null\ndowngrade:\n", "versions/bad_x.yaml: downgrade: None is not of type 'string', 'array': expected `auto` or a list of ops ([] when there is nothing to undo)"),
], ids=[
    "malformed", "unclosed-quote", "bad-indent", "empty", "list", "no-down-revision", "no-revision", "typo-key", "unknown-key", "numeric-id",
    "bad-id", "bad-parent", "message-type", "upgrade-type", "two-keys-item", "bare-item", "number-op-name", "params-type", "downgrade-word",
    "downgrade-null",
])
def test_bad_yaml_revision_gets_one_line_naming_file_and_key(cfg, text, expected):
    msg = script_error(write("bad_x.yaml", text))
    assert msg == expected and "\n" not in msg


def test_unknown_op_is_reported_with_its_position(cfg):
    rev = load_revision(write("a_x.yaml", "revision: a\ndown_revision: null\nupgrade:\n  - note: {}\n  - nite: {}\n"))
    with pytest.raises(ScriptError, match=r"^versions/a_x.yaml: upgrade\[1\]: unknown op 'nite': did you mean 'note'\?$"):
        rev.upgrade_ops()


def test_bad_op_parameters_name_the_file_the_item_and_the_op(cfg):
    needs_op("create_collection")
    rev = load_revision(write("a_x.yaml", """
        revision: a
        down_revision: null
        upgrade:
          - note: {}
          - create_collection: {name: c, vectors: {v: {distance: cosine}}}
        """))
    with pytest.raises(ScriptError) as e:
        rev.upgrade_ops()
    assert str(e.value).startswith("versions/a_x.yaml: upgrade[1]: create_collection")
    assert "vectors.v: give `size` or `embedder`" in str(e.value)


# -- Python files ----------------------------------------------------------------------------------

PY_REVISION = '''
"""load products

More words.
"""
from pathlib import Path

Path("executed.txt").write_text("ran")

revision = "py1"
down_revision = ("a", "b")
branch_labels = None
depends_on: list = ["c"]


def upgrade(op):
    op.note(text=f"limit {op.x['limit']}")
    op.run(lambda ctx: None, description="custom step")
'''


def test_python_header_is_read_without_running_the_file(cfg):
    rev = load_revision(write("py1_load.py", PY_REVISION))
    assert (rev.revision, rev.down_revisions, rev.branch_labels, rev.depends_on) == ("py1", ("a", "b"), (), ("c",))
    assert rev.message == "load products" and rev.kind == "python"
    assert not Path("executed.txt").exists()
    assert rev.downgrade_ops(cfg) is None  # no downgrade(): auto, and still not run
    assert not Path("executed.txt").exists()


def test_python_upgrade_collects_ops_with_config_options(cfg):
    rev = load_revision(write("py1_load.py", PY_REVISION))
    ops = rev.upgrade_ops(cfg)
    assert Path("executed.txt").read_text() == "ran"
    assert [type(op) for op in ops] == [Note, CallOp] and ops[0].text == "limit 5"
    assert ops[1].describe() == "run(custom step)"


def test_prepend_sys_path_lets_python_revisions_import_the_projects_helpers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    (tmp_path / "versions").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "vecmig_test_helpers.py").write_text("def text():\n    return 'from a helper'\n")
    (tmp_path / "vecmig.ini").write_text("[vecmig]\nprepend_sys_path = lib\n")
    rev = load_revision(write("h1_helper.py", """
        revision = "h1"
        down_revision = None

        def upgrade(op):
            from vecmig_test_helpers import text
            op.note(text=text())
    """))
    assert rev.upgrade_ops(Config.load())[0].text == "from a helper"


def test_python_message_variable_wins_over_the_docstring(cfg):
    rev = load_revision(write("p_x.py", '"""doc"""\nrevision = "p"\ndown_revision = None\nmessage = "explicit"\n\ndef upgrade(op):\n    pass\n'))
    assert rev.message == "explicit" and rev.upgrade_ops() == []


def test_python_explicit_downgrade(cfg):
    rev = load_revision(write("p_x.py", """
        revision = "p"
        down_revision = None

        def upgrade(op):
            op.note(text="up")

        def downgrade(op):
            op.note(text="down")
        """))
    assert [op.text for op in rev.downgrade_ops()] == ["down"]


@pytest.mark.parametrize("text, expected", [
    ("revision = 'p'\ndown_revision = None\ndef upgrade(op)\n    pass\n", "versions/p_x.py, line 3: Python syntax error: expected ':': fix the file"),
    ("import uuid\nrevision = uuid.uuid4().hex\ndown_revision = None\n", "versions/p_x.py, line 2: `revision` must be a literal (a string, None or a list of strings): vecmig reads it without running the file"),
    ("revision = 'p'\ndef upgrade(op):\n    pass\n", "versions/p_x.py: `down_revision` is missing: add `down_revision = None` for a first revision, or the parent's id"),
    ("revision = 'p'\ndown_revision = None\n", "versions/p_x.py: no `def upgrade(op):` function: add one (its body may be `pass`)"),
    ("revision = 'p'\ndown_revision = 5\ndef upgrade(op):\n    pass\n", "versions/p_x.py: down_revision: 5 is not of type 'null', 'string', 'array': expected None for a first revision, the parent's id, or a list of ids for a merge"),
], ids=["syntax", "not-literal", "no-down-revision", "no-upgrade", "bad-parent"])
def test_bad_python_revision_gets_one_line(cfg, text, expected):
    assert script_error(write("p_x.py", text)) == expected


def test_python_file_failing_at_import_is_a_script_error(cfg):
    rev = load_revision(write("p_x.py", "revision = 'p'\ndown_revision = None\nimport no_such_module_here\ndef upgrade(op):\n    pass\n"))
    with pytest.raises(ScriptError, match=r"^versions/p_x.py: running the file raised ModuleNotFoundError: No module named 'no_such_module_here': fix the file"):
        rev.upgrade_ops()


def test_python_upgrade_raising_is_a_script_error(cfg):
    rev = load_revision(write("p_x.py", "revision = 'p'\ndown_revision = None\ndef upgrade(op):\n    raise KeyError('limit')\n"))
    with pytest.raises(ScriptError, match=r"^versions/p_x.py: upgrade\(op\) raised KeyError: 'limit': fix the function"):
        rev.upgrade_ops()


def test_python_unknown_op_names_the_call(cfg):
    rev = load_revision(write("p_x.py", "revision = 'p'\ndown_revision = None\ndef upgrade(op):\n    op.note(text='x')\n    op.nott(text='y')\n"))
    with pytest.raises(ScriptError, match=r"^versions/p_x.py: upgrade\[1\]: unknown op 'nott': did you mean 'note'\?$"):
        rev.upgrade_ops()


def test_operations_accepts_keyword_parameters_with_a_trailing_underscore():
    needs_op("repoint_alias")
    op = Operations(where="f: upgrade")
    op.repoint_alias(alias="products", to="p2", from_="p1")
    assert op.ops[0].params() == {"alias": "products", "to": "p2", "from": "p1"} and op.x == {}


def test_call_op_runs_its_function_and_reverses_into_the_undo_function():
    calls = []
    step = CallOp(lambda ctx: calls.append(("do", ctx)), lambda ctx: calls.append(("undo", ctx)), "copy files")
    ctx = OpContext(backend=None, config=None, state=None, revision=None, checkpoint_key="k")
    assert step.apply(ctx) is None and step.irreversible is None
    undo = step.reverse(None)
    undo.apply(ctx)
    assert calls == [("do", ctx), ("undo", ctx)] and undo.describe() == "run(undo copy files)"


def test_call_op_without_reverse_is_irreversible():
    step = CallOp(print)
    assert step.reverse(None) is None and step.irreversible == "a custom Python step without `reverse=`"
    assert step.describe() == "run(print)"
    assert not step.destructive  # can't be undone, but that doesn't make it delete data


def test_call_op_is_destructive_only_when_it_says_so():
    needs_op("drop_collection")
    op = Operations(where="f: upgrade")
    op.run(print)
    op.run(print, destructive=True)
    op.drop_collection(name="old")
    assert [o.destructive for o in op.ops] == [False, True, True]


def test_a_python_revision_with_a_coding_line_may_use_that_encoding(tmp_path):
    path = tmp_path / "a_latin.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\nrevision = 'a'\ndown_revision = None\nmessage = 'caf\xe9'\ndef upgrade(op):\n    pass\n")
    assert load_revision(path).message == "caf\u00e9"
    path.write_bytes(b"revision = 'a'\ndown_revision = None\nmessage = 'caf\xe9'\ndef upgrade(op):\n    pass\n")
    with pytest.raises(ScriptError, match=r"a_latin.py: not UTF-8 \(byte 0xe9 at offset 50, line 3\): save it as UTF-8$"):
        load_revision(path)


# -- the versions folder ----------------------------------------------------------------------------

def test_directory_reads_only_revision_files_at_the_top_of_versions(cfg):
    write("a_first.yaml", "revision: a\ndown_revision: null\n")
    write("b_second.py", "revision = 'b'\ndown_revision = 'a'\ndef upgrade(op):\n    pass\n")
    write("_helpers.py", "x = 1\n")
    write(".hidden.yaml", "nonsense: [\n")
    write("points.jsonl", "{}\n")
    write("notes.txt", "hello\n")
    (Path("versions") / "old").mkdir()
    write("old/c_x.yaml", "revision: c\ndown_revision: b\n")
    (Path("versions") / "__pycache__").mkdir()
    script = ScriptDirectory(cfg)
    assert [r.revision for r in script.revisions] == ["a", "b"]
    assert script.graph.heads == ["b"] and script.get_revision("b").kind == "python"


def test_directory_missing_folder_says_to_init(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScriptError, match=r"^nowhere: no such folder: run `vecmig init`, or set script_location in vecmig.ini$"):
        ScriptDirectory(Config(script_location=Path("nowhere"))).revisions


def test_directory_duplicate_ids_name_both_files(cfg):
    write("a_one.yaml", "revision: a\ndown_revision: null\n")
    write("a_two.yaml", "revision: a\ndown_revision: null\n")
    with pytest.raises(GraphError, match="^revision id 'a' is in two files, versions/a_one.yaml and versions/a_two.yaml"):
        ScriptDirectory(cfg).graph


# -- new revisions ----------------------------------------------------------------------------------

def test_generated_revision_parses_back_with_its_parent_and_message(cfg):
    script = ScriptDirectory(cfg)
    first = script.generate_revision("create products: the \"v1\" one, café", rev_id="000123")
    second = script.generate_revision("seed products", depends_on=["000"], branch_labels=["main"])
    assert first.path.name == "000123_create_products_the_v1_one_cafe.yaml"
    assert "revision: '000123'" in first.path.read_text()  # an id YAML would read as a number is quoted
    again = ScriptDirectory(cfg)
    assert [(r.revision, r.down_revisions, r.message) for r in again.revisions] == [
        ("000123", (), 'create products: the "v1" one, café'),
        (second.revision, ("000123",), "seed products"),
    ]
    assert len(second.revision) == 12 and int(second.revision, 16) >= 0
    assert again.get_revision(second.revision).depends_on == ("000123",) and again.graph.labels == {"main": second.revision}
    assert first.upgrade_ops() == [] and first.downgrade_ops() is None
    assert script.graph.heads == [second.revision]  # the directory knows its new file at once


def test_generated_message_on_several_lines_becomes_one(cfg):
    rev = ScriptDirectory(cfg).generate_revision("line one\n  line: two", rev_id="a1")
    assert rev.message == "line one line: two" and load_revision(rev.path).message == "line one line: two"


def test_generate_with_several_heads_asks_for_head_or_merge(cfg):
    script = ScriptDirectory(cfg)
    script.generate_revision("root", rev_id="r")
    script.generate_revision("left", rev_id="l", head="r")
    script.generate_revision("right", rev_id="rr", head="r", splice=True)  # r is no longer a head: a new branch
    with pytest.raises(GraphError, match=r"^multiple heads \(l, rr\): pass --head with one of them \(or --head base for a new line\), or join them first with `vecmig merge heads`$"):
        script.generate_revision("next")
    assert script.generate_revision("on left", head="l", rev_id="l2").down_revisions == ("l",)
    assert script.generate_revision("new line", head="base", rev_id="n").down_revisions == ()


def test_merge_joins_the_heads_into_one(cfg):
    script = ScriptDirectory(cfg)
    script.generate_revision("root", rev_id="r")
    script.generate_revision("left", rev_id="l", head="r")
    script.generate_revision("right", rev_id="rr", head="r", splice=True)  # r is no longer a head: a new branch
    merge = script.merge(message="join", rev_id="m")
    assert merge.down_revisions == ("l", "rr") and ScriptDirectory(cfg).graph.heads == ["m"]


def test_merge_needs_two_separate_lines(cfg):
    script = ScriptDirectory(cfg)
    script.generate_revision("root", rev_id="r")
    script.generate_revision("next", rev_id="n")
    with pytest.raises(GraphError, match=r"^nothing to merge: n is a single line: name two or more heads$"):
        script.merge()
    with pytest.raises(GraphError, match=r"^r is already below n: merge revisions from different lines$"):
        script.merge(["r", "n"])


@pytest.mark.parametrize("kwargs, expected", [
    ({"rev_id": "a-b"}, "revision id 'a-b': use letters, digits and _ only"),
    ({"rev_id": "r"}, "revision id 'r' is already used by versions/r_root.yaml: pick another id"),
    ({"rev_id": "head"}, "'head' is a reserved word, not a revision id: pick another id"),
    ({"branch_labels": ["x y"]}, "branch label 'x y': use letters, digits and _ only"),
    ({"branch_labels": ["main"]}, "branch label 'main' is already on revision r: pick another label"),
    ({"head": "zz"}, "unknown revision 'zz': see `vecmig history` for the ids"),
    ({"template": "nope"}, f"no template 'nope': the templates are {', '.join(PACKAGE_TEMPLATES)} (see `vecmig list-templates`)"),
])
def test_generate_refuses_bad_input_and_writes_nothing(cfg, kwargs, expected):
    script = ScriptDirectory(cfg)
    script.generate_revision("root", rev_id="r", branch_labels=["main"])
    with pytest.raises((ScriptError, GraphError)) as e:
        script.generate_revision("second", **kwargs)
    assert str(e.value).endswith(expected)
    assert sorted(p.name for p in Path("versions").iterdir()) == ["r_root.yaml"]


def test_python_template_writes_a_python_revision(cfg):
    script = ScriptDirectory(cfg)
    script.generate_revision("root", rev_id="r")
    rev = script.generate_revision("custom 'step'", template="blank.py", rev_id="p", depends_on=["r"])
    assert rev.path.name == "p_custom_step.py" and rev.kind == "python"
    assert (rev.down_revisions, rev.depends_on, rev.message) == (("r",), ("r",), "custom 'step'")
    assert rev.upgrade_ops(cfg) == [] and rev.downgrade_ops(cfg) is None


def test_create_collection_template_builds_a_valid_op(cfg):
    needs_op("create_collection")
    rev = ScriptDirectory(cfg).generate_revision("create products", template="create_collection", collection="products_v1", size="768")
    (op,) = rev.upgrade_ops()
    assert op.params() == {
        "name": "products_v1",
        "vectors": {"dense": {"size": 768, "distance": "cosine"}},
        "payload_indexes": {"category": "keyword"},
    }
    default = ScriptDirectory(cfg).generate_revision("Create Products!", template="create_collection", head=rev.revision)
    assert default.upgrade_ops()[0].name == "products"


def test_project_template_replaces_the_package_one_and_is_listed(cfg):
    templates = Path("templates")
    templates.mkdir()
    (templates / "blank.yaml.j2").write_text(
        "{# our blank #}\nrevision: {{ revision | yaml }}\ndown_revision: {{ down_revision | yaml }}\nmessage: {{ message | yaml }}\n"
        "upgrade:\n  - note: {text: {{ owner | yaml }}}\n"
    )
    (templates / "seed.py.j2").write_text("no description line\n")
    script = ScriptDirectory(cfg)
    listed = {name: (desc, path) for name, desc, path in script.list_templates()}
    assert sorted(listed) == sorted([*PACKAGE_TEMPLATES, "seed.py"])
    assert listed["blank"] == ("our blank", (cfg.template_location / "blank.yaml.j2"))
    assert listed["seed.py"][0] == "" and listed["create_collection"][0].startswith("a collection with one dense vector")
    rev = script.generate_revision("mine", owner="team: search")
    assert [op.text for op in rev.upgrade_ops()] == ["team: search"]


def test_template_errors_are_one_line_naming_the_template(cfg):
    templates = Path("templates")
    templates.mkdir()
    (templates / "needs.yaml.j2").write_text("{# needs a var #}\nrevision: {{ revision }}\nx: {{ owner }}\n")
    (templates / "broken.yaml.j2").write_text("{# broken #}\nrevision: {{ revision \n")
    (templates / "wrongid.yaml.j2").write_text("{# wrong id #}\nrevision: other\ndown_revision: null\n")
    (templates / "invalid.yaml.j2").write_text("{# invalid #}\nrevision: {{ revision }}\ndown_revision: null\nextra: 1\n")
    script = ScriptDirectory(cfg)
    with pytest.raises(ScriptError, match=r"^templates/needs.yaml.j2: 'owner' is undefined: pass it with --var NAME=VALUE$"):
        script.generate_revision("m", template="needs", rev_id="a")
    with pytest.raises(ScriptError, match=r"^templates/broken.yaml.j2, line 2: template syntax error: "):
        script.generate_revision("m", template="broken", rev_id="a")
    with pytest.raises(ScriptError, match=r"^templates/wrongid.yaml.j2: the template must write `revision` and `down_revision` from its variables"):
        script.generate_revision("m", template="wrongid", rev_id="a")
    with pytest.raises(ScriptError, match=r"^templates/invalid.yaml.j2: the template writes an invalid revision \(versions/a_m.yaml: unknown key 'extra'"):
        script.generate_revision("m", template="invalid", rev_id="a")
    assert list(Path("versions").iterdir()) == []


@pytest.mark.parametrize("message, slug", [
    ("Create products", "create_products"),
    ("switch products to MiniLM-L6 (v2)!", "switch_products_to_minilm_l6_v2"),
    ("Ünïcödé façade", "unicode_facade"),
    ("a very long message that keeps going past the forty character limit", "a_very_long_message_that_keeps_going"),
    ("x" * 50, "x" * 40),
    ("日本語", ""),
])
def test_slug_is_lowercase_ascii_words_up_to_forty_characters(message, slug):
    assert slugify(message) == slug


def test_shipped_revision_schema_is_a_valid_draft_2020_12_schema():
    import json
    from importlib import resources

    import jsonschema

    schema = json.loads(resources.files("vecmig.script").joinpath("revision.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
