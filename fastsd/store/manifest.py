"""The manifest of a sweep output, and what may be created or removed there.

``OUT/manifest.json`` names a directory as a fastsd sweep output: the resolved
config and its hash, versions, host, block plan, state ("creating" ->
"ready") and "complete". :func:`prepare_output` checks what ``OUT`` holds
against ``--resume`` / ``--overwrite`` before anything is written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._version import __version__
from ..exceptions import ConfigError

__all__ = [
    "BLOCKS",
    "MANIFEST",
    "OWNED",
    "ZARR",
    "check_output_file",
    "damaged_metadata",
    "expand_path",
    "inside",
    "load_manifest",
    "prepare_output",
    "read_manifest",
    "remove_entries",
    "versions",
    "write_json",
]

MANIFEST = "manifest.json"
ZARR = "results.zarr"
BLOCKS = "blocks"
#: What fastsd writes into an output directory (all that --overwrite may remove).
OWNED = (MANIFEST, ZARR, BLOCKS, "results.csv", "results.parquet", "figures")


_UNSET = re.compile(r"\$(\w+|\{[^}]*\})")


def expand_path(path: str | os.PathLike[str], name: str = "path") -> str:
    """``path`` with ``~`` and environment variables (``$VAR``, ``${VAR}``) expanded.

    Raises
    ------
    ValueError
        Naming ``name``, when a variable is not set or ``~user`` is unknown (the
        path would otherwise name a directory literally called ``$VAR`` or ``~``).
    """
    text = os.fspath(path)
    expanded = os.path.expandvars(os.path.expanduser(text))
    unset = _UNSET.search(expanded)
    if unset:
        raise ValueError(
            f"{name} = {text!r}: the environment variable {unset.group(1).strip('{}')} is not set"
        )
    if expanded.startswith("~"):
        raise ValueError(f"{name} = {text!r}: cannot expand {expanded.split(os.sep)[0]!r}")
    return expanded


def check_output_file(path: str | os.PathLike[str], name: str) -> str:
    """A file about to be written, checked before the work that produces it.

    Returns the expanded path; raises ValueError naming ``name`` when it is a
    directory or its directory does not exist or is not writable.
    """
    path = expand_path(path, name)
    if os.path.isdir(path):
        raise ValueError(f"{name} {path} is a directory; give a file name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{name} {path}: the directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {path}: the directory {parent} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{name} {path} exists and is not writable")
    return path


def damaged_metadata(out: str) -> str | None:
    """The first Zarr metadata file (``zarr.json``) of ``out``'s store that is not
    valid UTF-8 JSON, or None: names the file when a store cannot be opened."""
    root = os.path.join(out, ZARR)
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if "zarr.json" in files:
            path = os.path.join(folder, "zarr.json")
            try:
                with open(path, encoding="utf-8") as f:
                    json.load(f)
            except (OSError, ValueError):
                return path
    return None


def versions() -> dict[str, str]:
    import numba

    out = {"fastsd": __version__, "numpy": np.__version__, "numba": numba.__version__}
    try:
        import zarr

        out["zarr"] = zarr.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def write_json(path: str, data: Any, indent: int = 1) -> None:
    """Write ``data`` as JSON to ``path`` whole: into ``path.tmp``, synced, then renamed."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=indent)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_manifest(out: str) -> dict[str, Any]:
    """The manifest of the sweep output ``out``.

    Raises
    ------
    ValueError
        Naming the file, when ``out`` has no manifest, or one that is not valid
        JSON or not a fastsd sweep manifest.
    """
    path = os.path.join(out, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{out} is not a fastsd sweep output (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable JSON manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("fastsd_sweep") != 1:
        raise ValueError(f"{path} is not a fastsd sweep manifest")
    return manifest


def read_manifest(out: str) -> dict[str, Any] | None:
    """The manifest of ``out`` if it is a fastsd sweep output, else None."""
    try:
        return load_manifest(out)
    except ValueError:
        return None


def remove_entries(out: str, names: Sequence[str] = OWNED) -> None:
    """Remove the entries ``names`` (files or folders) of ``out`` that exist, nothing else."""
    for name in names:
        path = os.path.join(out, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)


def inside(child: str, parent: str) -> bool:
    """Whether ``child`` is ``parent`` or lies under it (links resolved)."""
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
    if config_path is not None and inside(config_path, real):
        raise ConfigError(
            f"refusing to overwrite {out}: it contains the config file "
            f"{config_path}; choose another run.output"
        )
    if inside(os.getcwd(), real):
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


def _check_replaceable(out: str) -> None:
    """The new run of ``out`` can be built beside it and swapped in."""
    real = os.path.realpath(out)
    parent = os.path.dirname(real)
    if os.path.ismount(real):
        raise ConfigError(
            f"cannot overwrite {out}: it is a mount point, and the new run is built beside "
            "it and swapped in; choose a folder inside it as run.output"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot overwrite {out}: the new run is built beside it and swapped in, "
            f"but {parent} is not writable"
        )


def prepare_output(
    out: str,
    *,
    resume: bool,
    overwrite: bool,
    config_hash: str,
    config_path: str | None = None,
    diff: Callable[[dict[str, Any]], Sequence[str]] = lambda old: (),
) -> str:
    """Check what ``out`` holds against the flags; returns "new", "resume" or "replace".

    Nothing is created or deleted here. "replace" (``overwrite`` of a checked fastsd
    output): the new run is built beside it and swapped in when complete
    (:mod:`fastsd.store.staging`). ``diff(old_config)`` names the keys in which a
    stored run's config differs (for the refusal to resume).
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
        _check_replaceable(out)
        return "replace"
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
        keys = diff(manifest.get("config", {}))
        raise ConfigError(
            f"cannot resume {out}: its config differs in "
            f"{', '.join(keys) or 'versions of the schema'}; use --overwrite "
            "or another run.output"
        )
    return "resume"
