"""Revision files: YAML (safe_load + the JSON Schema in ``revision.schema.json``) and Python.

A Python file's header (``revision = ...``) is read from its syntax tree, without running it, so
listing and history never execute user code; the module runs only when its ops are asked for.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import yaml

from vecmig.errors import ScriptError, VecmigError

KINDS = {".yaml": "yaml", ".yml": "yaml", ".py": "python"}
KEYS = ("revision", "down_revision", "branch_labels", "depends_on", "message", "upgrade", "downgrade")
HEADER_KEYS = KEYS[:5]

# what a key holds, appended to schema errors
_EXPECTED = {
    "revision": "a revision id of letters, digits and _ (quote an id YAML would read as a number or boolean)",
    "down_revision": "null for a first revision, the parent's id, or a list of ids for a merge",
    "branch_labels": "a label or a list of labels (letters, digits and _)",
    "depends_on": "a revision id or a list of ids",
    "message": "a string (quote it)",
    "upgrade": "a list of ops, each `- op_name: {params}`",
    "downgrade": "`auto` or a list of ops ([] when there is nothing to undo)",
}
_MISSING = {
    ("revision", "yaml"): "add `revision: <id>` (the id at the start of the file name)",
    ("revision", "python"): 'add `revision = "<id>"` (the id at the start of the file name)',
    ("down_revision", "yaml"): "add `down_revision: null` for a first revision, or the parent's id",
    ("down_revision", "python"): "add `down_revision = None` for a first revision, or the parent's id",
}


def shown_path(path: str | Path) -> str:
    """A path as the user would type it: relative to the working directory when it is under it."""
    p = Path(path)
    if p.is_absolute():
        try:
            return str(p.relative_to(Path.cwd()))
        except ValueError:
            pass
    return str(p)


def one_line(text: object) -> str:
    return " ".join(str(text).split())


@dataclass(eq=False)
class Revision:
    """One revision file: its header, read eagerly; its ops are built when asked for."""

    kind: ClassVar[str] = ""

    revision: str
    down_revisions: tuple[str, ...]
    branch_labels: tuple[str, ...]
    depends_on: tuple[str, ...]
    message: str
    path: Path
    checksum: str

    @property
    def is_base(self) -> bool:
        return not self.down_revisions

    @property
    def is_merge(self) -> bool:
        return len(self.down_revisions) > 1

    def upgrade_ops(self, config=None) -> list:
        raise NotImplementedError

    def downgrade_ops(self, config=None) -> list | None:
        """The explicit downgrade ops, or None for ``downgrade: auto`` (the runner reverses)."""
        raise NotImplementedError


@dataclass(eq=False)
class YamlRevision(Revision):
    kind: ClassVar[str] = "yaml"

    upgrade_items: list[dict] = field(default_factory=list, repr=False)
    downgrade_items: list[dict] | None = field(default=None, repr=False)

    def upgrade_ops(self, config=None) -> list:
        return self._build("upgrade", self.upgrade_items)

    def downgrade_ops(self, config=None) -> list | None:
        return None if self.downgrade_items is None else self._build("downgrade", self.downgrade_items)

    def _build(self, section: str, items: list[dict]) -> list:
        import vecmig.ops  # noqa: F401  (registers every op)
        from vecmig.ops.base import build_op

        where = shown_path(self.path)
        return [
            build_op(name, params, f"{where}: {section}[{i}]", self.path.parent)
            for i, item in enumerate(items)
            for name, params in item.items()
        ]


@dataclass(eq=False)
class PythonRevision(Revision):
    kind: ClassVar[str] = "python"

    has_downgrade: bool = False

    def upgrade_ops(self, config=None) -> list:
        return self._collect("upgrade", config)

    def downgrade_ops(self, config=None) -> list | None:
        return self._collect("downgrade", config) if self.has_downgrade else None

    def _collect(self, function: str, config) -> list:
        from vecmig.script.operations import Operations

        where = shown_path(self.path)
        op = Operations(config, where=f"{where}: {function}", source_dir=self.path.parent)
        for folder in reversed(getattr(config, "prepend_sys_path", None) or []):
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
        try:
            getattr(self._module, function)(op)
        except VecmigError:
            raise
        except Exception as e:
            raise ScriptError(f"{where}: {function}(op) raised {type(e).__name__}: {one_line(e)}: fix the function (--debug shows the traceback)") from e
        return op.ops

    @cached_property
    def _module(self):
        name = f"vecmig_revision_{self.revision}_{self.checksum[:8]}"
        spec = importlib.util.spec_from_file_location(name, self.path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[name]
            raise ScriptError(f"{shown_path(self.path)}: running the file raised {type(e).__name__}: {one_line(e)}: fix the file (--debug shows the traceback)") from e
        return module


def load_revision(path: str | Path, data: bytes | None = None) -> Revision:
    """Parse one revision file; ``data`` is its content when it is not (yet) on disk."""
    path = Path(path)
    kind = KINDS.get(path.suffix)
    if kind is None:
        raise ScriptError(f"{shown_path(path)}: not a revision file: use .yaml, .yml or .py")
    if data is None:
        data = path.read_bytes()
    checksum = hashlib.sha256(data).hexdigest()
    return _read_yaml(path, data, checksum) if kind == "yaml" else _read_python(path, data, checksum)


class _SafeUniqueLoader(yaml.SafeLoader):
    """``safe_load``'s loader, except that a key written twice in one mapping is an error
    (plain YAML keeps the last one, which would silently drop e.g. a first ``upgrade:`` list)."""


class _FastUniqueLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The same, on libyaml where PyYAML has it (several times faster); a file it refuses is read
    again by ``_SafeUniqueLoader``, whose messages say more."""


def _unique_mapping(loader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


for _loader in (_SafeUniqueLoader, _FastUniqueLoader):
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(data: bytes):
    """A YAML document, safely: no tags that build objects, no duplicate keys."""
    try:
        return yaml.load(data, Loader=_FastUniqueLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return yaml.load(data, Loader=_SafeUniqueLoader)  # noqa: S506 - raises again, with a clearer message


def _check_utf8(where: str, data: bytes) -> None:
    """A revision file is UTF-8 (YAML's UTF-16 with a byte-order mark is read as well)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        from vecmig.config import not_utf8

        raise ScriptError(not_utf8(where, data, e)) from None


def _read_yaml(path: Path, data: bytes, checksum: str) -> YamlRevision:
    where = shown_path(path)
    _check_utf8(where, data)
    try:
        doc = load_yaml(data)
    except yaml.YAMLError as e:
        raise ScriptError(f"{where}{_yaml_error(e)}: fix the YAML (indentation, brackets, quotes)") from None
    if doc is None:
        raise ScriptError(f"{where}: the file is empty: a revision needs at least `revision:` and `down_revision:` (see `vecmig revision`)")
    if not isinstance(doc, dict):
        raise ScriptError(f"{where}: a revision file is a YAML mapping (revision:, down_revision:, upgrade:, ...), not a {_type_name(doc)}")
    check_document(doc, where, "yaml")
    downgrade = doc.get("downgrade", "auto")
    return YamlRevision(
        **_header(doc, path, checksum),
        upgrade_items=doc.get("upgrade") or [],
        downgrade_items=None if downgrade == "auto" else downgrade,
    )


def _yaml_error(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    if mark is None:
        return f": invalid YAML: {one_line(e)}"
    text = f", line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {one_line(e.problem)}"
    context_mark = getattr(e, "context_mark", None)
    if e.context and context_mark is not None and context_mark.line != mark.line:
        text += f" ({one_line(e.context)} at line {context_mark.line + 1})"
    return text


def _read_python(path: Path, data: bytes, checksum: str) -> PythonRevision:
    where = shown_path(path)
    if not re.match(rb"(?:[^\n]*\n)?[ \t\f]*#[^\n]*coding[:=]", data):  # a `# coding:` line names another encoding
        _check_utf8(where, data)
    try:
        tree = ast.parse(data, filename=str(path))
    except (SyntaxError, ValueError) as e:
        line = f", line {e.lineno}" if getattr(e, "lineno", None) else ""
        raise ScriptError(f"{where}{line}: Python syntax error: {one_line(getattr(e, 'msg', e))}: fix the file") from None
    header: dict[str, Any] = {}
    functions = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in HEADER_KEYS:
                    header[target.id] = _literal(node, target.id, where)
    docstring = ast.get_docstring(tree)
    if "message" not in header and docstring:
        header["message"] = docstring.strip().splitlines()[0]
    check_document(header, where, "python")
    if "upgrade" not in functions:
        raise ScriptError(f"{where}: no `def upgrade(op):` function: add one (its body may be `pass`)")
    return PythonRevision(**_header(header, path, checksum), has_downgrade="downgrade" in functions)


def _literal(node: ast.Assign | ast.AnnAssign, name: str, where: str) -> Any:
    try:
        value = ast.literal_eval(node.value)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        raise ScriptError(
            f"{where}, line {node.lineno}: `{name}` must be a literal (a string, None or a list of strings): "
            "vecmig reads it without running the file"
        ) from None
    return list(value) if isinstance(value, tuple) else value


def _header(doc: dict, path: Path, checksum: str) -> dict:
    return {
        "revision": doc["revision"],
        "down_revisions": _names(doc.get("down_revision")),
        "branch_labels": _names(doc.get("branch_labels")),
        "depends_on": _names(doc.get("depends_on")),
        "message": doc.get("message") or "",
        "path": path,
        "checksum": checksum,
    }


def _names(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    text = resources.files("vecmig.script").joinpath("revision.schema.json").read_text(encoding="utf-8")
    return jsonschema.Draft202012Validator(json.loads(text))


def check_document(doc: dict, where: str, kind: str) -> None:
    """Check a revision's keys against the JSON Schema; raise the first problem as one line."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: len(e.absolute_path))
    if errors:
        raise ScriptError(f"{where}: {_explain(errors[0], doc, kind)}")


def _explain(e, doc: dict, kind: str) -> str:
    path = list(e.absolute_path)
    loc = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))
    if e.validator == "required":
        missing = next(k for k in e.validator_value if k not in e.instance)
        return f"`{missing}` is missing: {_MISSING[missing, kind]}"
    if not path and e.validator == "additionalProperties":
        extra = next(k for k in doc if k not in KEYS)
        close = get_close_matches(str(extra), KEYS, n=1)
        return f"unknown key {extra!r}: " + (f"did you mean {close[0]!r}?" if close else f"the keys are {', '.join(KEYS)}")
    if len(path) == 2 and path[0] in ("upgrade", "downgrade"):
        item = doc[path[0]][path[1]]
        got = f"keys {', '.join(map(str, item))}" if isinstance(item, dict) and item else _type_name(item)
        return f"{loc}: an op is a mapping with one key, the op name (`- create_collection: {{name: ...}}`), got {got}: check the indentation"
    if len(path) == 3 and path[0] in ("upgrade", "downgrade"):
        return f"{loc}: the parameters of {path[2]} are a mapping, got {_type_name(e.instance)}: write `{path[2]}: {{key: value, ...}}`"
    message = f"{e.instance!r} is not allowed" if e.validator == "const" else e.message
    expected = _EXPECTED[path[0]]
    return f"{loc}: {message}: expected {expected.replace('null', 'None') if kind == 'python' else expected}"


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict) and not value:
        return "an empty mapping"
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "mapping"}
    return names.get(type(value), type(value).__name__)
