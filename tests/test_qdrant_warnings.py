"""qdrant-client's local mode warns about collections past 20,000 points (a UserWarning with its source
line, on every open and every write). vecmig says it instead, once per command, in its own words."""

from __future__ import annotations

import json
import re
import warnings

import pytest

from vecmig.backends import qdrant
from vecmig.schema import CollectionSpec, Point, VectorSpec

NOTE = "note: the embedded store holds"


def seed(project, n: int) -> None:
    """``n`` points (ids 0..n-1) in the project's collection ``items``, written in this process.

    Each point is its own sqlite commit in local mode, minutes for 20,000 on a slow disk: the
    collection's file is written without syncing to disk, which is all a test needs.
    """
    from vecmig.backends import parse_url

    url = parse_url(project.url)
    backend = qdrant.QdrantBackend(url, qdrant.open_embedded(url.local_path(project.root), 0), embedded=True)
    try:
        storage = backend.client._client.collections["items"].storage.storage
        storage.execute("PRAGMA synchronous = OFF")
        storage.execute("PRAGMA journal_mode = MEMORY")
        backend.upsert("items", [Point(i, {"n": i}, {"v": [1.0, float(i % 7)]}) for i in range(n)])
    finally:
        backend.close()


def insert(ids) -> str:
    points = "\n".join(f"        - {{id: {i}, payload: {{n: {i}}}, vectors: {{v: [1, {i % 7}]}}}}" for i in ids)
    return f"upgrade:\n  - bulk_insert:\n      collection: items\n      batch_size: 5\n      points:\n{points}\ndowngrade: auto\n"


def assert_one_note(stderr: str, points: str) -> None:
    assert "Warning" not in stderr and "warn(" not in stderr and "Local mode" not in stderr, stderr
    assert not re.search(r"\.py:\d+", stderr), stderr  # no Python source line
    assert stderr.count(NOTE) == 1, stderr
    assert f"{NOTE} {points} points in collection 'items'" in stderr
    assert "use a Qdrant server (url = qdrant://host:6333) for this size" in stderr


@pytest.mark.e2e
def test_a_large_embedded_store_gets_one_note_per_command_and_no_python_warning(project):
    project.revision("a1", None, "upgrade:\n  - create_collection: {name: items, vectors: {v: {size: 2, distance: cosine}}}\ndowngrade: auto\n")
    first = project.run("upgrade", "head")
    assert NOTE not in first.stderr
    seed(project, 19_990)

    # the write that takes the collection past 20,000 points
    project.revision("a2", "a1", insert(range(20_000, 20_020)))
    proc = project.run("upgrade", "head")
    assert_one_note(proc.stderr, "20,005")  # written in batches of 5 from 19,990

    # opening the store: local mode warns about the collection as it loads it
    proc = project.run("current", "--json")
    assert json.loads(proc.stdout)["heads"] == ["a2"]
    assert_one_note(proc.stderr, "20,010")

    # opening and writing in one command: still one note
    project.revision("a3", "a2", insert(range(20_020, 20_025)))
    proc = project.run("upgrade", "head")
    assert_one_note(proc.stderr, "20,010")


def test_the_note_replaces_the_client_warning_in_process(monkeypatch, capsys):
    from qdrant_client.common import client_warnings

    monkeypatch.setattr(qdrant, "_large_noted", False)
    monkeypatch.setattr(client_warnings, "SEEN_MESSAGES", set())  # the client warns once per process
    from vecmig.backends import connect
    from vecmig.config import Config

    backend = connect(Config(url="qdrant+memory://"))
    backend.create_collection(CollectionSpec("items", vectors={"v": VectorSpec(2)}))
    with warnings.catch_warnings(record=True) as caught:
        backend.upsert("items", [Point(i, {}, {"v": [1.0, 0.5]}) for i in range(19_999)])
        assert capsys.readouterr().err == ""
        for i in range(19_999, 20_004):
            backend.upsert("items", [Point(i, {}, {"v": [1.0, 0.5]})])
    backend.close()
    assert not [w for w in caught if "Local mode" in str(w.message)]
    err = capsys.readouterr().err
    assert err.count(NOTE) == 1 and f"{NOTE} 20,001 points in collection 'items'" in err


def test_no_note_at_the_limit(monkeypatch, capsys):
    monkeypatch.setattr(qdrant, "_large_noted", False)
    from vecmig.backends import connect
    from vecmig.config import Config

    backend = connect(Config(url="qdrant+memory://"))
    backend.create_collection(CollectionSpec("items", vectors={"v": VectorSpec(2)}))
    backend.upsert("items", [Point(i, {}, {"v": [1.0, 0.5]}) for i in range(20_000)])
    backend.close()
    assert NOTE not in capsys.readouterr().err
