"""Id-only passes on embedded Qdrant: the store's large id pages vs the scan pages of whole points.

    .venv/bin/python bench/bench_verify.py [--points 100000] [--rounds 3] [--no-write]

The source and target hold the same ``--points`` Jeopardy points (4-d vectors). Each round, order
alternated, reads every id of the source twice — as the id passes did before (whole points, 2,000
a page) and through ``Backend.scan_ids`` (20,000 ids a page, no payload) — and runs the same
`verify` gate (ids, vector present) with its id pass in pages of each size (one of its three reads). Embedded
Qdrant sorts every id of the collection for each page it reads, so fewer pages is what counts.
Target: the id pass >= 2x; verify's own ratio is reported beside it.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from common import Runner, header, memory_store, points, timed, verdict, write_section

TARGET = 2.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()

    from vecmig.schema import CollectionSpec, VectorSpec

    backend = memory_store(args.points, vectors=False)
    backend.create_collection(CollectionSpec("jeopardy_v2", vectors={"ada002": VectorSpec(4, "cosine")}))
    for start in range(0, args.points, 1000):
        chunk = points(start, min(args.points, start + 1000), vectors=False)
        for p in chunk:
            p.vectors = {"ada002": [1.0, 0.0, 0.0, 0.0]}
        backend.upsert("jeopardy_v2", chunk)
    runner = Runner(backend)
    gate = {"source": "jeopardy_v1", "target": "jeopardy_v2", "vector": "ada002"}
    default_page = backend.id_page_size

    def whole_points():
        return sum(len(page) for page in backend.scroll("jeopardy_v1", batch_size=backend.scan_page_size))

    def id_pages():
        return sum(len(ids) for ids in backend.scan_ids("jeopardy_v1"))

    passes: dict[str, list[float]] = {"whole points": [], "id pages": []}
    gates: dict[str, list[float]] = {"whole points": [], "id pages": []}
    for round_ in range(args.rounds):
        order = [("whole points", whole_points, backend.scan_page_size), ("id pages", id_pages, default_page)]
        for name, read, page in order if round_ % 2 == 0 else order[::-1]:
            passes[name].append(timed(read))
            backend.id_page_size = page
            gates[name].append(timed(lambda: runner.apply("verify", gate)))
            backend.id_page_size = default_page
    ratio = statistics.median(passes["whole points"]) / statistics.median(passes["id pages"])
    gate_ratio = statistics.median(gates["whole points"]) / statistics.median(gates["id pages"])
    ok = ratio >= TARGET

    def row(label: str, t: list[float]) -> str:
        return f"| {label} | {min(t):.2f} s | {statistics.median(t):.2f} s | {max(t):.2f} s |"

    body = "\n".join([
        header("python bench/bench_verify.py"),
        "",
        f"{args.points:,} points on embedded Qdrant in memory, {args.rounds} rounds, order alternated.",
        "",
        "| | min | median | max |",
        "|---|---|---|---|",
        row(f"id pass, whole points ({backend.scan_page_size:,} a page)", passes["whole points"]),
        row(f"id pass, `scan_ids` ({default_page:,} ids a page)", passes["id pages"]),
        row(f"`verify` (ids + vector present), its id pass in pages of {backend.scan_page_size:,}", gates["whole points"]),
        row(f"`verify` (ids + vector present), its id pass in pages of {default_page:,}", gates["id pages"]),
        "",
        f"The id pass is **{ratio:.2f}x** faster (median; target >= {TARGET}x: {verdict(ok)}); `verify` as a whole "
        f"{gate_ratio:.2f}x (its target pass and source reads still go in scan pages of whole points).",
        "",
    ])
    if not args.no_write:
        write_section("verify: the id pass", body)
    print(body)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
