"""Starting, stopping and asking about the maintained service's units.

Two backends behind one protocol: ``systemd`` runs ``systemctl`` and ``command`` runs the argv templates of
``services.command`` with ``{unit}`` replaced (hosts without systemd, the demo, the tests). Both go through
edges/process.py: argv only, a timeout on every call, cancellation honoured. Argument building is pure.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import structlog

from ..errors import CommandError, UnavailableError, UsageError
from . import process

if TYPE_CHECKING:
    from ..config import Services, Settings

log = structlog.get_logger("maintd.services")

ACTIONS = ("start", "stop", "restart")
_UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.@\\][A-Za-z0-9:_.@\\-]*$")
_PAST = {"start": "service.started", "stop": "service.stopped", "restart": "service.restarted"}

# systemctl is-active: 0 active; 1-3 not running (LSB "program is not running" family, 3 is what systemd uses
# for inactive/failed/activating); 4 no such unit.
SYSTEMCTL_INACTIVE_CODES = (1, 2, 3)
SYSTEMCTL_UNKNOWN_UNIT = 4


@runtime_checkable
class ServiceManager(Protocol):
    def start(self, unit: str) -> None: ...

    def stop(self, unit: str) -> None: ...

    def restart(self, unit: str) -> None: ...

    def is_active(self, unit: str) -> bool: ...


def check_unit(unit: str) -> str:
    """A unit name safe to place in an argv: no leading dash (it would read as an option), no spaces or slashes."""
    if not _UNIT_NAME.match(unit or ""):
        raise UsageError(f"not a valid unit name: {unit!r}")
    return unit


def systemctl_argv(action: str, unit: str) -> tuple[str, ...]:
    """The systemctl command line for start/stop/restart/is-active of one unit."""
    check_unit(unit)
    if action == "is-active":
        return ("systemctl", "is-active", "--quiet", unit)
    if action not in ACTIONS:
        raise UsageError(f"unknown service action {action!r}")
    return ("systemctl", "--no-ask-password", action, unit)


def command_argv(template: Sequence[str], unit: str) -> tuple[str, ...]:
    """One of services.command's templates with every ``{unit}`` replaced (plain replacement, no format())."""
    check_unit(unit)
    if not template:
        raise UsageError("services.command has no argv for this action")
    return tuple(part.replace("{unit}", unit) for part in template)


class _ArgvManager:
    """start/stop/restart shared by both backends: run the backend's argv for the action, log it."""

    name = ""
    timeout: float
    cancel: threading.Event | None

    def _argv(self, action: str, unit: str) -> tuple[str, ...]:
        raise NotImplementedError

    def _act(self, action: str, unit: str) -> None:
        process.run(self._argv(action, unit), timeout=self.timeout, cancel=self.cancel)
        log.info(_PAST[action], unit=unit, manager=self.name)

    def start(self, unit: str) -> None:
        self._act("start", unit)

    def stop(self, unit: str) -> None:
        self._act("stop", unit)

    def restart(self, unit: str) -> None:
        self._act("restart", unit)


class SystemdManager(_ArgvManager):
    """systemctl through edges/process.py. A job that times out is a CommandError naming the unit."""

    name = "systemd"

    def __init__(self, *, timeout: float, cancel: threading.Event | None = None) -> None:
        self.timeout = timeout
        self.cancel = cancel

    def _argv(self, action: str, unit: str) -> tuple[str, ...]:
        return systemctl_argv(action, unit)

    def is_active(self, unit: str) -> bool:
        done = process.run(systemctl_argv("is-active", unit), timeout=self.timeout, cancel=self.cancel,
                           check=False)
        if done.returncode == 0:
            return True
        if done.returncode in SYSTEMCTL_INACTIVE_CODES:
            return False
        if done.returncode == SYSTEMCTL_UNKNOWN_UNIT:
            raise UnavailableError(f"systemd knows no unit {unit!r}")
        raise CommandError(f"systemctl is-active {unit} exited with {done.returncode}", argv=done.argv,
                           returncode=done.returncode, detail=process.stderr_tail(done.stderr))


class CommandManager(_ArgvManager):
    """services.command's argv templates. is_active: exit 0 means active, any other exit code inactive."""

    name = "command"

    def __init__(self, settings: "Services", *, cancel: threading.Event | None = None) -> None:
        self.templates = settings.command
        self.timeout = settings.command.timeout
        self.cancel = cancel

    def _argv(self, action: str, unit: str) -> tuple[str, ...]:
        return command_argv(getattr(self.templates, action), unit)

    def is_active(self, unit: str) -> bool:
        done = process.run(command_argv(self.templates.is_active, unit), timeout=self.timeout, cancel=self.cancel,
                           check=False)
        return done.returncode == 0


def build(settings: "Settings", cancel: threading.Event | None = None) -> ServiceManager:
    """The service manager settings.services asks for; ``cancel`` aborts a waiting systemctl/command."""
    services = settings.services
    if services.manager == "command":
        return CommandManager(services, cancel=cancel)
    return SystemdManager(timeout=services.systemctl_timeout, cancel=cancel)
