"""The rsync edge: argv builders as values, and real rsync/coreutils runs against a local destination."""

from __future__ import annotations

import hashlib
import shlex
import threading
from pathlib import Path, PurePosixPath

import pytest

from maintd.edges.rsync import (Destination, Runner, build_pull_manifests_argv, build_push_argv,
                                build_remote_argv, parse_destination, parse_sha256sum)
from maintd.errors import Cancelled, IntegrityError, UsageError


def test_destination_parses_remote_and_local_forms() -> None:
    remote = parse_destination("backup@nas.example.org:/srv/maintd", Path("/etc/maintd/nas.key"))
    assert remote == Destination("backup@nas.example.org", PurePosixPath("/srv/maintd"), Path("/etc/maintd/nas.key"))
    assert remote.spec(".incomplete", "X") == "backup@nas.example.org:/srv/maintd/.incomplete/X"
    assert parse_destination("/mnt/copy").host is None
    v6 = parse_destination("bk@[2001:db8::1]:/srv")
    assert v6.spec("x") == "bk@[2001:db8::1]:/srv/x"  # rsync's form
    assert build_remote_argv(v6, ["true"])[-2:] == ("bk@2001:db8::1", "true")  # ssh's form


@pytest.mark.parametrize("bad", ["relative/path", "host:relative", "rsync://host/module", "-oProxyCommand=x:/p",
                                 "host:"])
def test_destination_refuses_what_it_cannot_reach_safely(bad: str) -> None:
    with pytest.raises(UsageError, match="user@host:/absolute/path"):
        parse_destination(bad)


def test_push_argv_uses_ssh_key_batch_mode_and_partial_dir() -> None:
    dest = parse_destination("u@h:/srv/my backups", Path("/etc/maintd/key file"))
    argv = build_push_argv(Path("/var/backups/maintd/ID"), dest, ".incomplete", "ID")
    assert argv[:4] == ("rsync", "-a", "--partial-dir=.rsync-partial", "--protect-args")
    assert argv[4] == "-e"
    assert shlex.split(argv[5]) == ["ssh", "-o", "BatchMode=yes", "-i", "/etc/maintd/key file", "-o",
                                    "IdentitiesOnly=yes"]
    assert argv[6:] == ("/var/backups/maintd/ID/", "u@h:/srv/my backups/.incomplete/ID/")


def test_local_destination_needs_no_ssh() -> None:
    argv = build_push_argv(Path("/a/ID"), parse_destination("/mnt/t"), ".incomplete", "ID")
    assert "-e" not in argv and argv[-1] == "/mnt/t/.incomplete/ID/"
    assert build_remote_argv(parse_destination("/mnt/t"), ["mv", "-T", "--", "a", "b"]) == ("mv", "-T", "--", "a",
                                                                                           "b")


def test_remote_commands_are_quoted_for_the_remote_shell() -> None:
    dest = parse_destination("u@h:/srv")
    argv = build_remote_argv(dest, ["mv", "-T", "--", "/srv/a b", "/srv/$(reboot)"])
    assert argv[:4] == ("ssh", "-o", "BatchMode=yes", "--")
    assert argv[4] == "u@h"
    assert shlex.split(argv[5]) == ["mv", "-T", "--", "/srv/a b", "/srv/$(reboot)"]


def test_pull_argv_fetches_only_committed_manifests() -> None:
    argv = build_pull_manifests_argv(parse_destination("/t"), Path("/scratch/x"))
    assert argv[-2:] == ("/t/", "/scratch/x/")
    assert argv.index("--exclude=/.*") < argv.index("--include=/*/") < argv.index("--include=/*/manifest.json")


def test_sha256sum_output_is_parsed_and_odd_lines_refused() -> None:
    digest = "a" * 64
    assert parse_sha256sum(f"{digest}  /t/x y\n{'B' * 64} */t/z\n") == {"/t/x y": digest, "/t/z": "b" * 64}
    with pytest.raises(IntegrityError):
        parse_sha256sum("\\" + digest + "  /t/new\\nline\n")


def test_runner_pushes_hashes_and_lists_with_real_rsync(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "obj").write_bytes(b"payload" * 1000)
    dest = parse_destination(str(tmp_path / "tier"))
    runner = Runner(dest, timeout=60)
    assert runner.list_dir() == []  # the base does not exist yet
    runner.remote("mkdir", "-p", "--", dest.join(".incomplete"))
    runner.rsync(build_push_argv(source, dest, ".incomplete", "ID"))
    path = dest.join(".incomplete", "ID", "obj")
    assert runner.sha256([path, dest.join("missing")]) == {path: hashlib.sha256(b"payload" * 1000).hexdigest()}
    assert runner.list_dir() == [".incomplete"]
    assert runner.list_dir(".incomplete") == ["ID"]


def test_runner_stops_when_cancelled(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    runner = Runner(parse_destination(str(tmp_path)), timeout=60, cancel=cancel)
    with pytest.raises(Cancelled):
        runner.remote("sleep", "5")
