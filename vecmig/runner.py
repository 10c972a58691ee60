"""Plan and apply a path of revisions: lock -> read state -> plan -> for each op: skip if journaled
done, apply, journal -> move heads -> unlock.

Planning walks the whole path against a ``SchemaView`` of the live store, so every op is checked
before the first write. ``--plan`` stops there.

An upgrade step that stopped half-way (a failed ``verify`` gate, a kill) leaves the heads where they
were: ``vecmig upgrade`` resumes it, and ``vecmig rollback`` undoes the ops it did, last first, from
their journaled undo data (a ``ROLLBACK`` plan), so that the store is back at its heads.
"""

from __future__ import annotations

import signal
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field

from vecmig.errors import BackendError, EmbedderError, Interrupted, PlanError, StateError, VecmigError
from vecmig.ops.base import Op, OpContext, rebuild_op
from vecmig.progress import Reporter
from vecmig.schema import SchemaView
from vecmig.script.revision import shown_path
from vecmig.state import StateStore, now_iso

UP, DOWN = "up", "down"
#: a plan that undoes interrupted upgrade steps; its steps run DOWN and move no head
ROLLBACK = "rollback"


@dataclass
class Step:
    """One revision applied in one direction, with the ops that will run."""

    revision: object
    direction: str
    ops: list[Op]
    #: a rollback step: ``{"run": the interrupted upgrade's run id, "undoes": [its op indexes, last first],
    #: "found": [those of them a killed run had applied without journaling it]}``
    rolls_back: dict | None = None
    #: ops a killed run applied but never journaled done, found applied in the live store
    found_applied: set[int] = field(default_factory=set)

    @property
    def label(self) -> str:
        rev = self.revision
        arrow = "Roll back the interrupted upgrade of" if self.rolls_back else ("Upgrade" if self.direction == UP else "Downgrade")
        return f"{arrow} {rev.revision} ({rev.message or 'no message'})"


@dataclass
class Plan:
    direction: str
    heads_before: list[str]
    heads_after: list[str]
    steps: list[Step] = field(default_factory=list)
    #: embedder name -> fingerprint, probed once at plan time
    embedders: dict[str, dict] = field(default_factory=dict)
    #: the dimension checks made against those probes
    checks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "direction": self.direction,
            "heads_before": self.heads_before,
            "heads_after": self.heads_after,
            "steps": [
                {"revision": s.revision.revision, "message": s.revision.message, "direction": s.direction, "ops": [op.describe() for op in s.ops]}
                for s in self.steps
            ],
            "embedders": self.embedders,
            "checks": self.checks,
        }


def step_ops(rev, direction: str, state: StateStore, config) -> list[Op]:
    """The ops of one step. ``downgrade: auto`` reverses the journaled upgrade, op by op."""
    if direction == UP:
        return rev.upgrade_ops(config)
    explicit = rev.downgrade_ops(config)
    if explicit is not None:
        return explicit
    reversed_ops = []
    for i, op in reversed(list(enumerate(rev.upgrade_ops(config)))):
        entry = state.journal_entry(rev.revision, UP, i) or {}
        try:
            op = journaled_op(rev, i, entry, op)
            undo_op = op.reverse(entry.get("undo"))
        except PlanError as e:
            raise PlanError(f"{shown_path(rev.path)}: downgrade: auto: {e}") from None
        if undo_op is None:
            why = op.irreversible or "it has no reverse"
            raise PlanError(
                f"{shown_path(rev.path)}: downgrade is `auto` but upgrade[{i}] {op.op_name} can't be undone ({why}): "
                "write an explicit `downgrade:` list"
            )
        reversed_ops.append(undo_op)
    return reversed_ops


def changed_checksums(script, state: StateStore) -> list[tuple[object, str]]:
    """Applied revisions whose file changed since: (revision, journaled checksum)."""
    applied = script.graph.applied(state.heads())
    changed = []
    for rev_id, step in state.steps().items():
        if rev_id in applied and rev_id in script.graph and step.get("checksum"):
            rev = script.get_revision(rev_id)
            if rev.checksum != step["checksum"]:
                changed.append((rev, step["checksum"]))
    return changed


def same_op(entry: dict, op: Op) -> bool:
    """Whether a journal entry was written for this op: the same op, parameters and data files (not
    merely the same place in the file). Entries from before ops were journaled with their parameters
    match by name."""
    if "params" not in entry:
        return entry.get("op") == op.op_name
    identity = op.identity()
    return (entry.get("op"), entry.get("params"), entry.get("files") or {}) == (identity["op"], identity["params"], identity["files"])


def journaled_op(rev, index: int, entry: dict, file_op: Op | None) -> Op:
    """The op a journal entry was written for, rebuilt from the journal; the file's op at that place
    only when the journal can't rebuild it (a Python step) and the file is as it was then."""
    where = f"{shown_path(rev.path)}: upgrade[{index}] {entry.get('op') or (file_op.op_name if file_op else 'op')}"
    op = rebuild_op(entry, where) if entry.get("op") else None
    if op is not None:
        return op
    if file_op is not None and (not entry or entry.get("checksum") in (None, rev.checksum)):
        return file_op
    raise PlanError(
        f"{where}: the file changed since this op ran, and the journal can't rebuild it "
        "(a Python step, or journaled by an older vecmig): restore the file as it was to undo it"
    )


def journaled_done(state: StateStore, step: Step) -> set[int]:
    """Indexes of the ops an interrupted run of this step already did (the same ops, at the same places)."""
    record = running_step(state, step)
    if record is None:
        return set()
    entries = state.run_journal(step.revision.revision, step.direction, record["run"])
    return {i for i, entry in entries.items() if i < len(step.ops) and entry.get("status") == "done" and same_op(entry, step.ops[i])}


def running_step(state: StateStore, step: Step) -> dict | None:
    """The step record of an interrupted run of this step (same revision and direction), if any."""
    record = state.step(step.revision.revision)
    if not record or record.get("status") != "running" or record.get("direction") != step.direction:
        return None
    return record


def check_edited(state: StateStore, step: Step, view: SchemaView, accept: bool) -> None:
    """A revision file edited under its half-done step is never resumed as if unchanged: refused, or
    with ``accept`` (``--accept-checksums``) adopted when the edit leaves what the run did as it was.
    Each op the run did must be the same op (parameters, data files) at the same place; the op it
    stopped in may change only if it left nothing behind (a failed verify gate, a create that never
    happened). The rest runs from the edited file."""
    record = running_step(state, step)
    if record is None or step.rolls_back:
        return
    rev, direction = step.revision, step.direction
    entries = state.run_journal(rev.revision, direction, record["run"])
    changed = [i for i in sorted(entries) if i >= len(step.ops) or not same_op(entries[i], step.ops[i])]
    if not changed and record.get("checksum") in (None, rev.checksum):
        return
    blocking = [i for i in changed if direction == DOWN or not left_nothing(rev, i, entries[i], state, view)]
    if not blocking and (accept or record.get("checksum") in (None, rev.checksum)):  # adopted before, or now
        return
    path = shown_path(rev.path)
    if blocking:
        i = blocking[0]
        entry = entries[i]
        what = f"{direction}grade[{i}] {entry.get('op')}, which the interrupted run {'did' if entry.get('status') == 'done' else 'started'}"
        files = sorted(f for f, digest in (entry.get("files") or {}).items()
                       if i < len(step.ops) and step.ops[i].identity()["files"].get(f) != digest)
        edit = f"{', '.join(files)} (read by {what}) changed" if files else f"the edit changes {what}"
    else:
        edit = "it changed"
    if direction == DOWN:
        raise StateError(f"{path}: {edit} while its downgrade was half-done: restore the file and re-run the downgrade to finish it")
    if blocking:
        raise StateError(
            f"{path}: {edit}: restore the file and re-run to resume, or `vecmig rollback` to undo what the run did "
            "(from its journal, not the file), then `vecmig upgrade` runs the edited file"
        )
    raise StateError(
        f"{path}: {edit} while its upgrade was half-done: restore it and re-run to resume, `vecmig rollback` to undo "
        "what the run did, or `vecmig upgrade --accept-checksums` to go on with the edited file"
    )


def left_nothing(rev, index: int, entry: dict, state: StateStore, view: SchemaView) -> bool:
    """Whether the op of a journal entry, stopped part-way, left nothing in the store to undo."""
    if entry.get("status") not in ("started", "failed"):
        return False
    try:
        op = journaled_op(rev, index, entry, None)
    except PlanError:
        return False
    checkpoint = state.get_checkpoint(f"{rev.revision}/{UP}/{index}")
    return op.irreversible is None and op.reverse_partial(checkpoint) is None and not op.found_applied(view)


def started_not_done(state: StateStore, step: Step, done: set[int]) -> int | None:
    """The op an interrupted run of this step started (or failed) without journaling it done."""
    record = running_step(state, step)
    pending = min(set(range(len(step.ops))) - done, default=None)
    if pending is None or record is None:
        return None
    entry = state.journal_entry(step.revision.revision, step.direction, pending) or {}
    started = entry.get("run") == record["run"] and entry.get("status") in ("started", "failed")
    return pending if started and same_op(entry, step.ops[pending]) else None


def interrupted_upgrades(script, state: StateStore) -> dict[str, dict]:
    """Revisions whose upgrade stopped half-way (not applied, step record still running) -> record."""
    applied = script.graph.applied(state.heads())
    return {rev: record for rev, record in sorted(state.steps().items())
            if rev not in applied and rev in script.graph and record.get("status") == "running"
            and (record.get("direction") == UP or record.get("rolls_back"))}


def rollback_ops(rev, up_run: str, state: StateStore, config, view: SchemaView, begun: dict | None = None) -> tuple[dict, list[Op]]:
    """What a rollback of the upgrade run ``up_run`` undoes, and the ops that undo it, last first.

    Everything comes from the run's journal, never from the file as it is now: each op the run
    finished is reversed with its journaled undo data; the op it stopped in is reversed when the live
    store (``view``) shows it applied, else its ``reverse_partial`` undoes what it may have written
    (bulk_insert: the ids of the batches it got to). ``begun``: the choice a resumed rollback made
    when it began (``Step.rolls_back``), kept because the store has changed since."""
    entries = state.run_journal(rev.revision, UP, up_run)
    file_ops = rev.upgrade_ops(config)
    rebuilt = {i: journaled_op(rev, i, entries[i], file_ops[i] if i < len(file_ops) else None) for i in entries}
    if begun is None:
        undoes, found = [], []
        for i in sorted(entries, reverse=True):
            if entries[i].get("status") == "done":
                undoes.append(i)
            elif entries[i].get("status") in ("started", "failed"):
                undoes.append(i)
                if rebuilt[i].found_applied(view):
                    found.append(i)
        begun = {"run": up_run, "undoes": undoes, "found": found}
    # a rollback begun by an older vecmig undid a started op only when it was found applied
    found = begun.get("found", [i for i in begun["undoes"] if entries[i].get("status") != "done"])
    ops, kept = [], []
    for i in begun["undoes"]:
        op, entry = rebuilt[i], entries[i]
        where = f"{shown_path(rev.path)}: upgrade[{i}] {op.op_name}"
        if entry.get("status") == "done":
            undo_op = op.reverse(entry.get("undo"))
        elif i in found:
            undo_op = op.reverse(None)
        else:
            undo_op = op.reverse_partial(state.get_checkpoint(f"{rev.revision}/{UP}/{i}"))
            if undo_op is None and op.irreversible is None:
                continue  # stopped before it changed anything: nothing to undo
            if undo_op is None:
                raise PlanError(f"{where} stopped part-way and what it did can't be undone ({op.irreversible}): finish the revision with `vecmig upgrade` instead")
        if undo_op is None:
            raise PlanError(f"{where} can't be undone ({op.irreversible or 'it has no reverse'}): finish the revision with `vecmig upgrade` instead")
        kept.append(i)
        ops.append(undo_op)
    return {**begun, "undoes": kept, "found": found}, ops


def make_rollback_plan(script, state: StateStore, backend, config) -> Plan:
    """Undo the interrupted upgrade steps (or finish undoing them), checked like any plan."""
    heads = state.heads()
    check_known_heads(script, heads)
    plan = Plan(ROLLBACK, sorted(heads), sorted(heads))
    view = SchemaView.from_backend(backend, exclude={state.name})
    for rev_id, record in interrupted_upgrades(script, state).items():
        rev = script.get_revision(rev_id)
        begun = record.get("rolls_back")  # a resumed rollback keeps its choice
        try:
            rolls_back, ops = rollback_ops(rev, begun["run"] if begun else record["run"], state, config, view, begun)
        except PlanError as e:
            raise PlanError(f"rollback: {e}") from None
        step = Step(rev, DOWN, ops, rolls_back=rolls_back)
        done = journaled_done(state, step)
        for i, op in enumerate(step.ops):
            if i in done:
                continue
            try:
                op.validate(view, backend)
            except PlanError as e:
                raise PlanError(f"{shown_path(rev.path)}: rollback[{i}] {e}") from None
            op.forward(view)
        plan.steps.append(step)
    return plan


def check_known_heads(script, heads: list[str]) -> None:
    for head in heads:
        if head not in script.graph:
            raise StateError(
                f"the store is at revision {head!r}, which is not in {shown_path(script.location)}: "
                "check out the code that applied it, or `vecmig stamp` the store at a known revision"
            )


def probe_embedders(op: Op, view: SchemaView, config, plan: Plan, state: StateStore) -> dict[str, int]:
    """Probe each embedder the op uses (once per plan), check the vector sizes, and refuse a name
    whose model changed since it embedded data. Returns name -> dimension."""
    refs = op.embedder_names(view)
    if not refs:
        return {}
    from vecmig.embed.fingerprint import check_vector_size, fingerprint_changes

    dimensions = {}
    for name, size in refs.items():
        fingerprint = check_vector_size(config, name, size, op.op_name)
        if name not in plan.embedders:
            recorded = state.embedder_fingerprint(name)
            changes = fingerprint_changes(recorded, fingerprint) if recorded else []
            if changes:
                raise PlanError(
                    f"{op.op_name}: embedder {name!r} is not the model that embedded the data under that name "
                    f"({changes[0]}): give the new model its own [embedder:NAME]"
                )
            plan.embedders[name] = fingerprint
        dim = fingerprint["dimension"]
        if dim is None:  # a sparse embedder, for a sparse vector (check_vector_size made sure)
            plan.checks.append(f"{op.op_name}: {name} makes sparse vectors, the vector is sparse: ok")
            continue
        plan.checks.append(f"{op.op_name}: {name} makes {dim}-d vectors, " + (f"the vector's size is {size}: ok" if size else "taken as the vector's size"))
        dimensions[name] = dim
    return dimensions


def make_plan(script, state: StateStore, backend, config, direction: str, target: str, *, accept_checksums: bool = False) -> Plan:
    """Resolve the path and check every op against the live store, writing nothing. ``accept_checksums``:
    adopt a revision file edited under its half-done step, where the edit allows it (``check_edited``)."""
    heads = state.heads()
    check_known_heads(script, heads)
    graph = script.graph
    if direction == DOWN:
        stuck = interrupted_upgrades(script, state)
        if stuck:
            rev = next(iter(stuck))
            raise StateError(
                f"the upgrade of {rev} stopped half-way: finish it with `vecmig upgrade`, or undo what it did "
                "with `vecmig rollback`, before downgrading"
            )
    path = graph.upgrade_path(heads, target) if direction == UP else graph.downgrade_path(heads, target)
    plan = Plan(direction, sorted(heads), sorted(heads))
    current = set(heads)
    view = SchemaView.from_backend(backend, exclude={state.name})
    for rev in path:
        step = Step(rev, direction, step_ops(rev, direction, state, config))
        check_edited(state, step, view, accept_checksums)
        done = journaled_done(state, step)
        pending = started_not_done(state, step, done)
        for i, op in enumerate(step.ops):
            if i in done:  # applied by an interrupted run: the live view already shows it
                continue
            try:
                op.use_dimensions(probe_embedders(op, view, config, plan, state))
                if i == pending and op.found_applied(view):  # killed between applying and journaling it
                    step.found_applied.add(i)
                    continue
                op.validate(view, backend)
            except PlanError as e:
                raise PlanError(f"{shown_path(rev.path)}: {direction}grade[{i}] {e}") from None
            except EmbedderError as e:  # can't be loaded, or its probe failed
                raise EmbedderError(f"{shown_path(rev.path)}: {direction}grade[{i}] {op.op_name}: {e}") from None
            op.forward(view)
        plan.steps.append(step)
        current = graph.heads_after(current, rev.revision, direction)
    plan.heads_after = sorted(current)
    return plan


class Runner:
    """Applies a plan under the migration lock, journaling each op so a crash resumes cleanly."""

    def __init__(self, script, state: StateStore, backend, config, reporter: Reporter):
        self.script, self.state, self.backend, self.config, self.out = script, state, backend, config, reporter
        self.plan: Plan | None = None

    def run(self, direction: str, target: str, *, command: str, accept_checksums: bool = False) -> Plan:
        self.state.acquire_lock(ttl=self.config.lock_ttl, timeout=self.config.lock_timeout, command=command, heartbeat=not self.backend.exclusive)
        try:
            if direction == UP:
                self._check_checksums(accept_checksums)
            # planned under the lock: another runner may have moved the heads while we waited
            if direction == ROLLBACK:
                plan = self.plan = make_rollback_plan(self.script, self.state, self.backend, self.config)
            else:
                plan = self.plan = make_plan(self.script, self.state, self.backend, self.config, direction, target,
                                             accept_checksums=accept_checksums)
            if not plan.steps:
                self.out.line(f"Nothing to {'roll back' if direction == ROLLBACK else 'do'}: the store is at {', '.join(plan.heads_before) or 'base'}.")
            heads = set(plan.heads_before)
            with sigterm_interrupts():
                for step in plan.steps:
                    self._run_step(step)
                    if step.rolls_back:  # a rolled back upgrade never moved the heads; its cursors are void
                        self.state.clear_checkpoints(step.revision.revision, UP)
                    else:
                        heads = self.script.graph.heads_after(heads, step.revision.revision, step.direction)
                        self.state.set_heads(heads)
                    self.state.end_step(step.revision.revision, step.revision.checksum)
            return plan
        finally:
            self.state.release_lock()

    def _check_checksums(self, accept: bool) -> None:
        changed = changed_checksums(self.script, self.state)
        if changed and not accept:
            rev, _ = changed[0]
            more = f" (and {len(changed) - 1} more: see `vecmig validate`)" if len(changed) > 1 else ""
            raise StateError(
                f"{shown_path(rev.path)} changed after it was applied{more}: revert it, or accept the change "
                "with `vecmig upgrade --accept-checksums` (or `vecmig validate --accept`)"
            )
        for rev, _ in changed:
            self.state.end_step(rev.revision, rev.checksum)

    def _run_step(self, step: Step) -> None:
        rev, direction = step.revision, step.direction
        run, resumed = self.state.begin_step(rev.revision, direction, rev.checksum, rolls_back=step.rolls_back)
        self.out.line(f"{step.label}{' (resuming)' if resumed else ''}")
        done = journaled_done(self.state, step) if resumed else set()
        for i, op in enumerate(step.ops):
            if i in done:
                self.out.line(f"  = {op.describe()} (already done)")
                continue
            if resumed and i in step.found_applied:
                self.state.record_op(rev.revision, direction, i, {
                    "run": run, "op": op.op_name, "checksum": rev.checksum, "status": "done", "finished_at": now_iso(),
                    "undo": None, "found_applied": True,
                })
                self.out.line(f"  = {op.describe()} (applied by the interrupted run, found in the store)")
                continue
            self._run_op(step, i, op, run)
            if self.state.lease:
                self.state.lease.renew_if_due()

    def _run_op(self, step: Step, index: int, op: Op, run: str) -> None:
        rev, direction = step.revision, step.direction
        key = f"{rev.revision}/{direction}/{index}"
        identity = op.identity()
        base = {"run": run, "op": op.op_name, "params": identity["params"], "files": identity["files"],
                "source_dir": str(op.source_dir) if op.source_dir else None, "checksum": rev.checksum, "started_at": now_iso()}
        self.state.record_op(rev.revision, direction, index, {**base, "status": "started"})
        ctx = OpContext(
            backend=self.backend, config=self.config, state=self.state, revision=rev,
            checkpoint_key=key, echo=self.out.line, progress=self.out.progress,
        )
        started = time.monotonic()
        try:
            undo = op.apply(ctx)
        except BaseException as e:
            message = str(e) if isinstance(e, VecmigError) else f"{type(e).__name__}: {e}".strip()
            self.state.record_op(rev.revision, direction, index, {
                **base, "status": "failed", "finished_at": now_iso(), "duration": time.monotonic() - started,
                "error": message, "traceback": traceback.format_exc(limit=8),
            })
            if isinstance(e, KeyboardInterrupt):  # journaled: say where it stopped and the ways on
                raise Interrupted(self._interrupted_at(step, index, op, key)) from None
            if not isinstance(e, Exception):
                raise
            where = f"{shown_path(rev.path)}: {direction}grade[{index}] {op.op_name}"
            error_type = type(e) if isinstance(e, VecmigError) else BackendError
            after = " (re-run to resume from this op)"
            if direction == UP:
                after = " (re-run to resume from this op, or `vecmig rollback` to undo what this revision did)"
            raise error_type(f"{where}: {message}{after}") from e
        duration = time.monotonic() - started
        self.state.record_op(rev.revision, direction, index, {
            **base, "status": "done", "finished_at": now_iso(), "duration": duration, "undo": undo,
        })
        self.state.clear_checkpoint(key)
        for name in op.embedder_names():
            if name in self.plan.embedders:
                self.state.record_embedder(name, self.plan.embedders[name])
        self.out.line(f"  + {op.describe()} ({duration:.2f}s)")

    def _interrupted_at(self, step: Step, index: int, op: Op, key: str) -> str:
        checkpoint = self.state.get_checkpoint(key) or {}
        done = checkpoint.get("done", checkpoint.get("written"))
        points = ""
        if isinstance(done, int):
            total = checkpoint.get("total")
            points = f" ({done:,}{f' of {total:,}' if isinstance(total, int) else ''} points done)"
        where = f"{step.direction}grade[{index}] {op.op_name} of {step.revision.revision}{points}"
        if step.rolls_back:
            return f"interrupted in the rollback's {where}: `vecmig rollback` resumes it"
        if step.direction == DOWN:
            return f"interrupted in {where}: re-run the downgrade to resume"
        return f"interrupted in {where}: `vecmig upgrade` resumes, `vecmig rollback` undoes what the revision did"


@contextmanager
def sigterm_interrupts():
    """SIGTERM stops a run as Ctrl-C does: the op in progress is journaled and the lock released."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
