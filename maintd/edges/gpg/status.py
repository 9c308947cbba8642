"""Reading gpg's answers: failure checks, stderr tails, and whether the key was refused or the data is damaged.
Pure functions over python-gnupg result objects and gpg's status lines."""

from __future__ import annotations

from typing import Any

from ...errors import GpgError


def stderr_tail(result: Any, lines: int = 6) -> str:
    text = getattr(result, "stderr", "") or ""
    kept = [line for line in text.splitlines() if line.strip() and not line.startswith("[GNUPG:]")]
    return "\n".join(kept[-lines:])


def failed(result: Any) -> bool:
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
