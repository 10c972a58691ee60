"""The Weaviate backend against a real server (see ``weaviate_fixture``): schema, aliases, points,
the state record store, and the errors users see. Every test uses its own collection names and
drops what it created."""

from __future__ import annotations

import socket
import threading
import uuid

import pytest
from weaviate_fixture import weaviate_url  # noqa: F401 - the session fixture

from vecmig.backends import connect
from vecmig.backends import weaviate as weaviate_backend
from vecmig.config import Config
from vecmig.errors import BackendError, ConfigError
from vecmig.schema import CollectionSpec, Point, SparseVectorSpec, VectorSpec

ALIAS_STRATEGY = "create_collection + backfill + repoint_alias"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def backend(weaviate_url):  # noqa: F811
    b = connect(Config(url=weaviate_url))
    yield b
    b.close()


@pytest.fixture
def made(backend):
    """Names this test creates (collections and aliases); dropped afterwards, aliases first."""
    names: list[str] = []
    yield names
    aliases = backend.list_aliases()
    for name in names:
        if name in aliases:
            backend.drop_alias(name)
    for name in names:
        if name not in aliases:
            backend.drop_collection(name)


def products_spec(name: str) -> CollectionSpec:
    return CollectionSpec(
        name=name,
        vectors={
            "minilm": VectorSpec(size=4, distance="cosine", embedder="minilm"),
            "legacy_e5": VectorSpec(size=3, distance="euclid", options={"index_type": "flat"}),
        },
        properties={"title": "text", "sku": "keyword", "price": "number", "stock": "int", "tags": "keyword[]"},
        payload_indexes={"sku": "keyword", "price": "float"},
        options={"description": "products for the tests"},
    )


def new_collection(backend, made, prefix="Products", spec=None) -> str:
    name = unique(prefix)
    made.append(name)
    backend.create_collection(spec(name) if spec else products_spec(name))
    return name


# schema


@pytest.mark.weaviate
def test_collection_round_trip_keeps_named_vectors_sizes_properties_and_indexes(backend, made):
    name = new_collection(backend, made)

    spec = backend.get_collection(name)

    assert name in backend.list_collections()
    assert spec.vectors["minilm"] == VectorSpec(size=4, distance="cosine", embedder="minilm")
    assert spec.vectors["legacy_e5"] == VectorSpec(size=3, distance="euclid", options={"index_type": "flat"})
    assert spec.properties == {"title": "text", "sku": "keyword", "price": "number", "stock": "int", "tags": "keyword[]"}
    assert spec.payload_indexes == {"sku": "keyword", "price": "float"}
    assert spec.options == {"description": "products for the tests"}
    assert spec.sparse_vectors == {}


@pytest.mark.weaviate
def test_vector_without_recorded_size_reports_the_stored_dimension(backend, made):
    """A collection vecmig did not create has no recorded size: 0 while empty, then the data's."""
    from vecmig.backends.weaviate import client_library

    _, wvc = client_library()
    name = unique("Foreign")
    made.append(name)
    backend.client.collections.create(name, vector_config=[wvc.config.Configure.Vectors.self_provided(name="v")])

    assert backend.get_collection(name).vectors["v"].size == 0
    backend.upsert(name, [Point(1, {"t": "x"}, {"v": [0.1, 0.2, 0.3, 0.4, 0.5]})])
    assert backend.get_collection(name).vectors["v"].size == 5


@pytest.mark.weaviate
def test_multivector_round_trip(backend, made):
    name = new_collection(backend, made, "Colbert", lambda n: CollectionSpec(n, vectors={"tokens": VectorSpec(size=2, distance="dot", multivector=True)}))

    backend.upsert(name, [Point(3, {"title": "t"}, {"tokens": [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]})])

    assert backend.get_collection(name).vectors["tokens"] == VectorSpec(size=2, distance="dot", multivector=True)
    [point] = backend.retrieve(name, [3], with_vectors=True)
    assert point.vectors == {"tokens": [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]}


@pytest.mark.weaviate
def test_add_vector_to_a_named_vector_collection(backend, made):
    name = new_collection(backend, made)
    backend.upsert(name, [Point(1, {"title": "a"}, {"minilm": [1, 0, 0, 0]})])

    assert backend.unsupported("add_vector", backend.get_collection(name)) is None
    backend.add_vector(name, "e5", VectorSpec(size=2, distance="dot", embedder="e5"))
    backend.upsert(name, [Point(1, {"title": "a"}, {"minilm": [1, 0, 0, 0], "e5": [0.5, 0.5]})])

    assert backend.get_collection(name).vectors["e5"] == VectorSpec(size=2, distance="dot", embedder="e5")
    assert backend.retrieve(name, [1], with_vectors=True)[0].vectors == {"minilm": [1.0, 0.0, 0.0, 0.0], "e5": [0.5, 0.5]}


@pytest.mark.weaviate
def test_add_vector_through_an_alias_changes_the_collection_behind_it(backend, made):
    name = new_collection(backend, made)
    alias = unique("Shop")
    made.append(alias)
    backend.create_alias(alias, name)

    backend.add_vector(alias, "e5", VectorSpec(size=2))

    assert "e5" in backend.get_collection(name).vectors


@pytest.mark.weaviate
def test_add_vector_is_refused_on_a_collection_without_named_vectors_naming_the_alias_strategy(backend, made):
    name = unique("Legacy")
    made.append(name)
    backend.client.collections.create_from_dict({"class": name, "vectorizer": "none"})  # one unnamed vector
    legacy = backend.get_collection(name)

    reason = backend.unsupported("add_vector", legacy)

    assert list(legacy.vectors) == [""]
    assert ALIAS_STRATEGY in reason
    with pytest.raises(BackendError, match=r"create_collection \+ backfill \+ repoint_alias"):
        backend.add_vector(name, "e5", VectorSpec(size=2))


@pytest.mark.weaviate
def test_unsupported_features_say_why_and_what_to_do(backend):
    assert backend.unsupported("aliases") is None
    assert backend.unsupported("multivectors") is None
    assert "create_collection + copy + repoint_alias" in backend.unsupported("drop_vector")
    assert "BM25" in backend.unsupported("sparse_vectors")
    assert backend.unsupported("conditional_writes")
    assert backend.server_version() >= (1, 32, 0)


@pytest.mark.weaviate
def test_drop_vector_raises_with_the_alias_strategy(backend, made):
    name = new_collection(backend, made)

    with pytest.raises(BackendError, match=r"can't drop a named vector.*create_collection \+ copy \+ repoint_alias"):
        backend.drop_vector(name, "minilm")
    assert "minilm" in backend.get_collection(name).vectors


@pytest.mark.weaviate
def test_sparse_vectors_are_refused_pointing_at_bm25(backend, made):
    name = unique("Sparse")
    spec = CollectionSpec(name, vectors={"d": VectorSpec(4)}, sparse_vectors={"bm": SparseVectorSpec()})

    assert "BM25" in backend.invalid_collection_spec(spec)
    with pytest.raises(BackendError, match="BM25"):
        backend.create_collection(spec)
    assert name not in backend.list_collections()
    with pytest.raises(BackendError, match="BM25"):
        backend.add_vector(new_collection(backend, made), "bm", SparseVectorSpec())


@pytest.mark.weaviate
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (lambda n: CollectionSpec(n, vectors={"v": VectorSpec(4)}, options={"shard_number": 2}), "unknown Weaviate collection option 'shard_number': known options are description, inverted_index_config"),
        (lambda n: CollectionSpec(n, vectors={"v": VectorSpec(4, options={"payload_m": 3})}), "vector 'v': unknown Weaviate vector option 'payload_m'"),
        (lambda n: CollectionSpec(n, vectors={"v": VectorSpec(4, options={"vector_index_config": {"efx": 3}})}), "unknown setting 'efx': known settings are"),
        (lambda n: CollectionSpec(n, vectors={"v": VectorSpec(4, on_disk=True)}), "no on_disk setting"),
        (lambda n: CollectionSpec(n, vectors={"bad-name": VectorSpec(4)}), "vector names must match"),
        (lambda n: CollectionSpec(n, vectors={"v": VectorSpec(4)}, properties={"id": "text"}), "'id' is reserved by Weaviate"),
        (lambda n: CollectionSpec(n, vectors={"v": VectorSpec(4)}, properties={"p": "decimal"}), "unknown property type 'decimal'"),
        (lambda n: CollectionSpec(n, vectors={"v": VectorSpec(4)}, properties={"p": "text"}, payload_indexes={"p": "integer"}), "an index of type integer needs a property of type int; it is declared text"),
    ],
)
def test_specs_weaviate_cannot_hold_are_refused_before_any_write(backend, spec, message):
    name = unique("Bad")

    assert message in backend.invalid_collection_spec(spec(name))
    with pytest.raises(BackendError, match="create_collection"):
        backend.create_collection(spec(name))
    assert name not in backend.list_collections()


@pytest.mark.weaviate
def test_collection_options_pass_through_to_weaviate(backend, made):
    name = new_collection(backend, made, "Tuned", lambda n: CollectionSpec(
        n,
        vectors={"v": VectorSpec(4, options={"hnsw_config": {"m": 8, "ef_construct": 64}, "quantization_config": {"bq": {}}})},
        options={"replication_config": {"deletion_strategy": "TimeBasedResolution"}, "inverted_index_config": {"bm25_b": 0.5, "bm25_k1": 1.3}},
    ))

    cfg = backend.client.collections.use(name).config.get()

    assert cfg.vector_config["v"].vector_index_config.max_connections == 8
    assert cfg.vector_config["v"].vector_index_config.ef_construction == 64
    assert cfg.vector_config["v"].vector_index_config.quantizer is not None
    assert cfg.replication_config.deletion_strategy.value == "TimeBasedResolution"
    assert cfg.inverted_index_config.bm25.b == 0.5


@pytest.mark.weaviate
def test_update_collection_changes_the_documented_mutable_settings(backend, made):
    name = new_collection(backend, made)

    backend.update_collection(name, {"description": "v2", "vectors": {"minilm": {"ef": 77}}, "inverted_index_config": {"bm25_k1": 1.1}})

    cfg = backend.client.collections.use(name).config.get()
    assert cfg.description == "v2"
    assert cfg.vector_config["minilm"].vector_index_config.ef == 77
    assert cfg.inverted_index_config.bm25.k1 == pytest.approx(1.1)
    with pytest.raises(BackendError, match="'sharding_config'.*needs a new collection"):
        backend.update_collection(name, {"sharding_config": {"desired_count": 2}})
    with pytest.raises(BackendError, match="no vector 'nope'"):
        backend.update_collection(name, {"vectors": {"nope": {"ef": 1}}})


@pytest.mark.weaviate
def test_payload_indexes_are_created_recorded_and_forgotten(backend, made):
    name = new_collection(backend, made)

    backend.create_payload_index(name, "brand", "keyword")  # a new property, created filterable
    backend.create_payload_index(name, "title", "text")  # an existing one: recorded over Weaviate's index
    backend.create_payload_index(name, "sku", "keyword")  # already there: nothing to do
    spec = backend.get_collection(name)
    assert spec.payload_indexes == {"sku": "keyword", "price": "float", "brand": "keyword", "title": "text"}
    assert spec.properties["brand"] == "keyword"

    backend.drop_payload_index(name, "title")
    backend.drop_payload_index(name, "nope")
    assert "title" not in backend.get_collection(name).payload_indexes
    backend.upsert(name, [Point(1, {"title": "still filterable"})])
    assert backend.client.collections.use(name).config.get().properties[0].index_filterable


@pytest.mark.weaviate
def test_payload_index_limits_say_what_to_do(backend, made):
    from vecmig.backends.weaviate import client_library

    _, wvc = client_library()
    name = new_collection(backend, made)
    backend.client.collections.use(name).config.add_property(wvc.config.Property(name="raw", data_type=wvc.config.DataType.TEXT, index_filterable=False, index_searchable=False))

    with pytest.raises(BackendError, match="without a filter index.*create_collection \\+ copy \\+ repoint_alias"):
        backend.create_payload_index(name, "raw", "keyword")
    with pytest.raises(BackendError, match="an index of type integer needs a property of type int; it is declared text"):
        backend.create_payload_index(name, "title", "integer")
    assert "raw" not in backend.get_collection(name).payload_indexes


@pytest.mark.weaviate
def test_drop_collection_deletes_it_and_tolerates_a_missing_one(backend, made):
    name = new_collection(backend, made)

    backend.drop_collection(name)
    backend.drop_collection(name)

    assert name not in backend.list_collections()
    assert backend.get_collection(name) is None


# names


@pytest.mark.weaviate
def test_collection_names_must_start_with_an_upper_case_letter(backend, made):
    assert backend.invalid_collection_name("Products") is None
    assert backend.invalid_collection_name("Products_v2") is None
    assert backend.invalid_collection_name("products") == "Weaviate collection names must start with an upper-case letter: use 'Products'"
    assert "use 'Products_v2'" in backend.invalid_collection_name("products-v2")
    assert "only letters, digits and '_'" in backend.invalid_collection_name("Products-v2")
    with pytest.raises(BackendError, match="upper-case letter: use 'Lowercase_"):
        backend.create_collection(products_spec(unique("lowercase")))
    with pytest.raises(BackendError, match="alias names must start with an upper-case letter"):
        backend.create_alias("shop", "Whatever")


@pytest.mark.weaviate
def test_names_are_exact_although_weaviate_compares_them_without_case(backend, made):
    name = new_collection(backend, made)

    backend.upsert(name, [Point(1, {"title": "kept"})])

    assert backend.get_collection(name.lower()) is None  # not silently capitalized into `name`
    assert backend.get_collection(name.upper()) is None
    backend.drop_collection(name.upper())  # Weaviate alone would drop `name`'s data here
    assert backend.count(name) == 1
    with pytest.raises(BackendError, match="regardless of case"):
        backend.create_collection(products_spec(name.upper()))


# aliases


@pytest.mark.weaviate
def test_alias_create_repoint_and_drop(backend, made):
    v1, v2 = new_collection(backend, made), new_collection(backend, made)
    backend.upsert(v1, [Point(1, {"title": "old"})])
    alias = unique("Shop")
    made.append(alias)

    backend.create_alias(alias, v1)
    assert backend.list_aliases()[alias] == v1
    assert backend.count(alias) == 1
    assert alias not in backend.list_collections()

    backend.repoint_alias(alias, v2)
    assert backend.list_aliases()[alias] == v2
    assert backend.count(alias) == 0

    backend.drop_alias(alias)
    backend.drop_alias(alias)  # already gone: nothing to do
    assert alias not in backend.list_aliases()
    assert backend.count(v1) == 1


@pytest.mark.weaviate
def test_alias_errors_say_what_is_missing(backend, made):
    name = new_collection(backend, made)
    alias = unique("Shop")
    made.append(alias)

    with pytest.raises(BackendError, match="collection 'Nope_.*' does not exist"):
        backend.create_alias(alias, unique("Nope"))
    with pytest.raises(BackendError, match="alias does not exist: create it with create_alias"):
        backend.repoint_alias(alias, name)
    backend.create_alias(alias, name)
    with pytest.raises(BackendError, match="collection 'Nope_.*' does not exist"):
        backend.repoint_alias(alias, unique("Nope"))
    with pytest.raises(BackendError, match="is an alias"):
        backend.drop_collection(alias)
    assert backend.list_aliases()[alias] == name


# points


UUID_ID = "6d9c0a3e-0b7e-4b7e-9b7e-2f1a3c4d5e6f"


@pytest.mark.weaviate
def test_points_round_trip_with_integer_and_uuid_ids(backend, made):
    name = new_collection(backend, made)
    points = [
        Point(7, {"title": "seven", "sku": "S7", "price": 7.5, "tags": ["a", "b"], "added": "2024-05-01T10:00:00Z"}, {"minilm": [1, 0, 0, 0], "legacy_e5": [1, 2, 3]}),
        Point(UUID_ID.upper(), {"title": "uuid"}, {"minilm": [0, 1, 0, 0]}),
        Point(0, {"title": "zero"}, {}),
        Point(2**64 - 1, {"title": "max"}, {"minilm": [0, 0, 1, 0]}),
    ]

    backend.upsert(name, points)

    assert backend.count(name) == 4
    got = backend.retrieve(name, [UUID_ID, 7, 12345, 0], with_vectors=True)
    assert [p.id for p in got] == [UUID_ID, 7, 0]  # requested order, missing ids left out
    assert got[1].payload == {"title": "seven", "sku": "S7", "price": 7.5, "tags": ["a", "b"], "added": "2024-05-01T10:00:00Z"}
    assert got[1].vectors == {"minilm": [1.0, 0.0, 0.0, 0.0], "legacy_e5": [1.0, 2.0, 3.0]}
    assert got[2].vectors == {}
    assert backend.retrieve(name, [7])[0].vectors == {}


@pytest.mark.weaviate
def test_scroll_pages_through_every_point_in_id_order(backend, made):
    name = new_collection(backend, made)
    backend.upsert(name, [Point(i, {"title": f"p{i}"}, {"minilm": [i, 1, 0, 0]}) for i in range(10)] + [Point(UUID_ID, {"title": "u"})])

    pages = list(backend.scroll(name, batch_size=4, with_vectors=["minilm"]))

    assert [len(p) for p in pages] == [4, 4, 3]
    assert [p.id for page in pages for p in page] == [*range(10), UUID_ID]
    assert pages[0][2].vectors == {"minilm": [2.0, 1.0, 0.0, 0.0]}
    assert pages[0][2].payload == {"title": "p2"}
    assert all(p.vectors == {} for p in next(backend.scroll(name, batch_size=100)))


@pytest.mark.weaviate
def test_upsert_replaces_a_point_and_delete_removes_by_id(backend, made):
    name = new_collection(backend, made)
    backend.upsert(name, [Point(1, {"title": "a", "sku": "x"}, {"minilm": [1, 0, 0, 0]}), Point(UUID_ID, {"title": "b"})])

    backend.upsert(name, [Point(1, {"title": "a2"}, {"minilm": [0, 1, 0, 0]})])
    [point] = backend.retrieve(name, [1], with_vectors=True)
    assert point.payload == {"title": "a2"}
    assert point.vectors == {"minilm": [0.0, 1.0, 0.0, 0.0]}

    backend.delete(name, [1, UUID_ID, 999])
    assert backend.count(name) == 0


@pytest.mark.weaviate
@pytest.mark.parametrize("exact", [False, True])
def test_an_application_write_in_the_insert_only_window_is_lost_to_a_batch_and_kept_by_exact(backend, made, monkeypatch, exact):
    """The window between the existence check and the write, made to happen: the application writes
    point 7 right after the check. A batch overwrites it (reconcile repairs that after a backfill);
    ``exact`` creates objects one by one, and Weaviate refuses the id that exists by then."""
    name = new_collection(backend, made)
    existing = backend._existing

    def check_then_app_writes(col, uuids, what, vector=None):
        found = existing(col, uuids, what, vector)
        backend.upsert(name, [Point(7, {"title": "written by the app"}, {"minilm": [0, 0, 1, 0]})])
        return found

    monkeypatch.setattr(backend, "_existing", check_then_app_writes)
    backend.upsert(name, [Point(i, {"title": f"p{i}"}, {"minilm": [1, 0, 0, 0]}) for i in range(10)], insert_only=True, exact=exact)
    monkeypatch.undo()
    (seven,) = backend.retrieve(name, [7])
    assert seven.payload["title"] == ("written by the app" if exact else "p7")
    assert backend.count(name) == 10


def test_insert_only_writes_grpc_batches_of_the_missing_ids_and_keeps_the_ones_that_exist(backend, made, monkeypatch):
    name = new_collection(backend, made)
    backend.upsert(name, [Point(i, {"title": "written by the app"}, {"minilm": [0, 0, 1, 0]}) for i in (3, 200, 449)])
    requests: list[list] = []
    in_flight, most, lock = [0], [0], threading.Lock()
    insert_many = backend._insert_many

    def counted(col, objects, what):
        with lock:
            requests.append([o.uuid.int for o in objects])
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            return insert_many(col, objects, what)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(backend, "_insert_many", counted)
    monkeypatch.setattr(weaviate_backend, "BATCH_CONCURRENCY", 2)

    backend.upsert(name, [Point(i, {"title": f"p{i}"}, {"minilm": [1, 0, 0, 0]}) for i in range(450)], insert_only=True)

    assert sorted(len(r) for r in requests) == [149, 149, 149]  # three even batches of 150, less the ids that exist
    assert most[0] <= 2
    assert sorted(i for r in requests for i in r) == sorted(set(range(450)) - {3, 200, 449})
    assert backend.count(name) == 450
    kept = backend.retrieve(name, [3, 200, 449, 4], with_vectors=True)
    assert [p.payload["title"] for p in kept] == ["written by the app"] * 3 + ["p4"]
    assert kept[0].vectors["minilm"] == [0.0, 0.0, 1.0, 0.0]


@pytest.mark.weaviate
def test_a_refused_object_is_tried_again_then_reported_by_id_and_the_others_are_written(backend, made, monkeypatch):
    name = new_collection(backend, made)
    tries: list[int] = []
    insert_many = backend._insert_many
    monkeypatch.setattr(backend, "_insert_many", lambda col, objects, what: tries.append(len(objects)) or insert_many(col, objects, what))
    points = [Point(i, {"title": f"p{i}", "price": 1.5}, {"minilm": [1, 0, 0, 0]}) for i in range(10)]
    points[4] = Point(4, {"title": "bad", "price": "not a number"}, {"minilm": [1, 0, 0, 0]})
    points[7] = Point(UUID_ID, {"title": "bad too", "stock": "many"})

    with pytest.raises(BackendError) as raised:
        backend.upsert(name, points, insert_only=True)

    message = str(raised.value)
    assert "2 of 10 points were not written" in message and "4:" in message and UUID_ID in message
    assert set(raised.value.failed) == {4, UUID_ID}
    assert tries == [10, 2, 2]  # the batch, then the two refused objects twice more
    assert sorted(p.id for p in backend.retrieve(name, list(range(10)))) == [0, 1, 2, 3, 5, 6, 8, 9]


@pytest.mark.weaviate
@pytest.mark.parametrize("insert_only", [True, False])
def test_a_batch_request_that_fails_is_tried_again_and_insert_only_reads_the_ids_again(backend, made, monkeypatch, insert_only):
    """A request lost on the way (the connection, a timeout) fails each of its objects; the retry of an
    insert-only write leaves alone an id the application wrote in the meantime."""
    name = new_collection(backend, made)
    insert_many = backend._insert_many
    calls: list[int] = []

    def flaky(col, objects, what):
        calls.append(len(objects))
        if len(calls) == 1:
            backend.upsert(name, [Point(2, {"title": "written by the app"})])
            return {o.uuid: "connection reset" for o in objects}
        return insert_many(col, objects, what)

    monkeypatch.setattr(backend, "_insert_many", flaky)
    backend.upsert(name, [Point(i, {"title": f"p{i}"}) for i in range(5)], insert_only=insert_only)

    got = {p.id: p.payload["title"] for p in backend.retrieve(name, list(range(5)))}
    assert got == {0: "p0", 1: "p1", 2: "written by the app" if insert_only else "p2", 3: "p3", 4: "p4"}
    assert calls[0] == 5 and calls[2:] == [4 if insert_only else 5]  # calls[1]: the application's own write


@pytest.mark.weaviate
def test_upsert_checks_dimensions_and_names_before_writing(backend, made):
    """Weaviate itself would store the object and fail only its vector index entry."""
    name = new_collection(backend, made)

    with pytest.raises(BackendError, match="vector 'minilm' has 3 dimensions, the collection expects 4"):
        backend.upsert(name, [Point(1, {"title": "ok"}, {"minilm": [1, 0, 0, 0]}), Point(2, {}, {"minilm": [1, 0, 0]})])
    with pytest.raises(BackendError, match="has vector 'nope', which the collection does not have"):
        backend.upsert(name, [Point(3, {}, {"nope": [1, 0]})])
    with pytest.raises(BackendError, match="payload field 'my-field'"):
        backend.upsert(name, [Point(4, {"my-field": 1})])
    assert backend.count(name) == 0


@pytest.mark.weaviate
@pytest.mark.parametrize(
    ("bad_id", "message"),
    [
        (-1, "between 0 and 2\\*\\*64-1"),
        (2**64, "between 0 and 2\\*\\*64-1"),
        ("sku-1", "Weaviate ids must be UUIDs"),
        ("00000000-0000-0000-0000-00000000002a", "pass the integer 42 instead"),
    ],
)
def test_ids_weaviate_cannot_take_are_refused(backend, made, bad_id, message):
    name = new_collection(backend, made)

    with pytest.raises(BackendError, match=message):
        backend.upsert(name, [Point(bad_id, {"title": "x"})])


# state records


@pytest.fixture
def records(backend, made):
    name = unique("VecmigState")
    made.append(name)
    store = backend.records(name)
    store.settle = 0.05
    return store


@pytest.mark.weaviate
def test_record_store_crud_and_scan_by_kind(backend, records):
    assert not records.exists()
    records.ensure()
    records.ensure()
    assert records.exists()
    assert backend.get_collection(records.name).vectors == {}

    assert records.get("heads") is None
    records.put("heads", {"heads": ["a1"]})
    records.put("journal/r1/up/0", {"status": "done"})
    records.put("journal/r1/up/1", {"status": "started"})
    records.put("journalist", {"not": "a journal record"})
    records.put("heads", {"heads": ["b2"]})

    assert records.get("heads") == {"heads": ["b2"]}
    assert records.scan("journal") == {"journal/r1/up/0": {"status": "done"}, "journal/r1/up/1": {"status": "started"}}
    assert records.scan("heads") == {"heads": {"heads": ["b2"]}}
    records.delete("journal/r1/up/0")
    records.delete("journal/r1/up/0")
    assert list(records.scan("journal")) == ["journal/r1/up/1"]


@pytest.mark.weaviate
def test_scan_walks_every_record_when_a_kind_outgrows_one_query(records, monkeypatch):
    import vecmig.backends.weaviate_records as weaviate_records

    records.ensure()
    for i in range(7):
        records.put(f"checkpoint/r1/up/{i}", {"written": i})
    records.put("heads", {"heads": []})
    monkeypatch.setattr(weaviate_records, "PAGE", 3)

    assert records.scan("checkpoint") == {f"checkpoint/r1/up/{i}": {"written": i} for i in range(7)}


@pytest.mark.weaviate
def test_insert_if_absent_second_caller_loses(records):
    records.ensure()

    assert records.insert_if_absent("lock", {"owner": "a"}) is True
    assert records.insert_if_absent("lock", {"owner": "b"}) is False
    assert records.get("lock") == {"owner": "a"}


@pytest.mark.weaviate
def test_replace_if_writes_only_over_the_expected_value(records):
    records.ensure()
    records.put("lock", {"owner": "a", "expires_at": 1})

    assert records.replace_if("lock", {"owner": "b"}, "owner", "someone-else") is False
    assert records.get("lock") == {"owner": "a", "expires_at": 1}
    assert records.replace_if("lock", {"owner": "b"}, "owner", "a") is True
    assert records.get("lock") == {"owner": "b"}
    assert records.replace_if("missing", {"owner": "c"}, "owner", None) is False
    assert records.get("missing") is None


@pytest.mark.weaviate
def test_racing_insert_if_absent_has_exactly_one_winner(records):
    records.ensure()
    records.settle = 0.25
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def contend(i: int) -> None:
        barrier.wait()
        results.append(records.insert_if_absent("lock", {"owner": f"w{i}"}))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert results.count(True) == 1
    assert records.get("lock")["owner"].startswith("w")


@pytest.mark.weaviate
def test_state_collection_name_must_be_a_weaviate_name(backend):
    with pytest.raises(BackendError, match="state collection 'vecmig_state'.*use 'Vecmig_state'.*state_collection"):
        backend.records("vecmig_state")
    assert backend.default_state_collection == "VecmigState"
    assert backend.invalid_collection_name(backend.default_state_collection) is None


# connecting (no server needed)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_one_clear_error():
    port = _closed_port()

    with pytest.raises(BackendError) as err:
        connect(Config(url=f"weaviate://127.0.0.1:{port}", api_key="s3cret-key"))

    message = str(err.value)
    assert message.startswith(f"can't reach Weaviate at weaviate://127.0.0.1:{port}: ")
    assert message.endswith(": check `url`")
    assert "\n" not in message and "s3cret-key" not in message


def test_url_parameters_are_checked():
    with pytest.raises(ConfigError, match="unknown parameter 'grpc'"):
        connect(Config(url="weaviate://127.0.0.1:1?grpc=5"))
    with pytest.raises(ConfigError, match="grpc_port must be a number"):
        connect(Config(url="weaviate://127.0.0.1:1?grpc_port=x"))


@pytest.mark.weaviate
def test_wrong_grpc_port_is_reported_at_connect(weaviate_url):  # noqa: F811
    base = weaviate_url.split("?")[0]

    with pytest.raises(BackendError, match=r"can't reach Weaviate's gRPC API at \S+:\d+ .*check `grpc_port`"):
        connect(Config(url=f"{base}?grpc_port={_closed_port()}"))


@pytest.mark.weaviate
def test_describe_shows_where_without_secrets(backend, weaviate_url):  # noqa: F811
    assert backend.describe().startswith(weaviate_url.split("?")[0])
    assert "gRPC port" in backend.describe()


# ids and the test server helper (no server needed)


def test_integer_ids_map_to_uuids_and_back():
    from vecmig.backends.weaviate_points import from_uuid, to_uuid

    assert str(to_uuid(42)) == "00000000-0000-0000-0000-00000000002a"
    assert from_uuid(to_uuid(42)) == 42
    assert from_uuid(to_uuid(2**64 - 1)) == 2**64 - 1
    assert from_uuid(to_uuid(UUID_ID.upper())) == UUID_ID


def test_ensure_built_without_go_says_what_to_do(monkeypatch, tmp_path):
    from vecmig.testing import weaviate_server

    monkeypatch.setenv("VECMIG_CACHE", str(tmp_path))
    monkeypatch.setattr(weaviate_server.shutil, "which", lambda _: None)

    with pytest.raises(weaviate_server.WeaviateServerError, match="needs Go on PATH.*VECMIG_TEST_WEAVIATE_URL"):
        weaviate_server.ensure_built()
    assert weaviate_server.binary_path() == tmp_path / f"weaviate-server-{weaviate_server.PINNED}" / "weaviate-server"


def test_server_ports_are_distinct_and_free():
    from vecmig.testing.weaviate_server import free_ports

    ports = free_ports()

    assert set(ports) == {"http", "grpc", "gossip", "data", "raft", "raft_rpc"}
    assert len(set(ports.values())) == 6
    for port in ports.values():
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
