"""GnuPG through python-gnupg: the only importer of gnupg. Streaming encrypt (write side) and decrypt (read side)
in bounded memory, a canary self-test, every result checked (python-gnupg does not raise).

gpg always runs with ``--batch`` (python-gnupg), ``--pinentry-mode loopback`` when a passphrase is sent,
``--compress-algo none`` (our payload is already compressed) and a private GNUPGHOME (``state_dir/gnupg``, 0700).
The passphrase is read from its file and written to gpg's stdin by python-gnupg: never on argv, never logged.

The streams live in streams.py, the reading of gpg's answers in status.py.
"""

from __future__ import annotations

import copy
import io
import os
from pathlib import Path
from typing import Any, Callable

import gnupg
import structlog

from ...config import read_secret
from ...errors import ConfigError, GpgError, UnavailableError

from .status import GpgKeyError, key_refused, stderr_tail as _stderr_tail
from .streams import CHUNK, DecryptStream, EncryptStream

log = structlog.get_logger("maintd.gpg")

__all__ = ["Gpg", "GpgKeyError", "key_refused", "SYMMETRIC", "PUBLIC_KEY", "EncryptStream", "DecryptStream",
           "CHUNK"]

CANARY = b"maintd key self-test canary\n" * 4
PROBE_CHUNKS = 64
SYMMETRIC, PUBLIC_KEY = "symmetric", "public-key"


class Gpg:
    """The configured key: symmetric AES256 with ``passphrase_file`` or public-key to ``recipients`` (then
    ``passphrase_file``, when readable, unlocks the secret key for decryption on hosts that have one)."""

    def __init__(self, home: Path, *, passphrase_file: Path | None = None, recipients: tuple[str, ...] = (),
                 s2k_count: int = 8_388_608, binary: str = "gpg") -> None:
        self.home = home
        self.s2k_count = s2k_count
        self.passphrase_file = passphrase_file
        self.recipients = tuple(recipients)
        self.mode = PUBLIC_KEY if self.recipients else SYMMETRIC
        try:
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(home, 0o700)
        except OSError as err:
            raise GpgError(f"cannot prepare GNUPGHOME {home}: {err.strerror}") from err
        try:
            self._gpg = gnupg.GPG(gpgbinary=binary, gnupghome=str(home), options=["--compress-algo", "none"])
        except (OSError, ValueError, RuntimeError) as err:
            raise UnavailableError(f"cannot run {binary}: {err}") from err
        self._gpg.buffer_size = CHUNK
        self._passphrase: str | None = None
        self._has_secret: bool | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> "Gpg":
        backup = settings.backup
        return cls(settings.paths.state_dir / "gnupg", passphrase_file=backup.passphrase_file,
                   recipients=tuple(backup.recipients), s2k_count=backup.s2k_count)

    # -- keys ---------------------------------------------------------------------------------------------------
    def _secret(self, *, required: bool) -> str | None:
        if self._passphrase is not None:
            return self._passphrase
        if self.passphrase_file is None:
            if required:
                raise GpgError("no backup.passphrase_file configured")
            return None
        if not required and not self.passphrase_file.exists():
            return None
        try:
            self._passphrase = read_secret(self.passphrase_file)
        except ConfigError as err:
            raise GpgKeyError(f"cannot read the backup passphrase: {err.message}") from err
        return self._passphrase

    def _instance(self) -> gnupg.GPG:
        instance = copy.copy(self._gpg)
        instance.on_data = None
        return instance

    def import_keys(self, armored: str | bytes) -> list[str]:
        """Import public or secret keys into the private GNUPGHOME; returns their fingerprints."""
        result = self._gpg.import_keys(armored)
        self._has_secret = None
        if not result.fingerprints:
            raise GpgError(f"no key imported: {_stderr_tail(result)}")
        return list(result.fingerprints)

    def has_secret_key(self) -> bool:
        """Public-key mode: whether this host holds a secret key at all (it may write backups it cannot read)."""
        if self.mode == SYMMETRIC:
            return True
        if self._has_secret is None:
            self._has_secret = bool(self._gpg.list_keys(secret=True))
        return self._has_secret

    # -- streams ------------------------------------------------------------------------------------------------
    def encrypt_stream(self, sink: Callable[[bytes], None]) -> "EncryptStream":
        """A writable stream: bytes written are encrypted; ciphertext chunks go to ``sink`` from a reader thread."""
        if self.mode == SYMMETRIC:
            kwargs: dict[str, Any] = {"recipients": None, "symmetric": "AES256",
                                      "passphrase": self._secret(required=True),
                                      "extra_args": ["--s2k-mode", "3", "--s2k-digest-algo", "SHA256",
                                                     "--s2k-count", str(self.s2k_count)]}
        else:
            kwargs = {"recipients": list(self.recipients), "always_trust": True}
        return EncryptStream(self._instance(), kwargs, sink)

    def decrypt_stream(self, source: io.RawIOBase | io.BufferedIOBase | Any) -> "DecryptStream":
        """A readable stream of the plaintext of ``source`` (anything with ``read(n)``). Authentication (MDC) and
        the passphrase are checked by gpg; a failure raises from ``read`` at the end of the data: GpgKeyError when
        the key was refused (wrong passphrase, no secret key), GpgError when the data is damaged."""
        passphrase = self._secret(required=self.mode == SYMMETRIC)
        return DecryptStream(self._instance(), source, passphrase)

    def probe_decrypt(self, source: Any, what: str) -> None:
        """Check that the configured key opens an existing encrypted object (its first bytes are enough: a wrong
        passphrase fails at once). Raises GpgKeyError naming ``what`` when the key is refused, GpgError when the object
        itself is damaged."""
        reader = self.decrypt_stream(source)
        try:
            # A wrong passphrase fails before the first byte. Small objects are read to the end so that gpg exits
            # cleanly (an aborted gpg makes python-gnupg log a warning); large ones are abandoned after 1 MiB.
            for _ in range(PROBE_CHUNKS):
                if not reader.read(CHUNK):
                    break
        except GpgKeyError as err:
            raise GpgKeyError(f"the configured key does not open {what}: wrong passphrase or key?",
                              detail=err.detail) from err
        except GpgError as err:
            raise GpgError(f"cannot check the key on {what}: {err.message}", detail=err.detail) from err
        finally:
            reader.close()

    def self_test(self) -> bool:
        """Encrypt a canary with the configured key and decrypt it again (when this host can). Fails in about a
        second on a missing or wrong passphrase or a missing recipient key. Returns whether decryption was tested."""
        out = io.BytesIO()
        stream = self.encrypt_stream(out.write)
        stream.write(CANARY)
        stream.close()
        if self.mode == PUBLIC_KEY and not self.has_secret_key():
            log.debug("gpg.self_test", decrypt=False, mode=self.mode)
            return False
        reader = self.decrypt_stream(io.BytesIO(out.getvalue()))
        try:
            plain = reader.read()
        except GpgError as err:
            raise GpgError(f"key self-test failed: cannot decrypt the canary ({err.message})",
                           detail=err.detail) from err
        finally:
            reader.close()
        if plain != CANARY:
            raise GpgError("key self-test failed: the canary came back different")
        log.debug("gpg.self_test", decrypt=True, mode=self.mode)
        return True
