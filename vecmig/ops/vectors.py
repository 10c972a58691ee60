"""Named-vector ops on an existing collection: add_vector, drop_vector."""

from __future__ import annotations

from dataclasses import dataclass

from vecmig.errors import PlanError
from vecmig.ops.base import Op, register, require_collection
from vecmig.ops.collections import check_vector_feature
from vecmig.schema import SPARSE, SparseVectorSpec, VectorSpec


@register("add_vector")
@dataclass
class AddVector(Op):
    collection: str = ""
    name: str = ""
    sparse: bool = False
    modifier: str | None = None
    size: int | None = None
    distance: str = "cosine"
    multivector: bool = False
    on_disk: bool | None = None
    embedder: str | None = None
    hnsw_config: dict | None = None
    quantization_config: dict | None = None
    datatype: str | None = None
    index_type: str | None = None

    def spec(self) -> VectorSpec | SparseVectorSpec:
        if self.sparse:
            return SparseVectorSpec.from_params({"modifier": self.modifier, "embedder": self.embedder})
        extra = {k: getattr(self, k) for k in ("hnsw_config", "quantization_config", "datatype", "index_type") if getattr(self, k) is not None}
        return VectorSpec(self.size or 0, self.distance, self.multivector, self.on_disk, self.embedder, extra)

    def embedder_names(self, view=None):
        return {self.embedder: SPARSE if self.sparse else self.size} if self.embedder else {}

    def use_dimensions(self, dimensions):
        if not self.size and self.embedder in dimensions:
            self.size = dimensions[self.embedder]

    def validate(self, view, backend):
        what = f"add_vector {self.collection}.{self.name}"
        coll = require_collection(view, self.collection, what)
        if not self.sparse and not self.size:
            raise PlanError(f"{what}: a dense vector needs `size` or an `embedder` to probe it (or set `sparse: true`)")
        if self.name in coll.vector_names():
            raise PlanError(f"{what}: collection {coll.name!r} already has a vector named {self.name!r}")
        reason = backend.unsupported("add_vector", coll)
        if reason:
            raise PlanError(f"{what}: {reason}")
        check_vector_feature(backend, self.spec(), what, coll)

    def forward(self, view):
        coll = view.collections[view.resolve(self.collection)]
        spec = self.spec()
        target = coll.sparse_vectors if self.sparse else coll.vectors
        target[self.name] = spec

    def found_applied(self, view):
        real = view.resolve(self.collection)
        coll = view.collections[real] if real is not None else None
        return coll is not None and self.name in (coll.sparse_vectors if self.sparse else coll.vectors)

    def apply(self, ctx):
        ctx.backend.add_vector(self.collection, self.name, self.spec())

    def reverse(self, undo):
        return DropVector(collection=self.collection, name=self.name)


@register("drop_vector")
@dataclass
class DropVector(Op):
    collection: str = ""
    name: str = ""
    irreversible = "drop_vector deletes that vector of every point: write an explicit downgrade (add_vector + backfill) to rebuild it"

    def validate(self, view, backend):
        what = f"drop_vector {self.collection}.{self.name}"
        coll = require_collection(view, self.collection, what)
        if self.name not in coll.vector_names():
            have = ", ".join(repr(n) for n in coll.vector_names()) or "none"
            raise PlanError(f"{what}: collection {coll.name!r} has no vector {self.name!r} (it has {have})")
        reason = backend.unsupported("drop_vector", coll)
        if reason:
            raise PlanError(f"{what}: {reason}")

    def forward(self, view):
        coll = view.collections[view.resolve(self.collection)]
        coll.vectors.pop(self.name, None)
        coll.sparse_vectors.pop(self.name, None)

    def apply(self, ctx):
        from vecmig.datapath.text import text_hash_field

        ctx.backend.drop_vector(self.collection, self.name)
        ctx.backend.delete_payload_field(self.collection, text_hash_field(self.name))  # backfill's text hashes
