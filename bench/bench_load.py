"""What every command pays before it does anything: reading the revision files.

    .venv/bin/python bench/bench_load.py [--files 200] [--rounds 7] [--no-write]

200 YAML revisions (a create_collection, a backfill and a verify each, as a model switch writes them)
are parsed with vecmig's loader (libyaml, falling back to PyYAML's own parser only for a file it
refuses) and with PyYAML's pure-Python safe loader, in the same process, rounds alternated.
Target: the libyaml path at least 3x faster. The whole `ScriptDirectory` load (parse, JSON Schema
check, graph) is timed too, for scale.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from common import ROOT, header, timed, verdict, write_section

sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from vecmig.script.revision import _SafeUniqueLoader, load_yaml  # noqa: E402

FILES = 200
ROUNDS = 7
TARGET = 3.0

REVISION = """\
revision: r{i:04d}
down_revision: {down}
message: switch products to model {i}
upgrade:
  - create_collection:
      name: products_v{i}
      vectors: {{minilm: {{size: 384, distance: cosine, embedder: minilm}}}}
      payload_indexes: {{category: keyword, price: float}}
  - backfill: {{source: products, target: products_v{i}, vector: minilm, embedder: minilm,
               text: "{{{{ name }}}}. {{{{ description | default('') }}}}", batch_size: 256, workers: 4}}
  - verify: {{source: products, target: products_v{i}, vector: minilm, embedder: minilm,
             text: "{{{{ name }}}}. {{{{ description | default('') }}}}", old_vector: old, min_overlap: 0.6}}
  - repoint_alias: {{alias: products, to: products_v{i}}}
downgrade: auto
"""


def files(folder: Path, count: int) -> list[bytes]:
    out = []
    for i in range(count):
        text = REVISION.format(i=i, down="null" if i == 0 else f"r{i - 1:04d}")
        (folder / f"r{i:04d}_switch.yaml").write_text(text, encoding="utf-8")
        out.append(text.encode())
    return out


def main() -> int:
    from vecmig.config import Config
    from vecmig.script import ScriptDirectory

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=FILES)
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = files(folder, args.files)
        fast, slow = [], []
        for round_ in range(args.rounds):
            pair = [("fast", lambda: [load_yaml(d) for d in data]),
                    ("slow", lambda: [yaml.load(d, Loader=_SafeUniqueLoader) for d in data])]  # noqa: S506
            for name, fn in (pair if round_ % 2 == 0 else pair[::-1]):
                (fast if name == "fast" else slow).append(timed(fn))
        cfg = Config(script_location=folder)
        directory = [timed(lambda: ScriptDirectory(cfg).graph) for _ in range(3)]
    ratio = statistics.median(slow) / statistics.median(fast)
    ok = ratio >= TARGET
    body = "\n".join([
        header("python bench/bench_load.py"),
        "",
        f"{args.files} YAML revision files (create_collection + backfill + verify + repoint_alias each), parsed {args.rounds} times each way, order alternated.",
        "",
        "| loader | min | median | max |",
        "|---|---|---|---|",
        f"| vecmig (libyaml) | {min(fast) * 1000:.1f} ms | {statistics.median(fast) * 1000:.1f} ms | {max(fast) * 1000:.1f} ms |",
        f"| PyYAML pure-Python safe loader | {min(slow) * 1000:.1f} ms | {statistics.median(slow) * 1000:.1f} ms | {max(slow) * 1000:.1f} ms |",
        "",
        f"libyaml is **{ratio:.1f}x** faster (median; target >= {TARGET}x: {verdict(ok)}). "
        f"The whole revision directory (parse, schema check, graph) loads in {statistics.median(directory) * 1000:.0f} ms.",
        "",
    ])
    if not args.no_write:
        write_section("Loading revision files", body)
    print(body)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
