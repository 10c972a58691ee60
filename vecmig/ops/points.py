"""Seed-data ops: bulk_insert (Alembic's bulk_insert for points) and delete_points."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from vecmig.errors import PlanError, ScriptError
from vecmig.ops.base import Op, register, require_collection
from vecmig.ops.files import iter_jsonl
from vecmig.schema import CollectionSpec, Point


def _point(raw: dict[str, Any]) -> Point:
    vectors = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in (raw.get("vectors") or {}).items()}
    return Point(id=raw["id"], payload=raw.get("payload") or {}, vectors=vectors)


class PointSource:
    """Points given inline or in a JSONL file next to the revision (one point per line)."""

    def __init__(self, op: Op, points: list | None, file: str | None):
        self.op, self.points, self.file = op, points, file

    @property
    def path(self) -> Path:
        return (self.op.source_dir or Path.cwd()) / self.file

    def __iter__(self) -> Iterator[Point]:
        if self.points is not None:
            yield from (_point(p) for p in self.points)
            return
        if not self.path.is_file():
            raise PlanError(f"{self.op.op_name}: file {self.file!r} not found next to the revision ({self.path.parent})")
        for lineno, raw in iter_jsonl(self.path):
            if not isinstance(raw, dict) or "id" not in raw:
                raise ScriptError(f"{self.path}:{lineno}: each line must be an object with an `id`")
            yield _point(raw)


def check_point(coll: CollectionSpec, point: Point, what: str) -> None:
    for name, vec in point.vectors.items():
        if name in coll.sparse_vectors:
            if not isinstance(vec, dict) or set(vec) != {"indices", "values"}:
                raise PlanError(f"{what}: point {point.id!r}: sparse vector {name!r} must be {{indices: [...], values: [...]}}")
            continue
        spec = coll.vectors.get(name)
        if spec is None:
            have = ", ".join(repr(n) for n in coll.vector_names()) or "none"
            raise PlanError(f"{what}: point {point.id!r} has vector {name!r}, which {coll.name!r} does not declare (it has {have})")
        size = len(vec[0]) if spec.multivector and vec else len(vec)
        if spec.size and size != spec.size:
            raise PlanError(f"{what}: point {point.id!r}: vector {name!r} has {size} dimensions, the collection expects {spec.size}")


@register("bulk_insert")
@dataclass
class BulkInsert(Op):
    """Upsert points (idempotent by id); resumable by batch. Its reverse deletes those ids."""

    collection: str = ""
    points: list[dict] | None = None
    file: str | None = None
    batch_size: int = 256

    def source(self) -> PointSource:
        return PointSource(self, self.points, self.file)

    def data_files(self):
        return [self.file] if self.file else []

    def describe(self):
        where = f"file={json.dumps(self.file)}" if self.file else f"{len(self.points or [])} points"
        return f"bulk_insert(collection={json.dumps(self.collection)}, {where})"

    def validate(self, view, backend):
        what = f"bulk_insert into {self.collection!r}"
        coll = require_collection(view, self.collection, what)
        for point in self.source():
            check_point(coll, point, what)

    def apply(self, ctx):
        total = sum(1 for _ in self.source())
        done = (ctx.state.get_checkpoint(ctx.checkpoint_key) or {}).get("written", 0)
        if done:
            ctx.echo(f"  bulk_insert {self.collection}: resuming after {done} of {total} points")
        points = islice(iter(self.source()), done, None)
        with ctx.progress(total, f"bulk_insert {self.collection}", done=done) as bar:
            while batch := list(islice(points, self.batch_size)):
                ctx.backend.upsert(self.collection, batch)
                done += len(batch)
                ctx.state.set_checkpoint(ctx.checkpoint_key, {"written": done, "total": total})
                bar.update(len(batch))

    def reverse(self, undo):
        if self.file:
            return DeletePoints(collection=self.collection, file=self.file, source_dir=self.source_dir)
        return DeletePoints(collection=self.collection, ids=[p["id"] for p in self.points or []])

    def reverse_partial(self, checkpoint):
        """Batches are written in order and checkpointed after each: what a stopped run may have
        written is the checkpointed points and the batch after them."""
        written = int((checkpoint or {}).get("written") or 0)
        ids = [p.id for p in islice(iter(self.source()), written + self.batch_size)]
        return DeletePoints(collection=self.collection, ids=ids)


@register("delete_points")
@dataclass
class DeletePoints(Op):
    """Delete points by id (or the ids of a JSONL file's points)."""

    collection: str = ""
    ids: list[int | str] | None = None
    file: str | None = None
    irreversible = "delete_points removes data: write an explicit downgrade (bulk_insert) to restore it"

    def data_files(self):
        return [self.file] if self.file else []

    def describe(self):
        where = f"file={json.dumps(self.file)}" if self.file else f"{len(self.ids or [])} ids"
        return f"delete_points(collection={json.dumps(self.collection)}, {where})"

    def validate(self, view, backend):
        require_collection(view, self.collection, f"delete_points from {self.collection!r}")
        if self.file:
            for _ in PointSource(self, None, self.file):
                pass

    def apply(self, ctx):
        ids = self.ids if self.ids is not None else [p.id for p in PointSource(self, None, self.file)]
        for start in range(0, len(ids), 1000):
            ctx.backend.delete(self.collection, ids[start : start + 1000])
