"""The control socket's wire format: newline-delimited JSON, versioned.

Request (one line):   {"v": 1, "op": "run", "args": {"job": "backup", "args": {"type": "full"}, "wait": false}}
Replies (lines):      {"v": 1, "type": "event", "event": "progress", ...}      zero or more, for long operations
                      {"v": 1, "type": "result", "data": {...}}                 exactly one final line, or
                      {"v": 1, "type": "error", "code": "busy", "message": "...", "exit_code": 75}
Error codes are stable: bad_request, denied, not_found, busy, failed, config, unavailable, cancelled, internal.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import UsageError

VERSION = 1

READ_OPS = frozenset({"ping", "status", "jobs", "history", "backups", "backup-show", "watch"})
"""Allowed to the read group. `watch` follows a running run's events."""
MUTATING_OPS = frozenset({"run", "pause", "resume", "reload", "cancel"})
"""Admin group (or root) only; audit-logged with peer uid and pid."""
ALL_OPS = READ_OPS | MUTATING_OPS


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps({"v": VERSION, **message}, separators=(",", ":"), default=str).encode() + b"\n"


def decode_request(line: bytes) -> tuple[str, dict[str, Any]]:
    """Parse one request line into (op, args). Raises UsageError with a reason the client can read."""
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"request is not JSON: {err}") from err
    if not isinstance(message, dict):
        raise UsageError("request must be a JSON object")
    if message.get("v") != VERSION:
        raise UsageError(f"unsupported protocol version {message.get('v')!r} (this daemon speaks {VERSION})")
    op = message.get("op")
    if op not in ALL_OPS:
        raise UsageError(f"unknown op {op!r}")
    args = message.get("args", {})
    if not isinstance(args, dict):
        raise UsageError("args must be a JSON object")
    return op, args


def request(op: str, **args: Any) -> bytes:
    return encode({"op": op, "args": args})


def result(data: Any) -> bytes:
    return encode({"type": "result", "data": data})


def error(code: str, message: str, exit_code: int) -> bytes:
    return encode({"type": "error", "code": code, "message": message, "exit_code": exit_code})


def event(name: str, **fields: Any) -> bytes:
    return encode({"type": "event", "event": name, **fields})


def decode_reply(line: bytes) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict) or message.get("type") not in ("event", "result", "error"):
        raise ValueError(f"unexpected reply: {line[:200]!r}")
    return message
