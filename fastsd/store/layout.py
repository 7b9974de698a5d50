r"""Labelled sweep results: one layout for the Zarr store and in-memory xarray.

Dimensions: ``problem``, ``lam``, ``k`` (steps 0..K), ``schedule`` (fixed-xi
sweeps) and ``step`` (1..K, the entries of a xi schedule). Coordinates hold
real values: ``lam`` the penalties, ``k`` the step counts, ``xi_schedule``
(schedule, step) the fixed schedules (and ``xi`` (schedule) when they are
constant), plus numeric per-problem metadata along ``problem``.

Data variables by kind (see :mod:`fastsd.blocks.tasks`):

* ``risk`` (problem, lam, schedule, k) -- fixed xi, oracle;
* ``val_mse``, ``test_mse`` (problem, lam, schedule, k) -- fixed xi, data;
* ``risk`` (problem, lam, k), ``xi`` (problem, lam, k, step),
  ``xi_reproducible`` (problem, lam, k) -- oracle-optimal xi;
* ``val_mse``, ``test_mse``, ``xi``, ``xi_reproducible`` -- validation-chosen xi
  (``test_mse`` on rows used neither for fitting nor for choosing).

``xi[..., k, step]`` is the step-th entry of the k-step schedule (NaN for
step > k, and NaN throughout where the schedule is unrecoverable, i.e.
``xi_reproducible`` is False; its risk is still exact).

:func:`label_sweep` labels in-memory arrays; :func:`load_sweep` opens a
``fastsd sweep`` output; both give a :class:`SweepResult`-compatible xarray
layout and the same tidy DataFrame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._typing import FloatArray
from ..math.reparam import steps_table

__all__ = [
    "KIND_OF",
    "METRICS",
    "Coordinate",
    "Variable",
    "constant_xi",
    "coordinates",
    "layout",
    "store_values",
    "value_counts",
]

#: A data variable of the layout: (dims, shape, dtype).
Variable = tuple[tuple[str, ...], tuple[int, ...], str]
#: A coordinate: (dims, values).
Coordinate = tuple[tuple[str, ...], NDArray[Any]]

#: (selection, problems have theta_star) -> task kind
KIND_OF = {
    ("oracle", True): "optimal",
    ("fixed", True): "risk",
    ("validation", False): "optimal_validation",
    ("fixed", False): "mse",
}


def layout(
    kind: str, B: int, L: int, K: int, G: int | None = None, test: bool = True
) -> dict[str, Variable]:
    """Data variables: name -> (dims, shape, dtype)."""
    fixed = kind in ("risk", "mse")
    if fixed and G is None:
        raise ValueError(f"layout of a {kind!r} sweep needs G, the number of xi schedules")
    dims = ("problem", "lam", "schedule", "k") if fixed else ("problem", "lam", "k")
    shape: tuple[int, ...] = (B, L, G, K + 1) if G is not None and fixed else (B, L, K + 1)
    metrics = ["risk"] if kind in ("risk", "optimal") else ["val_mse"] + (["test_mse"] * test)
    out: dict[str, Variable] = {name: (dims, shape, "float64") for name in metrics}
    if not fixed:
        out["xi"] = (("problem", "lam", "k", "step"), (B, L, K + 1, K), "float64")
        out["xi_reproducible"] = (dims, shape, "bool")
    return out


def coordinates(
    B: int,
    lams: ArrayLike,
    K: int,
    schedules: FloatArray | None = None,
    constant: ArrayLike | None = None,
    problem_coords: Mapping[str, ArrayLike] | None = None,
) -> dict[str, Coordinate]:
    """Coordinates: name -> (dims, values)."""
    out: dict[str, Coordinate]
    out = {
        "problem": (("problem",), np.arange(B, dtype=np.int64)),
        "lam": (("lam",), np.asarray(lams, dtype=float)),
        "k": (("k",), np.arange(K + 1, dtype=np.int64)),
        "step": (("step",), np.arange(1, K + 1, dtype=np.int64)),
    }
    if schedules is not None:
        out["schedule"] = (("schedule",), np.arange(schedules.shape[0], dtype=np.int64))
        out["xi_schedule"] = (("schedule", "step"), np.asarray(schedules, dtype=float))
        if constant is not None:
            out["xi"] = (("schedule",), np.asarray(constant, dtype=float))
    for name, values in (problem_coords or {}).items():
        out[name] = (("problem",), np.asarray(values))
    return out


def store_values(kind: str, result: Mapping[str, FloatArray]) -> dict[str, NDArray[Any]]:
    """A task's block result (see :mod:`fastsd.blocks.tasks`) in the layout's variables."""
    out = {name: result[name] for name in ("risk", "val_mse", "test_mse") if name in result}
    if "xi" in result:
        xi = result["xi"]  # (b, l, K, K), row k - 1 = k-step schedule
        b, l, K = xi.shape[:3]
        out["xi"] = steps_table(xi)
        ok = np.ones((b, l, K + 1), dtype=bool)
        if K:
            ok[:, :, 1:] = ~np.isnan(xi[..., 0])
        out["xi_reproducible"] = ok
    return out


#: The metric variables of the layout.
METRICS = ("risk", "val_mse", "test_mse")


def value_counts(values: Mapping[str, NDArray[Any]]) -> dict[str, int]:
    """What the sweep warnings count in stored values (:func:`store_values`' output).

    Returns
    -------
    dict
        ``nonfinite`` of ``metrics`` metric values inf or NaN (a ``test_mse``
        that is NaN because its xi is unrecoverable is not counted: ``nan_xi``
        covers it), and ``nan_xi`` of ``schedules`` optimal schedules (k >= 1)
        unrecoverable.
    """
    ok = values.get("xi_reproducible")
    out = {"nonfinite": 0, "metrics": 0, "nan_xi": 0, "schedules": 0}
    for name in METRICS:
        if name in values:
            bad = ~np.isfinite(values[name])
            if name == "test_mse" and ok is not None:
                bad &= ok
            out["nonfinite"] += int(np.count_nonzero(bad))
            out["metrics"] += bad.size
    if ok is not None:
        out["nan_xi"] = int(ok.size - np.count_nonzero(ok))
        out["schedules"] = ok[..., 1:].size
    return out


def constant_xi(schedules: FloatArray | None) -> FloatArray | None:
    """The constant value of each schedule, or None if some schedule varies."""
    if schedules is None or schedules.shape[1] == 0:
        return None
    if np.all(schedules == schedules[:, :1]):
        return schedules[:, 0]
    return None
