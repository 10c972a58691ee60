"""The versions folder: finding and parsing revision files, and writing new ones from templates."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

import yaml

from vecmig.errors import GraphError, ScriptError
from vecmig.script.graph import RevisionGraph
from vecmig.script.revision import KINDS, Revision, load_revision, one_line, shown_path

PACKAGE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "revision"
TEMPLATE_SUFFIXES = (".yaml.j2", ".py.j2")
_NAME = re.compile(r"[A-Za-z0-9_]+")
_DESCRIPTION = re.compile(r"\{#-?\s*(.*?)\s*-?#\}")


class ScriptDirectory:
    """The revision files of a project (``config.script_location``) and their graph."""

    def __init__(self, config):
        self.config = config
        self.location = Path(config.script_location)

    @cached_property
    def revisions(self) -> list[Revision]:
        """Every revision file at the top of the folder, in file-name order. Files whose name
        starts with ``_`` or ``.``, and other extensions, are not revisions (helpers, data)."""
        if not self.location.is_dir():
            raise ScriptError(f"{shown_path(self.location)}: no such folder: run `vecmig init`, or set script_location in vecmig.ini")
        return [load_revision(p) for p in sorted(self.location.iterdir()) if _is_revision_file(p)]

    @cached_property
    def graph(self) -> RevisionGraph:
        return RevisionGraph(self.revisions)

    def get_revision(self, ref: str) -> Revision:
        return self.graph.get(ref)

    # -- new revisions --------------------------------------------------------------------------

    def generate_revision(
        self,
        message: str,
        *,
        template: str = "blank",
        head: str = "head",
        depends_on: Iterable[str] = (),
        rev_id: str | None = None,
        branch_labels: Iterable[str] = (),
        down_revisions: Iterable[str] | None = None,
        splice: bool = False,
        **variables: Any,
    ) -> Revision:
        """Write ``<rev>_<slug>.yaml`` (``.py`` for a Python template) and return it parsed.

        The parent is ``head`` (the single head, ``base`` for a new line, a label@head or an id)
        unless ``down_revisions`` names them. A parent that is not a head needs ``splice`` (a new
        branch starts there), as in Alembic. Extra keyword arguments are template variables.
        """
        graph = self.graph
        rev_id = self._new_id(rev_id)
        parents = self._parents(head) if down_revisions is None else [graph.get(r).revision for r in down_revisions]
        if not splice:
            self._check_heads(parents, f"--head {head}" if down_revisions is None else "merge")
        branch_labels = list(branch_labels)
        for label in branch_labels:
            if not _NAME.fullmatch(label):
                raise ScriptError(f"branch label {label!r}: use letters, digits and _ only")
            if label in graph.labels:
                raise GraphError(f"branch label {label!r} is already on revision {graph.labels[label]}: pick another label")
        message = one_line(message)
        slug = slugify(message)
        source = self._find_template(template)
        text = self._render(source, variables, {
            **variables,
            "revision": rev_id,
            "down_revision": (parents[0] if len(parents) == 1 else parents) or None,
            "branch_labels": branch_labels,
            # a branch label is kept as written (it stays right when the labelled line grows), as in Alembic
            "depends_on": [r if r in graph.labels else graph.get(r).revision for r in depends_on],
            "message": message,
            "slug": slug,
            # what the message is about: "create products" -> "products"
            "subject": re.sub(r"^(create|add|new|make|switch|migrate|move|change|update|quantize|try)_", "", slug) or slug,
            "create_date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
        suffix = ".py" if source.name.endswith(".py.j2") else ".yaml"
        path = self.location / f"{rev_id}_{slug}{suffix}" if slug else self.location / f"{rev_id}{suffix}"
        try:
            new = load_revision(path, text.encode("utf-8"))
        except ScriptError as e:
            raise ScriptError(f"{shown_path(source)}: the template writes an invalid revision ({e})") from None
        if (new.revision, new.down_revisions) != (rev_id, tuple(parents)):
            raise ScriptError(f"{shown_path(source)}: the template must write `revision` and `down_revision` from its variables: use `{{{{ revision | yaml }}}}` and `{{{{ down_revision | yaml }}}}`")
        checked = RevisionGraph([*self.revisions, new])  # the project must still load with it
        try:
            with path.open("x", encoding="utf-8", newline="\n") as f:
                f.write(text)
        except FileExistsError:
            raise ScriptError(f"{shown_path(path)} already exists: pick another --rev-id") from None
        self.__dict__.update(revisions=[*self.revisions, new], graph=checked)
        return new

    def merge(
        self,
        revisions: Iterable[str] = ("heads",),
        *,
        message: str = "merge",
        rev_id: str | None = None,
        branch_labels: Iterable[str] = (),
        splice: bool = False,
    ) -> Revision:
        """Write a revision whose ``down_revision`` lists ``revisions`` (``heads``: every head;
        ``X@heads``: the heads of X's lines). Revisions that are not heads need ``splice``."""
        graph = self.graph
        ids = sorted({r for ref in revisions for r in graph.resolve(ref)})
        if len(ids) < 2:
            raise GraphError(f"nothing to merge: {', '.join(ids) or 'no revision'} is a single line: name two or more heads")
        for rev in ids:
            below = graph.ancestors([rev]) - {rev}
            for other in ids:
                if other in below:
                    raise GraphError(f"{other} is already below {rev}: merge revisions from different lines")
        return self.generate_revision(message, down_revisions=ids, rev_id=rev_id, branch_labels=branch_labels, splice=splice)

    def _new_id(self, rev_id: str | None) -> str:
        if rev_id is None:
            rev_id = uuid.uuid4().hex[:12]
            while rev_id in self.graph:
                rev_id = uuid.uuid4().hex[:12]
            return rev_id
        if not _NAME.fullmatch(rev_id):
            raise ScriptError(f"revision id {rev_id!r}: use letters, digits and _ only")
        if rev_id in self.graph:
            raise GraphError(f"revision id {rev_id!r} is already used by {shown_path(self.graph.get(rev_id).path)}: pick another id")
        return rev_id

    def _check_heads(self, parents: list[str], where: str) -> None:
        """Refuse a parent that is not a head (the new revision would start a branch) unless spliced."""
        heads = set(self.graph.heads)
        for parent in parents:
            if parent in heads:
                continue
            above = self.graph.resolve(f"{parent}@heads")
            names = f"{', '.join(above)} {'is' if len(above) == 1 else 'are'} above it"
            if where == "merge":
                fix = f"merge {parent}@head instead" if len(above) == 1 else "merge heads (see `vecmig heads`)"
                raise GraphError(f"merge: revision {parent} is not a head ({names}): pass --splice to merge it anyway, or {fix}")
            fix = f"continue its line with --head {parent}@head" if len(above) == 1 else "name a head (see `vecmig heads`)"
            raise GraphError(f"{where}: revision {parent} is not a head ({names}): pass --splice to start a new branch from it, or {fix}")

    def _parents(self, head: str) -> list[str]:
        if head == "base":
            return []
        if head == "head":
            heads = self.graph.heads
            if len(heads) > 1:
                raise GraphError(
                    f"multiple heads ({', '.join(heads)}): pass --head with one of them (or --head base for a new line), "
                    "or join them first with `vecmig merge heads`"
                )
            return heads
        return [self.graph.get(head).revision]

    # -- templates ------------------------------------------------------------------------------

    def _template_folders(self) -> list[Path]:
        """The project's templates (which `vecmig init` copies there) first, then the package's."""
        return [f for f in (Path(self.config.template_location), PACKAGE_TEMPLATES) if f.is_dir()]

    def list_templates(self) -> list[tuple[str, str, Path]]:
        """(name, one-line description, path) of each template; a project's template hides the
        package's of the same file name."""
        found: dict[str, Path] = {}
        for folder in reversed(self._template_folders()):
            for path in folder.iterdir():
                if path.name.endswith(TEMPLATE_SUFFIXES) and not path.name.startswith("_"):
                    found[template_name(path)] = path
        return [(name, template_description(path), path) for name, path in sorted(found.items())]

    def _find_template(self, name: str) -> Path:
        files = [f"{name}.j2"] if name.endswith((".yaml", ".py")) else [f"{name}.yaml.j2", f"{name}.py.j2"]
        for folder in self._template_folders():
            for file in files:
                if (folder / file).is_file():
                    return folder / file
        known = ", ".join(n for n, _, _ in self.list_templates())
        raise ScriptError(f"no template {name!r}: the templates are {known} (see `vecmig list-templates`)")

    def _render(self, source: Path, given: dict[str, Any], values: dict[str, Any]) -> str:
        """``source`` rendered with ``values``; ``given`` are the user's --var values, named in the
        error when one isn't of the type the template converts it to (``| int``, ``| float``)."""
        import jinja2

        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([source.parent, *self._template_folders()]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(yaml=to_yaml, py=repr, int=strict_int, float=strict_float)
        try:
            return env.get_template(source.name).render(values)
        except _NotA as e:
            names = [k for k, v in given.items() if v == e.value]
            if names:
                raise ScriptError(f"--var {names[0]}={e.value}: {names[0]} must be {e.expected} (the template {template_name(source)!r} uses it as one)") from None
            raise ScriptError(f"{shown_path(source)}: {e.value!r} is not {e.expected}: fix the template's default") from None
        except jinja2.TemplateSyntaxError as e:
            raise ScriptError(f"{shown_path(source)}, line {e.lineno}: template syntax error: {one_line(e.message)}") from None
        except jinja2.UndefinedError as e:
            raise ScriptError(f"{shown_path(source)}: {one_line(e.message)}: pass it with --var NAME=VALUE") from None


class _NotA(Exception):
    """A template variable that can't be converted as the template asks."""

    def __init__(self, value: Any, expected: str):
        super().__init__(value)
        self.value, self.expected = value, expected


def strict_int(value: Any, default: Any = None, base: int = 10) -> int:
    """Jinja's ``int`` filter, except that a value that isn't an integer is an error, not 0."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip(), base)
        except ValueError:
            pass
    raise _NotA(value, "an integer")


def strict_float(value: Any, default: Any = None) -> float:
    """Jinja's ``float`` filter, except that a value that isn't a number is an error, not 0.0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
        else:
            if number == number and number not in (float("inf"), float("-inf")):
                return number
    raise _NotA(value, "a number")


def _is_revision_file(path: Path) -> bool:
    return path.suffix in KINDS and not path.name.startswith(("_", ".")) and path.is_file()


def template_name(path: Path) -> str:
    """``blank.yaml.j2`` is ``blank``; ``blank.py.j2`` is ``blank.py``."""
    return path.name.removesuffix(".j2").removesuffix(".yaml")


def template_description(path: Path) -> str:
    """The template's first line, a Jinja comment: ``{# what it writes #}``."""
    with path.open(encoding="utf-8") as f:
        match = _DESCRIPTION.match(f.readline().strip())
    return match.group(1) if match else ""


def to_yaml(value: Any) -> str:
    """``value`` as one line of YAML, quoted where YAML needs it (ids that look like numbers,
    messages with colons or quotes)."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=2**31).strip()
    return text.removesuffix("...").strip()


def slugify(message: str, limit: int = 40) -> str:
    """Lowercase ASCII words of ``message`` joined by ``_``, at most ``limit`` characters."""
    text = unicodedata.normalize("NFKD", message).encode("ascii", "ignore").decode().lower()
    words = re.findall(r"[a-z0-9]+", text)
    slug = ""
    for word in words:
        longer = f"{slug}_{word}" if slug else word
        if len(longer) > limit:
            break
        slug = longer
    return slug or (words[0][:limit] if words else "")
