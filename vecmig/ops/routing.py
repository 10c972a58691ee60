"""Routing ops: dual_write, end_dual_write, route_reads, and restore_route (their reverse).

They change only the routing table (``vecmig/routing.py``), never the schema. Each returns the
route as it was before as its undo, so ``downgrade: auto`` puts it back as it was (with a new
epoch). After a change of the write targets the op waits ``routing_ttl`` seconds: every
application's Router has re-read the table by then, so the ops after it (a backfill's first scroll,
dropping a collection nobody writes to any more) may rely on the new targets.

``validate`` sees the schema only; the embedders are in the config. ``embedder_names(view)`` says
which embedders an op uses and the size of the vector each fills, as ``backfill`` does, so that
planning can probe them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from vecmig.errors import PlanError
from vecmig.ops.base import Op, register, require_collection
from vecmig.routing import Route, RoutingError, RoutingTable, Target
from vecmig.schema import SchemaView


def targets_of(docs: list[dict] | None) -> list[Target]:
    return [Target.from_doc(d) for d in docs or []]


def check_template(text: str | None, what: str) -> None:
    """A text template that jinja2 can't parse is a plan-time error, not a failing write later."""
    if not text:
        return
    from vecmig.datapath.text import TemplateError, TextTemplate

    try:
        TextTemplate(text)
    except TemplateError as e:
        raise PlanError(f"{what}: {e}") from None


def vector_size(view: SchemaView | None, target: Target) -> int | str | None:
    """The size of the target's vector (SPARSE for a sparse vector), None when unknown."""
    return view.filled_size(target.collection, target.vector) if view is not None else None


def check_target(view, target: Target, what: str, *, write: bool = False) -> None:
    """The target's collection exists (a read target may be an alias) and has the vector; a vector
    declared with an embedder is filled by that embedder only."""
    where = f"{what}: target {target.label!r}"
    coll = require_collection(view, target.collection, where)
    if write and coll.name != target.collection:
        raise PlanError(
            f"{where}: {target.collection!r} is an alias (of {coll.name!r}): write targets name collections, "
            "because an alias may be repointed while the application writes through it"
        )
    spec = coll.vectors.get(target.vector) or coll.sparse_vectors.get(target.vector)
    if spec is None:
        have = ", ".join(repr(n) for n in coll.vector_names()) or "none"
        raise PlanError(f"{where}: collection {coll.name!r} has no vector {target.vector!r} (it has {have})")
    if spec.embedder and target.embedder and spec.embedder != target.embedder:
        raise PlanError(
            f"{where}: vector {target.vector!r} was declared with embedder {spec.embedder!r}, not {target.embedder!r}: "
            "vectors of two models can't share one vector"
        )
    check_template(target.text, where)


def check_distinct(view, targets: list[Target], what: str) -> None:
    """No vector is written twice, and one embedder doesn't fill vectors of two sizes."""
    seen: dict[tuple[str | None, str], Target] = {}
    sizes: dict[str, tuple[int, Target]] = {}
    for t in targets:
        key = (view.resolve(t.collection), t.vector)
        if key in seen:
            raise PlanError(f"{what}: targets {seen[key].label!r} and {t.label!r} are the same vector of the same collection")
        seen[key] = t
        size = vector_size(view, t)
        if t.embedder and size:
            other = sizes.setdefault(t.embedder, (size, t))
            if other[0] != size:
                raise PlanError(
                    f"{what}: embedder {t.embedder!r} fills {other[1].label!r} ({other[0]}-d) and {t.label!r} ({size}-d): "
                    "one model makes vectors of one size"
                )


def wait_for_applications(ctx, name: str) -> None:
    """Wait one routing TTL: by then every Router has re-read the route (see vecmig.runtime)."""
    ttl = float(getattr(ctx.config, "routing_ttl", 0) or 0)
    if ttl <= 0:
        return
    ctx.echo(f"  route {name!r}: waiting {ttl:g}s (routing_ttl) until every application writes to the new targets")
    deadline = time.monotonic() + ttl
    lease = getattr(ctx.state, "lease", None)
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))
        if lease:
            lease.renew_if_due()


@dataclass
class RoutingOp(Op):
    """Shared by the routing ops: the change goes through the routing table, its undo is the route
    as it was before, and a change of the write targets is followed by one routing TTL of waiting."""

    name: str = ""

    def route_targets(self) -> list[Target]:
        """Every target this op names."""
        return []

    def embedder_names(self, view: SchemaView | None = None) -> dict[str, int | None]:
        """The embedders this op names -> the size of the vector each fills, as ``view`` has it (None
        when unknown), for plan-time probing (``validate`` has no config); as ``backfill`` says it."""
        out: dict[str, int | None] = {}
        for t in self.route_targets():
            if t.embedder and out.get(t.embedder) is None:
                out[t.embedder] = vector_size(view, t)
        return out

    def forward(self, view):
        """Routing changes no schema."""

    def change(self, table: RoutingTable, ctx) -> Route | None:
        raise NotImplementedError

    def apply(self, ctx):
        table = RoutingTable(ctx.state.records)
        before = table.get(self.name)
        # a resumed run must journal the route from before the first attempt, which may have written
        saved = ctx.state.get_checkpoint(ctx.checkpoint_key) if ctx.checkpoint_key else None
        if saved is not None and "previous" in saved:
            previous = saved["previous"]
        else:
            previous = before.content() if before else None
            if ctx.checkpoint_key:
                ctx.state.set_checkpoint(ctx.checkpoint_key, {"previous": previous})
        after = self.change(table, ctx)
        # compared with the route before the first attempt: a resumed run still waits
        if Route.from_doc(self.name, previous or {}).writes != (after.writes if after else ()):
            wait_for_applications(ctx, self.name)
        return {"previous": previous}

    def reverse(self, undo):
        if not undo or "previous" not in undo:
            raise PlanError(
                f"{self.op_name} {self.name!r}: the route as it was before was not journaled: "
                "write an explicit downgrade with restore_route"
            )
        previous = Route.from_doc(self.name, undo["previous"] or {})
        return RestoreRoute(
            name=self.name,
            read=previous.read.to_doc() if previous.read else None,
            writes=[t.to_doc() for t in previous.writes],
        )

    def reverse_partial(self, checkpoint):
        """The route from before the change is checkpointed before the table is written."""
        return self.reverse(checkpoint) if checkpoint and "previous" in checkpoint else None


@register("dual_write")
@dataclass
class DualWrite(RoutingOp):
    """Set the write targets of a route: the source first, then the new targets (each with its own
    embedder and text template). A route with no read target yet reads from the source."""

    targets: list[dict] = field(default_factory=list)

    def route_targets(self):
        return targets_of(self.targets)

    def validate(self, view, backend):
        what = f"dual_write {self.name!r}"
        targets = self.route_targets()
        if not targets:
            raise PlanError(f"{what}: give at least one target")
        for t in targets:
            check_target(view, t, what, write=True)
        check_distinct(view, targets, what)

    def change(self, table, ctx):
        return table.set_writes(self.name, self.route_targets())


@register("end_dual_write")
@dataclass
class EndDualWrite(RoutingOp):
    """Back to one write target: the one in collection ``keep`` (and ``vector``, when the route
    writes two vectors of that collection). Refused while reads go to a target it stops writing."""

    keep: str = ""
    vector: str | None = None

    def validate(self, view, backend):
        require_collection(view, self.keep, f"end_dual_write {self.name!r}: keep")

    def change(self, table, ctx):
        what = f"end_dual_write {self.name!r}"
        route = table.get(self.name)
        if route is None or not route.writes:
            raise RoutingError(f"{what}: the route has no write targets: nothing to end (is dual_write applied?)")
        aliases = ctx.backend.list_aliases()

        def resolve(collection: str) -> str:
            return aliases.get(collection, collection)

        kept = [t for t in route.writes if resolve(t.collection) == resolve(self.keep) and self.vector in (None, t.vector)]
        if len(kept) != 1:
            have = ", ".join(repr(t.label) for t in route.writes)
            problem = "none" if not kept else "more than one (add `vector:`)"
            raise RoutingError(f"{what}: {problem} of its write targets ({have}) is in {self.keep!r}")
        keep = kept[0]
        read = route.read
        if read and (resolve(read.collection), read.vector) != (resolve(keep.collection), keep.vector):
            raise RoutingError(
                f"{what}: reads go to {read.label!r}, which would no longer be written: "
                f"route_reads to {keep.label!r} first (or keep {read.collection!r})"
            )
        return table.set_writes(self.name, [keep])


@register("route_reads")
@dataclass
class RouteReads(RoutingOp):
    """Set the read target of a route: where Router.search goes, with the embedder its queries use."""

    collection: str = ""
    vector: str = ""
    embedder: str = ""
    text: str | None = None

    def route_targets(self):
        return [Target(self.collection, self.vector, self.embedder, self.text)]

    def validate(self, view, backend):
        check_target(view, self.route_targets()[0], f"route_reads {self.name!r}")

    def change(self, table, ctx):
        return table.set_read(self.name, self.route_targets()[0])


@register("restore_route")
@dataclass
class RestoreRoute(RoutingOp):
    """Put a route back as it was: the read target and write targets given (``downgrade: auto``
    builds it from the journal). No read target and no write targets removes the route."""

    read: dict | None = None
    writes: list[dict] = field(default_factory=list)

    def route_targets(self):
        return ([Target.from_doc(self.read)] if self.read else []) + targets_of(self.writes)

    def describe(self):
        if not self.read and not self.writes:
            return f"restore_route(name={json.dumps(self.name)}, removed)"
        return super().describe()

    def validate(self, view, backend):
        what = f"restore_route {self.name!r}"
        if self.read:
            check_target(view, Target.from_doc(self.read), what)
        for t in targets_of(self.writes):
            check_target(view, t, what, write=True)
        check_distinct(view, targets_of(self.writes), what)

    def change(self, table, ctx):
        return table.restore(self.name, {"read": self.read, "writes": self.writes})
