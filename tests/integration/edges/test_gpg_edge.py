"""The GnuPG edge tells a key that cannot open the data (GpgKeyError) from damaged data (GpgError): verify records
only damage, so a typo in the passphrase file must never look like damage."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from maintd.edges.gpg import Gpg, GpgKeyError, key_refused
from maintd.errors import GpgError
from tests.support.gpg_home import make_passphrase_file

PLAIN = bytes(range(256)) * 4096  # 1 MiB, several gpg packets


@pytest.fixture
def homes(tmp_path: Path) -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for home in made:  # gpg starts an agent per GNUPGHOME: end it with the test
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False,
                       capture_output=True, timeout=10)


def symmetric(tmp_path: Path, homes: list[Path], passphrase: str, name: str) -> Gpg:
    home = tmp_path / f"gnupg-{name}"
    homes.append(home)
    return Gpg(home, passphrase_file=make_passphrase_file(tmp_path / f"secret-{name}", passphrase), s2k_count=65536)


def encrypt(gpg: Gpg, data: bytes = PLAIN) -> bytes:
    out = io.BytesIO()
    stream = gpg.encrypt_stream(out.write)
    stream.write(data)
    stream.close()
    return out.getvalue()


def decrypt(gpg: Gpg, data: bytes) -> bytes:
    reader = gpg.decrypt_stream(io.BytesIO(data))
    try:
        return reader.read()
    finally:
        reader.close()


def test_a_wrong_passphrase_is_a_key_error_not_damage(tmp_path: Path, homes: list[Path]) -> None:
    right = symmetric(tmp_path, homes, "right passphrase", "right")
    wrong = symmetric(tmp_path, homes, "right passphrase with a typo", "wrong")
    sealed = encrypt(right)
    assert decrypt(right, sealed) == PLAIN
    with pytest.raises(GpgKeyError, match="the configured key does not open it"):
        decrypt(wrong, sealed)


@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_damaged_data_is_a_gpg_error_but_not_a_key_error(tmp_path: Path, homes: list[Path], damage: str) -> None:
    gpg = symmetric(tmp_path, homes, "right passphrase", "one")
    sealed = bytearray(encrypt(gpg))
    if damage == "flipped byte":
        sealed[len(sealed) // 2] ^= 0x01  # the MDC at the end no longer matches
    else:
        del sealed[len(sealed) // 2:]
    with pytest.raises(GpgError, match="damaged data") as caught:
        decrypt(gpg, bytes(sealed))
    assert not isinstance(caught.value, GpgKeyError)


def test_an_unreadable_passphrase_file_is_a_key_error(tmp_path: Path, homes: list[Path]) -> None:
    gpg = symmetric(tmp_path, homes, "right passphrase", "one")
    sealed = encrypt(gpg)
    home = tmp_path / "gnupg-missing"
    homes.append(home)
    missing = Gpg(home, passphrase_file=tmp_path / "no-such-file", s2k_count=65536)
    with pytest.raises(GpgKeyError, match="cannot read the backup passphrase"):
        decrypt(missing, sealed)


def test_public_key_data_without_the_secret_key_is_a_key_error(tmp_path: Path, homes: list[Path]) -> None:
    holder = tmp_path / "keyholder"
    holder.mkdir(mode=0o700)
    homes.append(holder)
    subprocess.run(["gpg", "--homedir", str(holder), "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
                    "--quick-gen-key", "backup@example.org", "future-default", "default", "never"],
                   check=True, capture_output=True, timeout=60)
    public = subprocess.run(["gpg", "--homedir", str(holder), "--batch", "--armor", "--export"], check=True,
                            capture_output=True, timeout=30).stdout
    home = tmp_path / "gnupg-writer"
    homes.append(home)
    writer = Gpg(home, recipients=("backup@example.org",), passphrase_file=None)
    writer.import_keys(public)
    sealed = encrypt(writer)
    with pytest.raises(GpgKeyError, match="does not open it"):
        decrypt(writer, sealed)


def test_key_refused_reads_gpg_status_lines() -> None:
    wrong_symmetric = ("[GNUPG:] NEED_PASSPHRASE_SYM 9 3 2\n[GNUPG:] BEGIN_DECRYPTION\n"
                       "[GNUPG:] ERROR symkey_decrypt.maybe_error 11_BAD_PASSPHRASE\n[GNUPG:] DECRYPTION_FAILED\n"
                       "gpg: decryption failed: Bad session key\n[GNUPG:] END_DECRYPTION\n")
    wrong_secret_passphrase = ("[GNUPG:] ENC_TO A46138A3624866F0 18 0\n"
                               "gpg: public key decryption failed: Bad passphrase\n"
                               "[GNUPG:] ERROR pkdecrypt_failed 67108875\n[GNUPG:] DECRYPTION_FAILED\n")
    no_secret_key = "[GNUPG:] NO_SECKEY A46138A3624866F0\n[GNUPG:] BEGIN_DECRYPTION\n[GNUPG:] DECRYPTION_FAILED\n"
    bad_mdc = ("[GNUPG:] BEGIN_DECRYPTION\n[GNUPG:] PLAINTEXT 62 1796322234 x\n"
               "gpg: WARNING: encrypted message has been manipulated!\n[GNUPG:] BADMDC\n"
               "[GNUPG:] DECRYPTION_FAILED\n")
    not_openpgp = "gpg: packet(3) with unknown version 155\n[GNUPG:] NODATA 3\n"
    assert key_refused(wrong_symmetric) and key_refused(wrong_secret_passphrase) and key_refused(no_secret_key)
    assert not key_refused(bad_mdc) and not key_refused(not_openpgp) and not key_refused("")
