"""Embedding throughput per provider and batch size, and the overhead of vecmig's embedder layer.

    .venv/bin/python bench/bench_embed.py [--texts 20000] [--repeats 15] [--no-write]

In one run: the shipped static model called directly vs through ``vecmig.embed``, the same model
behind the loopback OpenAI-compatible server in its own process (HTTP + JSON through the retrying
client, 1 and 4 requests in flight), and MiniLM int8 on onnxruntime when the ``onnx`` extra is
installed. Throughput is the best of the repeats. The overhead (target < 5%) is measured twice:
end to end, as the median CPU-time ratio of vecmig and direct runs made back to back (noisy on a
shared machine), and as the layer alone, timed around a model that costs nothing, relative to the
model's time per batch (noise-free; the exit status is judged on it). Results go to
bench/RESULTS.md, section "Embedders" (other sections are kept)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (puts the project on sys.path too)
from vecmig.embed import close_embedders, create_embedder  # noqa: E402
SECTION = "Embedders"
OVERHEAD_TARGET = 0.05


def corpus(n: int) -> list[str]:
    words = "vector database migration embedding model query collection alias backfill payload index shard".split()
    rng = np.random.default_rng(7)
    return [f"{i}: " + " ".join(rng.choice(words, size=int(rng.integers(6, 30)))) for i in range(n)]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def interleaved(fns: dict[str, callable], repeats: int) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Run the fns in turn, ``repeats`` times: the best wall time of each, and every round's CPU
    times (so that each vecmig run is compared with the direct run right next to it)."""
    best = {k: float("inf") for k in fns}
    rounds = []
    for _ in range(repeats):
        cpu = {}
        for k, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            best[k] = min(best[k], time.perf_counter() - w)
            cpu[k] = time.process_time() - c
        rounds.append(cpu)
    return best, rounds


def layer_cost_us(batch_size: int, n_batches: int = 2000, repeats: int = 7) -> float:
    """Microseconds vecmig adds per batch around a model that costs nothing (a function returning a
    ready array): the layer alone, free of the model's run-to-run noise."""
    import types

    ready = np.ones((batch_size, 64), dtype=np.float32)
    sys.modules["_bench_noop"] = types.SimpleNamespace(embed=lambda texts, kind: ready)
    emb = create_embedder("noop", {"provider": "python", "callable": "_bench_noop:embed", "batch_size": str(batch_size)})
    texts = ["x"] * (batch_size * n_batches)
    noop = sys.modules["_bench_noop"].embed

    def bare():
        return np.concatenate([np.asarray(noop(texts[i : i + batch_size], "document"), dtype=np.float32)
                               for i in range(0, len(texts), batch_size)])

    best, _ = interleaved({"bare": bare, "vecmig": lambda: emb.embed_documents(texts)}, repeats)
    return (best["vecmig"] - best["bare"]) / n_batches * 1e6


def static_rows(texts: list[str], batch_sizes: list[int], repeats: int) -> tuple[list[tuple], list[tuple]]:
    import static_model
    from static_model._static_model import encode_batch

    model_dir = static_model._model_dir()

    def direct(bs):  # the fastest direct call: the package's encoder, its files checked once
        def run():
            parts = [np.asarray(encode_batch(model_dir, texts[i : i + bs], 512), dtype=np.float32) for i in range(0, len(texts), bs)]
            return np.concatenate(parts)
        return run

    rows, overheads = [], []
    encode_batch(model_dir, texts[:10], 512)  # load the model once, outside the timings
    for bs in batch_sizes:
        emb = create_embedder("static", {"provider": "static", "batch_size": str(bs)})
        emb.embed_documents(texts[:10])
        best, rounds = interleaved({"direct": direct(bs), "vecmig": lambda: emb.embed_documents(texts)}, repeats)
        # the median of paired ratios: each pair ran back to back, so drift of a shared machine cancels
        ratio = float(np.median([r["vecmig"] / r["direct"] for r in rounds])) - 1.0
        rows.append(("static (direct call)", bs, 1, len(texts) / best["direct"]))
        rows.append(("static via vecmig", bs, 1, len(texts) / best["vecmig"]))
        direct_s = float(np.median([r["direct"] for r in rounds]))
        per_batch_us = direct_s / -(-len(texts) // bs) * 1e6
        layer = layer_cost_us(bs)
        overheads.append((bs, direct_s, float(np.median([r["vecmig"] for r in rounds])), ratio, layer, layer / per_batch_us))
    return rows, overheads


def http_rows(texts: list[str], batch_sizes: list[int], repeats: int) -> list[tuple]:
    """The loopback server runs in its own process, as a real service would (not sharing our GIL)."""
    proc = subprocess.Popen([sys.executable, "-m", "vecmig.embed.loopback"], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    try:
        url = proc.stdout.readline().strip()
        rows = []
        for bs in batch_sizes:
            for conc in (1, 4):
                emb = create_embedder("http", {"provider": "openai", "model": "tokenlearn", "base_url": url + "/v1",
                                               "batch_size": str(bs), "concurrency": str(conc)})
                emb.embed_documents(texts[:10])
                t = best_of(lambda: emb.embed_documents(texts), repeats)
                rows.append(("openai-compatible (loopback process, static)", bs, conc, len(texts) / t))
                emb.close()
        return rows
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def onnx_rows(texts: list[str], batch_sizes: list[int], repeats: int) -> list[tuple]:
    try:
        emb = create_embedder("minilm", {"provider": "onnx"})
        emb.embed_documents(texts[:4])
    except Exception as e:  # the onnx extra is not installed
        print(f"onnx: skipped ({e})", file=sys.stderr)
        return []
    rows = []
    for bs in batch_sizes:
        emb = create_embedder("minilm", {"provider": "onnx", "batch_size": str(bs)})
        t = best_of(lambda: emb.embed_documents(texts), repeats)
        rows.append(("onnx all-MiniLM-L6-v2-int8", bs, emb.concurrency, len(texts) / t))
    return rows


def render(rows, overheads, n_static, n_http, n_onnx) -> str:
    lines = [
        common.header(".venv/bin/python bench/bench_embed.py") + " Texts of 6-30 words; best of the repeats; "
        f"{n_static} texts for the static model, {n_http} over HTTP, {n_onnx} for MiniLM.",
        "",
        "| provider | batch size | concurrency | texts/s |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {p} | {bs} | {c} | {tps:,.0f} |" for p, bs, c, tps in rows]
    lines += [
        "",
        f"Overhead of vecmig's embedder layer over calling the static model directly (target < {OVERHEAD_TARGET:.0%}; "
        "this process's CPU time, direct and vecmig run back to back in each of the repeats):",
        "",
        "| batch size | direct, CPU s (median) | via vecmig, CPU s (median) | overhead (median of paired runs) | layer alone, µs/batch (no-op model) | layer alone / model time |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {bs} | {d:.4f} | {v:.4f} | {r:+.1%} | {us:.1f} | {share:.2%} |" for bs, d, v, r, us, share in overheads]
    lines += [
        "",
        "The paired ratio carries the noise of a shared machine (a few % either way); the layer alone is",
        "measured around a model that costs nothing, so it has none: that is vecmig's real cost per batch.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()

    texts = corpus(args.texts)
    n_http, n_onnx = min(args.texts, 10_000), min(args.texts, 1_000)
    rows, overheads = static_rows(texts, [32, 256, 1024, 4096], args.repeats)
    rows += http_rows(texts[:n_http], [32, 256, 1024], 3)
    rows += onnx_rows(texts[:n_onnx], [8, 32, 128], 1)
    close_embedders()

    body = render(rows, overheads, args.texts, n_http, n_onnx)
    print(body)
    paired = max(r for _, _, _, r, _, _ in overheads)
    worst = max(share for *_, share in overheads)
    verdict = "OK: under" if worst < OVERHEAD_TARGET else "OVER"
    print(f"vecmig's layer costs at most {worst:.2%} of the model's time per batch ({verdict} the {OVERHEAD_TARGET:.0%} target); "
          f"worst paired end-to-end ratio {paired:+.1%}")
    if not args.no_write:
        common.write_section(SECTION, body)
        print(f"written to {common.RESULTS}")
    return 0 if worst < OVERHEAD_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
