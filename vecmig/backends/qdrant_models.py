"""CollectionSpec, VectorSpec and Point <-> qdrant-client models, with options checked before any request."""

from __future__ import annotations

import uuid
from typing import Any, Dict

from pydantic import TypeAdapter, ValidationError
from qdrant_client import models

from vecmig.errors import BackendError, PlanError
from vecmig.schema import CollectionSpec, Point, SparseVectorSpec, VectorSpec

#: characters Qdrant rejects in collection (and vector) names, as the server and local mode do
INVALID_NAME_CHARS = ("<", ">", ":", '"', "/", "\\", "|", "?", "*", "\0", "\x1f")
DISTANCE = {
    "cosine": models.Distance.COSINE,
    "dot": models.Distance.DOT,
    "euclid": models.Distance.EUCLID,
    "manhattan": models.Distance.MANHATTAN,
}
PAYLOAD_TYPES = tuple(t.value for t in models.PayloadSchemaType)


def validated(type_: Any, value: Any, where: str) -> Any:
    """``value`` as the qdrant model ``type_``, or a PlanError naming the bad option."""
    try:
        return TypeAdapter(type_).validate_python(value)
    except ValidationError as e:
        errors = e.errors()
        best = next((x for x in errors if x["type"] not in ("missing", "extra_forbidden", "union_tag_invalid")), errors[0])
        loc = ".".join(str(p) for p in best["loc"] if not (isinstance(p, str) and p[:1].isupper()))
        at = f"{where}.{loc}" if loc else where
        raise PlanError(f"{at}: {best['msg']} (got {best.get('input')!r})") from None


VECTOR_OPTIONS = {
    "hnsw_config": models.HnswConfigDiff,
    "quantization_config": models.QuantizationConfig,
    "datatype": models.Datatype,
    "memory": models.Memory,
}
SPARSE_INDEX_FIELDS = tuple(models.SparseIndexParams.model_fields)
CREATE_OPTIONS = {k: f.annotation for k, f in models.CreateCollection.model_fields.items() if k not in ("vectors", "sparse_vectors")}
PARAMS_DIFF_FIELDS = tuple(models.CollectionParamsDiff.model_fields)
UPDATE_OPTIONS = {
    "hnsw_config": models.HnswConfigDiff,
    "optimizers_config": models.OptimizersConfigDiff,
    "quantization_config": models.QuantizationConfigDiff,
    "collection_params": models.CollectionParamsDiff,
    "vectors_config": Dict[str, models.VectorParamsDiff],
    "sparse_vectors_config": Dict[str, models.SparseVectorParams],
    "strict_mode_config": models.StrictModeConfig,
    "metadata": Dict[str, Any],
}
UPDATE_ALIASES = {"params": "collection_params", "vectors": "vectors_config", "sparse_vectors": "sparse_vectors_config"}


def unknown_option(where: str, key: str, known) -> PlanError:
    return PlanError(f"{where}: unknown Qdrant option {key!r}: known options are {', '.join(sorted(known))}")


def vector_params(spec: VectorSpec, where: str) -> models.VectorParams:
    distance = DISTANCE.get(str(spec.distance).lower())
    if distance is None:
        raise PlanError(f"{where}: distance {spec.distance!r} is not one of {', '.join(DISTANCE)}")
    extra = {}
    for key, value in spec.options.items():
        if key not in VECTOR_OPTIONS:
            raise unknown_option(where, key, [*VECTOR_OPTIONS, "size", "distance", "multivector", "on_disk"])
        if value is not None:
            extra[key] = validated(VECTOR_OPTIONS[key], value, f"{where}: {key}")
    multi = models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM) if spec.multivector else None
    return models.VectorParams(size=spec.size, distance=distance, on_disk=spec.on_disk, multivector_config=multi, **extra)


def sparse_params(spec: SparseVectorSpec, where: str) -> models.SparseVectorParams:
    """Sparse options are the index's: ``on_disk``, ``full_scan_threshold``, ... (or nested under ``index``)."""
    index = dict(spec.options.get("index") or {})
    for key, value in spec.options.items():
        if key == "index":
            continue
        if key not in SPARSE_INDEX_FIELDS:
            raise unknown_option(where, key, [*SPARSE_INDEX_FIELDS, "index", "modifier"])
        index[key] = value
    if spec.modifier not in (None, "idf"):
        raise PlanError(f"{where}: modifier {spec.modifier!r} is not supported by Qdrant: use idf or leave it out")
    return models.SparseVectorParams(
        index=validated(models.SparseIndexParams, index, f"{where}: index") if index else None,
        modifier=models.Modifier.IDF if spec.modifier == "idf" else None,
    )


def collection_arguments(spec: CollectionSpec) -> dict[str, Any]:
    """``create_collection`` keyword arguments for ``spec``, or a PlanError saying what is wrong in it."""
    for name in spec.vector_names():
        bad = next((c for c in INVALID_NAME_CHARS if c in name), None)
        if bad is not None or len(name.encode()) > 200 or name in (".", ".."):
            raise PlanError(f"vector name {name!r} is not allowed by Qdrant (at most 200 bytes, none of {''.join(INVALID_NAME_CHARS[:9])})")
    if "" in spec.sparse_vectors:
        raise PlanError("a sparse vector needs a name: '' is the unnamed dense vector")
    dense = {n: vector_params(v, f"vector {n!r}") for n, v in spec.vectors.items()}
    if "" in dense and len(dense) > 1:
        raise PlanError("the unnamed vector '' can't be mixed with named vectors on Qdrant: name it")
    sparse = {n: sparse_params(s, f"sparse vector {n!r}") for n, s in spec.sparse_vectors.items()}
    for field, type_ in spec.payload_indexes.items():
        payload_type(type_, f"payload index {field!r}")
    return {
        "vectors_config": dense[""] if "" in dense else dense,
        "sparse_vectors_config": sparse or None,
        **collection_options(spec.options, "options"),
    }


def collection_options(options: dict[str, Any], where: str) -> dict[str, Any]:
    """``create_collection`` keyword arguments from a spec's ``options``."""
    out = {}
    for key, value in options.items():
        if key not in CREATE_OPTIONS:
            raise unknown_option(where, key, CREATE_OPTIONS)
        out[key] = validated(CREATE_OPTIONS[key], value, f"{where}.{key}")
    return out


def update_options(options: dict[str, Any], where: str) -> dict[str, Any]:
    """``update_collection`` keyword arguments; collection params may also be given at the top level."""
    out: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for key, value in options.items():
        key = UPDATE_ALIASES.get(key, key)
        if key in PARAMS_DIFF_FIELDS:
            params[key] = value
        elif key == "collection_params":
            params.update(value or {})
        elif key in UPDATE_OPTIONS:
            out[key] = validated(UPDATE_OPTIONS[key], value, f"{where}: {key}")
        else:
            raise unknown_option(where, key, [*UPDATE_OPTIONS, *UPDATE_ALIASES, *PARAMS_DIFF_FIELDS])
    if params:
        out["collection_params"] = validated(models.CollectionParamsDiff, params, f"{where}: collection_params")
    return out


def payload_type(type_: str, where: str) -> models.PayloadSchemaType:
    try:
        return models.PayloadSchemaType(str(type_).lower())
    except ValueError:
        raise PlanError(f"{where}: payload index type {type_!r} is not one of {', '.join(PAYLOAD_TYPES)}") from None


def dumped(model) -> Any:
    return model.model_dump(mode="json", exclude_none=True) if hasattr(model, "model_dump") else getattr(model, "value", model)


def spec_from_info(name: str, info: models.CollectionInfo) -> CollectionSpec:
    params = info.config.params
    dense = {"": params.vectors} if isinstance(params.vectors, models.VectorParams) else dict(params.vectors or {})
    vectors = {}
    for vname, vp in dense.items():
        options = {k: dumped(getattr(vp, k)) for k in VECTOR_OPTIONS if getattr(vp, k, None) is not None}
        vectors[vname] = VectorSpec(
            size=vp.size, distance=vp.distance.value.lower(), multivector=vp.multivector_config is not None,
            on_disk=vp.on_disk, options=options,
        )
    sparse = {}
    for sname, sp in (params.sparse_vectors or {}).items():
        modifier = "idf" if sp.modifier == models.Modifier.IDF else None
        sparse[sname] = SparseVectorSpec(modifier=modifier, options=dumped(sp.index) if sp.index else {})
    indexes = {field: dumped(schema.data_type) for field, schema in (info.payload_schema or {}).items()}
    return CollectionSpec(name=name, vectors=vectors, sparse_vectors=sparse, payload_indexes=indexes)


# ---------------------------------------------------------------------------------------------------
# Point <-> qdrant models


def point_id(value: int | str) -> int | str:
    """Qdrant ids are unsigned integers or UUIDs (returned in canonical form)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, (str, uuid.UUID)):
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            pass
    raise BackendError(f"point id {value!r} is neither an unsigned integer nor a UUID: Qdrant takes only those")


def vector_value(value: Any) -> Any:
    """A vector as qdrant models take it: dense list, multivector (list of lists) or SparseVector."""
    if isinstance(value, dict):
        return models.SparseVector(indices=[int(i) for i in value["indices"]], values=[float(v) for v in value["values"]])
    if isinstance(value, models.SparseVector):
        return value
    if hasattr(value, "tolist"):
        value = value.tolist()
    if type(value) is list and value and type(value[0]) is float:  # as read from a store: as it is
        return value
    if value and (isinstance(value[0], (list, tuple)) or getattr(value[0], "ndim", 0) >= 1):
        return [[float(x) for x in row] for row in value]
    return [float(x) for x in value]


def vector_struct(point: Point) -> Any:
    """A point's vectors as Qdrant takes them: the bare unnamed vector, or a dict by name."""
    vectors = {name: vector_value(v) for name, v in point.vectors.items()}
    return vectors[""] if set(vectors) == {""} else vectors


def point_struct(point: Point) -> models.PointStruct:
    return models.PointStruct(id=point_id(point.id), vector=vector_struct(point), payload=point.payload or {})


FILTER_CLAUSES = ("must", "should", "must_not")
#: a condition's kind by the key that identifies it
CONDITIONS = {
    "key": models.FieldCondition,
    "has_id": models.HasIdCondition,
    "has_vector": models.HasVectorCondition,
    "is_empty": models.IsEmptyCondition,
    "is_null": models.IsNullCondition,
    "nested": models.NestedCondition,
}
FIELD_TESTS = tuple(k for k in models.FieldCondition.model_fields if k != "key")


def qdrant_filter(filter: dict | None, where: str = "filter") -> models.Filter | None:
    """vecmig's neutral filter (Qdrant's filter JSON) as a qdrant ``Filter``; None for no filter.

    PlanError when it is not a valid Qdrant filter, naming the bad part.
    """
    if not filter:
        return None
    if isinstance(filter, models.Filter):
        return filter
    check_filter_shape(filter, where)
    return validated(models.Filter, filter, where)


def check_filter_shape(spec: Any, where: str) -> None:
    """Walk the filter clause by clause, checking each condition against its own model, so that a
    mistake is reported where it is (pydantic alone would report the union of every condition type)."""
    if not isinstance(spec, dict):
        raise PlanError(f"{where}: a filter is a mapping like {{must: [{{key: category, match: {{value: books}}}}]}}, not {type(spec).__name__}")
    unknown = sorted(set(spec) - {*FILTER_CLAUSES, "min_should"})
    if unknown:
        raise PlanError(f"{where}: unknown key {unknown[0]!r}: a filter has must, should, must_not and min_should")
    for clause in FILTER_CLAUSES:
        items = spec.get(clause)
        if items is None:
            continue
        for i, cond in enumerate(items if isinstance(items, list) else [items]):
            at = f"{where}.{clause}[{i}]"
            if not isinstance(cond, dict):
                raise PlanError(f"{at}: a condition is a mapping like {{key: category, match: {{value: books}}}}, not {cond!r}")
            if set(cond) & {*FILTER_CLAUSES, "min_should"}:
                check_filter_shape(cond, at)
                continue
            kind = next((k for k in CONDITIONS if k in cond), None)
            if kind is None:
                raise PlanError(f"{at}: unknown condition {', '.join(map(repr, cond)) or '{}'}: use key (with match, range, ...), has_id, has_vector, is_empty, is_null or nested")
            validated(CONDITIONS[kind], cond, at)
            if kind == "key" and all(cond.get(k) is None for k in FIELD_TESTS):
                raise PlanError(f"{at}: key {cond['key']!r} needs a test: one of {', '.join(FIELD_TESTS)}")


def vector_out(value: Any) -> Any:
    if isinstance(value, models.SparseVector):
        return {"indices": list(value.indices), "values": list(value.values)}
    return value


def cursor_offset(offset: Any) -> int | str:
    """A scroll offset as JSON: integer ids stay integers, UUIDs become their canonical text."""
    return offset if isinstance(offset, int) else str(offset)


def to_point(record: models.Record) -> Point:
    raw = record.vector
    vectors = {} if raw is None else ({"": raw} if isinstance(raw, list) else {k: vector_out(v) for k, v in raw.items()})
    return Point(id=record.id, payload=dict(record.payload or {}), vectors=vectors)
