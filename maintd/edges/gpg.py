"""GnuPG through python-gnupg: the only importer of gnupg. Streaming encrypt (write side) and decrypt (read side)
in bounded memory, a canary self-test, every result checked (python-gnupg does not raise).

gpg always runs with ``--batch`` (python-gnupg), ``--pinentry-mode loopback`` when a passphrase is sent,
``--compress-algo none`` (our payload is already compressed) and a private GNUPGHOME (``state_dir/gnupg``, 0700).
The passphrase is read from its file and written to gpg's stdin by python-gnupg: never on argv, never logged.

Streaming: python-gnupg pulls its input with ``read()`` in a copier thread and pushes gpg's output to ``on_data``
in a reader thread. We feed the input from a small bounded queue of ~1 MiB chunks (no OS pipe, no extra copy) and
hand the output to the caller's sink, so memory stays at a few MiB whatever the size.
"""

from __future__ import annotations

import copy
import io
import os
import queue
import threading
from pathlib import Path
from typing import Any, Callable

import gnupg
import structlog

from ..config import read_secret
from ..errors import ConfigError, GpgError, UnavailableError

log = structlog.get_logger("maintd.gpg")

CHUNK = 1 << 20
QUEUE_CHUNKS = 4
CANARY = b"maintd key self-test canary\n" * 4
PROBE_CHUNKS = 64
_POLL_S = 0.2
SYMMETRIC, PUBLIC_KEY = "symmetric", "public-key"


def _stderr_tail(result: Any, lines: int = 6) -> str:
    text = getattr(result, "stderr", "") or ""
    kept = [line for line in text.splitlines() if line.strip() and not line.startswith("[GNUPG:]")]
    return "\n".join(kept[-lines:])


def _failed(result: Any) -> bool:
    return result is None or not getattr(result, "ok", False) or getattr(result, "returncode", 0) not in (0, None)


class GpgKeyError(GpgError):
    """The configured key cannot open the data: wrong passphrase, no secret key for it, an unreadable passphrase
    file. Says nothing about the data itself (a verify must not record it as damage)."""


# gpg status lines (doc/DETAILS in GnuPG) that show the data was reached: a failure after them is damage.
_DATA_REACHED = ("PLAINTEXT", "BADMDC", "NODATA", "GOODMDC")
# ... and those that show the key was refused before any data was decrypted.
_KEY_REFUSED = ("BAD_PASSPHRASE", "MISSING_PASSPHRASE", "NO_SECKEY")
_KEY_ERROR_CODES = (11, 17)  # GPG_ERR_BAD_PASSPHRASE, GPG_ERR_NO_SECKEY (low 16 bits of an ERROR code)


def key_refused(status_text: str) -> bool:
    """Whether gpg's status output says the key was refused (wrong passphrase, no secret key) before it reached
    any data. A damaged object fails later (BADMDC, a bad packet, missing data). Pure: tested on gpg's output.
    A damaged session-key packet also looks like a wrong key: callers that can compare the file's sha256 first
    (every object has one in its manifest) tell the two apart."""
    keywords = []
    refused = False
    for line in status_text.splitlines():
        if not line.startswith("[GNUPG:] "):
            continue
        parts = line[9:].split()
        if not parts:
            continue
        keywords.append(parts[0])
        if parts[0] in _KEY_REFUSED:
            refused = True
        elif parts[0] == "ERROR" and len(parts) >= 3:
            where, code = parts[1], parts[2]
            if where == "symkey_decrypt.maybe_error" and code.endswith("_BAD_PASSPHRASE"):
                refused = True
            elif where == "pkdecrypt_failed" and code.isdigit() and int(code) & 0xFFFF in _KEY_ERROR_CODES:
                refused = True
    return refused and not any(word in _DATA_REACHED for word in keywords)


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


class _QueueReader:
    """What python-gnupg's copier thread reads: chunks from a queue, b"" after the end marker."""

    def __init__(self, chunks: "queue.Queue[bytes | None]") -> None:
        self._chunks = chunks
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        if self._ended:
            return b""
        chunk = self._chunks.get()
        if chunk is None:
            self._ended = True
            return b""
        return chunk


class EncryptStream:
    """Write plaintext; ``close()`` waits for gpg and raises GpgError when it failed. ``abort()`` ends gpg and
    discards. Errors raised by ``sink`` (a full disk) are re-raised from ``write``/``close``."""

    def __init__(self, instance: gnupg.GPG, kwargs: dict[str, Any], sink: Callable[[bytes], None]) -> None:
        self._chunks: "queue.Queue[bytes | None]" = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._sink = sink
        self.sink_error: BaseException | None = None
        self._result: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._closed = False
        # gpg's output goes through a pipe of 64 KiB: python-gnupg's reader thread must return to reading at once,
        # so the sink (hash + file write) runs in a thread of its own. ~1.5x faster than calling it inline.
        self._out: "queue.Queue[bytes | None]" = queue.Queue(maxsize=QUEUE_CHUNKS * 2)
        self._out_thread = threading.Thread(target=self._drain, daemon=True, name="gpg-output")
        self._out_thread.start()
        instance.on_data = self._on_data
        self._thread = threading.Thread(target=self._run, args=(instance, kwargs), daemon=True, name="gpg-encrypt")
        self._thread.start()

    def _drain(self) -> None:
        while True:
            chunk = self._out.get()
            if chunk is None:
                return
            if self.sink_error is None:
                try:
                    self._sink(chunk)
                except BaseException as err:  # noqa: BLE001 - re-raised in the writing thread
                    self.sink_error = err

    def _run(self, instance: gnupg.GPG, kwargs: dict[str, Any]) -> None:
        try:
            recipients = kwargs.pop("recipients")
            self._result = instance.encrypt_file(_QueueReader(self._chunks), recipients, armor=False, **kwargs)
        except BaseException as err:  # noqa: BLE001 - handed to the writing thread
            self._error = err
        finally:
            self._out.put(None)
            self._out_thread.join()
            self._done.set()

    def _on_data(self, chunk: bytes) -> bool:
        if chunk:
            self._out.put(chunk)
        return False  # never let python-gnupg keep output in memory (it would, should this raise)

    def _put(self, item: bytes | None) -> None:
        while True:
            if self.sink_error is not None:
                raise self.sink_error
            try:
                self._chunks.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                if self._done.is_set():
                    self._check()
                    raise GpgError("gpg stopped reading its input")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed EncryptStream")
        size = len(data)
        if size:
            self._put(bytes(data))
        return size

    def _check(self) -> None:
        if self.sink_error is not None:
            raise self.sink_error
        if self._error is not None:
            raise GpgError(f"gpg failed: {self._error}") from self._error
        if _failed(self._result):
            status = getattr(self._result, "status", None)
            raise GpgError(f"gpg could not encrypt ({status or 'no status'})", detail=_stderr_tail(self._result))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if not self._done.is_set():
                self._put(None)
        finally:
            self._thread.join()
            self._release_copier()
        self._check()

    def _release_copier(self) -> None:
        # When gpg died early, python-gnupg's copier thread may still wait for input: give it its end marker.
        try:
            self._chunks.put_nowait(None)
        except queue.Full:
            pass

    def abort(self) -> None:
        """Stop gpg (it sees the end of its input) and wait for it; errors are ignored."""
        self._closed = True
        self.sink_error = self.sink_error or GpgError("aborted")
        while not self._done.is_set():
            try:
                self._chunks.put(None, timeout=_POLL_S)
                break
            except queue.Full:
                try:
                    self._chunks.get_nowait()
                except queue.Empty:
                    pass
        self._thread.join(30)


class _AbortableSource:
    def __init__(self, source: Any) -> None:
        self._source = source
        self.aborted = False

    def read(self, size: int = -1) -> bytes:
        if self.aborted:
            return b""
        return self._source.read(size)


class DecryptStream(io.RawIOBase):
    """Plaintext of an encrypted source. ``read`` raises GpgError at the end when gpg reports a failure (wrong
    key, damaged or tampered data): consume to the end before trusting what was read."""

    def __init__(self, instance: gnupg.GPG, source: Any, passphrase: str | None) -> None:
        super().__init__()
        self._chunks: "queue.Queue[bytes | None]" = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._source = _AbortableSource(source)
        self._pending = memoryview(b"")
        self._finished = False
        self._discard = False
        self._result: Any = None
        self._error: BaseException | None = None
        instance.on_data = self._on_data
        # When gpg stops reading early (a refused key, damaged packets), python-gnupg raises the copier's broken
        # pipe and drops its result: keep a handle on the result so gpg's status still tells what happened.
        make_result = instance.result_map["crypt"]

        def keep_result(gpg: Any) -> Any:
            self._result = make_result(gpg)
            return self._result

        instance.result_map = {**instance.result_map, "crypt": keep_result}
        self._thread = threading.Thread(target=self._run, args=(instance, passphrase), daemon=True,
                                        name="gpg-decrypt")
        self._thread.start()

    def _run(self, instance: gnupg.GPG, passphrase: str | None) -> None:
        try:
            self._result = instance.decrypt_file(self._source, passphrase=passphrase,
                                                 extra_args=["--no-symkey-cache"])
        except BaseException as err:  # noqa: BLE001 - handed to the reading thread
            self._error = err
        finally:
            self._deliver(None)

    def _deliver(self, item: bytes | None) -> None:
        while not self._discard:
            try:
                self._chunks.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _on_data(self, chunk: bytes) -> bool:
        if chunk:
            self._deliver(chunk)
        return False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pending:
            if self._finished:
                return 0
            chunk = self._chunks.get()
            if chunk is None:
                self._finish()
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _finish(self) -> None:
        self._finished = True
        self._thread.join()
        # A broken pipe means gpg stopped reading its input; its status (kept by keep_result) says why.
        stopped = isinstance(self._error, OSError) and self._result is not None
        if self._error is not None and not stopped:
            raise GpgError(f"gpg failed: {self._error}") from self._error
        if _failed(self._result):
            status = getattr(self._result, "status", None)
            if key_refused(getattr(self._result, "stderr", "") or ""):
                raise GpgKeyError(f"gpg could not decrypt ({status or 'no status'}): the configured key does not "
                                  "open it (wrong passphrase, or no secret key for it)",
                                  detail=_stderr_tail(self._result))
            raise GpgError(f"gpg could not decrypt ({status or 'no status'}): damaged data",
                           detail=_stderr_tail(self._result))

    def close(self) -> None:
        if not self.closed and not self._finished:
            self._discard = True
            self._source.aborted = True
            while self._thread.is_alive():
                try:
                    self._chunks.get(timeout=_POLL_S)
                except queue.Empty:
                    pass
            self._finished = True
        super().close()
