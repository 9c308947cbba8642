"""Fixtures of the restore integration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.support.restore_rig import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = make_rig(tmp_path / "rig")
    yield made
    made.close()
