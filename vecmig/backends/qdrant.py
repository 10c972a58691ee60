"""Qdrant: a server over HTTP(S), or embedded through qdrant-client's local mode (a folder or memory).

Everything Qdrant-specific lives here, in ``qdrant_models.py`` (CollectionSpec <-> qdrant models) and
in ``qdrant_records.py`` (the state records): URL -> client, client exceptions -> one-line
``BackendError``, and the server-version gates.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
import threading
import time
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from vecmig.backends import StoreURL
from vecmig.backends.base import FEATURES, Backend, Cursor, Filter, Hit
from vecmig.backends.qdrant_models import (
    INVALID_NAME_CHARS,
    collection_arguments,
    cursor_offset,
    payload_type,
    point_id,
    point_struct,
    qdrant_filter,
    sparse_params,
    spec_from_info,
    to_point,
    update_options,
    validated,
    vector_params,
    vector_struct,
    vector_value,
)
from vecmig.errors import BackendError, ConfigError, LockError, PlanError
from vecmig.schema import CollectionSpec, Point, SparseVectorSpec, VectorSpec

DEFAULT_PORT = 6333
LOCK_POLL_SECONDS = 0.2
#: first server version with create_vector_name / delete_vector_name
NAMED_VECTOR_CRUD = (1, 18, 0)
#: first server version with upsert ``update_mode`` (insert_only / update_only) next to ``update_filter``
CONDITIONAL_WRITES = (1, 17, 0)
#: points per scroll page in long scans: local mode sorts the whole collection for every page
EMBEDDED_SCAN_PAGE = 2000
SERVER_SCAN_PAGE = 500
#: ids per page of an id-only scan: fewer pages, and each embedded page sorts every id again
EMBEDDED_ID_PAGE = 20_000
SERVER_ID_PAGE = 5_000
#: local mode keeps no payload index info: vecmig keeps its own list in the collection's metadata
LOCAL_INDEX_KEY = "vecmig_payload_indexes"
NEW_COLLECTION_STRATEGY = "use the new-collection strategy: create_collection + copy/backfill + repoint_alias"

# local-mode and client chatter that says nothing to a vecmig user
QUIET_WARNINGS = (
    r"Payload indexes have no effect in the local Qdrant",
    r"Api key is used with an insecure connection",
)
#: local mode's warning about large collections (a UserWarning with a source line, on every open
#: and write): vecmig says it once, in its own words (``note_large_collection``)
LARGE_LOCAL_WARNING = r"Local mode is not recommended for collections with more than"
#: points in one collection past which local mode warns
LARGE_EMBEDDED = 20_000
_large_noted = False  # the note is said once per process (one command)


def hush_large_collection_warning() -> None:
    """Keep local mode's own large-collection warning off stderr; vecmig's note replaces it."""
    if not any(f[0] == "ignore" and f[1] is not None and f[1].pattern == LARGE_LOCAL_WARNING for f in warnings.filters):
        warnings.filterwarnings("ignore", message=LARGE_LOCAL_WARNING, category=UserWarning)


def note_large_collection(name: str, points: int) -> None:
    """Say once per process, on stderr, that an embedded collection is past local mode's size."""
    global _large_noted
    if _large_noted:
        return
    _large_noted = True
    print(
        f"note: the embedded store holds {points:,} points in collection {name!r}; embedded Qdrant is meant for "
        f"small collections (up to {LARGE_EMBEDDED:,} points): use a Qdrant server (url = qdrant://host:6333) for this size",
        file=sys.stderr, flush=True,
    )


@contextmanager
def quiet():
    """Silence known qdrant-client warnings for the calls inside (schema calls, not the data path)."""
    with warnings.catch_warnings():
        for message in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


class QdrantBackend(Backend):
    """One connected Qdrant store. ``client`` is the ``QdrantClient``; ``embedded`` is local mode, which
    admits one process at a time (hence ``exclusive``: the lock lease needs no heartbeat)."""

    kind = "qdrant"
    default_state_collection = "vecmig_state"

    def __init__(self, url: StoreURL, client: QdrantClient, *, embedded: bool, api_key: bool = False):
        self.url = url
        self.client = client
        self.embedded = embedded
        self.exclusive = embedded
        self.scan_page_size = EMBEDDED_SCAN_PAGE if embedded else SERVER_SCAN_PAGE
        self.id_page_size = EMBEDDED_ID_PAGE if embedded else SERVER_ID_PAGE
        # local mode's collections are plain Python objects: one call at a time, whatever the thread
        self._serial = threading.RLock() if embedded else nullcontext()
        self._api_key = api_key  # only whether one is set: the key itself is never kept here
        self._version: tuple[int, int, int] | None = None
        self._closed = False
        if embedded:
            hush_large_collection_warning()

    # connection ----------------------------------------------------------------------------------

    @classmethod
    def connect(cls, url: StoreURL, cfg) -> "QdrantBackend":
        """Open the store ``url`` names; a server is asked one cheap authenticated question right away."""
        if url.scheme == "qdrant+memory":
            return cls(url, QdrantClient(location=":memory:"), embedded=True)
        if url.scheme == "qdrant+local":
            backend = cls(url, open_embedded(url.local_path(cfg.here), float(cfg.lock_timeout or 0)), embedded=True)
            try:
                for name in backend.list_collections():
                    backend._note_size(name)
            except BackendError:
                pass  # only a note: the command's own calls report what is wrong
            return backend
        return cls._connect_server(url, cfg)

    @classmethod
    def _connect_server(cls, url: StoreURL, cfg) -> "QdrantBackend":
        unknown = sorted(set(url.query) - {"timeout"})
        if unknown:
            raise ConfigError(f"url {url}: unknown option {unknown[0]!r}: Qdrant URLs take only ?timeout=SECONDS")
        timeout = None
        if "timeout" in url.query:
            try:
                timeout = float(url.query["timeout"])
            except ValueError:
                raise ConfigError(f"url {url}: timeout={url.query['timeout']!r} is not a number of seconds") from None
        host = f"[{url.host}]" if url.host and ":" in url.host else url.host
        with quiet():
            client = QdrantClient(
                host=host,
                port=url.port or DEFAULT_PORT,
                https=url.https,
                api_key=cfg.api_key or None,
                prefix=url.path.strip("/") or None,
                timeout=timeout,
                check_compatibility=False,  # vecmig checks versions per feature instead
            )
        backend = cls(url, client, embedded=False, api_key=bool(cfg.api_key))
        try:
            client.get_collections()
        except Exception as e:
            client.close()
            raise backend._connect_error(e) from e
        return backend

    def _connect_error(self, e: Exception) -> BackendError:
        hint = "check `url` in vecmig.ini or VECMIG_URL"
        if isinstance(e, UnexpectedResponse):
            if e.status_code in (401, 403):
                return BackendError(self._auth_problem(e.status_code))
            return BackendError(f"can't reach Qdrant at {self.url}: HTTP {e.status_code} {e.reason_phrase}: {hint}")
        return BackendError(f"can't reach Qdrant at {self.url}: {connection_reason(e)}: {hint}")

    def _auth_problem(self, status: int) -> str:
        if not self._api_key:
            return f"Qdrant at {self.url} wants an api key (HTTP {status}): set `api_key` in vecmig.ini, e.g. api_key = ${{QDRANT_API_KEY}}"
        if status == 401:
            return f"Qdrant at {self.url} rejected the api key (HTTP 401): check `api_key` in vecmig.ini"
        return f"the api key has no permission for this on Qdrant at {self.url} (HTTP 403): use a key with write access"

    @contextmanager
    def translate_errors(self, what: str):
        """Turn client exceptions raised inside into one-line ``BackendError``s starting with ``what``.

        Every client call goes through here, which also serializes calls to an embedded store.
        """
        try:
            with self._serial:
                yield
        except UnexpectedResponse as e:
            if e.status_code in (401, 403):
                raise BackendError(f"{what}: {self._auth_problem(e.status_code)}") from e
            raise BackendError(f"{what}: Qdrant answered HTTP {e.status_code}: {server_message(e)}") from e
        except ResponseHandlingException as e:
            raise BackendError(f"{what}: lost Qdrant at {self.url}: {connection_reason(e)}") from e
        except (ValueError, RuntimeError) as e:  # local mode reports with these
            raise BackendError(f"{what}: {one_line(e)}") from e

    def close(self) -> None:
        with self._serial:
            if not self._closed:
                self._closed = True
                self.client.close()

    def describe(self) -> str:
        return str(self.url)

    # capabilities --------------------------------------------------------------------------------

    def server_version(self) -> tuple[int, int, int]:
        """The server's version; local mode implements its client's feature set, so that version x.y.0."""
        if self._version is None:
            if self.embedded:
                major, minor = parse_version(importlib.metadata.version("qdrant-client"))[:2]
                self._version = (major, minor, 0)
            else:
                with self.translate_errors("reading the Qdrant server version"):
                    self._version = parse_version(self.client.info().version)
        return self._version

    def unsupported(self, feature: str, collection: CollectionSpec | None = None) -> str | None:
        if feature not in FEATURES:
            return f"unknown feature {feature!r} (known: {', '.join(FEATURES)})"
        version = self.server_version()
        shown = ".".join(map(str, version))
        if feature in ("add_vector", "drop_vector"):
            if version < NAMED_VECTOR_CRUD:
                return f"Qdrant {shown} can't add or drop a vector of an existing collection (needs 1.18): {NEW_COLLECTION_STRATEGY}"
            if collection is not None and "" in collection.vectors:
                return (f"collection {collection.name!r} has a single unnamed vector and Qdrant adds or drops vectors only "
                        f"in collections of named vectors: {NEW_COLLECTION_STRATEGY}")
        if feature == "conditional_writes" and version < CONDITIONAL_WRITES:
            return f"Qdrant {shown} has no conditional upserts (update_mode needs 1.17): upgrade the server for race-free writes"
        return None

    def invalid_collection_name(self, name: str) -> str | None:
        if not name:
            return "a Qdrant collection name can't be empty"
        if name in (".", ".."):
            return f"{name!r} is not a valid Qdrant collection name"
        if len(name) > 255:
            return f"collection name {name[:20]!r}… is {len(name)} characters long: Qdrant allows at most 255"
        bad = next((c for c in INVALID_NAME_CHARS if c in name), None)
        if bad is not None:
            return f"collection name {name!r} contains {bad!r}, which Qdrant doesn't allow in names (nor any of {''.join(INVALID_NAME_CHARS[:9])})"
        return None

    # schema --------------------------------------------------------------------------------------

    def list_collections(self) -> list[str]:
        with self.translate_errors("listing collections"):
            return sorted(c.name for c in self.client.get_collections().collections)

    def get_collection(self, name: str) -> CollectionSpec | None:
        """The live collection as a spec (its ``options`` are left empty), or None if there is none.

        Local mode reports no payload indexes, so there the ones vecmig created are read from a list
        it keeps in the collection's metadata; indexes created by other tools don't show up.
        """
        try:
            with self.translate_errors(f"reading collection {name!r}"):
                info = self.client.get_collection(name)
        except BackendError as e:
            cause = e.__cause__
            if isinstance(cause, UnexpectedResponse) and cause.status_code == 404:
                return None
            if self.embedded and isinstance(cause, ValueError) and "not found" in str(cause):
                return None
            raise
        spec = spec_from_info(name, info)
        if self.embedded:
            spec.payload_indexes = dict((info.config.metadata or {}).get(LOCAL_INDEX_KEY) or {})
        return spec

    def invalid_collection_spec(self, spec: CollectionSpec) -> str | None:
        """None when Qdrant can create ``spec`` (vector names, distances, options, index types), else why not."""
        try:
            collection_arguments(spec)
        except PlanError as e:
            return str(e)
        return self.invalid_collection_name(spec.name)

    def invalid_filter(self, filter: Filter) -> str | None:
        try:
            qdrant_filter(filter)
        except PlanError as e:
            return str(e)
        return None

    def create_collection(self, spec: CollectionSpec) -> None:
        what = f"create_collection {spec.name!r}"
        try:
            arguments = collection_arguments(spec)
        except PlanError as e:
            raise PlanError(f"{what}: {e}") from None
        with self.translate_errors(what):
            self.client.create_collection(spec.name, **arguments)
        for field, type_ in spec.payload_indexes.items():
            self.create_payload_index(spec.name, field, type_)

    def drop_collection(self, name: str) -> None:
        with self.translate_errors(f"drop_collection {name!r}"):
            self.client.delete_collection(name)

    def add_vector(self, collection: str, name: str, spec: VectorSpec | SparseVectorSpec) -> None:
        what = f"add_vector {collection}.{name}"
        if isinstance(spec, SparseVectorSpec):
            params = sparse_params(spec, what)
            config: Any = models.SparseVectorNameConfig(sparse=models.SparseVectorConfig(modifier=params.modifier))
            tuning = {"sparse_vectors_config": {name: models.SparseVectorParams(index=params.index)}} if params.index else {}
        else:
            params = vector_params(spec, what)
            config = models.DenseVectorNameConfig(dense=models.DenseVectorConfig(
                size=params.size, distance=params.distance, multivector_config=params.multivector_config,
                datatype=validated(models.VectorStorageDatatype, params.datatype.value, f"{what}: datatype") if params.datatype else None,
            ))
            # what create_vector_name doesn't take is set right after, on the new (still empty) vector
            diff = {k: getattr(params, k) for k in ("hnsw_config", "quantization_config", "on_disk") if getattr(params, k) is not None}
            tuning = {"vectors_config": {name: models.VectorParamsDiff(**diff)}} if diff else {}
        with self.translate_errors(what):
            self.client.create_vector_name(collection, name, config)
            if tuning:
                self.client.update_collection(collection, **tuning)

    def drop_vector(self, collection: str, name: str) -> None:
        with self.translate_errors(f"drop_vector {collection}.{name}"):
            self.client.delete_vector_name(collection, name)

    def delete_payload_field(self, collection: str, field: str) -> None:
        with self.translate_errors(f"delete payload field {collection}.{field}"):
            self.client.delete_payload(collection, keys=[field], points=models.FilterSelector(filter=models.Filter()))

    def update_collection(self, name: str, options: dict[str, Any]) -> None:
        what = f"update_collection {name!r}"
        kwargs = update_options(options, what)
        if kwargs:
            with self.translate_errors(what):
                self.client.update_collection(name, **kwargs)

    def create_payload_index(self, collection: str, field: str, type: str) -> None:
        what = f"create_payload_index {collection}.{field}"
        schema = payload_type(type, what)
        with self.translate_errors(what), quiet():
            self.client.create_payload_index(collection, field, field_schema=schema)
        if self.embedded:
            self._remember_local_index(collection, field, schema.value)

    def drop_payload_index(self, collection: str, field: str) -> None:
        with self.translate_errors(f"drop_payload_index {collection}.{field}"), quiet():
            self.client.delete_payload_index(collection, field)
        if self.embedded:
            self._remember_local_index(collection, field, None)

    def _remember_local_index(self, collection: str, field: str, type_: str | None) -> None:
        with self.translate_errors(f"recording payload index {collection}.{field}"):
            metadata = self.client.get_collection(collection).config.metadata or {}
            indexes = dict(metadata.get(LOCAL_INDEX_KEY) or {})
            if type_ is None:
                indexes.pop(field, None)
            else:
                indexes[field] = type_
            self.client.update_collection(collection, metadata={LOCAL_INDEX_KEY: indexes})

    def list_aliases(self) -> dict[str, str]:
        with self.translate_errors("listing aliases"):
            return {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}

    def create_alias(self, alias: str, collection: str) -> None:
        op = models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection, alias_name=alias))
        with self.translate_errors(f"create_alias {alias!r} -> {collection!r}"):
            self.client.update_collection_aliases([op])

    def repoint_alias(self, alias: str, collection: str) -> None:
        what = f"repoint_alias {alias!r} -> {collection!r}"
        if alias not in self.list_aliases():
            raise BackendError(f"{what}: alias {alias!r} does not exist: create it with create_alias")
        ops = [
            models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)),
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)),
        ]
        with self.translate_errors(what):
            self.client.update_collection_aliases(ops)  # one request: readers never see the alias missing

    def drop_alias(self, alias: str) -> None:
        op = models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
        with self.translate_errors(f"drop_alias {alias!r}"):
            self.client.update_collection_aliases([op])

    # points --------------------------------------------------------------------------------------

    def count(self, collection: str, filter: Filter | None = None) -> int:
        with self.translate_errors(f"counting points of {collection!r}"):
            return self.client.count(collection, count_filter=qdrant_filter(filter), exact=True).count

    def upsert(self, collection: str, points: list[Point], *, insert_only: bool = False, exact: bool = False) -> None:
        """``insert_only`` is Qdrant's ``update_mode: insert_only`` (server >= 1.17, and local mode):
        the server skips ids that exist, so a newer write by the application always wins (``exact``
        asks nothing more). Older servers get read-then-write: a point written between the two
        requests is overwritten."""
        if not points:
            return
        structs = [point_struct(p) for p in points]
        what = f"writing {len(structs)} points to {collection!r}"
        # vecmig sends vectors, never objects for the client to embed: the client's own upsert would
        # inspect every point for those first (a tenth of a copy's time), so its inner client is called
        if not insert_only:
            with self.translate_errors(what):
                self.client._client.upsert(collection, structs)
        elif self.unsupported("conditional_writes") is None:
            with self.translate_errors(what):
                self.client._client.upsert(collection, structs, update_mode=models.UpdateMode.INSERT_ONLY)
        else:
            with self.translate_errors(what):
                found = self.client.retrieve(collection, [s.id for s in structs], with_payload=False, with_vectors=False)
                existing = {str(r.id) for r in found}
                fresh = [s for s in structs if str(s.id) not in existing]
                if fresh:
                    self.client.upsert(collection, fresh)
        self._note_size(collection)

    def update_vectors(self, collection: str, points: list[Point], *, only_if_missing: str | None = None) -> None:
        """One batch request: the payload fields first, then the vectors.

        ``only_if_missing=V`` on a server >= 1.17 guards both with a condition Qdrant evaluates per
        point (``must_not: has_vector V``; for the payload also ``has_id``): a point the application
        wrote with V in the meantime keeps its vector and payload. Embedded, the check is a read
        under the store's lock (one process, so nobody writes in between); older servers get
        read-then-write, where a write landing between the two requests is overwritten. On a
        server, points deleted while the write is on its way are skipped (``_write_existing``).
        """
        points = [p for p in points if p.vectors or p.payload]
        if not points:
            return
        what = f"writing vectors of {len(points)} points of {collection!r}"
        if self.embedded:
            with self.translate_errors(what):  # holds the store's lock from read to write
                points = self._still_to_write(collection, points, only_if_missing)
                if points:
                    self.client.batch_update_points(collection, vector_operations(points, None))
            return
        if only_if_missing is not None and self.unsupported("conditional_writes") is None:
            self._write_existing(collection, points, what, guard=only_if_missing)
            return
        if only_if_missing is not None:
            with self.translate_errors(what):
                points = self._still_to_write(collection, points, only_if_missing)
        self._write_existing(collection, points, what, lacking=only_if_missing)

    def _write_existing(self, collection: str, points: list[Point], what: str, *, guard: str | None = None,
                        lacking: str | None = None) -> None:
        """Write ``points`` to a server, skipping the ones deleted meanwhile, however many deletes race it.

        ``guard`` is the ``only_if_missing`` vector Qdrant checks per point; ``lacking`` the one vecmig
        checks itself when it reads the points again (servers without conditional writes).

        A server answers 404 for the whole request when one of its ids is gone (having written the
        others, or not). Then the points still there are read and written again, until the write lands
        or none is left: each round is smaller than the one before. When none went missing (an id
        deleted and written again in between) the rest is written one point at a time, where a 404
        only means that point is gone. Writing a point twice does no harm: the same payload fields and
        vectors, under the same guard.
        """
        while points:
            try:
                with self.translate_errors(what):
                    self.client.batch_update_points(collection, vector_operations(points, guard))
                return
            except BackendError as e:
                if not is_not_found(e):
                    raise
            with self.translate_errors(what):  # a 404 for the collection itself is raised from here
                left = self._still_to_write(collection, points, lacking)
            if len(left) == len(points):
                break
            points = left
        for p in points:
            try:
                with self.translate_errors(what):
                    self.client.batch_update_points(collection, vector_operations([p], guard))
            except BackendError as e:
                if not is_point_missing(e):
                    raise

    def _note_size(self, collection: str) -> None:
        """Embedded: vecmig's note (once per process) when ``collection`` is past local mode's size."""
        if self.embedded and not _large_noted:
            points = self.count(collection)
            if points > LARGE_EMBEDDED:
                note_large_collection(collection, points)

    def _still_to_write(self, collection: str, points: list[Point], lacking: str | None) -> list[Point]:
        """The points that exist (and, with ``lacking``, don't have that vector yet)."""
        with_vectors: bool | list[str] = False if lacking is None else (True if lacking == "" else [lacking])
        records = self.client.retrieve(collection, [point_id(p.id) for p in points], with_payload=False, with_vectors=with_vectors)
        keep = {str(r.id) for r in records if lacking is None or lacking not in to_point(r).vectors}
        return [p for p in points if str(point_id(p.id)) in keep]

    def delete(self, collection: str, ids: list[int | str]) -> None:
        if not ids:
            return
        selector = models.PointIdsList(points=[point_id(i) for i in ids])
        with self.translate_errors(f"deleting {len(ids)} points from {collection!r}"):
            self.client.delete(collection, selector)

    def retrieve(self, collection: str, ids: list[int | str], with_vectors: bool | list[str] = False) -> list[Point]:
        """The points that exist among ``ids``, in the order asked for."""
        if not ids:
            return []
        wanted = [point_id(i) for i in ids]
        with self.translate_errors(f"reading {len(ids)} points of {collection!r}"):
            records = self.client.retrieve(collection, wanted, with_payload=True, with_vectors=with_vectors)
        found = {str(r.id): to_point(r) for r in records}
        return [found[str(i)] for i in wanted if str(i) in found]

    def scroll_pages(
        self,
        collection: str,
        *,
        batch_size: int = 256,
        with_vectors: bool | list[str] = False,
        filter: Filter | None = None,
        cursor: Cursor = None,
    ) -> Iterator[tuple[list[Point], Cursor]]:
        """Qdrant's scroll in id order; the cursor is ``{"offset": <first id of the next page>}``, or
        ``{"end": true}`` after the last page."""
        if cursor and cursor.get("end"):
            return
        offset = (cursor or {}).get("offset")
        flt = qdrant_filter(filter)
        while True:
            with self.translate_errors(f"scrolling {collection!r}"):
                records, offset = self.client.scroll(
                    collection, scroll_filter=flt, limit=batch_size, offset=offset, with_payload=True, with_vectors=with_vectors
                )
            after: Cursor = {"end": True} if offset is None else {"offset": cursor_offset(offset)}
            if records or offset is not None:
                yield [to_point(r) for r in records], after
            if offset is None:
                return

    ranged_scans = True

    def cursor_from(self, first):
        return {"offset": cursor_offset(point_id(first))}

    def cursor_id(self, cursor):
        return None if not cursor or cursor.get("end") else cursor.get("offset")

    def scan_ids(self, collection: str, filter: Filter | None = None) -> Iterator[list[int | str]]:
        offset, flt = None, qdrant_filter(filter)
        while True:
            with self.translate_errors(f"scrolling the ids of {collection!r}"):
                records, offset = self.client.scroll(collection, scroll_filter=flt, limit=self.id_page_size, offset=offset,
                                                     with_payload=False, with_vectors=False)
            if records:
                yield [r.id for r in records]
            if offset is None:
                return

    def sample_ids(self, collection: str, n: int, filter: Filter | None = None) -> list[int | str]:
        """Qdrant's random sample (``query_points`` with ``sample: random``, servers >= 1.11): no pass
        over the collection; older servers read the ids once."""
        try:
            with self.translate_errors(f"sampling ids of {collection!r}"):
                result = self.client.query_points(collection, query=models.SampleQuery(sample=models.Sample.RANDOM),
                                                  query_filter=qdrant_filter(filter), limit=n, with_payload=False)
        except BackendError:
            return super().sample_ids(collection, n, filter)
        return [cursor_offset(p.id) for p in result.points]

    def search(
        self, collection: str, vector_name: str, vector: list[float], *, limit: int = 10, filter: Filter | None = None
    ) -> list[Hit]:
        with self.translate_errors(f"searching {collection!r} by {vector_name or 'its vector'!r}"):
            result = self.client.query_points(
                collection, query=vector_value(vector), using=vector_name or None, limit=limit,
                query_filter=qdrant_filter(filter), with_payload=True, with_vectors=False,
            )
        return [(r.id, r.score, dict(r.payload or {})) for r in result.points]

    # state ---------------------------------------------------------------------------------------

    def records(self, collection: str):
        from vecmig.backends.qdrant_records import QdrantRecordStore

        return QdrantRecordStore(self, collection)


# ---------------------------------------------------------------------------------------------------
# embedded store


def open_embedded(path: Path, lock_timeout: float) -> QdrantClient:
    """Open a local-mode folder, waiting up to ``lock_timeout`` seconds while another process holds it."""
    path = path.resolve()
    hush_large_collection_warning()  # opening warns about every large collection
    if path.exists() and not path.is_dir():
        raise BackendError(f"the embedded store {path} is a file, not a folder: fix `url` in vecmig.ini or VECMIG_URL")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BackendError(f"can't create the embedded store folder {path}: {e.strerror}") from e
    deadline = time.monotonic() + max(lock_timeout, 0.0)
    while True:
        if not folder_locked(path):  # probe first: opening loads every collection, which may be slow
            try:
                return QdrantClient(path=str(path))
            except RuntimeError as e:
                if "already accessed by another instance" not in str(e):
                    raise BackendError(f"can't open the embedded store {path}: {one_line(e)}") from e
            except (ValueError, OSError) as e:
                raise BackendError(f"can't open the embedded store {path}: {one_line(e)}") from e
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockError(
                f"the embedded store at {path} is in use by another vecmig process: wait for it to finish, "
                "or use a Qdrant server for concurrent access"
            )
        time.sleep(min(LOCK_POLL_SECONDS, remaining))


def folder_locked(path: Path) -> bool:
    """Whether another process holds the local-mode lock of ``path`` (the same lock qdrant-client takes)."""
    import portalocker  # as qdrant-client does: imported only when local mode is used

    lock_file = path / ".lock"
    if not lock_file.exists():
        return False
    try:
        with open(lock_file, "r+") as f:
            portalocker.lock(f, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
            portalocker.unlock(f)
    except portalocker.exceptions.LockException:
        return True
    except OSError:
        return False  # let the real open report the problem
    return False


# ---------------------------------------------------------------------------------------------------
# conditional vector writes


def vector_operations(points: list[Point], lacking: str | None) -> list[Any]:
    """``batch_update_points`` operations writing the points' payload fields, then their vectors.

    With ``lacking`` each write is guarded by ``must_not: has_vector lacking`` (the payload per point,
    with its ``has_id``), evaluated by Qdrant point by point.
    """
    missing = [models.HasVectorCondition(has_vector=lacking)] if lacking is not None else None
    ops: list[Any] = []
    for p in points:
        if not p.payload:
            continue
        pid = point_id(p.id)
        if missing:
            target = models.SetPayload(payload=p.payload, filter=models.Filter(must=[models.HasIdCondition(has_id=[pid])], must_not=missing))
        else:
            target = models.SetPayload(payload=p.payload, points=[pid])
        ops.append(models.SetPayloadOperation(set_payload=target))
    with_vectors = [models.PointVectors(id=point_id(p.id), vector=vector_struct(p)) for p in points if p.vectors]
    if with_vectors:
        guard = models.Filter(must_not=missing) if missing else None
        ops.append(models.UpdateVectorsOperation(update_vectors=models.UpdateVectors(points=with_vectors, update_filter=guard)))
    return ops


def is_not_found(e: BackendError) -> bool:
    cause = e.__cause__
    return isinstance(cause, UnexpectedResponse) and cause.status_code == 404


def is_point_missing(e: BackendError) -> bool:
    """A 404 naming a point ("No point with id 7 found"), not the collection."""
    cause = e.__cause__
    return is_not_found(e) and re.search(r"\bno point\b", server_message(cause), re.IGNORECASE) is not None


# ---------------------------------------------------------------------------------------------------
# errors


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def server_message(e: UnexpectedResponse) -> str:
    try:
        message = json.loads(e.content)["status"]["error"]
    except (ValueError, KeyError, TypeError):
        message = e.content.decode("utf-8", "replace")[:200] or e.reason_phrase
    return " ".join(str(message).split())


def connection_reason(e: BaseException) -> str:
    """A short reason for a failed connection: 'connection refused', 'timed out', ..."""
    import httpx

    chain, seen = [], set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        chain.append(cur)
        cur = getattr(cur, "source", None) or cur.__cause__ or cur.__context__
    if any(isinstance(c, (httpx.TimeoutException, TimeoutError)) for c in chain):
        return "timed out"
    text = " ".join(str(c) for c in chain).lower()
    if "connection refused" in text:
        return "connection refused"
    if any(s in text for s in ("name or service not known", "nodename nor servname", "getaddrinfo", "name resolution")):
        return "unknown host"
    if "ssl" in text or "certificate" in text:
        return f"TLS failed ({one_line(chain[-1])})"
    return one_line(chain[-1])


def parse_version(text: str) -> tuple[int, int, int]:
    numbers = [int(n) for n in re.findall(r"\d+", text.split("-")[0].split("+")[0])[:3]]
    while len(numbers) < 3:
        numbers.append(0)
    return tuple(numbers)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------
# CollectionSpec <-> qdrant models
