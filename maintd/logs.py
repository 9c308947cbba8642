"""Logging: one structlog chain for our events and for stdlib loggers (apscheduler, httpx, redis, gnupg).

Formats: `console` (readable; colours only on a TTY), `json` (one object per line), `journal` (native journald
protocol: numeric PRIORITY, SYSLOG_IDENTIFIER=maintd, our keys as MAINTD_<KEY> fields so that
`journalctl -u maintd MAINTD_JOB=health` works). `auto` picks journal when stderr is the journal stream
($JOURNAL_STREAM names stderr's device:inode), console on a TTY, json otherwise.

A redaction processor masks values of keys named like passwords, passphrases, secrets and tokens, and the
userinfo of URLs in any string value. Bind `job` and `run_id` per run with structlog.contextvars.
"""

from __future__ import annotations

import array
import errno
import fcntl
import json
import logging
import os
import re
import socket
import struct
import sys
from pathlib import Path
from typing import IO, Any, Iterable, Mapping

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
IDENTIFIER = "maintd"
FIELD_PREFIX = "MAINTD_"
MAX_DATAGRAM_FALLBACK = 64 * 1024
"""When neither a datagram nor a memfd can carry an entry, each field is cut to this size."""

PRIORITY = {"critical": 2, "exception": 3, "error": 3, "warning": 4, "warn": 4, "info": 6, "debug": 7}
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_QUIET_LIBRARIES = ("httpx", "httpcore", "gnupg", "redis", "urllib3", "asyncio")
"""Loud or secret-prone libraries: only their warnings reach the log (httpx logs request URLs, which may
carry tokens; python-gnupg logs the commands it feeds)."""


# -- redaction ---------------------------------------------------------------------------------------------
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "api_key", "authorization",
                 "credential", "private_key", "cookie")
_NOT_SECRET_SUFFIXES = ("_file", "_path", "_dir")  # `passphrase_file` names a file, it holds no secret
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
MASK = "***"


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    if lowered.endswith(_NOT_SECRET_SUFFIXES):
        return False
    return any(word in lowered for word in _SECRET_WORDS)


def mask_urls(text: str) -> str:
    """`redis://user:pw@host` -> `redis://***@host`."""
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return mask_urls(value) if "://" in value else value
    if depth > 4:
        return value
    if isinstance(value, Mapping):
        return {k: MASK if isinstance(k, str) and is_secret_key(k) else _scrub(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(v, depth + 1) for v in value)
    return value


def redact(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Processor: masks secret-named keys and URL userinfo (nested dicts and lists too)."""
    for key in list(event_dict):
        if key == "exc_info":
            continue
        if is_secret_key(key):
            event_dict[key] = MASK
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


# -- journald native protocol ------------------------------------------------------------------------------
def field_name(key: str) -> str:
    """A journald field name for one of our keys: `run_id` -> `MAINTD_RUN_ID` ([A-Z0-9_], at most 64)."""
    name = re.sub(r"[^A-Z0-9_]", "_", key.upper())
    return (FIELD_PREFIX + name)[:64]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def _logfmt(value: Any) -> str:
    text = _text(value)
    if not text or any(c in text for c in ' "=\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


def journal_fields(event_dict: EventDict) -> list[tuple[str, str]]:
    """The journal entry for one event: MESSAGE (event plus key=value, then any traceback), PRIORITY,
    SYSLOG_IDENTIFIER, MAINTD_EVENT, MAINTD_LOGGER and one MAINTD_<KEY> per remaining key."""
    values = dict(event_dict)
    event = str(values.pop("event", ""))
    level = str(values.pop("level", "info")).lower()
    values.pop("timestamp", None)  # journald stamps entries itself
    logger = values.pop("logger", None)
    exception = values.pop("exception", None)
    message = " ".join([event, *(f"{k}={_logfmt(v)}" for k, v in values.items())])
    if exception:
        message += "\n" + str(exception)
    fields = [("MESSAGE", message), ("PRIORITY", str(PRIORITY.get(level, 6))),
              ("SYSLOG_IDENTIFIER", IDENTIFIER), (FIELD_PREFIX + "EVENT", event)]
    if logger:
        fields.append((FIELD_PREFIX + "LOGGER", str(logger)))
    fields += [(field_name(k), _text(v)) for k, v in values.items()]
    return fields


def encode_native(fields: Iterable[tuple[str, str | bytes]]) -> bytes:
    """Serialise fields in journald's native protocol: NAME=value lines; a value holding a newline goes as
    NAME\\n<little-endian 64-bit length><bytes>\\n."""
    out = bytearray()
    for name, value in fields:
        data = value.encode("utf-8", "replace") if isinstance(value, str) else value
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


def journal_renderer(logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
    """Last processor of the journal formatter: the fields as JSON, which JournalHandler sends natively."""
    return json.dumps(journal_fields(event_dict), ensure_ascii=False)


class JournalHandler(logging.Handler):
    """Sends each record as one datagram to journald's socket (a sealed memfd when too large for a datagram,
    every field cut as a last resort). When the socket cannot be reached, the record goes to `fallback` as
    JSON, so nothing is lost silently."""

    def __init__(self, socket_path: Path = JOURNAL_SOCKET, fallback: IO[str] | None = None) -> None:
        super().__init__()
        self.socket_path = str(socket_path)
        self.fallback = fallback
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = [tuple(pair) for pair in json.loads(self.format(record))]
        except Exception:  # noqa: BLE001 - logging must not raise into the caller
            self.handleError(record)
            return
        try:
            self.send(fields)
        except OSError:
            self._fall_back(fields)

    def send(self, fields: list[tuple[str, str]]) -> None:
        payload = encode_native(fields)
        try:
            self._sock.sendto(payload, self.socket_path)
            return
        except OSError as err:
            if err.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
        try:
            self._send_memfd(payload)
        except OSError:
            cut = [(n, v if len(v) <= MAX_DATAGRAM_FALLBACK else v[:MAX_DATAGRAM_FALLBACK] + "...[cut]")
                   for n, v in fields]
            self._sock.sendto(encode_native(cut), self.socket_path)

    def _send_memfd(self, payload: bytes) -> None:
        fd = os.memfd_create("maintd-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                        fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
            self._sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))], 0,
                               self.socket_path)
        finally:
            os.close(fd)

    def _fall_back(self, fields: list[tuple[str, str]]) -> None:
        if self.fallback is None:
            return
        entry: dict[str, str] = {}
        for name, value in fields:
            entry[name] = value
        try:
            self.fallback.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self.fallback.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        try:
            self._sock.close()
        finally:
            super().close()


# -- configuration -----------------------------------------------------------------------------------------
def stream_is_journal(environ: Mapping[str, str], stream: IO[str]) -> bool:
    """True when $JOURNAL_STREAM names this stream's device:inode (systemd.exec(5)), i.e. our stderr is the
    journal, not a pipe or file an operator redirected it to."""
    value = environ.get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        dev, ino = (int(part) for part in value.split(":", 1))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def choose_format(requested: str, environ: Mapping[str, str] | None = None, stream: IO[str] | None = None) -> str:
    """Resolve `auto`: journal when stderr is the journal stream, console on a TTY, json otherwise."""
    if requested != "auto":
        return requested
    environ = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    if stream_is_journal(environ, stream):
        return "journal"
    return "console" if _isatty(stream) else "json"


def _shared_processors() -> list[Processor]:
    return [structlog.contextvars.merge_contextvars, structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level, structlog.stdlib.ExtraAdder(),
            structlog.processors.TimeStamper(fmt="iso", utc=True), redact]


def configure(fmt: str = "auto", level: str = "info", *, stream: IO[str] | None = None,
              journal_socket: Path | str | None = None) -> str:
    """Set up structlog and stdlib logging. Returns the format in use (journal falls back to json on the
    stream when journald's socket is missing). Safe to call again (reload)."""
    stream = sys.stderr if stream is None else stream
    chosen = choose_format(fmt, stream=stream)
    socket_path = Path(journal_socket) if journal_socket is not None else JOURNAL_SOCKET
    fell_back = False
    if chosen == "journal" and not socket_path.exists():
        chosen, fell_back = "json", True

    handler: logging.Handler
    final: list[Processor]
    if chosen == "journal":
        handler = JournalHandler(socket_path, fallback=stream)
        final = [structlog.processors.format_exc_info, journal_renderer]
    elif chosen == "console":
        colors = _isatty(stream)
        handler = logging.StreamHandler(stream)
        final = [structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=(structlog.dev.default_exception_formatter if colors
                                                else structlog.dev.plain_traceback))]
    elif chosen == "json":
        handler = logging.StreamHandler(stream)
        final = [structlog.processors.format_exc_info,
                 structlog.processors.JSONRenderer(default=str, ensure_ascii=False)]
    else:
        raise ValueError(f"unknown log format {fmt!r} (auto, console, json, journal)")

    shared = _shared_processors()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final]))
    handler._maintd = True  # type: ignore[attr-defined] # so that a second configure() replaces it

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_maintd", False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    numeric = _LEVELS.get(level, logging.INFO)
    root.setLevel(numeric)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    logging.getLogger("apscheduler").setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)

    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared[:3],
                    structlog.stdlib.PositionalArgumentsFormatter(), *shared[4:],
                    structlog.processors.StackInfoRenderer(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # tests swap the chain (capture_logs); reload may reconfigure
    )
    if fell_back:
        structlog.get_logger("maintd.logs").warning("logs.journal_unavailable", path=str(socket_path),
                                                   using="json")
    return chosen
