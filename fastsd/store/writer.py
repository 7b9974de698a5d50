"""Writing a sweep's blocks into ``OUT/results.zarr``, one Zarr chunk per block, then its marker."""

from __future__ import annotations

import datetime
import glob
import os
import platform
import shutil
import warnings
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike

from .layout import Coordinate, Variable
from .manifest import BLOCKS, MANIFEST, ZARR, read_manifest, versions, write_json

__all__ = ["SweepStore"]


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


class SweepStore:
    """Write blocks of one sweep into ``OUT/results.zarr`` (see the module doc).

    Use :meth:`create` for a new store and :meth:`open` to resume one.
    """

    def __init__(self, out: str, manifest: dict[str, Any]) -> None:
        import zarr

        self.out = out
        self.manifest = manifest
        self._group = zarr.open_group(os.path.join(out, ZARR), mode="r+")
        self._arrays: dict[str, Any] = {name: self._group[name] for name in manifest["variables"]}

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
        """Reopen a store to resume it (stale temporary chunk files are removed)."""
        manifest = read_manifest(out)
        assert manifest is not None  # prepare_output found a fastsd sweep here
        for stale in glob.glob(os.path.join(out, ZARR, "**", "*.partial"), recursive=True):
            os.remove(stale)
        return cls(out, manifest)

    def done(self) -> set[int]:
        """Indices of the blocks fully stored."""
        names = os.listdir(os.path.join(self.out, BLOCKS))
        return {int(n) for n in names if n.isdigit()}

    def write(self, block: Block, values: Mapping[str, ArrayLike]) -> None:
        """Store one block (one chunk per variable), then mark it done."""
        where = (slice(block.b0, block.b1), slice(block.l0, block.l1))
        for name, arr in self._arrays.items():
            arr[where] = values[name]
        marker = os.path.join(self.out, BLOCKS, f"{block.index:06d}")
        with open(marker, "w"):
            pass

    def finish(self) -> None:
        """Record that every block is stored."""
        self.manifest["complete"] = True
        self.manifest["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        write_json(os.path.join(self.out, MANIFEST), self.manifest)
