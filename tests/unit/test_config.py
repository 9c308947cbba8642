from pathlib import Path

import pytest

from maintd import config
from maintd.errors import ConfigError


def test_every_problem_is_listed_with_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('timezone = "Mars/Olympus"\n[paths]\nbogus = 1\n[jobs.x]\nschedule = "nope"\n'
                    '[[target.components]]\nname = "app"\npath = "relative"\n')
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    problems = caught.value.problems
    assert f"{path}: paths.bogus: Extra inputs are not permitted" in problems
    assert any(p.startswith(f"{path}: timezone:") and "Mars/Olympus" in p for p in problems)
    assert any(p.startswith(f"{path}: jobs.x.schedule:") for p in problems)
    assert any(p.startswith(f"{path}: target.components.0.path:") for p in problems)
    assert caught.value.exit_code == 78


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[paths\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert caught.value.problems[0].startswith(f"{path}: (syntax):")


def test_partial_job_table_keeps_the_default_calendar(settings) -> None:
    loaded = settings({"jobs": {"health": {"schedule": "5 2 * * *"}}})
    assert loaded.jobs["health"].schedule == "5 2 * * *"
    assert loaded.jobs["health"].timeout == 300
    assert loaded.jobs["backup-full"].job_name("backup-full") == "backup"


def test_env_overrides_file(settings, monkeypatch) -> None:
    monkeypatch.setenv("MAINTD_REDIS__URL", "redis://127.0.0.1:7777/1")
    assert settings().redis.url == "redis://127.0.0.1:7777/1"


def test_empty_string_turns_optional_key_off(settings) -> None:
    assert settings().redis.unit is None


def test_password_in_redis_url_is_refused(config_path) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(config_path({"redis": {"url": "redis://user:secret@host:6379/0"}}))
    assert any("redis.url" in p and "password_file" in p for p in caught.value.problems)
