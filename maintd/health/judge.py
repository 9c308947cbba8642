"""Pure verdicts: a probe's configuration plus what was observed -> (status, message). No I/O here."""

from __future__ import annotations

from typing import Any

from ..config import DiskProbe, HttpProbe
from ..units import human_bytes
from .result import FAILED, OK, human_age, human_ms

_MISSING = object()


def judge_http(probe: HttpProbe, status: int, body: Any, elapsed: float,
               expected_version: str | None) -> tuple[str, str]:
    """Status code, the expected JSON fields and the version against the VERSION file."""
    problems: list[str] = []
    if status != probe.expect_status:
        problems.append(f"HTTP {status} (expected {probe.expect_status})")
    needs_body = bool(probe.expect_json) or expected_version is not None
    if needs_body and not isinstance(body, dict):
        problems.append("reply is not a JSON object")
    elif needs_body:
        for key, want in probe.expect_json.items():
            got = body.get(key, _MISSING)
            if got is _MISSING:
                problems.append(f"{key} missing (expected {want!r})")
            elif got != want:
                problems.append(f"{key} = {got!r} (expected {want!r})")
        if expected_version is not None:
            got = body.get("version", _MISSING)
            if got is _MISSING:
                problems.append(f"version missing (VERSION file says {expected_version!r})")
            elif str(got) != expected_version:
                problems.append(f"version {got!r} != {expected_version!r} in the VERSION file")
    if problems:
        return FAILED, "; ".join(problems)
    shown = f"HTTP {status} in {human_ms(elapsed)}"
    if expected_version is not None:
        shown += f", version {expected_version}"
    return OK, shown


def judge_disk(probe: DiskProbe, free: int, total: int) -> tuple[str, str]:
    """Free bytes (for unprivileged users, as df shows them) against the byte and percent thresholds."""
    percent = 100.0 * free / total if total else 0.0
    shown = f"{human_bytes(free)} free ({percent:.1f}%) on {probe.path}"
    problems: list[str] = []
    if probe.min_free_bytes is not None and free < int(probe.min_free_bytes):
        problems.append(f"below {human_bytes(int(probe.min_free_bytes))}")
    if probe.min_free_percent is not None and percent < probe.min_free_percent:
        problems.append(f"below {probe.min_free_percent:g}%")
    if problems:
        return FAILED, f"{shown}: {' and '.join(problems)}"
    return OK, shown


def judge_age(what: str, age_s: float, max_age_s: float) -> tuple[str, str]:
    if age_s > max_age_s:
        return FAILED, f"{what} is {human_age(age_s)} old (limit {human_age(max_age_s)})"
    return OK, f"{what} is {human_age(age_s)} old (limit {human_age(max_age_s)})"
