"""A maintained stack for recovery tests: the stand-in app (unit `app`) and a redis-server (unit `redis`), both
driven through the `command` service manager, with health probes and the function test configured."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.redis_unit import RedisUnit
from tests.support.restore_rig import Rig, make_rig


@dataclass
class Stack:
    rig: Rig
    app: Any  # tests.conftest.StandInService
    redis: RedisUnit


def stack_config(app: Any, redis: RedisUnit, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    config = {
        "services": {"units": ["app"], "start_timeout": 15},
        "redis": {"url": redis.url, "unit": "redis"},
        "backup": {"redis": True},
        "health": {"probes": [{"kind": "http", "name": "app", "url": app.url, "unit": "app", "timeout": 2},
                              {"kind": "redis", "name": "redis", "unit": "redis", "timeout": 2}]},
        "recovery": {"function_test": {"url": f"http://127.0.0.1:{app.port}/notify"}},
    }
    for key, value in (extra or {}).items():
        config[key] = {**config.get(key, {}), **value}
    return config


@pytest.fixture
def make_stack(tmp_path: Path, stand_in: Any) -> Iterator[Any]:
    made: list[Stack] = []

    def make(*, appendonly: bool = False, extra: dict[str, Any] | None = None) -> Stack:
        redis = RedisUnit(tmp_path, appendonly=appendonly).start()
        stack = Stack(make_rig(tmp_path, stack_config(stand_in, redis, extra)), stand_in, redis)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.rig.close()
        stack.redis.stop()
