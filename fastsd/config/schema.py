r"""The sweep config (TOML) schema: ``fastsd sweep CONFIG.toml``.

:func:`load_config` reads a file and returns a :class:`SweepConfig`: the fully
*resolved* config (every default filled in, lambdas as numbers, paths
absolute, the data file's SHA-256) and its hash. Every key at every level is
checked: an unknown key is an error naming it and the closest valid key.

Sections and keys (defaults in brackets; examples in docs/user_guide/scale.md)::

    [problems]   source = "synthetic" | "dataset" | "npz" | "csv"
                 synthetic: family (a name in FAMILIES), params = {...}, count [1]
                            (params: a list for a scalar parameter is a grid axis;
                            a list or an array parameter may be written as a range
                            {start, stop, num[, log]} or {start, stop[, step]};
                            count draws per grid point, draw i with seed + i)
                 dataset:   name, seeds [[0]]
                 npz:       path
                 csv:       path, delimiter [","], skiprows [0]
    [split]      val_fraction [0.2], test_fraction [0.2], seed [0]
                 (rows of csv / npz-with-y data; dataset splits use problems.seeds)
    [preprocess] standardize [true], intercept [true]
                 (training statistics only; intercept = centre X and y)
    [grid]       lams (a list, or {start, stop, num} log-spaced), xis (fixed only),
                 max_steps [2]
    [run]        selection ["oracle"] | "validation" | "fixed", backend ["numba"],
                 threads, output ["sweep-out"], block (max problems per block; by
                 default as many as run.memory_limit allows),
                 memory_limit ["1GiB"], max_output_gb [10.0]

``run.output`` and ``run.threads`` say where and how fast, not what: they are
left out of the hash, so a sweep can be resumed at another path or thread count.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard, cast

import numpy as np
from numpy.typing import NDArray

from .. import problems as families
from .._config import BACKENDS
from .._validation import check_bytes, check_lams
from ..datasets import dataset_info
from ..engine.grids import constant_schedules
from ..exceptions import ConfigError
from ..store.integrity import file_digest
from ..store.manifest import expand_path

__all__ = [
    "ConfigError",
    "SweepConfig",
    "load_config",
    "parse_bytes",
    "diff_configs",
    "SOURCES",
    "SELECTIONS",
    "FAMILIES",
]

SOURCES = ("synthetic", "dataset", "npz", "csv")
SELECTIONS = ("oracle", "validation", "fixed")
#: The fastsd.problems functions a synthetic source may name (random_design_family:
#: the risk is the population risk, with each problem's Sigma).
FAMILIES = (
    "theorem1_family",
    "repeated_singular_values",
    "spread_theta",
    "singular_gap_family",
    "random_design_family",
)

SECTIONS = ("problems", "split", "preprocess", "grid", "run")
PROBLEM_KEYS = {
    "synthetic": ("source", "family", "params", "count"),
    "dataset": ("source", "name", "seeds"),
    "npz": ("source", "path"),
    "csv": ("source", "path", "delimiter", "skiprows"),
}
SPLIT_KEYS = ("val_fraction", "test_fraction", "seed")
PREPROCESS_KEYS = ("standardize", "intercept")
GRID_KEYS = ("lams", "xis", "max_steps")
RUN_KEYS = ("selection", "backend", "threads", "output", "block", "memory_limit", "max_output_gb")
#: run keys that do not change the results (not hashed).
UNHASHED_RUN_KEYS = ("output", "threads")


def _check_keys(table: object, allowed: Sequence[str], where: str) -> None:
    """Unknown keys are errors naming the closest valid key."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table ({{...}}), got {table!r}")
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(allowed)}"
            what = f"key {where}.{key}" if where else f"section [{key}]"
            raise ConfigError(f"unknown {what}{hint}")


def _toml_load(path: str) -> dict[str, Any]:
    import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, not a TOML file: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the config as UTF-8"
        ) from None
    except PermissionError:
        raise ConfigError(f"config file not readable (permission denied): {path}") from None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: object, name: str, minimum: int, maximum: int | None = None) -> int:
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{name} must be an integer {bound}, got {value!r}")
    return value


def _bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def parse_bytes(value: object, name: str = "run.memory_limit") -> int:
    """Bytes from an integer or a string with a unit ("512MiB", "2GB", "1.5GiB")."""
    try:
        return check_bytes(value, name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _lams(spec: object) -> NDArray[np.float64]:
    if isinstance(spec, dict):
        _check_keys(spec, ("start", "stop", "num"), "grid.lams")
        if not {"start", "stop", "num"} <= set(spec):
            raise ConfigError("grid.lams must be a list or {start, stop, num} (log-spaced)")
        start, stop, num = spec["start"], spec["stop"], spec["num"]
        if (
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, stop))
            or not 0 < start <= stop
            or not np.isfinite(stop)
        ):
            raise ConfigError("grid.lams needs finite numbers 0 < start <= stop")
        _int(num, "grid.lams.num", 1, 10**7)
        return np.logspace(np.log10(start), np.log10(stop), num)
    if not isinstance(spec, list):
        raise ConfigError("grid.lams must be a list of numbers or {start, stop, num}")
    try:
        lams, _ = check_lams(spec, "grid.lams")
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    return lams


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _range(spec: dict[str, Any], name: str) -> list[Any]:
    """The values of a range: {start, stop, num[, log]} (num points from start to stop,
    log-spaced with log = true) or {start, stop[, step]} (start, start + step, ... <= stop,
    step 1 by default; integers if all three are)."""
    _check_keys(spec, ("start", "stop", "num", "log", "step"), name)
    if not all(_number(spec.get(k)) and np.isfinite(spec[k]) for k in ("start", "stop")):
        raise ConfigError(f"{name} needs finite numbers start and stop, got {spec!r}")
    start, stop = cast(float, spec["start"]), cast(float, spec["stop"])
    if "num" in spec and "step" in spec:
        raise ConfigError(
            f"{name} must be {{start, stop, num}} (num values, add log = true for log "
            "spacing) or {start, stop, step}, not both"
        )
    if "num" in spec:
        num = _int(spec["num"], f"{name}.num", 1, 10**7)
        if _bool(spec.get("log", False), f"{name}.log"):
            if not (start > 0 and stop > 0):
                raise ConfigError(f"{name} with log = true needs start and stop > 0")
            return [float(v) for v in np.geomspace(start, stop, num)]
        return [float(v) for v in np.linspace(start, stop, num)]
    if "log" in spec:
        raise ConfigError(f"{name}: log goes with num, not with step")
    step = spec.get("step", 1)
    if not _number(step) or not step > 0 or not np.isfinite(step):
        raise ConfigError(f"{name}.step must be a positive number, got {step!r}")
    count = int(np.floor((stop - start) / step + 1e-9)) + 1
    if count < 1 or count > 10**7:
        raise ConfigError(f"{name} must give 1 to 10**7 values, got {max(count, 0)}")
    if all(_is_int(v) for v in (start, stop, step)):
        return [start + i * step for i in range(count)]
    return [float(start + i * step) for i in range(count)]


def _family_params(family: object, params: dict[str, Any]) -> dict[str, Any]:
    if family not in FAMILIES:
        close = difflib.get_close_matches(str(family), FAMILIES, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"problems.family must be one of {FAMILIES}, got {family!r}{hint}")
    signature = inspect.signature(getattr(families, family))
    _check_keys(params, tuple(signature.parameters), "problems.params")
    params = {
        k: _range(v, f"problems.params.{k}") if isinstance(v, dict) else v
        for k, v in params.items()
    }
    seed = params.get("seed", 0)
    if not _is_int(seed) or seed < 0:
        raise ConfigError(
            f"problems.params.seed must be an integer >= 0 (draw i of problems.count "
            f"uses seed + i), got {seed!r}"
        )
    try:
        bound = signature.bind(**params)
    except TypeError as exc:
        raise ConfigError(f"problems.params for {family}: {exc}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def _problems(raw: dict[str, Any], base: str) -> dict[str, Any]:
    source = raw.get("source")
    if source not in SOURCES:
        raise ConfigError(f"problems.source must be one of {SOURCES}, got {source!r}")
    _check_keys(raw, PROBLEM_KEYS[source], "problems")
    out: dict[str, Any] = {"source": source}
    if source == "synthetic":
        out["family"] = raw.get("family")
        out["params"] = _family_params(out["family"], raw.get("params", {}))
        out["count"] = _int(raw.get("count", 1), "problems.count", 1, 10**7)
    elif source == "dataset":
        name: Any = raw.get("name")  # checked by dataset_info
        try:
            dataset_info(name)
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"problems.name: {exc}") from None
        seeds = raw.get("seeds", [0])
        if (
            not isinstance(seeds, list)
            or not seeds
            or not all(_is_int(s) and s >= 0 for s in seeds)
        ):
            raise ConfigError(
                f"problems.seeds must be a non-empty list of integers >= 0, got {seeds!r}"
            )
        out.update(name=name, seeds=seeds)
    else:
        path = raw.get("path")
        if not isinstance(path, str) or not path:
            raise ConfigError("problems.path is required (a file name)")
        path = os.path.normpath(os.path.join(base, _expand(path, "problems.path")))
        if not os.path.isfile(path):
            raise ConfigError(f"problems.path not found: {path}")
        out.update(path=path, sha256=file_digest(path)[1])
        if source == "csv":
            delimiter = raw.get("delimiter", ",")
            if not isinstance(delimiter, str) or len(delimiter) != 1:
                raise ConfigError(f"problems.delimiter must be one character, got {delimiter!r}")
            out.update(
                delimiter=delimiter, skiprows=_int(raw.get("skiprows", 0), "problems.skiprows", 0)
            )
    return out


def _expand(path: str, name: str) -> str:
    """``~`` and environment variables expanded (see :func:`fastsd.store.manifest.expand_path`)."""
    try:
        return expand_path(path, name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _fraction(value: object, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep config.

    Attributes
    ----------
    resolved : dict
        JSON-able: sections problems, split, preprocess, grid, run with every
        default filled in (what the manifest records).
    path : str
        The config file.
    """

    resolved: dict[str, Any]
    path: str

    @property
    def hash(self) -> str:
        """SHA-256 of the resolved config without the unhashed run keys."""
        return config_hash(self.resolved)

    @property
    def lams(self) -> NDArray[np.float64]:
        return np.asarray(self.resolved["grid"]["lams"], dtype=float)

    @property
    def xis(self) -> NDArray[np.float64] | None:
        xis = self.resolved["grid"]["xis"]
        return None if xis is None else np.asarray(xis, dtype=float)

    @property
    def max_steps(self) -> int:
        return cast(int, self.resolved["grid"]["max_steps"])

    @property
    def schedules(self) -> NDArray[np.float64] | None:
        """The constant xi as schedules (G, max_steps); None for an optimal-xi sweep."""
        xis = self.xis
        return None if xis is None else constant_schedules(xis, self.max_steps)

    @property
    def run(self) -> dict[str, Any]:
        return cast("dict[str, Any]", self.resolved["run"])

    @property
    def output(self) -> str:
        return cast(str, self.resolved["run"]["output"])

    def with_output(self, output: str | os.PathLike[str]) -> SweepConfig:
        """The same config writing to ``output`` (an absolute path)."""
        resolved = json.loads(json.dumps(self.resolved))
        resolved["run"]["output"] = os.path.abspath(output)
        return SweepConfig(resolved, self.path)


def config_hash(resolved: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of what determines the results."""
    hashed = json.loads(json.dumps(resolved))
    for key in UNHASHED_RUN_KEYS:
        hashed["run"].pop(key, None)
    text = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def diff_configs(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted names of the hashed keys whose values differ between two resolved configs."""
    a, b = _flatten(old), _flatten(new)
    skip = {f"run.{k}" for k in UNHASHED_RUN_KEYS}
    return sorted(k for k in set(a) | set(b) if k not in skip and a.get(k) != b.get(k))


def load_config(path: str | os.PathLike[str]) -> SweepConfig:
    """Read and validate a sweep config; returns a :class:`SweepConfig`.

    Raises
    ------
    ConfigError
        With a one-line message naming the key and the fix.
    """
    path = os.path.abspath(path)
    raw = _toml_load(path)
    _check_keys(raw, SECTIONS, "")
    base = os.path.dirname(path)
    for section in SECTIONS:
        if section in raw and not isinstance(raw[section], dict):
            raise ConfigError(f"[{section}] must be a table")
    problems = _problems(dict(raw.get("problems", {})), base)

    split = dict(raw.get("split", {}))
    _check_keys(split, SPLIT_KEYS, "split")
    split = {
        "val_fraction": _fraction(split.get("val_fraction", 0.2), "split.val_fraction"),
        "test_fraction": _fraction(split.get("test_fraction", 0.2), "split.test_fraction"),
        "seed": _int(split.get("seed", 0), "split.seed", 0),
    }
    preprocess = dict(raw.get("preprocess", {}))
    _check_keys(preprocess, PREPROCESS_KEYS, "preprocess")
    preprocess = {k: _bool(preprocess.get(k, True), f"preprocess.{k}") for k in PREPROCESS_KEYS}

    grid = dict(raw.get("grid", {}))
    _check_keys(grid, GRID_KEYS, "grid")
    if "lams" not in grid:
        raise ConfigError("grid.lams is required")
    lams = _lams(grid["lams"])
    K = _int(grid.get("max_steps", 2), "grid.max_steps", 0)

    run = dict(raw.get("run", {}))
    _check_keys(run, RUN_KEYS, "run")
    selection = run.get("selection", "oracle")
    if selection not in SELECTIONS:
        raise ConfigError(f"run.selection must be one of {SELECTIONS}, got {selection!r}")
    xis = None
    if selection == "fixed":
        if "xis" not in grid:
            raise ConfigError("grid.xis is required when run.selection = 'fixed'")
        try:
            xis = np.asarray(grid["xis"], dtype=float)
        except (TypeError, ValueError):
            raise ConfigError("grid.xis must be a non-empty list of finite numbers") from None
        if xis.ndim != 1 or xis.size == 0 or not np.all(np.isfinite(xis)):
            raise ConfigError("grid.xis must be a non-empty list of finite numbers")
    elif "xis" in grid:
        raise ConfigError(
            f"grid.xis is only used with run.selection = 'fixed' "
            f"(selection is {selection!r}); remove it"
        )
    if selection == "oracle" and problems["source"] in ("dataset", "csv"):
        raise ConfigError(
            f"run.selection = 'oracle' needs theta_star, which a "
            f"{problems['source']} source has not; use 'validation'"
        )
    backend = run.get("backend", "numba")
    if backend not in BACKENDS:
        raise ConfigError(f"run.backend must be one of {BACKENDS}, got {backend!r}")
    if (
        problems.get("family") == "random_design_family"
        and selection == "oracle"
        and backend != "numpy"
    ):
        raise ConfigError(
            "random_design_family with run.selection = 'oracle' minimizes the population "
            "risk, which runs on the NumPy reference only; set run.backend = 'numpy'"
        )
    threads = run.get("threads")
    if threads is not None:
        _int(threads, "run.threads", 1)
    max_output_gb = run.get("max_output_gb", 10.0)
    if (
        not isinstance(max_output_gb, (int, float))
        or isinstance(max_output_gb, bool)
        or not max_output_gb > 0
    ):
        raise ConfigError(f"run.max_output_gb must be a positive number, got {max_output_gb!r}")
    output = run.get("output", "sweep-out")
    if not isinstance(output, str) or not output:
        raise ConfigError(f"run.output must be a directory name, got {output!r}")
    resolved = {
        "problems": problems,
        "split": split,
        "preprocess": preprocess,
        "grid": {
            "lams": lams.tolist(),
            "xis": None if xis is None else xis.tolist(),
            "max_steps": K,
        },
        "run": {
            "selection": selection,
            "backend": backend,
            "threads": threads,
            "output": os.path.normpath(os.path.join(base, _expand(output, "run.output"))),
            "block": None if run.get("block") is None else _int(run["block"], "run.block", 1),
            "memory_limit": parse_bytes(run.get("memory_limit", "1GiB")),
            "max_output_gb": float(max_output_gb),
        },
    }
    return SweepConfig(resolved, path)
