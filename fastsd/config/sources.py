r"""Problem sources of a sweep config: synthetic families, bundled datasets, npz, csv.

:func:`load_problems` turns the ``[problems]``, ``[split]`` and ``[preprocess]``
sections of a resolved config into a :class:`ProblemSet`: the arrays a
:class:`~fastsd.blocks.tasks.SweepTask` needs, plus per-problem metadata that become
coordinates along ``problem`` in the results (family parameters, rank, noise
variance, seed, split sizes).

Data (csv, dataset, npz with ``y``) is split into train / validation / test rows
(``[split]``; datasets use each of ``problems.seeds`` as a split seed). Then
``[preprocess]`` applies, with *training* statistics only: ``intercept``
centres X and y (ridge on centred data = ridge with an unpenalized intercept)
and ``standardize`` also scales each feature to unit variance. Validation rows
choose xi (and are reported as ``val_mse``); test rows are used for nothing
but ``test_mse``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .. import problems as families
from ..datasets import Standardization, load_dataset, split_dataset
from ..exceptions import ConfigError

if TYPE_CHECKING:
    from ..datasets import Split

__all__ = ["ProblemSet", "load_problems"]


@dataclass
class ProblemSet:
    """Arrays and per-problem metadata of a sweep.

    Attributes
    ----------
    arrays : dict
        ``X`` (B, n, d) and either ``theta_star`` (B, d), ``noise_var`` (B,)
        [, ``cov`` (B, d, d): random design, population risk] or ``y`` (B, n),
        ``X_val``, ``y_val``, ``X_test``, ``y_test``.
    coords : dict of str -> ndarray of shape (B,)
        Numeric per-problem metadata.
    attrs : dict
        Metadata shared by all problems (JSON-able).
    """

    arrays: dict[str, NDArray[Any]]
    coords: dict[str, NDArray[Any]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.arrays.items())
        return f"ProblemSet({shapes}, coords={sorted(self.coords)})"

    @property
    def n_problems(self) -> int:
        return int(self.arrays["X"].shape[0])

    @property
    def oracle(self) -> bool:
        return "theta_star" in self.arrays


def _numeric(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _synthetic(problems: dict[str, Any]) -> ProblemSet:
    family, params = problems["family"], problems["params"]
    try:
        batch = families.family_grid(family, count=problems.get("count", 1), **params)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        key = message.split(" ", 1)[0]
        if key in params:  # the family's message starts with the argument it names
            raise ConfigError(f"problems.params.{message}") from None
        raise ConfigError(f"problems.params for {family}: {message}") from None
    B = batch.batch_size
    coords: dict[str, NDArray[Any]] = {"noise_var": np.asarray(batch.noise_var, dtype=float)}
    tol = batch.singular_values.max(axis=-1, keepdims=True) * 1e-12
    coords["rank"] = np.count_nonzero(batch.singular_values > tol, axis=-1).astype(np.int64)
    for name, col in batch.labels.items():
        col = np.asarray(col)
        if col.dtype.kind in "iuf" and name not in coords:
            coords[name] = col.astype(np.int64 if col.dtype.kind in "iu" else float)
    for name, value in params.items():
        if _numeric(value) and name not in coords:
            coords[name] = np.full(B, value)
    attrs = {"family": family, "params": {k: v for k, v in params.items() if not _numeric(v)}}
    arrays = dict(
        X=np.asarray(batch.X),
        theta_star=np.asarray(batch.theta_star),
        noise_var=np.asarray(batch.noise_var, dtype=float),
    )
    if batch.cov is not None:  # random design: the population risk
        arrays["cov"] = np.asarray(batch.cov)
        attrs["risk"] = "population"
    return ProblemSet(arrays, coords, attrs)


def _preprocess(
    parts: Sequence[tuple[NDArray[np.float64], NDArray[np.float64]]],
    preprocess: dict[str, Any],
) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Centre (intercept) and scale (standardize) every part with the train part's stats."""
    if not (preprocess["intercept"] or preprocess["standardize"]):
        return list(parts)
    stats = Standardization.fit(*parts[0], scale=preprocess["standardize"])
    return [((Xp - stats.x_mean) / stats.x_scale, yp - stats.y_mean) for Xp, yp in parts]


def _split(
    X: NDArray[np.float64],
    y: NDArray[np.float64],
    split: dict[str, Any],
    seed: int,
) -> Split:
    try:
        sp = split_dataset(
            X,
            y,
            val_fraction=split["val_fraction"],
            test_fraction=split["test_fraction"],
            seed=seed,
        )
    except ValueError as exc:
        raise ConfigError(f"[split]: {exc}") from None
    if sp.X_val.shape[0] == 0 or sp.X_test.shape[0] == 0:
        raise ConfigError(
            "[split]: val_fraction and test_fraction must both give at least "
            "one row (validation chooses xi, test scores it)"
        )
    return sp


def _data_problems(
    pairs: Sequence[tuple[NDArray[np.float64], NDArray[np.float64]]],
    split: dict[str, Any],
    preprocess: dict[str, Any],
    seeds: Sequence[int],
) -> tuple[dict[str, NDArray[Any]], dict[str, NDArray[Any]]]:
    """Split and preprocess B (X, y) designs of one shape into the validation arrays."""
    parts: list[list[tuple[NDArray[np.float64], NDArray[np.float64]]]] = []
    for (X, y), seed in zip(pairs, seeds):
        sp = _split(X, y, split, seed)
        parts.append(
            _preprocess(
                [(sp.X_train, sp.y_train), (sp.X_val, sp.y_val), (sp.X_test, sp.y_test)], preprocess
            )
        )
    names = (("X", "y"), ("X_val", "y_val"), ("X_test", "y_test"))
    arrays: dict[str, NDArray[Any]] = {}
    for i, (xname, yname) in enumerate(names):
        arrays[xname] = np.stack([p[i][0] for p in parts])
        arrays[yname] = np.stack([p[i][1] for p in parts])
    B = len(parts)
    coords = {
        "split_seed": np.asarray(seeds, dtype=np.int64),
        "n_train": np.full(B, arrays["X"].shape[1], dtype=np.int64),
        "n_val": np.full(B, arrays["X_val"].shape[1], dtype=np.int64),
        "n_test": np.full(B, arrays["X_test"].shape[1], dtype=np.int64),
    }
    return arrays, coords


def _mapped_member(path: str, archive: zipfile.ZipFile, name: str) -> NDArray[Any] | None:
    """Member ``name`` of an .npz archive as a read-only memmap of the file, or None where
    the format does not allow it (a compressed member, an object array)."""
    info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # the member's local header: its name and extra field follow
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            return None
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little")
        start += int.from_bytes(local[28:30], "little")
        f.seek(start)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            return None
        offset = f.tell()
    if dtype.hasobject or 0 in shape:
        return None
    mapped: NDArray[Any] = np.memmap(
        path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"
    )
    return mapped


def _load_npz(path: str) -> dict[str, NDArray[Any]]:
    """The arrays of an .npz file: members stored uncompressed (``np.savez``) are
    memory-mapped (read where a block needs them), the others read into memory."""
    arrays: dict[str, NDArray[Any]] = {}
    with zipfile.ZipFile(path) as archive, np.load(path) as data:
        for key in data.files:
            mapped = _mapped_member(path, archive, f"{key}.npy")
            arrays[key] = data[key] if mapped is None else mapped
    return arrays


#: The arrays an npz source may hold, and their axes (after the batch axis is added).
NPZ_AXES = {
    "X": ("problem", "row", "column"),
    "theta_star": ("problem", "column"),
    "noise_var": ("problem",),
    "y": ("problem", "row"),
    "X_val": ("problem", "row", "column"),
    "y_val": ("problem", "row"),
    "X_test": ("problem", "row", "column"),
    "y_test": ("problem", "row"),
}


def _check_finite(path: str, name: str, arr: NDArray[Any]) -> None:
    """No NaN/inf in ``arr``; the error names the first one by global problem index.

    Read a few problems at a time (``arr`` may be memory-mapped).
    """
    if arr.ndim == 0:
        if not np.isfinite(arr):
            raise ConfigError(f"{path}: {name} is {arr.item()!r}; it must be finite")
        return
    step = max(1, (64 << 20) // max(1, arr[:1].nbytes))
    for b0 in range(0, arr.shape[0], step):
        bad = np.argwhere(~np.isfinite(np.asarray(arr[b0 : b0 + step])))
        if bad.size:
            first = [int(i) for i in bad[0]]
            first[0] += b0
            at = ", ".join(f"{axis} {i}" for axis, i in zip(NPZ_AXES[name], first))
            raise ConfigError(
                f"{path}: {name} contains NaN or infinite values (first at {at}); "
                "fix the data before the sweep"
            )


def _check_npz(path: str, arrays: dict[str, NDArray[Any]]) -> None:
    """Dtypes, shapes and finiteness of an npz source (batch axis added), before any block."""
    for name, arr in arrays.items():
        if arr.dtype.kind not in "biuf":
            raise ConfigError(f"{path}: {name} must hold real numbers, got dtype {arr.dtype}")
    X = arrays["X"]
    if X.ndim != 3 or min(X.shape) == 0:
        raise ConfigError(f"{path}: X must have shape (B, n, d) or (n, d), got {X.shape}")
    B, n, d = X.shape
    want: dict[str, tuple[int | str, ...]] = {"theta_star": (B, d), "y": (B, n)}
    for part in ("val", "test"):
        if f"X_{part}" in arrays:
            rows = arrays[f"X_{part}"].shape[1] if arrays[f"X_{part}"].ndim == 3 else "n"
            want[f"X_{part}"] = (B, rows, d)
            want[f"y_{part}"] = (B, rows)
    for name, shape in want.items():
        if name in arrays and (arrays[name].shape != shape or 0 in shape):
            shown = "(" + ", ".join(f"n_{name[2:]}" if v == "n" else str(v) for v in shape) + ")"
            raise ConfigError(
                f"{path}: {name} must have shape {shown} to match X {X.shape}, "
                f"got {arrays[name].shape}"
            )
    var = arrays.get("noise_var")
    if var is not None:
        if var.shape not in ((), (B,)):
            raise ConfigError(f"{path}: noise_var must be a scalar or have shape ({B},)")
        if np.any(var < 0):
            raise ConfigError(f"{path}: noise_var must be >= 0 (a variance)")
    for name, arr in arrays.items():
        _check_finite(path, name, arr)


def _npz(problems: dict[str, Any], split: dict[str, Any], preprocess: dict[str, Any]) -> ProblemSet:
    path = problems["path"]
    try:
        arrays = _load_npz(path)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path}: not a readable .npz file ({exc})") from None
    known = tuple(NPZ_AXES)
    unknown = sorted(set(arrays) - set(known))
    if unknown:
        raise ConfigError(f"{path}: unknown arrays {unknown}; expected some of {known}")
    if "X" not in arrays:
        raise ConfigError(f"{path}: needs an array named X")
    if arrays["X"].ndim == 2:  # one problem: add the batch axis
        arrays = {k: (v if k == "noise_var" else v[None]) for k, v in arrays.items()}
    _check_npz(path, arrays)
    X = arrays["X"]
    B = X.shape[0]
    if "theta_star" in arrays:
        var = np.array(np.broadcast_to(np.asarray(arrays.get("noise_var", 1.0), float), (B,)))
        out = dict(X=X, theta_star=arrays["theta_star"], noise_var=var)
        return ProblemSet(out, {"noise_var": var}, {})
    if "y" not in arrays:
        raise ConfigError(f"{path}: needs theta_star (oracle) or y (validation)")
    if "X_val" in arrays:
        if "X_test" not in arrays or "y_test" not in arrays or "y_val" not in arrays:
            raise ConfigError(
                f"{path}: with X_val also give y_val, X_test and y_test (test "
                "rows score the chosen xi honestly), or give only X and y and "
                "let [split] split the rows"
            )
        return ProblemSet({k: arrays[k] for k in known[3:]} | {"X": X}, {}, {})
    seed = split["seed"]
    out, coords = _data_problems(list(zip(X, arrays["y"])), split, preprocess, [seed] * B)
    return ProblemSet(out, coords, {})


def _csv(problems: dict[str, Any], split: dict[str, Any], preprocess: dict[str, Any]) -> ProblemSet:
    path = problems["path"]
    try:
        table = np.loadtxt(
            path, delimiter=problems["delimiter"], ndmin=2, skiprows=problems["skiprows"]
        )
    except ValueError as exc:
        raise ConfigError(
            f"{path}: could not parse as numeric CSV ({exc}); "
            "set problems.skiprows = 1 for a header"
        ) from None
    if table.shape[1] < 2 or not np.all(np.isfinite(table)):
        raise ConfigError(f"{path}: needs >= 2 finite numeric columns (features, then target)")
    arrays, coords = _data_problems(
        [(table[:, :-1], table[:, -1])], split, preprocess, [split["seed"]]
    )
    return ProblemSet(arrays, coords, {})


def _dataset(
    problems: dict[str, Any], split: dict[str, Any], preprocess: dict[str, Any]
) -> ProblemSet:
    X, y, names = load_dataset(problems["name"])
    seeds = problems["seeds"]
    arrays, coords = _data_problems([(X, y)] * len(seeds), split, preprocess, seeds)
    return ProblemSet(arrays, coords, {"dataset": problems["name"], "features": list(names)})


def load_problems(resolved: dict[str, Any]) -> ProblemSet:
    """The :class:`ProblemSet` of a resolved config (see :mod:`fastsd.config.schema`)."""
    problems = resolved["problems"]
    source = problems["source"]
    if source == "synthetic":
        out = _synthetic(problems)
    elif source == "dataset":
        out = _dataset(problems, resolved["split"], resolved["preprocess"])
    elif source == "npz":
        out = _npz(problems, resolved["split"], resolved["preprocess"])
    else:
        out = _csv(problems, resolved["split"], resolved["preprocess"])
    selection = resolved["run"]["selection"]
    if selection == "oracle" and not out.oracle:
        raise ConfigError(
            "run.selection = 'oracle' needs theta_star (synthetic or npz "
            "problems); use selection = 'validation' for data"
        )
    if selection == "validation" and out.oracle:
        raise ConfigError(
            "run.selection = 'validation' needs data (y); these problems have "
            "theta_star: use selection = 'oracle'"
        )
    out.attrs["source"] = source
    return out
