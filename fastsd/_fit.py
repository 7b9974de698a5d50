"""A least-squares line, shared by the synthetic studies and their figures
(kept apart so that :mod:`fastsd.plotting` need not import :mod:`fastsd.experiments`)."""

from typing import cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["linear_fit"]


def linear_fit(x: ArrayLike, y: ArrayLike) -> dict[str, float]:
    """Least-squares line y ~ slope x + intercept over the finite points.

    Returns
    -------
    dict
        ``slope``, ``intercept``, ``r2`` (coefficient of determination).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = cast("NDArray[np.float64]", x[ok]), cast("NDArray[np.float64]", y[ok])
    if x.size < 2:
        return {"slope": np.nan, "intercept": np.nan, "r2": np.nan}
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    total = np.sum((y - y.mean()) ** 2)
    r2 = 1.0 - np.sum(resid**2) / total if total > 0 else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": float(r2)}
