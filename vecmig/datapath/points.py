"""Points and their vectors as the data path reads, embeds and writes them."""

from __future__ import annotations

import uuid
from typing import Any

from vecmig.schema import Point


def read_vectors(names) -> bool | list[str]:
    """``with_vectors`` for a scan that needs ``names`` (the unnamed vector needs all of them)."""
    names = list(names)
    if not names:
        return False
    return True if "" in names else names


def renamed(point: Point, vectors: dict[str, str]) -> dict[str, Any]:
    """The vectors of ``point`` named in ``vectors`` ({old: new}), under their new names."""
    return {new: point.vectors[old] for old, new in vectors.items() if old in point.vectors}


def has(point: Point, vector: str) -> bool:
    """Whether ``point`` carries a non-empty ``vector``."""
    value = point.vectors.get(vector)
    return value is not None and len(value) > 0


def point_key(value: Any) -> int | str:
    """An id as it compares across stores and files: integers as ints, UUIDs in canonical lower case."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text


def order_key(point_id: Any) -> tuple[int, int | str]:
    """Where ``point_id`` comes in a scan: integer ids first, ascending, then UUIDs by their 128-bit
    value — the order of Qdrant's scroll and of Weaviate's cursor (which holds integers as UUIDs
    below 2**64)."""
    if isinstance(point_id, int) and not isinstance(point_id, bool):
        return (0, point_id)
    try:
        return (1, uuid.UUID(str(point_id)).int)
    except ValueError:
        return (2, str(point_id))


def as_list(vector: Any) -> list[float]:
    return vector.tolist() if hasattr(vector, "tolist") else list(vector)


def as_stored(vector: Any) -> list[float] | dict:
    """A vector as a Point carries it: a list of floats, or ``{"indices", "values"}`` for a sparse one
    (given as that dict or as ``(indices, values)`` with those names, e.g. a SparseVector)."""
    if isinstance(vector, dict):
        return {"indices": list(vector["indices"]), "values": list(vector["values"])}
    if hasattr(vector, "indices") and hasattr(vector, "values"):
        return {"indices": list(vector.indices), "values": list(vector.values)}
    return as_list(vector)


def embed_for_store(embedder, texts: list[str], *, query: bool = False) -> list[list[float] | dict]:
    """``texts`` embedded as documents (or queries) into vectors as Points and searches take them:
    lists of floats, or ``{"indices", "values"}`` from a sparse embedder (``embedder.sparse``)."""
    if getattr(embedder, "sparse", False):
        vectors = embedder.embed_sparse_queries(texts) if query else embedder.embed_sparse_documents(texts)
        return [as_stored(v) for v in vectors]
    return [as_list(v) for v in (embedder.embed_queries(texts) if query else embedder.embed_documents(texts))]
