"""vecmig's ``backfill`` op vs the naive loop of Qdrant's model-migration guide vs the embedder alone.

    .venv/bin/python bench/bench_backfill.py [--points 10000] [--rounds 3] [--latency 0.3] [--no-write]

The source: the Jeopardy 10k set (payload and ada-002 vectors) in an embedded in-memory store
(``qdrant+memory://``). Each run embeds the text "category: question answer" of every point in
batches of 256 (the op's default) with the same embedder object:

* embedder alone: the same texts, made beforehand, one ``embed_documents`` call; no store;
* naive loop (the guide's): ``scroll(limit=256, offset)`` -> texts -> embed -> ``upsert`` of
  ``PointStruct(id, vector, payload)`` into a new collection, one step after the other;
* vecmig: the ``backfill`` op into a new collection, applied as the runner applies it (validated,
  jinja2 text template, text hashes, insert-only writes, a checkpoint after every batch), with its
  defaults (workers: the embedder's ``concurrency`` + 1).

Two embedders, each measured in its own set of rounds:

* a provider's API (the targets are judged here): the OpenAI-compatible loopback server
  (``python -m vecmig.embed.loopback``) in its own process, answering with the static model after
  ``--latency`` seconds per request (a provider's round trip for a batch of 256), through vecmig's
  real HTTP client with the provider default of 4 requests in flight;
* the static model in this process: model and store both hold the interpreter lock, so nothing can
  overlap on it; shown for what it is, without a target.

The rounds run the three in turn (rotating the order); each target collection is dropped after its
round. Ratios are medians of the per-round ratios (a noisy machine drifts between rounds, not within
one). Targets: vecmig >= 1.3x the naive loop and >= 0.85x the embedder alone.
Results go to bench/RESULTS.md, section "Backfill" (other sections are kept)."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SECTION = "Backfill"
VS_NAIVE, VS_EMBEDDER = 1.3, 0.85
BATCH = 256
EMBEDDER = "embedder alone (no store)"
NAIVE = "naive loop (scroll -> embed -> upsert)"
VECMIG = "vecmig `backfill` op (defaults)"


@contextmanager
def provider_api(latency: float):
    """The embedder section of an OpenAI-compatible API served from another process."""
    proc = subprocess.Popen([sys.executable, "-m", "vecmig.embed.loopback", "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True, cwd=common.ROOT)
    try:
        url = proc.stdout.readline().strip()
        yield {"provider": "openai", "model": "tokenlearn", "base_url": url + "/v1", "batch_size": str(BATCH)}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def new_collection(runner, name: str, size: int) -> None:
    runner.apply("create_collection", {"name": name, "vectors": {"v": {"size": size, "distance": "cosine"}}})


def naive_loop(client, embedder, target: str) -> None:
    """The guide's migration loop, with the same embedder and batch size."""
    from qdrant_client import models

    offset = None
    while True:
        records, offset = client.scroll("jeopardy_v1", limit=BATCH, offset=offset, with_payload=True, with_vectors=False)
        if records:
            texts = [f"{r.payload['category']}: {r.payload['question']} {r.payload['answer']}" for r in records]
            vectors = embedder.embed_documents(texts)
            client.upsert(target, [models.PointStruct(id=r.id, vector={"v": v.tolist()}, payload=r.payload)
                                   for r, v in zip(records, vectors)])
        if offset is None:
            return


def run(backend, section: dict, n: int, rounds: int) -> dict[str, list[float]]:
    """The three runs, ``rounds`` times, with the embedder of ``section``."""
    from vecmig.embed import load_embedder

    runner = common.Runner(backend)
    runner.config.embedders["bench"] = section
    embedder = load_embedder("bench", runner.config)
    size = len(embedder.embed_documents(["warm up"])[0])  # the runner loads and probes it at plan time
    texts = common.texts(n)
    backfill = {"source": "jeopardy_v1", "target": "jeopardy_v2", "vector": "v", "embedder": "bench", "text": common.TEXT}

    def vecmig():
        new_collection(runner, "jeopardy_v2", size)
        seconds = common.timed(lambda: runner.apply("backfill", backfill))
        assert backend.count("jeopardy_v2") == n
        backend.drop_collection("jeopardy_v2")
        return seconds

    def naive():
        new_collection(runner, "jeopardy_naive", size)
        seconds = common.timed(lambda: naive_loop(backend.client, embedder, "jeopardy_naive"))
        assert backend.count("jeopardy_naive") == n
        backend.drop_collection("jeopardy_naive")
        return seconds

    runs = {EMBEDDER: lambda: common.timed(lambda: embedder.embed_documents(texts)), NAIVE: naive, VECMIG: vecmig}
    times: dict[str, list[float]] = {k: [] for k in runs}
    order = list(runs)
    for r in range(rounds):
        for k in order[r % len(order):] + order[: r % len(order)]:
            times[k].append(runs[k]())
        print(f"  round {r + 1}: " + ", ".join(f"{k.split(' (')[0]} {times[k][-1]:.2f} s" for k in runs), flush=True)
    return times


def paired(times, a: str, b: str) -> float:
    """Median over rounds of (time of b / time of a): how many times faster a is than b."""
    return statistics.median(tb / ta for ta, tb in zip(times[a], times[b]))


def table(title: str, times, n: int) -> list[str]:
    lines = [f"**{title}**", "", "| what runs | seconds | points/s | vs naive loop | vs embedder alone |", "|---|---:|---:|---:|---:|"]
    for k in times:
        sec = statistics.median(times[k])
        lines.append(f"| {k} | {sec:.2f} | {n / sec:,.0f} | {paired(times, k, NAIVE):.2f}x | {paired(times, k, EMBEDDER):.2f}x |")
    return lines + [""]


def render(api, local, n: int, rounds: int, latency: float, command: str) -> str:
    vs_naive, vs_alone = paired(api, VECMIG, NAIVE), paired(api, VECMIG, EMBEDDER)
    return "\n".join([
        common.header(command) + f" {n:,} Jeopardy points in an embedded in-memory store, {rounds} rounds; "
        f"batches of {BATCH}. Seconds are the median of the rounds.",
        "",
        *table(f"A provider's API: OpenAI-compatible server in its own process, {latency:g} s a request, 4 in flight", api, n),
        f"Targets (vecmig with its defaults; medians of the per-round ratios): >= {VS_NAIVE}x the naive loop: "
        f"**{vs_naive:.2f}x ({common.verdict(vs_naive >= VS_NAIVE)})**; >= {VS_EMBEDDER}x the embedder alone: "
        f"**{vs_alone:.2f}x ({common.verdict(vs_alone >= VS_EMBEDDER)})**.",
        "",
        *table("The static model in this process (no target)", local, n),
        "The model and embedded Qdrant are both Python-bound in one process: every stage waits for the",
        "interpreter lock, so the pipeline has nothing to overlap and costs what its extra work costs",
        "(templates, text hashes, checkpoints). With a model that runs elsewhere (an API, a GPU server)",
        "or releases the lock (onnxruntime), the store's work hides behind the model's.",
    ]) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=common.REAL, help="points in the source (default: the real 10000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.3, help="seconds the API takes per request (default 0.3)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()

    backend = common.memory_store(args.points)
    print("provider API:", flush=True)
    with provider_api(args.latency) as section:
        api = run(backend, section, args.points, args.rounds)
    print("static model in process:", flush=True)
    local = run(backend, dict(common.STATIC), args.points, args.rounds)
    command = ".venv/bin/python bench/bench_backfill.py" + (f" --points {args.points}" if args.points != common.REAL else "")
    body = render(api, local, args.points, args.rounds, args.latency, command)
    print(body)
    vs_naive, vs_alone = paired(api, VECMIG, NAIVE), paired(api, VECMIG, EMBEDDER)
    ok = vs_naive >= VS_NAIVE and vs_alone >= VS_EMBEDDER
    print(f"vecmig backfill: {vs_naive:.2f}x the naive loop (target >= {VS_NAIVE}x: {common.verdict(vs_naive >= VS_NAIVE)}), "
          f"{vs_alone:.2f}x the embedder alone (target >= {VS_EMBEDDER}x: {common.verdict(vs_alone >= VS_EMBEDDER)})")
    if not args.no_write:
        common.write_section(SECTION, body)
        print(f"written to {common.RESULTS}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
