"""Timing: how many runs a measurement needs, medians and spreads, and running external commands as argv lists
(chained through pipes for the shell pipelines) with a timeout on each."""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

SLOW_S = 30.0
FAST_S = 1.0
FAST_RUNS = 5
TIMEOUT_S = 3600.0


class CpuMeter:
    """CPU seconds (user + system) of every command run through this module, from wait4(): a step's CPU time is
    the difference around it. Less sensitive than wall time to other work sharing the machine."""

    total = 0.0

    @classmethod
    def wait(cls, proc: "subprocess.Popen[bytes]") -> int:
        """Reaps proc (which must be ours and not yet reaped), counts its CPU, returns its exit code."""
        _pid, status, usage = os.wait4(proc.pid, 0)
        cls.total += usage.ru_utime + usage.ru_stime
        proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode


def runs_for(first_s: float, default: int) -> int:
    """Total runs a measurement needs after a first one took `first_s`: one when it is over 30 s, at least five
    when it is under a second (timings that short vary 5-30% here), else the default."""
    if first_s > SLOW_S:
        return 1
    if first_s < FAST_S:
        return max(FAST_RUNS, default)
    return default


@dataclass
class Series:
    """The samples of one measurement, in seconds, with what it processed."""

    samples: list[float] = field(default_factory=list)
    bytes: int | None = None
    cpu: list[float] = field(default_factory=list)
    """CPU seconds of each sample (all processes involved, this benchmark's own Python excluded)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.samples), max(self.samples)

    @property
    def mb_s(self) -> float | None:
        return self.bytes / 1e6 / self.median if self.bytes and self.samples and self.median > 0 else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"samples": [round(s, 4) for s in self.samples], "bytes": self.bytes,
                               "cpu_s": [round(c, 3) for c in self.cpu], **self.extra}
        if self.samples:
            out.update(median=round(self.median, 4), min=round(self.spread[0], 4), max=round(self.spread[1], 4))
        return out


def measure(step: Callable[[int], Any], *, runs: int = 3, prepare: Callable[[int], Any] | None = None,
            say: Callable[[str], None] = lambda msg: None, label: str = "") -> Series:
    """Times step(i) (untimed prepare(i) first: a fresh directory, a sync) as many times as runs_for asks.
    When step returns a float, that is the sample (a child that timed its own work)."""
    series = Series()
    total = 1
    i = 0
    while i < total:
        if prepare is not None:
            prepare(i)
        cpu = CpuMeter.total
        started = time.perf_counter()
        reported = step(i)
        elapsed = time.perf_counter() - started
        series.samples.append(reported if isinstance(reported, float) else elapsed)
        series.cpu.append(CpuMeter.total - cpu)
        if i == 0:
            total = runs_for(series.samples[0], runs)
        say(f"  {label} run {i + 1}/{total}: {series.samples[-1]:.2f} s")
        i += 1
    return series


def sync() -> None:
    """Flush dirty pages so one measurement's writeback does not slow the next."""
    os.sync()


class CommandFailed(RuntimeError):
    pass


class PeakRss:
    """Samples the memory of a process tree every `interval` seconds until stop(): the peak of the summed VmRSS of
    the process and its descendants, and each process's VmHWM (its own high-water mark).

    Not getrusage/wait4: their ru_maxrss carries the parent's high-water mark over fork and exec (the kernel
    keeps the larger of the old and new mm), so a small tool started by a big Python process reports the
    Python's size. A child caught between fork and exec still shares its parent's pages: such a child (same
    name as its parent) is left out of the sum."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.tree_peak_kb = 0
        self.hwm_kb: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"rss-{pid}")

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def top_hwm_kb(self) -> int:
        return self.hwm_kb.get(self.pid, ("", 0))[1]

    @property
    def helpers_hwm_kb(self) -> int:
        return max((hwm for pid, (_name, hwm) in self.hwm_kb.items() if pid != self.pid), default=0)

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        children: dict[int, list[int]] = {}
        names: dict[int, str] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    raw = handle.read()
            except OSError:
                continue
            name = raw[raw.index(b"(") + 1:raw.rindex(b")")].decode("utf-8", "replace")
            ppid = int(raw[raw.rindex(b")") + 2:].split()[1])
            pid = int(entry.name)
            names[pid] = name
            children.setdefault(ppid, []).append(pid)
        total = 0
        stack = [(self.pid, None)]
        while stack:
            pid, parent_name = stack.pop()
            stack.extend((child, names.get(pid)) for child in children.get(pid, ()))
            if pid != self.pid and names.get(pid) == parent_name:
                continue  # forked, not yet exec'd: shares the parent's pages
            rss, hwm = _memory(pid)
            total += rss
            if hwm:
                self.hwm_kb[pid] = (names.get(pid, "?"), max(hwm, self.hwm_kb.get(pid, ("", 0))[1]))
        self.tree_peak_kb = max(self.tree_peak_kb, total)


def _memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB; zeros when the process is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, hwm


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: bytes
    maxrss_kb: int
    """Peak RSS of the command itself (its VmHWM, sampled while it ran)."""
    tree_peak_kb: int = 0
    """Peak of the summed RSS of the command and its descendants (sampled)."""


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT_S,
        cwd: Path | None = None) -> Finished:
    """Run one command (argv list, never a shell) to completion; raise CommandFailed with the tail of stderr
    when it fails or outlives `timeout`."""
    argv = [str(a) for a in argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=_env(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            with PeakRss(proc.pid) as peak:
                CpuMeter.wait(proc)
        finally:
            killer.cancel()
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            tail = err.read().decode("utf-8", "replace").strip()[-2000:]
            raise CommandFailed(f"{' '.join(argv)} exited with {proc.returncode}: {tail}")
        return Finished(proc.returncode, out.read(), peak.top_hwm_kb, peak.tree_peak_kb)


def pipeline(commands: Sequence[Sequence[str]], *, env: Mapping[str, str] | None = None,
             stdin_path: Path | None = None, out_path: Path | None = None, hash_output: bool = False,
             timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """cmd1 | cmd2 | ... with Popen objects chained by pipes. The last stdout is read here in 1 MiB blocks:
    written to out_path (or discarded) and hashed with sha256 on the way when asked. Returns bytes and hash."""
    procs: list[subprocess.Popen[bytes]] = []
    stdin_file = stdin_path.open("rb") if stdin_path else None
    previous = stdin_file if stdin_file else subprocess.DEVNULL
    stderr_files = []
    try:
        for argv in commands:
            err = tempfile.TemporaryFile()  # noqa: SIM115  # closed in finally
            stderr_files.append(err)
            proc = subprocess.Popen(list(map(str, argv)), stdin=previous, stdout=subprocess.PIPE, stderr=err,
                                    env=_env(env))
            if procs:
                procs[-1].stdout.close()  # type: ignore[union-attr]  # only the next process holds the pipe
            procs.append(proc)
            previous = proc.stdout  # type: ignore[assignment]
        digest = hashlib.sha256() if hash_output else None
        total = 0
        deadline = time.monotonic() + timeout
        out = out_path.open("wb") if out_path else None
        try:
            buffer = bytearray(1 << 20)
            view = memoryview(buffer)
            reader = procs[-1].stdout
            while True:
                n = reader.readinto(buffer)  # type: ignore[union-attr]
                if not n:
                    break
                total += n
                if digest is not None:
                    digest.update(view[:n])
                if out is not None:
                    out.write(view[:n])
                if time.monotonic() > deadline:
                    raise CommandFailed(f"pipeline timed out after {timeout:.0f}s")
        finally:
            if out is not None:
                out.close()
        killer = threading.Timer(max(1.0, deadline - time.monotonic()), lambda: [p.kill() for p in procs])
        killer.start()
        try:
            codes = [CpuMeter.wait(proc) for proc in procs]
        finally:
            killer.cancel()
        for argv, code, err in zip(commands, codes, stderr_files):
            if code != 0:
                err.seek(0)
                raise CommandFailed(f"{' '.join(map(str, argv))} exited with {code}: "
                                    f"{err.read().decode('utf-8', 'replace').strip()[-2000:]}")
        return {"bytes": total, "sha256": digest.hexdigest() if digest else None}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()
        for err in stderr_files:
            err.close()
        if stdin_file:
            stdin_file.close()


def _env(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    return {**os.environ, **extra} if extra else None
