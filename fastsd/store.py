r"""The sweep store: ``manifest.json`` + ``results.zarr``, one Zarr chunk per block.

Layout of an output directory ``OUT``::

    OUT/manifest.json     resolved config, its hash, versions, host, block plan,
                          state ("creating" -> "ready") and "complete"
    OUT/results.zarr/     Zarr v3 group, variables chunked exactly by block
    OUT/blocks/NNNNNN     empty marker: block NNNNNN is fully stored

Integrity rules:

* Each Zarr chunk is written atomically (zarr's local store writes a temporary
  file and renames it); a block's marker is created only after all its
  chunks, so a block is either done or recomputed whole -- never lost,
  duplicated or half-read. SIGKILL at any moment is safe to resume.
* A run resumes only into a store whose config hash matches; otherwise the
  refusal names the differing keys.
* ``overwrite`` removes only what fastsd wrote (the entries above) in a
  directory whose manifest says it is a fastsd sweep, and refuses ``/``, the
  home directory, a directory containing the config file or the working
  directory, or one holding anything else.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import platform
import shutil
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from .config_schema import ConfigError, diff_configs

if TYPE_CHECKING:
    from .results import Coordinate, Variable
    from .runner import Block

__all__ = ["SweepStore", "prepare_output"]

MANIFEST = "manifest.json"
ZARR = "results.zarr"
BLOCKS = "blocks"
#: What fastsd writes into an output directory (all that --overwrite may remove).
OWNED = (MANIFEST, ZARR, BLOCKS, "results.csv", "results.parquet", "figures")


def _versions() -> dict[str, str]:
    import numba

    from . import __version__

    out = {"fastsd": __version__, "numpy": np.__version__, "numba": numba.__version__}
    try:
        import zarr

        out["zarr"] = zarr.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def _write_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifest(out: str) -> dict[str, Any] | None:
    """The manifest of ``out`` if it is a fastsd sweep output, else None."""
    try:
        with open(os.path.join(out, MANIFEST)) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("fastsd_sweep") == 1 else None


def _inside(child: str, parent: str) -> bool:
    child, parent = os.path.realpath(child), os.path.realpath(parent)
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def _check_deletable(out: str, config_path: str | None) -> None:
    """Refuse to overwrite anything but a plain fastsd output directory."""
    real = os.path.realpath(out)
    forbidden = {
        os.path.realpath(os.sep): "the root directory",
        os.path.realpath(os.path.expanduser("~")): "the home directory",
    }
    if real in forbidden:
        raise ConfigError(f"refusing to overwrite {forbidden[real]} ({out})")
    if config_path is not None and _inside(config_path, real):
        raise ConfigError(
            f"refusing to overwrite {out}: it contains the config file "
            f"{config_path}; choose another run.output"
        )
    if _inside(os.getcwd(), real):
        raise ConfigError(f"refusing to overwrite {out}: it contains the working directory")
    if read_manifest(out) is None:
        raise ConfigError(
            f"refusing to overwrite {out}: it is not a fastsd sweep output "
            f"(no fastsd manifest.json); remove it yourself or choose another "
            "run.output"
        )
    foreign = sorted(set(os.listdir(out)) - set(OWNED))
    if foreign:
        raise ConfigError(
            f"refusing to overwrite {out}: it holds files fastsd did not write "
            f"({', '.join(foreign[:5])})"
        )


def prepare_output(
    out: str,
    *,
    resume: bool,
    overwrite: bool,
    config_hash: str,
    resolved: dict[str, Any],
    config_path: str | None = None,
) -> str:
    """Check what ``out`` holds against the flags; returns "new" or "resume".

    Nothing is created or deleted here except, with ``overwrite``, the
    fastsd entries of a checked fastsd output.
    """
    if resume and overwrite:
        raise ConfigError("pass either --resume or --overwrite, not both")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"output {out} exists and is not a directory")
    if config_path is not None and os.path.realpath(out) == os.path.realpath(config_path):
        raise ConfigError(f"output {out} is the config file")
    entries = os.listdir(out) if os.path.isdir(out) else []
    if not entries or entries == [MANIFEST + ".tmp"]:  # empty, or killed writing the manifest
        return "new"
    manifest = read_manifest(out)
    if overwrite:
        _check_deletable(out, config_path)
        for name in OWNED:
            path = os.path.join(out, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
        return "new"
    if manifest is None:
        raise ConfigError(
            f"output directory {out} is not empty and is not a fastsd sweep "
            "output; choose another run.output"
        )
    if not resume:
        raise ConfigError(
            f"output directory {out} holds a fastsd sweep; pass --resume to "
            "continue it or --overwrite to start again"
        )
    if manifest.get("config_hash") != config_hash:
        keys = diff_configs(manifest.get("config", {}), resolved)
        raise ConfigError(
            f"cannot resume {out}: its config differs in "
            f"{', '.join(keys) or 'versions of the schema'}; use --overwrite "
            "or another run.output"
        )
    return "resume"


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
            versions=_versions(),
            host=platform.node(),
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        )
        _write_json(os.path.join(out, MANIFEST), manifest)
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
        _write_json(os.path.join(out, MANIFEST), manifest)
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
        _write_json(os.path.join(self.out, MANIFEST), self.manifest)
