"""The routing table: for each logical name an application uses (``products``), where it reads and
where it writes, kept as records of the state collection so that migrations and applications agree.

One record per name, key ``routing/<name>``::

    {"read":   {"collection": "products_v2", "vector": "minilm", "embedder": "minilm", "text": null},
     "writes": [{"collection": "products_v1", "vector": "ada", "embedder": "ada", "text": "{{ title }}"},
                {"collection": "products_v2", "vector": "minilm", "embedder": "minilm", "text": "{{ title }}"}],
     "epoch": 7,
     "updated_at": "2025-01-31T12:00:00.000+00:00"}

The first write target is the *source*: the collection the application wrote before the switch,
which ``vecmig.runtime.Router`` writes before the others. ``epoch`` goes up by one on every change
of the record (a restore included), so a reader can tell that what it holds is out of date.
Migrations change the table only through the routing ops (``vecmig/ops/routing.py``), under the
migration lock; applications only read it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable

from vecmig.errors import VecmigError
from vecmig.state import now_iso

KIND = "routing"


class RoutingError(VecmigError):
    """A route is missing or can't be followed (no read target, a text template that fails, ...)."""


def route_key(name: str) -> str:
    return f"{KIND}/{name}"


@dataclass(frozen=True)
class Target:
    """One place a logical name reads from or writes to: a collection (or alias) and a vector in it,
    the embedder that makes that vector, and the jinja2 template of the text it embeds."""

    collection: str
    vector: str = ""
    embedder: str | None = None
    text: str | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Target":
        return cls(doc["collection"], doc.get("vector") or "", doc.get("embedder"), doc.get("text"))

    def to_doc(self) -> dict[str, Any]:
        return {"collection": self.collection, "vector": self.vector, "embedder": self.embedder, "text": self.text}

    @property
    def label(self) -> str:
        return f"{self.collection}/{self.vector}" if self.vector else self.collection


@dataclass(frozen=True)
class Route:
    """The routing record of one logical name."""

    name: str
    read: Target | None = None
    writes: tuple[Target, ...] = ()
    epoch: int = 0
    updated_at: str | None = None

    @classmethod
    def from_doc(cls, name: str, doc: dict[str, Any]) -> "Route":
        read = doc.get("read")
        return cls(
            name=name,
            read=Target.from_doc(read) if read else None,
            writes=tuple(Target.from_doc(t) for t in doc.get("writes") or ()),
            epoch=int(doc.get("epoch") or 0),
            updated_at=doc.get("updated_at"),
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "read": self.read.to_doc() if self.read else None,
            "writes": [t.to_doc() for t in self.writes],
            "epoch": self.epoch,
            "updated_at": self.updated_at,
        }

    def content(self) -> dict[str, Any]:
        """What the route says (read and writes), without its epoch and time: what a restore puts back."""
        return {"read": self.read.to_doc() if self.read else None, "writes": [t.to_doc() for t in self.writes]}

    @property
    def source(self) -> Target | None:
        """The first write target: written before the others."""
        return self.writes[0] if self.writes else None

    @property
    def empty(self) -> bool:
        return self.read is None and not self.writes


@dataclass
class RoutingTable:
    """The ``routing/*`` records of a state collection (a backend's ``RecordStore``).

    Every change writes the whole record with the epoch bumped by one. Writers are migration runs,
    which hold the migration lock, so read-modify-write needs no conditional write here.
    """

    records: Any

    def get(self, name: str) -> Route | None:
        """The route of ``name``, or None when there is none (or no state collection yet)."""
        if not self.records.exists():
            return None
        doc = self.records.get(route_key(name))
        return Route.from_doc(name, doc) if doc else None

    def all(self) -> dict[str, Route]:
        """Every route, by name."""
        if not self.records.exists():
            return {}
        prefix = f"{KIND}/"
        return {k[len(prefix):]: Route.from_doc(k[len(prefix):], v) for k, v in self.records.scan(KIND).items() if k.startswith(prefix) and v}

    def set_writes(self, name: str, targets: Iterable[Target]) -> Route:
        """Set the write targets (the first is the source). A route without a read target yet reads
        from the source, so an application can use the Router from the first revision that routes."""
        targets = tuple(targets)
        if not targets:
            raise RoutingError(f"route {name!r}: at least one write target is needed")
        current = self.get(name) or Route(name)
        read = current.read if current.read is not None else replace(targets[0], text=None)
        return self._save(current, read, targets)

    def set_read(self, name: str, target: Target) -> Route:
        current = self.get(name) or Route(name)
        return self._save(current, target, current.writes)

    def restore(self, name: str, content: dict[str, Any] | None) -> Route | None:
        """Put back what a route said (``Route.content()``); None or an empty content removes the record."""
        current = self.get(name) or Route(name)
        wanted = Route.from_doc(name, content or {})
        if wanted.empty:
            if self.records.exists():
                self.records.delete(route_key(name))
            return None
        return self._save(current, wanted.read, wanted.writes)

    def _save(self, current: Route, read: Target | None, writes: tuple[Target, ...]) -> Route:
        """Write the record with the next epoch; a route that says the same as before is left alone."""
        if current.epoch and (current.read, current.writes) == (read, tuple(writes)):
            return current
        route = Route(current.name, read, tuple(writes), current.epoch + 1, now_iso())
        self.records.ensure()
        self.records.put(route_key(current.name), route.to_doc())
        return route
