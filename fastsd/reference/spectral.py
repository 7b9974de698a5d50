r"""Vectorized NumPy spectral form of k-step self-distillation (the ground truth).

Notation (per problem; a leading batch axis B is allowed everywhere):
s2 (p,) eigenvalues of X^T X, t = V^T theta* (p,), z = V^T X^T y (p,),
lams (L,). Per eigen-direction and lambda:

    r = s^2 / (s^2 + lam),   q = lam / (s^2 + lam),
    u_0 = 0,  u_i = xi_i (q + r u_{i-1}),   phi_k = 1 - u_k,
    theta_k = V diag(phi_k / (s^2 + lam)) z,

    R = (1/n) sum_j s_j^2 [ (q_j + r_j u_j)^2 t_j^2 + (1 - u_j)^2 sigma^2 s_j^2/(s_j^2 + lam)^2 ]

(phi r - 1 = -(q + r u), so the bias term has no cancellation). Directions with
s = 0 get r = 0, q = 1 and contribute nothing. Only the recursion over steps is
a Python loop; problems, lambdas and xi values are broadcast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

import numpy as np
from numpy.typing import ArrayLike

from .._typing import FloatArray
from ..math.filters import risk_term, sd_step, step_factors

__all__ = [
    "spectral_factors",
    "advance_u",
    "inverse_shift",
    "self_distill_spectral",
    "risk_from_u",
    "risk_weights",
    "excess_risk_spectral",
    "sweep_risk",
    "eval_projection",
    "eval_mse",
    "sweep_mse",
    "oracle_risk",
]


def spectral_factors(s2: FloatArray, lams: FloatArray) -> tuple[FloatArray, FloatArray]:
    """r and q per (lambda, direction).

    Parameters
    ----------
    s2 : ndarray of shape (..., p)
    lams : ndarray of shape (L,)

    Returns
    -------
    r, q : ndarray of shape (..., L, p)
    """
    s2 = s2[..., None, :]
    lam = lams[:, None]
    live = s2 > 0
    den = np.where(live, s2 + lam, 1.0)
    r = np.where(live, s2 / den, 0.0)
    q = np.where(live, lam / den, 1.0)
    return r, q


#: One self-distillation step in filter space, u <- xi_i (q + r u).
advance_u: Callable[..., FloatArray] = sd_step


def _u_after(r: FloatArray, q: FloatArray, xi: FloatArray) -> FloatArray:
    """u_k for a schedule xi of shape (..., k) broadcast against r[..., 0]."""
    u = np.zeros(np.broadcast_shapes(r.shape, xi.shape[:-1] + (1,)))
    for i in range(xi.shape[-1]):
        u = advance_u(u, r, q, xi[..., i, None])
    return u


def last_lams(lams: FloatArray) -> FloatArray:
    """The penalty of the final step: lams (L,) itself, or column -1 of schedules (L, S)."""
    return lams if lams.ndim == 1 else lams[:, -1]


def filter_state(
    s2: FloatArray, lams: FloatArray, xi: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Factors of the last penalty and u_k, for one penalty or per-step penalties.

    Parameters
    ----------
    s2 : ndarray of shape (..., p)
    lams : ndarray of shape (L,), or (L, k + 1) (lam_0 .. lam_k per row)
    xi : ndarray broadcastable to (..., L, k)

    Returns
    -------
    r, q, a, u : ndarray of shape (..., L, p)
        r, q, a = 1/(s^2 + lam) of lam_k, and u_k (step i uses the factors of
        lam_{i-1}, see :mod:`fastsd.math.filters`).
    """
    if lams.ndim == 1:
        r, q = spectral_factors(s2, lams)
        return r, q, inverse_shift(s2, lams), _u_after(r, q, xi)
    rs, qs, a_s = step_factors(s2, lams)  # (..., L, k + 1, p)
    u = np.zeros(np.broadcast_shapes(rs.shape[:-2] + rs.shape[-1:], xi.shape[:-1] + (1,)))
    for i in range(xi.shape[-1]):
        u = sd_step(u, rs[..., i, :], qs[..., i, :], xi[..., i, None])
    return rs[..., -1, :], qs[..., -1, :], a_s[..., -1, :], u


def inverse_shift(s2: FloatArray, lams: FloatArray) -> FloatArray:
    """1 / (s^2 + lam), 0 where s = 0; shape (..., L, p)."""
    s2 = s2[..., None, :]
    live = s2 > 0
    return np.where(live, 1.0 / np.where(live, s2 + lams[:, None], 1.0), 0.0)


def self_distill_spectral(
    V: FloatArray, s2: FloatArray, z: FloatArray, lams: FloatArray, xi: FloatArray
) -> FloatArray:
    """theta_k = V diag((1 - u_k) / (s^2 + lam)) z.

    Parameters
    ----------
    V : ndarray of shape (..., d, p)
    s2, z : ndarray of shape (..., p)
    lams : ndarray of shape (L,), or (L, k + 1) per-step penalties lam_0..lam_k
    xi : ndarray of shape (k,) or broadcastable to (..., L, k)

    Returns
    -------
    theta : ndarray of shape (..., L, d)
    """
    _, _, a, u = filter_state(s2, lams, xi)
    coef = (1.0 - u) * a * z[..., None, :]
    return cast(FloatArray, np.einsum("...dp,...lp->...ld", V, coef))


def risk_weights(
    s2: FloatArray, t: FloatArray, noise_var: ArrayLike, n: int, lams: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per-direction weights of the excess risk.

    Returns
    -------
    bias_w : ndarray of shape (..., L, p)
        w t^2 with w = s^2 / n.
    noise_w : ndarray of shape (..., L, p)
        w sigma^2 s^2 / (s^2 + lam)^2.
    """
    w = (s2 / n)[..., None, :]
    inv = inverse_shift(s2, lams)
    var = np.asarray(noise_var, dtype=np.float64)[..., None, None]
    bias_w = w * (t * t)[..., None, :] * np.ones_like(inv)
    return bias_w, w * var * s2[..., None, :] * inv * inv


def risk_from_u(
    bias_w: FloatArray, noise_w: FloatArray, r: FloatArray, q: FloatArray, u: FloatArray | float
) -> FloatArray:
    """Excess risk of the filter phi = 1 - u: sum over the last axis of
    bias_w (q + r u)^2 + noise_w (1 - u)^2 (all arguments broadcast)."""
    return cast(FloatArray, np.sum(risk_term(bias_w, noise_w, r, q, u), axis=-1))


def excess_risk_spectral(
    s2: FloatArray, t: FloatArray, noise_var: ArrayLike, n: int, lams: FloatArray, xi: FloatArray
) -> FloatArray:
    """Excess risk E||theta_k - theta*||^2_{X^T X / n} for one schedule.

    Parameters
    ----------
    s2, t : ndarray of shape (..., p)
    noise_var : float or ndarray of shape (...)
    n : int
    lams : ndarray of shape (L,), or (L, k + 1) per-step penalties
    xi : ndarray broadcastable to (..., L, k)

    Returns
    -------
    risk : ndarray of shape (..., L)
    """
    r, q, _, u = filter_state(s2, lams, xi)
    bias_w, noise_w = risk_weights(s2, t, noise_var, n, last_lams(lams))
    return risk_from_u(bias_w, noise_w, r, q, u)


def step_arrays(
    s2: FloatArray, lams: FloatArray, n_steps: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """r, q, a = 1/(s^2 + lam) per step, shape (..., L, S, p).

    S = 1 for one penalty per lambda (lams (L,)), else S = K + 1 (lams of
    shape (L, K + 1)); index ``min(i, S - 1)`` gives the factors of lam_i.
    """
    if lams.ndim == 1:
        r, q, a = step_factors(s2, lams)
        return r[..., None, :], q[..., None, :], a[..., None, :]
    if lams.shape[1] != n_steps + 1:
        raise ValueError(
            f"per-step penalties must have K + 1 = {n_steps + 1} columns, got {lams.shape}"
        )
    return cast("tuple[FloatArray, FloatArray, FloatArray]", step_factors(s2, lams))


def iterate_filters(
    rs: FloatArray, qs: FloatArray, schedules: FloatArray
) -> Iterator[tuple[int, int, FloatArray]]:
    """u_k of every schedule for k = 0..K, one step at a time (a generator).

    Parameters
    ----------
    rs, qs : ndarray of shape (B, L, S, p)
        From :func:`step_arrays` (S = 1 or K + 1).
    schedules : ndarray of shape (G, K)

    Yields
    ------
    k : int
    row : int
        The factor row of lam_k (the risk of u_k uses it).
    u : ndarray of shape (B, L, G, p)
    """
    G, K = schedules.shape
    S = rs.shape[-2]
    u = np.zeros(rs.shape[:2] + (G, rs.shape[-1]))
    for k in range(K + 1):
        if k:
            i = min(k - 1, S - 1)
            u = advance_u(u, rs[..., i, None, :], qs[..., i, None, :], schedules[:, k - 1, None])
        yield k, min(k, S - 1), u


def sweep_risk(
    s2: FloatArray,
    t: FloatArray,
    noise_var: ArrayLike,
    n: int,
    lams: FloatArray,
    schedules: FloatArray,
) -> FloatArray:
    """Excess risk of every schedule after every k = 0..K steps.

    Parameters
    ----------
    s2, t : ndarray of shape (B, p)
    noise_var : float or ndarray of shape (B,)
    n : int
    lams : ndarray of shape (L,), or (L, K + 1)
        One penalty per lambda, or a schedule lam_0..lam_K per row (k steps
        use its first k + 1 entries).
    schedules : ndarray of shape (G, K)
        Row g holds xi_1..xi_K; k steps use its first k entries (a constant
        schedule xi_i = xi repeats one value).

    Returns
    -------
    risk : ndarray of shape (B, L, G, K + 1)
    """
    G, K = schedules.shape
    rs, qs, a_s = step_arrays(s2, lams, K)  # (B, L, S, p)
    S = rs.shape[-2]
    sigma2 = np.asarray(noise_var, dtype=np.float64)[..., None, None, None]
    w = (s2 / n)[..., None, None, :]
    bias_ws = (w * (t * t)[..., None, None, :] * np.ones_like(a_s))[..., None]  # (B, L, S, p, 1)
    noise_ws = (w * sigma2 * s2[..., None, None, :] * a_s * a_s)[..., None]
    u = np.zeros(s2.shape[:-1] + (rs.shape[-3], G, s2.shape[-1]))  # (B, L, G, p)
    bias, var = np.empty_like(u), np.empty_like(u)
    out = np.empty(u.shape[:-1] + (K + 1,))
    for k in range(K + 1):
        i = min(k, S - 1)
        r, q = rs[..., i, None, :], qs[..., i, None, :]  # (B, L, 1, p)
        if k:  # u <- xi_k (q + r u), in place; bias holds q + r u of step k - 1
            np.multiply(bias, schedules[:, k - 1, None], out=u)
        np.multiply(r, u, out=bias)
        bias += q
        np.square(bias, out=var)
        out[..., k] = (var @ bias_ws[..., i, :, :])[..., 0]
        np.subtract(1.0, u, out=var)
        np.square(var, out=var)
        out[..., k] += (var @ noise_ws[..., i, :, :])[..., 0]
    return out


def eval_projection(W: FloatArray, y_eval: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Compress an evaluation set: W = X_eval V = Q R (thin QR).

    Parameters
    ----------
    W : ndarray of shape (..., n_eval, p)
    y_eval : ndarray of shape (..., n_eval)

    Returns
    -------
    R : ndarray of shape (..., m, p), m = min(n_eval, p)
    c : ndarray of shape (..., m)
        Q^T y_eval.
    resid2 : ndarray of shape (...)
        ||y_eval - Q c||^2, the part no model in range(W) can fit.
    """
    Q, R = np.linalg.qr(W)
    c = np.einsum("...nm,...n->...m", Q, y_eval)
    resid = y_eval - np.einsum("...nm,...m->...n", Q, c)
    return R, c, np.sum(resid * resid, axis=-1)


def eval_mse(
    R: FloatArray, c: FloatArray, resid2: FloatArray, n_eval: int, coef: FloatArray
) -> FloatArray:
    """Mean squared error of the predictions W coef on the evaluation set.

    (resid2 + ||c - R coef||^2) / n_eval: a sum of squares, no cancellation.

    Parameters
    ----------
    R, c, resid2 : ndarray of shape (..., m, p), (..., m), (...)
    coef : ndarray of shape (..., N, p)
        N coefficient vectors (in the eigenbasis) per problem.

    Returns
    -------
    mse : ndarray of shape (..., N)
    """
    err = c[..., None, :] - coef @ np.swapaxes(R, -1, -2)
    return cast(FloatArray, (resid2[..., None] + np.sum(err * err, axis=-1)) / n_eval)


def sweep_mse(
    s2: FloatArray,
    z: FloatArray,
    R: FloatArray,
    c: FloatArray,
    resid2: FloatArray,
    n_eval: int,
    lams: FloatArray,
    schedules: FloatArray,
) -> FloatArray:
    """Evaluation-set MSE of every schedule after every k = 0..K steps.

    Parameters
    ----------
    s2, z : ndarray of shape (B, p)
    R, c, resid2 : from :func:`eval_projection`
    n_eval : int
    lams : ndarray of shape (L,), or (L, K + 1) per-step penalties
    schedules : ndarray of shape (G, K)

    Returns
    -------
    mse : ndarray of shape (B, L, G, K + 1)
    """
    G, K = schedules.shape
    rs, qs, a_s = step_arrays(s2, lams, K)  # (B, L, S, p)
    gs = a_s * z[..., None, None, :]
    B, L, p = s2.shape[0], rs.shape[1], s2.shape[-1]
    out = np.empty((B, L, G, K + 1))
    for k, row, u in iterate_filters(rs, qs, schedules):
        coef = ((1.0 - u) * gs[..., row, None, :]).reshape(B, L * G, p)
        out[..., k] = eval_mse(R, c, resid2, n_eval, coef).reshape(B, L, G)
    return out


def oracle_risk(
    s2: FloatArray,
    t: FloatArray,
    noise_var: ArrayLike,
    n: int,
    lams: FloatArray,
    *,
    rtol: float = 0.0,
) -> FloatArray:
    """Risk of the best filter that is a function of the eigenvalue (k -> infinity).

    Per direction the best phi is b/a with
    a = w (r^2 t^2 + e), b = w r t^2, w = s^2/n, e = sigma^2 s^2/(s^2 + lam)^2,
    leaving w t^2 e / (r^2 t^2 + e). Eigenvalues equal to within ``rtol``
    (relative; :func:`fastsd.decompose` already makes numerically repeated
    eigenvalues exactly equal) form one group sharing one filter value
    phi_G = sum b / sum a, which adds sum_j a_j (phi_G - phi_j*)^2.

    Returns
    -------
    risk : ndarray of shape (..., L)
    """
    r, _ = spectral_factors(s2, lams)
    bias_w, noise_w = risk_weights(s2, t, noise_var, n, lams)
    a = r * r * bias_w + noise_w
    b = r * bias_w
    live = a > 0
    safe_a = np.where(live, a, 1.0)
    per_dir = np.where(live, bias_w * noise_w / safe_a, 0.0)
    phi_star = np.where(live, b / safe_a, 0.0)

    # group labels: sorted s2 split where the relative gap exceeds rtol
    order = np.argsort(s2, axis=-1)
    s_sorted = np.take_along_axis(s2, order, axis=-1)
    new_group = np.diff(s_sorted, axis=-1) > rtol * np.abs(s_sorted[..., 1:])
    labels_sorted = np.concatenate(
        [np.zeros(s2.shape[:-1] + (1,), dtype=int), np.cumsum(new_group, axis=-1)], axis=-1
    )
    labels = np.empty_like(labels_sorted)
    np.put_along_axis(labels, order, labels_sorted, axis=-1)
    p = s2.shape[-1]
    onehot = (labels[..., :, None] == np.arange(p)).astype(np.float64)  # (..., p, groups)
    onehot = onehot[..., None, :, :]
    sum_a = np.einsum("...lp,...lpg->...lg", a, onehot)
    sum_b = np.einsum("...lp,...lpg->...lg", b, onehot)
    phi_group = np.where(sum_a > 0, sum_b / np.where(sum_a > 0, sum_a, 1.0), 0.0)
    phi_dir = np.einsum("...lg,...lpg->...lp", phi_group, onehot)
    return cast(FloatArray, np.sum(per_dir + a * (phi_dir - phi_star) ** 2, axis=-1))
