"""Translate vecmig's ``CollectionSpec`` to Weaviate collection settings and back.

Names: Weaviate class (collection) and alias names match ``^[A-Z][_0-9A-Za-z]*$``. Weaviate would
upper-case a first letter silently; vecmig requires it spelled out so that revision files say what
the store holds. Names are unique regardless of case (``Products`` blocks ``PRODUCTS``).

Vectors are always *named* and self-provided (no vectorizer module). Weaviate keeps no dimension
in its schema, so vecmig records the declared size (and the embedder) inside the vector's own
settings, ``vectorizer: {"none": {"vecmigSize": 384, "vecmigEmbedder": "minilm"}}``, which Weaviate
stores verbatim. A vector without that record (a collection vecmig did not create) reports the
dimension of a stored vector, or 0 ("unknown until data") when the collection is empty.

Properties take Weaviate's data types (``text``, ``int``, ``number``, ``boolean``, ``date``,
``uuid``, ``geoCoordinates``, ``phoneNumber``, ``blob``, and ``[]`` arrays of the scalar ones) plus
``keyword`` (= ``text`` with ``field`` tokenization: exact match). ``string``, ``integer``,
``float``, ``bool``, ``datetime`` and ``geo`` are accepted as spellings of those. Reading back gives
the Weaviate names.

Payload indexes: Weaviate makes every property filterable by default and can't add a filter index to
an existing property (1.38 can only as a reindex task, with distributed tasks enabled on the server),
so a dropped one can't be counted on to come back. A payload index is vecmig's *record* that
a property is meant to be filtered on, kept as a marker in the property's description
(``vecmig:index=keyword``; descriptions are the one mutable part of a property), over Weaviate's
filter index. A property created for an index gets ``indexFilterable`` (and ``indexRangeFilters``
for ``integer``/``float``/``datetime``); ``create_payload_index`` on an existing, filterable
property only records the index; ``drop_payload_index`` only forgets it and leaves Weaviate's index
in place (dropping it could never be undone). ``keyword`` and ``text`` indexes both fit a
``text``/``keyword`` property: the property's tokenization decides how it matches.

Options are the keyword arguments of weaviate-client's factories (string values are converted to
the client's enums), so Weaviate's Python documentation describes every setting:

collection ``options``       ``description`` (text), ``inverted_index_config``
                             (``Configure.inverted_index``), ``replication_config``
                             (``Configure.replication``), ``multi_tenancy_config``
                             (``Configure.multi_tenancy``), ``sharding_config`` (``Configure.sharding``)
vector options               ``index_type`` (hnsw | flat | dynamic; dynamic needs ASYNC_INDEXING on
                             the server), ``vector_index_config`` (``Configure.VectorIndex.<index_type>``),
                             ``hnsw_config`` (Qdrant's ``m``, ``ef_construct``, ``full_scan_threshold``),
                             ``quantization_config`` (``{pq|bq|sq|rq: {...}}``,
                             ``Configure.VectorIndex.Quantizer.<kind>``), ``datatype`` (float32 only)
``update_collection``        ``description``, ``inverted_index_config`` (``Reconfigure.inverted_index``),
                             ``replication_config`` (``Reconfigure.replication``),
                             ``multi_tenancy_config`` (``Reconfigure.multi_tenancy``),
                             ``vectors: {NAME: {...}}`` (``Reconfigure.VectorIndex.<index type>``, plus
                             ``quantization_config``)
"""

from __future__ import annotations

import enum
import inspect
import re
import typing
from typing import Any, Callable

from vecmig.schema import CollectionSpec, VectorSpec

NAME_RE = re.compile(r"^[A-Z][_0-9A-Za-z]{0,254}$")
VECTOR_NAME_RE = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,229}$")
PROPERTY_NAME_RE = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,230}$")
RESERVED_PROPERTIES = {"_additional", "_id", "id"}

#: the settings key under which vecmig keeps what Weaviate's schema does not hold
SIZE_KEY, EMBEDDER_KEY = "vecmigSize", "vecmigEmbedder"

DISTANCES = {"cosine": "cosine", "dot": "dot", "euclid": "l2-squared", "manhattan": "manhattan"}
DISTANCE_NAMES = {v: k for k, v in DISTANCES.items()}

SCALAR_TYPES = ("text", "keyword", "int", "number", "boolean", "date", "uuid")
OTHER_TYPES = ("geoCoordinates", "phoneNumber", "blob")
TYPE_SPELLINGS = {"string": "text", "integer": "int", "float": "number", "bool": "boolean", "datetime": "date", "geo": "geoCoordinates"}

#: payload index type -> (property type it implies, range index)
INDEX_TYPES = {
    "keyword": ("keyword", False),
    "text": ("text", False),
    "integer": ("int", True),
    "float": ("number", True),
    "datetime": ("date", True),
    "bool": ("boolean", False),
    "uuid": ("uuid", False),
    "geo": ("geoCoordinates", False),
}
INDEX_MARK = re.compile(r"\s*\[?vecmig:index=(\w+)\]?")

VECTOR_OPTIONS = ("index_type", "vector_index_config", "hnsw_config", "quantization_config", "datatype")
COLLECTION_OPTIONS = ("description", "inverted_index_config", "replication_config", "multi_tenancy_config", "sharding_config")
UPDATE_OPTIONS = ("description", "inverted_index_config", "replication_config", "multi_tenancy_config", "vectors")
INDEX_KINDS = ("hnsw", "flat", "dynamic")
QUANTIZERS = ("pq", "bq", "sq", "rq")
QDRANT_HNSW = {"m": "max_connections", "ef_construct": "ef_construction", "full_scan_threshold": "flat_search_cutoff"}


class SpecError(ValueError):
    """A spec or option Weaviate can't take; the message says what to write instead."""


# names


def suggest_name(name: str) -> str:
    cleaned = re.sub(r"[^_0-9A-Za-z]", "_", name).lstrip("_0123456789") or "Collection"
    return cleaned[0].upper() + cleaned[1:]


def invalid_name(name: str, what: str = "collection") -> str | None:
    """None when ``name`` is a valid Weaviate collection (or alias) name, else why and what to use."""
    if not isinstance(name, str) or not name:
        return f"a Weaviate {what} name can't be empty"
    if NAME_RE.match(name):
        return None
    if len(name) > 255:
        return f"Weaviate {what} names are at most 255 characters ({name[:20]!r}… has {len(name)})"
    if not name[0].isupper() or not name[0].isascii():
        return f"Weaviate {what} names must start with an upper-case letter: use {suggest_name(name)!r}"
    return f"Weaviate {what} names may contain only letters, digits and '_': use {suggest_name(name)!r}"


def invalid_vector_name(name: str) -> str | None:
    if name and VECTOR_NAME_RE.match(name):
        return None
    return f"Weaviate vector names must match [_A-Za-z][_0-9A-Za-z]* (at most 230 characters): {name!r} doesn't"


def invalid_property_name(name: str) -> str | None:
    if name in RESERVED_PROPERTIES:
        return f"{name!r} is reserved by Weaviate: rename the field (e.g. {name.strip('_') + '_'!r})"
    if PROPERTY_NAME_RE.match(name):
        return None
    return f"Weaviate property names must match [_A-Za-z][_0-9A-Za-z]*: {name!r} doesn't"


# property types


def canonical_type(declared: str) -> str:
    """The canonical spelling of a declared property type; SpecError when Weaviate has no such type."""
    base, array = (declared[:-2], True) if declared.endswith("[]") else (declared, False)
    base = TYPE_SPELLINGS.get(base, base)
    if base in SCALAR_TYPES:
        return base + ("[]" if array else "")
    if base in OTHER_TYPES and not array:
        return base
    if base == "object":
        raise SpecError("object properties can't be declared here: leave them out and Weaviate creates them (with their nested fields) on the first write")
    known = ", ".join([*SCALAR_TYPES, *(t + "[]" for t in SCALAR_TYPES), *OTHER_TYPES])
    raise SpecError(f"unknown property type {declared!r}: use one of {known}")


def read_type(data_type: str, tokenization: str | None) -> str:
    """Canonical type of a live property from Weaviate's data type and tokenization."""
    base, suffix = (data_type[:-2], "[]") if data_type.endswith("[]") else (data_type, "")
    if base == "text" and tokenization == "field":
        base = "keyword"
    return base + suffix


# checks without the client


def check_spec(spec: CollectionSpec) -> None:
    """Raise SpecError for anything in ``spec`` Weaviate can't hold (before any request)."""
    if spec.sparse_vectors:
        raise SpecError(f"sparse vector {next(iter(spec.sparse_vectors))!r}: Weaviate has no sparse vectors; its built-in BM25 keyword search over text properties (hybrid queries) takes their place: drop sparse_vectors and declare the text as properties")
    for name, vec in spec.vectors.items():
        check_vector(name, vec)
    types = {}
    for prop, declared in spec.properties.items():
        problem = invalid_property_name(prop)
        if problem:
            raise SpecError(f"property {prop!r}: {problem}")
        try:
            types[prop] = canonical_type(declared)
        except SpecError as e:
            raise SpecError(f"property {prop!r}: {e}") from None
    for prop, index_type in spec.payload_indexes.items():
        problem = invalid_property_name(prop)
        if problem:
            raise SpecError(f"payload index {prop!r}: {problem}")
        check_index(prop, index_type, types.get(prop))
    unknown = sorted(set(spec.options) - set(COLLECTION_OPTIONS))
    if unknown:
        raise SpecError(f"unknown Weaviate collection option {unknown[0]!r}: known options are {', '.join(COLLECTION_OPTIONS)}")


def check_vector(name: str, vec: VectorSpec) -> None:
    problem = invalid_vector_name(name)
    if problem:
        raise SpecError(problem)
    if vec.distance not in DISTANCES:
        raise SpecError(f"vector {name!r}: distance {vec.distance!r} is not one of {', '.join(DISTANCES)}")
    if vec.on_disk:
        raise SpecError(f"vector {name!r}: Weaviate has no on_disk setting for vectors: leave it out, or use `index_type: flat` (disk-based) or a quantizer to save memory")
    unknown = sorted(set(vec.options) - set(VECTOR_OPTIONS))
    if unknown:
        raise SpecError(f"vector {name!r}: unknown Weaviate vector option {unknown[0]!r}: known options are {', '.join(VECTOR_OPTIONS)}")
    index_type = vec.options.get("index_type", "hnsw")
    if index_type not in INDEX_KINDS:
        raise SpecError(f"vector {name!r}: index_type {index_type!r} is not one of {', '.join(INDEX_KINDS)}")
    if vec.multivector and index_type != "hnsw":
        raise SpecError(f"vector {name!r}: Weaviate multivectors need index_type hnsw")
    if vec.options.get("datatype") not in (None, "float32", "float"):
        raise SpecError(f"vector {name!r}: Weaviate stores float32 vectors only: drop `datatype` (or use a quantizer: quantization_config)")
    quant = vec.options.get("quantization_config")
    if quant is not None and (not isinstance(quant, dict) or len(quant) != 1 or next(iter(quant)) not in QUANTIZERS):
        raise SpecError(f"vector {name!r}: quantization_config must name one Weaviate quantizer: {{pq|bq|sq|rq: {{...settings}}}}")


def check_index(prop: str, index_type: str, declared: str | None) -> None:
    if index_type not in INDEX_TYPES:
        raise SpecError(f"payload index {prop!r}: type {index_type!r} is not one of {', '.join(INDEX_TYPES)}")
    implied = INDEX_TYPES[index_type][0]
    base = None if declared is None else declared.removesuffix("[]")
    textual = {"text", "keyword"}
    if base is not None and base != implied and not (base in textual and implied in textual):
        raise SpecError(f"payload index {prop!r}: an index of type {index_type} needs a property of type {implied}; it is declared {declared}: change one of them")


def index_mark(description: str | None) -> str | None:
    """The payload index type recorded in a property description, if any."""
    m = INDEX_MARK.search(description or "")
    return m.group(1) if m and m.group(1) in INDEX_TYPES else None


def with_index_mark(description: str | None, index_type: str | None) -> str:
    """``description`` with the payload index marker set to ``index_type`` (None: removed)."""
    text = INDEX_MARK.sub("", description or "").strip()
    if index_type is None:
        return text
    return f"{text} [vecmig:index={index_type}]" if text else f"vecmig:index={index_type}"


# building client objects


def _enum_types(annotation: Any) -> list[type[enum.Enum]]:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [annotation]
    return [t for arg in typing.get_args(annotation) for t in _enum_types(arg)]


def call_factory(factory: Callable, settings: dict[str, Any] | None, what: str, **fixed: Any) -> Any:
    """``factory(**settings, **fixed)`` with unknown keys reported and strings turned into the enums
    the client wants (``deletion_strategy: TimeBasedResolution``)."""
    if settings is not None and not isinstance(settings, dict):
        raise SpecError(f"{what}: expected a mapping of settings, got {type(settings).__name__}")
    settings = dict(settings or {})
    try:
        hints = typing.get_type_hints(factory)
    except Exception:  # unresolved forward references: no enum conversion
        hints = {}
    params = [n for n, p in inspect.signature(factory).parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in fixed]
    unknown = sorted(set(settings) - set(params))
    if unknown:
        raise SpecError(f"{what}: unknown setting {unknown[0]!r}: known settings are {', '.join(params)}")
    for key, value in list(settings.items()):
        if isinstance(value, str):
            for enum_type in _enum_types(hints.get(key)):
                converted = _to_enum(enum_type, value)
                if converted is not None:
                    settings[key] = converted
                    break
    try:
        return factory(**settings, **fixed)
    except Exception as e:  # pydantic ValidationError, ValueError, TypeError from the client
        first = str(e).strip().splitlines()
        raise SpecError(f"{what}: {first[0] if first else type(e).__name__}{(': ' + first[-1].strip()) if len(first) > 1 else ''}") from None


def _to_enum(enum_type: type[enum.Enum], value: str) -> enum.Enum | None:
    for member in enum_type:
        if value in (member.value, member.name) or value.lower() == str(member.value).lower():
            return member
    return None


def vector_config(wvc, name: str, vec: VectorSpec):
    """The weaviate-client vector config that creates (or adds) vector ``name`` as ``vec`` says."""
    check_vector(name, vec)
    Configure = wvc.config.Configure
    opts = vec.options
    index_type = opts.get("index_type", "hnsw")
    settings = dict(opts.get("vector_index_config") or {})
    for key, value in (opts.get("hnsw_config") or {}).items():
        settings[QDRANT_HNSW.get(key, key)] = value
    settings["distance_metric"] = DISTANCES[vec.distance]
    what = f"vector {name!r}"
    quantizer = None
    if opts.get("quantization_config"):
        kind, qsettings = next(iter(opts["quantization_config"].items()))
        quantizer = call_factory(getattr(Configure.VectorIndex.Quantizer, kind), qsettings, f"{what} quantization_config.{kind}")
    factory = getattr(Configure.VectorIndex, index_type)
    index = call_factory(factory, settings, f"{what} vector_index_config")
    meta = {SIZE_KEY: vec.size} if vec.size else {}
    if vec.embedder:
        meta[EMBEDDER_KEY] = vec.embedder
    # a self-provided vector ("none" vectorizer) that carries vecmig's settings
    single = Configure.Vectors.custom(name=name, module_name="none", module_config=meta, vector_index_config=index, quantizer=quantizer)
    if not vec.multivector:
        return single
    multi = Configure.MultiVectors.self_provided(name=name, vector_index_config=index, quantizer=quantizer)
    multi.vectorizer = single.vectorizer
    return multi


def property_config(wvc, name: str, declared: str, index_type: str | None):
    """A weaviate-client Property with Weaviate's default indexes, plus the marked payload index."""
    cfg = wvc.config
    canonical = canonical_type(declared)
    base, array = canonical.removesuffix("[]"), canonical.endswith("[]")
    weaviate_base = "text" if base == "keyword" else base
    data_type = cfg.DataType(weaviate_base + ("[]" if array else ""))
    kwargs: dict[str, Any] = {"name": name, "data_type": data_type}
    if weaviate_base == "text":
        kwargs["tokenization"] = cfg.Tokenization.FIELD if base == "keyword" else cfg.Tokenization.WORD
    if index_type is not None:
        kwargs["description"] = with_index_mark(None, index_type)
        kwargs["index_filterable"] = True
        if INDEX_TYPES[index_type][1]:
            kwargs["index_range_filters"] = True
    return cfg.Property(**kwargs)


def properties_config(wvc, spec: CollectionSpec) -> list:
    props = dict(spec.properties)
    for prop, index_type in spec.payload_indexes.items():
        props.setdefault(prop, INDEX_TYPES[index_type][0])
    return [property_config(wvc, p, t, spec.payload_indexes.get(p)) for p, t in props.items()]


def collection_kwargs(wvc, spec: CollectionSpec) -> dict[str, Any]:
    """Keyword arguments of ``client.collections.create`` for ``spec``."""
    check_spec(spec)
    Configure = wvc.config.Configure
    kwargs: dict[str, Any] = {"name": spec.name, "properties": properties_config(wvc, spec)}
    if spec.vectors:
        kwargs["vector_config"] = [vector_config(wvc, n, v) for n, v in spec.vectors.items()]
    else:  # no vectors at all: no vectorizer, no vector index (not the server's default vectorizer)
        kwargs["vectorizer_config"] = Configure.Vectorizer.none()
        kwargs["vector_index_config"] = Configure.VectorIndex.none()
    opts = spec.options
    if "description" in opts:
        kwargs["description"] = str(opts["description"])
    for key, factory in (("inverted_index_config", Configure.inverted_index), ("replication_config", Configure.replication),
                         ("multi_tenancy_config", Configure.multi_tenancy), ("sharding_config", Configure.sharding)):
        if key in opts:
            kwargs[key] = call_factory(factory, opts[key], f"option {key}")
    return kwargs


def update_kwargs(wvc, live_vectors: dict[str, str], options: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``collection.config.update`` for ``update_collection`` options.

    ``live_vectors`` maps each vector name to its index type (hnsw/flat/dynamic).
    """
    Reconfigure = wvc.config.Reconfigure
    unknown = sorted(set(options) - set(UPDATE_OPTIONS))
    if unknown:
        raise SpecError(f"unknown or immutable Weaviate setting {unknown[0]!r}: update_collection can change {', '.join(UPDATE_OPTIONS)}; anything else needs a new collection (create_collection + copy + repoint_alias)")
    kwargs: dict[str, Any] = {}
    if "description" in options:
        kwargs["description"] = str(options["description"])
    for key, factory in (("inverted_index_config", Reconfigure.inverted_index), ("replication_config", Reconfigure.replication),
                         ("multi_tenancy_config", Reconfigure.multi_tenancy)):
        if key in options:
            kwargs[key] = call_factory(factory, options[key], f"option {key}")
    updates = []
    for name, settings in (options.get("vectors") or {}).items():
        if name not in live_vectors:
            raise SpecError(f"option vectors: the collection has no vector {name!r} (it has {', '.join(map(repr, live_vectors)) or 'none'})")
        settings = dict(settings or {})
        quant = settings.pop("quantization_config", None)
        factory = getattr(Reconfigure.VectorIndex, live_vectors[name])
        fixed = {}
        if quant:
            if not isinstance(quant, dict) or len(quant) != 1 or next(iter(quant)) not in QUANTIZERS:
                raise SpecError(f"option vectors.{name}.quantization_config must name one quantizer: {{pq|bq|sq|rq: {{...}}}}")
            kind, qsettings = next(iter(quant.items()))
            fixed["quantizer"] = call_factory(getattr(Reconfigure.VectorIndex.Quantizer, kind), qsettings, f"option vectors.{name}.quantization_config.{kind}")
        index = call_factory(factory, settings, f"option vectors.{name}", **fixed)
        updates.append(Reconfigure.Vectors.update(name=name, vector_index_config=index))
    if updates:
        kwargs["vector_config"] = updates
    return kwargs


# reading back


def spec_from_config(cfg, observed_sizes: dict[str, int]) -> CollectionSpec:
    """A CollectionSpec from weaviate-client's ``CollectionConfig`` (``collection.config.get()``)."""
    vectors: dict[str, VectorSpec] = {}
    for name, named in (cfg.vector_config or {}).items():
        index = named.vector_index_config
        if getattr(index, "skip", False):
            continue
        vectors[name] = _vector_spec(named.vectorizer.model or {}, index, observed_sizes.get(name, 0))
    legacy = cfg.vector_index_config
    if legacy is not None and not getattr(legacy, "skip", False):
        vectors[""] = _vector_spec({}, legacy, observed_sizes.get("", 0))
    properties, indexes = {}, {}
    for prop in cfg.properties:
        data_type = _value(prop.data_type)
        typ = read_type(data_type, _value(prop.tokenization) if prop.tokenization else None)
        properties[prop.name] = typ
        marked = index_mark(prop.description)
        if marked:
            indexes[prop.name] = marked
    options: dict[str, Any] = {}
    if cfg.description:
        options["description"] = cfg.description
    if cfg.multi_tenancy_config and cfg.multi_tenancy_config.enabled:
        options["multi_tenancy_config"] = {"enabled": True}
    if cfg.replication_config and cfg.replication_config.factor not in (None, 1):
        options["replication_config"] = {"factor": cfg.replication_config.factor}
    return CollectionSpec(name=cfg.name, vectors=vectors, payload_indexes=indexes, properties=properties, options=options)


def _vector_spec(meta: dict, index, observed: int) -> VectorSpec:
    distance = _value(getattr(index, "distance_metric", "cosine"))
    options: dict[str, Any] = {}
    index_type = index.vector_index_type() if hasattr(index, "vector_index_type") else "hnsw"
    if index_type != "hnsw":
        options["index_type"] = index_type
    return VectorSpec(
        size=int(meta.get(SIZE_KEY) or observed or 0),
        distance=DISTANCE_NAMES.get(distance, distance),
        multivector=getattr(index, "multi_vector", None) is not None,
        embedder=meta.get(EMBEDDER_KEY),
        options=options,
    )


def index_types(cfg) -> dict[str, str]:
    """Vector name -> index type (hnsw/flat/dynamic) of a live collection config."""
    out = {}
    for name, named in (cfg.vector_config or {}).items():
        index = named.vector_index_config
        out[name] = index.vector_index_type() if hasattr(index, "vector_index_type") else "hnsw"
    return out


def _value(x: Any) -> str:
    return x.value if isinstance(x, enum.Enum) else str(x)
