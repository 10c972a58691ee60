"""Peak memory of a backfill: flat in the number of points, beyond what the store itself holds.

    .venv/bin/python bench/bench_memory.py [--sizes 50000 200000] [--no-write]

Embedded Qdrant keeps every collection in the process, and a collection filling up grows in steps
(its arrays double) that would drown the pipeline's own memory. So the store is kept from growing
while the peak is measured: each measurement runs in a fresh interpreter that loads N Jeopardy
points (payload only: the backfill reads no vectors) into an in-memory store and writes the target
collection's final points into it (payload, text hash, a 64-d vector each), probes the embedder (as
the runner does at plan time), then starts a new peak-RSS window (Linux: VmHWM reset through
/proc/self/clear_refs) and runs one of:

* vecmig: the ``backfill`` op into that target (static model, batch 256, default workers,
  checkpoints): every point is read, rendered, embedded and sent, and the store skips each one
  (insert-only: the point exists), so nothing the store keeps grows;
* store alone: the source read the same way (scroll pages of 2000) and the same points sent in
  insert-only ``upsert`` calls of 256 through the same backend: no pipeline, no model.

peak = VmHWM - RSS at the window's start. vecmig's own memory is the difference of the two peaks at
the same N; the target: it doesn't grow with N (at most TOLERANCE_MB more at the largest size than
at the smallest). Results go to bench/RESULTS.md, section "Backfill memory"."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SECTION = "Backfill memory"
TOLERANCE_MB = 10.0
BATCH = 256
HERE = Path(__file__).resolve()


def child(kind: str, n: int) -> dict:
    import numpy as np

    from vecmig.embed import load_embedder
    from vecmig.datapath.text import text_hash_field
    from vecmig.schema import Point

    backend = common.memory_store(n, vectors=False)
    runner = common.Runner(backend)
    runner.apply("create_collection", {"name": "jeopardy_v2", "vectors": {"static64": {"size": 64, "distance": "cosine"}}})
    texts, field, rng = common.texts(n), text_hash_field("static64"), np.random.default_rng(0)

    def final(page):  # the target's points as a backfill leaves them
        return [Point(p.id, {**p.payload, field: hashlib.sha256(texts[p.id].encode()).hexdigest()},
                      {"static64": rng.normal(size=64).astype(np.float32)}) for p in page]

    def send_all():
        for page, _ in backend.scroll_pages("jeopardy_v1", batch_size=backend.scan_page_size):
            for s in range(0, len(page), BATCH):
                backend.upsert("jeopardy_v2", final(page[s : s + BATCH]), insert_only=True)

    send_all()  # the target holds every point before the window: the store doesn't grow in it
    load_embedder("static", runner.config).embed_documents(["probe"])
    common.reset_peak_rss()
    start = common.rss_mb()
    if kind == "vecmig":
        runner.apply("backfill", {"source": "jeopardy_v1", "target": "jeopardy_v2", "vector": "static64", "embedder": "static",
                                  "text": common.TEXT, "batch_size": BATCH})
    else:
        send_all()
    peak = common.rss_mb("VmHWM") - start
    if backend.count("jeopardy_v2") != n:
        raise SystemExit(f"{kind}: the target has {backend.count('jeopardy_v2')} points of {n}")
    return {"start": start, "peak": peak}


def render(rows: list[tuple[int, dict, dict]], growth: float, command: str) -> str:
    lines = [
        common.header(command) + " Each number is one fresh process; MB of RSS.",
        "",
        "| points | RSS before (source and target loaded) | peak during vecmig's backfill | peak while the store alone is sent the same points | vecmig's own peak |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {n:,} | {v['start']:.0f} | +{v['peak']:.1f} | +{s['peak']:.1f} | {v['peak'] - s['peak']:+.1f} |" for n, v, s in rows]
    lines += [
        "",
        f"Target: vecmig's own peak doesn't grow with N (at most {TOLERANCE_MB:.0f} MB more at {rows[-1][0]:,} than at {rows[0][0]:,} "
        f"points): **{growth:+.1f} MB ({common.verdict(growth <= TOLERANCE_MB)})**.",
        "",
        "Why this way: embedded Qdrant holds every collection in the process, and a collection that fills up",
        "grows in steps (its arrays double), tens of MB at these sizes. So the target holds its final points",
        "before the window opens, and the store skips every write (insert-only) inside it: what it keeps",
        "doesn't change. The store-alone run reads the source and sends the same points the same way and",
        "pays the store's own temporaries (each scroll page sorts the source's ids); what is left after",
        "subtracting it is vecmig's pipeline: the queued batches, the texts and embeddings in flight.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return 0

    rows = []
    for n in args.sizes:
        v = common.in_subprocess(HERE, "vecmig", str(n))
        s = common.in_subprocess(HERE, "store", str(n))
        print(f"  {n:>7,} points: vecmig peak +{v['peak']:.1f} MB, store alone +{s['peak']:.1f} MB, "
              f"vecmig's own {v['peak'] - s['peak']:+.1f} MB", flush=True)
        rows.append((n, v, s))
    own = [v["peak"] - s["peak"] for _, v, s in rows]
    growth = own[-1] - own[0]
    command = ".venv/bin/python bench/bench_memory.py" + (f" --sizes {' '.join(map(str, args.sizes))}" if args.sizes != [50_000, 200_000] else "")
    body = render(rows, growth, command)
    print(body)
    print(f"vecmig's own peak grows by {growth:+.1f} MB from {rows[0][0]:,} to {rows[-1][0]:,} points "
          f"(target <= {TOLERANCE_MB:.0f} MB: {common.verdict(growth <= TOLERANCE_MB)})")
    if not args.no_write:
        common.write_section(SECTION, body)
        print(f"written to {common.RESULTS}")
    return 0 if growth <= TOLERANCE_MB else 1


if __name__ == "__main__":
    sys.exit(main())
