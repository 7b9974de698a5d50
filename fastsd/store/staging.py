"""Replacing a sweep output without destroying it first (``fastsd sweep --overwrite``).

The new run is built in a sibling directory ``OUT.fastsd-new-XXXXXXXX`` (same parent,
so the same filesystem) and swapped with ``OUT`` only once its manifest says it is
complete. On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``: at every moment
``OUT`` is either the old run or the new one. The old run, now under the sibling
name, is renamed ``OUT.fastsd-old-XXXXXXXX`` and removed.

Where the filesystem cannot exchange two directories (other systems, some network
filesystems) the swap is two renames, ``OUT`` -> ``OUT.fastsd-old-...`` then
``OUT.fastsd-new-...`` -> ``OUT``; a kill between them leaves both runs complete
under their sibling names and no ``OUT``.

A sibling whose name is ``OUT``'s plus ``.fastsd-new-`` or ``.fastsd-old-`` and eight
characters, a real directory holding nothing but what fastsd writes into an output,
is a leftover of a killed overwrite: :func:`remove_leftovers` removes it, while ``OUT``
exists (never otherwise: it may then be the only copy of a run).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import stat
import sys
import tempfile
import warnings
from typing import Any

from .manifest import MANIFEST, OWNED

__all__ = ["remove_leftovers", "remove_tree", "staging_dir", "swap"]

_NEW, _OLD = ".fastsd-new-", ".fastsd-old-"
#: What a staging directory may hold (a killed write leaves the manifest's temporary file).
_STAGED = frozenset(OWNED) | {MANIFEST + ".tmp"}


def staging_dir(out: str) -> str:
    """Create the empty directory the new run of ``out`` is built in (``out``'s permissions)."""
    real = os.path.realpath(out)
    path = tempfile.mkdtemp(prefix=os.path.basename(real) + _NEW, dir=os.path.dirname(real))
    os.chmod(path, stat.S_IMODE(os.stat(real).st_mode))
    return path


def _leftovers(out: str) -> list[str]:
    real = os.path.realpath(out)
    parent, name = os.path.split(real)
    pattern = re.compile(re.escape(name) + r"\.fastsd-(new|old)-[a-z0-9_]{8}")
    found = []
    for entry in sorted(os.listdir(parent)):
        path = os.path.join(parent, entry)
        if not pattern.fullmatch(entry) or os.path.islink(path) or not os.path.isdir(path):
            continue
        try:
            if set(os.listdir(path)) <= _STAGED:
                found.append(path)
        except OSError:
            continue
    return found


def remove_leftovers(out: str) -> list[str]:
    """Remove what killed overwrites of ``out`` left beside it (module doc), if ``out``
    exists; returns the leftovers that could not be removed."""
    if not os.path.isdir(out):
        return []
    kept = []
    for path in _leftovers(out):
        if not remove_tree(path):
            kept.append(path)
    return kept


def remove_tree(path: str) -> bool:
    """Remove a directory fastsd wrote, read-only parts included; False if it could not."""

    def writable_and_retry(func: Any, name: str, exc_info: Any) -> None:
        for folder in (os.path.dirname(name), name):
            if os.path.isdir(folder) and not os.path.islink(folder):
                os.chmod(folder, stat.S_IRWXU)
        func(name)

    try:
        shutil.rmtree(path, onerror=writable_and_retry)
    except OSError:
        return False
    return True


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: str, b: str) -> bool:
    """Swap the paths ``a`` and ``b`` atomically; False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # pragma: no cover - a libc without renameat2
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # not on this filesystem
        return False
    raise OSError(err, f"cannot swap {a} with {b}: {os.strerror(err)}")


def swap(staging: str, out: str) -> None:
    """Put the complete run in ``staging`` (:func:`staging_dir`) in place of ``out``, then
    remove the old run (a warning names it when it cannot be removed)."""
    real = os.path.realpath(out)
    parent, name = os.path.split(staging)
    old = os.path.join(parent, name.replace(_NEW, _OLD))
    if _exchange(staging, real):
        os.rename(staging, old)  # the old run, now under the staging name
    else:
        os.rename(real, old)
        try:
            os.rename(staging, real)
        except BaseException:
            os.rename(old, real)
            raise
    if not remove_tree(old):
        warnings.warn(
            f"{out} holds the new run, but the previous one could not be removed from "
            f"{old}; remove it yourself",
            UserWarning,
            stacklevel=3,
        )
