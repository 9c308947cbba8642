"""The maintained Redis, through redis-py: the only importer of redis. Every redis-py exception is translated here.

``connect(settings.redis)`` builds a client from ``redis.url`` (redis://, rediss:// for TLS, unix://; an ACL user in
the URL) with the password read from ``redis.password_file`` (never in the URL, never logged). ``snapshot()``
issues BGSAVE and polls until that very save has completed; it never sleeps a fixed time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis as redis_lib
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..config import Redis as RedisSettings
from ..config import read_secret
from ..errors import Cancelled, MaintdError, UnavailableError

log = structlog.get_logger("maintd.redis")

T = TypeVar("T")

POLL_FIRST_S = 0.02
"""First poll interval while waiting for a save; it doubles up to POLL_MAX_S."""
POLL_MAX_S = 0.5

_BUSY_MARKERS = ("already in progress", "child process is active", "aof rewriting in progress",
                 "append only file rewriting in progress")


@dataclass(frozen=True)
class Snapshot:
    path: Path
    """The RDB file the save wrote (CONFIG GET dir + dbfilename)."""
    lastsave: int
    """LASTSAVE after the save: unix seconds."""
    keys: dict[str, int]
    """Keys per database right after the save was started ({"db0": 12})."""


def safe_url(url: str) -> str:
    """The URL as it may be logged: any password part replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("@", 1)[-1] if "@" in url else url
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def connect(settings_redis: RedisSettings, *, timeout: float | None = None) -> "RedisClient":
    """A client for the maintained Redis. ``timeout`` (seconds) overrides ``redis.timeout`` for socket connect and
    reads. Raises ConfigError when the password file cannot be read; connecting itself is lazy (ping() first)."""
    password = read_secret(settings_redis.password_file) if settings_redis.password_file else None
    seconds = timeout if timeout is not None else settings_redis.timeout
    options: dict[str, Any] = {"socket_timeout": seconds, "socket_connect_timeout": seconds,
                               "retry": Retry(NoBackoff(), 0), "decode_responses": True}
    if password is not None:
        options["password"] = password
    if settings_redis.tls_ca_file is not None and settings_redis.url.startswith("rediss://"):
        options["ssl_ca_certs"] = str(settings_redis.tls_ca_file)
    try:
        client = redis_lib.Redis.from_url(settings_redis.url, **options)
    except (ValueError, redis_lib.RedisError) as err:
        raise UnavailableError(f"redis.url {safe_url(settings_redis.url)}: {err}") from err
    return RedisClient(client, safe_url(settings_redis.url))


class RedisClient:
    """A connection (pool) to the maintained Redis. Methods raise UnavailableError when Redis cannot be reached
    (down, loading, wrong password) and MaintdError when it refuses a command."""

    def __init__(self, client: redis_lib.Redis, shown_url: str) -> None:
        self._client = client
        self.url = shown_url

    # -- plumbing -------------------------------------------------------------------------------------------
    def _call(self, what: str, func: Callable[[], T]) -> T:
        try:
            return func()
        except redis_lib.RedisError as err:
            raise self._translate(err, what) from err

    def _translate(self, err: redis_lib.RedisError, what: str) -> MaintdError:
        if isinstance(err, redis_lib.AuthenticationError):
            return UnavailableError(f"redis at {self.url}: authentication failed during {what} "
                                    "(check redis.password_file and the ACL user in redis.url)")
        if isinstance(err, redis_lib.BusyLoadingError):
            return UnavailableError(f"redis at {self.url} is loading its dataset ({what})")
        if isinstance(err, (redis_lib.ConnectionError, redis_lib.TimeoutError)):
            return UnavailableError(f"redis at {self.url} unreachable during {what}: {err}")
        if isinstance(err, redis_lib.ResponseError):
            return MaintdError(f"redis at {self.url} refused {what}: {err}")
        return MaintdError(f"redis at {self.url}: {what} failed: {err}")

    def close(self) -> None:
        try:
            self._client.close()
        except redis_lib.RedisError:  # closing a broken pool: nothing left to do
            pass

    def __enter__(self) -> "RedisClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------------------------
    def ping(self) -> float:
        """Round trip of a PING in seconds."""
        started = time.monotonic()
        self._call("PING", self._client.ping)
        return time.monotonic() - started

    def info(self, section: str) -> dict[str, Any]:
        return self._call(f"INFO {section}", lambda: self._client.info(section))

    def config_get(self, name: str) -> str | None:
        """One CONFIG GET value, None when the server has no such parameter."""
        values = self._call(f"CONFIG GET {name}", lambda: self._client.config_get(name))
        return values.get(name)

    def config_set(self, name: str, value: str) -> None:
        self._call(f"CONFIG SET {name}", lambda: self._client.config_set(name, value))

    def rdb_path(self) -> Path:
        """Where the server writes its RDB: CONFIG GET dir + dbfilename."""
        directory = self.config_get("dir")
        filename = self.config_get("dbfilename")
        if not directory or not filename:
            raise MaintdError(f"redis at {self.url}: CONFIG GET dir/dbfilename returned nothing")
        return Path(directory) / filename

    def keyspace(self) -> dict[str, int]:
        """Keys per database from INFO keyspace: {"db0": 12}; empty databases are absent."""
        info = self.info("keyspace")
        return {db: int(stats["keys"]) for db, stats in info.items()
                if db.startswith("db") and isinstance(stats, dict)}

    def dbsize(self) -> int:
        return int(self._call("DBSIZE", self._client.dbsize))

    def aof_enabled(self) -> bool:
        return bool(int(self.info("persistence").get("aof_enabled", 0)))

    def lastsave(self) -> int:
        moment = self._call("LASTSAVE", self._client.lastsave)
        return int(moment.timestamp())

    # -- acting -----------------------------------------------------------------------------------------------
    def snapshot(self, *, timeout: float, cancel: threading.Event | None = None) -> Snapshot:
        """BGSAVE, then wait until that save has completed: rdb_bgsave_in_progress 0, the save counter (or LASTSAVE
        on servers without one) advanced past its value before, rdb_last_bgsave_status ok. A save (or AOF rewrite)
        already running is waited for, then a fresh BGSAVE is issued so the file holds data from after our call.
        Raises MaintdError when the save fails, UnavailableError when it does not end within ``timeout``,
        Cancelled when ``cancel`` is set."""
        deadline = time.monotonic() + timeout
        while True:
            before = self.info("persistence")
            try:
                self._client.bgsave()
            except redis_lib.ResponseError as err:
                if not any(marker in str(err).lower() for marker in _BUSY_MARKERS):
                    raise MaintdError(f"redis at {self.url} refused BGSAVE: {err}") from err
                log.info("redis.save_waiting", reason=str(err))
                self._wait(lambda p: not _child_active(p), deadline, cancel, "the running save to end", timeout)
                continue
            except redis_lib.RedisError as err:
                raise self._translate(err, "BGSAVE") from err
            break
        keys = self.keyspace()
        persistence = self._wait(lambda p: _save_done(before, p), deadline, cancel, "BGSAVE to complete", timeout)
        if persistence.get("rdb_last_bgsave_status") != "ok":
            raise MaintdError(f"redis at {self.url}: BGSAVE failed (rdb_last_bgsave_status="
                              f"{persistence.get('rdb_last_bgsave_status')}); see the redis log")
        snapshot = Snapshot(path=self.rdb_path(), lastsave=int(persistence["rdb_last_save_time"]), keys=keys)
        log.info("redis.saved", path=str(snapshot.path), lastsave=snapshot.lastsave, keys=sum(keys.values()))
        return snapshot

    def _wait(self, done: Callable[[dict[str, Any]], bool], deadline: float, cancel: threading.Event | None,
              what: str, timeout: float) -> dict[str, Any]:
        interval = POLL_FIRST_S
        while True:
            persistence = self.info("persistence")
            if done(persistence):
                return persistence
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled while waiting for {what}")
            if time.monotonic() >= deadline:
                raise UnavailableError(f"redis at {self.url}: timed out after {timeout:.0f}s waiting for {what}")
            if cancel is not None:
                cancel.wait(interval)
            else:
                time.sleep(interval)  # a poll interval, not a fixed wait: the condition is re-checked
            interval = min(interval * 2, POLL_MAX_S)

    def bgrewriteaof(self, *, timeout: float, cancel: threading.Event | None = None) -> None:
        """BGREWRITEAOF and wait until the rewrite has ended with status ok (recovery, after loading an RDB)."""
        deadline = time.monotonic() + timeout
        before = self.info("persistence")
        self._call("BGREWRITEAOF", self._client.bgrewriteaof)
        persistence = self._wait(
            lambda p: not int(p.get("aof_rewrite_in_progress", 0)) and not int(p.get("aof_rewrite_scheduled", 0))
            and int(p.get("aof_rewrites", 0)) > int(before.get("aof_rewrites", 0)),
            deadline, cancel, "BGREWRITEAOF to complete", timeout)
        if persistence.get("aof_last_bgrewrite_status") != "ok":
            raise MaintdError(f"redis at {self.url}: BGREWRITEAOF failed; see the redis log")

    def wait_ready(self, *, timeout: float, cancel: threading.Event | None = None) -> float:
        """Poll PING until Redis answers (after a start it may refuse or report LOADING). Returns the seconds
        waited; UnavailableError after ``timeout``."""
        started = time.monotonic()
        interval = POLL_FIRST_S
        while True:
            try:
                self.ping()
                return time.monotonic() - started
            except UnavailableError as err:
                if time.monotonic() - started >= timeout:
                    raise UnavailableError(f"redis at {self.url} not ready after {timeout:.0f}s: {err}") from err
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled while waiting for redis")
            time.sleep(interval)
            interval = min(interval * 2, POLL_MAX_S)

    def flushall(self) -> None:
        """Remove every key (tests and drills against a throwaway server only)."""
        self._call("FLUSHALL", self._client.flushall)

    def execute(self, *args: str) -> Any:
        """A raw command (tests, drills): translated errors like every other call."""
        return self._call(str(args[0]).upper() if args else "command", lambda: self._client.execute_command(*args))


def _child_active(persistence: dict[str, Any]) -> bool:
    return any(int(persistence.get(key, 0)) for key in
               ("rdb_bgsave_in_progress", "aof_rewrite_in_progress", "module_fork_in_progress"))


def _save_done(before: dict[str, Any], now: dict[str, Any]) -> bool:
    if int(now.get("rdb_bgsave_in_progress", 0)):
        return False
    if "rdb_saves" in now and "rdb_saves" in before:  # Redis >= 7.0: an exact counter
        return int(now["rdb_saves"]) > int(before["rdb_saves"]) or now.get("rdb_last_bgsave_status") != "ok"
    # Older servers: LASTSAVE has one-second resolution, so a save within the same second as the previous one is
    # only seen once a second has passed; the status flips to err at once on failure.
    return (int(now.get("rdb_last_save_time", 0)) > int(before.get("rdb_last_save_time", 0))
            or now.get("rdb_last_bgsave_status") != "ok")
