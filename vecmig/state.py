"""The state kept in the store itself: heads, per-revision steps, the op journal, checkpoints and
the lock lease. Built on a backend's ``RecordStore`` alone, so every backend gets the same model.

Records (keys):
  heads                          {"heads": [...]}
  step/<rev>                     the last upgrade/downgrade of a revision: direction, run id, status, checksum
  journal/<rev>/<dir>/<i>        one op of one step: status, times, duration, checksum, host, user, error, undo
  checkpoint/<rev>/<dir>/<i>     a long op's cursor
  embedder/<name>                the fingerprint of the model behind an embedder name
  routing/<name>                 the routing table of a logical collection (vecmig.routing)
  lock                           the lease: owner token, host, pid, user, command, expires_at
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from vecmig import __version__
from vecmig import state_records
from vecmig.errors import LockError, StateError


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def whoami() -> dict[str, str | int]:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers)
        user = str(os.getuid())
    return {"host": socket.gethostname(), "user": user, "pid": os.getpid(), "vecmig_version": __version__}


class StateStore:
    """Heads, journal, checkpoints and lock of one project, in the store's state collection."""

    def __init__(self, records, status_file=None):
        from vecmig.status import StatusMirror

        self.records = records
        self.lease: Lease | None = None
        #: an embedded store admits one process: runs mirror their progress to a file for `vecmig status`
        self.mirror = StatusMirror(status_file) if status_file else None

    @property
    def name(self) -> str:
        return self.records.name

    def exists(self) -> bool:
        return self.records.exists()

    def ensure(self) -> None:
        self.records.ensure()

    # heads
    def heads(self) -> list[str]:
        if not self.records.exists():
            return []
        doc = self.records.get("heads")
        return list(state_records.checked("heads", doc, self.name)["heads"]) if doc is not None else []

    def _at(self) -> str:
        """The revision(s) the store is at, for a repair message ("REV" when the heads can't be read)."""
        try:
            return ",".join(self.heads()) or "base"
        except StateError:
            return "REV --purge"

    def _checked(self, key: str, doc):
        return state_records.checked(key, doc, self.name, self._at)

    def recorded(self) -> bool:
        """Whether vecmig has recorded anything here: heads, or the steps of a first run that stopped."""
        return self.records.exists() and (self.records.get("heads") is not None or bool(self.records.scan("step")))

    def drop_unreadable(self) -> list[str]:
        """Delete the step and journal records vecmig can't read (``vecmig stamp`` repairs with this)."""
        dropped = [key for kind in ("step", "journal") for key, doc in self.records.scan(kind).items() if state_records.problem(key, doc)]
        for key in dropped:
            self.records.delete(key)
        return dropped

    def set_heads(self, heads) -> None:
        self.records.put("heads", {"heads": sorted(heads), "updated_at": now_iso()})

    # steps
    def step(self, rev: str) -> dict | None:
        doc = self.records.get(f"step/{rev}") if self.records.exists() else None
        return None if doc is None else self._checked(f"step/{rev}", doc)

    def steps(self) -> dict[str, dict]:
        if not self.records.exists():
            return {}
        return {k.split("/", 1)[1]: self._checked(k, v) for k, v in self.records.scan("step").items()}

    def begin_step(self, rev: str, direction: str, checksum: str, *, rolls_back: dict | None = None) -> tuple[str, bool]:
        """The run id of this step and whether it resumes an interrupted one. ``rolls_back``: what a
        (down) step that undoes an interrupted upgrade undoes (``Step.rolls_back``), kept for its resume."""
        step = self.step(rev)
        if step and step.get("status") == "running" and step.get("direction") == direction:
            if step.get("checksum") != checksum:  # an edited file, adopted (--accept-checksums)
                self.records.put(f"step/{rev}", {**step, "checksum": checksum, "adopted_from": step.get("checksum")})
            if self.mirror:
                self.mirror.on_step(rev, direction, step.get("started_at"))
            return step["run"], True
        self.clear_checkpoints(rev, direction)  # a new run starts from the beginning, whatever an old one left
        run = uuid.uuid4().hex
        doc = {"direction": direction, "run": run, "status": "running", "checksum": checksum, "started_at": now_iso(), **whoami()}
        if rolls_back:
            doc["rolls_back"] = rolls_back
        self.records.put(f"step/{rev}", doc)
        if self.mirror:
            self.mirror.on_step(rev, direction, doc["started_at"])
        return run, False

    def end_step(self, rev: str, checksum: str) -> None:
        step = self.step(rev) or {}
        self.records.put(f"step/{rev}", {**step, "status": "done", "checksum": checksum, "finished_at": now_iso()})
        if self.mirror:
            self.mirror.on_step(rev, step.get("direction"), step.get("started_at"), status="done")

    def stamp_step(self, rev: str, direction: str, checksum: str) -> None:
        self.records.put(f"step/{rev}", {"direction": direction, "run": None, "status": "stamped", "checksum": checksum, "finished_at": now_iso(), **whoami()})

    # journal
    def journal_entry(self, rev: str, direction: str, index: int) -> dict | None:
        key = f"journal/{rev}/{direction}/{index}"
        doc = self.records.get(key) if self.records.exists() else None
        return None if doc is None else self._checked(key, doc)

    def journal(self) -> dict[str, dict]:
        if not self.records.exists():
            return {}
        return {k: self._checked(k, v) for k, v in self.records.scan("journal").items()}

    def run_journal(self, rev: str, direction: str, run: str) -> dict[int, dict]:
        """The journal entries one run of a step wrote, by op index."""
        prefix = f"journal/{rev}/{direction}/"
        return {int(k[len(prefix):]): v for k, v in self.journal().items()
                if k.startswith(prefix) and k[len(prefix):].isdigit() and v.get("run") == run}

    def record_op(self, rev: str, direction: str, index: int, doc: dict) -> None:
        self.records.put(f"journal/{rev}/{direction}/{index}", {**doc, **whoami()})
        if self.mirror:
            self.mirror.on_op(rev, index, doc)

    # embedders: the fingerprint of the model behind each embedder name, when it first wrote data
    def embedder_fingerprint(self, name: str) -> dict | None:
        return self.records.get(f"embedder/{name}") if self.records.exists() else None

    def record_embedder(self, name: str, fingerprint: dict) -> None:
        if self.embedder_fingerprint(name) is None:
            self.records.put(f"embedder/{name}", {**fingerprint, "recorded_at": now_iso()})

    # checkpoints
    def get_checkpoint(self, key: str) -> dict | None:
        return self.records.get(f"checkpoint/{key}")

    def set_checkpoint(self, key: str, doc: dict) -> None:
        self.records.put(f"checkpoint/{key}", {**doc, "at": now_iso()})
        if self.mirror:
            self.mirror.on_checkpoint(key, {**doc, "at": now_iso()})
        if self.lease:
            self.lease.renew_if_due()

    def clear_checkpoint(self, key: str) -> None:
        """The checkpoint of one op, and the records kept under it (its partitions' cursors)."""
        self.records.delete(f"checkpoint/{key}")
        for under in self.records.scan("checkpoint") if self.records.exists() else {}:
            if under.startswith(f"checkpoint/{key}/"):
                self.records.delete(under)

    def clear_checkpoints(self, rev: str, direction: str) -> None:
        """Every checkpoint of the ops of one step."""
        prefix = f"checkpoint/{rev}/{direction}/"
        for key in self.records.scan("checkpoint") if self.records.exists() else {}:
            if key.startswith(prefix):
                self.records.delete(key)

    # lock
    def lock_status(self) -> dict | None:
        doc = self.records.get("lock") if self.records.exists() else None
        return None if doc is None else state_records.checked("lock", doc, self.name)

    def acquire_lock(self, *, ttl: float, timeout: float, command: str, heartbeat: bool) -> "Lease":
        """Take the migration lock, waiting up to ``timeout`` seconds for another runner."""
        self.ensure()
        token = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        while True:
            doc = {"owner": token, "command": command, "acquired_at": now_iso(), "expires_at": time.time() + ttl, **whoami()}
            if self.records.insert_if_absent("lock", doc):
                break
            current = self.lock_status()
            if current and lease_is_stale(current) and self.records.replace_if("lock", doc, "owner", current["owner"]):
                break
            if time.monotonic() >= deadline:
                raise LockError(_held_message(current))
            time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))
        self.lease = Lease(self.records, token, doc, ttl, heartbeat)
        if self.mirror:
            self.mirror.on_lock(doc)
        return self.lease

    def release_lock(self, force: bool = False) -> dict | None:
        """Drop the lease: ours, or (force) whoever holds it. Returns the record that was released."""
        current = self.records.get("lock") if self.records.exists() else None
        if current is not None:  # an unreadable lock is released too: that is its repair
            current = state_records.released_lock(current, self.name)
        if current and (force or (self.lease and current.get("owner") == self.lease.token)):
            self.records.delete("lock")
        if self.lease:
            self.lease.stop()
            self.lease = None
            if self.mirror:
                self.mirror.on_lock(None)
        return current


def lease_is_stale(lock: dict) -> bool:
    """Expired, or held by a process of this host that no longer exists."""
    lock = state_records.checked("lock", lock)
    if lock["expires_at"] < time.time():
        return True
    if lock.get("host") == socket.gethostname() and isinstance(lock.get("pid"), int):
        try:
            os.kill(lock["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


def _held_message(lock: dict | None) -> str:
    if not lock:
        return "could not take the migration lock: try again"
    left = max(0, int(lock.get("expires_at", 0) - time.time()))
    return (
        f"another vecmig run holds the migration lock: {lock.get('user')}@{lock.get('host')} pid {lock.get('pid')} "
        f"running `{lock.get('command')}` since {lock.get('acquired_at')} (lease expires in {left}s): "
        "wait for it, pass --lock-timeout SECONDS to wait, or `vecmig lock release` if that run is dead"
    )


@dataclass
class Lease:
    """A held lock: renewed by a heartbeat thread, or inline (``renew_if_due``) on exclusive stores."""

    records: object
    token: str
    doc: dict
    ttl: float
    heartbeat: bool

    def __post_init__(self):
        self._renewed = time.monotonic()
        self._stop = threading.Event()
        self.lost = False
        self._thread = None
        if self.heartbeat:
            self._thread = threading.Thread(target=self._beat, name="vecmig-lock-heartbeat", daemon=True)
            self._thread.start()

    def renew(self) -> None:
        doc = {**self.doc, "expires_at": time.time() + self.ttl, "renewed_at": now_iso()}
        if not self.records.replace_if("lock", doc, "owner", self.token):
            self.lost = True
            raise LockError("the migration lock was taken over (it expired or was released): stopping; re-run to resume")
        self._renewed = time.monotonic()

    def renew_if_due(self) -> None:
        if self.lost:
            raise LockError("the migration lock was lost: stopping; re-run to resume")
        if not self.heartbeat and time.monotonic() - self._renewed > self.ttl / 3:
            self.renew()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
            except LockError:
                return
            except Exception:  # a transient store error: try again next beat
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
