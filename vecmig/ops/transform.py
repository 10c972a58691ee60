"""``transform_vectors``: derive a new vector from a stored one instead of re-embedding every point.

The answer to "can I avoid re-embedding?" when the new vector is a function of the old one:

* ``method: truncate`` — Matryoshka models (and PCA-ordered ones, like the shipped static model)
  put the most information first: the first ``dims`` values, re-normalized to unit length, are
  what the model itself gives when asked for ``dims`` dimensions. Exact; nothing to learn.
* ``method: linear`` — a linear map W from the old vector to the new model's (numpy least
  squares), learned on a sample of points that have both: ``sample: N`` takes N points that
  already carry both vectors (dual-written ones, say); ``sample: {size, embedder, text}`` embeds
  ``size`` points with the new model first. Approximate, so it is measured before anything is
  written, and ``min_recall`` refuses a map that loses too much.

What the recall@10 of a linear map measures, and how: the sample (drawn uniformly, seeded) is cut
into 5 held-out parts; each part's old vectors are mapped by a map learned on the other four, so
every sample point gets a mapped vector from a map that never saw it (5-fold cross-validation).
Each point's true new vector then queries the sample twice: among the true new vectors and among
the mapped ones (the point itself left out; at most 2000 points take part). recall@10 is the mean
share of the true 10 nearest that the mapped vectors return too: what the application's
new-model queries will find in transformed vectors, relative to re-embedded ones. ``chance`` is
what random neighbours would score (10 / (points - 1)): a small sample can't tell a poor map from a
good one, so use a few thousand points. Neighbours crowd closer in a whole collection than in a
sample, so expect somewhat less there. The map written is then learned on the whole sample; its
output is normalized to unit length when the new vector's distance is cosine or when the sample's
new vectors are unit length.

Writes go the way a backfill's do (``TransformJob``), on the same executor (bounded memory, checkpoint after each
batch, resume): in place (``target`` left out) only where ``to_vector`` is missing, into another
collection insert-only with the payload copied. A vector the application dual-writes meanwhile
(made by the real model) always wins. The text hash of ``from_vector`` is carried to ``to_vector``:
both represent the same text, so ``verify``'s hash check holds for transformed vectors too.

The learned map is kept in checkpoint records next to the op's own (in chunks of 256Ki values)
until the op is done, so a resumed run writes with the same map. The journal keeps its shape, its
sha256 and the recall; the map itself too when it has at most 65,536 values (e.g. 256 x 256).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from vecmig.datapath.jobs import TransformJob, Worker
from vecmig.datapath.points import has, read_vectors
from vecmig.datapath.sample import SEED, Reservoir
from vecmig.datapath.text import parse_template
from vecmig.errors import CheckFailed, PlanError
from vecmig.ops.base import Op, nothing_to_undo, register, require_collection
from vecmig.ops.checks import check_filter, collection_behind, require_dense, vector_size
from vecmig.schema import SchemaView

if TYPE_CHECKING:  # numpy is imported where it is used: importing the ops stays light
    import numpy as np

RECALL_K = 10
FOLDS = 5
#: most sample points the recall is measured among (an n x n comparison)
MEASURED_MAX = 2000
MIN_SAMPLE = 50
#: values of the learned map per checkpoint record (1 MiB as float32)
MAP_CHUNK = 262_144
#: maps with at most this many values are journaled in full
JOURNALED_MAP = 65_536


def normalized(vectors: np.ndarray) -> np.ndarray:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def truncate(vectors: np.ndarray, dims: int) -> np.ndarray:
    """The first ``dims`` values of each vector, re-normalized to unit length (Matryoshka)."""
    import numpy as np

    return normalized(np.asarray(vectors, dtype=np.float32)[:, :dims])


def similarity(queries: np.ndarray, corpus: np.ndarray, distance: str) -> np.ndarray:
    """(queries x corpus) scores, higher is closer, for a vector's distance."""
    import numpy as np

    if distance == "cosine":
        return normalized(queries) @ normalized(corpus).T
    if distance == "dot":
        return queries @ corpus.T
    if distance == "euclid":
        return -(np.sum(queries**2, axis=1)[:, None] - 2 * queries @ corpus.T + np.sum(corpus**2, axis=1)[None, :])
    return -np.stack([np.abs(corpus - q).sum(axis=1) for q in queries])  # manhattan, row by row: bounded memory


def nearest_others(scores: np.ndarray, k: int) -> np.ndarray:
    """For each row i, the k columns of highest score, column i left out (the query's own point)."""
    import numpy as np

    scores = scores.astype(np.float64, copy=True)
    np.fill_diagonal(scores, -np.inf)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


@dataclass
class LinearMap:
    """new ≈ old @ weights, optionally normalized to unit length."""

    weights: np.ndarray
    normalize: bool

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        import numpy as np

        out = np.asarray(vectors, dtype=np.float32) @ self.weights
        return normalized(out) if self.normalize else out

    @property
    def shape(self) -> list[int]:
        return [int(n) for n in self.weights.shape]

    def raw(self) -> bytes:
        import numpy as np

        return np.ascontiguousarray(self.weights, dtype="<f4").tobytes()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw()).hexdigest()

    def describe(self) -> dict[str, Any]:
        """What the journal keeps: shape, digest, normalization, and the values when small."""
        doc: dict[str, Any] = {"shape": self.shape, "sha256": self.sha256, "normalize": self.normalize}
        if self.weights.size <= JOURNALED_MAP:
            doc["float32_base64"] = base64.b64encode(self.raw()).decode("ascii")
        return doc

    @classmethod
    def from_raw(cls, raw: bytes, shape: list[int], normalize: bool) -> "LinearMap":
        import numpy as np

        return cls(np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32), normalize)


@dataclass
class Learned:
    """A linear map and how it was measured."""

    map: LinearMap
    recall: float
    #: the recall random neighbours would have
    chance: float
    #: points the map is learned from
    points: int
    #: points the recall is measured among
    measured: int

    def summary(self) -> dict[str, Any]:
        return {"recall_at_10": round(self.recall, 4), "chance": round(self.chance, 4), "sample_points": self.points,
                "measured_points": self.measured, "folds": FOLDS}


def learn_linear_map(old: np.ndarray, new: np.ndarray, distance: str, *, k: int = RECALL_K, seed: int = SEED) -> Learned:
    """Least squares from ``old`` to ``new``; recall@k measured by cross-validation (module docstring)."""
    import numpy as np

    n = len(old)
    if n < max(FOLDS, k + 1):
        raise ValueError(f"a sample of {n} points is too small to measure recall@{k}")
    old, new = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
    normalize = distance == "cosine" or bool(np.allclose(np.linalg.norm(new, axis=1), 1.0, atol=1e-3))
    order = np.random.default_rng(seed).permutation(n)
    fold = np.empty(n, dtype=int)
    fold[order] = np.arange(n) % FOLDS
    mapped = np.empty_like(new)
    for f in range(FOLDS):
        held = fold == f
        weights, *_ = np.linalg.lstsq(old[~held], new[~held], rcond=None)
        mapped[held] = LinearMap(weights, normalize)(old[held])
    measured = order[:MEASURED_MAX]
    truth = new[measured]
    expected = nearest_others(similarity(truth, truth, distance), k)
    found = nearest_others(similarity(truth, mapped[measured], distance), k)
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(expected, found)]))
    weights, *_ = np.linalg.lstsq(old, new, rcond=None)
    return Learned(LinearMap(weights.astype(np.float32), normalize), recall, k / (len(measured) - 1), n, len(measured))


# ---------------------------------------------------------------------------------------------------
# the learned map across a resume


def save_map(state, key: str, learned: Learned, how: str) -> None:
    raw = learned.map.raw()
    step = MAP_CHUNK * 4
    parts = [raw[i : i + step] for i in range(0, len(raw), step)]
    for i, part in enumerate(parts):
        state.set_checkpoint(f"{key}/map/{i}", {"float32_base64": base64.b64encode(part).decode("ascii")})
    state.set_checkpoint(f"{key}/map", {"chunks": len(parts), "shape": learned.map.shape, "sha256": learned.map.sha256,
                                        "normalize": learned.map.normalize, "sample": how, **learned.summary()})


def load_map(state, key: str) -> tuple[Learned, str] | None:
    head = state.get_checkpoint(f"{key}/map") if state is not None else None
    if not head:
        return None
    parts = [state.get_checkpoint(f"{key}/map/{i}") for i in range(int(head["chunks"]))]
    if any(p is None for p in parts):
        return None
    linear = LinearMap.from_raw(b"".join(base64.b64decode(p["float32_base64"]) for p in parts), head["shape"], bool(head["normalize"]))
    if linear.sha256 != head["sha256"]:
        return None
    learned = Learned(linear, float(head["recall_at_10"]), float(head["chance"]), int(head["sample_points"]), int(head["measured_points"]))
    return learned, str(head.get("sample") or "")


def clear_map(state, key: str) -> None:
    head = state.get_checkpoint(f"{key}/map") if state is not None else None
    if not head:
        return
    for i in range(int(head.get("chunks") or 0)):
        state.clear_checkpoint(f"{key}/map/{i}")
    state.clear_checkpoint(f"{key}/map")


# ---------------------------------------------------------------------------------------------------
# the op


@register("transform_vectors")
@dataclass
class TransformVectors(Op):
    """Fill ``to_vector`` from ``from_vector`` without a model: truncation (Matryoshka) or a learned
    linear map, in place (``target`` left out) or into ``target``. See the module docstring."""

    source: str = ""
    from_vector: str = ""
    to_vector: str = ""
    method: str = "truncate"
    target: str | None = None
    dims: int | None = None
    sample: int | dict | None = None
    min_recall: float | None = None
    filter: dict | None = None
    batch_size: int = 256
    workers: int = 2
    partitions: int | str = "auto"

    def what(self) -> str:
        into = f"{self.target}.{self.to_vector}" if self.target is not None else self.to_vector
        return f"transform_vectors {self.source}.{self.from_vector} -> {into}"

    def validate(self, view: SchemaView, backend) -> None:
        what = self.what()
        src = require_collection(view, self.source, what)
        require_dense(src, self.from_vector, what, role="from_vector")
        if self.target is not None:
            dst = require_collection(view, self.target, what)
            if dst.name == src.name:
                raise PlanError(f"{what}: the target is the source collection {src.name!r}: leave `target` out to transform in place")
        else:
            dst = src
            if self.to_vector == self.from_vector:
                raise PlanError(f"{what}: from_vector and to_vector are the same vector: name the vector to fill with `to_vector`")
        require_dense(dst, self.to_vector, what, role="to_vector")
        from_size, to_size = src.vectors[self.from_vector].size, dst.vectors[self.to_vector].size
        if self.method == "truncate":
            if self.dims is None:
                raise PlanError(f"{what}: truncate needs `dims`, the number of leading dimensions to keep")
            if from_size and self.dims > from_size:
                raise PlanError(f"{what}: dims {self.dims} is more than the {from_size} dimensions of {self.from_vector!r}")
            if to_size and to_size != self.dims:
                raise PlanError(f"{what}: dims is {self.dims} but {dst.name}.{self.to_vector} has {to_size} dimensions")
            if self.sample is not None or self.min_recall is not None:
                raise PlanError(f"{what}: truncate learns and measures nothing: `sample` and `min_recall` are for method: linear")
        else:
            if self.dims is not None:
                raise PlanError(f"{what}: `dims` is for truncate; a linear map has the size of {self.to_vector!r}")
            if self.sample is None:
                raise PlanError(f"{what}: a linear map is learned from a sample: `sample: N` points that already have both vectors, "
                                "or `sample: {size: N, embedder: NEW, text: TEMPLATE}` to embed N points with the new model")
            if isinstance(self.sample, dict):
                parse_template(self.sample["text"], what)
                declared = dst.vectors[self.to_vector].embedder
                if declared and declared != self.sample["embedder"]:
                    raise PlanError(f"{what}: {dst.name}.{self.to_vector} was declared with embedder {declared!r}, not {self.sample['embedder']!r}")
        check_filter(backend, self.filter, what)

    def embedder_names(self, view: SchemaView | None = None) -> dict[str, int | None]:
        if isinstance(self.sample, dict):
            return {self.sample["embedder"]: vector_size(view, self.target or self.source, self.to_vector)}
        return {}

    def apply(self, ctx):
        what = self.what()
        backend = ctx.backend
        source = collection_behind(backend, self.source)
        target = collection_behind(backend, self.target) if self.target is not None else None
        live = backend.get_collection(target or source)
        spec = live.vectors.get(self.to_vector) if live is not None else None
        if spec is None:
            raise PlanError(f"{what}: the vector {self.to_vector!r} does not exist (any more)")
        if self.method == "truncate":
            transform: Callable = partial(truncate, dims=self.dims)
            result: dict[str, Any] = {"method": "truncate", "dims": self.dims}
            method = {"method": "truncate", "dims": self.dims}
        else:
            learned, how = self.learn(ctx, source, target, spec)
            transform = learned.map
            result = {"method": "linear", "sample": how, **learned.summary(), "map": learned.map.describe()}
            method = {"method": "linear", "map": learned.map.sha256}
        job = TransformJob(source, self.from_vector, self.to_vector, transform, target, self.filter, method)
        worker = Worker(backend)
        stats = ctx.run_job(job, worker, batch_size=self.batch_size, workers=self.workers, partitions=self.partitions)
        skipped = worker.counts["skipped"]
        if skipped:
            ctx.echo(f"  {what}: {skipped} points without {self.from_vector!r} were left as they are")
        clear_map(ctx.state, ctx.checkpoint_key)
        return {**result, "points": stats.resumed_at + stats.points, "skipped": skipped}

    def learn(self, ctx, source: str, target: str | None, spec) -> tuple[Learned, str]:
        """The linear map: the one a previous run of this op saved, or learned now (and checked against ``min_recall``)."""
        what = self.what()
        saved = load_map(ctx.state, ctx.checkpoint_key)
        if saved is not None:
            ctx.echo(f"  {what}: resuming with the map learned before (recall@10 {saved[0].recall:.3f})")
            return saved
        old, new, how = self.sample_pairs(ctx, source, target)
        if len(old) < MIN_SAMPLE:
            more = "raise `sample.size`" if isinstance(self.sample, dict) else "embed one with `sample: {size: N, embedder: NEW, text: TEMPLATE}`"
            raise CheckFailed(f"{what}: the sample has only {len(old)} points ({how}); a linear map needs at least {MIN_SAMPLE}: {more}")
        if spec.size and new.shape[1] != spec.size:
            raise PlanError(f"{what}: the sample's new vectors have {new.shape[1]} dimensions, {self.to_vector!r} has {spec.size}")
        learned = learn_linear_map(old, new, spec.distance)
        ctx.echo(f"  {what}: linear map {old.shape[1]} -> {new.shape[1]} learned on {how}; "
                 f"recall@10 {learned.recall:.3f} (chance {learned.chance:.3f}), cross-validated among {learned.measured} points")
        if len(old) < 10 * old.shape[1]:
            ctx.echo(f"  {what}: note: {len(old)} sample points are few for {old.shape[1]}-d old vectors: least squares is unstable "
                     f"near as many points as dimensions; {10 * old.shape[1]} or more give a steadier map")
        if self.min_recall is not None and learned.recall < self.min_recall:
            raise CheckFailed(f"{what}: recall@10 of the learned linear map is {learned.recall:.3f} (chance {learned.chance:.3f}, "
                              f"cross-validated among {learned.measured} sample points), below min_recall {self.min_recall}: "
                              "nothing was written; re-embed with backfill instead")
        if ctx.state is not None:
            save_map(ctx.state, ctx.checkpoint_key, learned, how)
        return learned, how

    def sample_pairs(self, ctx, source: str, target: str | None) -> tuple[np.ndarray, np.ndarray, str]:
        """(old vectors, new vectors, how they were got) for the sample, drawn uniformly with a fixed seed."""
        import numpy as np

        backend = ctx.backend
        page = backend.scan_page_size
        if isinstance(self.sample, dict):
            from vecmig.embed import load_embedder

            size, name = int(self.sample["size"]), self.sample["embedder"]
            reservoir = Reservoir(size)
            for ids in backend.scan_ids(source, self.filter):
                for point_id in ids:
                    reservoir.offer(point_id)
            points = [p for p in backend.retrieve(source, reservoir.items, with_vectors=read_vectors([self.from_vector])) if has(p, self.from_vector)]
            template = parse_template(self.sample["text"], self.what())
            new = load_embedder(name, ctx.config).embed_documents([template.render(p) for p in points]) if points else np.zeros((0, 0))
            return as_matrix([p.vectors[self.from_vector] for p in points]), np.asarray(new, dtype=np.float32), f"{len(points)} points embedded with {name!r}"
        reservoir = Reservoir(int(self.sample))
        if target is None:
            for points in backend.scroll(source, batch_size=page, with_vectors=read_vectors([self.from_vector, self.to_vector]), filter=self.filter):
                for p in points:
                    if has(p, self.from_vector) and has(p, self.to_vector):
                        reservoir.offer(p)
            pairs = [(p.vectors[self.from_vector], p.vectors[self.to_vector]) for p in reservoir.items]
        else:
            for points in backend.scroll(target, batch_size=page, with_vectors=read_vectors([self.to_vector])):
                for p in points:
                    if has(p, self.to_vector):
                        reservoir.offer(p)
            new_by_id = {p.id: p.vectors[self.to_vector] for p in reservoir.items}
            olds = backend.retrieve(source, list(new_by_id), with_vectors=read_vectors([self.from_vector]))
            pairs = [(p.vectors[self.from_vector], new_by_id[p.id]) for p in olds if has(p, self.from_vector)]
        how = f"{len(pairs)} points that have both vectors"
        return as_matrix([a for a, _ in pairs]), as_matrix([b for _, b in pairs]), how

    def reverse(self, undo):
        return nothing_to_undo(self.what(), self.source, self.to_vector, self.target)

    def reverse_partial(self, checkpoint):
        return self.reverse(None)


def as_matrix(rows: list) -> np.ndarray:
    import numpy as np

    return np.asarray(rows, dtype=np.float32) if rows else np.zeros((0, 0), dtype=np.float32)
