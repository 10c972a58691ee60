"""The Qdrant backend against embedded stores (memory, a folder) and, when VECMIG_TEST_QDRANT_URL is
set, a real server. Server-only behaviour (version gates, auth errors) is also checked against a tiny
fake HTTP server, so it is covered without one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vecmig.backends import parse_url
from vecmig.backends.qdrant import QdrantBackend
from vecmig.config import Config
from vecmig.errors import BackendError, ConfigError, LockError, PlanError
from vecmig.schema import CollectionSpec, Point, SparseVectorSpec, VectorSpec

SERVER_URL = os.environ.get("VECMIG_TEST_QDRANT_URL")
REPO = Path(__file__).resolve().parents[1]
UUID = "6f0b3c9e-5a1d-4e2b-9c7a-1b2c3d4e5f60"


def config(tmp_path: Path, url: str, **fields) -> Config:
    cfg = Config(path=tmp_path / "vecmig.ini", url=url, api_key=os.environ.get("VECMIG_TEST_QDRANT_API_KEY"))
    for key, value in fields.items():
        setattr(cfg, key, value)
    return cfg


def connect(cfg: Config) -> QdrantBackend:
    return QdrantBackend.connect(parse_url(cfg.url), cfg)


@pytest.fixture(params=["memory", "local", "server"])
def backend(request, tmp_path):
    if request.param == "server" and not SERVER_URL:
        pytest.skip("set VECMIG_TEST_QDRANT_URL (e.g. qdrant://127.0.0.1:6333) to test against a Qdrant server")
    url = {"memory": "qdrant+memory://", "local": "qdrant+local://store", "server": SERVER_URL}[request.param]
    b = connect(config(tmp_path, url))
    yield b
    if request.param == "server":  # leave the shared server as it was
        mine = {n for n in b.list_collections() if n.startswith(PREFIX)}
        for alias, target in b.list_aliases().items():
            if target in mine:
                b.drop_alias(alias)
        for name in mine:
            b.drop_collection(name)
    b.close()


PREFIX = f"t{uuid.uuid4().hex[:8]}_"


def n(name: str) -> str:
    """A collection name unique to this test run (a shared server may hold others)."""
    return PREFIX + name


def full_spec(name: str) -> CollectionSpec:
    return CollectionSpec(
        name=name,
        vectors={
            "dense": VectorSpec(4, "dot", on_disk=True, options={"hnsw_config": {"m": 8}}),
            "colbert": VectorSpec(3, "cosine", multivector=True),
        },
        sparse_vectors={"bm25": SparseVectorSpec(modifier="idf", options={"on_disk": True})},
        payload_indexes={"category": "keyword", "price": "float", "day": "datetime"},
        options={"hnsw_config": {"m": 32}, "on_disk_payload": True, "optimizers_config": {"indexing_threshold": 1000}},
    )


# schema -----------------------------------------------------------------------------------------


def test_created_collection_reads_back_with_its_vectors_indexes_and_options(backend):
    backend.create_collection(full_spec(n("products")))
    got = backend.get_collection(n("products"))
    assert n("products") in backend.list_collections()
    assert got.vectors["dense"].size == 4 and got.vectors["dense"].distance == "dot" and got.vectors["dense"].on_disk is True
    assert got.vectors["dense"].options["hnsw_config"]["m"] == 8
    assert got.vectors["colbert"].multivector and got.vectors["colbert"].size == 3
    assert got.sparse_vectors["bm25"].modifier == "idf" and got.sparse_vectors["bm25"].options["on_disk"] is True
    assert got.payload_indexes == {"category": "keyword", "price": "float", "day": "datetime"}
    backend.drop_collection(n("products"))
    assert backend.get_collection(n("products")) is None
    assert n("products") not in backend.list_collections()


def test_single_unnamed_vector_reads_back_as_empty_name_and_refuses_add_vector(backend):
    backend.create_collection(CollectionSpec(n("plain"), vectors={"": VectorSpec(2, "euclid")}))
    got = backend.get_collection(n("plain"))
    assert list(got.vectors) == [""] and got.vectors[""].distance == "euclid"
    reason = backend.unsupported("add_vector", got)
    assert "new-collection strategy" in reason and "create_collection + copy/backfill + repoint_alias" in reason


def test_add_and_drop_dense_and_sparse_vectors(backend):
    backend.create_collection(CollectionSpec(n("c"), vectors={"old": VectorSpec(2)}))
    spec = backend.get_collection(n("c"))
    if backend.unsupported("add_vector", spec):
        pytest.skip(backend.unsupported("add_vector", spec))
    backend.upsert(n("c"), [Point(1, {"t": "x"}, {"old": [1.0, 0.0]})])
    backend.add_vector(n("c"), "new", VectorSpec(3, "manhattan", options={"hnsw_config": {"m": 4}}))
    backend.add_vector(n("c"), "words", SparseVectorSpec(modifier="idf"))
    got = backend.get_collection(n("c"))
    assert got.vectors["new"].size == 3 and got.vectors["new"].distance == "manhattan"
    assert got.sparse_vectors["words"].modifier == "idf"
    backend.upsert(n("c"), [Point(1, {"t": "x"}, {"old": [1.0, 0.0], "new": [1, 2, 3], "words": {"indices": [7], "values": [0.5]}})])
    assert set(backend.retrieve(n("c"), [1], with_vectors=True)[0].vectors) == {"old", "new", "words"}
    backend.drop_vector(n("c"), "new")
    backend.drop_vector(n("c"), "words")
    assert backend.get_collection(n("c")).vector_names() == ["old"]
    assert backend.retrieve(n("c"), [1], with_vectors=True)[0].vectors.keys() == {"old"}


def test_payload_indexes_can_be_added_and_dropped(backend, recwarn):
    backend.create_collection(CollectionSpec(n("c"), vectors={"v": VectorSpec(2)}))
    backend.create_payload_index(n("c"), "tag", "keyword")
    backend.create_payload_index(n("c"), "n", "integer")
    backend.drop_payload_index(n("c"), "tag")
    assert backend.get_collection(n("c")).payload_indexes == {"n": "integer"}
    assert not [w for w in recwarn if "Payload indexes" in str(w.message)]
    with pytest.raises(PlanError, match="'vector' is not one of keyword, integer"):
        backend.create_payload_index(n("c"), "x", "vector")


def test_update_collection_passes_options_and_names_a_bad_one(backend):
    backend.create_collection(CollectionSpec(n("c"), vectors={"v": VectorSpec(2)}))
    backend.update_collection(n("c"), {"hnsw_config": {"m": 4}, "optimizers_config": {"indexing_threshold": 500}, "on_disk_payload": True})
    with pytest.raises(PlanError, match=r"hnsw_config\.ef_construct: Input should be a valid integer"):
        backend.update_collection(n("c"), {"hnsw_config": {"ef_construct": "lots"}})
    with pytest.raises(PlanError, match="unknown Qdrant option 'hnsw'"):
        backend.update_collection(n("c"), {"hnsw": {"m": 4}})


def test_bad_create_options_fail_before_anything_is_created(backend):
    bad = [
        CollectionSpec(n("c"), options={"quantization_config": {"scalar": {"type": "int9"}}}),
        CollectionSpec(n("c"), options={"hnsw": {}}),
        CollectionSpec(n("c"), vectors={"v": VectorSpec(2, "hamming")}),
        CollectionSpec(n("c"), vectors={"v": VectorSpec(2, options={"index_type": "flat"})}),
        CollectionSpec(n("c"), sparse_vectors={"s": SparseVectorSpec(options={"shards": 2})}),
        CollectionSpec(n("c"), vectors={"a/b": VectorSpec(2)}),
        CollectionSpec(n("c"), vectors={"": VectorSpec(2), "named": VectorSpec(2)}),
        CollectionSpec(n("c"), vectors={"v": VectorSpec(2)}, payload_indexes={"f": "vector"}),
    ]
    assert backend.invalid_collection_spec(full_spec(n("c"))) is None
    for spec in bad:
        assert backend.invalid_collection_spec(spec)  # what plan-time validation sees
        with pytest.raises(PlanError) as info:
            backend.create_collection(spec)
        assert "\n" not in str(info.value) and str(info.value).startswith(f"create_collection {n('c')!r}")
    assert backend.get_collection(n("c")) is None


def test_aliases_are_created_repointed_in_one_request_and_dropped(backend):
    for name in ("v1", "v2"):
        backend.create_collection(CollectionSpec(n(name), vectors={"v": VectorSpec(2)}))
    backend.create_alias(n("live"), n("v1"))
    assert backend.list_aliases()[n("live")] == n("v1")

    calls = []
    real = backend.client.update_collection_aliases
    backend.client.update_collection_aliases = lambda ops, **kw: calls.append(ops) or real(ops, **kw)
    backend.repoint_alias(n("live"), n("v2"))
    assert len(calls) == 1 and len(calls[0]) == 2
    assert backend.list_aliases()[n("live")] == n("v2")

    backend.drop_alias(n("live"))
    assert n("live") not in backend.list_aliases()
    with pytest.raises(BackendError, match="does not exist: create it with create_alias"):
        backend.repoint_alias(n("live"), n("v1"))


# points -----------------------------------------------------------------------------------------


def test_points_round_trip_through_upsert_retrieve_scroll_count_delete(backend):
    backend.create_collection(full_spec(n("p")))
    points = [
        Point(1, {"category": "a"}, {"dense": [1, 2, 3, 4], "bm25": {"indices": [1, 5], "values": [0.5, 0.25]}, "colbert": [[1, 0, 0], [0, 1, 0]]}),
        Point(UUID.upper(), {"category": "b"}, {"dense": [0.5, 0.5, 0.5, 0.5]}),
        *[Point(i, {"i": i}, {}) for i in range(10, 15)],
    ]
    backend.upsert(n("p"), points)
    assert backend.count(n("p")) == 7

    got = backend.retrieve(n("p"), [UUID, 1, 999], with_vectors=True)
    assert [p.id for p in got] == [UUID, 1]
    assert got[1].payload == {"category": "a"} and got[1].vectors["dense"] == [1.0, 2.0, 3.0, 4.0]
    assert got[1].vectors["bm25"] == {"indices": [1, 5], "values": [0.5, 0.25]}
    assert len(got[1].vectors["colbert"]) == 2
    assert backend.retrieve(n("p"), [1])[0].vectors == {}

    pages = list(backend.scroll(n("p"), batch_size=3))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert {str(p.id) for page in pages for p in page} == {"1", UUID, "10", "11", "12", "13", "14"}

    backend.delete(n("p"), [10, 11, UUID])
    assert backend.count(n("p")) == 4
    assert backend.retrieve(n("p"), [UUID]) == []


def test_unnamed_vector_points_use_the_empty_name(backend):
    backend.create_collection(CollectionSpec(n("u"), vectors={"": VectorSpec(2, "dot")}))
    backend.upsert(n("u"), [Point(3, {}, {"": [0.25, 0.75]})])
    assert backend.retrieve(n("u"), [3], with_vectors=True)[0].vectors == {"": [0.25, 0.75]}


def test_bad_point_ids_and_missing_collections_fail_on_one_line(backend):
    backend.create_collection(CollectionSpec(n("c"), vectors={"v": VectorSpec(2)}))
    with pytest.raises(BackendError, match="neither an unsigned integer nor a UUID"):
        backend.upsert(n("c"), [Point("not-a-uuid", {}, {"v": [1, 2]})])
    with pytest.raises(BackendError) as info:
        backend.count(n("missing"))
    assert "\n" not in str(info.value) and n("missing") in str(info.value)


def test_collection_names_follow_qdrant_rules(backend):
    assert backend.invalid_collection_name("products_v2") is None
    for bad in ("", "a/b", "a\\b", "a:b", "nul\0", "x" * 256, ".."):
        assert backend.invalid_collection_name(bad)


# state records ----------------------------------------------------------------------------------


def test_records_get_put_delete_scan(backend):
    records = backend.records(n("state"))
    assert not records.exists()
    records.ensure()
    records.ensure()
    assert records.exists() and records.get("heads") is None
    records.put("heads", {"heads": ["abc"]})
    records.put("journal/abc/up/0", {"status": "done"})
    records.put("journal/abc/up/1", {"status": "started"})
    records.put("journalx", {"not": "a journal"})
    assert records.get("heads") == {"heads": ["abc"]}
    assert records.scan("journal") == {"journal/abc/up/0": {"status": "done"}, "journal/abc/up/1": {"status": "started"}}
    assert records.scan("heads") == {"heads": {"heads": ["abc"]}}
    records.delete("journal/abc/up/0")
    assert list(records.scan("journal")) == ["journal/abc/up/1"]


def test_records_scan_reads_every_page(backend, monkeypatch):
    import vecmig.backends.qdrant_records as qr

    monkeypatch.setattr(qr, "SCAN_PAGE", 2)
    records = backend.records(n("state"))
    records.ensure()
    for i in range(5):
        records.put(f"checkpoint/r{i}", {"i": i})
    assert records.scan("checkpoint") == {f"checkpoint/r{i}": {"i": i} for i in range(5)}


@pytest.mark.parametrize("conditional", [True, False], ids=["conditional", "write-then-verify"])
def test_records_conditional_writes_let_exactly_one_writer_win(backend, monkeypatch, conditional):
    records = backend.records(n("state"))
    records.ensure()
    if not conditional:  # what an old server gets
        monkeypatch.setattr(backend, "server_version", lambda: (1, 15, 0))
        monkeypatch.setattr(records, "settle_delay", 0)
    elif backend.unsupported("conditional_writes"):
        pytest.skip(backend.unsupported("conditional_writes"))

    assert records.insert_if_absent("lock", {"owner": "a", "n": 1})
    assert not records.insert_if_absent("lock", {"owner": "b", "n": 2})
    assert records.get("lock") == {"owner": "a", "n": 1}

    assert not records.replace_if("lock", {"owner": "c"}, "owner", "b")
    assert records.get("lock") == {"owner": "a", "n": 1}
    assert records.replace_if("lock", {"owner": "c", "n": 1.5}, "owner", "a")
    assert records.get("lock") == {"owner": "c", "n": 1.5}
    assert records.replace_if("lock", {"owner": "d", "n": 2}, "n", 1.5)
    assert not records.replace_if("lock", {"owner": "e"}, "n", 1.5)
    assert records.replace_if("lock", {"owner": "f"}, "missing", None)
    assert records.get("lock") == {"owner": "f"}

    assert not records.replace_if("nothing-here", {"owner": "x"}, "owner", "x")
    assert records.get("nothing-here") is None


# connecting -------------------------------------------------------------------------------------


def test_local_store_path_is_relative_to_the_config_folder_and_persists(tmp_path):
    b = connect(config(tmp_path, "qdrant+local://data/store"))
    b.records("vecmig_state").ensure()
    b.records("vecmig_state").put("heads", {"heads": ["x"]})
    assert b.describe() == "qdrant+local://data/store"
    b.close()
    assert (tmp_path / "data" / "store" / "meta.json").is_file()

    absolute = tmp_path / "data" / "store"
    b = connect(config(tmp_path / "elsewhere", f"qdrant+local://{absolute}"))
    assert b.records("vecmig_state").get("heads") == {"heads": ["x"]}
    assert b.server_version()[:2] >= (1, 17)
    b.close()


HOLDER = textwrap.dedent("""
    import sys
    from vecmig.backends import parse_url
    from vecmig.backends.qdrant import QdrantBackend
    from vecmig.config import Config
    cfg = Config(url=sys.argv[1])
    b = QdrantBackend.connect(parse_url(cfg.url), cfg)
    print("ready", flush=True)
    sys.stdin.read()
    b.close()
""")


def test_second_process_on_an_embedded_store_waits_then_fails_clearly(tmp_path):
    url = f"qdrant+local://{tmp_path / 'store'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "ready"
        started = time.monotonic()
        with pytest.raises(LockError) as info:
            connect(config(tmp_path, url, lock_timeout=0.5))
        assert time.monotonic() - started >= 0.5
        assert str(info.value) == (
            f"the embedded store at {(tmp_path / 'store').resolve()} is in use by another vecmig process: "
            "wait for it to finish, or use a Qdrant server for concurrent access"
        )
        # a waiting runner gets in as soon as the holder is done
        threading.Timer(0.3, holder.stdin.close).start()
        connect(config(tmp_path, url, lock_timeout=20)).close()
    finally:
        if not holder.stdin.closed:
            holder.stdin.close()
        holder.kill()
        holder.wait()
        holder.stdout.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast_on_one_line(tmp_path):
    port = free_port()
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        connect(config(tmp_path, f"qdrant://127.0.0.1:{port}?timeout=2"))
    assert time.monotonic() - started < 3
    assert str(info.value) == (
        f"can't reach Qdrant at qdrant://127.0.0.1:{port}: connection refused: check `url` in vecmig.ini or VECMIG_URL"
    )


def test_unknown_url_option_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown option 'grpc'"):
        connect(config(tmp_path, "qdrant://127.0.0.1:1?grpc=1"))


class FakeQdrant(BaseHTTPRequestHandler):
    """Just enough of Qdrant's REST API to connect: the root (version) and the collection list."""

    version = "1.16.2"
    api_key: str | None = None

    def do_GET(self):
        if self.path.rstrip("/") == "":
            self.reply(200, {"title": "qdrant - vector search engine", "version": self.version})
        elif self.api_key and self.headers.get("api-key") != self.api_key:
            self.reply(401, {"status": {"error": "Must provide an API key or an Authorization bearer token"}})
        elif self.path.startswith("/collections"):
            self.reply(200, {"result": {"collections": []}, "status": "ok", "time": 0.0})
        else:
            self.reply(404, {"status": {"error": "not found"}})

    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    def start(version="1.16.2", api_key=None):
        handler = type("Handler", (FakeQdrant,), {"version": version, "api_key": api_key})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    servers = []
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_old_server_version_gates_named_vector_changes_and_conditional_writes(tmp_path, fake_server):
    port = fake_server(version="1.16.2")
    b = connect(config(tmp_path, f"qdrant://127.0.0.1:{port}"))
    assert b.server_version() == (1, 16, 2) and not b.exclusive
    named = CollectionSpec("c", vectors={"v": VectorSpec(2)})
    assert "needs 1.18" in b.unsupported("add_vector", named) and "new-collection strategy" in b.unsupported("drop_vector", named)
    assert "1.17" in b.unsupported("conditional_writes")
    assert b.unsupported("sparse_vectors") is None and b.unsupported("multivectors") is None and b.unsupported("aliases") is None
    b.close()

    b = connect(config(tmp_path, f"qdrant://127.0.0.1:{fake_server(version='1.18.0')}"))
    assert b.unsupported("add_vector", named) is None and b.unsupported("conditional_writes") is None
    b.close()


def test_wrong_or_missing_api_key_is_one_clear_line_without_the_key(tmp_path, fake_server):
    port = fake_server(api_key="right-key")
    with pytest.raises(BackendError) as info:
        connect(config(tmp_path, f"qdrant://127.0.0.1:{port}", api_key="wrong-key-123"))
    assert str(info.value) == f"Qdrant at qdrant://127.0.0.1:{port} rejected the api key (HTTP 401): check `api_key` in vecmig.ini"
    with pytest.raises(BackendError, match=r"wants an api key \(HTTP 401\): set `api_key` in vecmig.ini"):
        connect(config(tmp_path, f"qdrant://127.0.0.1:{port}", api_key=None))
    connect(config(tmp_path, f"qdrant://127.0.0.1:{port}", api_key="right-key")).close()


# vector writes racing deletes on a server -------------------------------------------------------


class FakeQdrantPoints(FakeQdrant):
    """A Qdrant server's point semantics for one collection ``c``: retrieve, and ``points/batch`` with
    ``set_payload`` / ``update_vectors``, where an id that is gone writes the others, then fails the
    whole request with 404 "No point with id N found", as Qdrant does. ``hooks[(kind, n)]`` runs just
    before the n-th request of that kind ("batch", "retrieve"): another writer's change landing then."""

    version = "1.19.0"
    store: dict = {}
    hooks: dict = {}
    calls: dict = {}

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        path = self.path.split("?")[0].rstrip("/")
        kind = {"/collections/c/points": "retrieve", "/collections/c/points/batch": "batch"}.get(path)
        if kind is None:
            return self.reply(404, {"status": {"error": "Not found: Collection `x` doesn't exist!"}, "time": 0.0})
        self.calls[kind] = self.calls.get(kind, 0) + 1
        hook = self.hooks.get((kind, self.calls[kind]))
        if hook:
            hook(self.store)
        if kind == "retrieve":
            return self.reply(200, {"result": [self.record(i, body) for i in body["ids"] if i in self.store], "status": "ok", "time": 0.0})
        for op in body["operations"]:
            missing = self.apply(op)
            if missing is not None:
                return self.reply(404, {"status": {"error": f"Not found: No point with id {missing} found"}, "time": 0.0})
        self.reply(200, {"result": [{"operation_id": 0, "status": "completed"}] * len(body["operations"]), "status": "ok", "time": 0.0})

    def record(self, i, body) -> dict:
        wanted = body.get("with_vector")
        vectors = self.store[i]["vector"]
        if isinstance(wanted, list):
            vectors = {k: v for k, v in vectors.items() if k in wanted}
        return {"id": i, "payload": self.store[i]["payload"] if body.get("with_payload") else None, "vector": vectors if wanted else None}

    def apply(self, op: dict):
        """Apply one operation to the points that exist; the first id that doesn't, or None."""
        if "set_payload" in op:
            target = op["set_payload"]
            if "filter" in target:
                ids = [i for i in self.store if self.matches(target["filter"], i)]
            else:
                ids = target["points"]
            for i in ids:
                if i in self.store:
                    self.store[i]["payload"].update(target["payload"])
        else:
            target = op["update_vectors"]
            ids = [p["id"] for p in target["points"]]
            for p in target["points"]:
                if p["id"] in self.store and self.matches(target.get("update_filter"), p["id"]):
                    self.store[p["id"]]["vector"].update(p["vector"])
        return next((i for i in ids if i not in self.store), None)

    def matches(self, flt: dict | None, i) -> bool:
        def holds(cond: dict) -> bool:
            if "has_id" in cond:
                return i in cond["has_id"]
            if "has_vector" in cond:
                return cond["has_vector"] in self.store[i]["vector"]
            raise AssertionError(f"condition not emulated: {cond}")

        flt = flt or {}
        return all(holds(c) for c in flt.get("must") or []) and not any(holds(c) for c in flt.get("must_not") or [])


@pytest.fixture
def points_server(tmp_path):
    """A connected backend on a FakeQdrantPoints holding points 1..8 of collection ``c``, and that server's handler."""
    handler = type("Handler", (FakeQdrantPoints,), {
        "store": {i: {"payload": {"n": i}, "vector": {"old": [1.0, float(i)]}} for i in range(1, 9)},
        "hooks": {},
        "calls": {},
    })
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    b = connect(config(tmp_path, f"qdrant://127.0.0.1:{server.server_address[1]}", api_key=None))
    yield b, handler
    b.close()
    server.shutdown()
    server.server_close()


def filled(i: int) -> Point:
    return Point(i, {"h": f"hash {i}"}, {"new": [0.5, float(i)]})


def test_guarded_vector_write_skips_points_deleted_before_every_retry(points_server):
    b, server = points_server
    store = server.store
    store[8]["vector"]["new"] = [9.0, 9.0]  # the application wrote 8 with its vector meanwhile
    # another writer deletes a point just before each of the first three requests: between each
    # re-check and its retry
    server.hooks.update({("batch", 1): lambda s: s.pop(2), ("batch", 2): lambda s: s.pop(4), ("batch", 3): lambda s: s.pop(6)})
    b.update_vectors("c", [filled(i) for i in range(1, 9)], only_if_missing="new")
    assert sorted(store) == [1, 3, 5, 7, 8]  # nothing deleted came back
    for i in (1, 3, 5, 7):
        assert store[i]["vector"]["new"] == [0.5, float(i)] and store[i]["payload"] == {"n": i, "h": f"hash {i}"}
    assert store[8]["vector"]["new"] == [9.0, 9.0] and "h" not in store[8]["payload"]  # guarded: the app's write stays
    assert server.calls == {"batch": 4, "retrieve": 3}  # each retry one point smaller


def test_unguarded_vector_write_skips_deleted_points_and_ends_when_none_is_left(points_server):
    """The reconcile path (no only_if_missing): a set_payload by id 404s for a deleted point too."""
    b, server = points_server
    server.hooks.update({("batch", n): (lambda s: s.pop(min(s))) for n in range(1, 20)})  # a delete before every request
    b.update_vectors("c", [filled(i) for i in range(1, 9)])
    assert server.store == {}
    assert server.calls["batch"] == 8  # one point fewer each round, until none is left


def test_vector_write_falls_back_to_one_point_at_a_time_when_no_point_went_missing(points_server):
    b, server = points_server
    store = server.store

    def delete_and_write_again(s):  # the id came back (a new point without the vector) before the re-check
        s[2] = {"payload": {"n": 20}, "vector": {"old": [0.0, 1.0]}}

    server.hooks.update({("batch", 1): lambda s: s.pop(2), ("retrieve", 1): delete_and_write_again, ("batch", 4): lambda s: s.pop(3)})
    b.update_vectors("c", [filled(i) for i in range(1, 9)], only_if_missing="new")
    assert sorted(store) == [1, 2, 4, 5, 6, 7, 8]  # 3, deleted before its own write, is skipped
    for i in (1, 2, 4, 5, 6, 7, 8):
        assert store[i]["vector"]["new"] == [0.5, float(i)] and store[i]["payload"]["h"] == f"hash {i}"
    assert server.calls == {"batch": 1 + 8, "retrieve": 1}


def test_vector_write_to_a_missing_collection_still_fails(points_server):
    b, _ = points_server
    with pytest.raises(BackendError, match=r"writing vectors of 1 points of 'x': Qdrant answered HTTP 404: .*Collection `x` doesn't exist"):
        b.update_vectors("x", [filled(1)], only_if_missing="new")


@pytest.mark.skipif(not SERVER_URL, reason="set VECMIG_TEST_QDRANT_URL (e.g. qdrant://127.0.0.1:6333) to test against a Qdrant server")
@pytest.mark.parametrize("guard", ["new", None], ids=["guarded", "unguarded"])
def test_vector_write_on_a_server_skips_points_deleted_between_every_retry(tmp_path, monkeypatch, guard):
    from qdrant_client import models

    b = connect(config(tmp_path, SERVER_URL))
    name = n("race")
    try:
        b.create_collection(CollectionSpec(name, vectors={"old": VectorSpec(2), "new": VectorSpec(2)}))
        b.upsert(name, [Point(i, {"n": i}, {"old": [1.0, float(i)]}) for i in range(1, 9)])
        write, deletes = b.client.batch_update_points, [2, 4, 6]

        def racing(collection, operations, **kwargs):  # another writer's delete lands just before each request
            if deletes:
                b.client.delete(collection, models.PointIdsList(points=[deletes.pop(0)]))
            return write(collection, operations, **kwargs)

        monkeypatch.setattr(b.client, "batch_update_points", racing)
        b.update_vectors(name, [filled(i) for i in range(1, 9)], only_if_missing=guard)
        got = {p.id: p for p in b.retrieve(name, list(range(1, 9)), with_vectors=True)}
        assert sorted(got) == [1, 3, 5, 7, 8] and not deletes
        assert all(got[i].payload == {"n": i, "h": f"hash {i}"} and "new" in got[i].vectors for i in got)
    finally:
        if name in b.list_collections():
            b.drop_collection(name)
        b.close()
