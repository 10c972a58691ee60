"""Backend-neutral descriptions of collections and points, and the plan-time view of a store.

Ops validate against a ``SchemaView`` and move it forward (like Django's ``state_forwards``), so a
whole upgrade path is checked against the live store before anything is written.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

DISTANCES = ("cosine", "dot", "euclid", "manhattan")
#: what ``Op.embedder_names`` gives for a sparse vector, where a dense one gives its size
SPARSE = "sparse"


@dataclass
class VectorSpec:
    """A dense (or multi-) vector: what a collection declares for one vector name."""

    size: int
    distance: str = "cosine"
    multivector: bool = False
    on_disk: bool | None = None
    embedder: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "VectorSpec":
        """From a revision file's mapping; keys other than the core ones pass through as options."""
        core = {"size", "distance", "multivector", "on_disk", "embedder"}
        return cls(
            size=params.get("size") or 0,  # 0 until an embedder's probe fills it
            distance=params.get("distance", "cosine"),
            multivector=bool(params.get("multivector", False)),
            on_disk=params.get("on_disk"),
            embedder=params.get("embedder"),
            options={k: v for k, v in params.items() if k not in core},
        )

    def same_shape(self, other: "VectorSpec") -> bool:
        return (self.size, self.distance, self.multivector) == (other.size, other.distance, other.multivector)


@dataclass
class SparseVectorSpec:
    """A sparse vector (term weights), filled by a sparse embedder (``provider = bm25``)."""

    modifier: str | None = None  # "idf" for BM25-style scoring on Qdrant
    options: dict[str, Any] = field(default_factory=dict)
    embedder: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "SparseVectorSpec":
        params = dict(params or {})
        modifier = params.pop("modifier", None)
        embedder = params.pop("embedder", None)
        return cls(modifier=None if modifier == "none" else modifier, options=params, embedder=embedder)


@dataclass
class CollectionSpec:
    """What a collection is: its vectors, sparse vectors, payload indexes and properties."""

    name: str
    vectors: dict[str, VectorSpec] = field(default_factory=dict)
    sparse_vectors: dict[str, SparseVectorSpec] = field(default_factory=dict)
    payload_indexes: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def vector_names(self) -> list[str]:
        return [*self.vectors, *self.sparse_vectors]


@dataclass
class Point:
    """One point/object: id, payload (properties) and vectors by name ("" = the unnamed vector)."""

    id: int | str
    payload: dict[str, Any] = field(default_factory=dict)
    vectors: dict[str, Any] = field(default_factory=dict)


@dataclass
class SchemaView:
    """Collections and aliases as they will be after the ops planned so far."""

    collections: dict[str, CollectionSpec] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_backend(cls, backend, *, exclude: set[str] = frozenset()) -> "SchemaView":
        names = [n for n in backend.list_collections() if n not in exclude]
        return cls(
            collections={n: backend.get_collection(n) for n in names},
            aliases=dict(backend.list_aliases()),
        )

    def copy(self) -> "SchemaView":
        return copy.deepcopy(self)

    def resolve(self, name: str) -> str | None:
        """The collection a name refers to (itself or through an alias), or None."""
        if name in self.collections:
            return name
        target = self.aliases.get(name)
        return target if target in self.collections else None

    def filled_size(self, collection: str | None, vector: str | None) -> int | str | None:
        """What an embedder filling ``collection.vector`` must make (``Op.embedder_names``): the
        dense vector's size, SPARSE for a sparse vector, None when not known (yet)."""
        real = self.resolve(collection) if collection else None
        if real is None:
            return None
        coll = self.collections[real]
        if (vector or "") in coll.sparse_vectors:
            return SPARSE
        spec = coll.vectors.get(vector or "")
        return spec.size if spec is not None and spec.size else None

    def aliases_of(self, collection: str) -> list[str]:
        return sorted(a for a, c in self.aliases.items() if c == collection)
