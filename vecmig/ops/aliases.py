"""Alias ops: create_alias, repoint_alias (the atomic cut-over), drop_alias."""

from __future__ import annotations

from dataclasses import dataclass

from vecmig.errors import PlanError
from vecmig.ops.base import Op, register
from vecmig.ops.collections import check_new_name


def require_aliases(backend, what: str) -> None:
    reason = backend.unsupported("aliases")
    if reason:
        raise PlanError(f"{what}: {reason}")


def require_real_collection(view, name: str, what: str) -> None:
    if name not in view.collections:
        hint = f" ({name!r} is an alias: aliases can't point at aliases)" if name in view.aliases else ""
        raise PlanError(f"{what}: collection {name!r} does not exist (at this point of the plan){hint}")


def require_alias(view, alias: str, what: str) -> str:
    if alias not in view.aliases:
        raise PlanError(f"{what}: alias {alias!r} does not exist: create it with create_alias")
    return view.aliases[alias]


@register("create_alias")
@dataclass
class CreateAlias(Op):
    alias: str = ""
    collection: str = ""

    def validate(self, view, backend):
        what = f"create_alias {self.alias!r}"
        require_aliases(backend, what)
        check_new_name(view, backend, self.alias, what)
        require_real_collection(view, self.collection, what)

    def forward(self, view):
        view.aliases[self.alias] = self.collection

    def found_applied(self, view):
        return view.aliases.get(self.alias) == self.collection

    def apply(self, ctx):
        ctx.backend.create_alias(self.alias, self.collection)

    def reverse(self, undo):
        return DropAlias(alias=self.alias)


@register("repoint_alias")
@dataclass
class RepointAlias(Op):
    """Atomically point an alias at another collection. ``from`` asserts (and records) the old target."""

    alias: str = ""
    to: str = ""
    from_: str | None = None
    renames = {"from": "from_"}

    def validate(self, view, backend):
        what = f"repoint_alias {self.alias!r}"
        require_aliases(backend, what)
        current = require_alias(view, self.alias, what)
        require_real_collection(view, self.to, what)
        if self.from_ and current != self.from_:
            raise PlanError(f"{what}: it points at {current!r}, not {self.from_!r} as `from` says: check the revision order or the live store")

    def forward(self, view):
        view.aliases[self.alias] = self.to

    def apply(self, ctx):
        previous = ctx.backend.list_aliases().get(self.alias)
        ctx.backend.repoint_alias(self.alias, self.to)
        return {"previous": previous}

    def reverse(self, undo):
        previous = self.from_ or (undo or {}).get("previous")
        if not previous:
            raise PlanError(f"repoint_alias {self.alias!r}: where it pointed before was not journaled: add `from:` to the op or write an explicit downgrade")
        return RepointAlias(alias=self.alias, to=previous, from_=self.to)


@register("drop_alias")
@dataclass
class DropAlias(Op):
    alias: str = ""

    def validate(self, view, backend):
        what = f"drop_alias {self.alias!r}"
        require_aliases(backend, what)
        require_alias(view, self.alias, what)

    def forward(self, view):
        del view.aliases[self.alias]

    def apply(self, ctx):
        previous = ctx.backend.list_aliases().get(self.alias)
        ctx.backend.drop_alias(self.alias)
        return {"collection": previous}

    def reverse(self, undo):
        collection = (undo or {}).get("collection")
        if not collection:
            raise PlanError(f"drop_alias {self.alias!r}: its collection was not journaled: write an explicit downgrade with create_alias")
        return CreateAlias(alias=self.alias, collection=collection)
