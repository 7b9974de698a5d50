"""Writing a sweep's blocks into ``OUT/results.zarr``, one Zarr chunk per block, then its marker.

:class:`SweepStore` creates (or reopens) the store in the process that runs the
sweep. :class:`BlockWriter` writes blocks: it is a small picklable handle (the
output path and the variable names), so the process that computes a block --
this one, or a Dask worker that sees the same filesystem -- writes it itself.

Writing one block:

1. each variable's chunk (zarr writes a temporary file and renames it);
2. the SHA-256 digest of each chunk file as stored (read back at once, from the
   page cache: :mod:`fastsd.store.integrity`);
3. then the block's marker ``OUT/blocks/NNNNNN``, a small JSON record (the
   chunks' paths, sizes and digests, the block's counts of non-finite values and
   unrecoverable xi, timings, the host), written to a temporary file and renamed.

A block is done exactly when its marker exists, so an interrupted write leaves
the block to be recomputed whole, and an error in any step stops the run
before the marker.

Codecs (measured on real results, see the user guide's performance page):
float64 metrics (risk, val_mse, test_mse) barely compress (ratio 1.2-1.4, at
100-600 MB/s, slower than the plain write) and are stored uncompressed; ``xi``
(half of the steps table is NaN padding) and ``xi_reproducible`` compress 4x
and more with zstd at level 1.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import platform
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike

from .integrity import (
    CHECKSUM,
    BlockCheck,
    chunk_record,
    marker_path,
    stored_blocks,
    verify_store,
)
from .layout import Coordinate, Variable
from .manifest import BLOCKS, MANIFEST, ZARR, read_manifest, versions, write_json

__all__ = ["BlockRecord", "BlockWriter", "SweepStore", "compressors"]

#: What a block's marker holds (and what writing it returns): ``block`` (its
#: index), the counts of :func:`fastsd.store.layout.value_counts` (``nonfinite``
#: of ``metrics`` values, ``nan_xi`` of ``schedules`` unrecoverable), ``started``
#: and ``written`` (seconds since the epoch: compute began, chunks written),
#: ``compute_s`` / ``write_s`` (seconds computing it and writing its chunks,
#: checksums included), ``checksum`` (the digest's name) and ``chunks`` (each chunk
#: file relative to the output directory -> [size, digest]), ``host``, ``pid``.
BlockRecord = dict[str, Any]

#: Runtime settings of every array the writer opens: every block writes every
#: chunk, even one equal to the fill value (no scan of the data to find out).
_ARRAY_CONFIG = {"write_empty_chunks": True}


class Block(Protocol):
    """What the store needs of a block (:class:`fastsd.blocks.plan.Block`)."""

    @property
    def index(self) -> int: ...
    @property
    def b0(self) -> int: ...
    @property
    def b1(self) -> int: ...
    @property
    def l0(self) -> int: ...
    @property
    def l1(self) -> int: ...


def compressors(name: str) -> tuple[Any, ...]:
    """The Zarr compressors of a variable: none for the float64 metrics, zstd(1) otherwise."""
    from zarr.codecs import ZstdCodec

    return (ZstdCodec(level=1),) if name in ("xi", "xi_reproducible") else ()


class BlockWriter:
    """Write blocks of the store ``out`` (picklable: a worker writes its own blocks).

    Parameters
    ----------
    out : str
        The output directory (a path every writing process sees).
    names : sequence of str
        The variables of each block.
    """

    def __init__(self, out: str, names: Sequence[str]) -> None:
        self.out = os.path.abspath(out)
        self.names = tuple(names)
        self._arrays: dict[str, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"out": self.out, "names": self.names, "_arrays": None}

    def _open(self) -> dict[str, Any]:
        if self._arrays is None:
            import zarr

            path = os.path.join(self.out, ZARR)
            self._arrays = {
                name: zarr.open_array(path, path=name, mode="r+", config=_ARRAY_CONFIG)
                for name in self.names
            }
        return self._arrays

    def record(self, index: int) -> BlockRecord | None:
        """The marker's record of block ``index`` if it is stored, else None."""
        try:
            with open(marker_path(self.out, index), encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return None
        return json.loads(text) if text else {"block": index}

    @staticmethod
    def _chunk_files(arrays: Mapping[str, Any], block: Block) -> list[str]:
        """The chunk file of each variable of ``block``, relative to the output directory
        (none for a variable whose chunk holds no values: Zarr writes no file)."""
        files = []
        for name, arr in arrays.items():
            if block.b1 == block.b0 or block.l1 == block.l0 or 0 in arr.shape[2:]:
                continue
            pb, lb = arr.chunks[:2]
            coords = (block.b0 // pb, block.l0 // lb) + (0,) * (arr.ndim - 2)
            files.append(f"{ZARR}/{name}/{arr.metadata.encode_chunk_key(coords)}")
        return files

    def write(
        self, block: Block, values: Mapping[str, ArrayLike], record: Mapping[str, Any]
    ) -> BlockRecord:
        """Store one block (one chunk per variable), then its marker holding ``record``.

        Returns
        -------
        dict
            ``record`` with ``block``, ``host`` and ``pid`` added: what the marker holds.
        """
        start = time.perf_counter()
        where = (slice(block.b0, block.b1), slice(block.l0, block.l1))
        arrays = self._open()
        for name, arr in arrays.items():
            arr[where] = values[name]
        chunks = chunk_record(self.out, self._chunk_files(arrays, block))
        done = {
            "block": block.index,
            **record,
            "write_s": time.perf_counter() - start,
            "written": time.time(),
            "host": platform.node(),
            "pid": os.getpid(),
            "checksum": CHECKSUM,
            "chunks": chunks,
        }
        path = marker_path(self.out, block.index)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(done, f)
        os.replace(tmp, path)
        return done


class SweepStore:
    """The store of one sweep in ``OUT`` (see the module doc).

    Use :meth:`create` for a new store and :meth:`open` to resume one; blocks
    are written through :attr:`writer`.
    """

    def __init__(self, out: str, manifest: dict[str, Any]) -> None:
        self.out = out
        self.manifest = manifest
        self.writer = BlockWriter(out, manifest["variables"])

    @classmethod
    def create(
        cls,
        out: str,
        manifest: Mapping[str, Any],
        variables: Mapping[str, Variable],
        coords: Mapping[str, Coordinate],
        chunks: tuple[int, int],
        attrs: dict[str, Any],
    ) -> SweepStore:
        """Write the manifest and the empty Zarr skeleton.

        Parameters
        ----------
        variables : dict name -> (dims, shape, dtype)
        coords : dict name -> (dims, values)
        chunks : tuple (problems_per_block, lams_per_block)
        attrs : dict (JSON-able), the Dataset's attributes
        """
        import zarr

        os.makedirs(out, exist_ok=True)
        manifest = dict(
            manifest,
            fastsd_sweep=1,
            state="creating",
            complete=False,
            variables=sorted(variables),
            versions=versions(),
            host=platform.node(),
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        )
        write_json(os.path.join(out, MANIFEST), manifest)
        for name in (ZARR, BLOCKS):
            shutil.rmtree(os.path.join(out, name), ignore_errors=True)
        os.makedirs(os.path.join(out, BLOCKS))
        group = zarr.open_group(os.path.join(out, ZARR), mode="w", zarr_format=3, attributes=attrs)
        for name, (dims, values) in coords.items():
            values = np.asarray(values)
            # chunks=None (a 0-d coordinate) is zarr's default chunking; its stubs omit None
            arr = group.create_array(
                name,
                shape=values.shape,
                dtype=values.dtype,
                chunks=values.shape or None,  # type: ignore[arg-type]
                dimension_names=list(dims),
            )
            arr[...] = values
        names = " ".join(n for n, (d, _) in coords.items() if d != (n,))
        for name, (dims, shape, dtype) in variables.items():
            block_chunks = tuple(chunks) + tuple(shape[2:])
            fill = False if dtype == "bool" else np.nan
            group.create_array(
                name,
                shape=shape,
                dtype=dtype,
                chunks=block_chunks,
                fill_value=fill,
                compressors=compressors(name),
                dimension_names=list(dims),
                attributes={"coordinates": names} if names else {},
            )
        with warnings.catch_warnings():  # consolidated metadata is not in the v3 spec yet
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(os.path.join(out, ZARR))
        manifest["state"] = "ready"
        write_json(os.path.join(out, MANIFEST), manifest)
        return cls(out, manifest)

    @classmethod
    def open(cls, out: str) -> SweepStore:
        """Reopen a store to resume it (stale temporary files are removed)."""
        manifest = read_manifest(out)
        assert manifest is not None  # prepare_output found a fastsd sweep here
        stale = glob.glob(os.path.join(out, ZARR, "**", "*.partial"), recursive=True)
        for path in stale + glob.glob(os.path.join(out, BLOCKS, "*.tmp")):
            os.remove(path)
        return cls(out, manifest)

    def write(
        self, block: Block, values: Mapping[str, ArrayLike], record: Mapping[str, Any] | None = None
    ) -> BlockRecord:
        """Store one block in this process (see :meth:`BlockWriter.write`)."""
        return self.writer.write(block, values, record or {})

    def drop_damaged(self) -> tuple[list[BlockCheck], int]:
        """Verify the stored blocks; remove the marker of each that fails, so that it is
        computed again.

        Returns
        -------
        failed : list of BlockCheck
            The blocks that failed (:data:`fastsd.store.integrity.FAILED`).
        stored : int
            The number of blocks that were marked stored.
        """
        checks = verify_store(self.out)
        failed = [c for c in checks if c.failed]
        if failed and self.manifest.get("complete"):  # until they are stored again
            self.manifest["complete"] = False
            write_json(os.path.join(self.out, MANIFEST), self.manifest)
        for check in failed:
            os.remove(marker_path(self.out, check.block))
        return failed, len(checks)

    def done(self) -> set[int]:
        """Indices of the blocks fully stored."""
        return stored_blocks(self.out)

    def records(self) -> list[BlockRecord]:
        """The markers' records of the stored blocks, by block index."""
        out = []
        for index in sorted(self.done()):
            record = self.writer.record(index)
            if record is not None:
                out.append(record)
        return out

    def finish(self, run: Mapping[str, Any] | None = None) -> None:
        """Record that every block is stored (and, optionally, this run's timings)."""
        self.manifest["complete"] = True
        self.manifest["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        if run is not None:
            self.manifest["last_run"] = dict(run)
        write_json(os.path.join(self.out, MANIFEST), self.manifest)
