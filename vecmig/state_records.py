"""The state records as vecmig reads them back, checked in one place.

A record of the wrong shape (someone edited the state collection, a half-restored backup, another
tool writing into it) is a ``StateError`` naming the record and how to repair it, never a
traceback further up. ``StateStore`` checks every heads, step, journal and lock record it reads
with :func:`checked`; ``vecmig stamp`` drops the step and journal records :func:`problem` finds
unreadable, and rewrites the step records of the revisions it stamps.

A store without vecmig state (the state collection missing, empty, or some other collection under
that name) is told apart from a new store by :func:`absent_state`: "nothing applied" is only said
of a store that holds no collections.
"""

from __future__ import annotations

from dataclasses import dataclass

from vecmig.errors import StateError

#: the fields of a lock record that say who holds it (shown by `vecmig lock status` and `vecmig status`)
LOCK_WHO = ("host", "user", "pid", "command", "acquired_at")


class NotJSON(str):
    """The stored text of a record that is not JSON (a store that keeps records as text: Weaviate)."""


def what(value) -> str:
    """``value``'s JSON type, for a message: "a string", "a list", ..."""
    if isinstance(value, NotJSON):
        return "text that is not JSON"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value, most: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= most else text[: most - 3] + "..."


def _field(doc: dict, name: str, types, *, required: bool = False, expected: str) -> str | None:
    if name not in doc or doc[name] is None:
        return f"has no {name!r} ({expected} expected)" if required else None
    value, types = doc[name], types if isinstance(types, tuple) else (types,)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        return f"has {name} {_short(value)}, not {expected}"
    return None


def problem(key: str, doc) -> str | None:
    """What is wrong with record ``key`` as stored, or None when vecmig can read it. Kinds not
    listed here (checkpoints, embedders, routing) are read by their own code."""
    kind = key.split("/", 1)[0]
    if kind == "heads":
        if not isinstance(doc, dict):
            return f'is {what(doc)}, not {{"heads": [revision ids]}}'
        if "heads" not in doc:
            return "has no 'heads' list"
        heads = doc["heads"]
        if not isinstance(heads, list):
            return f"has heads {_short(heads)}, {what(heads)}, not a list of revision ids"
        bad = [h for h in heads if not isinstance(h, str) or not h]
        return f"lists {_short(bad[0])} among the heads, not a revision id" if bad else None
    if kind == "step":
        if not isinstance(doc, dict):
            return f"is {what(doc)}, not a step record (direction, status, run, checksum)"
        running = doc.get("status") == "running"
        return (
            _field(doc, "direction", str, required=True, expected="'up' or 'down'")
            or _field(doc, "status", str, required=True, expected="a status such as 'done'")
            or _field(doc, "run", str, required=running, expected="a run id")
            or _field(doc, "checksum", str, expected="a checksum")
            or _field(doc, "rolls_back", dict, expected="the run it undoes")
            or (_field(doc["rolls_back"], "run", str, required=True, expected="a run id") if doc.get("rolls_back") else None)
        )
    if kind == "journal":
        if not isinstance(doc, dict):
            return f"is {what(doc)}, not a journal entry (op, status, run, undo)"
        return (
            _field(doc, "status", str, required=True, expected="'started', 'done' or 'failed'")
            or _field(doc, "run", str, expected="a run id")
            or _field(doc, "op", str, expected="an op name")
            or _field(doc, "files", dict, expected="file checksums")
        )
    if kind == "lock":
        if not isinstance(doc, dict):
            return f"is {what(doc)}, not a lock lease (owner, expires_at, who holds it)"
        return (
            _field(doc, "owner", str, required=True, expected="an owner token")
            or _field(doc, "expires_at", (int, float), required=True, expected="a time in seconds since the epoch")
            or _field(doc, "pid", int, expected="a process id")
        )
    return None


def repair(key: str, at: str = "REV") -> str:
    """What the user does about a record that can't be read; ``at``: the revision(s) the store is at."""
    kind = key.split("/", 1)[0]
    if kind == "heads":
        return "rewrite it with `vecmig stamp REV --purge`, REV being the revision the store is at (`vecmig history` lists them)"
    if kind == "lock":
        return "drop it with `vecmig lock release` once no vecmig run is going on"
    if kind in ("step", "journal"):
        return f"repair it with `vecmig stamp {at}` (where the store is), which drops the step and journal records it can't read and rewrites the steps of the revisions it stamps"
    return "delete that record from the state collection"


def damaged(key: str, problem_text: str, collection: str | None = None, at: str = "REV") -> StateError:
    where = f" in collection {collection!r}" if collection else ""
    return StateError(f"state record {key!r}{where} {problem_text}: {repair(key, at)}")


def checked(key: str, doc, collection: str | None = None, at=lambda: "REV"):
    """``doc`` as read from record ``key``, or a StateError naming it and the repair. ``at``: a
    callable giving the revision(s) the store is at (asked only for the message)."""
    found = problem(key, doc)
    if found:
        raise damaged(key, found, collection, at())
    if key == "lock":
        return {**{field: None for field in LOCK_WHO}, **doc}
    return doc


def released_lock(doc, collection: str | None = None) -> dict:
    """The lock record as `vecmig lock release` reports it: checked, or, when it can't be read (the
    release is its repair), what can be told of who held it ("?" where nothing can)."""
    if not problem("lock", doc):
        return checked("lock", doc, collection)
    raw = doc if isinstance(doc, dict) else {}
    return {**{field: raw.get(field, "?") for field in LOCK_WHO}, "owner": raw.get("owner"), "unreadable": doc}


def stray_point(collection: str, point_id, kind: str | None = None) -> StateError:
    """A point (object) in the state collection without vecmig's ``key`` field: not a record."""
    as_kind = f" (kind {kind!r})" if kind else ""
    return StateError(
        f"state collection {collection!r} holds point {point_id}{as_kind} without a `key` field, so it is not a vecmig record: "
        f"delete that point from {collection!r} (vecmig never writes one), or set state_collection in vecmig.ini "
        f"if {collection!r} is not vecmig's collection"
    )


# -- a store without vecmig state ---------------------------------------------------------------

@dataclass
class Absent:
    """A store with collections but no vecmig state: nothing can be said about what is applied."""

    collection: str
    missing: bool
    others: list[str]
    aliases: list[str]

    @property
    def problem(self) -> str:
        why = "is missing" if self.missing else "holds no vecmig records"
        names = _names(self.others) + (f" (aliases {_names(self.aliases)})" if self.aliases else "")
        return f"this store has no vecmig state (collection {self.collection!r} {why}) but has collections {names}"

    stamp = "if these revisions made them, `vecmig stamp REV` records the revision the store is at (`vecmig history` lists them)"

    def __str__(self) -> str:
        return f"{self.problem}: {self.stamp}; if they are not this project's, the first `vecmig upgrade` starts the state"


def _names(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def absent_state(backend, state) -> Absent | None:
    """None when the state can be read as it is (it has records, or the store has no collections:
    a new store). A state collection holding data that is not vecmig's is refused outright."""
    if state.exists() and state.records.get("heads") is None:
        strays = state.records.strays()
        if strays:
            raise StateError(
                f"collection {state.name!r} is not vecmig's state: it holds no heads record and data that is not vecmig "
                f"records (ids {', '.join(map(str, strays))}): set state_collection in vecmig.ini to a name of vecmig's own, "
                "or move that collection away; then `vecmig stamp REV` if these revisions made the store's collections"
            )
    if state.recorded():
        return None
    others = sorted(name for name in backend.list_collections() if name != state.name)
    if not others:
        return None
    aliases = sorted(alias for alias, target in backend.list_aliases().items() if target in others)
    return Absent(state.name, not state.exists(), others, aliases)


def require_state(backend, state) -> None:
    """Refuse to describe a store without vecmig state that has collections as "at base"."""
    absent = absent_state(backend, state)
    if absent:
        raise StateError(str(absent))
