"""The state store's records in a Qdrant collection without vectors: one point per key.

Conditional writes: where the store has them (server >= 1.17, and local mode, which implements
``update_mode``/``update_filter`` and is single-process anyway) ``insert_if_absent`` and ``replace_if``
are real conditional upserts, decided by Qdrant. Each write carries a fresh token; reading the
record back tells this writer whether its write is the one that landed. On older servers they fall
back to read-check-write, wait ``settle_delay``, read back: two writers racing inside that window
can both believe they won, so a runner should re-check what it holds (the lock lease does).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from qdrant_client import models

from vecmig.backends.base import RecordStore
from vecmig.errors import BackendError
from vecmig.state_records import stray_point

#: record ids are uuid5(RECORD_NAMESPACE, key): the same key is the same point in every store
RECORD_NAMESPACE = uuid.UUID("5b7e4f1c-2a0d-5e8b-9c3f-6d1a2b4c8e70")
SCAN_PAGE = 256


def record_id(key: str) -> str:
    return str(uuid.uuid5(RECORD_NAMESPACE, key))


class QdrantRecordStore(RecordStore):
    """Records ``{"key", "kind", "doc", "token"}`` in collection ``name``; ``kind`` is indexed on servers."""

    settle_delay = 0.5  # seconds between write and read-back where there is no conditional write

    def __init__(self, backend, name: str):
        self.backend = backend
        self.client = backend.client
        self.name = name

    def _errors(self, what: str):
        return self.backend.translate_errors(f"{what} in state collection {self.name!r}")

    def _conditional(self) -> bool:
        return self.backend.unsupported("conditional_writes") is None

    def exists(self) -> bool:
        with self._errors("checking"):
            return self.client.collection_exists(self.name)

    def ensure(self) -> None:
        if self.exists():
            return
        try:
            with self._errors("creating the collection"):
                self.client.create_collection(self.name, vectors_config={})
        except BackendError:
            if not self.exists():  # else another runner created it first
                raise
        if not self.backend.embedded:  # local mode ignores payload indexes
            with self._errors("indexing kind"):
                self.client.create_payload_index(self.name, "kind", field_schema=models.PayloadSchemaType.KEYWORD)

    def _read(self, key: str) -> dict | None:
        """The whole payload of ``key``'s record (doc and token), or None."""
        with self._errors(f"reading {key!r}"):
            records = self.client.retrieve(self.name, [record_id(key)], with_payload=True, with_vectors=False)
        if not records:
            return None
        payload = dict(records[0].payload or {})
        if payload.get("key") != key:  # a point written by hand (or by another tool) at this record's id
            raise stray_point(self.name, records[0].id, payload.get("kind"))
        return payload

    def _write(self, key: str, doc: dict, **conditions) -> str:
        """Upsert ``key`` (under ``conditions``); returns the token the write carried."""
        token = uuid.uuid4().hex
        payload = {"key": key, "kind": key.split("/")[0], "doc": doc, "token": token}
        with self._errors(f"writing {key!r}"):
            self.client.upsert(self.name, [models.PointStruct(id=record_id(key), vector={}, payload=payload)], **conditions)
        return token

    def _landed(self, key: str, token: str) -> bool:
        stored = self._read(key)
        return stored is not None and stored.get("token") == token

    def get(self, key: str) -> dict | None:
        stored = self._read(key)
        return stored.get("doc") if stored else None

    def put(self, key: str, doc: dict) -> None:
        self._write(key, doc)

    def delete(self, key: str) -> None:
        with self._errors(f"deleting {key!r}"):
            self.client.delete(self.name, models.PointIdsList(points=[record_id(key)]))

    def scan(self, kind: str) -> dict[str, dict]:
        flt = models.Filter(must=[models.FieldCondition(key="kind", match=models.MatchValue(value=kind))])
        found: dict[str, dict] = {}
        offset = None
        while True:
            with self._errors(f"scanning {kind!r}"):
                records, offset = self.client.scroll(
                    self.name, scroll_filter=flt, limit=SCAN_PAGE, offset=offset, with_payload=True, with_vectors=False
                )
            for r in records:
                payload = r.payload or {}
                if not isinstance(payload.get("key"), str) or not payload["key"]:
                    raise stray_point(self.name, r.id, kind)
                found[payload["key"]] = payload.get("doc")
            if offset is None:
                return dict(sorted(found.items()))

    def strays(self, limit: int = 3) -> list[str]:
        flt = models.Filter(must=[models.IsEmptyCondition(is_empty=models.PayloadField(key="key"))])
        with self._errors("looking for points that are not records"):
            records, _ = self.client.scroll(self.name, scroll_filter=flt, limit=limit, with_payload=False, with_vectors=False)
        return [str(r.id) for r in records]

    def insert_if_absent(self, key: str, doc: dict) -> bool:
        if self._conditional():
            token = self._write(key, doc, update_mode=models.UpdateMode.INSERT_ONLY)
            return self._landed(key, token)
        if self._read(key) is not None:
            return False
        token = self._write(key, doc)
        time.sleep(self.settle_delay)
        return self._landed(key, token)

    def replace_if(self, key: str, doc: dict, field: str, expected: Any) -> bool:
        condition = expectation(f"doc.{field}", expected)
        if self._conditional() and condition is not None:
            token = self._write(key, doc, update_mode=models.UpdateMode.UPDATE_ONLY, update_filter=condition)
            return self._landed(key, token)
        stored = self._read(key)
        current = stored.get("doc") if stored is not None else None
        if not isinstance(current, dict) or current.get(field) != expected:
            return False
        token = self._write(key, doc)
        time.sleep(self.settle_delay)
        return self._landed(key, token)


def expectation(path: str, expected: Any) -> models.Filter | None:
    """A filter matching records whose payload at ``path`` equals ``expected``; None if Qdrant can't say it.

    None matches a missing, null or empty field; floats match exactly through a closed range; lists and
    dicts have no equality condition in Qdrant (the caller falls back to read-check-write).
    """
    if expected is None:
        condition: Any = models.IsEmptyCondition(is_empty=models.PayloadField(key=path))
    elif isinstance(expected, (bool, int, str)):
        condition = models.FieldCondition(key=path, match=models.MatchValue(value=expected))
    elif isinstance(expected, float):
        condition = models.FieldCondition(key=path, range=models.Range(gte=expected, lte=expected))
    else:
        return None
    return models.Filter(must=[condition])
