"""The benchmarks in bench/ still run: each script at tiny sizes, printing only (``--no-write``).

Timing ratios are judged by the scripts themselves (``make bench``), never here: a missed target
exits 1 and is accepted; a crash (a traceback) or a bad command line is not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

RUNS = {
    "bench_copy.py": ["--real", "200", "--points", "300"],
    "bench_backfill.py": ["--points", "200", "--rounds", "1", "--latency", "0.01"],
    "bench_memory.py": ["--sizes", "200", "400"],
    "bench_embed.py": ["--texts", "100", "--repeats", "1"],
    "bench_quality.py": ["--points", "500", "--sample", "20", "--linear-sample", "200"],
    "bench_load.py": ["--files", "10", "--rounds", "1"],
    "bench_verify.py": ["--points", "300", "--rounds", "1"],
}


def test_every_benchmark_is_smoke_tested():
    assert sorted(p.name for p in BENCH.glob("bench_*.py")) == sorted(RUNS)


@pytest.mark.parametrize("script", sorted(RUNS))
def test_benchmark_runs_at_tiny_sizes(script):
    results = (BENCH / "RESULTS.md").read_bytes()
    proc = subprocess.run([sys.executable, str(BENCH / script), *RUNS[script], "--no-write"],
                          capture_output=True, text=True, timeout=120, cwd=BENCH.parent)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), proc.stderr  # 1: a target missed at this size, which says nothing
    assert "|---" in proc.stdout  # the results table was printed
    assert (BENCH / "RESULTS.md").read_bytes() == results  # --no-write left it alone
