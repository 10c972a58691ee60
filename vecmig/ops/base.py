"""Operations are data: each op is a small class with its parameters, checks, plan text, apply
and reverse. They are registered by name; revision files refer to them by that name."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, ClassVar

from vecmig.errors import PlanError, ScriptError
from vecmig.schema import SchemaView

OPS: dict[str, type["Op"]] = {}


def register(name: str):
    """Class decorator: make an op available to revision files under ``name``."""

    def deco(cls: type[Op]) -> type[Op]:
        cls.op_name = name
        OPS[name] = cls
        return cls

    return deco


@lru_cache(maxsize=1)
def param_schemas() -> dict[str, Any]:
    """The JSON Schema of every op's parameters, shipped as ``vecmig/ops/params.schema.json``."""
    text = resources.files("vecmig.ops").joinpath("params.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@dataclass
class OpContext:
    """What an op may touch while it is applied."""

    backend: Any
    config: Any
    state: Any
    revision: Any
    checkpoint_key: str
    echo: Callable[[str], None] = print
    progress: Callable[..., Any] | None = None

    #: what runs the data ops' jobs (``vecmig.datapath.executor``); None: in this process
    executor: Any = None

    @property
    def script_dir(self) -> Path:
        return Path(self.revision.path).parent

    def run_job(self, job, worker, **options):
        """Run a data op's job over its source on the run's executor, checkpointed under this op's key."""
        if self.executor is None:
            from vecmig.datapath.executor import LocalExecutor

            self.executor = LocalExecutor()
        return self.executor.run(job, worker, state=self.state, checkpoint_key=self.checkpoint_key,
                                 progress=self.progress, echo=self.echo, **options)


@dataclass
class Op:
    """Base of all ops. Subclasses are dataclasses whose fields are the op's parameters."""

    op_name: ClassVar[str] = ""
    #: why the op can't be undone automatically (None: it can)
    irreversible: ClassVar[str | None] = None

    @property
    def destructive(self) -> bool:
        """Whether running the op deletes data: plans mark it `!` and the CLI asks first (--yes).
        By default an op that can't be undone does; an op may be irreversible without deleting
        anything (a custom Python step without a reverse)."""
        return bool(self.irreversible)

    #: revision-file keys that are Python keywords -> field names (e.g. "from" -> "from_")
    renames: ClassVar[dict[str, str]] = {}
    #: the parameters as the revision file wrote them (``use_dimensions`` fills in sizes later)
    declared: ClassVar[dict | None] = None
    #: the folder of the revision file, for ops that read files next to it
    source_dir: Path | None = field(default=None, repr=False, compare=False, kw_only=True)

    @classmethod
    def from_params(cls, params: dict[str, Any], where: str, source_dir: Path | None = None) -> "Op":
        """Build the op from a revision file's mapping, after checking it against the schema."""
        from vecmig.ops.params import check_params

        check_params(cls.op_name, params, where)
        # a copy: planning fills in sizes (use_dimensions), which must not reach the parsed file
        op = cls(**{cls.renames.get(k, k): v for k, v in copy.deepcopy(params).items()}, source_dir=source_dir)
        op.declared = json.loads(json.dumps(params, default=repr))
        return op

    def params(self) -> dict[str, Any]:
        """The op as a revision file would write it: the values not at their default."""
        keys = {v: k for k, v in self.renames.items()}
        out = {}
        for f in fields(self):
            if f.name == "source_dir":
                continue
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            value = getattr(self, f.name)
            if value != default:
                out[keys.get(f.name, f.name)] = value
        return out

    def data_files(self) -> list[str]:
        """Files next to the revision this op reads its data from (their digests are part of what it is)."""
        return []

    def identity(self) -> dict:
        """What the op is, as the journal keeps it: its name, its parameters and the digests of the files
        it reads. Resume matches journaled ops by it; rollback rebuilds the op it undoes from it."""
        folder = self.source_dir or Path.cwd()
        files = {}
        for name in self.data_files():
            path = folder / name
            files[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        params = self.declared if self.declared is not None else json.loads(json.dumps(self.params(), default=repr))
        return {"op": self.op_name, "params": params, "files": files}

    def embedder_names(self, view: SchemaView | None = None) -> dict[str, int | None]:
        """The embedders this op uses -> the size of the vector each fills (None: not known yet).
        Planning probes each one and checks the size before ``validate``."""
        return {}

    def use_dimensions(self, dimensions: dict[str, int]) -> None:
        """Take probed embedder dimensions for sizes the revision left out."""

    def validate(self, view: SchemaView, backend) -> None:
        """Plan-time checks against the store as it will be; raise PlanError."""

    def forward(self, view: SchemaView) -> None:
        """Move the plan-time view forward as if the op had run."""

    def found_applied(self, view: SchemaView) -> bool:
        """Whether the live store already shows this op's effect. Asked only of the op a killed run
        started but never journaled done: an op whose effect is plain to see (a collection, a vector,
        an index, an alias that exists) is then taken as done instead of failing as a duplicate."""
        return False

    def describe(self) -> str:
        args = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in self.params().items())
        return f"{self.op_name}({args})"

    def apply(self, ctx: OpContext) -> dict | None:
        """Do it. Returns what ``reverse`` will need (journaled with the op), or None."""
        raise NotImplementedError

    def reverse(self, undo: dict | None) -> "Op | None":
        """The op that undoes this one, or None when it can't be undone."""
        return None

    def reverse_partial(self, checkpoint: dict | None) -> "Op | None":
        """The op that undoes what a run of this op stopped part-way may have written (``checkpoint``:
        its last saved cursor), or None when such a run leaves nothing behind: the op makes its one
        change at once, and ``found_applied`` tells whether it did."""
        return None


def build_op(name: str, params: Any, where: str, source_dir: Path | None = None) -> Op:
    """An op from its name and parameters as written in a revision file."""
    cls = OPS.get(name)
    if cls is None:
        from difflib import get_close_matches

        close = get_close_matches(name, OPS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known ops: {', '.join(sorted(OPS))}"
        raise ScriptError(f"{where}: unknown op {name!r}: {hint}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ScriptError(f"{where}: {name} takes a mapping of parameters, got {type(params).__name__}")
    return cls.from_params(params, where, source_dir)


@dataclass
class NothingToUndo(Op):
    """The reverse of an op whose writes go with another op's reverse (a copy or backfill: with the
    target's create_collection, or the vector's add_vector). Not registered: revision files don't
    write it; plans show why it is empty."""

    op_name = "nothing_to_undo"

    undoes: str = ""
    reason: str = ""

    def describe(self) -> str:
        return f"nothing_to_undo({self.undoes}: {self.reason})"

    def apply(self, ctx):
        return None


def nothing_to_undo(undoes: str, source: str, vector: str, target: str | None) -> NothingToUndo:
    """The reverse of an op that fills ``vector``: what it wrote goes with the vector's ``add_vector``
    (in place) or with the target's ``create_collection``."""
    where = f"{source}.{vector} itself (drop_vector)" if target is None else f"{target!r} (drop_collection)"
    return NothingToUndo(undoes=undoes, reason=f"what it wrote goes with {where}")


def rebuild_op(entry: dict, where: str) -> Op | None:
    """The op a journal entry was written for, as it was when it ran (not as its file says now).
    None when the entry can't rebuild it: a custom Python step (code isn't journaled), or an entry
    from before ops were journaled with their parameters."""
    name, params = entry.get("op"), entry.get("params")
    if name not in OPS or not isinstance(params, dict):
        return None
    op = build_op(name, params, where, Path(entry["source_dir"]) if entry.get("source_dir") else None)
    for file, digest in (entry.get("files") or {}).items():
        if op.identity()["files"].get(file) != digest:
            raise PlanError(f"{where}: {file} changed since {name} read it: restore that file to undo what {name} wrote")
    return op


def require_collection(view: SchemaView, name: str, what: str):
    """The collection ``name`` (or the one its alias points at), or a PlanError."""
    real = view.resolve(name)
    if real is None:
        raise PlanError(f"{what}: collection {name!r} does not exist (at this point of the plan)")
    return view.collections[real]
