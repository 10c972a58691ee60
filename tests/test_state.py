"""The state store: heads, steps, journal, checkpoints and the lock lease, on embedded Qdrant."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from vecmig.backends import connect
from vecmig.config import Config
from vecmig.errors import LockError
from vecmig.state import StateStore


@pytest.fixture
def backend():
    b = connect(Config(url="qdrant+memory://"))
    yield b
    b.close()


@pytest.fixture
def state(backend):
    return StateStore(backend.records("vecmig_state"))


def test_a_new_store_has_no_heads_and_no_state_collection(state):
    assert state.heads() == [] and not state.exists()


def test_heads_steps_and_journal_round_trip(state):
    state.ensure()
    state.set_heads(["b", "a"])
    run, resumed = state.begin_step("a", "up", "sum1")
    assert not resumed
    state.record_op("a", "up", 0, {"run": run, "status": "done", "undo": {"previous": "x"}})
    assert state.begin_step("a", "up", "sum1") == (run, True)  # interrupted step resumes
    state.end_step("a", "sum1")
    assert state.heads() == ["a", "b"]
    assert state.steps()["a"]["status"] == "done"
    entry = state.journal_entry("a", "up", 0)
    assert entry["undo"] == {"previous": "x"} and entry["host"] and entry["vecmig_version"]
    assert state.begin_step("a", "down", "sum1")[1] is False


def test_checkpoints_round_trip_and_clear(state):
    state.ensure()
    state.set_checkpoint("a/up/1", {"written": 512})
    assert state.get_checkpoint("a/up/1")["written"] == 512
    state.clear_checkpoint("a/up/1")
    assert state.get_checkpoint("a/up/1") is None


def test_second_runner_is_refused_with_who_holds_the_lock(backend):
    first, second = StateStore(backend.records("vecmig_state")), StateStore(backend.records("vecmig_state"))
    first.acquire_lock(ttl=30, timeout=0, command="upgrade head", heartbeat=False)
    with pytest.raises(LockError, match=r"holds the migration lock: .* running `upgrade head`"):
        second.acquire_lock(ttl=30, timeout=0.3, command="upgrade head", heartbeat=False)
    first.release_lock()
    second.acquire_lock(ttl=30, timeout=0, command="upgrade head", heartbeat=False)
    assert second.lock_status()["owner"] == second.lease.token


def test_an_expired_lease_is_taken_over_and_the_old_owner_notices(backend):
    first, second = StateStore(backend.records("vecmig_state")), StateStore(backend.records("vecmig_state"))
    first.acquire_lock(ttl=0.2, timeout=0, command="upgrade head", heartbeat=False)
    time.sleep(0.3)
    second.acquire_lock(ttl=30, timeout=0, command="upgrade head", heartbeat=False)
    with pytest.raises(LockError, match="taken over"):
        first.lease.renew()


def test_the_lease_of_a_dead_process_on_this_host_is_taken_over(backend, state):
    state.ensure()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    import socket

    state.records.put("lock", {"owner": "gone", "host": socket.gethostname(), "pid": int(dead), "expires_at": time.time() + 600, "command": "upgrade head"})
    state.acquire_lock(ttl=30, timeout=0, command="upgrade head", heartbeat=False)
    assert state.lock_status()["owner"] == state.lease.token


def test_heartbeat_keeps_a_short_lease_alive(backend):
    first, second = StateStore(backend.records("vecmig_state")), StateStore(backend.records("vecmig_state"))
    first.acquire_lock(ttl=0.3, timeout=0, command="upgrade head", heartbeat=True)
    time.sleep(0.8)
    with pytest.raises(LockError):
        second.acquire_lock(ttl=30, timeout=0, command="upgrade head", heartbeat=False)
    first.release_lock()
    assert first.lock_status() is None


def test_lock_release_breaks_someone_elses_lease(backend):
    first, other = StateStore(backend.records("vecmig_state")), StateStore(backend.records("vecmig_state"))
    first.acquire_lock(ttl=30, timeout=0, command="upgrade head", heartbeat=False)
    released = other.release_lock(force=True)
    assert released["command"] == "upgrade head" and other.lock_status() is None
