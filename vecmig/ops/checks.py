"""Plan-time checks the ops share: vectors and their mappings, filters, what an alias stands for."""

from __future__ import annotations

from vecmig.errors import PlanError
from vecmig.schema import CollectionSpec, SchemaView


def vector_mapping(vectors: dict[str, str] | list[str] | None, source: CollectionSpec | None) -> dict[str, str]:
    """``vectors`` as {source name: target name}; None means every vector of ``source`` by its own name."""
    if vectors is None:
        return {n: n for n in source.vector_names()} if source is not None else {}
    if isinstance(vectors, list):
        return {n: n for n in vectors}
    return dict(vectors)


def names(spec: CollectionSpec) -> str:
    return ", ".join(repr(n) for n in spec.vector_names()) or "none"


def check_vector_mapping(src: CollectionSpec, dst: CollectionSpec, mapping: dict[str, str], what: str, *, implicit: bool) -> None:
    """Each source vector exists, its target name exists with the same kind and size, and no two land on one."""
    seen: dict[str, str] = {}
    for old, new in mapping.items():
        if old not in src.vector_names():
            raise PlanError(f"{what}: source {src.name!r} has no vector {old!r} (it has {names(src)})")
        if new not in dst.vector_names():
            hint = ": choose the vectors to copy (and rename them) with `vectors: {old: new}`" if implicit else ""
            raise PlanError(f"{what}: target {dst.name!r} has no vector {new!r} (it has {names(dst)}){hint}")
        if new in seen:
            raise PlanError(f"{what}: vectors {seen[new]!r} and {old!r} would both be written to {new!r}")
        seen[new] = old
        if (old in src.sparse_vectors) != (new in dst.sparse_vectors):
            raise PlanError(f"{what}: vector {old!r} -> {new!r}: one is sparse and the other dense")
        a, b = src.vectors.get(old), dst.vectors.get(new)
        if a is not None and b is not None:
            if a.size and b.size and a.size != b.size:
                raise PlanError(f"{what}: vector {old!r} has {a.size} dimensions, {dst.name}.{new} has {b.size}: a different model needs backfill, not copy")
            if a.multivector != b.multivector:
                raise PlanError(f"{what}: vector {old!r} -> {new!r}: one is a multivector and the other is not")


def check_filter(backend, filter: dict | None, what: str) -> None:
    problem = filter and backend.invalid_filter(filter)
    if problem:
        raise PlanError(f"{what}: {problem}")


def collection_behind(backend, name: str) -> str:
    """The collection ``name`` stands for right now (itself, or an alias's target)."""
    return backend.list_aliases().get(name, name)


def require_dense(coll: CollectionSpec, vector: str, what: str, *, role: str = "vector") -> None:
    """``coll`` has a dense, single vector named ``vector``."""
    if vector in coll.sparse_vectors:
        raise PlanError(f"{what}: {role} {vector!r} of {coll.name!r} is sparse: only dense vectors can be compared or derived")
    spec = coll.vectors.get(vector)
    if spec is None:
        raise PlanError(f"{what}: collection {coll.name!r} has no vector {vector!r} (it has {names(coll)})")
    if spec.multivector:
        raise PlanError(f"{what}: {role} {vector!r} of {coll.name!r} is a multivector: one vector per point is needed")


def vector_size(view: SchemaView | None, collection: str | None, vector: str | None) -> int | str | None:
    """The size of ``collection.vector`` as ``view`` has it (SPARSE for a sparse vector), None when unknown."""
    return view.filled_size(collection, vector) if view is not None else None
