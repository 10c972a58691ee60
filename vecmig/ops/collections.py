"""Collection ops: create_collection, drop_collection, update_collection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vecmig.errors import PlanError
from vecmig.ops.base import Op, register, require_collection
from vecmig.schema import SPARSE, CollectionSpec, SchemaView, SparseVectorSpec, VectorSpec


def check_new_name(view: SchemaView, backend, name: str, what: str) -> None:
    """A name a new collection or alias may take: valid here and not yet used."""
    problem = backend.invalid_collection_name(name)
    if problem:
        raise PlanError(f"{what}: {problem}")
    if name in view.collections:
        raise PlanError(f"{what}: collection {name!r} already exists: pick another name, drop it first, or adopt the store with `vecmig stamp`")
    if name in view.aliases:
        raise PlanError(f"{what}: {name!r} is already an alias (of {view.aliases[name]!r}): pick another name")


def check_vector_feature(backend, spec: VectorSpec | SparseVectorSpec, what: str, collection=None) -> None:
    feature = "sparse_vectors" if isinstance(spec, SparseVectorSpec) else ("multivectors" if spec.multivector else None)
    reason = feature and backend.unsupported(feature, collection)
    if reason:
        raise PlanError(f"{what}: {reason}")


@register("create_collection")
@dataclass
class CreateCollection(Op):
    name: str = ""
    vectors: dict[str, dict] = field(default_factory=dict)
    sparse_vectors: dict[str, dict | None] = field(default_factory=dict)
    payload_indexes: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> CollectionSpec:
        return CollectionSpec(
            name=self.name,
            vectors={n: VectorSpec.from_params(v) for n, v in self.vectors.items()},
            sparse_vectors={n: SparseVectorSpec.from_params(v) for n, v in self.sparse_vectors.items()},
            payload_indexes=dict(self.payload_indexes),
            properties=dict(self.properties),
            options=dict(self.options),
        )

    def embedder_names(self, view=None):
        sparse = {v["embedder"]: SPARSE for v in self.sparse_vectors.values() if v and v.get("embedder")}
        return {**sparse, **{v["embedder"]: v.get("size") for v in self.vectors.values() if v.get("embedder")}}

    def use_dimensions(self, dimensions):
        for params in self.vectors.values():
            if not params.get("size") and params.get("embedder") in dimensions:
                params["size"] = dimensions[params["embedder"]]

    def validate(self, view, backend):
        what = f"create_collection {self.name!r}"
        check_new_name(view, backend, self.name, what)
        spec = self.spec()
        clash = set(spec.vectors) & set(spec.sparse_vectors)
        if clash:
            raise PlanError(f"{what}: {sorted(clash)[0]!r} is declared both as a dense and a sparse vector: rename one")
        for vec in [*spec.vectors.values(), *spec.sparse_vectors.values()]:
            check_vector_feature(backend, vec, what)
        problem = backend.invalid_collection_spec(spec)
        if problem:
            raise PlanError(f"{what}: {problem}")

    def forward(self, view):
        view.collections[self.name] = self.spec()

    def found_applied(self, view):
        have, want = view.collections.get(self.name), self.spec()
        return have is not None and set(have.vector_names()) == set(want.vector_names()) and all(
            n in have.vectors and (not v.size or have.vectors[n].size == v.size) for n, v in want.vectors.items())

    def apply(self, ctx):
        ctx.backend.create_collection(self.spec())

    def reverse(self, undo):
        return DropCollection(name=self.name)


@register("drop_collection")
@dataclass
class DropCollection(Op):
    name: str = ""
    irreversible = "drop_collection deletes the collection's data: write an explicit downgrade (e.g. create_collection + copy) to restore it"

    def validate(self, view, backend):
        what = f"drop_collection {self.name!r}"
        if self.name in view.aliases:
            raise PlanError(f"{what}: {self.name!r} is an alias of {view.aliases[self.name]!r}: use drop_alias, or name the collection")
        require_collection(view, self.name, what)
        aliases = view.aliases_of(self.name)
        if aliases:
            raise PlanError(f"{what}: alias {aliases[0]!r} still points at it: repoint_alias or drop_alias first")

    def forward(self, view):
        del view.collections[self.name]

    def apply(self, ctx):
        ctx.backend.drop_collection(self.name)


@register("update_collection")
@dataclass
class UpdateCollection(Op):
    """Change settings (hnsw, optimizers, quantization, ...). ``previous`` makes it reversible."""

    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    previous: dict[str, Any] | None = None

    @property
    def irreversible(self):  # type: ignore[override]
        return None if self.previous else "update_collection can't know the old settings: give `previous:` or an explicit downgrade"

    def validate(self, view, backend):
        require_collection(view, self.name, f"update_collection {self.name!r}")

    def forward(self, view):
        view.collections[view.resolve(self.name)].options.update(self.options)

    def apply(self, ctx):
        ctx.backend.update_collection(self.name, self.options)

    def reverse(self, undo):
        if not self.previous:
            return None
        return UpdateCollection(name=self.name, options=self.previous, previous=self.options)
