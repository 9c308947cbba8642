"""Does the configured key open the backups we have? A wrong passphrase still encrypts and decrypts its own canary
(``Gpg.self_test``), so the backup and verify jobs also probe the newest existing backup.

The probe reads the smallest object of the newest backup whose sha256 still matches the manifest: a damaged object
would make gpg fail in ways that can look like a wrong key (a flipped bit in the session-key packet), so damage is
left to verify and never taken for a key problem.
"""

from __future__ import annotations

from ..edges.gpg import Gpg, GpgKeyError
from ..errors import GpgError, IntegrityError
from .catalog import Catalog, Manifest
from .reader import check_object


def probe_newest(catalog: Catalog, gpg: Gpg, manifests: list[Manifest]) -> str | None:
    """Raise GpgKeyError (from ``Gpg.probe_decrypt``) when the configured key is refused by the newest backup.
    Returns a note when the key could not be checked (no intact object to probe), None when it was checked or
    there is nothing to check (no backup yet; public-key mode on a host without the secret key)."""
    if not manifests or not gpg.has_secret_key():
        return None
    newest = manifests[-1]
    problems = []
    for name in sorted(newest.objects, key=lambda n: (newest.objects[n]["size"], n)):
        try:
            check_object(catalog, newest.id, name, newest)
        except IntegrityError as err:
            problems.append(err.message)
            continue
        path = catalog.object_path(newest.id, name)
        try:
            with path.open("rb") as handle:
                gpg.probe_decrypt(handle, f"the newest backup {newest.id} ({name})")
        except OSError as err:
            problems.append(f"cannot read {path}: {err.strerror}")
            continue
        except GpgKeyError:
            raise
        except GpgError as err:  # damaged although its sha256 matches: written broken; try another object
            problems.append(err.message)
            continue
        return None
    if not newest.objects:
        return None
    return (f"the key was not checked against the newest backup {newest.id}: no intact object to probe "
            f"({'; '.join(problems[:3])}); run `maintctl verify`")
