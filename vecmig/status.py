"""What is running or was interrupted: read from the state records, or from the status file that a
run on an embedded store keeps beside it (that store admits one process at a time)."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path


def checkpoint_summary(checkpoint: dict) -> dict:
    return {k: checkpoint[k] for k in ("done", "written", "total", "at", "finished") if k in checkpoint}


def partition_rows(state, key: str, checkpoint: dict) -> list[dict]:
    """Each partition of a partitioned op (its checkpoint holds the plan): points done, finished."""
    count = len(checkpoint["partitions"]["splits"]) + 1
    return [{"partition": k, **checkpoint_summary(state.get_checkpoint(f"{key}/{k}") or {})} for k in range(count)]


def op_status(index: int, entry: dict, checkpoint: dict | None) -> dict:
    out = {"index": index, "op": entry.get("op"), "status": entry.get("status"), "started_at": entry.get("started_at")}
    if entry.get("error"):
        out["error"] = entry["error"]
    if checkpoint:
        out["checkpoint"] = checkpoint_summary(checkpoint)
    return out


def live_status(state) -> dict:
    """The lock, and every step left running with its ops and their checkpoints."""
    steps = []
    for rev, step in sorted(state.steps().items()):
        if step.get("status") != "running":
            continue
        ops, index = [], 0
        while (entry := state.journal_entry(rev, step["direction"], index)) is not None:
            if entry.get("run") == step["run"]:
                key = f"{rev}/{step['direction']}/{index}"
                checkpoint = state.get_checkpoint(key)
                ops.append(op_status(index, entry, checkpoint))
                if checkpoint and "partitions" in checkpoint:
                    ops[-1]["partitions"] = partition_rows(state, key, checkpoint)
            index += 1
        steps.append({"revision": rev, "direction": step["direction"], "started_at": step.get("started_at"), "ops": ops})
    return summarize(state.lock_status(), steps)


def summarize(lock: dict | None, steps: list[dict]) -> dict:
    from vecmig.state import lease_is_stale

    if lock and lease_is_stale(lock):
        lock = {**lock, "stale": True}
    state = "running" if lock and not lock.get("stale") else ("interrupted" if steps else "idle")
    return {"state": state, "lock": lock, "steps": steps}


def progress(op: dict) -> dict | None:
    """done, total, percent, points/s and ETA seconds of an op with a checkpoint, or None."""
    cp = op.get("checkpoint") or {}
    done = cp.get("done", cp.get("written"))
    if done is None:
        return None
    total = cp.get("total")
    out = {"done": done, "total": total, "percent": round(100 * done / total, 1) if total else None}
    try:
        seconds = (datetime.fromisoformat(cp["at"]) - datetime.fromisoformat(op["started_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return out
    if seconds > 0 and done:
        out["rate"] = round(done / seconds, 1)
        if total:
            out["eta_seconds"] = round((total - done) / out["rate"])
    return out


class StatusMirror:
    """Keeps the status of the current run in a JSON file, rewritten atomically on each change."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock: dict | None = None
        self.steps: list[dict] = []
        #: partitions commit their checkpoints from several threads
        self._guard = threading.RLock()

    def on_lock(self, lock: dict | None) -> None:
        self.lock = lock
        if lock is None:
            self.steps = [s for s in self.steps if s.get("status") != "done"]
        self._write()

    def on_step(self, rev: str, direction: str, started_at: str | None, status: str = "running") -> None:
        self.steps = [s for s in self.steps if s["revision"] != rev]
        if status == "running":
            self.steps.append({"revision": rev, "direction": direction, "started_at": started_at, "ops": []})
        self._write()

    def on_op(self, rev: str, index: int, entry: dict) -> None:
        for step in self.steps:
            if step["revision"] == rev:
                step["ops"] = [o for o in step["ops"] if o["index"] != index] + [op_status(index, entry, None)]
        self._write()

    def on_checkpoint(self, key: str, doc: dict) -> None:
        with self._guard:
            self._on_checkpoint(key, doc)

    def _on_checkpoint(self, key: str, doc: dict) -> None:
        parts = key.split("/")
        partition = int(parts[3]) if len(parts) == 4 and parts[3].isdigit() else None
        if len(parts) != 3 and partition is None:  # a record kept under an op's own (a learned map)
            return
        rev, index = parts[0], int(parts[2])
        for step in self.steps:
            for op in step["ops"] if step["revision"] == rev else ():
                if op["index"] != index:
                    continue
                if partition is None:
                    op["checkpoint"] = checkpoint_summary(doc)
                else:
                    rows = {row["partition"]: row for row in op.get("partitions", [])}
                    rows[partition] = {"partition": partition, **checkpoint_summary(doc)}
                    op["partitions"] = [rows[k] for k in sorted(rows)]
        self._write()

    def _write(self) -> None:
        with self._guard:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(summarize(self.lock, self.steps), default=str), encoding="utf-8")
            os.replace(tmp, self.path)


def read_status_file(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
