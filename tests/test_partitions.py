"""Partitioned scans: a plan made once and stored, ranges that cover every point exactly once (on
every store, filters included), partitions run side by side, and a resume with another partition or
worker count that reuses the stored plan."""

from __future__ import annotations

import uuid

import pytest

from tests.test_pipeline import CountingEmbedder, Interrupted, TEMPLATE, assert_backfilled, make_source, static_embedder, unique
from vecmig.datapath.executor import LocalExecutor
from vecmig.datapath.jobs import BackfillJob, Worker
from vecmig.datapath.partitions import MIN_PER_PARTITION, how_many, make_plan, scan_range
from vecmig.datapath.points import order_key
from vecmig.errors import PlanError
from vecmig.schema import CollectionSpec, Point, VectorSpec
from vecmig.state import StateStore


def test_how_many_partitions():
    assert how_many(4, 1000, parallelism=2) == 4  # asked for: given
    assert how_many(50, 10, parallelism=2) == 10  # never more than there are points
    assert how_many("auto", 10 * MIN_PER_PARTITION, parallelism=4) == 4
    assert how_many("auto", MIN_PER_PARTITION // 2, parallelism=4) == 1  # too few points to be worth a cursor each
    assert how_many(3, 0, parallelism=2) == 1


def test_the_order_of_ids_is_the_order_of_scans():
    ids = [5, 0, str(uuid.UUID(int=2**100)), 2**40, str(uuid.UUID(int=2**127))]
    assert sorted(ids, key=order_key) == [0, 5, 2**40, str(uuid.UUID(int=2**100)), str(uuid.UUID(int=2**127))]


def mixed_ids(backend, n: int) -> tuple[str, list]:
    """A collection of ``n`` points, integer ids and (where the store takes them) UUIDs mixed."""
    name = unique("Ranges")
    backend.create_collection(CollectionSpec(name, vectors={"v": VectorSpec(2)}, properties={"kind": "text"}))
    ids = [i * 3 for i in range(n // 2)] + [str(uuid.uuid5(uuid.NAMESPACE_URL, f"p{i}")) for i in range(n - n // 2)]
    backend.upsert(name, [Point(i, {"kind": "a" if k % 3 else "b"}, {"v": [1.0, float(k % 4)]}) for k, i in enumerate(ids)])
    return name, ids


@pytest.mark.parametrize("partitions", [2, 5])
def test_partition_ranges_cover_every_point_exactly_once_with_and_without_a_filter(backend, partitions):  # noqa: F811
    name, ids = mixed_ids(backend, 400)
    for flt, wanted in ((None, set(map(str, ids))), ({"must": [{"key": "kind", "match": {"value": "b"}}]}, None)):
        plan = make_plan(backend, name, name, flt, partitions)
        assert 1 < plan.count <= partitions
        assert plan.splits == sorted(plan.splits, key=order_key)
        seen = []
        for k in range(plan.count):
            lo, hi = plan.bounds(k)
            for page, _ in scan_range(backend, name, lo, hi, None, batch_size=37, filter=flt):
                assert all((lo is None or order_key(p.id) >= order_key(lo)) and (hi is None or order_key(p.id) < order_key(hi)) for p in page)
                seen.extend(str(p.id) for p in page)
        if wanted is None:
            wanted = {str(p.id) for page in backend.scroll(name, filter=flt) for p in page}
        assert len(seen) == len(set(seen)) and set(seen) == wanted


def test_a_partitioned_backfill_writes_what_a_single_scan_writes(backend):  # noqa: F811
    n = 300
    source, target = make_source(backend, n)
    state = StateStore(backend.records(unique("Vecmig_state")))
    state.ensure()
    job = BackfillJob(source, "new", "e", TEMPLATE, target=target)
    stats = LocalExecutor().run(job, Worker(backend, {"e": static_embedder()}), state=state, checkpoint_key="rev/up/0",
                                batch_size=16, workers=4, partitions=4)
    assert stats.points == n
    saved = state.get_checkpoint("rev/up/0")
    assert len(saved["partitions"]["splits"]) == 3 and saved["done"] == n and saved["total"] == n
    assert all(state.get_checkpoint(f"rev/up/0/{k}")["finished"] for k in range(4))
    assert_backfilled(backend, source, target, static_embedder(), n)
    state.clear_checkpoint("rev/up/0")
    assert not state.records.scan("checkpoint")  # the partitions' cursors go with the op's


def test_a_resume_with_other_counts_reuses_the_stored_plan_and_redoes_at_most_a_batch_per_worker_per_partition(backend):  # noqa: F811
    n, batch, partitions, workers = 480, 10, 4, 4
    source, target = make_source(backend, n)
    state = StateStore(backend.records(unique("Vecmig_state")))
    state.ensure()
    job = BackfillJob(source, "new", "e", TEMPLATE, target=target)
    first = CountingEmbedder(static_embedder(), fail_after=12)
    with pytest.raises(Interrupted):
        LocalExecutor().run(job, Worker(backend, {"e": first}), state=state, checkpoint_key="k", batch_size=batch,
                            workers=workers, partitions=partitions)
    plan = state.get_checkpoint("k")["partitions"]
    done = [(state.get_checkpoint(f"k/{k}") or {}).get("done", 0) for k in range(partitions)]
    assert 0 < sum(done) < n

    second = CountingEmbedder(static_embedder())
    stats = LocalExecutor().run(job, Worker(backend, {"e": second}), state=state, checkpoint_key="k", batch_size=batch,
                                workers=1, partitions=7)  # other counts: the stored plan wins
    assert state.get_checkpoint("k")["partitions"] == plan
    assert state.get_checkpoint("k")["done"] == n  # the op's total counts the partitions finished before too
    assert stats.resumed_at == sum(done) and stats.resumed_at + stats.points == n
    per_partition = max(1, workers // partitions)
    assert first.calls + second.calls <= n // batch + partitions * per_partition + partitions  # a batch per worker per partition, and each range's last short batch
    assert_backfilled(backend, source, target, static_embedder(), n)


def test_a_stored_plan_whose_source_was_replaced_is_refused_naming_rollback(backend):  # noqa: F811
    source, target = make_source(backend, 50)
    other, _ = make_source(backend, 50)
    alias = unique("Products_now")
    backend.create_alias(alias, source)
    state = StateStore(backend.records(unique("Vecmig_state")))
    state.ensure()
    job = BackfillJob(alias, "new", "e", TEMPLATE, target=target)
    first = CountingEmbedder(static_embedder(), fail_after=1)
    with pytest.raises(Interrupted):
        LocalExecutor().run(job, Worker(backend, {"e": first}), state=state, checkpoint_key="k", batch_size=5, workers=2, partitions=2)
    backend.repoint_alias(alias, other)
    with pytest.raises(PlanError, match="vecmig rollback"):
        LocalExecutor().run(job, Worker(backend, {"e": static_embedder()}), state=state, checkpoint_key="k", batch_size=5, workers=2, partitions=2)
    backend.drop_alias(alias)


@pytest.mark.e2e
def test_vecmig_upgrade_runs_a_partitioned_backfill_and_a_kill_resumes_from_the_stored_plan(project):
    import json
    import signal
    import time

    from tests.test_faults import points as jsonl_points

    ini = project.root / "vecmig.ini"
    ini.write_text(ini.read_text() + "[embedder:static]\nprovider = static\n")
    project.write("versions/docs.jsonl", jsonl_points(0, 4000, "doc"))
    project.revision("base01", None, """
        upgrade:
          - create_collection: {name: docs, vectors: {v: {size: 4, distance: cosine}}}
          - bulk_insert: {collection: docs, file: docs.jsonl, batch_size: 1000}
        """, "docs")
    project.run("upgrade", "head")
    project.revision("nv0001", "base01", """
        upgrade:
          - create_collection: {name: docs_v2, vectors: {nv: {embedder: static}}}
          - backfill: {source: docs, target: docs_v2, vector: nv, embedder: static, text: "{{ text }}",
                       batch_size: 20, workers: 3, partitions: 3, max_rate: 1500}
        """, "new model")
    proc = project.popen("upgrade", "head")
    from vecmig.command import open_store

    deadline = time.monotonic() + 60
    while True:  # wait for the plan and some written batches, then kill -9
        from vecmig.backends import parse_url
        from vecmig.status import read_status_file

        cfg = project.config()
        mirrored = read_status_file(parse_url(cfg.url).status_file(cfg.here)) or {}
        ops = [op for step in mirrored.get("steps", []) for op in step.get("ops", []) if op.get("op") == "backfill"]
        if ops and (ops[0].get("checkpoint") or {}).get("done", 0) >= 600:
            break
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with open_store(project.config()) as (_, state):
        plan = state.get_checkpoint("nv0001/up/1")["partitions"]
    assert len(plan["splits"]) == 2

    out = project.run("upgrade", "head").stdout
    assert "(resuming)" in out and "3 partitions" in out
    with open_store(project.config()) as (backend, state):
        assert backend.count("docs_v2") == 4000
        assert not state.records.scan("checkpoint")
        points = {p.id: p for page in backend.scroll("docs_v2", with_vectors=True) for p in page}
    assert sorted(points) == list(range(4000)) and all(p.vectors.get("nv") for p in points.values())
    assert json.loads(project.run("status", "--json").stdout)["state"] == "idle"
