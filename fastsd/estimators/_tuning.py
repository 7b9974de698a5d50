r"""Pieces shared by the three tuning rules (gcv, loo, holdout).

Every rule produces a :class:`TuningTable`: for each lambda and each k = 0..K
an estimated prediction risk minimized over the k-step schedule, the
minimizing xi, and whether that xi reproduces the minimum (the map from the
optimal filter to imitation parameters is intrinsically ill-conditioned; as
in :func:`fastsd.optimal_xi`, an xi that does not reproduce the optimum to
``fastsd.reference.XI_RTOL`` relative is NaN and the entry is not selectable;
the test is :func:`fastsd.reference.optimal.accept_schedules`, shared with
the oracle and validation sweeps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray

from ..math.filters import products_from_xi
from ..math.reparam import steps_table, xi_from_h_coefficients
from ..reference.optimal import accept_schedules, nested_least_squares, refit_amplification
from ..reference.spectral import spectral_factors

__all__ = [
    "SafeChoice",
    "TuningTable",
    "admissible",
    "exact_rows",
    "nested_lstsq",
    "paired_z",
    "select",
    "select_safe",
    "shrinkage_factors",
    "reject_unreproducible",
    "xi_from_rows",
    "h_from_xi",
]

#: A larger k must beat the best smaller-k risk by more than this (relative)
#: to be selected: differences at rounding level are ties, resolved towards
#: fewer steps.
K_TIE_RTOL = 1e-10


@dataclass
class TuningTable:
    """Estimated risks of every (lambda, k) with the minimizing schedules.

    Attributes
    ----------
    lams : ndarray of shape (L,)
    risk : ndarray of shape (L, K + 1)
        Estimated prediction risk (mean squared error), minimized over xi;
        ``inf`` where the rule is undefined (e.g. leverage 1 at lam = 0).
    xi : ndarray of shape (L, K + 1, K)
        ``xi[l, k, :k]`` is the minimizing k-step schedule; NaN after k and
        where not reproducible.
    valid : ndarray of bool, shape (L, K + 1)
        Finite risk and a reproducible xi (k = 0 needs no xi).
    """

    lams: NDArray[np.float64]
    risk: NDArray[np.float64]
    xi: NDArray[np.float64]
    valid: NDArray[np.bool_]

    @property
    def max_steps(self) -> int:
        return int(self.risk.shape[1]) - 1

    def __repr__(self) -> str:
        return (
            f"TuningTable(L={self.lams.size}, K={self.max_steps}, "
            f"valid={int(self.valid.sum())}/{self.valid.size})"
        )


def validation_table(
    lams: NDArray[np.float64], mse: NDArray[np.float64], xi: NDArray[np.float64]
) -> TuningTable:
    """The table of a validation-set rule from the optimal sweep's ``mse`` (L, K + 1) and
    ``xi`` (L, K, K) (row k - 1 the k-step schedule): valid where the MSE is finite and the
    schedule recovered."""
    table = steps_table(xi)
    K = xi.shape[-1]
    lower = np.arange(K)[None, :] < np.arange(K + 1)[:, None]
    valid = np.isfinite(mse) & np.all(np.isfinite(np.where(lower, table, 0.0)), axis=-1)
    return TuningTable(lams, mse, table, valid)


def nested_lstsq(
    design: NDArray[np.float64], target: NDArray[np.float64], rcond: float | None = None
) -> NDArray[np.float64]:
    """min ||design[..., :k] beta - target|| for every k = 1..K (column-scaled QR).

    Parameters
    ----------
    design : ndarray of shape (..., N, K)
    target : ndarray of shape (..., N)

    Returns
    -------
    beta : ndarray of shape (..., K, K)
        Row k - 1 holds the k-column solution. Columns that are zero, or
        numerically dependent on the earlier ones, end the usable prefix
        (their coefficients and those after them are 0).
    """
    norms = np.sqrt(np.sum(design * design, axis=-2))
    alive = np.isfinite(norms) & (norms > 0)
    scale = np.where(alive, norms, 1.0)
    design = np.where(alive[..., None, :], design / scale[..., None, :], 0.0)
    if rcond is not None:
        # relative pivots of the column-scaled QR below rcond end the usable prefix
        Rd = np.abs(np.diagonal(np.linalg.qr(design, mode="r"), axis1=-2, axis2=-1))
        m = min(design.shape[-2], design.shape[-1])
        alive[..., :m] &= Rd[..., :m] > rcond
        alive[..., m:] = False
    beta = nested_least_squares(design, target, alive)
    return beta / scale[..., None, :]


def h_from_xi(xi: NDArray[np.float64]) -> NDArray[np.float64]:
    """r-coefficients of h with u_k = q h(r) for schedules xi of shape (..., k).

    These are the products pi_j = xi_k ... xi_{k-j+1} of :mod:`fastsd.math.filters`
    (the one place of the filter recursion).
    """
    return cast("NDArray[np.float64]", products_from_xi(xi))  # filters is jitted, unchecked


def xi_from_rows(h_rows: NDArray[np.float64]) -> NDArray[np.float64]:
    """xi for every k from nested h coefficients.

    Parameters
    ----------
    h_rows : ndarray of shape (..., K, K)
        Row k - 1 holds h_0..h_{k-1} of the k-step filter (zeros after).

    Returns
    -------
    xi : ndarray of shape (..., K + 1, K)
        Row k holds the k-step schedule in its first k entries, NaN after
        (row 0: all NaN, ridge needs no xi).
    """
    K = h_rows.shape[-1]
    xi = np.full(h_rows.shape[:-2] + (K + 1, K), np.nan)
    for k in range(1, K + 1):
        xi[..., k, :k] = xi_from_h_coefficients(h_rows[..., k - 1, :k])
    return xi


def reject_unreproducible(
    xi: NDArray[np.float64],
    achieved: NDArray[np.float64],
    optimum: NDArray[np.float64],
    risk0: NDArray[np.float64],
    s2: NDArray[np.float64],
    lams: NDArray[np.float64],
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Validity of each row of xi (..., K + 1, K) and xi with NaN where invalid.

    ``achieved`` (..., K + 1) is the criterion recomputed from xi through the
    forward recursion, ``optimum`` the minimum, ``risk0`` (...) the ridge value
    (an absolute floor for optima near 0), ``s2`` (p,) the spectrum and
    ``lams`` (L,) the penalties of the leading axis. Rows k >= 1 go through the
    one acceptance test of the package,
    :func:`fastsd.reference.optimal.accept_schedules` (replay to
    XI_RTOL / 2 and the refit rounding bound to XI_RTOL / 4); row 0 (ridge) is
    valid where its risk is finite.
    """
    amplification = refit_amplification(s2, lams)  # (L,)
    kept = accept_schedules(
        xi[..., 1:, :], achieved[..., 1:], optimum[..., 1:], risk0, amplification
    )
    steps = np.arange(xi.shape[-1])
    lower = steps[None, :] < np.arange(1, xi.shape[-2])[:, None]  # (K, K)
    good = np.all(np.isfinite(np.where(lower, kept, 0.0)), axis=-1) & np.isfinite(optimum[..., 1:])
    good = np.concatenate([np.isfinite(optimum[..., :1]), good], axis=-1)
    return good, np.concatenate([np.full(xi[..., :1, :].shape, np.nan), kept], axis=-2)


def select(table: TuningTable, k: int | None = None) -> tuple[int, int] | None:
    """Index (lambda index, k) of the best selectable entry.

    With ``k`` given, the best lambda for exactly k steps; otherwise the
    smallest k whose best risk is within ``K_TIE_RTOL`` of the overall best,
    and its best lambda (first one on ties). Returns None when nothing is
    selectable.
    """
    risk = np.where(table.valid, table.risk, np.inf)
    if k is not None:
        col = risk[:, k]
        if not np.any(np.isfinite(col)):
            return None
        return int(np.argmin(col)), int(k)
    if not np.any(np.isfinite(risk)):
        return None
    per_k = risk.min(axis=0)
    best = per_k.min()
    k_best = int(np.flatnonzero(per_k <= best + K_TIE_RTOL * abs(best))[0])
    return int(np.argmin(risk[:, k_best])), k_best


#: The safe rule takes SD only if its paired per-sample improvement over ridge
#: exceeds this many standard errors (z < -SAFE_Z), in the closed-form nested
#: LOO and again in the exact one. Calibrated on the calibration half of the
#: tuning benchmark (:mod:`fastsd.experiments.tuning`): the smallest of 0.5,
#: 0.75, 1, 1.5, 2 that kept every calibration cell within the bounds (0.5 and
#: 0.75 lost +1.4% on average at n_train / d = 1.25, full rank, high noise:
#: one split of 30 at +43%).
SAFE_Z = 1.0
#: The exact nested LOO verifies the safe rule's SD candidate on at most this
#: many points (all of them up to this n; a fixed systematic sample above),
#: which bounds its O(n^2 p) cost by O(EXACT_POINTS n p).
EXACT_POINTS = 512
#: Rounding slack of the admissibility test of the shrinkage factors.
ADMISSIBLE_TOL = 1e-6


def shrinkage_factors(
    s2: NDArray[np.float64],
    lams: NDArray[np.float64],
    xi: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Per-direction shrinkage f_j = phi_j r_j of every schedule in a table.

    The k-step estimator is theta_k = V diag(f / s^2) V^T X^T y on the live
    directions, f = (1 - u_k) r with u_k = q h(r) (:func:`h_from_xi`).

    Parameters
    ----------
    s2 : ndarray of shape (p,)
    lams : ndarray of shape (L,)
    xi : ndarray of shape (L, K + 1, K)
        Row k holds the k-step schedule in its first k entries (NaN elsewhere).

    Returns
    -------
    f : ndarray of shape (L, K + 1, p_live)
        NaN where the schedule is NaN; row 0 is ridge's r.
    """
    live = s2 > 0
    r, q = spectral_factors(s2[live], lams)  # (L, p_live)
    K = xi.shape[-1]
    f = np.empty(xi.shape[:2] + (r.shape[-1],))
    f[:, 0] = r
    for k in range(1, K + 1):
        h = h_from_xi(xi[:, k, :k])  # (L, k): coefficients in powers of r
        hr = np.sum(h[:, :, None] * r[:, None, :] ** np.arange(k)[None, :, None], axis=1)
        f[:, k] = (1.0 - q * hr) * r
    return f


def admissible(
    s2: NDArray[np.float64],
    lams: NDArray[np.float64],
    xi: NDArray[np.float64],
    tol: float = ADMISSIBLE_TOL,
) -> NDArray[np.bool_]:
    """Entries whose shrinkage factors all lie in [0, 1] (up to ``tol``): (L, K + 1) bool.

    Direction by direction the fixed-design risk of f_j z_j (z_j unbiased for
    the coefficient t_j, variance v_j) is w_j ((f_j - 1)^2 t_j^2 + f_j^2 v_j), a
    parabola minimized at t_j^2 / (t_j^2 + v_j), which lies in [0, 1]: a factor
    above 1 is beaten by 1, a negative one by 0, whatever theta* is. Filters
    leaving [0, 1] are therefore inadmissible, and they are exactly the
    huge-xi schedules through which a minimized criterion overfits (observed:
    factors -10.8 and 1.29 on an n = 64 problem, LOO 0.85 for a model whose
    test MSE is 1.25).
    """
    f = shrinkage_factors(s2, lams, xi)
    with np.errstate(invalid="ignore"):
        return cast("NDArray[np.bool_]", np.all((f >= -tol) & (f <= 1.0 + tol), axis=-1))


def paired_z(d: NDArray[np.float64]) -> float:
    """mean(d) / se(d) of paired per-point differences (NaN for fewer than 2 points)."""
    if d.size < 2:
        return np.nan
    mean, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))
    if se > 0:
        return mean / se
    return float(np.sign(mean) * np.inf) if mean else 0.0


def exact_rows(points: NDArray[np.bool_], limit: int = EXACT_POINTS) -> NDArray[np.intp]:
    """The points the exact nested LOO is computed for: every counted point, or a
    fixed systematic sample of ``limit`` of them (same data, same rows)."""
    rows = np.flatnonzero(points)
    if rows.size > limit:
        rows = rows[(np.arange(limit) * rows.size) // limit]
    return rows


@dataclass
class SafeChoice:
    """What the safe rule chose and why.

    Attributes
    ----------
    best : tuple (lambda index, k) or None
        None when ridge's LOO risk is undefined at every lambda.
    selection : {"ridge", "sd"}
    reason : str
        One line: the numbers behind the choice.
    z : float
        The paired z statistic of the last test made (the exact nested LOO's
        when the candidate reached it); NaN without an SD candidate.
    """

    best: tuple[int, int] | None
    selection: str
    reason: str
    z: float


#: verify(lambda index, k, rows) -> (exact nested losses at rows, defined).
Verify = Callable[[int, int, NDArray[np.intp]], tuple[NDArray[np.float64], bool]]


def select_safe(
    table: TuningTable,
    nested_risk: NDArray[np.float64],
    losses: NDArray[np.float64],
    points: NDArray[np.bool_],
    verify: Verify,
) -> SafeChoice:
    """The safe rule: SD only if it beats ridge in closed-form and exact nested LOO.

    1. Ridge: the lambda of least LOO risk (what ``RidgeCV`` picks); for
       ridge the nested risk is the LOO risk.
    2. The SD candidate: among the selectable k >= 1 entries (reproducible xi
       and :func:`admissible` shrinkage) the least *nested* LOO risk
       (:func:`fastsd.estimators._loo.nested_loo`: the fit of xi is itself
       left out, so the k fitted coefficients pay for themselves). Ties (to
       ``K_TIE_RTOL``) go to fewer steps.
    3. Screen: its nested risk is lower than ridge's and the paired
       per-sample difference d_i = nested loss_i(SD) - LOO loss_i(ridge) has
       mean(d) / se(d) < -``SAFE_Z``.
    4. Verify: the same test with the *exact* nested LOO
       (:func:`fastsd.estimators._loo.nested_loo_exact` through ``verify``,
       on :func:`exact_rows`), which also removes point i from the other
       points' LOO residuals; the closed form of step 2 neglects that, which
       at n close to d (leverages near 1) made SD look better than it is.

    SD is chosen only if steps 3 and 4 pass; otherwise ridge.

    Parameters
    ----------
    table : TuningTable
        The LOO table (its ``valid`` marks the selectable entries).
    nested_risk : ndarray of shape (L, K + 1)
    losses : ndarray of shape (L, K + 1, n)
    points : ndarray of bool, shape (n,)
        Points that count (positive weight).
    verify : callable
        ``verify(l, k, rows)`` -> (exact nested losses of entry (l, k) at
        ``rows``, whether they are defined).

    Returns
    -------
    SafeChoice
    """
    ridge = select(table, 0)
    if ridge is None:
        return SafeChoice(None, "ridge", "no lambda gives a defined leave-one-out risk", np.nan)
    honest = np.where(table.valid, nested_risk, np.inf)
    honest[:, 0] = np.inf
    if table.max_steps == 0:
        return SafeChoice(ridge, "ridge", "max_steps=0: ridge only", np.nan)
    if not np.any(np.isfinite(honest)):
        return SafeChoice(
            ridge, "ridge", "no admissible SD schedule has a defined nested LOO risk", np.nan
        )
    l_r = ridge[0]
    r0 = float(nested_risk[l_r, 0])
    per_k = honest.min(axis=0)
    best_k = float(per_k.min())
    k_sd = int(np.flatnonzero(per_k <= best_k + K_TIE_RTOL * abs(best_k))[0])
    l_sd = int(np.argmin(honest[:, k_sd]))
    what = f"{k_sd}-step SD at lam={table.lams[l_sd]:.4g}"
    z = paired_z((losses[l_sd, k_sd] - losses[l_r, 0])[points])
    if not (best_k < r0 - K_TIE_RTOL * abs(r0) and z < -SAFE_Z):
        return SafeChoice(
            ridge,
            "ridge",
            f"the best candidate, {what}, has nested LOO risk {best_k:.4g} against "
            f"ridge's {r0:.4g} (z = {z:.2f}, needs < -{SAFE_Z:g})",
            z,
        )
    rows = exact_rows(points)
    exact, defined = verify(l_sd, k_sd, rows)
    if not defined:
        return SafeChoice(
            ridge,
            "ridge",
            f"{what} passed the closed-form nested LOO (z = {z:.2f}) but its exact nested "
            "LOO is undefined (leverage 1 without two points)",
            z,
        )
    base = losses[l_r, 0][rows]
    z_exact = paired_z(exact - base)
    risk_sd, risk_r = float(exact.mean()), float(base.mean())
    if risk_sd < risk_r and z_exact < -SAFE_Z:
        return SafeChoice(
            (l_sd, k_sd),
            "sd",
            f"{what}: exact nested LOO risk {risk_sd:.4g} against ridge's {risk_r:.4g} on "
            f"{rows.size} points (z = {z_exact:.2f})",
            z_exact,
        )
    return SafeChoice(
        ridge,
        "ridge",
        f"{what} passed the closed-form nested LOO (z = {z:.2f}) but not the exact one: "
        f"{risk_sd:.4g} against ridge's {risk_r:.4g} on {rows.size} points "
        f"(z = {z_exact:.2f}, needs < -{SAFE_Z:g})",
        z_exact,
    )
