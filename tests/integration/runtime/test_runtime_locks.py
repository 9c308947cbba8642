"""Kernel locks: exclusion between threads and processes, release on kill -9, cancellable waiting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from maintd.errors import BusyError, Cancelled
from maintd.runtime import locks

HOLDER = """
import sys, time
from pathlib import Path
from maintd.runtime import locks
held = locks.try_acquire(Path(sys.argv[1]), "target", {"run_id": "child-run", "job": "backup"})
print("held" if held else "busy", flush=True)
time.sleep(60)
"""


def test_lock_held_by_a_killed_process_is_free_again(tmp_path: Path):
    root = Path(__file__).resolve().parents[3]
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert child.stdout.readline().strip() == "held"
        assert locks.try_acquire(tmp_path, "target") is None
        holder = locks.read_holder(tmp_path, "target")
        assert holder == {"pid": child.pid, "run_id": "child-run", "job": "backup"}
        assert locks.held_locks(tmp_path) == {"target": holder}
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        lock = locks.try_acquire(tmp_path, "target", {"run_id": "mine"})
        assert lock is not None
        assert locks.read_holder(tmp_path, "target")["run_id"] == "mine"
        lock.release()
        assert locks.held_locks(tmp_path) == {}
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_two_acquisitions_in_one_process_exclude_each_other(tmp_path: Path):
    first = locks.try_acquire(tmp_path, "job-backup")
    assert first is not None
    assert locks.try_acquire(tmp_path, "job-backup") is None
    result: list = []
    thread = threading.Thread(target=lambda: result.append(locks.try_acquire(tmp_path, "job-backup")))
    thread.start()
    thread.join()
    assert result == [None]
    first.release()
    with locks.try_acquire(tmp_path, "job-backup") as again:
        assert again.held
    assert not again.held


def test_blocking_acquire_waits_for_release_and_honours_cancel(tmp_path: Path):
    held = locks.try_acquire(tmp_path, "target", {"run_id": "a"})
    cancel = threading.Event()
    outcome: list = []

    def waiter() -> None:
        try:
            outcome.append(locks.acquire(tmp_path, "target", {"run_id": "b"}, cancel=cancel, poll_s=0.01))
        except Cancelled as err:
            outcome.append(err)

    thread = threading.Thread(target=waiter)
    thread.start()
    cancel.set()
    thread.join(5)
    assert isinstance(outcome[0], Cancelled)

    outcome.clear()
    cancel.clear()
    thread = threading.Thread(target=waiter)
    thread.start()
    held.release()
    thread.join(5)
    assert outcome[0].held and locks.read_holder(tmp_path, "target")["run_id"] == "b"
    outcome[0].release()


def test_acquire_with_timeout_names_the_holder(tmp_path: Path):
    held = locks.try_acquire(tmp_path, "target", {"run_id": "r-9", "job": "prune"})
    with pytest.raises(BusyError, match="run r-9, job prune"):
        locks.acquire(tmp_path, "target", timeout=0.05, poll_s=0.01)
    held.release()


def test_lock_set_takes_all_or_none_in_sorted_order(tmp_path: Path):
    other = locks.try_acquire(tmp_path, "target")
    group = locks.LockSet(tmp_path, ["target", "job-restore"])
    assert group.names == ["job-restore", "target"]
    assert group.try_acquire() == "target"
    assert not group.held and locks.try_acquire(tmp_path, "job-restore") is not None  # nothing kept
    other.release()
    assert group.try_acquire() is None and group.held
    group.release()


def test_lock_names_cannot_escape_the_directory(tmp_path: Path):
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(ValueError):
            locks.lock_path(tmp_path, bad)
