"""The Weaviate backend: vecmig's ``Backend`` protocol over weaviate-client v4.

URLs: ``weaviate://HOST[:8080][?grpc_port=50051]`` (plain HTTP; ``weaviate+http://`` is the same)
and ``weaviate+https://HOST[:443][?grpc_port=443&grpc_host=H]`` with ``api_key`` from the config.
On Weaviate Cloud hosts (``*.weaviate.cloud``/``*.weaviate.network``) gRPC defaults to the
``grpc-HOST`` endpoint, elsewhere to HOST itself.

Schema translation (names, types, vector sizes, options) lives in ``weaviate_schema``, point
translation (ids, payloads, vectors) in ``weaviate_points``, the state collection in
``weaviate_records``. Only these modules touch the client, and import it only when used.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
import warnings
from typing import Any, Iterator

from vecmig.backends.base import Backend, Cursor, Filter, Hit, RecordStore
from vecmig.backends.weaviate_filters import FilterError, weaviate_filter
from vecmig.backends.weaviate_points import (
    VectorShapes, as_list, from_uuid, has_vector, payload_in, point_from_object, score, to_uuid, vectors_in,
)
from vecmig.backends.weaviate_schema import (
    SpecError,
    check_index,
    check_spec,
    check_vector,
    collection_kwargs,
    index_mark,
    index_types,
    invalid_name,
    invalid_property_name,
    INDEX_TYPES,
    property_config,
    read_type,
    spec_from_config,
    update_kwargs,
    vector_config,
    with_index_mark,
)
from vecmig.errors import BackendError, ConfigError
from vecmig.schema import CollectionSpec, Point, SparseVectorSpec, VectorSpec

ALIAS_STRATEGY = "create a new collection with the vector, fill it, and repoint an alias: create_collection + backfill + repoint_alias"
DROP_STRATEGY = "create a new collection without the vector, copy the points into it, and repoint an alias: create_collection + copy + repoint_alias"
#: points per gRPC batch request, and ids per delete/retrieve request
BATCH_SIZE = 200
#: gRPC batch requests one write sends at once (each of the pipeline's workers writes its own)
BATCH_CONCURRENCY = 2
#: seconds between the tries of the objects a batch did not write (None: report them, by id)
OBJECT_RETRY_PAUSES = (0.1, 0.5, None)
#: failed ids named in the error (all of them are on its ``failed``)
FAILED_SHOWN = 5
IDS_PER_REQUEST = 1000
#: seconds between the tries of a write Weaviate refused for a moment (None: the last try): while it
#: updates a collection's vector indexes (adding a named vector does) its shards are read-only, and
#: an object written at the same moment as a batch delete can fail that delete
WRITE_RETRY_PAUSES = (0.05, 0.2, 0.5, 1.0, 2.0, 4.0, None)
#: objects per cursor page in long scans (Weaviate's cursor pages are cheap: moderate pages suffice)
SCAN_PAGE = 500
#: ids per page of an id-only scan (Weaviate answers at most 10,000 objects a query by default)
ID_PAGE = 5_000
MIN_VERSION = {"aliases": (1, 32, 0), "add_vector": (1, 31, 0), "multivectors": (1, 29, 0)}
_CLOUD_SUFFIXES = (".weaviate.cloud", ".weaviate.network")
#: Weaviate's "no such collection": `... class does not exist` (1.35), `target class "X" does not exist` (1.38 aliases)
_MISSING_CLASS = re.compile(r'\bclass (?:"[^"]*" )?does not exist')
_LIB: tuple | None = None


def client_library():
    """``(weaviate, weaviate.classes)``, imported on first use with the client's deprecation noise off."""
    global _LIB
    if _LIB is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.suppress(ImportError):
                import authlib.deprecate  # noqa: F401 - its import turns its own warnings back on
            warnings.simplefilter("ignore")
            import weaviate
            import weaviate.classes as wvc
        for module in ("weaviate", "authlib"):
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=module + r"(\.|$)")
        _LIB = (weaviate, wvc)
    return _LIB


# errors


def error_text(e: BaseException) -> str:
    """Weaviate's own message(s) from a client exception, on one line."""
    body = getattr(e, "error", None)
    if isinstance(body, dict) and isinstance(body.get("error"), list):
        messages = [m.get("message", "") for m in body["error"] if isinstance(m, dict)]
        if any(messages):
            return "; ".join(m for m in messages if m)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    if isinstance(body, str) and body:
        return body
    details = getattr(e, "details", None)  # grpc.RpcError
    if callable(details):
        with contextlib.suppress(Exception):
            text = details()
            if text:
                return " ".join(str(text).split())
    return " ".join((getattr(e, "message", None) or str(e) or type(e).__name__).split())


def _status(e: BaseException) -> int | None:
    with contextlib.suppress(Exception):
        return int(getattr(e, "status_code"))
    return None


class WeaviateBackend(Backend):
    """A connected Weaviate server (REST for the schema, gRPC for points)."""

    kind = "weaviate"
    default_state_collection = "VecmigState"
    scan_page_size = SCAN_PAGE
    id_page_size = ID_PAGE

    def __init__(self, client, url, grpc_port: int, *, api_key: str | None = None):
        self.client = client
        self.url = url
        self.grpc_port = grpc_port
        self._secret = api_key
        self._version: tuple[int, int, int] | None = None
        self._shapes: dict[str, VectorShapes] = {}

    # connection

    @classmethod
    def connect(cls, url, cfg) -> "WeaviateBackend":
        weaviate, wvc = client_library()
        https = url.https
        query = dict(url.query)
        try:
            grpc_port = int(query.pop("grpc_port", 443 if https else 50051))
        except ValueError:
            raise ConfigError(f"url {url}: grpc_port must be a number: weaviate://HOST:8080?grpc_port=50051") from None
        grpc_host = query.pop("grpc_host", None) or (f"grpc-{url.host}" if https and url.host.endswith(_CLOUD_SUFFIXES) and not url.host.startswith("grpc-") else url.host)
        if query:
            raise ConfigError(f"url {url}: unknown parameter {sorted(query)[0]!r}: Weaviate urls take grpc_port and grpc_host")
        if url.path not in ("", "/"):
            raise ConfigError(f"url {url}{url.path}: Weaviate urls have no path: write {url.scheme}://HOST:PORT")
        api_key = getattr(cfg, "api_key", None)
        port = url.port or (443 if https else 8080)
        try:
            client = weaviate.connect_to_custom(
                http_host=url.host,
                http_port=port,
                http_secure=https,
                grpc_host=grpc_host,
                grpc_port=grpc_port,
                grpc_secure=https,
                auth_credentials=wvc.init.Auth.api_key(api_key) if api_key else None,
                additional_config=wvc.init.AdditionalConfig(timeout=wvc.init.Timeout(init=10, query=60, insert=120)),
                skip_init_checks=True,  # the init checks ask the package index for the latest client: no internet needed here
            )
        except Exception as e:
            cause = _root_cause(e)
            if any(_status(x) in (401, 403) for x in _chain(e)) or "auth" in cause.lower():
                raise BackendError(_scrub(f"Weaviate at {url} refused the credentials: {cause}: check `api_key`", api_key)) from None
            raise BackendError(_scrub(f"can't reach Weaviate at {url}: {cause}: check `url`", api_key)) from None
        backend = cls(client, url, grpc_port, api_key=api_key)
        try:
            backend._check_grpc(grpc_host)
            backend.server_version()
        except BaseException:
            backend.close()
            raise
        return backend

    def _check_grpc(self, grpc_host: str) -> None:
        """Fail at connect, not at the first data request, when the gRPC port is wrong."""
        ping = getattr(getattr(self.client, "_connection", None), "_ping_grpc", None)
        if ping is None:  # the client's internals changed: the first data request will tell
            return
        try:
            from weaviate.connect import executor

            executor.result(ping("sync"))
        except TypeError:
            return
        except Exception as e:
            raise BackendError(self._scrub(f"can't reach Weaviate's gRPC API at {grpc_host}:{self.grpc_port} ({self.url}): {_root_cause(e)}: check `grpc_port` in the url")) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    def describe(self) -> str:
        return f"{self.url} (gRPC port {self.grpc_port})"

    def server_version(self) -> tuple[int, int, int]:
        if self._version is None:
            with self._errors("read the server version"):
                raw = str(self.client.get_meta().get("version", "0.0.0"))
            parts = [int("".join(ch for ch in part if ch.isdigit()) or 0) for part in raw.split("-")[0].split(".")[:3]]
            self._version = tuple((parts + [0, 0, 0])[:3])  # type: ignore[assignment]
        return self._version

    def _version_text(self) -> str:
        return ".".join(map(str, self.server_version()))

    def unsupported(self, feature: str, collection: CollectionSpec | None = None) -> str | None:
        version = self.server_version()
        needs = MIN_VERSION.get(feature)
        old = needs is not None and version < needs
        need_text = f"Weaviate ≥ {'.'.join(map(str, needs[:2]))} (this server is {self._version_text()})" if needs else ""
        if feature == "aliases":
            return f"aliases need {need_text}: upgrade Weaviate" if old else None
        if feature == "add_vector":
            if old:
                return f"adding a named vector to an existing collection needs {need_text}: {ALIAS_STRATEGY}"
            if collection is not None and (not collection.vectors or "" in collection.vectors):
                return f"Weaviate adds a vector only to a collection that already uses named vectors, and {collection.name!r} has {'only the legacy unnamed vector' if collection.vectors else 'no vectors'}: {ALIAS_STRATEGY}"
            return None
        if feature == "drop_vector":
            # Weaviate (1.35 through 1.38) has no API that removes a named vector, and none that reports
            # one: 1.38's DELETE /schema/{class}/vectors/{name}/index is experimental, off unless the
            # server sets ENABLE_EXPERIMENTAL_ALTER_SCHEMA_DROP_VECTOR_INDEX_ENDPOINT, and drops only the index
            return f"Weaviate can't drop a named vector from a collection: {DROP_STRATEGY}"
        if feature == "sparse_vectors":
            return "Weaviate has no sparse vectors; its built-in BM25 keyword search over text properties (hybrid queries) takes their place: declare the text as properties instead"
        if feature == "multivectors":
            return f"multivectors need {need_text}: upgrade Weaviate" if old else None
        if feature == "conditional_writes":
            return "Weaviate has no conditional writes: vecmig falls back to write-then-verify (reconcile passes and a settle delay)"
        return f"unknown feature {feature!r}"

    def invalid_collection_name(self, name: str) -> str | None:
        return invalid_name(name)

    def invalid_filter(self, filter: Filter) -> str | None:
        try:
            weaviate_filter(client_library()[1].query.Filter, filter)
        except FilterError as e:
            return str(e)
        return None

    def invalid_collection_spec(self, spec: CollectionSpec) -> str | None:
        """None when Weaviate can hold ``spec`` (names, types, options), else why not."""
        problem = invalid_name(spec.name)
        if problem:
            return problem
        try:
            check_spec(spec)
            collection_kwargs(client_library()[1], spec)
        except SpecError as e:
            return str(e)
        return None

    # schema

    def list_collections(self) -> list[str]:
        with self._errors("list collections"):
            return sorted(self.client.collections.list_all(simple=True))

    def get_collection(self, name: str) -> CollectionSpec | None:
        if invalid_name(name):
            return None  # no Weaviate collection can have this name
        with self._errors(f"read collection {name!r}"):
            if not self.client.collections.exists(name):
                return None
            cfg = self.client.collections.use(name).config.get()
            if cfg.name != name and name not in self.list_aliases():
                return None  # Weaviate matched another spelling (it capitalizes names)
            return spec_from_config(cfg, self._observed_sizes(cfg))

    def _observed_sizes(self, cfg) -> dict[str, int]:
        """Dimensions of one stored object's vectors, for vectors without a recorded size."""
        missing = [n for n, named in (cfg.vector_config or {}).items() if not (named.vectorizer.model or {}).get("vecmigSize")]
        legacy = cfg.vector_index_config is not None and not getattr(cfg.vector_index_config, "skip", False)
        if not missing and not legacy:
            return {}
        res = self.client.collections.use(cfg.name).query.fetch_objects(limit=1, include_vector=True, return_properties=[])
        sizes = {}
        for obj in res.objects:
            for key, vec in (obj.vector or {}).items():
                name = "" if key == "default" and legacy and "default" not in (cfg.vector_config or {}) else key
                if vec:
                    sizes[name] = len(vec[0]) if isinstance(vec[0], (list, tuple)) else len(vec)
        return sizes

    def create_collection(self, spec: CollectionSpec) -> None:
        what = f"create_collection {spec.name!r}"
        self._check_name(spec.name, what)
        _, wvc = client_library()
        try:
            kwargs = collection_kwargs(wvc, spec)
        except SpecError as e:
            raise BackendError(f"{what}: {e}") from None
        with self._errors(what), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # a collection without vectors uses the legacy arguments
            self.client.collections.create(**kwargs)
        self._shapes.clear()

    def drop_collection(self, name: str) -> None:
        what = f"drop_collection {name!r}"
        self._check_name(name, what)
        aliases = self.list_aliases()
        if name in aliases:
            raise BackendError(f"{what}: {name!r} is an alias (of {aliases[name]!r}): drop the alias, or name the collection")
        if name not in self.list_collections():
            # absent: nothing to do. Exact names only: Weaviate (1.35 and 1.38 alike) matches a DELETE
            # without case and drops the *data* of a collection named e.g. `Products` when asked for `PRODUCTS`
            return
        with self._errors(what):
            self.client.collections.delete(name)
        self._shapes.clear()

    def add_vector(self, collection: str, name: str, spec: VectorSpec | SparseVectorSpec) -> None:
        what = f"add_vector {collection}.{name}"
        if isinstance(spec, SparseVectorSpec):
            raise BackendError(f"{what}: {self.unsupported('sparse_vectors')}")
        real = self._resolve(collection)
        live = self.get_collection(real)
        if live is None:
            raise BackendError(f"{what}: collection {collection!r} does not exist")
        if name in live.vectors:
            raise BackendError(f"{what}: collection {real!r} already has a vector named {name!r}")
        reason = self.unsupported("add_vector", live) or (spec.multivector and self.unsupported("multivectors"))
        if reason:
            raise BackendError(f"{what}: {reason}")
        _, wvc = client_library()
        try:
            check_vector(name, spec)
            config = vector_config(wvc, name, spec)
        except SpecError as e:
            raise BackendError(f"{what}: {e}") from None
        with self._errors(what):
            self.client.collections.use(real).config.add_vector(vector_config=config)
        self._shapes.clear()

    def drop_vector(self, collection: str, name: str) -> None:
        raise BackendError(f"drop_vector {collection}.{name}: {self.unsupported('drop_vector')}")

    def update_collection(self, name: str, options: dict[str, Any]) -> None:
        what = f"update_collection {name!r}"
        real = self._resolve(name)
        _, wvc = client_library()
        with self._errors(what):
            if not self.client.collections.exists(real):
                raise BackendError(f"{what}: collection does not exist")
            col = self.client.collections.use(real)
            try:
                kwargs = update_kwargs(wvc, index_types(col.config.get()), options)
            except SpecError as e:
                raise BackendError(f"{what}: {e}") from None
            if kwargs:
                col.config.update(**kwargs)

    def create_payload_index(self, collection: str, field: str, type: str) -> None:
        """A new property with a filter index, or the record of one on an existing filterable property
        (see ``weaviate_schema``: Weaviate can't add a filter index to an existing property)."""
        what = f"create_payload_index {collection}.{field}"
        problem = invalid_property_name(field)
        if problem:
            raise BackendError(f"{what}: {problem}")
        real = self._resolve(collection)
        _, wvc = client_library()
        with self._errors(what):
            col = self.client.collections.use(real)
            prop = next((p for p in col.config.get().properties if p.name == field), None)
            declared = None if prop is None else read_type(_enum_value(prop.data_type), _enum_value(prop.tokenization) if prop.tokenization else None)
            check_index(field, type, declared)
            if prop is None:
                col.config.add_property(property_config(wvc, field, INDEX_TYPES[type][0], type))
                return
            if not (prop.index_filterable or prop.index_range_filters or (type == "text" and prop.index_searchable)):
                raise BackendError(
                    f"{what}: property {field!r} was created without a filter index, and Weaviate can't add one to an existing "
                    "property: create a new collection with the index, copy the points, and repoint an alias (create_collection + copy + repoint_alias)"
                )
            if index_mark(prop.description) != type:
                col.config.update(property_descriptions={field: with_index_mark(prop.description, type)})

    def drop_payload_index(self, collection: str, field: str) -> None:
        """Forgets the index; Weaviate's filter index stays (it could not be added back)."""
        real = self._resolve(collection)
        with self._errors(f"drop_payload_index {collection}.{field}"):
            col = self.client.collections.use(real)
            prop = next((p for p in col.config.get().properties if p.name == field), None)
            if prop is not None and index_mark(prop.description):
                col.config.update(property_descriptions={field: with_index_mark(prop.description, None)})

    # aliases

    def list_aliases(self) -> dict[str, str]:
        if self.server_version() < MIN_VERSION["aliases"]:
            return {}  # no aliases before 1.32 (``unsupported("aliases")`` says so)
        with self._errors("list aliases"):
            return {name: a.collection for name, a in self.client.alias.list_all().items()}

    def create_alias(self, alias: str, collection: str) -> None:
        what = f"create_alias {alias!r}"
        self._check_name(alias, what, "alias")
        with self._errors(what, missing=f"collection {collection!r} does not exist"):
            self.client.alias.create(alias_name=alias, target_collection=collection)
        self._shapes.clear()

    def repoint_alias(self, alias: str, collection: str) -> None:
        what = f"repoint_alias {alias!r}"
        self._check_name(alias, what, "alias")
        with self._errors(what, missing=f"collection {collection!r} does not exist"):
            found = self.client.alias.update(alias_name=alias, new_target_collection=collection)
        self._shapes.clear()
        if not found:
            raise BackendError(f"{what}: alias does not exist: create it with create_alias")

    def drop_alias(self, alias: str) -> None:
        with self._errors(f"drop_alias {alias!r}"):
            self.client.alias.delete(alias_name=alias)  # absent: nothing to do
        self._shapes.clear()

    # points

    def count(self, collection: str, filter: Filter | None = None) -> int:
        where = self._filter(filter, f"count {collection!r}")
        with self._errors(f"count {collection!r}"):
            return int(self._collection(collection).aggregate.over_all(total_count=True, filters=where).total_count or 0)

    def upsert(self, collection: str, points: list[Point], *, insert_only: bool = False, exact: bool = False) -> None:
        """Batches over gRPC (``insert_many``), up to ``BATCH_CONCURRENCY`` requests at a time. An object
        the server refuses is tried again (``OBJECT_RETRY_PAUSES``), then reported by id in one
        BackendError; none is dropped.

        ``insert_only``: Weaviate's batch replaces an object that exists, and it has no conditional
        write. So each batch first reads which of its ids exist (one filtered fetch of ids), then
        writes only the others. An application write landing between that read and the write (a
        few milliseconds) is overwritten by this write's older version, and a point the
        application deleted in between is written back. After a backfill, reconcile finds both:
        the text hash no longer matches the source's text (stale: re-embedded, the source's payload
        merged in), and the point is not in the source (extra: deleted). See ``vecmig.ops.data``.

        ``exact`` (with ``insert_only``): no window. The missing objects are created one by one with
        REST's create, which Weaviate refuses for an id that exists (about 8x slower): for writes
        no reconcile follows, such as a copy into a collection the application dual-writes.
        """
        what = f"upsert into {collection!r}"
        _, wvc = client_library()
        shapes = self._shapes_of(collection, {name for p in points for name in p.vectors})
        objects = [wvc.data.DataObject(uuid=to_uuid(p.id), properties=payload_in(p.payload, f"{what}: point {p.id!r}"), vector=vectors_in(p, shapes, what)) for p in points]
        ids = {obj.uuid: p.id for obj, p in zip(objects, points)}
        col = self._collection(collection)
        if not objects:
            return
        if insert_only and exact:
            existing = self._existing(col, [o.uuid for o in objects], what)
            for obj in objects:
                if obj.uuid not in existing:
                    self._retried(what, lambda obj=obj: self._create(col, obj, what))
            return
        parts = -(-len(objects) // BATCH_SIZE)
        size = -(-len(objects) // parts)  # even batches: 256 points are two of 128, not 200 + 56
        batches = [objects[start : start + size] for start in range(0, len(objects), size)]
        if len(batches) == 1:
            failed = self._write_batch(col, batches[0], what, insert_only)
        else:
            from concurrent.futures import ThreadPoolExecutor

            failed = {}
            with ThreadPoolExecutor(min(BATCH_CONCURRENCY, len(batches)), thread_name_prefix="vecmig-weaviate-batch") as pool:
                for result in pool.map(lambda batch: self._write_batch(col, batch, what, insert_only), batches):
                    failed.update(result)
        if failed:
            by_id = {ids[key]: message for key, message in failed.items()}
            shown = ", ".join(f"{pid!r}: {message}" for pid, message in list(by_id.items())[:FAILED_SHOWN])
            more = f" (and {len(by_id) - FAILED_SHOWN} more)" if len(by_id) > FAILED_SHOWN else ""
            error = BackendError(self._scrub(f"{what}: {len(by_id)} of {len(objects)} points were not written (tried again, then given up): {shown}{more}"))
            error.failed = by_id  # type: ignore[attr-defined] - every failed id with Weaviate's message
            raise error

    def _write_batch(self, col, batch: list, what: str, insert_only: bool) -> dict[uuid.UUID, str]:
        """One batch written, its failed objects tried again; what still failed: {uuid: message}.

        A retry of ``insert_only`` reads again which ids exist: one written meanwhile (or by a request
        that failed only on the way back) is left alone."""
        pending, pauses, waiting = batch, iter(OBJECT_RETRY_PAUSES), False
        while True:
            if insert_only:
                existing = self._existing(col, [obj.uuid for obj in pending], what)
                pending = [obj for obj in pending if obj.uuid not in existing]
            failed = self._insert_many(col, pending, what) if pending else {}
            if not waiting and failed and all("read-only" in message for message in failed.values()):
                pauses, waiting = iter(WRITE_RETRY_PAUSES), True  # an index update: wait it out
            pause = next(pauses)
            if not failed or pause is None:
                return failed
            time.sleep(pause)
            pending = [obj for obj in pending if obj.uuid in failed]

    def _insert_many(self, col, objects: list, what: str) -> dict[uuid.UUID, str]:
        """One gRPC batch request; the objects it did not write: {uuid: Weaviate's message}. A
        request that fails as a whole (the connection, a timeout) fails each of its objects."""
        prefix = f"{what}: Weaviate said: "
        try:
            with self._errors(what):
                result = col.data.insert_many(objects)
        except BackendError as e:
            message = str(e).removeprefix(prefix)
            return {obj.uuid: message for obj in objects}
        return {objects[index].uuid: " ".join(error.message.split()) for index, error in result.errors.items()}

    def _create(self, col, obj, what: str) -> None:
        """Create one object; an id that exists by now (written by someone else) is left alone."""
        try:
            col.data.insert(uuid=obj.uuid, properties=obj.properties, vector=obj.vector)
        except Exception as e:
            if _status(e) == 422 and "already exists" in error_text(e):
                return
            with self._errors(what):
                raise

    def _existing(self, col, uuids: list[uuid.UUID], what: str, vector: str | None = None) -> dict[uuid.UUID, Any]:
        """The objects among ``uuids`` that exist, without properties (with ``vector`` if named)."""
        _, wvc = client_library()
        include: bool | list[str] = False if vector is None else (True if vector == "" else [vector])
        found: dict[uuid.UUID, Any] = {}
        unique = list(dict.fromkeys(uuids))
        for start in range(0, len(unique), IDS_PER_REQUEST):
            chunk = unique[start : start + IDS_PER_REQUEST]
            with self._errors(what):
                res = col.query.fetch_objects(filters=wvc.query.Filter.by_id().contains_any(chunk), limit=len(chunk), include_vector=include, return_properties=[])
            found.update((obj.uuid, obj) for obj in res.objects)
        return found

    def update_vectors(self, collection: str, points: list[Point], *, only_if_missing: str | None = None) -> None:
        """One partial update (REST PATCH: named vectors and properties merge) per object.

        Weaviate has no conditional write: ``only_if_missing`` is a read before the writes, and a
        vector the application writes between that read and the PATCH is overwritten. The reconcile
        step after a backfill (text hashes compared) repairs such points.
        """
        what = f"update vectors in {collection!r}"
        shapes = self._shapes_of(collection, {name for p in points for name in p.vectors})
        col = self._collection(collection)
        uuids = [to_uuid(p.id) for p in points]
        existing = self._existing(col, uuids, what, vector=only_if_missing)
        for point, key in zip(points, uuids):
            obj = existing.get(key)
            if obj is None or (only_if_missing is not None and has_vector(obj, only_if_missing)):
                continue  # deleted since it was read, or the application wrote the vector already
            properties = payload_in(point.payload, f"{what}: point {point.id!r}") or None
            self._retried(what, lambda key=key, properties=properties, point=point: self._patch(col, key, properties, vectors_in(point, shapes, what)))

    def _patch(self, col, key: uuid.UUID, properties, vectors) -> None:
        """Update one object's properties and named vectors; one deleted meanwhile is left alone."""
        try:
            col.data.update(uuid=key, properties=properties, vector=vectors)
        except Exception as e:
            if _status(e) != 404:
                raise

    def delete(self, collection: str, ids: list[int | str]) -> None:
        what = f"delete from {collection!r}"
        _, wvc = client_library()
        uuids = [to_uuid(i) for i in ids]
        col = self._collection(collection)
        for start in range(0, len(uuids), IDS_PER_REQUEST):
            chunk = uuids[start : start + IDS_PER_REQUEST]

            def delete_chunk(chunk=chunk) -> None:
                result = col.data.delete_many(where=wvc.query.Filter.by_id().contains_any(chunk), verbose=True)
                if result.failed:
                    reason = next((o.error for o in result.objects or [] if not o.successful and o.error), None)
                    raise BackendError(f"{what}: {result.failed} of {len(chunk)} deletes failed" + (f": {reason}" if reason else ""))

            self._retried(what, delete_chunk, always=True)  # deleting is idempotent: any failure is tried again

    def retrieve(self, collection: str, ids: list[int | str], with_vectors: bool = False) -> list[Point]:
        _, wvc = client_library()
        uuids = [to_uuid(i) for i in ids]
        col = self._collection(collection)
        shapes = self._shapes_of(collection) if with_vectors else None
        found: dict[uuid.UUID, Point] = {}
        unique = list(dict.fromkeys(uuids))
        for start in range(0, len(unique), IDS_PER_REQUEST):
            chunk = unique[start : start + IDS_PER_REQUEST]
            with self._errors(f"retrieve from {collection!r}"):
                res = col.query.fetch_objects(filters=wvc.query.Filter.by_id().contains_any(chunk), limit=len(chunk), include_vector=bool(with_vectors))
            for obj in res.objects:
                found[obj.uuid] = point_from_object(obj, shapes)
        return [found[u] for u in uuids if u in found]

    ranged_scans = True

    def cursor_from(self, first):
        """Weaviate's cursor starts *after* an id: after the UUID just below ``first``."""
        below = to_uuid(first).int - 1
        return {"after": str(uuid.UUID(int=below))} if below >= 0 else None

    def cursor_id(self, cursor):
        return None if not cursor or cursor.get("end") or not cursor.get("after") else from_uuid(cursor["after"])

    def scan_ids(self, collection: str, filter: Filter | None = None) -> Iterator[list[int | str]]:
        """The cursor without properties or vectors (with a filter, whole points are scrolled)."""
        if filter is not None:
            yield from super().scan_ids(collection, filter)
            return
        col, after = self._collection(collection), None
        while True:
            with self._errors(f"scrolling the ids of {collection!r}"):
                objects = list(col.query.fetch_objects(limit=self.id_page_size, after=after, return_properties=[]).objects)
            if objects:
                yield [from_uuid(obj.uuid) for obj in objects]
            if len(objects) < self.id_page_size:
                return
            after = objects[-1].uuid

    def scroll_pages(
        self,
        collection: str,
        *,
        batch_size: int = 256,
        with_vectors: bool | list[str] = False,
        filter: Filter | None = None,
        cursor: Cursor = None,
    ) -> Iterator[tuple[list[Point], Cursor]]:
        """Pages in id order through Weaviate's cursor (``after``); integer ids come first, ascending.

        The cursor is ``{"after": "<last uuid of the page>"}`` (with ``"end": true`` after a short
        last page). Weaviate's cursor takes no filter, so with one each page of ids is read first and
        the objects matching the filter among them are fetched in a second, filtered request.
        """
        if cursor and cursor.get("end"):
            return
        col = self._collection(collection)
        shapes = self._shapes_of(collection) if with_vectors else None
        wanted = None
        include: bool | list[str] = bool(with_vectors)
        if isinstance(with_vectors, list):
            wanted = set(with_vectors)
            include = True if "" in wanted else list(with_vectors)
        what = f"scroll {collection!r}"
        where = self._filter(filter, what)
        after = (cursor or {}).get("after")
        while True:
            with self._errors(what):
                if where is None:
                    res = col.query.fetch_objects(limit=batch_size, after=after, include_vector=include)
                else:
                    res = col.query.fetch_objects(limit=batch_size, after=after, return_properties=[])
            objects = list(res.objects)
            if not objects:
                return
            last, end = str(objects[-1].uuid), len(objects) < batch_size
            if where is not None:
                objects = self._matching(col, [o.uuid for o in objects], where, include, what)
            page = [point_from_object(obj, shapes) for obj in objects]
            if wanted is not None:
                for p in page:
                    p.vectors = {k: v for k, v in p.vectors.items() if k in wanted}
            yield page, ({"after": last, "end": True} if end else {"after": last})
            if end:
                return
            after = last

    def _matching(self, col, uuids: list, where, include, what: str) -> list:
        """The objects among ``uuids`` that match ``where``, in the order of ``uuids``."""
        _, wvc = client_library()
        Filter = wvc.query.Filter
        with self._errors(what):
            res = col.query.fetch_objects(filters=Filter.all_of([Filter.by_id().contains_any(uuids), where]), limit=len(uuids), include_vector=include)
        by_id = {obj.uuid: obj for obj in res.objects}
        return [by_id[u] for u in uuids if u in by_id]

    def search(
        self, collection: str, vector_name: str, vector: list[float], *, limit: int = 10, filter: Filter | None = None
    ) -> list[Hit]:
        what = f"search {collection!r} by {vector_name or 'its vector'!r}"
        _, wvc = client_library()
        shapes = self._shapes_of(collection, [vector_name])
        if vector_name not in shapes.vectors:
            have = ", ".join(repr(n) for n in shapes.vectors) or "none"
            raise BackendError(f"{what}: the collection has no vector {vector_name!r} (it has {have})")
        where = self._filter(filter, what)
        with self._errors(what):
            res = self._collection(collection).query.near_vector(
                near_vector=as_list(vector), target_vector=vector_name or None, limit=limit, filters=where,
                return_metadata=wvc.query.MetadataQuery(distance=True),
            )
        distance = shapes.distances.get(vector_name, "cosine")
        return [(from_uuid(obj.uuid), score(distance, obj.metadata.distance), point_from_object(obj, None).payload) for obj in res.objects]

    # state

    def records(self, collection: str) -> RecordStore:
        from vecmig.backends.weaviate_records import WeaviateRecordStore

        problem = invalid_name(collection)
        if problem:
            raise BackendError(f"state collection {collection!r}: {problem} (set `state_collection` in vecmig.ini)")
        return WeaviateRecordStore(self, collection)

    # helpers

    def _collection(self, name: str):
        if invalid_name(name):
            raise BackendError(f"collection {name!r}: {invalid_name(name)}")
        return self.client.collections.use(name)

    def _filter(self, filter: Filter | None, what: str):
        try:
            return weaviate_filter(client_library()[1].query.Filter, filter)
        except FilterError as e:
            raise BackendError(f"{what}: {e}") from None

    def _check_name(self, name: str, what: str, kind: str = "collection") -> None:
        problem = invalid_name(name, kind)
        if problem:
            raise BackendError(f"{what}: {problem}")

    def _resolve(self, name: str) -> str:
        """The collection behind ``name`` (itself, or an alias's target)."""
        if invalid_name(name):
            raise BackendError(f"collection {name!r}: {invalid_name(name)}")
        return self.list_aliases().get(name, name)

    def _shapes_of(self, collection: str, vectors=()) -> VectorShapes:
        """Declared vector shapes of a collection (or of an alias's current target).

        Cached for collection names until this backend changes a schema, or until a caller names one
        of ``vectors`` that the cached shapes lack (another process, a migration, may have added it);
        never cached for aliases, which another process may repoint at any time.
        """
        cached = self._shapes.get(collection)
        if cached is not None and all(name in cached.vectors for name in vectors):
            return cached
        spec = self.get_collection(collection)
        if spec is None:
            raise BackendError(f"collection {collection!r} does not exist")
        shapes = VectorShapes({n: (v.size, v.multivector) for n, v in spec.vectors.items()}, {n: v.distance for n, v in spec.vectors.items()})
        if spec.name == collection:
            self._shapes[collection] = shapes
        return shapes

    def _retried(self, what: str, write, *, always: bool = False):
        """``write()`` with client errors as BackendError, tried again while Weaviate refuses it for a
        moment (``WRITE_RETRY_PAUSES``): a read-only store during an index update, or any failure when
        ``always`` (an idempotent write)."""
        for pause in WRITE_RETRY_PAUSES:
            try:
                with self._errors(what):
                    return write()
            except BackendError as e:
                if pause is None or not (always or "read-only" in str(e)):
                    raise
            time.sleep(pause)

    @contextlib.contextmanager
    def _errors(self, what: str, *, missing: str | None = None) -> Iterator[None]:
        """Client exceptions -> one-line BackendError; ``missing`` replaces Weaviate's 'class ("X") does not exist'."""
        try:
            yield
        except BackendError:
            raise
        except SpecError as e:
            raise BackendError(f"{what}: {e}") from None
        except Exception as e:
            weaviate, _ = client_library()
            if not isinstance(e, (weaviate.exceptions.WeaviateBaseError, OSError)) and type(e).__module__.split(".")[0] not in ("grpc", "httpx", "httpcore"):
                raise
            text = error_text(e)
            if missing and _MISSING_CLASS.search(text):
                text = missing
            if "found similar class" in text:
                text += " (Weaviate names are unique regardless of case)"
            if _status(e) in (401, 403):
                text += ": check `api_key`"
            raise BackendError(self._scrub(f"{what}: Weaviate said: {text}")) from None

    def _scrub(self, text: str) -> str:
        return _scrub(text, self._secret)


def _enum_value(x: Any) -> str:
    return getattr(x, "value", x)


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _root_cause(e: BaseException) -> str:
    """The innermost message of an exception chain, on one line."""
    text = error_text(_chain(e)[-1])
    return text.rstrip(".") or type(e).__name__


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text
