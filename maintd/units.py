"""Numbers for people: sizes in binary units. Pure; every report uses it, so they all read the same."""

from __future__ import annotations


def human_bytes(size: float) -> str:
    """1023 -> '1023 B', 1536 -> '1.5 KiB', 5 * 2**30 -> '5.0 GiB'."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(amount) < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
