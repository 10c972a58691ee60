"""The protocol every store implements. Nothing above ``backends/`` imports a client library."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterator

from vecmig.schema import CollectionSpec, Point, SparseVectorSpec, VectorSpec

#: the neutral filter format is Qdrant's filter JSON: ``{"must": [{"key": "category", "match": {"value": "x"}}]}``
Filter = dict[str, Any]
#: where a long scan resumes: JSON (a dict) the backend alone interprets; None is the beginning
Cursor = dict[str, Any] | None
#: one search hit: (point id, score, payload)
Hit = tuple[int | str, float, dict[str, Any]]

# Features an op may need; ``Backend.unsupported`` says why one is missing.
FEATURES = ("add_vector", "drop_vector", "sparse_vectors", "multivectors", "aliases", "conditional_writes")


class RecordStore(ABC):
    """Small JSON documents keyed by strings like ``heads`` or ``journal/<rev>/up/0``.

    The state store (heads, journal, checkpoints, lock, routing) is built on this alone. The kind
    of a record is its key up to the first ``/``.
    """

    name: str

    @abstractmethod
    def exists(self) -> bool: ...

    @abstractmethod
    def ensure(self) -> None:
        """Create the backing collection if it is missing."""

    @abstractmethod
    def get(self, key: str) -> dict | None: ...

    @abstractmethod
    def put(self, key: str, doc: dict) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def scan(self, kind: str) -> dict[str, dict]:
        """All records whose key starts with ``kind/`` (or equals ``kind``)."""

    @abstractmethod
    def insert_if_absent(self, key: str, doc: dict) -> bool:
        """Write only if no record has this key; True if this call wrote it."""

    @abstractmethod
    def replace_if(self, key: str, doc: dict, field: str, expected: Any) -> bool:
        """Overwrite only if the stored doc's ``field`` equals ``expected``; True if written."""

    def strays(self, limit: int = 3) -> list[str]:
        """Ids of up to ``limit`` points in the collection that are not records (no ``key``): a
        collection of someone else's under the state collection's name, or a hand-written point."""
        return []


class Backend(ABC):
    """One connected store. Methods raise ``BackendError`` with a user-facing message."""

    kind: str  # "qdrant" | "weaviate"
    default_state_collection: str
    #: the store admits one process at a time (embedded Qdrant): the lock lease is then a record of
    #: who runs, and needs no heartbeat thread
    exclusive: bool = False
    #: points per page for long scans (copy, backfill): large where each page costs a pass over
    #: the whole collection (embedded Qdrant), moderate where pages are cheap requests
    scan_page_size: int = 256

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> str:
        """Where this backend points, safe to print (no secrets)."""

    @abstractmethod
    def server_version(self) -> tuple[int, int, int]: ...

    @abstractmethod
    def unsupported(self, feature: str, collection: CollectionSpec | None = None) -> str | None:
        """None when ``feature`` works here (for that collection), else why not and what to do."""

    def invalid_collection_name(self, name: str) -> str | None:
        """None when ``name`` is a valid collection name here, else why not."""
        return None

    def invalid_collection_spec(self, spec: CollectionSpec) -> str | None:
        """None when this store can create ``spec`` (options, property types, vector names), else why not."""
        return None

    def invalid_filter(self, filter: Filter) -> str | None:
        """None when this store can apply ``filter`` (Qdrant's filter JSON), else what is wrong or unsupported."""
        return None

    # schema
    @abstractmethod
    def list_collections(self) -> list[str]: ...

    @abstractmethod
    def get_collection(self, name: str) -> CollectionSpec | None: ...

    @abstractmethod
    def create_collection(self, spec: CollectionSpec) -> None: ...

    @abstractmethod
    def drop_collection(self, name: str) -> None: ...

    @abstractmethod
    def add_vector(self, collection: str, name: str, spec: VectorSpec | SparseVectorSpec) -> None: ...

    @abstractmethod
    def drop_vector(self, collection: str, name: str) -> None: ...

    @abstractmethod
    def update_collection(self, name: str, options: dict[str, Any]) -> None: ...

    @abstractmethod
    def create_payload_index(self, collection: str, field: str, type: str) -> None: ...

    @abstractmethod
    def drop_payload_index(self, collection: str, field: str) -> None: ...

    @abstractmethod
    def list_aliases(self) -> dict[str, str]:
        """alias -> collection."""

    @abstractmethod
    def create_alias(self, alias: str, collection: str) -> None: ...

    @abstractmethod
    def repoint_alias(self, alias: str, collection: str) -> None:
        """Point an existing alias at another collection in one atomic request."""

    @abstractmethod
    def drop_alias(self, alias: str) -> None: ...

    # points
    @abstractmethod
    def count(self, collection: str, filter: Filter | None = None) -> int:
        """Points in the collection (matching ``filter``), counted exactly."""

    @abstractmethod
    def upsert(self, collection: str, points: list[Point], *, insert_only: bool = False, exact: bool = False) -> None:
        """Write whole points by id. ``insert_only``: ids that already exist are left untouched, so a
        point the application wrote in the meantime is never overwritten (each backend says how
        far that is guaranteed). ``exact``: that holds whatever the timing, even where it costs
        speed (a store without a conditional batch write), for writes no reconcile follows."""

    @abstractmethod
    def update_vectors(self, collection: str, points: list[Point], *, only_if_missing: str | None = None) -> None:
        """Write the named vectors in each point's ``vectors`` into existing points, and merge each
        point's ``payload`` fields into the stored payload; other vectors and fields stay as they are.
        Ids that don't exist (deleted meanwhile) are skipped. ``only_if_missing=V``: points that
        already have vector ``V`` are left untouched (vectors and payload)."""

    def delete_payload_field(self, collection: str, field: str) -> None:
        """Remove ``field`` from the payload of every point (stores that can drop a vector)."""
        raise NotImplementedError(f"{type(self).__name__} can't remove a payload field from every point")

    @abstractmethod
    def delete(self, collection: str, ids: list[int | str]) -> None: ...

    @abstractmethod
    def retrieve(self, collection: str, ids: list[int | str], with_vectors: bool = False) -> list[Point]: ...

    @abstractmethod
    def scroll_pages(
        self,
        collection: str,
        *,
        batch_size: int = 256,
        with_vectors: bool | list[str] = False,
        filter: Filter | None = None,
        cursor: Cursor = None,
    ) -> Iterator[tuple[list[Point], Cursor]]:
        """Pages of points in the store's id order, each with the cursor that resumes right after it.

        A cursor is JSON, made to be kept in a checkpoint: ``scroll_pages(..., cursor=c)`` goes on
        with the page after the one ``c`` came with (and yields nothing after the last page). A page
        may be empty when ``filter`` matched none of the points it covered; its cursor still moves on.
        """

    #: ``cursor_from`` works: a scan can start at an id, so data ops can run partitioned
    ranged_scans: bool = False

    def cursor_from(self, point_id: int | str) -> Cursor:
        """A cursor from which ``scroll_pages`` yields the points at and after ``point_id`` (which need
        not exist) in the store's id order: where a partition of a scan starts (``ranged_scans``)."""
        raise NotImplementedError(f"{type(self).__name__} can't start a scan at an id")

    def cursor_id(self, cursor: Cursor) -> int | str | None:
        """The id a cursor from ``scroll_pages`` stands at: the scan goes on at or after it (None: not known)."""
        return None

    #: ids per page of an id-only scan (``scan_ids``): no payload and no vector, so pages can be large
    id_page_size: int = 1000

    def scan_ids(self, collection: str, filter: Filter | None = None) -> Iterator[list[int | str]]:
        """Every id of ``collection`` (those matching ``filter``) in the store's id order, a page at a
        time, without payloads or vectors. This default scrolls whole points."""
        for page in self.scroll(collection, batch_size=self.id_page_size, filter=filter):
            yield [point.id for point in page]

    def sample_ids(self, collection: str, n: int, filter: Filter | None = None) -> list[int | str]:
        """About ``n`` ids drawn uniformly from ``collection`` (those matching ``filter``), in no order:
        where a partition plan cuts. This default reads every id once, into a seeded sample."""
        from vecmig.datapath.sample import Reservoir

        reservoir = Reservoir(n)
        for ids in self.scan_ids(collection, filter):
            for point_id in ids:
                reservoir.offer(point_id)
        return reservoir.items

    def scroll(
        self, collection: str, *, batch_size: int = 256, with_vectors: bool | list[str] = False, filter: Filter | None = None
    ) -> Iterator[list[Point]]:
        """All points (matching ``filter``), page by page; no empty pages."""
        for page, _ in self.scroll_pages(collection, batch_size=batch_size, with_vectors=with_vectors, filter=filter):
            if page:
                yield page

    @abstractmethod
    def search(
        self, collection: str, vector_name: str, vector: list[float], *, limit: int = 10, filter: Filter | None = None
    ) -> list[Hit]:
        """The ``limit`` nearest points by ``vector_name``, best first, as (id, score, payload).

        The score is Qdrant's: a similarity for cosine and dot (higher is closer), the distance for
        euclid and manhattan (lower is closer), whatever the store reports natively.
        """

    # state
    @abstractmethod
    def records(self, collection: str) -> RecordStore: ...
