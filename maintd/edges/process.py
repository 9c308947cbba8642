"""The one place that runs external commands: argv tuples only (never a shell), a timeout on every call,
cancellation polled while waiting, secrets masked in logged argv, the tail of stderr kept in errors."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import IO, Iterable, Mapping, Sequence

import structlog

from ..errors import Cancelled, CommandError, UnavailableError

log = structlog.get_logger("maintd.process")

STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def masked(argv: Sequence[str], secrets: Iterable[str] = ()) -> tuple[str, ...]:
    """argv as it may be logged: every secret replaced by ***."""
    hidden = [s for s in secrets if s]
    out = []
    for part in argv:
        for secret in hidden:
            part = part.replace(secret, "***")
        out.append(part)
    return tuple(out)


def stderr_tail(stderr: bytes, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(stderr.decode("utf-8", "replace").strip().splitlines()[-lines:])


def run(argv: Sequence[str], *, timeout: float, input: bytes | None = None,
        cancel: threading.Event | None = None, env: Mapping[str, str] | None = None, cwd: str | None = None,
        check: bool = True, secrets: Iterable[str] = (), ok_codes: Iterable[int] = (0,)) -> Completed:
    """Run argv to completion. Raises UnavailableError when the program is missing, CommandError on a timeout or
    (with check) an exit code outside ok_codes, Cancelled when `cancel` is set while waiting."""
    argv = tuple(str(a) for a in argv)
    shown = masked(argv, secrets)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(env) if env else None,
                                cwd=cwd, start_new_session=True)
    except FileNotFoundError as err:
        raise UnavailableError(f"program not found: {argv[0]}") from err
    except OSError as err:
        raise CommandError(f"cannot start {argv[0]}: {err.strerror}", argv=shown) from err

    result: dict[str, bytes] = {}

    def communicate() -> None:
        out, err = proc.communicate(input)
        result["stdout"], result["stderr"] = out, err

    worker = threading.Thread(target=communicate, daemon=True, name=f"proc-{argv[0]}")
    worker.start()
    deadline = started + timeout
    while worker.is_alive():
        worker.join(0.05)
        if cancel is not None and cancel.is_set():
            terminate(proc)
            worker.join(5)
            raise Cancelled(f"{shown[0]} cancelled")
        if time.monotonic() > deadline:
            terminate(proc)
            worker.join(5)
            raise CommandError(f"{' '.join(shown)} timed out after {timeout:.0f}s", argv=shown,
                               detail=stderr_tail(result.get("stderr", b"")))
    completed = Completed(argv, proc.returncode, result.get("stdout", b""), result.get("stderr", b""))
    log.debug("process.finished", argv=list(shown), returncode=proc.returncode,
              duration_s=round(time.monotonic() - started, 3))
    if check and proc.returncode not in set(ok_codes):
        raise CommandError(f"{' '.join(shown)} exited with {proc.returncode}", argv=shown,
                           returncode=proc.returncode, detail=stderr_tail(completed.stderr))
    return completed


def spawn(argv: Sequence[str], *, stdin: int | IO[bytes] | None = subprocess.DEVNULL,
          stdout: int | IO[bytes] | None = subprocess.PIPE, stderr: int | IO[bytes] | None = subprocess.PIPE,
          env: Mapping[str, str] | None = None, pass_fds: Sequence[int] = (),
          secrets: Iterable[str] = ()) -> subprocess.Popen[bytes]:
    """Start a long-running child for a streaming pipeline; the caller waits and checks. New session, so a
    daemon stop does not signal it directly (systemd KillMode=mixed): we end it ourselves with terminate()."""
    argv = tuple(str(a) for a in argv)
    log.debug("process.spawned", argv=list(masked(argv, secrets)))
    try:
        return subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, env=dict(env) if env else None,
                                pass_fds=tuple(pass_fds), start_new_session=True)
    except FileNotFoundError as err:
        raise UnavailableError(f"program not found: {argv[0]}") from err


def terminate(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the child's process group, SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
