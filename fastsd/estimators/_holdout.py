r"""The paper's rule: fit on a training set, tune lambda, k and xi on a validation set.

For each lambda the validation MSE of k-step SD is a quadratic in xibar,
minimized in closed form by :func:`fastsd.reference.optimal_validation` (the
engine behind :func:`fastsd.optimal_xi_validation`, which it calls once for
all k <= K instead of once per k). Intercepts and sample weights as in the
estimators: the validation rows are centered with the training means and
scaled by sqrt(w); the MSE is weighted, sum_i w_i e_i^2 / sum(w).

Several targets share one schedule: the validation MSE summed over targets is
the validation MSE of one problem whose spectrum is the training spectrum
repeated T times (block-diagonal R), so the same solver applies.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..reference.optimal import optimal_validation
from ._base import _Prepared
from ._tuning import TuningTable, validation_table

__all__ = ["holdout_table"]


def holdout_table(
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_val: ArrayLike,
    y_val: ArrayLike,
    lams: ArrayLike,
    max_steps: int,
    *,
    fit_intercept: bool = True,
    sample_weight: ArrayLike | None = None,
    sample_weight_val: ArrayLike | None = None,
) -> TuningTable:
    """Validation-MSE-optimal schedules for every lambda and k <= K.

    Parameters
    ----------
    X_train, y_train : training data, shapes (n, d) and (n,) or (n, T)
    X_val, y_val : validation data, shapes (n_val, d) and (n_val,) or (n_val, T)
    lams : ndarray of shape (L,)
    max_steps : int
    fit_intercept : bool, default=True
    sample_weight, sample_weight_val : ndarray of shape (n,), (n_val,), optional

    Returns
    -------
    TuningTable
        ``risk`` is the (weighted) validation MSE, averaged over targets.
    """
    lams = np.asarray(lams, dtype=np.float64)
    K = max_steps
    prep = _Prepared(X_train, y_train, sample_weight, fit_intercept)
    dec, Z = prep.decompose()
    Xv = np.asarray(X_val, dtype=np.float64) - prep.x_mean
    yv = np.asarray(y_val, dtype=np.float64)
    Yv = (yv[:, None] if yv.ndim == 1 else yv) - prep.y_mean
    if sample_weight_val is None:
        n_eval = float(Xv.shape[0])
    else:
        sw = np.sqrt(np.asarray(sample_weight_val, dtype=np.float64))
        Xv, Yv = Xv * sw[:, None], Yv * sw[:, None]
        n_eval = float(np.sum(sw * sw))
    Q, R = np.linalg.qr(Xv @ dec.V)
    C = Q.T @ Yv  # (m, T)
    resid2 = np.sum((Yv - Q @ C) ** 2, axis=0)  # (T,)
    T = Yv.shape[1]
    if T == 1:
        s2, z, R_all, c = dec.s2, Z[:, 0], R, C[:, 0]
    else:
        s2 = np.tile(dec.s2, T)
        z = Z.T.ravel()
        R_all = np.kron(np.eye(T), R)
        c = C.T.ravel()
    mse, xi_rows = optimal_validation(s2, z, R_all, c, resid2.sum(), n_eval * T, lams, K)
    return validation_table(lams, mse, xi_rows)
