"""The state collection on Weaviate: small JSON records in a collection without vectors.

Each record is one object: id ``uuid5(RECORDS_NAMESPACE, key)``, properties ``key`` and ``kind``
(exact-match, filterable), ``doc`` (the JSON text, not indexed) and ``token`` (a fresh random value
per write, not indexed).

Weaviate has no compare-and-set, so the two conditional writes are write-then-verify:

- ``insert_if_absent`` creates the object with ``POST /v1/objects``, which Weaviate refuses (422)
  when the id exists. That check and the write are not one atomic step inside the server, so the
  call then waits ``settle`` seconds and reads the record back: it won only if its token is there.
- ``replace_if`` reads, compares, writes, waits ``settle`` seconds and reads back its token.

Guarantee: of competing writers, at most one sees True as long as each one's read-compare-write
takes less than ``settle`` seconds (0.25 s by default; a few milliseconds is typical). A writer
that lost after all finds out at its next ``replace_if`` (the lock lease's renewal), because the
record no longer holds its expected value.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from vecmig.backends.base import RecordStore
from vecmig.backends.weaviate import client_library, error_text
from vecmig.errors import BackendError
from vecmig.state_records import NotJSON, stray_point

#: fixed namespace of the record ids; never change it (existing state would become unreadable)
RECORDS_NAMESPACE = uuid.UUID("6f1c3a52-9d1e-5b0a-8f4e-7ec1a0d3b9c4")
#: records per page when scanning
PAGE = 1000


def _loads(text: str | None):
    """A record's ``doc`` property: its JSON, or the text itself when it is not JSON (reported by the reader)."""
    try:
        return json.loads(text or "{}")
    except ValueError:
        return NotJSON(text)


@dataclass
class _Stored:
    doc: dict
    token: str


class WeaviateRecordStore(RecordStore):
    """Records in one Weaviate collection (``VecmigState`` by default)."""

    def __init__(self, backend, name: str, *, settle: float = 0.25):
        self.backend = backend
        self.name = name
        self.settle = settle
        self._exists = False

    @property
    def _client(self):
        return self.backend.client

    @property
    def _col(self):
        return self._client.collections.use(self.name)

    @staticmethod
    def object_id(key: str) -> uuid.UUID:
        return uuid.uuid5(RECORDS_NAMESPACE, key)

    def _props(self, key: str, doc: dict, token: str) -> dict[str, str]:
        return {"key": key, "kind": key.split("/", 1)[0], "doc": json.dumps(doc, sort_keys=True, default=str), "token": token}

    # the collection

    def exists(self) -> bool:
        if not self._exists:
            with self.backend._errors(f"state collection {self.name!r}"):
                self._exists = self._client.collections.exists(self.name)
        return self._exists

    def ensure(self) -> None:
        if self.exists():
            return
        text = {"dataType": ["text"], "tokenization": "field", "indexSearchable": False}
        definition = {
            "class": self.name,
            "description": "vecmig migration state: heads, steps, journal, checkpoints, lock",
            "vectorizer": "none",
            "vectorIndexConfig": {"skip": True},  # records have no vectors
            "properties": [
                {"name": "key", **text, "indexFilterable": True},
                {"name": "kind", **text, "indexFilterable": True},
                {"name": "doc", **text, "indexFilterable": False},
                {"name": "token", **text, "indexFilterable": False},
            ],
        }
        try:
            with self.backend._errors(f"create state collection {self.name!r}"):
                self._client.collections.create_from_dict(definition)
        except BackendError:
            if not self._client.collections.exists(self.name):  # not a race with another runner's ensure()
                raise
        self._exists = True

    # plain reads and writes

    def _read(self, key: str) -> _Stored | None:
        with self.backend._errors(f"read state record {key!r}"):
            obj = self._col.query.fetch_object_by_id(self.object_id(key))
        if obj is None:
            return None
        if obj.properties.get("key") != key:  # an object written by hand (or by another tool) at this record's id
            raise stray_point(self.name, obj.uuid, obj.properties.get("kind"))
        return _Stored(_loads(obj.properties.get("doc")), obj.properties.get("token") or "")

    def _write(self, key: str, doc: dict, token: str) -> None:
        _, wvc = client_library()
        with self.backend._errors(f"write state record {key!r}"):
            result = self._col.data.insert_many([wvc.data.DataObject(uuid=self.object_id(key), properties=self._props(key, doc, token))])
        if result.has_errors:
            raise BackendError(f"write state record {key!r}: {next(iter(result.errors.values())).message}")

    def get(self, key: str) -> dict | None:
        stored = self._read(key)
        return stored.doc if stored else None

    def put(self, key: str, doc: dict) -> None:
        self._write(key, doc, uuid.uuid4().hex)

    def delete(self, key: str) -> None:
        with self.backend._errors(f"delete state record {key!r}"):
            self._col.data.delete_by_id(self.object_id(key))

    def scan(self, kind: str) -> dict[str, dict]:
        """A filtered query when the kind has fewer than PAGE records, else the cursor over all."""
        _, wvc = client_library()
        with self.backend._errors(f"scan state records {kind!r}"):
            res = self._col.query.fetch_objects(filters=wvc.query.Filter.by_property("kind").equal(kind), limit=PAGE, return_properties=["key", "doc"])
            objects = res.objects
            if len(objects) >= PAGE:  # a filtered query can't page past Weaviate's result window: walk everything
                objects = [o for o in self._col.iterator(return_properties=["key", "kind", "doc"], cache_size=PAGE) if o.properties.get("kind") == kind]
        out = {}
        for obj in objects:
            key = obj.properties.get("key") or ""
            if not key:
                raise stray_point(self.name, obj.uuid, kind)
            if key == kind or key.startswith(kind + "/"):
                out[key] = _loads(obj.properties.get("doc"))
        return dict(sorted(out.items()))

    def strays(self, limit: int = 3) -> list[str]:
        with self.backend._errors(f"state collection {self.name!r}"):
            properties = {p.name for p in self._col.config.get().properties}
            if "key" not in properties:  # not a state collection at all
                return [str(o.uuid) for o in self._col.query.fetch_objects(limit=limit, return_properties=[]).objects]
            found = []
            for obj in self._col.iterator(return_properties=["key"], cache_size=PAGE):
                if not obj.properties.get("key"):
                    found.append(str(obj.uuid))
                    if len(found) >= limit:
                        break
            return found

    # conditional writes (write-then-verify, see the module docstring)

    def insert_if_absent(self, key: str, doc: dict) -> bool:
        token = uuid.uuid4().hex
        try:
            self._col.data.insert(uuid=self.object_id(key), properties=self._props(key, doc, token))
        except Exception as e:
            if getattr(e, "status_code", None) == 422 and "already exists" in error_text(e):
                stored = self._read(key)
                return stored is not None and stored.token == token
            with self.backend._errors(f"insert state record {key!r}"):
                raise
        return self._verify(key, token)

    def replace_if(self, key: str, doc: dict, field: str, expected: Any) -> bool:
        current = self._read(key)
        if current is None or not isinstance(current.doc, dict) or current.doc.get(field) != expected:
            return False
        token = uuid.uuid4().hex
        self._write(key, doc, token)
        return self._verify(key, token)

    def _verify(self, key: str, token: str) -> bool:
        if self.settle:
            time.sleep(self.settle)
        stored = self._read(key)
        return stored is not None and stored.token == token
