"""Checksums of a sweep store's chunks, and the check of a store against them.

Each block's marker (``OUT/blocks/NNNNNN``) records, for every chunk file the
block wrote, its path relative to ``OUT`` (``results.zarr/risk/c/3/0/0/0``), its
size and its SHA-256 digest, taken by the process that wrote the chunk from
the file's bytes as stored. A block verifies when every recorded file exists
with that size and digest. A missing file, a truncated or altered one, and a
chunk replaced by another block's bytes (another file's content: another
digest) all fail; Zarr itself would read a missing chunk as its fill value
(NaN) and another block's chunk as valid data.

Statuses of a block (:func:`check_block`):

``"ok"``
    every chunk verifies;
``"not done"``
    no marker (never finished, or recomputed after a failure);
``"missing file"``, ``"checksum mismatch"``, ``"damaged marker"``
    the block is damaged (:data:`FAILED`): resume recomputes it, readers refuse it;
``"unverifiable"``
    a marker without checksums (a store written before fastsd recorded them):
    trusted as before, readers warn once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .manifest import BLOCKS

__all__ = [
    "CHECKSUM",
    "FAILED",
    "BlockCheck",
    "check_block",
    "chunk_record",
    "damaged_message",
    "file_digest",
    "marker_path",
    "stored_blocks",
    "verify_store",
]

#: The digest of a chunk file (``hashlib`` name), recorded in each marker as ``checksum``.
CHECKSUM = "sha256"
#: The statuses of a damaged block.
FAILED = ("missing file", "checksum mismatch", "damaged marker")


def marker_path(out: str, index: int) -> str:
    """The marker of block ``index`` in the store ``out``."""
    return os.path.join(out, BLOCKS, f"{index:06d}")


def file_digest(path: str) -> tuple[int, str]:
    """(size, hex :data:`CHECKSUM` digest) of a file's bytes."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, CHECKSUM)
        return f.tell(), digest.hexdigest()


def chunk_record(out: str, files: Iterable[str]) -> dict[str, list[int | str]]:
    """The checksums of chunk files just written: relative path -> [size, digest].

    Parameters
    ----------
    out : str
        The output directory.
    files : iterable of str
        The chunk files, relative to ``out`` with ``/`` separators.

    Raises
    ------
    OSError
        Naming the file, when a chunk that was written is not there.
    """
    record: dict[str, list[int | str]] = {}
    for name in files:
        try:
            size, digest = file_digest(os.path.join(out, *name.split("/")))
        except FileNotFoundError:
            raise OSError(f"the chunk {name} was written but is not in {out}") from None
        record[name] = [size, digest]
    return record


@dataclass(frozen=True)
class BlockCheck:
    """What :func:`check_block` found for one block.

    Attributes
    ----------
    block : int
    status : str
        ``"ok"``, ``"not done"``, ``"missing file"``, ``"checksum mismatch"``,
        ``"damaged marker"`` or ``"unverifiable"`` (module doc).
    file : str or None
        The first failing file, relative to the output directory.
    detail : str
        What is wrong with it (sizes, digests), or empty.
    """

    block: int
    status: str
    file: str | None = None
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_files(out: str, index: int, chunks: Mapping[str, Any]) -> BlockCheck:
    for name, (size, digest) in sorted(chunks.items()):
        path = os.path.join(out, *name.split("/"))
        try:
            got_size, got = file_digest(path)
        except FileNotFoundError:
            return BlockCheck(index, "missing file", name)
        except OSError as exc:
            return BlockCheck(index, "missing file", name, f"unreadable: {exc.strerror or exc}")
        if got_size != size:
            detail = f"{got_size} bytes, {size} when written"
            return BlockCheck(index, "checksum mismatch", name, detail)
        if got != digest:
            detail = f"its bytes differ from those written ({CHECKSUM})"
            return BlockCheck(index, "checksum mismatch", name, detail)
    return BlockCheck(index, "ok")


def check_block(out: str, index: int) -> BlockCheck:
    """Check block ``index`` of the store ``out`` against the checksums in its marker."""
    marker = os.path.relpath(marker_path(out, index), out)
    try:
        with open(marker_path(out, index), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return BlockCheck(index, "not done")
    except (OSError, ValueError) as exc:
        return BlockCheck(index, "damaged marker", marker, str(exc))
    try:
        record = json.loads(text) if text else {}
    except ValueError:
        return BlockCheck(index, "damaged marker", marker, "not valid JSON")
    chunks = record.get("chunks") if isinstance(record, dict) else None
    if chunks is None:
        return BlockCheck(index, "unverifiable", None, "no checksums in its marker")
    if record.get("checksum") != CHECKSUM or not _well_formed(chunks):
        return BlockCheck(index, "damaged marker", marker, "its checksums are not readable")
    return _check_files(out, index, chunks)


def _well_formed(chunks: Any) -> bool:
    return isinstance(chunks, dict) and all(
        isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and isinstance(v[1], str)
        for v in chunks.values()
    )


def verify_store(out: str, n_blocks: int | None = None) -> list[BlockCheck]:
    """Check the blocks of the store ``out`` (:func:`check_block`): ``0 .. n_blocks - 1``,
    or the stored ones (those with a marker) when ``n_blocks`` is None.

    Reads every byte of every stored chunk.
    """
    indices = range(n_blocks) if n_blocks is not None else sorted(stored_blocks(out))
    return [check_block(out, index) for index in indices]


def stored_blocks(out: str) -> set[int]:
    """The indices of the blocks of ``out`` that have a marker (stored, as far as it says)."""
    folder = os.path.join(out, BLOCKS)
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return {int(name) for name in names if name.isdigit()}


def damaged_message(out: str, checks: Iterable[BlockCheck]) -> str | None:
    """One line naming the first damaged block, its file and the fix; None if none is."""
    failed = [c for c in checks if c.failed]
    if not failed:
        return None
    first = failed[0]
    what = f"{first.status}{f' ({first.detail})' if first.detail else ''}"
    more = f" (and {len(failed) - 1} more damaged blocks)" if len(failed) > 1 else ""
    return (
        f"block {first.block} of the sweep in {out} is damaged: {first.file}: {what}{more}; "
        f"recompute it with fastsd sweep CONFIG --output {out} --resume "
        f"(fastsd verify {out} lists every block)"
    )
