"""[[backup.tiers]] is checked when the config loads: a tier path that cannot work is a config error."""

from __future__ import annotations

import pytest

from maintd import config
from maintd.errors import ConfigError


def test_tiers_load_with_their_defaults(settings) -> None:
    loaded = settings({"backup": {"tiers": [{"name": "nas", "path": "/mnt/nas/maintd"},
                                            {"name": "offsite", "kind": "rsync", "path": "bk@host.example:/srv/m",
                                             "ssh_key_file": "/etc/maintd/offsite.key", "rpo": "24h"}]}})
    nas, offsite = loaded.backup.tiers
    assert (nas.kind, nas.rpo, nas.timeout) == ("dir", 3600.0, 6 * 3600.0)
    assert (offsite.kind, offsite.rpo, str(offsite.ssh_key_file)) == ("rsync", 86400.0, "/etc/maintd/offsite.key")
    assert loaded.backup.retention.period_pick == "shortest_chain"


@pytest.mark.parametrize("tier, fragment", [
    ({"name": "a", "path": "relative"}, "a dir tier's path must be absolute"),
    ({"name": "b", "kind": "rsync", "path": "host:relative"}, "user@host:/absolute/path"),
    ({"name": "c", "kind": "rsync", "path": "-oProxyCommand=x:/p"}, "user@host:/absolute/path"),
    ({"name": "d", "kind": "rsync", "path": "-l@host:/p"}, "user@host:/absolute/path"),
])
def test_unusable_tier_paths_are_config_errors(config_path, tier, fragment) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(config_path({"backup": {"tiers": [tier]}}))
    assert any("backup.tiers.0" in p and fragment in p for p in caught.value.problems), caught.value.problems


def test_unknown_period_pick_is_refused(config_path) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(config_path({"backup": {"retention": {"period_pick": "oldest"}}}))
    assert any(p.split(": ")[1] == "backup.retention.period_pick" for p in caught.value.problems)
