"""Bundled UCI regression datasets used by Pareek, Du & Oh (arXiv 2407.04600).

Three public datasets from the UCI Machine Learning Repository ship inside the
package as the original files, compressed with ``gzip -9 -n`` (see
``fastsd/data/ATTRIBUTION.md`` for origin, licence and citations; all three are
licensed CC BY 4.0):

========================  =====================  =========  ==========
name (aliases)            UCI dataset            rows       features
========================  =====================  =========  ==========
``"airfoil"``             Airfoil Self-Noise     1503       5
``"air_quality"``         Air Quality            8991       8
``"appliances_energy"``   Appliances Energy      19735      25
(``"aep"``,               Prediction
``"appliances"``)
========================  =====================  =========  ==========

Every time a packaged file is read, the SHA-256 of the ``.gz`` file and of its
decompressed contents are checked against the published digests; a mismatch
raises :class:`ChecksumError`. Parsed arrays are cached in memory, and every
public function returns fresh copies, so callers can modify what they get.

Preprocessing (identical on every call, no randomness):

* **airfoil** -- 6 tab-separated numeric columns, no missing values. Inputs are
  the first five columns (frequency [Hz], angle of attack [deg], chord length
  [m], free-stream velocity [m/s], suction-side displacement thickness [m]);
  the target is the last column, the scaled sound pressure level [dB].
* **air_quality** -- semicolon-separated with a decimal comma. The 114 empty
  trailing rows and the two empty trailing columns are dropped, as are the
  ``Date`` and ``Time`` columns. ``-200`` (also written ``-200,0``) marks a
  missing value. Target: ``C6H6(GT)`` (benzene, ug/m^3, the calibration task of
  De Vito et al. 2008). Inputs: the five ``PT08.S*`` metal-oxide sensor
  responses plus ``T``, ``RH`` and ``AH``. Rows where the target or any input is
  missing are dropped (366 of the 9357 rows; the same rows miss all nine
  columns), leaving 8991. The other reference analysers (``CO(GT)``,
  ``NMHC(GT)``, ``NOx(GT)``, ``NO2(GT)``) are not used.
* **appliances_energy** -- comma-separated, quoted fields, no missing values.
  Target: ``Appliances`` (Wh per 10-minute interval). Inputs: ``lights``,
  ``T1``..``T9``, ``RH_1``..``RH_9``, ``T_out``, ``Press_mm_hg``, ``RH_out``,
  ``Windspeed``, ``Visibility``, ``Tdewpoint`` (25 columns, in file order). The
  timestamp ``date`` and the two random-noise columns ``rv1``/``rv2`` (which are
  identical to each other in the file) are excluded.

Features are returned raw (original units); :func:`standardize` and
:func:`load_split` standardize them with training-set statistics only.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import numbers
import types
from collections.abc import Callable, Sequence
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import as_float_array
from .exceptions import ChecksumError

__all__ = [
    "DATASETS",
    "ChecksumError",
    "Split",
    "Standardization",
    "dataset_info",
    "load_dataset",
    "load_split",
    "split_dataset",
    "standardize",
]


# --------------------------------------------------------------------------
# Metadata. Digests are those listed in fastsd/data/ATTRIBUTION.md; the
# uncompressed ones match the digests published for the official UCI files.
# --------------------------------------------------------------------------

_LICENCE = "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)"

_AIRFOIL_COLUMNS = (
    "frequency",
    "angle_of_attack",
    "chord_length",
    "free_stream_velocity",
    "suction_side_displacement_thickness",
    "scaled_sound_pressure_level",
)

_AQ_HEADER = (
    "Date",
    "Time",
    "CO(GT)",
    "PT08.S1(CO)",
    "NMHC(GT)",
    "C6H6(GT)",
    "PT08.S2(NMHC)",
    "NOx(GT)",
    "PT08.S3(NOx)",
    "NO2(GT)",
    "PT08.S4(NO2)",
    "PT08.S5(O3)",
    "T",
    "RH",
    "AH",
    "",
    "",
)
_AQ_TARGET = "C6H6(GT)"
_AQ_INPUTS = (
    "PT08.S1(CO)",
    "PT08.S2(NMHC)",
    "PT08.S3(NOx)",
    "PT08.S4(NO2)",
    "PT08.S5(O3)",
    "T",
    "RH",
    "AH",
)
_AQ_MISSING = -200.0
_AQ_DATA_ROWS = 9357
_AQ_EMPTY_ROWS = 114

_AEP_HEADER = (
    "date",
    "Appliances",
    "lights",
    "T1",
    "RH_1",
    "T2",
    "RH_2",
    "T3",
    "RH_3",
    "T4",
    "RH_4",
    "T5",
    "RH_5",
    "T6",
    "RH_6",
    "T7",
    "RH_7",
    "T8",
    "RH_8",
    "T9",
    "RH_9",
    "T_out",
    "Press_mm_hg",
    "RH_out",
    "Windspeed",
    "Visibility",
    "Tdewpoint",
    "rv1",
    "rv2",
)
_AEP_TARGET = "Appliances"
_AEP_INPUTS = (
    "lights",
    "T1",
    "T2",
    "T3",
    "T4",
    "T5",
    "T6",
    "T7",
    "T8",
    "T9",
    "RH_1",
    "RH_2",
    "RH_3",
    "RH_4",
    "RH_5",
    "RH_6",
    "RH_7",
    "RH_8",
    "RH_9",
    "T_out",
    "Press_mm_hg",
    "RH_out",
    "Windspeed",
    "Visibility",
    "Tdewpoint",
)
_AEP_ROWS = 19735

_SPECS: dict[str, dict[str, Any]] = {
    "airfoil": dict(
        title="Airfoil Self-Noise",
        description=(
            "Airfoil Self-Noise (UCI 291): NASA wind-tunnel airfoil noise; "
            "1503 rows, 5 inputs, target scaled sound pressure level [dB]"
        ),
        filename="airfoil_self_noise.dat.gz",
        sha256_gz="dee01791d3033c441cb7ebdf56baae497938f285e2cdad48321331ae1e435b9c",
        sha256_raw="74c75fd71783f1e6b71f8a622b993dc592897a97cd689c5090a07147a1b097b3",
        uci_id=291,
        url="https://archive.ics.uci.edu/dataset/291/airfoil+self-noise",
        doi="10.24432/C5VW2C",
        citation=(
            "Brooks, T., Pope, D., & Marcolini, M. (1989). Airfoil Self-Noise "
            "[Dataset]. UCI Machine Learning Repository. "
            "https://doi.org/10.24432/C5VW2C"
        ),
        target=_AIRFOIL_COLUMNS[-1],
        features=_AIRFOIL_COLUMNS[:-1],
    ),
    "air_quality": dict(
        title="Air Quality",
        description=(
            "Air Quality (UCI 360): hourly gas multisensor responses in an "
            "Italian city, 2004-2005; 8991 complete rows, 8 inputs (5 PT08 "
            "sensors, T, RH, AH), target benzene C6H6(GT) [ug/m^3]"
        ),
        filename="AirQualityUCI.csv.gz",
        sha256_gz="a4197a2b3407adee54a97d9b9a753522f99d916109d45e192b512467f328d3dd",
        sha256_raw="13277ae5d8581e80b7be09d47c7d3d06fe9b8e957078f2cf6e859f955e62f996",
        uci_id=360,
        url="https://archive.ics.uci.edu/dataset/360/air+quality",
        doi="10.24432/C59K5F",
        citation=(
            "Vito, S. (2008). Air Quality [Dataset]. UCI Machine Learning "
            "Repository. https://doi.org/10.24432/C59K5F"
        ),
        target=_AQ_TARGET,
        features=_AQ_INPUTS,
    ),
    "appliances_energy": dict(
        title="Appliances Energy Prediction",
        description=(
            "Appliances Energy Prediction (UCI 374): 10-minute readings of a "
            "low-energy house, 2016; 19735 rows, 25 inputs (lights, indoor "
            "T/RH, weather), target Appliances [Wh]"
        ),
        filename="energydata_complete.csv.gz",
        sha256_gz="6b1af29ce87e12fd1d090cf06d1cce394e5a491466937f15827b3d7f06e6a7e3",
        sha256_raw="2820bf712ad0275cb18b85a05250926100d8e65ebb9f4d2d016ca91ea152a25d",
        uci_id=374,
        url="https://archive.ics.uci.edu/dataset/374/appliances+energy+prediction",
        doi="10.24432/C5VC8G",
        citation=(
            "Candanedo, L. (2017). Appliances Energy Prediction [Dataset]. UCI "
            "Machine Learning Repository. https://doi.org/10.24432/C5VC8G"
        ),
        target=_AEP_TARGET,
        features=_AEP_INPUTS,
    ),
}

_ALIASES = {"aep": "appliances_energy", "appliances": "appliances_energy"}

#: Dataset name -> one-line description (read-only). Aliases accepted by the
#: loaders: ``"aep"`` and ``"appliances"`` for ``"appliances_energy"``.
DATASETS = types.MappingProxyType({name: spec["description"] for name, spec in _SPECS.items()})


def _canonical_name(name: object) -> str:
    """Map a user-supplied dataset name (or alias) to its canonical name."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, one of {sorted(_SPECS)}, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in _SPECS:
        valid = sorted(_SPECS) + sorted(_ALIASES)
        raise ValueError(
            f"name={name!r} is not a bundled dataset; valid names are "
            f"{', '.join(repr(v) for v in valid)}"
        )
    return key


def dataset_info(name: str) -> dict[str, Any]:
    """Metadata of a bundled dataset: origin, licence, citation, checksums.

    Parameters
    ----------
    name : str
        Dataset name or alias (see :data:`DATASETS`).

    Returns
    -------
    info : dict
        Keys ``name`` (canonical), ``title``, ``description``, ``filename``,
        ``sha256_gz``, ``sha256_raw``, ``uci_id``, ``url``, ``doi``,
        ``citation``, ``licence``, ``target`` (str) and ``features`` (tuple of
        str, the column order of ``X``). A fresh dict on every call.
    """
    key = _canonical_name(name)
    info = dict(_SPECS[key])
    info["name"] = key
    info["licence"] = _LICENCE
    return info


# --------------------------------------------------------------------------
# Reading and parsing
# --------------------------------------------------------------------------


def _read_verified(key: str, path: str | PathLike[str] | None = None) -> bytes:
    """Bytes of the decompressed file, after checking both SHA-256 digests."""
    spec = _SPECS[key]
    if path is None:
        resource = resources.files(__package__).joinpath("data", spec["filename"])
        where = f"packaged file fastsd/data/{spec['filename']}"
        try:
            blob = resource.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{where} is missing; the fastsd installation is incomplete, reinstall fastsd"
            ) from None
        fix = "the installed copy is corrupted or was modified; reinstall fastsd"
    else:
        where = f"file {str(path)!r}"
        blob = Path(path).read_bytes()
        fix = f"use the original {spec['filename']} (the UCI file compressed with gzip -9 -n)"
    got = hashlib.sha256(blob).hexdigest()
    if got != spec["sha256_gz"]:
        raise ChecksumError(
            f"checksum mismatch for {where} ({key!r}): expected sha256 "
            f"{spec['sha256_gz']}, got {got}; {fix}"
        )
    try:
        data = gzip.decompress(blob)
    except (OSError, EOFError) as exc:  # unreachable when the digest matches
        raise ChecksumError(f"{where} is not a valid gzip file ({exc}); {fix}") from None
    got = hashlib.sha256(data).hexdigest()
    if got != spec["sha256_raw"]:  # unreachable when the .gz digest matches
        raise ChecksumError(
            f"checksum mismatch for the decompressed contents of {where} "
            f"({key!r}): expected sha256 {spec['sha256_raw']}, got {got}; {fix}"
        )
    return data


def _format_error(key: str, message: str) -> ValueError:
    return ValueError(f"unexpected format in the {key!r} data file: {message}")


def _parse_airfoil(data: bytes) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[str, ...]]:
    table = np.loadtxt(data.decode("ascii").splitlines(), dtype=np.float64)
    if table.shape != (1503, 6):
        raise _format_error("airfoil", f"expected 1503 x 6 values, got {table.shape}")
    return table[:, :5], table[:, 5], _AIRFOIL_COLUMNS[:5]


def _air_quality_table(data: bytes) -> tuple[NDArray[np.float64], tuple[str, ...]]:
    """All 13 numeric columns (9357 x 13) with -200 kept, plus their names."""
    lines = data.decode("ascii").split("\r\n")
    if lines[-1] == "":
        lines.pop()
    header = tuple(lines[0].split(";"))
    if header != _AQ_HEADER:
        raise _format_error("air_quality", f"header is {header}")
    values, n_empty = [], 0
    for lineno, line in enumerate(lines[1:], start=2):
        fields = line.split(";")
        if len(fields) != len(_AQ_HEADER):
            raise _format_error(
                "air_quality", f"line {lineno} has {len(fields)} fields, expected 17"
            )
        if not any(fields):  # the empty trailing rows ";;;;;;;;;;;;;;;;"
            n_empty += 1
            continue
        if n_empty or fields[15] or fields[16] or not all(fields[2:15]):
            raise _format_error("air_quality", f"unexpected layout at line {lineno}")
        # decimal comma -> decimal point; Date and Time (fields 0, 1) dropped
        values.append([float(v.replace(",", ".")) for v in fields[2:15]])
    if len(values) != _AQ_DATA_ROWS or n_empty != _AQ_EMPTY_ROWS:
        raise _format_error(
            "air_quality",
            f"{len(values)} data rows and {n_empty} empty rows, expected "
            f"{_AQ_DATA_ROWS} and {_AQ_EMPTY_ROWS}",
        )
    return np.array(values, dtype=np.float64), _AQ_HEADER[2:15]


def _parse_air_quality_xy(
    data: bytes,
) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[str, ...]]:
    table, names = _air_quality_table(data)
    cols = [names.index(c) for c in _AQ_INPUTS]
    t = names.index(_AQ_TARGET)
    X, y = table[:, cols], table[:, t]
    keep = ~((X == _AQ_MISSING).any(axis=1) | (y == _AQ_MISSING))
    return X[keep], y[keep], _AQ_INPUTS


def _parse_appliances_energy(
    data: bytes,
) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[str, ...]]:
    text = data.decode("ascii")
    first, _, body = text.partition("\r\n")
    header = tuple(h.strip('"') for h in first.split(","))
    if header != _AEP_HEADER:
        raise _format_error("appliances_energy", f"header is {header}")
    # every field is double-quoted, numbers may have leading blanks ("  60")
    table = np.loadtxt(
        body.splitlines(),
        delimiter=",",
        quotechar='"',
        usecols=range(1, len(_AEP_HEADER)),  # skip the timestamp
        dtype=np.float64,
    )
    if table.shape != (_AEP_ROWS, len(_AEP_HEADER) - 1):
        raise _format_error(
            "appliances_energy", f"expected {_AEP_ROWS} x 28 values, got {table.shape}"
        )
    names = _AEP_HEADER[1:]
    X = table[:, [names.index(c) for c in _AEP_INPUTS]]
    y = table[:, names.index(_AEP_TARGET)]
    return X, y, _AEP_INPUTS


#: What a parser of a decompressed file returns: (X, y, feature names).
_Parsed = tuple[NDArray[np.float64], NDArray[np.float64], tuple[str, ...]]
_PARSERS: dict[str, Callable[[bytes], _Parsed]] = {
    "airfoil": _parse_airfoil,
    "air_quality": _parse_air_quality_xy,
    "appliances_energy": _parse_appliances_energy,
}


def _parse(
    key: str,
    path: str | PathLike[str] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[str, ...]]:
    X, y, names = _PARSERS[key](_read_verified(key, path))
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise _format_error(key, "non-finite values after preprocessing")
    return X, y, tuple(names)


@functools.lru_cache(maxsize=None)
def _load_cached(key: str) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[str, ...]]:
    X, y, names = _parse(key)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y, names


def _load(
    name: str,
    path: str | PathLike[str] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], list[str]]:
    """Load ``name``; from ``path`` (not cached) instead of the package if given."""
    key = _canonical_name(name)
    if path is None:
        X, y, names = _load_cached(key)
    else:
        if not isinstance(path, (str, PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        X, y, names = _parse(key, path)
    return X.copy(), y.copy(), list(names)


def load_dataset(name: str) -> tuple[NDArray[np.float64], NDArray[np.float64], list[str]]:
    """Load a bundled UCI dataset as raw float64 arrays.

    The packaged ``.gz`` file is checked against its published SHA-256 (and so
    is its decompressed content) whenever it is read; parsed arrays are cached
    in memory and returned as fresh copies. See the module docstring for the
    preprocessing of each dataset.

    Parameters
    ----------
    name : str
        ``"airfoil"``, ``"air_quality"`` or ``"appliances_energy"`` (aliases
        ``"aep"``, ``"appliances"``); case-insensitive, ``-`` or a blank may
        stand for ``_``.

    Returns
    -------
    X : ndarray of shape (n, d), float64
        Input features in original units; n, d = 1503, 5 (airfoil),
        8991, 8 (air_quality), 19735, 25 (appliances_energy).
    y : ndarray of shape (n,), float64
        Target in original units.
    feature_names : list of str, length d
        Column names of ``X``.

    Raises
    ------
    ValueError
        If ``name`` is not a bundled dataset (the message lists valid names).
    TypeError
        If ``name`` is not a str.
    ChecksumError
        If the packaged file does not match its published SHA-256 digest.
    """
    return _load(name)


# --------------------------------------------------------------------------
# Splitting and standardization
# --------------------------------------------------------------------------


class Standardization(NamedTuple):
    """Training-set statistics used by :func:`standardize`.

    Attributes
    ----------
    x_mean : ndarray of shape (d,)
        Column means of the training features.
    x_scale : ndarray of shape (d,)
        Column standard deviations (ddof=0) of the training features; 1.0 for
        (numerically) constant columns, which are only centred.
    y_mean : float
        Mean of the training target (the target is centred, not scaled).
    """

    x_mean: NDArray[np.float64]
    x_scale: NDArray[np.float64]
    y_mean: float

    @classmethod
    def fit(
        cls, X: NDArray[np.float64], y: NDArray[np.float64] | None = None, scale: bool = True
    ) -> Standardization:
        """The statistics of checked training data X (n, d), y (n,) (the one home of the rule).

        ``scale=False`` only centres (``x_scale`` all 1): ridge on centred data is
        ridge with an unpenalized intercept.
        """
        x_mean = X.mean(axis=0)
        x_scale = np.ones(X.shape[1])
        if scale:
            x_std = X.std(axis=0)
            constant = x_std <= 1e-12 * np.maximum(1.0, np.abs(x_mean))
            x_scale = np.where(constant, 1.0, x_std)
        return cls(x_mean, x_scale, 0.0 if y is None else float(y.mean()))

    def transform(
        self,
        X: ArrayLike,
        y: ArrayLike | None = None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        """Apply the statistics: ``(X - x_mean) / x_scale`` and ``y - y_mean``.

        Parameters
        ----------
        X : array_like of shape (m, d)
        y : array_like of shape (m,), optional

        Returns
        -------
        X_t : ndarray of shape (m, d)
        y_t : ndarray of shape (m,) or None
        """
        X = as_float_array(X, "X", ndim=2, allow_empty=True)
        if X.shape[1] != self.x_mean.shape[0]:
            raise ValueError(
                f"X has {X.shape[1]} columns but the statistics were computed "
                f"on {self.x_mean.shape[0]}"
            )
        X_t = (X - self.x_mean) / self.x_scale
        if y is None:
            return X_t, None
        y = as_float_array(y, "y", ndim=1, allow_empty=True)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"y has {y.shape[0]} entries but X has {X.shape[0]} rows")
        return X_t, y - self.y_mean

    def inverse_transform_y(self, y_t: ArrayLike) -> NDArray[np.float64]:
        """Undo the target centring: ``y_t + y_mean`` (shape preserved)."""
        return np.asarray(y_t, dtype=np.float64) + self.y_mean


class Split(NamedTuple):
    """A train/validation/test split.

    ``X_*`` have shape (n_*, d) and ``y_*`` shape (n_*,); ``*_idx`` are the
    sorted row indices (into the arrays that were split) of each part, pairwise
    disjoint and together covering every row. ``feature_names`` and ``stats``
    (a :class:`Standardization`, or None when not standardized) are filled in
    by :func:`load_split`.
    """

    X_train: NDArray[np.float64]
    y_train: NDArray[np.float64]
    X_val: NDArray[np.float64]
    y_val: NDArray[np.float64]
    X_test: NDArray[np.float64]
    y_test: NDArray[np.float64]
    train_idx: NDArray[np.intp]
    val_idx: NDArray[np.intp]
    test_idx: NDArray[np.intp]
    feature_names: tuple[str, ...] = ()
    stats: Standardization | None = None

    def __repr__(self) -> str:
        return (
            f"Split(n_train={self.X_train.shape[0]}, n_val={self.X_val.shape[0]}, "
            f"n_test={self.X_test.shape[0]}, d={self.X_train.shape[1]}, "
            f"standardized={self.stats is not None})"
        )


def _check_fraction(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1), got {value!r}")
    value = float(value)
    if not (0.0 <= value < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def _rng_from_seed(seed: object) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed must be a non-negative int or a numpy.random.Generator, got {seed!r}"
        )
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(int(seed))


def _part_size(fraction: float, n: int) -> int:
    if fraction == 0.0:
        return 0
    return max(1, math.floor(fraction * n + 0.5))


def split_dataset(
    X: ArrayLike,
    y: ArrayLike,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int | np.random.Generator,
) -> Split:
    """Seeded random train/validation/test split of the rows of (X, y).

    Parameters
    ----------
    X : array_like of shape (n, d)
    y : array_like of shape (n,)
    val_fraction, test_fraction : float in [0, 1), default 0.2
        Fractions of the n rows put in the validation and test parts; the
        sizes are ``round(fraction * n)`` (halves rounded up), at least 1 for
        a positive fraction. The training part gets the rest and must not be
        empty.
    seed : int or numpy.random.Generator
        Seed of the permutation; the same int always gives the same split
        (NumPy's PCG64 via ``np.random.default_rng``).

    Returns
    -------
    split : Split
        ``X_train`` (n_train, d), ``y_train`` (n_train,), ``X_val``,
        ``y_val``, ``X_test``, ``y_test`` likewise, and the sorted row indices
        ``train_idx``, ``val_idx``, ``test_idx``. All arrays are new; the
        inputs are not modified.
    """
    X = as_float_array(X, "X", ndim=2)
    y = as_float_array(y, "y", ndim=1)
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} entries but X has {n} rows; they must match")
    val_fraction = _check_fraction(val_fraction, "val_fraction")
    test_fraction = _check_fraction(test_fraction, "test_fraction")
    rng = _rng_from_seed(seed)
    n_val, n_test = _part_size(val_fraction, n), _part_size(test_fraction, n)
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} leave "
            f"no training rows out of {n}; make their sum smaller"
        )
    perm = rng.permutation(n)
    test_idx = np.sort(perm[:n_test])
    val_idx = np.sort(perm[n_test : n_test + n_val])
    train_idx = np.sort(perm[n_test + n_val :])
    return Split(
        X[train_idx],
        y[train_idx],
        X[val_idx],
        y[val_idx],
        X[test_idx],
        y[test_idx],
        train_idx,
        val_idx,
        test_idx,
    )


def _as_pair(part: object, name: str) -> Sequence[Any]:
    if isinstance(part, Split) or not isinstance(part, (tuple, list)) or len(part) != 2:
        raise TypeError(f"{name} must be a pair (X, y); y may be None")
    return part


@overload
def standardize(
    train: tuple[ArrayLike, ArrayLike], *others: tuple[ArrayLike, ArrayLike]
) -> tuple[list[tuple[NDArray[np.float64], NDArray[np.float64]]], Standardization]: ...
@overload
def standardize(
    train: Sequence[ArrayLike | None], *others: Sequence[ArrayLike | None]
) -> tuple[Sequence[tuple[NDArray[np.float64], NDArray[np.float64] | None]], Standardization]: ...
def standardize(
    train: Sequence[ArrayLike | None], *others: Sequence[ArrayLike | None]
) -> tuple[Sequence[tuple[NDArray[np.float64], NDArray[np.float64] | None]], Standardization]:
    """Standardize features and centre the target with training statistics only.

    Every feature column is transformed to ``(x - mean) / std`` and the
    target to ``y - mean(y)``, where the means and standard deviations (ddof=0)
    come from ``train`` alone and are then applied unchanged to ``others``
    (validation, test, ...). Numerically constant training columns (std below
    ``1e-12 * max(1, |mean|)``) get scale 1, so they are centred and never
    produce NaN or inf. With centred features and target, ridge without an
    intercept equals ridge with an unpenalized intercept.

    Parameters
    ----------
    train : pair (X, y)
        ``X`` array_like of shape (n_train, d), ``y`` of shape (n_train,) or
        None. Needs at least one row.
    *others : pairs (X, y)
        Further parts, ``X`` of shape (m, d), ``y`` of shape (m,) or None.

    Returns
    -------
    parts : list of pairs (X_t, y_t)
        The transformed ``train`` followed by the transformed ``others``, in
        order; new float64 arrays (``y_t`` is None where ``y`` was None).
    stats : Standardization
        ``x_mean`` (d,), ``x_scale`` (d,), ``y_mean`` (float; 0.0 if the
        training target is None). ``stats.transform`` applies them to new data.
    """
    X_tr, y_tr = _as_pair(train, "train")
    X_tr = as_float_array(X_tr, "train X", ndim=2)
    if y_tr is not None:
        y_tr = as_float_array(y_tr, "train y", ndim=1)
        if y_tr.shape[0] != X_tr.shape[0]:
            raise ValueError(
                f"train y has {y_tr.shape[0]} entries but train X has {X_tr.shape[0]} rows"
            )
    stats = Standardization.fit(X_tr, y_tr)
    parts = [stats.transform(X_tr, y_tr)]
    for i, part in enumerate(others):
        X, y = _as_pair(part, f"others[{i}]")
        try:
            parts.append(stats.transform(X, y))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"others[{i}]: {exc}") from None
    return parts, stats


def load_split(
    name: str,
    seed: int | np.random.Generator,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    standardize: bool = True,
) -> Split:
    """Load a bundled dataset and split it, standardized with training statistics.

    Parameters
    ----------
    name : str
        Dataset name or alias (see :func:`load_dataset`).
    seed : int or numpy.random.Generator
        Seed of the random split (see :func:`split_dataset`).
    val_fraction, test_fraction : float in [0, 1), default 0.2
        Sizes of the validation and test parts.
    standardize : bool, default True
        Standardize the features and centre the target using the training
        part's statistics only (see :func:`standardize`); otherwise return
        raw values.

    Returns
    -------
    split : Split
        ``X_train`` (n_train, d), ``y_train`` (n_train,), ``X_val``, ``y_val``,
        ``X_test``, ``y_test``, row indices into :func:`load_dataset`'s arrays,
        ``feature_names`` (tuple of d str) and ``stats`` (the
        :class:`Standardization` used, or None).
    """
    if not isinstance(standardize, (bool, np.bool_)):
        raise TypeError(f"standardize must be True or False, got {standardize!r}")
    X, y, names = load_dataset(name)
    split = split_dataset(X, y, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    split = split._replace(feature_names=tuple(names))
    if not standardize:
        return split
    (tr, va, te), stats = _standardize(
        (split.X_train, split.y_train),
        (split.X_val, split.y_val),
        (split.X_test, split.y_test),
    )
    return split._replace(
        X_train=tr[0],
        y_train=tr[1],
        X_val=va[0],
        y_val=va[1],
        X_test=te[0],
        y_test=te[1],
        stats=stats,
    )


_standardize = standardize
