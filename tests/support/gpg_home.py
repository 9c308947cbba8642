"""A private GNUPGHOME and a passphrase file, as maintd's state dir would hold them."""

from __future__ import annotations

from pathlib import Path

PASSPHRASE = "correct horse battery staple"


def make_passphrase_file(directory: Path, passphrase: str = PASSPHRASE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "backup.passphrase"
    path.write_text(passphrase + "\n")
    path.chmod(0o600)
    return path
