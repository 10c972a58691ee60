"""The data engine (vecmig/datapath/): the committed prefix, resume after an error and after
kill -9, bounded memory, pacing, and text templates. Engine tests run on a fake source; the resume
tests run a real backfill on every backend."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import numpy as np
import pytest

from vecmig.backends import connect
from vecmig.config import Config
from vecmig.errors import ScriptError
from vecmig.datapath.executor import LocalExecutor
from vecmig.datapath.jobs import BackfillJob, Worker
from vecmig.datapath.pipeline import Pipeline, Throttle
from vecmig.datapath.text import TemplateError, TextTemplate, text_hash, text_hash_field
from vecmig.schema import CollectionSpec, Point, VectorSpec
from vecmig.state import StateStore

TEMPLATE = "{{ name }}. {{ description }}"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def fake_source(pages: int, per_page: int):
    """``scan`` over ``pages`` pages of ``per_page`` points with ids 0..; cursors are {"page": next}."""
    all_pages = [[Point(p * per_page + i, {"n": p * per_page + i}) for i in range(per_page)] for p in range(pages)]

    def scan(cursor):
        for index in range((cursor or {}).get("page", 0), pages):
            yield all_pages[index], {"page": index + 1}

    return scan


class Recorder:
    """``process`` and ``commit`` of a fake job: which points were written, which docs committed."""

    def __init__(self, fail_on: int | None = None, delay: float = 0.0):
        self.written: set[int] = set()
        self.commits: list[dict] = []
        self.lock = threading.Lock()
        self.fail_on, self.delay = fail_on, delay

    def process(self, points):
        if self.delay:
            time.sleep(random.uniform(0, self.delay))
        if self.fail_on is not None and any(p.id == self.fail_on for p in points):
            raise RuntimeError(f"cannot write point {self.fail_on}")
        with self.lock:
            self.written.update(p.id for p in points)

    def commit(self, doc):
        with self.lock:
            missing = [i for i in range(doc["done"]) if i not in self.written]
        assert not missing, f"checkpoint at {doc['done']} before points {missing[:5]} were written"
        self.commits.append(doc)


# the engine ------------------------------------------------------------------------------------------


def test_batches_finishing_out_of_order_are_committed_as_a_contiguous_prefix():
    rec = Recorder(delay=0.01)
    stats = Pipeline(fake_source(6, 25), rec.process, batch_size=10, workers=4, commit=rec.commit).run()
    assert rec.written == set(range(150)) and stats.points == 150
    done = [c["done"] for c in rec.commits]
    assert done == sorted(done) and len(set(done)) == len(done) and done[-1] == 150
    assert rec.commits[-1]["cursor"] == {"page": 6} and rec.commits[-1]["after_id"] is None
    assert stats.max_ahead <= 4


def test_resume_starts_right_after_the_committed_batch_inside_a_page():
    rec = Recorder()
    Pipeline(fake_source(3, 25), rec.process, batch_size=10, commit=rec.commit).run()
    mid_page = next(c for c in rec.commits if c["after_id"] is not None)
    assert mid_page == {"cursor": None, "after_id": 9, "done": 10}

    again = Recorder()
    again.written = set(range(10))
    Pipeline(fake_source(3, 25), again.process, batch_size=10, commit=again.commit).run(mid_page)
    assert again.written == set(range(75))
    assert again.commits[0]["done"] == 20


def test_an_error_stops_the_run_and_commits_only_what_precedes_it():
    rec = Recorder(fail_on=42, delay=0.005)
    with pytest.raises(RuntimeError, match="cannot write point 42"):
        Pipeline(fake_source(10, 20), rec.process, batch_size=10, workers=3, commit=rec.commit).run()
    assert rec.commits and rec.commits[-1]["done"] <= 40
    resumed = Recorder()
    resumed.written = set(range(rec.commits[-1]["done"]))
    Pipeline(fake_source(10, 20), resumed.process, batch_size=10, workers=3, commit=resumed.commit).run(rec.commits[-1])
    assert resumed.written == set(range(200))


def test_memory_stays_bounded_whatever_the_size_of_the_source():
    """Points read but not yet committed never exceed one page + (queue_depth + 2 * workers) batches."""
    page, batch, workers, depth = 50, 10, 2, 3
    pages = 60  # 3000 points: far more than the bound
    read = {"points": 0, "most_ahead": 0}
    source = fake_source(pages, page)

    def counted_scan(cursor):
        for points, after in source(cursor):
            read["points"] += len(points)
            yield points, after

    committed = {"points": 0}

    def commit(doc):
        committed["points"] = doc["done"]

    def process(points):
        read["most_ahead"] = max(read["most_ahead"], read["points"] - committed["points"])
        time.sleep(0.001)

    stats = Pipeline(counted_scan, process, batch_size=batch, workers=workers, queue_depth=depth, commit=commit).run()
    bound = page + (depth + 2 * workers) * batch
    assert stats.points == pages * page
    assert read["most_ahead"] <= bound < pages * page
    assert stats.max_queued <= depth and stats.max_ahead <= workers


def test_throttle_paces_batches_to_the_rate():
    now, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    throttle = Throttle(100, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        throttle.wait(50)
    assert now[0] == pytest.approx(2.0)  # the 5th batch of 50 goes out after 200 points at 100/s
    assert slept[0] == pytest.approx(0.5)


def test_max_rate_slows_a_run_down():
    rec = Recorder()
    started = time.monotonic()
    Pipeline(fake_source(1, 60), rec.process, batch_size=10, max_rate=200, commit=rec.commit).run()
    assert time.monotonic() - started >= 50 / 200  # the last batch waits for the 50 points before it
    assert rec.written == set(range(60))


# text templates --------------------------------------------------------------------------------------


def test_template_renders_payload_fields_and_hashes_the_text():
    template = TextTemplate("{{ name }}. {{ meta.brand }} {{ tags | join(', ') }}")
    text = template.render(Point(1, {"name": "Lamp", "meta": {"brand": "Acme"}, "tags": ["a", "b"]}))
    assert text == "Lamp. Acme a, b"
    assert text_hash(text) == __import__("hashlib").sha256(text.encode()).hexdigest()
    assert text_hash_field("minilm") == "_vecmig_text_hash_minilm" and text_hash_field("") == "_vecmig_text_hash"


def test_a_missing_field_names_the_point_and_the_field():
    template = TextTemplate(TEMPLATE)
    with pytest.raises(TemplateError, match=r"point 7: .*uses 'description'.*it has name") as e:
        template.render(Point(7, {"name": "Lamp"}))
    assert isinstance(e.value, ScriptError)
    with pytest.raises(TemplateError, match=r"point 8: .*'description'"):  # null counts as missing, as on Weaviate
        template.render(Point(8, {"name": "Lamp", "description": None}))
    assert TextTemplate("{{ name }}{{ description | default('') }}").render(Point(9, {"name": "Lamp"})) == "Lamp"
    with pytest.raises(TemplateError, match=r"point 3: .*'brand'"):
        TextTemplate("{{ meta.brand }}").render(Point(3, {"meta": {}}))


def test_the_template_runs_in_a_sandbox_and_syntax_errors_come_first():
    with pytest.raises(TemplateError):
        TextTemplate("{{ name.__class__.__mro__ }}").render(Point(1, {"name": "x"}))
    with pytest.raises(TemplateError, match="line 1"):
        TextTemplate("{{ name ")


# resume on real backends -----------------------------------------------------------------------------


def static_embedder():
    from vecmig.embed import load_embedder

    return load_embedder("static", Config(embedders={"static": {"provider": "static"}}))


class Interrupted(Exception):
    pass


class CountingEmbedder:
    """Wraps an embedder: counts embed calls, and raises on call ``fail_after + 1``."""

    def __init__(self, inner, fail_after: int | None = None):
        self.inner, self.fail_after, self.calls = inner, fail_after, 0
        self.name, self.dimension = inner.name, inner.dimension
        self.lock = threading.Lock()

    def embed_documents(self, texts):
        with self.lock:
            if self.fail_after is not None and self.calls >= self.fail_after:
                raise Interrupted("interrupted on purpose")
            self.calls += 1
        return self.inner.embed_documents(texts)


def catalog(n: int) -> list[Point]:
    return [Point(i, {"name": f"item {i}", "description": f"a thing of kind {i % 7}"}, {"old": [1.0, float(i % 5), 0.5, 0.0]}) for i in range(1, n + 1)]


def make_source(backend, n: int) -> tuple[str, str]:
    source, target = unique("Products_v1"), unique("Products_v2")
    props = {"name": "text", "description": "text"}
    backend.create_collection(CollectionSpec(source, vectors={"old": VectorSpec(4)}, properties=props))
    backend.upsert(source, catalog(n))
    backend.create_collection(CollectionSpec(target, vectors={"new": VectorSpec(64)}, properties=props))
    return source, target


def assert_backfilled(backend, source, target, embedder, n):
    template = TextTemplate(TEMPLATE)
    points = {p.id: p for page in backend.scroll(target, batch_size=500, with_vectors=True) for p in page}
    assert sorted(points) == list(range(1, n + 1))
    originals = {p.id: p for page in backend.scroll(source, batch_size=500) for p in page}
    texts = [template.render(originals[i]) for i in sorted(points)]
    expected = embedder.embed_documents(texts)
    got = np.array([points[i].vectors["new"] for i in sorted(points)], dtype=np.float32)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731 (Qdrant normalizes cosine vectors)
    assert np.allclose(unit(got), unit(expected), atol=1e-5)
    assert all(points[i].payload[text_hash_field("new")] == text_hash(t) for i, t in zip(sorted(points), texts))


@pytest.mark.parametrize("workers", [1, 3])
def test_a_resumed_backfill_re_embeds_at_most_one_batch_per_worker(backend, workers):  # noqa: F811
    n, batch = 240, 20
    batches = n // batch
    source, target = make_source(backend, n)
    state = StateStore(backend.records(unique("Vecmig_state")))
    state.ensure()
    first = CountingEmbedder(static_embedder(), fail_after=5)
    job = BackfillJob(source, "new", "e", TEMPLATE, target=target)
    with pytest.raises(Interrupted):
        LocalExecutor().run(job, Worker(backend, {"e": first}), state=state, checkpoint_key="rev/up/1", batch_size=batch, workers=workers)
    checkpoint = state.get_checkpoint("rev/up/1")
    assert checkpoint and 0 < checkpoint["done"] < n

    second = CountingEmbedder(static_embedder())
    stats = LocalExecutor().run(job, Worker(backend, {"e": second}), state=state, checkpoint_key="rev/up/1", batch_size=batch, workers=workers)
    assert stats.resumed_at == checkpoint["done"]
    assert second.calls < batches  # it resumed, and
    assert first.calls + second.calls <= batches + workers  # redid at most one batch per worker
    assert_backfilled(backend, source, target, static_embedder(), n)


KILLED_RUN = textwrap.dedent("""
    import sys, time
    import numpy as np
    from vecmig.backends import connect
    from vecmig.config import Config
    from vecmig.datapath.executor import LocalExecutor
    from vecmig.datapath.jobs import BackfillJob, Worker
    from vecmig.state import StateStore

    store, log, source, target = sys.argv[1:5]

    class SlowEmbedder:
        name, dimension = "slow", 4

        def embed_documents(self, texts):
            time.sleep(0.05)
            out = np.array([[1.0, len(t), t.count("1"), 0.5] for t in texts], dtype=np.float32)
            with open(log, "a") as f:
                f.write("call\\n")
            return out

    backend = connect(Config(url="qdrant+local://" + store))
    state = StateStore(backend.records("vecmig_state"))
    saved = state.set_checkpoint

    def announce(key, doc):
        saved(key, doc)
        print("committed", doc["done"], flush=True)

    state.set_checkpoint = announce
    job = BackfillJob(source, "new", "slow", "{{ name }}", target=target)
    LocalExecutor().run(job, Worker(backend, {"slow": SlowEmbedder()}), state=state, checkpoint_key="kill/up/0", batch_size=10, workers=2)
    print("finished", flush=True)
""")


def test_after_kill_9_the_backfill_resumes_redoing_at_most_one_batch_per_worker(tmp_path):
    store, log, script = tmp_path / "store", tmp_path / "calls.log", tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    n, batch, workers = 300, 10, 2
    backend = connect(Config(url=f"qdrant+local://{store}"))
    backend.create_collection(CollectionSpec("src", vectors={"old": VectorSpec(4)}))
    backend.upsert("src", catalog(n))
    backend.create_collection(CollectionSpec("dst", vectors={"new": VectorSpec(4)}))
    StateStore(backend.records("vecmig_state")).ensure()
    backend.close()

    proc = subprocess.Popen([sys.executable, str(script), str(store), str(log), "src", "dst"], stdout=subprocess.PIPE, text=True)
    try:
        commits = 0
        for line in proc.stdout:
            commits += line.startswith("committed")
            assert not line.startswith("finished"), "the run ended before it could be killed"
            if commits >= 3:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    first_calls = log.read_text().count("call")

    backend = connect(Config(url=f"qdrant+local://{store}"))
    state = StateStore(backend.records("vecmig_state"))
    checkpoint = state.get_checkpoint("kill/up/0")
    assert checkpoint and 0 < checkpoint["done"] < n

    class Counting:
        name, dimension, calls = "slow", 4, 0

        def embed_documents(self, texts):
            Counting.calls += 1
            return np.array([[1.0, len(t), t.count("1"), 0.5] for t in texts], dtype=np.float32)

    job = BackfillJob("src", "new", "slow", "{{ name }}", target="dst")
    LocalExecutor().run(job, Worker(backend, {"slow": Counting()}), state=state, checkpoint_key="kill/up/0", batch_size=batch, workers=workers)
    assert first_calls + Counting.calls <= n // batch + workers
    assert backend.count("dst") == n
    backend.close()
