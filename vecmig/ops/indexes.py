"""Payload index ops: create_payload_index, drop_payload_index."""

from __future__ import annotations

from dataclasses import dataclass

from vecmig.errors import PlanError
from vecmig.ops.base import Op, register, require_collection


@register("create_payload_index")
@dataclass
class CreatePayloadIndex(Op):
    collection: str = ""
    field: str = ""
    type: str = "keyword"

    def validate(self, view, backend):
        what = f"create_payload_index {self.collection}.{self.field}"
        coll = require_collection(view, self.collection, what)
        if self.field in coll.payload_indexes:
            raise PlanError(f"{what}: the field already has a {coll.payload_indexes[self.field]} index")

    def forward(self, view):
        view.collections[view.resolve(self.collection)].payload_indexes[self.field] = self.type

    def found_applied(self, view):
        real = view.resolve(self.collection)
        return real is not None and view.collections[real].payload_indexes.get(self.field) == self.type

    def apply(self, ctx):
        ctx.backend.create_payload_index(self.collection, self.field, self.type)

    def reverse(self, undo):
        return DropPayloadIndex(collection=self.collection, field=self.field)


@register("drop_payload_index")
@dataclass
class DropPayloadIndex(Op):
    collection: str = ""
    field: str = ""

    def validate(self, view, backend):
        require_collection(view, self.collection, f"drop_payload_index {self.collection}.{self.field}")

    def forward(self, view):
        view.collections[view.resolve(self.collection)].payload_indexes.pop(self.field, None)

    def apply(self, ctx):
        live = ctx.backend.get_collection(self.collection)
        index_type = live.payload_indexes.get(self.field) if live else None
        ctx.backend.drop_payload_index(self.collection, self.field)
        return {"type": index_type}

    def reverse(self, undo):
        index_type = (undo or {}).get("type")
        if not index_type:
            raise PlanError(f"drop_payload_index {self.collection}.{self.field}: the index type was not journaled: write an explicit downgrade with create_payload_index")
        return CreatePayloadIndex(collection=self.collection, field=self.field, type=index_type)
