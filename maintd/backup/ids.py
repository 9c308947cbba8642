"""Backup ids: ``YYYYMMDDTHHMMSS.ffffffZ-<type>``, UTC, sortable as text, unique under the writer lock."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from ..model import BackupType

_ID = re.compile(r"^(\d{8}T\d{6}\.\d{6})Z-(full|incremental|differential)$")
_STAMP = "%Y%m%dT%H%M%S.%f"


@dataclass(frozen=True)
class ParsedId:
    created: datetime
    type: BackupType

    @property
    def stamp(self) -> str:
        return self.created.strftime(_STAMP) + "Z"


def parse_id(name: str) -> ParsedId | None:
    """The time and type an id names, or None when ``name`` is not a backup id."""
    match = _ID.match(name)
    if not match:
        return None
    created = datetime.strptime(match.group(1), _STAMP).replace(tzinfo=timezone.utc)
    return ParsedId(created, BackupType(match.group(2)))


def format_id(moment: datetime, backup_type: BackupType) -> str:
    return f"{moment.astimezone(timezone.utc).strftime(_STAMP)}Z-{backup_type.value}"


def new_id(now: datetime, backup_type: BackupType, taken: Callable[[str], bool]) -> str:
    """An id for a backup started at ``now``. ``taken(stamp)`` says whether any backup (of any type, committed or
    being written) already uses that ``YYYYMMDDTHHMMSS.ffffffZ`` stamp; the microsecond is bumped until it is free,
    so two backups in one second (or one microsecond) never collide and ids stay in start order."""
    moment = now.astimezone(timezone.utc)
    while taken(moment.strftime(_STAMP) + "Z"):
        moment += timedelta(microseconds=1)
    return format_id(moment, backup_type)


def stamp_of(backup_id: str) -> str:
    """The time part of an id (``...Z``), the unit of uniqueness."""
    return backup_id.split("-", 1)[0]
