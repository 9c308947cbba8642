"""HTTP to the maintained service and to notification endpoints, through httpx: the only importer of httpx.

Every httpx exception becomes UnavailableError naming the reason. URLs handed over with ``secret=True`` (webhook
and healthchecks URLs, which carry tokens) are never shown whole: messages keep only scheme://host[:port].
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import UnavailableError

MAX_BODY_BYTES = 1 << 20
"""A health or notification reply larger than this is cut (and is then not JSON): we never buffer unbounded."""

# httpx logs every request URL at INFO; URLs may carry secrets (webhook tokens). Our own events say what matters.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Reply:
    status: int
    json: Any
    """The decoded JSON body, None when the body is empty, cut or not JSON."""
    elapsed: float
    """Seconds from sending the request to the end of the (bounded) body."""
    text: str = ""
    """The first 200 characters of the body, for messages."""


def shown_url(url: str, secret: bool = False) -> str:
    """The URL as it may appear in a message or log: a password in it is always hidden; a secret URL shows only
    scheme://host[:port]."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parses the port: raises ValueError when it is not a number
    except ValueError:
        return "(unparsable URL)" if secret else url
    if not secret:
        if parts.password is None:
            return url
        user = parts.netloc.rsplit("@", 1)
        return parts._replace(netloc=f"{parts.username or ''}:***@{user[-1]}").geturl()
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}/***"


def request_json(method: str, url: str, *, timeout: float, body: Any = None, secret: bool = False,
                 headers: dict[str, str] | None = None) -> Reply:
    """One request with a JSON body (when ``body`` is not None); returns the status and the decoded JSON reply.
    ``timeout`` bounds connect, each read and the pool wait. Redirects are not followed (a health endpoint that
    redirects reports its 3xx). Raises UnavailableError for anything below HTTP (refused, DNS, TLS, timeout)."""
    started = time.monotonic()
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            request = client.build_request(method, url, json=body, headers=headers)
            response = client.send(request, stream=True)
            try:
                raw = _read_bounded(response)
                status = response.status_code
            finally:
                response.close()
    except httpx.TimeoutException as err:
        raise UnavailableError(f"{method} {shown_url(url, secret)}: no reply within {timeout:g}s "
                               f"({type(err).__name__})") from err
    except httpx.HTTPError as err:
        raise UnavailableError(f"{method} {shown_url(url, secret)}: {_reason(err, url, secret)}") from err
    except httpx.InvalidURL as err:
        raise UnavailableError(f"{method} {shown_url(url, secret)}: invalid URL") from err
    elapsed = time.monotonic() - started
    return Reply(status=status, json=_decode(raw), elapsed=elapsed, text=raw[:200].decode("utf-8", "replace"))


def get_json(url: str, timeout: float) -> tuple[int, Any, float]:
    """GET url: (status, decoded JSON or None, elapsed seconds)."""
    reply = request_json("GET", url, timeout=timeout)
    return reply.status, reply.json, reply.elapsed


def post_json(url: str, body: Any, timeout: float, *, secret: bool = False) -> int:
    """POST body as JSON; returns the status code (the caller decides what counts as success)."""
    return request_json("POST", url, body=body, timeout=timeout, secret=secret).status


def _read_bounded(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_BYTES:
            return b"".join(chunks)[:MAX_BODY_BYTES] + b"\x00"  # marked cut: never valid JSON
    return b"".join(chunks)


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None


def _reason(err: httpx.HTTPError, url: str, secret: bool) -> str:
    text = str(err) or type(err).__name__
    if secret:
        parts = urlsplit(url)
        hidden = [part for part in (url, parts.path, parts.query, parts.username, parts.password) if part]
        if any(part in text for part in hidden if part != "/"):
            return type(err).__name__
    return text
