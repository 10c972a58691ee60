"""The protocol every store implements. Nothing above ``backends/`` imports a client library."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterator

from vecmig.schema import CollectionSpec, Point, SparseVectorSpec, VectorSpec

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


class Backend(ABC):
    """One connected store. Methods raise ``BackendError`` with a user-facing message."""

    kind: str  # "qdrant" | "weaviate"
    default_state_collection: str
    #: the store admits one process at a time (embedded Qdrant): the lock lease is then a record of
    #: who runs, and needs no heartbeat thread
    exclusive: bool = False

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
    def count(self, collection: str) -> int: ...

    @abstractmethod
    def upsert(self, collection: str, points: list[Point]) -> None: ...

    @abstractmethod
    def delete(self, collection: str, ids: list[int | str]) -> None: ...

    @abstractmethod
    def retrieve(self, collection: str, ids: list[int | str], with_vectors: bool = False) -> list[Point]: ...

    @abstractmethod
    def scroll(
        self, collection: str, *, batch_size: int = 256, with_vectors: bool | list[str] = False
    ) -> Iterator[list[Point]]:
        """All points, page by page."""

    # state
    @abstractmethod
    def records(self, collection: str) -> RecordStore: ...
