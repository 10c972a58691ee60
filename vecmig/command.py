"""One public function per command. The CLI, tests and deploy scripts all call these.

Each takes a ``Config`` first and returns data (the CLI prints it as text or ``--json``).
"""

from __future__ import annotations

from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Iterator

from vecmig.config import Config
from vecmig.errors import ConfigError, PlanError, StateError, VecmigError
from vecmig.progress import Reporter, silent
from vecmig.runner import DOWN, ROLLBACK, UP, Plan, Runner, changed_checksums, check_known_heads, make_plan, make_rollback_plan
from vecmig.script.revision import shown_path
from vecmig.schema import SchemaView
from vecmig.state import StateStore
from vecmig.state_records import absent_state, require_state


# -- helpers -------------------------------------------------------------------------------------

def script_directory(cfg: Config):
    from vecmig.script import ScriptDirectory

    return ScriptDirectory(cfg)


@contextmanager
def open_store(cfg: Config) -> Iterator[tuple[object, StateStore]]:
    """The connected backend and the project's state store; closed at the end."""
    from vecmig.backends import connect, parse_url

    backend = connect(cfg)
    try:
        records = backend.records(cfg.state_collection or backend.default_state_collection)
        yield backend, StateStore(records, status_file=parse_url(cfg.url).status_file(cfg.here))
    finally:
        backend.close()


def applied_at(step: dict | None) -> str | None:
    """When a revision's last step applied it (None if it was undone since, or never ran)."""
    if step and step.get("direction") == UP and step.get("status") in ("done", "stamped"):
        return step.get("finished_at")
    return None


def rev_summary(rev, heads: set[str] = frozenset(), applied: set[str] = frozenset()) -> dict:
    return {
        "revision": rev.revision,
        "down_revision": list(rev.down_revisions),
        "branch_labels": list(rev.branch_labels),
        "depends_on": list(rev.depends_on),
        "message": rev.message,
        "path": shown_path(rev.path),
        "is_head": rev.revision in heads,
        "applied": rev.revision in applied,
    }


# -- project -------------------------------------------------------------------------------------

def init(directory: str | Path, *, url: str | None = None) -> Path:
    """Create a project: vecmig.ini, versions/ and templates/ (copies the user may edit)."""
    root = Path(directory)
    ini = root / "vecmig.ini"
    if ini.exists():
        raise ConfigError(f"{ini} already exists: this folder is a vecmig project already")
    for sub in ("versions", "templates"):
        if (root / sub).exists() and any((root / sub).iterdir()):
            raise ConfigError(f"{root / sub} exists and is not empty: pick an empty folder")
    (root / "versions").mkdir(parents=True, exist_ok=True)
    templates = root / "templates"
    templates.mkdir(exist_ok=True)
    package = resources.files("vecmig") / "templates"
    for item in (package / "revision").iterdir():
        if item.name.endswith(".j2"):
            (templates / item.name).write_text(item.read_text(encoding="utf-8"), encoding="utf-8")
    text = (package / "vecmig.ini.j2").read_text(encoding="utf-8")
    from jinja2 import Template

    ini.write_text(Template(text, keep_trailing_newline=True).render(url=url or "qdrant+local://.vecmig/qdrant"), encoding="utf-8")
    _ignore_store(root, url or "qdrant+local://.vecmig/qdrant")
    return root


def _ignore_store(root: Path, url: str) -> None:
    """Keep the embedded store out of git: its folder holds the data, the lock and the status file
    (`.vecmig/`, or a relative qdrant+local path). An existing .gitignore gets the lines it lacks."""
    lines = [".vecmig/"]
    if url.startswith("qdrant+local://") and not url.startswith("qdrant+local:///"):
        folder = url.removeprefix("qdrant+local://").split("?", 1)[0].strip("/")
        if folder and not folder.startswith((".vecmig/", "./.vecmig/")) and folder != ".vecmig":
            lines.append(f"{folder.removeprefix('./')}/")
    path = root / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    have = {line.strip().strip("/") for line in text.splitlines()}
    missing = [line for line in lines if line.strip("/") not in have]
    if not missing:
        return
    prefix = "" if not text or text.endswith("\n") else "\n"
    header = "" if text else "# the embedded vector store: data, lock and status file (vecmig.ini `url`)\n"
    with path.open("a", encoding="utf-8") as f:
        f.write(prefix + header + "".join(f"{line}\n" for line in missing))


def revision(cfg: Config, message: str, *, template: str = "blank", head: str = "head", depends_on=(), rev_id=None, branch_labels=(), splice: bool = False, **variables):
    """Write a new revision file from a template. A ``head`` that is not a head needs ``splice``."""
    return script_directory(cfg).generate_revision(
        message, template=template, head=head, depends_on=tuple(depends_on), rev_id=rev_id, branch_labels=tuple(branch_labels), splice=splice, **variables
    )


def merge(cfg: Config, revisions=("heads",), *, message: str = "merge", rev_id=None, branch_labels=(), splice: bool = False):
    """Write a merge revision joining several heads."""
    return script_directory(cfg).merge(list(revisions), message=message, rev_id=rev_id, branch_labels=tuple(branch_labels), splice=splice)


def edit(cfg: Config, rev: str = "current", *, editor: str | None = None) -> list[str]:
    """Open revision files in ``$EDITOR`` (or ``$VISUAL``): ``rev`` is a revision, ``heads``,
    ``X@heads``, or ``current`` (the store's heads). Returns the files it opened."""
    import os
    import shlex
    import shutil
    import subprocess

    script = script_directory(cfg)
    if rev == "current":
        with open_store(cfg) as (backend, state):
            ids = state.heads()
            if not ids:
                require_state(backend, state)
        check_known_heads(script, ids)
        if not ids:
            raise VecmigError("edit current: the store is at base, no revision is applied: name a revision")
    else:
        ids = script.graph.resolve(rev)
        if not ids:
            raise VecmigError(f"edit {rev}: {rev!r} names no revision file: name a revision")
    paths = [script.get_revision(r).path for r in ids]
    command = editor or os.environ.get("EDITOR") or os.environ.get("VISUAL")
    if command:
        argv = shlex.split(command)
    else:
        found = next((shutil.which(name) for name in ("sensible-editor", "editor", "nano", "vim", "vi", "code") if shutil.which(name)), None)
        if found is None:
            raise VecmigError("edit: no editor found: set $EDITOR (e.g. `export EDITOR=nano`)")
        argv = [found]
    for path in paths:
        try:
            done = subprocess.run([*argv, str(path)])
        except OSError as e:
            raise VecmigError(f"edit: can't run the editor {argv[0]!r} ({e.strerror or e}): set $EDITOR to an editor on your PATH") from None
        if done.returncode != 0:
            raise VecmigError(f"edit: the editor {argv[0]!r} exited {done.returncode} on {shown_path(path)}")
    return [shown_path(p) for p in paths]


def list_templates(cfg: Config) -> list[dict]:
    return [{"name": name, "description": desc, "path": str(path)} for name, desc, path in script_directory(cfg).list_templates()]


# -- reading the graph -----------------------------------------------------------------------------

def heads(cfg: Config, *, resolve_dependencies: bool = False) -> list[dict]:
    """The script's heads; ``resolve_dependencies`` leaves out a head that another revision
    depends on (``depends_on`` counted as a down revision, as Alembic's option does)."""
    script = script_directory(cfg)
    head_ids = set(script.graph.heads)
    shown = script.graph.tips(head_ids) if resolve_dependencies else sorted(head_ids)
    return [rev_summary(script.get_revision(h), head_ids) for h in shown]


def branches(cfg: Config) -> list[dict]:
    script = script_directory(cfg)
    out = []
    for rev_id in script.graph.branch_points():
        rev = script.get_revision(rev_id)
        children = sorted(r.revision for r in script.revisions if rev_id in r.down_revisions)
        out.append({**rev_summary(rev), "children": children})
    return out


def show(cfg: Config, ref: str) -> dict:
    script = script_directory(cfg)
    rev = script.get_revision(ref)
    out = rev_summary(rev, set(script.graph.heads))
    out["checksum"] = rev.checksum
    out["upgrade"] = [op.describe() for op in rev.upgrade_ops(cfg)]
    down = rev.downgrade_ops(cfg)
    out["downgrade"] = "auto" if down is None else [op.describe() for op in down]
    return out


def history(cfg: Config, rng: str | None = None, *, indicate_current: bool = False) -> list[dict]:
    """Revisions newest first; with ``indicate_current`` the store says which are applied."""
    script = script_directory(cfg)
    current: list[str] = []
    steps: dict[str, dict] = {}
    if indicate_current or (rng and "current" in rng):
        with open_store(cfg) as (backend, state):
            current, steps = state.heads(), state.steps()
            if not current:
                require_state(backend, state)
    applied = script.graph.applied(current) if current else set()
    head_ids = set(script.graph.heads)
    out = []
    for rev in script.graph.history(rng, current_heads=current):
        item = rev_summary(rev, head_ids, applied)
        item["current"] = rev.revision in current
        item["applied_at"] = applied_at(steps.get(rev.revision))
        out.append(item)
    return out


# -- the store -----------------------------------------------------------------------------------

def current(cfg: Config) -> dict:
    """The store's heads, and whether they are the script's heads."""
    script = script_directory(cfg)
    with open_store(cfg) as (backend, state):
        store_heads = state.heads()
        steps = state.steps()
        if not store_heads:
            require_state(backend, state)
    check_known_heads(script, store_heads)
    script_heads = sorted(script.graph.heads)
    applied = script.graph.applied(store_heads)
    return {
        "store": backend.describe(),
        "state_collection": state.name,
        "heads": sorted(store_heads),
        "script_heads": script_heads,
        "at_head": sorted(store_heads) == script_heads,
        "revisions": [
            {**rev_summary(script.get_revision(h), set(script_heads), applied), "applied_at": applied_at(steps.get(h))} for h in sorted(store_heads)
        ],
    }


def upgrade(cfg: Config, target: str = "head", *, plan_only: bool = False, accept_checksums: bool = False, reporter: Reporter | None = None, confirm=None) -> Plan:
    """Apply revisions up to ``target``. ``plan_only`` checks everything and writes nothing."""
    return _migrate(cfg, UP, target, plan_only=plan_only, accept_checksums=accept_checksums, reporter=reporter, confirm=confirm)


def downgrade(cfg: Config, target: str, *, plan_only: bool = False, reporter: Reporter | None = None, confirm=None) -> Plan:
    """Undo revisions down to ``target`` (``-1``, ``base``, a revision)."""
    return _migrate(cfg, DOWN, target, plan_only=plan_only, reporter=reporter, confirm=confirm)


def rollback(cfg: Config, *, plan_only: bool = False, reporter: Reporter | None = None, confirm=None) -> Plan:
    """Undo what an interrupted upgrade did (a failed verify gate, a kill), last op first; the
    heads stay where they are. ``vecmig upgrade`` would resume it instead."""
    return _migrate(cfg, ROLLBACK, "", plan_only=plan_only, reporter=reporter, confirm=confirm)


def _migrate(cfg, direction, target, *, plan_only, reporter, confirm, accept_checksums=False) -> Plan:
    reporter = reporter or silent()
    script = script_directory(cfg)
    with open_store(cfg) as (backend, state):
        absent = None if state.heads() else absent_state(backend, state)
        if absent and direction != UP:
            raise StateError(str(absent))
        try:
            if direction == ROLLBACK:
                plan = make_rollback_plan(script, state, backend, cfg)
            else:
                plan = make_plan(script, state, backend, cfg, direction, target, accept_checksums=accept_checksums)
        except PlanError as e:
            if absent is None:
                raise
            # a store whose state was lost: the revisions from base run into what they made
            raise StateError(f"{absent.problem}, and applying the revisions from base to them fails ({e}): {absent.stamp}, then `vecmig upgrade`") from None
        if direction == UP:
            check_downgrades(plan, cfg)
        if plan_only:
            return plan
        if confirm is not None and plan.steps and not confirm(plan):
            raise VecmigError("stopped: nothing was applied")
        word = {UP: "upgrade", DOWN: "downgrade", ROLLBACK: "rollback"}[direction]
        return Runner(script, state, backend, cfg, reporter).run(direction, target, command=f"{word} {target}".strip(), accept_checksums=accept_checksums)


def check_downgrades(plan: Plan, cfg: Config) -> None:
    """Build the explicit downgrade of every revision an upgrade applies, so an unknown op or a bad
    parameter there stops the upgrade now rather than the downgrade that would need it later."""
    for step in plan.steps:
        step.revision.downgrade_ops(cfg)


def destructive_ops(plan: Plan) -> list[str]:
    """Ops of a plan that delete data (marked `!`; the CLI asks before running them)."""
    return [f"{s.revision.revision}: {op.describe()}" for s in plan.steps for op in s.ops if op.destructive]


def stamp(cfg: Config, targets, *, purge: bool = False, plan_only: bool = False) -> dict:
    """Set the store's heads without running any op (adopt an existing store). ``targets``: one
    or several revisions (``heads``, ``label@head``, ``base``, ``label@base``, ids); each replaces only
    the heads on its own lines, as in Alembic. ``purge`` ignores the recorded heads (they may be
    unknown or unreadable); ``plan_only`` says what would change and writes nothing."""
    script = script_directory(cfg)
    targets = [targets] if isinstance(targets, str) else list(targets)
    targets = [t for target in targets for t in target.split(",") if t]
    graph = script.graph
    with open_store(cfg) as (backend, state):
        absent_state(backend, state)  # refuses a state collection that is not vecmig's
        before = [] if purge else state.heads()
        if not purge:
            check_known_heads(script, before)
        heads = graph.stamp_heads(before, targets, purge=purge)
        applied = graph.applied(heads)
        was_applied = graph.applied(before) | _recorded_applied(state, graph)
        result = {
            "heads_before": sorted(before),
            "heads": heads,
            "applied": graph.topo(applied - was_applied),
            "unapplied": list(reversed(graph.topo(was_applied - applied))),
            "stamped": not plan_only,
        }
        if plan_only:
            return result
        state.acquire_lock(ttl=cfg.lock_ttl, timeout=cfg.lock_timeout, command=f"stamp {' '.join(targets)}", heartbeat=False)
        try:
            state.drop_unreadable()  # damaged step and journal records: the stamped revisions' steps are rewritten below
            for rev_id in graph.topo(applied):
                if applied_at(state.step(rev_id)) is None:
                    state.stamp_step(rev_id, UP, script.get_revision(rev_id).checksum)
            # what the stamp un-applies is recorded as down, so nothing shows it as applied
            # (with --purge, whatever a step record says is applied)
            for rev_id, step in state.steps().items():
                if rev_id in graph and rev_id not in applied and applied_at(step) is not None:
                    state.stamp_step(rev_id, DOWN, script.get_revision(rev_id).checksum)
            state.set_heads(heads)
        finally:
            state.release_lock()
    return result


def _recorded_applied(state: StateStore, graph) -> set[str]:
    """The revisions whose step records say they are applied (none when a record is unreadable:
    `stamp` drops those before it writes)."""
    try:
        steps = state.steps()
    except StateError:
        return set()
    return {rev_id for rev_id, step in steps.items() if rev_id in graph and applied_at(step) is not None}


def validate(cfg: Config, *, accept: bool = False, store: bool = True) -> dict:
    """Parse every revision fully (ops included) and compare applied files with their checksums
    (``store=False``: the files alone, e.g. in a CI job without a store)."""
    script = script_directory(cfg)
    problems = []
    for rev in script.revisions:
        try:
            rev.upgrade_ops(cfg)
            rev.downgrade_ops(cfg)
        except VecmigError as e:
            problems.append(str(e))
    changed = []
    if not store:
        return {"revisions": len(script.revisions), "problems": problems, "changed": changed, "accepted": False}
    with open_store(cfg) as (_, state):
        if state.exists():
            check_known_heads(script, state.heads())
            for rev, old in changed_checksums(script, state):
                changed.append({"revision": rev.revision, "path": shown_path(rev.path), "applied_checksum": old, "checksum": rev.checksum})
                if accept:
                    state.end_step(rev.revision, rev.checksum)
    return {"revisions": len(script.revisions), "problems": problems, "changed": changed, "accepted": accept and bool(changed)}


def check(cfg: Config) -> dict:
    """Compare what the applied revisions declare with the live collections and aliases."""
    script = script_directory(cfg)
    with open_store(cfg) as (backend, state):
        heads = state.heads()
        if not heads:
            require_state(backend, state)
        check_known_heads(script, heads)
        declared = SchemaView()
        touched: set[str] = set()
        for rev_id in script.graph.topo(script.graph.applied(heads)):
            for op in script.get_revision(rev_id).upgrade_ops(cfg):
                recorded = {name: state.embedder_fingerprint(name) for name in op.embedder_names()}
                op.use_dimensions({name: fp["dimension"] for name, fp in recorded.items() if fp and fp.get("dimension")})
                try:
                    op.forward(declared)
                except (KeyError, AttributeError):
                    pass  # the op works on something the revisions don't declare (adopted store)
                touched.update(v for k, v in op.params().items() if k in ("name", "collection", "alias", "to") and isinstance(v, str))
        live = SchemaView.from_backend(backend, exclude={state.name})
    drift = schema_drift(declared, live, touched)
    return {"heads": sorted(heads), "drift": drift, "ok": not drift}


def schema_drift(declared: SchemaView, live: SchemaView, touched: set[str]) -> list[str]:
    out = []
    for name, want in sorted(declared.collections.items()):
        have = live.collections.get(name)
        if have is None:
            out.append(f"collection {name!r} is declared but missing from the store")
            continue
        for vname, vspec in sorted(want.vectors.items()):
            got = have.vectors.get(vname)
            if got is None:
                out.append(f"{name}: vector {vname!r} is declared but missing")
            elif not vspec.same_shape(got) and got.size:
                out.append(f"{name}: vector {vname!r} is {_shape(vspec)} in the revisions, {_shape(got)} in the store")
        for vname in sorted(set(want.sparse_vectors) - set(have.sparse_vectors)):
            out.append(f"{name}: sparse vector {vname!r} is declared but missing")
        for vname in sorted(set(have.vector_names()) - set(want.vector_names())):
            out.append(f"{name}: vector {vname!r} is in the store but no applied revision declares it")
        for field, kind in sorted(want.payload_indexes.items()):
            if have.payload_indexes and have.payload_indexes.get(field) != kind:
                out.append(f"{name}: payload index {field!r} ({kind}) is declared but the store has {have.payload_indexes.get(field) or 'none'}")
    for name in sorted(touched - set(declared.collections) - set(declared.aliases)):
        if name in live.collections:
            out.append(f"collection {name!r} was dropped by the revisions but exists in the store")
    for alias, target in sorted(declared.aliases.items()):
        if live.aliases.get(alias) != target:
            out.append(f"alias {alias!r} should point at {target!r}, the store has {live.aliases.get(alias) or 'no such alias'}")
    return out


def _shape(spec) -> str:
    return f"{spec.size}-d {spec.distance}{' multivector' if spec.multivector else ''}"


def status(cfg: Config) -> dict:
    """What runs now, or was interrupted: steps, ops, checkpoints (done, total, rate, ETA), the lock.

    On an embedded store that another run holds, the status file that run keeps is read instead."""
    from vecmig.backends import parse_url
    from vecmig.errors import LockError
    from vecmig.status import live_status, progress, read_status_file

    try:
        with open_store(cfg) as (backend, state):
            require_state(backend, state)
            result = {**live_status(state), "source": "store"}
    except LockError:
        mirrored = read_status_file(parse_url(cfg.url).status_file(cfg.here))
        if mirrored is None:
            raise
        result = {**mirrored, "source": "status file of the run that holds the embedded store"}
    for step in result["steps"]:
        for op in step["ops"]:
            op["progress"] = progress(op)
    return result


def lock_status(cfg: Config) -> dict | None:
    with open_store(cfg) as (_, state):
        return state.lock_status()


def lock_release(cfg: Config) -> dict | None:
    """Break the migration lock on purpose (after a runner died)."""
    with open_store(cfg) as (_, state):
        return state.release_lock(force=True)

