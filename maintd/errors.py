"""The error tree: every expected failure is a MaintdError with a wire code and a sysexits exit code.

Edges translate library exceptions into these (``raise ... from err``); the runner records a MaintdError as
``failed`` and anything else as ``crashed``.
"""

from __future__ import annotations

# sysexits(3) values used by maintd and maintctl.
EX_OK = 0
EX_FAILED = 1  # a job ran and failed
EX_USAGE = 64
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_TEMPFAIL = 75  # busy
EX_NOPERM = 77
EX_CONFIG = 78


class MaintdError(Exception):
    """Base of every expected error. ``code`` goes on the wire, ``exit_code`` to the shell."""

    code = "failed"
    exit_code = EX_FAILED

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail  # e.g. the last lines of a command's stderr

    def __str__(self) -> str:
        if self.detail:
            return f"{self.message}\n{self.detail}"
        return self.message


class ConfigError(MaintdError):
    """The configuration is invalid. ``problems`` holds every problem as ``file: section.key: message``."""

    code = "config"
    exit_code = EX_CONFIG

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])

    def __str__(self) -> str:
        if self.problems:
            return "\n".join(self.problems)
        return self.message


class UsageError(MaintdError):
    code = "bad_request"
    exit_code = EX_USAGE


class NotFoundError(MaintdError):
    code = "not_found"
    exit_code = EX_USAGE


class BusyError(MaintdError):
    code = "busy"
    exit_code = EX_TEMPFAIL


class DeniedError(MaintdError):
    code = "denied"
    exit_code = EX_NOPERM


class UnavailableError(MaintdError):
    """A thing we need is not there: the daemon, Redis, a service, a tier."""

    code = "unavailable"
    exit_code = EX_UNAVAILABLE


class CommandError(MaintdError):
    """An external command failed; ``detail`` holds the tail of its stderr."""

    def __init__(self, message: str, *, argv: tuple[str, ...] = (), returncode: int | None = None,
                 detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.argv = argv
        self.returncode = returncode


class GpgError(MaintdError):
    """GnuPG refused: wrong passphrase, missing key, damaged data."""


class IntegrityError(MaintdError):
    """Stored data does not match what was recorded (hash, size, index, manifest)."""

    exit_code = EX_DATAERR


class StorageError(MaintdError):
    """Writing to disk failed: full disk, permissions, a read-only mount."""


class HealthError(MaintdError):
    """A service did not become healthy."""


class RollbackError(MaintdError):
    """An update failed and so did its rollback."""


class Cancelled(MaintdError):
    """A run was cancelled cooperatively (timeout or daemon stop). Raised by ``ctx.check_cancelled()``."""

    code = "cancelled"

    def __init__(self, message: str = "cancelled", *, reason: str = "interrupted") -> None:
        super().__init__(message)
        self.reason = reason  # "timeout" or "interrupted": the outcome the runner records
