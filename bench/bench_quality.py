"""Search quality of a model switch on the real Jeopardy 10k set: reference numbers for ``verify``'s
``min_overlap`` and ``min_recall`` (and ``transform_vectors``' ``min_recall``).

    .venv/bin/python bench/bench_quality.py [--points 10000] [--sample 200] [--linear-sample 2000 8000] [--no-write]

The source: the Jeopardy questions with their OpenAI ada-002 vectors (1536-d) in an embedded
in-memory store (``qdrant+memory://``). New collections, each filled by an op as the runner
applies it, with the text "category: question answer":

* static 64-d: ``backfill`` with the shipped static model;
* static 32-d: ``transform_vectors`` method truncate (dims 32) of the static 64-d vectors; queried
  with the static model asked for 32 dimensions (``dimensions = 32``);
* ada-002 mapped to static 64-d: ``transform_vectors`` method linear, learned on ``--linear-sample``
  points embedded with the static model (no re-embedding of the rest); queried with the static model.
  One collection per sample size, dropped after its ``verify``.

Each is then measured by one real ``verify`` op against the source: overlap@10 with the ada-002
neighbours (``--sample`` points drawn by verify, each querying by its own stored ada-002 vector) and
recall@10 on ``--sample`` golden queries: a question's answer as the query, that question as the one
relevant point. The linear map's own cross-validated recall@10 is what ``transform_vectors`` journals.
Not a speed benchmark: no targets; exits 0 unless something crashes.
Results go to bench/RESULTS.md, section "Quality" (other sections are kept)."""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SECTION = "Quality"
K = 10
LINEAR = [2000, 8000]


def golden(n: int, size: int) -> list[dict]:
    """``size`` questions drawn with a fixed seed: the answer is the query, the question the one relevant point."""
    payloads, _ = common.jeopardy()
    return [{"query": str(payloads[i]["answer"]), "relevant": [i]} for i in sorted(random.Random(0).sample(range(n), size))]


def margin(value: float, n: int, *, binary: bool) -> float:
    """Two standard errors of a mean over ``n`` queries: exact for recall (one relevant point: a hit or
    not), an upper bound for overlap (a per-query score in [0, 1] has a standard deviation of at most 0.5)."""
    sd = math.sqrt(value * (1 - value)) if binary else 0.5
    return 2 * sd / math.sqrt(n)


def measure(backend, n: int, sample: int, linear_samples: list[int]) -> tuple[list[dict], list[dict]]:
    """The collections, filled and verified: one row per collection, and what each linear map journaled."""
    runner = common.Runner(backend)
    runner.config.embedders["static32"] = {**common.STATIC, "dimensions": "32"}
    queries = golden(n, sample)

    def create(name: str, vector: str, size: int) -> None:
        runner.apply("create_collection", {"name": name, "vectors": {vector: {"size": size, "distance": "cosine"}}})

    def verify(target: str, vector: str, embedder: str, **text) -> dict:
        return runner.apply("verify", {"source": "jeopardy_v1", "target": target, "vector": vector, "embedder": embedder,
                                       "old_vector": "ada002", "sample": sample, "k": K, "golden": queries, **text})

    print("static 64-d: backfill, verify", flush=True)
    create("jeopardy_static", "static", 64)
    runner.apply("backfill", {"source": "jeopardy_v1", "target": "jeopardy_static", "vector": "static", "embedder": "static",
                              "text": common.TEXT})
    rows = [{"what": "static, `backfill`", "dims": 64, **verify("jeopardy_static", "static", "static", text=common.TEXT)}]

    print("static 32-d: transform_vectors truncate, verify", flush=True)
    create("jeopardy_static32", "static32", 32)
    runner.apply("transform_vectors", {"source": "jeopardy_static", "target": "jeopardy_static32", "from_vector": "static",
                                       "to_vector": "static32", "method": "truncate", "dims": 32})
    rows.append({"what": "static truncated, `transform_vectors` truncate", "dims": 32,
                 **verify("jeopardy_static32", "static32", "static32", text=common.TEXT)})

    linear = []
    for size in linear_samples:
        print(f"ada-002 -> static 64-d: transform_vectors linear ({size}-point sample), verify", flush=True)
        name = f"jeopardy_linear_{size}"
        create(name, "static", 64)
        linear.append(runner.apply("transform_vectors", {"source": "jeopardy_v1", "target": name, "from_vector": "ada002",
                                                         "to_vector": "static", "method": "linear",
                                                         "sample": {"size": size, "embedder": "static", "text": common.TEXT}}))
        # the mapped vectors carry no text hash (ada-002 was loaded, not backfilled): queries from the template, presence checked
        rows.append({"what": f"ada-002 mapped to static, `transform_vectors` linear ({size}-point sample)", "dims": 64,
                     **verify(name, "static", "static", query=common.TEXT)})
        backend.drop_collection(name)
    for row in rows:
        assert row["target_points"] == n and row["missing"] == row["extra"] == row["stale"] == 0, row
    return rows, linear


def render(rows: list[dict], linear: list[dict], n: int, sample: int, command: str) -> str:
    payloads, _ = common.jeopardy()
    answers = Counter(str(p["answer"]) for p in payloads[:n])
    shared = sum(answers[g["query"]] > 1 for g in golden(n, sample))
    top, count = answers.most_common(1)[0]
    chance = K / n
    table = [f"| vectors searched | dims | overlap@{K} with ada-002 (± 2 SE, at most) | recall@{K} answer -> question (± 2 SE) "
             "| floors: `min_overlap` / `min_recall` |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        overlap = margin(r["overlap"], r["overlap_queries"], binary=False)
        recall = margin(r["recall"], r["recall_queries"], binary=True)
        table.append(f"| {r['what']} | {r['dims']} | {r['overlap']:.3f} (± {overlap:.3f}) | {r['recall']:.3f} (± {recall:.3f}) "
                     f"| {floor(r['overlap'] - overlap)} / {floor(r['recall'] - recall)} |")
    default = margin(rows[0]["overlap"], 50, binary=False)
    return "\n".join([
        common.header(command) + f" {n:,} Jeopardy questions with their ada-002 vectors (1536-d) in an embedded in-memory "
        f"store; the switch ada-002 -> the shipped static model. Each row is one `verify` op against the source: "
        f"overlap@{K} over {sample} points it samples, recall@{K} over {sample} golden queries.",
        "",
        *table,
        "",
        "What `transform_vectors` journaled for its linear maps ada-002 -> static 64-d:",
        "",
        *(f"* learned on {m['sample_points']:,} points: recall@10 **{m['recall_at_10']:.3f}** (chance {m['chance']:.4f}; "
          f"5-fold cross-validated among {m['measured_points']:,} sample points)" for m in linear),
        "",
        "What the numbers mean:",
        "",
        f"* **overlap@{K}**: how many of a sampled point's {K} nearest ada-002 neighbours (the point querying by its",
        "  own stored ada-002 vector) the new vector's search for the point's text returns too. It measures agreement",
        "  between two models, not quality: two good models share part of a neighbourhood only. The sampled point",
        "  itself is left out of both lists (it is its own nearest neighbour in both spaces); a wrong model, a wrong",
        f"  text template or vectors in the wrong points fall towards chance ({chance:.4f} = {K} / {n:,}).",
        f"* **recall@{K} answer -> question**: the share of golden queries (a question's answer, e.g. \"Copernicus\")",
        f"  whose question is among the {K} nearest. The question's text contains its answer, but a short answer is a",
        f"  small part of it, and {shared} of the {sample} answers also answer other questions (\"{top}\": {count}), which",
        f"  compete for the same {K} places. Chance is the same as above.",
        "* **linear map recall@10**: the share of a point's 10 nearest true static neighbours that the mapped vectors",
        "  return too, among the sample; it is what `transform_vectors`' own `min_recall` is compared with.",
        "  A 1536-d -> 64-d map is least squares over 1536 inputs: a sample not many times larger than that overfits",
        "  (the op says so when it learns), and the mapped vectors then match neither model. Between two unrelated",
        "  models, as here, re-embed with `backfill`; a linear map suits closely related ones.",
        "",
        "How to pick the thresholds: run `verify` once without them on your own data (it prints and journals what it",
        "measured), then set `min_overlap` and `min_recall` below the measured values by two standard errors of the",
        "sample you gate with, rounded down (the floors column; \"none\": too close to chance to gate), so that a",
        "correct migration passes run after run and a broken one, near chance, fails. The overlap margins are upper",
        "bounds, so those floors are on the safe side. The margin grows as the sample shrinks (with the square root of the",
        f"number of queries): for overlap it is at most ± {default:.3f} with verify's default `sample: 50`, which puts",
        f"the static 64-d `min_overlap` floor at {floor(rows[0]['overlap'] - default)}: gate with a larger sample.",
        "The numbers are for this data and these models: measure yours.",
    ]) + "\n"


def floor(value: float) -> str:
    """A threshold: ``value`` rounded down to 0.05; "none" when that is not above 0."""
    down = math.floor(value * 20) / 20
    return f"{down:.2f}" if down > 0 else "none"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=common.REAL, help="points in the source (default: the real 10000)")
    ap.add_argument("--sample", type=int, default=200, help="verify's sampled points and golden queries (default 200)")
    ap.add_argument("--linear-sample", type=int, nargs="+", default=LINEAR, metavar="N",
                    help="points a linear map is learned on, one map each (default: 2000 8000)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    if not 0 < args.points <= common.REAL or not 0 < args.sample <= args.points or not all(50 <= s <= args.points for s in args.linear_sample):
        ap.error(f"need 0 < --sample <= --points <= {common.REAL} and 50 <= --linear-sample <= --points")

    backend = common.memory_store(args.points)
    rows, linear = measure(backend, args.points, args.sample, args.linear_sample)
    command = ".venv/bin/python bench/bench_quality.py" + "".join(
        f" --{flag} {value}" for flag, value, default in (("points", args.points, common.REAL), ("sample", args.sample, 200),
                                                           ("linear-sample", " ".join(map(str, args.linear_sample)), " ".join(map(str, LINEAR)))) if value != default)
    body = render(rows, linear, args.points, args.sample, command)
    print(body)
    if not args.no_write:
        common.write_section(SECTION, body)
        print(f"written to {common.RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
