"""What ``upgrade(op)`` / ``downgrade(op)`` of a Python revision receive: a collector of ops."""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vecmig.ops.base import Op, OpContext


@dataclass
class CallOp(Op):
    """A custom Python step, ``op.run(fn, reverse=..., description=...)``: ``fn(ctx)`` is applied."""

    op_name = "run"  # not registered: a YAML file can't carry a callable

    fn: Callable[[OpContext], Any]
    reverse_fn: Callable[[OpContext], Any] | None = None
    description: str | None = None
    #: ``op.run(fn, destructive=True)``: the step deletes data (the CLI asks first); vecmig can't tell
    deletes_data: bool = False

    @property
    def irreversible(self) -> str | None:
        return None if self.reverse_fn else "a custom Python step without `reverse=`"

    @property
    def destructive(self) -> bool:
        return self.deletes_data

    def describe(self) -> str:
        return f"run({self.description or getattr(self.fn, '__qualname__', repr(self.fn))})"

    def apply(self, ctx: OpContext) -> None:
        self.fn(ctx)

    def reverse(self, undo: dict | None = None) -> "CallOp | None":
        if self.reverse_fn is None:
            return None
        description = f"undo {self.description}" if self.description else None
        return CallOp(self.reverse_fn, self.fn, description, source_dir=self.source_dir)

    def reverse_partial(self, checkpoint: dict | None) -> "CallOp | None":
        """vecmig can't see how far a custom step got: its reverse is asked to undo whatever it did."""
        return self.reverse(None)

    def identity(self) -> dict:
        """The functions by name (code isn't journaled; resume matches the step by its names)."""
        fn, reverse = (getattr(f, "__qualname__", None) if f else None for f in (self.fn, self.reverse_fn))
        return {"op": self.op_name, "params": {"fn": fn, "reverse": reverse, "description": self.description}, "files": {}}


class Operations:
    """``op.create_collection(name=..., ...)`` builds and records that op (checked like a YAML
    op); ``op.run(fn)`` records a Python step; ``op.x`` is the ``-x`` options, ``op.config`` the Config."""

    def __init__(self, config=None, *, where: str = "", source_dir: Path | None = None):
        self.config = config
        self.x: dict[str, str] = dict(config.x) if config is not None else {}
        self.ops: list[Op] = []
        self._where = where
        self._source_dir = source_dir

    def run(self, fn: Callable[[OpContext], Any], reverse: Callable[[OpContext], Any] | None = None, description: str | None = None,
            destructive: bool = False) -> None:
        """A custom step: ``fn(ctx)``; ``reverse(ctx)`` undoes it. ``destructive=True`` when it deletes
        data, so plans mark it `!` and the CLI asks first (a step without a reverse can't be undone,
        but that alone doesn't mean it deletes anything)."""
        self.ops.append(CallOp(fn, reverse, description, destructive, source_dir=self._source_dir))

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("_"):
            raise AttributeError(name)

        def record(**params: Any) -> None:
            import vecmig.ops  # noqa: F401  (registers every op)
            from vecmig.ops.base import build_op

            # `from_=...` for parameters that are Python keywords, like repoint_alias's `from`
            params = {k[:-1] if k.endswith("_") and keyword.iskeyword(k[:-1]) else k: v for k, v in params.items()}
            self.ops.append(build_op(name, params, f"{self._where}[{len(self.ops)}]", self._source_dir))

        return record
