"""Glob patterns for cleanup rules, matched against paths relative to the rule's root ("/"-separated).

- A pattern without "/" matches an entry's name at any depth the rule scans (`*.old`, `cctelegram*`).
- A pattern with "/" matches the whole relative path (`logs/*.old`); a `**` segment matches any number of
  directories, none included (`**/*.old`, `cache/**`).
- `*` and `?` never match "/"; `[abc]`, `[!abc]` are character classes. Names starting with a dot are matched like
  any other (as fnmatch does).
"""

from __future__ import annotations

import functools
import re
from typing import Iterable


def _segment(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = text.find("]", i + 2 if text[i + 1:i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = text[i + 1:end]
                negate = body.startswith("!")
                body = (body[1:] if negate else body).replace("\\", "\\\\").replace("/", "")
                if body.startswith("^"):
                    body = "\\" + body
                out.append(("[^/" if negate else "[") + body + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    parts = pattern.strip("/").split("/")
    regex = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex += ".+" if last else "(?:[^/]+/)*"
        else:
            regex += _segment(part) + ("" if last else "/")
    try:
        return re.compile(regex + r"\Z", re.DOTALL)
    except re.error as err:
        raise ValueError(f"bad glob pattern {pattern!r}: {err}") from err


def matches(patterns: Iterable[str], relpath: str) -> bool:
    """Does any pattern match this relative path (see the module rules)?"""
    name = relpath.rsplit("/", 1)[-1]
    for pattern in patterns:
        target = relpath if "/" in pattern.strip("/") else name
        if compile_pattern(pattern).match(target):
            return True
    return False
