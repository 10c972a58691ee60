"""The ``vecmig`` command line: parse, call ``vecmig.command``, print. No logic lives here."""

from __future__ import annotations

import json
import sys
import traceback
from contextlib import contextmanager

import click

from vecmig import __version__
from vecmig.errors import VecmigError

EXAMPLES = """
\b
Examples:
  vecmig init myproj
  vecmig revision -m "create products" --template create_collection
  vecmig upgrade head --plan
  vecmig upgrade head
  vecmig current --check-heads
  vecmig downgrade -1
"""


def _parse_x(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r}: write -x key=value", param_hint="-x")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    return out


class State:
    """What the group options set up for the commands."""

    def __init__(self, config_path, url, x, lock_timeout=None, quiet=False):
        self.config_path, self.url, self.x, self.lock_timeout, self.quiet = config_path, url, x, lock_timeout, quiet

    def reporter(self, as_json: bool):
        """Lines and progress bars of a migration: none with --json or -q."""
        from vecmig.progress import Reporter

        return Reporter(quiet=as_json or self.quiet)

    def config(self):
        from vecmig.config import Config

        cfg = Config.load(self.config_path, url=self.url, x=self.x, require_file=True)
        if self.lock_timeout is not None:
            cfg.lock_timeout = self.lock_timeout
        return cfg


def emit(data, as_json: bool, text) -> None:
    """Print ``data`` as JSON or through ``text(data)``. JSON is printed under ``-q`` too: it is
    the result the caller asked for."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str), file=getattr(sys.stdout, "loud", None))
    else:
        text(data)


class _Quiet:
    """stdout under ``-q``: what is written goes nowhere; ``loud`` is the stream underneath."""

    def __init__(self, stream):
        self.loud = stream

    def write(self, text) -> int:
        return len(text)

    def writelines(self, lines) -> None:
        pass

    def flush(self) -> None:
        pass

    def __getattr__(self, name):
        if name == "buffer":  # writers that find the bytes underneath would print after all
            raise AttributeError(name)
        return getattr(self.loud, name)


@contextmanager
def _loud():
    """Print even under ``-q`` (a question the user must see to answer)."""
    quiet = sys.stdout
    if isinstance(quiet, _Quiet):
        sys.stdout = quiet.loud
    try:
        yield
    finally:
        sys.stdout = quiet


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


@click.group(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", "config_path", metavar="PATH", help="Config file (default: $VECMIG_CONFIG or ./vecmig.ini).")
@click.option("--url", metavar="URL", help="Store URL; overrides the config and $VECMIG_URL.")
@click.option("-x", "x_args", multiple=True, metavar="KEY=VALUE", help="Values for Python revision files (op.x). Repeatable.")
@click.option("--lock-timeout", type=float, metavar="SECONDS", help="Wait this long for another runner's lock (default: lock_timeout in the config, 0).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on stdout but --json results; errors still go to stderr.")
@click.version_option(__version__, prog_name="vecmig")
@click.pass_context
def cli(ctx, config_path, url, x_args, lock_timeout, debug, quiet):
    """Migrations-as-code for vector databases (Qdrant, Weaviate).

    Revision files in versions/ declare collections and operations; `vecmig upgrade` applies them
    in order and records what it did in a state collection inside the store.
    """
    ctx.obj = State(config_path, url, _parse_x(x_args), lock_timeout, quiet)
    ctx.meta["debug"] = debug
    if quiet and not isinstance(sys.stdout, _Quiet):
        loud = sys.stdout
        sys.stdout = _Quiet(loud)

        def restore():
            sys.stdout = loud

        ctx.call_on_close(restore)


def _cmd():
    from vecmig import command

    return command


# -- project ---------------------------------------------------------------------------------------

@cli.command()
@click.argument("directory", default=".")
@click.option("--url", "store_url", metavar="URL", help="Store URL to write into vecmig.ini.")
def init(directory, store_url):
    """Create a project: vecmig.ini, versions/, templates/."""
    root = _cmd().init(directory, url=store_url)
    click.echo(f"Created {root / 'vecmig.ini'}, {root / 'versions'}/ and {root / 'templates'}/")
    click.echo("Next: vecmig revision -m \"create products\" --template create_collection")


@cli.command()
@click.option("-m", "--message", required=True, help="What the revision does.")
@click.option("--template", "-t", default="blank", show_default=True, help="Template name (see list-templates).")
@click.option("--head", default="head", show_default=True, help="Parent revision: head, base (new line), label@head or an id.")
@click.option("--splice", is_flag=True, help="Allow a --head that is not a head: a new branch starts there.")
@click.option("--depends-on", multiple=True, help="Revision or branch label this one depends on (repeatable).")
@click.option("--rev-id", help="Use this id instead of a random one.")
@click.option("--branch-label", multiple=True, help="Label for a new branch (repeatable).")
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE", help="Extra template variable (repeatable).")
@click.pass_obj
def revision(obj, message, template, head, splice, depends_on, rev_id, branch_label, variables):
    """Write a new revision file in versions/."""
    rev = _cmd().revision(obj.config(), message, template=template, head=head, depends_on=depends_on, rev_id=rev_id,
                          branch_labels=branch_label, splice=splice, **_parse_x(variables))
    click.echo(f"Generated {rev.path}")


@cli.command("list-templates")
@json_option
@click.pass_obj
def list_templates(obj, as_json):
    """Templates for `vecmig revision --template`."""
    emit(_cmd().list_templates(obj.config()), as_json,
         lambda rows: [click.echo(f"{r['name']:<22} {r['description']}") for r in rows])


@cli.command()
@click.argument("revisions", nargs=-1)
@click.option("-m", "--message", default="merge", show_default=True)
@click.option("--rev-id", help="Use this id instead of a random one.")
@click.option("--branch-label", multiple=True, help="Label for the merge revision (repeatable).")
@click.option("--splice", is_flag=True, help="Allow revisions that are not heads.")
@click.pass_obj
def merge(obj, revisions, message, rev_id, branch_label, splice):
    """Write a revision that merges several heads (default: all)."""
    rev = _cmd().merge(obj.config(), revisions or ("heads",), message=message, rev_id=rev_id, branch_labels=branch_label, splice=splice)
    click.echo(f"Generated {rev.path}")


@cli.command()
@click.argument("rev")
@click.pass_obj
def edit(obj, rev):
    """Open a revision file in $EDITOR: an id, a label, label@head, heads, or current (the store's)."""
    _cmd().edit(obj.config(), rev)


# -- migrating --------------------------------------------------------------------------------------

def _print_plan(plan, store: str = "") -> None:
    if not plan.steps:
        click.echo(f"Nothing to do: the store is at {', '.join(plan.heads_before) or 'base'}.")
        return
    for step in plan.steps:
        click.echo(step.label)
        for i, op in enumerate(step.ops, 1):
            flag = "  !" if op.destructive else "   "
            click.echo(f"{flag} {i}. {op.describe()}")
    for name, fp in plan.embedders.items():
        shape = "sparse" if fp.get("sparse") else f"{fp['dimension']}-d"
        click.echo(f"Embedder {name}: {fp['provider']} {fp['model']}, {shape}, normalize={fp.get('normalize')}, probe {fp.get('probe_sha256', '')[:12]}")
    for check in plan.checks:
        click.echo(f"  check: {check}")
    click.echo(f"Heads: {', '.join(plan.heads_before) or 'base'} -> {', '.join(plan.heads_after) or 'base'}")


def _confirm(yes: bool):
    def ask(plan) -> bool:
        doomed = _cmd().destructive_ops(plan)
        if not doomed or yes:
            return True
        if not sys.stdin.isatty():
            raise VecmigError(f"this plan deletes data ({doomed[0]}{' and more' if len(doomed) > 1 else ''}): check it with --plan, then re-run with --yes")
        with _loud():
            _print_plan(plan)
            return click.confirm("This deletes data (ops marked !). Go ahead?", default=False)

    return ask


def _migrate_command(name, direction_help):
    def decorator(f):
        f = click.option("--plan", "plan_only", is_flag=True, help="Show what would run against the live store; write nothing.")(f)
        f = click.option("--yes", "-y", is_flag=True, help="Don't ask before ops that delete data.")(f)
        f = json_option(f)
        # ignore_unknown_options lets a relative target like -1 be an argument, not an option
        return cli.command(name, help=direction_help, context_settings={"ignore_unknown_options": True})(f)

    return decorator


@_migrate_command("upgrade", "Apply revisions up to TARGET (head, heads, +N, an id, a label, label@head, label@+N, ID+N).")
@click.argument("target", default="head")
@click.option("--accept-checksums", is_flag=True, help="Go on with revision files that changed since they were applied, or since their interrupted upgrade began (when what already ran is unchanged).")
@click.pass_obj
def upgrade(obj, target, plan_only, yes, as_json, accept_checksums):
    plan = _cmd().upgrade(obj.config(), target, plan_only=plan_only, accept_checksums=accept_checksums,
                          reporter=obj.reporter(as_json), confirm=_confirm(yes))
    _after_migrate(plan, plan_only, as_json)


@_migrate_command("downgrade", "Undo revisions down to TARGET (-1, -N, base, an id, a label, label@-N, label@base, ID-N, ID+N).")
@click.argument("target")
@click.pass_obj
def downgrade(obj, target, plan_only, yes, as_json):
    plan = _cmd().downgrade(obj.config(), target, plan_only=plan_only, reporter=obj.reporter(as_json), confirm=_confirm(yes))
    _after_migrate(plan, plan_only, as_json)


@_migrate_command("rollback", "Undo what an interrupted upgrade did (a failed verify gate, a kill), last op first; the heads stay. `upgrade` would resume it instead.")
@click.pass_obj
def rollback(obj, plan_only, yes, as_json):
    plan = _cmd().rollback(obj.config(), plan_only=plan_only, reporter=obj.reporter(as_json), confirm=_confirm(yes))
    _after_migrate(plan, plan_only, as_json)


def _after_migrate(plan, plan_only, as_json):
    if as_json:
        emit({**plan.to_dict(), "applied": not plan_only}, True, None)
    elif plan_only:
        _print_plan(plan)
        click.echo("(plan only: nothing was written)")
    elif plan.steps:
        click.echo(f"Done. Heads: {', '.join(plan.heads_after) or 'base'}")


@cli.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--purge", is_flag=True, help="Replace every head, and ignore the recorded ones (they may be unknown).")
@click.option("--plan", "plan_only", is_flag=True, help="Show the heads it would record and what would count as applied; write nothing.")
@json_option
@click.pass_obj
def stamp(obj, targets, purge, plan_only, as_json):
    """Set the store's revision without running any op (adopt an existing store).

    Each TARGET replaces only the heads on its own lines (`stamp A B` for several lines)."""
    result = _cmd().stamp(obj.config(), targets, purge=purge, plan_only=plan_only)

    def text(r):
        moved = f"{', '.join(r['heads_before']) or 'base'} -> {', '.join(r['heads']) or 'base'}"
        if not plan_only:
            click.echo(f"Stamped: {moved}")
            return
        click.echo(f"Heads: {moved}")
        click.echo(f"Counted as applied: {', '.join(r['applied']) or 'nothing new'}")
        click.echo(f"No longer counted as applied: {', '.join(r['unapplied']) or 'nothing'}")
        click.echo("(plan only: nothing was written)")

    emit(result, as_json, text)


# -- reading ----------------------------------------------------------------------------------------

def _rev_line(r: dict) -> str:
    parents = ", ".join(r["down_revision"]) or "<base>"
    applied = " (current)" if r.get("current") else " (applied)" if r.get("applied") else ""
    marks = "".join([" (head)" if r.get("is_head") else "", applied])
    labels = f" ({', '.join(r['branch_labels'])})" if r.get("branch_labels") else ""
    return f"{parents} -> {r['revision']}{labels}{marks}, {r['message']}"


@cli.command()
@click.option("--check-heads", is_flag=True, help="Exit 1 unless the store is at the script's heads.")
@json_option
@click.pass_obj
def current(obj, check_heads, as_json):
    """The revision(s) the store is at."""
    result = _cmd().current(obj.config())

    def text(r):
        if not r["heads"]:
            click.echo(f"{r['store']}: at base (nothing applied)")
        for rev in r["revisions"]:
            head = " (head)" if rev["revision"] in r["script_heads"] else ""
            click.echo(f"{rev['revision']}{head}, {rev['message']}  [applied {rev['applied_at'] or '?'}]")

    emit(result, as_json, text)
    if check_heads and not result["at_head"]:
        click.echo(f"not at head: the store is at {', '.join(result['heads']) or 'base'}, the scripts' heads are {', '.join(result['script_heads'])}", err=True)
        sys.exit(1)


@cli.command()
@click.option("-r", "--rev-range", metavar="RANGE", help="e.g. base:head, abc1:, :abc1, current:head, label:, label@base:label@head.")
@click.option("-v", "--verbose", is_flag=True, help="Show paths, labels and dependencies.")
@click.option("-i", "--indicate-current", is_flag=True, help="Ask the store which revisions are applied.")
@json_option
@click.pass_obj
def history(obj, rev_range, verbose, indicate_current, as_json):
    """The revisions, newest first."""
    rows = _cmd().history(obj.config(), rev_range, indicate_current=indicate_current)

    def text(rows):
        for r in rows:
            click.echo(_rev_line(r))
            if verbose:
                click.echo(f"    path: {r['path']}")
                if r["depends_on"]:
                    click.echo(f"    depends on: {', '.join(r['depends_on'])}")
                if r.get("applied_at"):
                    click.echo(f"    applied: {r['applied_at']}")

    emit(rows, as_json, text)


@cli.command()
@click.option("--resolve-dependencies", is_flag=True, help="Leave out heads that another revision depends on.")
@json_option
@click.pass_obj
def heads(obj, resolve_dependencies, as_json):
    """The script's head revisions."""
    emit(_cmd().heads(obj.config(), resolve_dependencies=resolve_dependencies), as_json, lambda rows: [click.echo(_rev_line(r)) for r in rows])


@cli.command()
@json_option
@click.pass_obj
def branches(obj, as_json):
    """Revisions where the history branches."""
    emit(_cmd().branches(obj.config()), as_json,
         lambda rows: [click.echo(f"{_rev_line(r)}\n    -> {', '.join(r['children'])}") for r in rows])


@cli.command()
@click.argument("rev")
@json_option
@click.pass_obj
def show(obj, rev, as_json):
    """One revision: its parents, checksum and ops."""

    def text(r):
        click.echo(f"Revision: {r['revision']}\nParents: {', '.join(r['down_revision']) or '<base>'}")
        if r["branch_labels"]:
            click.echo(f"Branch labels: {', '.join(r['branch_labels'])}")
        if r["depends_on"]:
            click.echo(f"Depends on: {', '.join(r['depends_on'])}")
        click.echo(f"Path: {r['path']}\nChecksum: {r['checksum']}\nMessage: {r['message']}\nUpgrade:")
        for op in r["upgrade"]:
            click.echo(f"  {op}")
        click.echo("Downgrade: auto" if r["downgrade"] == "auto" else "Downgrade:")
        if r["downgrade"] != "auto":
            for op in r["downgrade"]:
                click.echo(f"  {op}")

    emit(_cmd().show(obj.config(), rev), as_json, text)


@cli.command()
@click.option("--accept", is_flag=True, help="Record the current checksums of changed applied files.")
@click.option("--no-store", is_flag=True, help="Check the files only; don't connect to the store.")
@json_option
@click.pass_obj
def validate(obj, accept, no_store, as_json):
    """Check every revision file, and list applied files that changed since."""
    result = _cmd().validate(obj.config(), accept=accept, store=not no_store)

    def text(r):
        for p in r["problems"]:
            click.echo(f"invalid: {p}")
        for c in r["changed"]:
            verb = "accepted" if r["accepted"] else "changed after it was applied"
            click.echo(f"{c['path']}: {verb} ({c['applied_checksum'][:12]} -> {c['checksum'][:12]})")
        if not r["problems"] and not r["changed"]:
            click.echo(f"{r['revisions']} revision files OK")

    emit(result, as_json, text)
    if result["problems"] or (result["changed"] and not result["accepted"]):
        sys.exit(1)


@cli.command()
@json_option
@click.pass_obj
def check(obj, as_json):
    """Compare the applied revisions' schema with the live store; exit 1 on drift."""
    result = _cmd().check(obj.config())
    emit(result, as_json, lambda r: [click.echo(f"drift: {d}") for d in r["drift"]] or click.echo("No drift: the store matches the applied revisions."))
    if result["drift"]:
        sys.exit(1)


@cli.command()
@json_option
@click.pass_obj
def status(obj, as_json):
    """A running or interrupted upgrade/downgrade: its ops and their progress."""

    def text(r):
        if r["state"] == "idle":
            click.echo("idle: nothing running, nothing interrupted")
            return
        lock = r["lock"]
        who = f" by {lock['user']}@{lock['host']} pid {lock['pid']} (`{lock['command']}` since {lock['acquired_at']})" if lock else " (re-run the command to resume it; an upgrade can also be undone with `vecmig rollback`)"
        click.echo(f"{r['state']}{who}")
        for step in r["steps"]:
            click.echo(f"  {step['direction']}grade {step['revision']} since {step['started_at']}")
            for op in step["ops"]:
                p = op.get("progress") or {}
                line = f"    [{op['index']}] {op['op']}: {op['status']}"
                if p:
                    total = f" / {p['total']:,}" if p.get("total") else ""
                    line += f", {p['done']:,}{total} points"
                    line += f" ({p['percent']}%)" if p.get("percent") is not None else ""
                    line += f", {p['rate']:,} points/s" if p.get("rate") else ""
                    line += f", ETA {p['eta_seconds']}s" if p.get("eta_seconds") is not None else ""
                if op.get("error"):
                    line += f": {op['error']}"
                click.echo(line)
                for part in op.get("partitions", []):
                    how = "done" if part.get("finished") else ("under way" if part.get("done") else "waiting")
                    click.echo(f"        partition {part['partition']}: {part.get('done', 0):,} points, {how}")

    emit(_cmd().status(obj.config()), as_json, text)


@cli.group()
def lock():
    """The migration lock (a lease in the state collection)."""


@lock.command("status")
@json_option
@click.pass_obj
def lock_status(obj, as_json):
    """Who holds the lock, if anyone."""

    def text(r):
        if not r:
            click.echo("unlocked")
        else:
            click.echo(f"locked by {r['user']}@{r['host']} pid {r['pid']} running `{r['command']}` since {r['acquired_at']}")

    emit(_cmd().lock_status(obj.config()), as_json, text)


@lock.command("release")
@click.pass_obj
def lock_release(obj):
    """Break the lock (only when the run that holds it is dead)."""
    held = _cmd().lock_release(obj.config())
    click.echo(f"released the lock of {held['user']}@{held['host']} pid {held['pid']}" if held else "was not locked")


class _Redacted:
    """stdout or stderr, with every secret value (``vecmig.config.redact_text``) replaced by ***
    in what is written: the one-line errors, --debug tracebacks, anything a library prints."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        if isinstance(text, str):
            from vecmig.config import redact_text

            text = redact_text(text)
        return self._stream.write(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        if name == "buffer":  # writers that find the bytes underneath would go around the redaction
            raise AttributeError(name)
        return getattr(self._stream, name)


@contextmanager
def _redacted_output():
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Redacted(sys.stdout), _Redacted(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _fail(line: str, code: int, debug: bool) -> None:
    if debug:
        sys.stderr.write(traceback.format_exc())
    click.echo(line, err=True)
    sys.exit(code)


def main(argv=None) -> None:
    """Entry point: one clear line per error, non-zero exit; tracebacks with --debug. All output
    goes through the redactor, so no configured secret is printed, --debug included."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    with _redacted_output():
        try:
            cli.main(args=argv, prog_name="vecmig", standalone_mode=False)
        except VecmigError as e:
            _fail(f"error: {e}", e.exit_code, debug)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except Exception as e:  # not one of vecmig's own errors: a bug, or a library's error it didn't translate
            text = " ".join(str(e).split())
            text = f"{text[:300]}..." if len(text) > 300 else text
            _fail(f"error: unexpected {type(e).__name__}{': ' + text if text else ''} (re-run with --debug for the traceback)", 1, debug)
