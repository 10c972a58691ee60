"""Points between vecmig and Weaviate: ids, payloads and vectors.

Ids: Weaviate object ids are UUIDs; vecmig ids are non-negative integers below 2**64 or UUID strings
(as in Qdrant). The integer n is stored as the UUID whose 128-bit value is n
(``00000000-0000-0000-XXXX-XXXXXXXXXXXX``), and a stored UUID whose first 64 bits are zero reads back
as that integer: deterministic, reversible, no extra property, and ids survive copies between Qdrant
and Weaviate. The one cost: such UUIDs can't be used as string ids (uuid1/3/4/5 never produce them).
String ids come back in canonical lower-case form.

Payloads: keys must be Weaviate property names; nulls are not stored (Weaviate has no null values),
so they are left out on write and on read. Dates, UUIDs and geo values come back as JSON-like values
(RFC 3339 text with ``Z`` for UTC, strings, dicts).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from vecmig.backends.weaviate_schema import invalid_property_name
from vecmig.errors import BackendError
from vecmig.schema import Point


def to_uuid(point_id: int | str) -> uuid.UUID:
    """The Weaviate object id of a vecmig point id (see the module docstring)."""
    if isinstance(point_id, bool):
        raise BackendError(f"point id {point_id!r}: ids are non-negative integers or UUID strings")
    if isinstance(point_id, int):
        if 0 <= point_id < 2**64:
            return uuid.UUID(int=point_id)
        raise BackendError(f"point id {point_id}: integer ids must be between 0 and 2**64-1 (as in Qdrant)")
    if isinstance(point_id, uuid.UUID):
        value = point_id
    else:
        try:
            value = uuid.UUID(str(point_id))
        except ValueError:
            raise BackendError(f"point id {point_id!r}: Weaviate ids must be UUIDs (or non-negative integers): use e.g. uuid5 of your key") from None
    if value.int < 2**64:
        raise BackendError(f"point id {point_id!r}: UUIDs whose first 64 bits are zero stand for integer ids here: pass the integer {value.int} instead")
    return value


def from_uuid(value: uuid.UUID | str) -> int | str:
    value = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    return value.int if value.int < 2**64 else str(value)


def payload_in(payload: dict[str, Any], what: str) -> dict[str, Any]:
    """Properties to write: keys checked against Weaviate's naming rules, nulls left out."""
    out = {}
    for key, value in payload.items():
        problem = invalid_property_name(key)
        if problem:
            raise BackendError(f"{what}: payload field {key!r}: {problem}")
        if value is not None:
            out[key] = value
    return out


def plain(value: Any) -> Any:
    """A JSON-like value from what the client returns (datetime, UUID, geo objects, nested dicts)."""
    if isinstance(value, dt.datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items() if v is not None}
    if hasattr(value, "model_dump"):  # pydantic objects (geo coordinates, phone numbers)
        return {k: plain(v) for k, v in value.model_dump().items() if v is not None}
    return value


def as_list(vector: Any) -> list:
    return vector.tolist() if hasattr(vector, "tolist") else list(vector)


@dataclasses.dataclass
class VectorShapes:
    """What upserts are checked against: vector name -> (declared size or 0, multivector); and each
    vector's distance (vecmig's names), for turning Weaviate's distances into Qdrant-style scores."""

    vectors: dict[str, tuple[int, bool]]
    distances: dict[str, str] = dataclasses.field(default_factory=dict)

    def named(self, name: str) -> bool:
        return name in self.vectors and name != ""


def score(distance: str, value: float | None) -> float:
    """Weaviate's distance as the score Qdrant reports: similarity for cosine and dot (higher is
    closer), the distance itself for euclid (Weaviate's is squared) and manhattan."""
    d = float(value or 0.0)
    if distance == "cosine":
        return 1.0 - d
    if distance == "dot":
        return -d
    if distance == "euclid":
        return max(d, 0.0) ** 0.5
    return d


def has_vector(obj, name: str) -> bool:
    """Whether a client result object carries a non-empty vector ``name``."""
    value = (obj.vector or {}).get("default" if name == "" else name)  # the client's key for the legacy vector
    return value is not None and len(value) > 0


def vectors_in(point: Point, shapes: VectorShapes, what: str) -> Any:
    """The ``vector`` argument of a Weaviate object: checked against the declared shapes."""
    if not point.vectors:
        return None
    out = {}
    for name, vector in point.vectors.items():
        if name not in shapes.vectors:
            have = ", ".join(repr(n) for n in shapes.vectors) or "none"
            raise BackendError(f"{what}: point {point.id!r} has vector {name!r}, which the collection does not have (it has {have})")
        size, multi = shapes.vectors[name]
        value = [as_list(v) for v in vector] if multi else as_list(vector)
        got = len(value[0]) if multi and value else len(value)
        if size and got != size:
            raise BackendError(f"{what}: point {point.id!r}: vector {name!r} has {got} dimensions, the collection expects {size}")
        out[name] = value
    if "" in out:
        if len(out) > 1:
            raise BackendError(f"{what}: point {point.id!r}: the unnamed vector can't be written together with named ones")
        return out[""]
    return out


def point_from_object(obj, shapes: VectorShapes | None) -> Point:
    """A Point from a client result object; the legacy vector (client name ``default``) becomes ``""``."""
    vectors = {}
    for key, value in (obj.vector or {}).items():
        name = "" if key == "default" and shapes is not None and "" in shapes.vectors and not shapes.named("default") else key
        vectors[name] = value
    payload = {k: plain(v) for k, v in (obj.properties or {}).items() if v is not None}
    return Point(id=from_uuid(obj.uuid), payload=payload, vectors=vectors)
