r"""Synthetic problem families of the paper, as batches for the sweep engine.

Every family builds designs with a prescribed spectrum,

    X = U diag(s) V^T,   U (n, d) with orthonormal columns,  V (d, d) orthogonal,

both Haar-random (QR of a Gaussian matrix, sign-fixed), so X^T X = V diag(s^2) V^T
and the eigenvectors of X^T X are the columns of V. The true parameter is given
by its coordinates in that eigenbasis, theta* = V c, so "aligned with one
eigenvector" is exact (c = ||theta*|| e_j) and does not depend on the seed.

The squared singular values are proportional to n (s_j^2 = n * level_j with
levels in (0, 1]), so the covariance X^T X / n has eigenvalues ``level_j``
whatever n; the fixed-design excess risk then depends on the noise only through
``noise_var / n`` and on ``U``, ``V`` not at all (the seed only changes the
matrices, never a risk).

Families
--------
:func:`theorem1_family`
    Theorem 1 of Pareek, Du & Oh (arXiv 2407.04600): rank r, r distinct
    singular values, theta* on one eigenvector. Optimal r-step SD reaches the
    per-direction oracle and beats optimal ridge and optimal 1-step SD by a
    factor that grows linearly in r.
:func:`repeated_singular_values`
    Violates the distinct-singular-value assumption.
:func:`spread_theta`
    Violates the alignment assumption: theta* spread over the eigenvectors.
:func:`singular_gap_family`
    A few singular values with a varying relative gap (optimal xi blows up as
    the gap closes).
:func:`random_design_family`
    Random design: rows of X i.i.d. N(0, Sigma); carries ``cov`` = Sigma for
    the population risk (``fastsd.excess_risk(..., cov=batch.cov)``).
:func:`random_fourier_family`
    Linear ridge on D random Fourier features of 1-D..d inputs, approximating
    RBF kernel ridge (the kernel result is the D -> infinity limit).

Each returns a :class:`ProblemBatch`; pass ``batch.X, batch.theta_star,
batch.noise_var`` to :func:`fastsd.sweep_optimal` (or call
:meth:`ProblemBatch.sweep_optimal`).
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import check_result_size
from .decomposition import decompose
from .engine.sweeps import sweep_optimal

if TYPE_CHECKING:
    from .decomposition import Decomposition

__all__ = [
    "ProblemBatch",
    "concat_batches",
    "theorem1_family",
    "repeated_singular_values",
    "spread_theta",
    "singular_gap_family",
    "evenly_spaced_levels",
    "random_design_family",
    "random_fourier_family",
    "FAMILY_ARRAYS",
    "family_grid",
]


# --------------------------------------------------------------------------- container


def _frozen(arr: ArrayLike) -> NDArray[Any]:
    arr = np.ascontiguousarray(arr)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class ProblemBatch:
    """A batch of B fixed-design regression problems of one shape.

    Attributes
    ----------
    X : ndarray of shape (B, n, d)
        Designs (read-only).
    theta_star : ndarray of shape (B, d)
        True parameters (read-only).
    noise_var : ndarray of shape (B,)
        Noise variances sigma^2 (read-only).
    singular_values : ndarray of shape (B, d)
        The singular values X was built with, descending, zero past the rank.
    eigvecs : ndarray of shape (B, d, d)
        V: column j is the eigenvector of X^T X for ``singular_values[:, j]``.
    labels : dict of str -> ndarray of shape (B,)
        Per-problem labels (e.g. ``rank``, ``gap``, ``case``).
    meta : dict
        Construction parameters shared by the batch (family name, n, seed...).
    cov : ndarray of shape (B, d, d), or None
        Feature covariance Sigma of random-design families (rows of X drawn
        from N(0, Sigma)); pass it as ``cov=`` for the population risk.
    """

    X: NDArray[np.float64]
    theta_star: NDArray[np.float64]
    noise_var: NDArray[np.float64]
    singular_values: NDArray[np.float64]
    eigvecs: NDArray[np.float64]
    labels: dict[str, NDArray[Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    cov: NDArray[np.float64] | None = None

    def __repr__(self) -> str:
        B, n, d = self.X.shape
        family = self.meta.get("family")
        return (
            f"ProblemBatch(B={B}, n={n}, d={d}"
            + (f", family={family!r}" if family is not None else "")
            + f", labels={sorted(self.labels)}, cov={'yes' if self.cov is not None else 'no'})"
        )

    def __post_init__(self) -> None:
        B, n, d = self.X.shape
        shapes = {
            "theta_star": (B, d),
            "noise_var": (B,),
            "singular_values": (B, d),
            "eigvecs": (B, d, d),
        }
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {getattr(self, name).shape}")
        for name, col in self.labels.items():
            if np.shape(col) != (B,):
                raise ValueError(f"labels[{name!r}] must have shape ({B},), got {np.shape(col)}")
        if self.cov is not None:
            if np.shape(self.cov) != (B, d, d):
                raise ValueError(f"cov must have shape {(B, d, d)}, got {np.shape(self.cov)}")
            object.__setattr__(self, "cov", _frozen(self.cov))
        for name in ("X", "theta_star", "noise_var", "singular_values", "eigvecs"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(
            self, "labels", {k: _frozen(np.asarray(v)) for k, v in self.labels.items()}
        )

    @property
    def batch_size(self) -> int:
        """B, the number of problems."""
        return int(self.X.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[2])

    def __len__(self) -> int:
        return self.batch_size

    def decompose(self, **kwargs: Any) -> Decomposition:
        """:func:`fastsd.decompose` of the batch (keyword arguments passed on)."""
        return decompose(self.X, **kwargs)

    def sweep_optimal(
        self,
        lams: ArrayLike,
        max_steps: int,
        *,
        backend: str = "numba",
        threads: int | None = None,
        method: str = "auto",
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """:func:`fastsd.sweep_optimal` on this batch.

        Returns
        -------
        risk : ndarray of shape (B, L, K + 1)
        xi : ndarray of shape (B, L, K, K)
        """
        return sweep_optimal(
            self.decompose(method=method),
            self.theta_star,
            self.noise_var,
            lams,
            max_steps,
            backend=backend,
            threads=threads,
        )


def concat_batches(*batches: ProblemBatch) -> ProblemBatch:
    """Stack batches of the same (n, d) into one (labels must share their keys).

    Parameters
    ----------
    *batches : ProblemBatch

    Returns
    -------
    ProblemBatch
        ``meta`` is ``{"parts": [b.meta for b in batches]}``.
    """
    if not batches:
        raise ValueError("batches: pass at least one ProblemBatch")
    shape = batches[0].X.shape[1:]
    keys = set(batches[0].labels)
    for b in batches:
        if not isinstance(b, ProblemBatch):
            raise TypeError(f"batches must be ProblemBatch instances, got {type(b).__name__}")
        if b.X.shape[1:] != shape:
            raise ValueError(f"batches must share (n, d) = {shape}, got {b.X.shape[1:]}")
        if set(b.labels) != keys:
            raise ValueError(
                f"batches must share label keys {sorted(keys)}, got {sorted(b.labels)}"
            )
    has_cov = {b.cov is not None for b in batches}
    if len(has_cov) > 1:
        raise ValueError("batches must all carry cov (random design) or none")
    cat: Callable[[str], NDArray[Any]] = lambda name: np.concatenate(
        [getattr(b, name) for b in batches]
    )
    return ProblemBatch(
        cov=cat("cov") if has_cov == {True} else None,
        X=cat("X"),
        theta_star=cat("theta_star"),
        noise_var=cat("noise_var"),
        singular_values=cat("singular_values"),
        eigvecs=cat("eigvecs"),
        labels={k: np.concatenate([b.labels[k] for b in batches]) for k in keys},
        meta={"parts": [b.meta for b in batches]},
    )


# --------------------------------------------------------------------------- checks


def _rng(seed: object) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        if seed is not None and int(seed) < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed}")
        return np.random.default_rng(cast("int | None", seed))
    raise TypeError(f"seed must be an int, None or a numpy Generator, got {type(seed).__name__}")


def _check_size(func: str, shapes: list[tuple[int, ...]]) -> None:
    """The arrays of a batch under :data:`fastsd._config.MAX_RESULT_BYTES`, before they exist."""
    check_result_size(
        func,
        shapes,
        what="the problems' arrays",
        fix="use fewer problems, or smaller n and d",
    )


def _int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _positive(
    value: object, name: str, *, allow_zero: bool = False, upper: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    ok = np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if ok and upper is not None:
        ok = value < upper
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        if upper is not None:
            bound += f" and < {upper}"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return value


def _n_samples(n: object, d: int) -> int:
    if n is None:
        return max(128, 2 * d)
    n = _int(n, "n", 1)
    if n < d:
        raise ValueError(
            f"n must be >= d = {d} (the designs have orthonormal U of shape (n, d)), got {n}"
        )
    return n


def _spectrum_params(
    n: object, d: int, noise_var: object, spread: object, theta_norm: object
) -> tuple[int, float, float, float]:
    """(n, noise_var, spread, theta_norm) checked, as :func:`theorem1_family` and the
    families built on its spectrum take them."""
    return (
        _n_samples(n, d),
        _positive(noise_var, "noise_var"),
        _positive(spread, "spread", upper=1.0),
        _positive(theta_norm, "theta_norm"),
    )


def evenly_spaced_levels(r: int, spread: float) -> NDArray[np.float64]:
    """Eigenvalues of X^T X / n used by the families: 1 - spread * j / r, j = 0..r-1.

    Parameters
    ----------
    r : int
        Number of distinct levels.
    spread : float
        In (0, 1): the levels fill (1 - spread, 1] evenly.

    Returns
    -------
    ndarray of shape (r,)
        Descending, distinct, in (1 - spread, 1].
    """
    return 1.0 - spread * np.arange(r) / r


# --------------------------------------------------------------------------- builder


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> NDArray[np.float64]:
    """Haar-random matrix with orthonormal columns (QR with the sign fix)."""
    Q, R = np.linalg.qr(rng.normal(size=(rows, cols)))
    return Q * np.where(np.diag(R) < 0, -1.0, 1.0)


def _right_svd(X: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Singular values and the full right singular basis of each problem.

    Parameters
    ----------
    X : ndarray of shape (B, n, d)

    Returns
    -------
    s : ndarray of shape (B, d)
        Descending, zero past min(n, d).
    V : ndarray of shape (B, d, d)
        Column j of V[b] is the j-th eigenvector of X[b]^T X[b].
    """
    B, _, d = X.shape
    s = np.zeros((B, d))
    V = np.empty((B, d, d))
    for b in range(B):
        _, sv, Vt = np.linalg.svd(X[b])
        s[b, : sv.size] = sv
        V[b] = Vt.T
    return s, V


def _build(
    s: NDArray[np.float64],
    coords: NDArray[np.float64],
    n: int,
    noise_var: float,
    rng: np.random.Generator,
    labels: dict[str, NDArray[Any]],
    meta: dict[str, Any],
    func: str,
) -> ProblemBatch:
    """X = U diag(s) V^T and theta* = V coords for each row of s (B, d)."""
    B, d = s.shape
    _check_size(func, [(B, n, d), (B, d, d), (n, d)])
    X = np.empty((B, n, d))
    V = np.empty((B, d, d))
    for b in range(B):
        U = _orthonormal(rng, n, d)
        V[b] = _orthonormal(rng, d, d)
        X[b] = (U * s[b]) @ V[b].T
    theta = np.einsum("bij,bj->bi", V, coords)
    return ProblemBatch(
        X=X,
        theta_star=theta,
        noise_var=np.full(B, float(noise_var)),
        singular_values=s,
        eigvecs=V,
        labels=labels,
        meta=meta,
    )


# --------------------------------------------------------------------------- families


def theorem1_family(
    ranks: ArrayLike,
    *,
    n: int | None = None,
    d: int | None = None,
    noise_var: float = 0.1,
    spread: float = 0.5,
    align: str = "top",
    theta_norm: float = 1.0,
    seed: int | np.random.Generator | None = 0,
) -> ProblemBatch:
    r"""The Theorem 1 family: rank r, distinct singular values, theta* on one eigenvector.

    For each rank r: ``s_j^2 = n (1 - spread (j - 1) / r)``, j = 1..r (r distinct
    values evenly filling (n(1 - spread), n]), the other d - r singular values
    zero, and ``theta* = theta_norm * v_j`` for one eigenvector v_j of X^T X.

    Parameters
    ----------
    ranks : sequence of int
        The ranks r >= 1, one problem each (B = len(ranks)).
    n : int, optional
        Samples; default ``max(128, 2 d)``. Must be >= d.
    d : int, optional
        Features; default ``max(ranks)`` (so every problem shares one shape and
        the batch goes through one sweep).
    noise_var : float, default=0.1
        sigma^2 > 0. With ``theta_norm=1`` the signal-to-noise ratio per
        direction is about ``n / noise_var`` (1280 by default): Theorem 1's
        separation needs the noise to be small against the signal.
    spread : float, default=0.5
        In (0, 1): relative width of the band of squared singular values.
    align : {"top", "bottom"}, default="top"
        Which eigenvector theta* lies on: the largest singular value (v_1) or
        the smallest nonzero one (v_r). With "bottom" 1-step SD barely improves
        on ridge (relative 1e-5 in the defaults): both baselines nearly coincide.
    theta_norm : float, default=1.0
        ||theta*||.
    seed : int, None or numpy.random.Generator

    Returns
    -------
    ProblemBatch
        X (B, n, d), theta_star (B, d), noise_var (B,); labels ``rank`` and
        ``align_index`` (0-based index of theta*'s eigenvector, by decreasing
        singular value).

    Notes
    -----
    Why the gain is linear in r: at high SNR the optimal ridge must keep the
    signal direction almost unshrunk, so its filter passes the noise of all r
    directions (risk ~ r sigma^2 / n); 1-step SD has one more degree of freedom
    (its filter r_j (1 - xi_bar q_j) can vanish at one node), still ~ c r sigma^2/n.
    r-step SD realises any filter values at r distinct nodes, hence the
    per-direction oracle, which keeps only the signal direction (~ sigma^2 / n).

    Examples
    --------
    >>> batch = theorem1_family([2, 4, 8])
    >>> batch.X.shape, batch.theta_star.shape, batch.labels["rank"].tolist()
    ((3, 128, 8), (3, 8), [2, 4, 8])
    """
    try:
        ranks = np.asarray(ranks)
    except Exception:  # pragma: no cover - ragged input
        raise TypeError("ranks must be a sequence of integers") from None
    if ranks.ndim != 1 or ranks.size == 0:
        raise ValueError(
            f"ranks must be a non-empty 1-D sequence of integers, got shape {ranks.shape}"
        )
    if not np.issubdtype(ranks.dtype, np.integer):
        raise TypeError(f"ranks must hold integers, got dtype {ranks.dtype}")
    if np.any(ranks < 1):
        raise ValueError(f"ranks must all be >= 1, got min {ranks.min()}")
    rmax = int(ranks.max())
    d = rmax if d is None else _int(d, "d", 1)
    if d < rmax:
        raise ValueError(f"d must be >= max(ranks) = {rmax}, got {d}")
    n, noise_var, spread, theta_norm = _spectrum_params(n, d, noise_var, spread, theta_norm)
    if align not in ("top", "bottom"):
        raise ValueError(f"align must be 'top' or 'bottom', got {align!r}")
    rng = _rng(seed)

    B = ranks.size
    s = np.zeros((B, d))
    coords = np.zeros((B, d))
    index = np.empty(B, dtype=np.int64)
    for b, r in enumerate(ranks.tolist()):
        s[b, :r] = np.sqrt(n * evenly_spaced_levels(r, spread))
        index[b] = 0 if align == "top" else r - 1
        coords[b, index[b]] = theta_norm
    meta = dict(
        family="theorem1",
        n=n,
        d=d,
        noise_var=noise_var,
        spread=spread,
        align=align,
        theta_norm=theta_norm,
        seed=seed if not isinstance(seed, np.random.Generator) else None,
    )
    return _build(
        s,
        coords,
        n,
        noise_var,
        rng,
        labels={"rank": ranks.astype(np.int64), "align_index": index},
        meta=meta,
        func="theorem1_family",
    )


def repeated_singular_values(
    d: int = 4,
    *,
    n_distinct: int = 1,
    n: int | None = None,
    noise_var: float = 0.1,
    spread: float = 0.5,
    theta_norm: float = 1.0,
    seed: int | np.random.Generator | None = 0,
) -> ProblemBatch:
    r"""Violates Assumption 1 (distinct singular values): values repeated.

    The d squared singular values take ``n_distinct`` values
    ``n (1 - spread m / n_distinct)``, m = 0..n_distinct-1, each repeated
    ``d / n_distinct`` times; theta* = theta_norm * v_1 (inside the top,
    repeated, eigenspace). With ``n_distinct=1`` (X^T X = n I) every spectral
    filter is a scalar, so no number of SD steps improves on optimal ridge.

    Parameters
    ----------
    d : int, default=4
        Features (= rank).
    n_distinct : int, default=1
        Number of distinct singular values; 1 <= n_distinct < d and a divisor of d.
    n, noise_var, spread, theta_norm, seed
        As in :func:`theorem1_family`.

    Returns
    -------
    ProblemBatch
        One problem (B = 1), labels ``case`` = "repeated singular values" and
        ``n_distinct``.

    Examples
    --------
    >>> b = repeated_singular_values(4)
    >>> np.round(b.singular_values[0] ** 2 / b.n_samples, 6).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    d = _int(d, "d", 2)
    n_distinct = _int(n_distinct, "n_distinct", 1)
    if n_distinct >= d or d % n_distinct:
        raise ValueError(
            f"n_distinct must be < d = {d} and divide it (each value repeated d / n_distinct "
            f"times), got {n_distinct}"
        )
    n, noise_var, spread, theta_norm = _spectrum_params(n, d, noise_var, spread, theta_norm)
    levels = np.repeat(evenly_spaced_levels(n_distinct, spread), d // n_distinct)
    s = np.sqrt(n * levels)[None]
    coords = np.zeros((1, d))
    coords[0, 0] = theta_norm
    meta = dict(
        family="repeated_singular_values",
        n=n,
        d=d,
        noise_var=noise_var,
        n_distinct=n_distinct,
        spread=spread,
        theta_norm=theta_norm,
    )
    return _build(
        s,
        coords,
        n,
        noise_var,
        _rng(seed),
        labels={
            "case": np.array(["repeated singular values"]),
            "n_distinct": np.array([n_distinct]),
        },
        meta=meta,
        func="repeated_singular_values",
    )


def spread_theta(
    d: int = 4,
    *,
    weights: ArrayLike | None = None,
    n: int | None = None,
    noise_var: float = 0.1,
    spread: float = 0.5,
    theta_norm: float = 1.0,
    seed: int | np.random.Generator | None = 0,
) -> ProblemBatch:
    r"""Violates Assumption 2 (alignment): theta* spread over the eigenvectors.

    Distinct singular values as in :func:`theorem1_family` with r = d, and
    ``theta* = theta_norm * sum_j sqrt(w_j) v_j``: the squared cosine of theta*
    with eigenvector v_j is w_j. With equal weights (the default) optimal ridge
    (lambda = sigma^2 d / ||theta*||^2) *is* the per-direction oracle filter, so
    SD cannot gain anything.

    Parameters
    ----------
    d : int, default=4
    weights : array_like of shape (d,), optional
        Non-negative squared cosines (normalised to sum 1), at least two of them
        nonzero; default uniform 1/d.
    n, noise_var, spread, theta_norm, seed
        As in :func:`theorem1_family`.

    Returns
    -------
    ProblemBatch
        One problem, labels ``case`` = "theta spread over eigenvectors" and
        ``max_cos2`` (the largest squared cosine).
    """
    d = _int(d, "d", 2)
    if weights is None:
        weights = np.full(d, 1.0 / d)
    else:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (d,):
            raise ValueError(f"weights must have shape ({d},), got {weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("weights must be finite and >= 0 (squared cosines)")
        if np.count_nonzero(weights) < 2:
            raise ValueError(
                "weights must have at least two nonzero entries "
                "(one nonzero entry is the aligned case: use theorem1_family)"
            )
        weights = cast("NDArray[np.float64]", weights / weights.sum())
    n, noise_var, spread, theta_norm = _spectrum_params(n, d, noise_var, spread, theta_norm)
    s = np.sqrt(n * evenly_spaced_levels(d, spread))[None]
    coords = (theta_norm * np.sqrt(weights))[None]
    meta = dict(
        family="spread_theta",
        n=n,
        d=d,
        noise_var=noise_var,
        spread=spread,
        theta_norm=theta_norm,
        weights=weights.tolist(),
    )
    return _build(
        s,
        coords,
        n,
        noise_var,
        _rng(seed),
        labels={
            "case": np.array(["theta spread over eigenvectors"]),
            "max_cos2": np.array([weights.max()]),
        },
        meta=meta,
        func="spread_theta",
    )


def singular_gap_family(
    gaps: ArrayLike,
    *,
    p: int = 3,
    n: int = 64,
    noise_var: float = 0.1,
    theta_norm: float = 1.0,
    seed: int | np.random.Generator | None = 0,
) -> ProblemBatch:
    r"""p singular values with a varying relative gap, theta* on the top eigenvector.

    For each gap g: ``s_j = sqrt(n) (1 - (j - 1) g)``, j = 1..p, so consecutive
    singular values differ by ``g s_1`` (relative gap g); theta* = theta_norm v_1.

    Parameters
    ----------
    gaps : sequence of float
        Relative gaps, each in (0, 1 / (p - 1)).
    p : int, default=3
        Number of singular values (= d = rank), >= 2.
    n : int, default=64
    noise_var, theta_norm, seed
        As in :func:`theorem1_family`.

    Returns
    -------
    ProblemBatch
        B = len(gaps); label ``gap``.

    Notes
    -----
    The optimal k-step xi interpolates the oracle filter at the p nodes with a
    degree-k polynomial; as the nodes merge its coefficients (and xi) grow like
    ``gap^-(k-1)`` for k <= p.
    """
    p = _int(p, "p", 2)
    gaps = np.asarray(gaps, dtype=float)
    if gaps.ndim != 1 or gaps.size == 0:
        raise ValueError(f"gaps must be a non-empty 1-D sequence, got shape {gaps.shape}")
    if not np.all(np.isfinite(gaps)) or np.any(gaps <= 0) or np.any(gaps * (p - 1) >= 1):
        raise ValueError(
            f"gaps must lie in (0, 1/(p-1)) = (0, {1 / (p - 1):.4g}) so that all "
            f"p = {p} singular values stay positive"
        )
    n = _n_samples(n, p)
    noise_var = _positive(noise_var, "noise_var")
    theta_norm = _positive(theta_norm, "theta_norm")
    s = np.sqrt(n) * (1.0 - gaps[:, None] * np.arange(p)[None])
    coords = np.zeros((gaps.size, p))
    coords[:, 0] = theta_norm
    meta = dict(family="singular_gap", n=n, p=p, noise_var=noise_var, theta_norm=theta_norm)
    return _build(
        s, coords, n, noise_var, _rng(seed), {"gap": gaps}, meta, func="singular_gap_family"
    )


def random_design_family(
    levels: ArrayLike,
    *,
    n: int = 64,
    batch: int = 8,
    noise_var: float = 0.1,
    theta_norm: float = 1.0,
    seed: int | np.random.Generator | None = 0,
) -> ProblemBatch:
    """Random-design problems: rows of X i.i.d. N(0, Sigma), Sigma = Q diag(levels) Q^T.

    Parameters
    ----------
    levels : array_like of shape (d,)
        Eigenvalues of Sigma, >= 0 (any order).
    n : int, default=64
        Samples per problem (n < d is allowed).
    batch : int, default=8
        B, problems drawn (each with its own Haar-random Q, X and theta*).
    noise_var : float, default=0.1
    theta_norm : float, default=1.0
        ||theta*||; its direction is uniformly random.
    seed : int, None or numpy Generator

    Returns
    -------
    ProblemBatch
        With ``cov`` (B, d, d); ``singular_values`` and ``eigvecs`` are those
        of the drawn X (zero past min(n, d)).
    """
    rng = _rng(seed)
    levels = np.asarray(levels, dtype=np.float64)
    if (
        levels.ndim != 1
        or levels.size == 0
        or not np.all(np.isfinite(levels))
        or np.any(levels < 0)
    ):
        raise ValueError(
            f"levels must be a non-empty 1-D array of finite values >= 0, got {levels!r}"
        )
    n = _int(n, "n", 1)
    B = _int(batch, "batch", 1)
    noise_var = _positive(noise_var, "noise_var", allow_zero=True)
    theta_norm = _positive(theta_norm, "theta_norm", allow_zero=True)
    d = levels.size
    _check_size("random_design_family", [(B, n, d), (B, d, d), (B, d, d)])
    X = np.empty((B, n, d))
    cov = np.empty((B, d, d))
    theta = np.empty((B, d))
    for b in range(B):
        Q = _orthonormal(rng, d, d)
        root = Q * np.sqrt(levels)
        cov[b] = root @ root.T
        X[b] = rng.normal(size=(n, d)) @ root.T
        direction = rng.normal(size=d)
        theta[b] = theta_norm * direction / np.linalg.norm(direction)
    s, V = _right_svd(X)
    return ProblemBatch(
        X=X,
        theta_star=theta,
        noise_var=np.full(B, noise_var),
        singular_values=s,
        eigvecs=V,
        cov=cov,
        meta={
            "family": "random_design",
            "n": n,
            "levels": levels.tolist(),
            "seed": seed if isinstance(seed, int) else None,
        },
    )


def random_fourier_family(
    n_features: int,
    *,
    n: int = 64,
    d_in: int = 1,
    gamma: float = 1.0,
    n_centers: int = 5,
    batch: int = 1,
    noise_var: float = 0.1,
    seed: int = 0,
) -> ProblemBatch:
    r"""Random Fourier features (Rahimi & Recht) of an RBF kernel ridge problem.

    Inputs x_i ~ N(0, I_{d_in}); features phi(x) = sqrt(2/D) cos(W x + b) with
    W ~ N(0, 2 gamma I), b ~ U[0, 2 pi), so phi(x)^T phi(x') -> exp(-gamma ||x - x'||^2)
    as D grows. The target is an RKHS function f*(x) = sum_c beta_c k(x, x_c); its
    feature-space version is theta* = sum_c beta_c phi(x_c), so phi(x)^T theta* -> f*(x).
    Inputs, centers and beta depend only on ``seed`` (not on D), so families with
    growing D approximate one kernel problem.

    Parameters
    ----------
    n_features : int
        D, the number of random features.
    n, d_in : int
        Samples and input dimension.
    gamma : float
        RBF kernel width, k(x, x') = exp(-gamma ||x - x'||^2).
    n_centers : int
        Terms of the target's kernel expansion.
    batch : int
        B independent problems (inputs and features drawn per problem).
    noise_var : float
    seed : int

    Returns
    -------
    ProblemBatch
        X = Phi of shape (B, n, D), theta_star (B, D) (``eigvecs`` (B, D, D)
        makes memory O(B D^2): keep D to a few thousand); ``meta`` holds
        ``inputs`` (B, n, d_in), ``f_star`` (B, n) (the exact kernel target at
        the inputs), ``gram`` (B, n, n) (the exact RBF kernel matrix) and ``gamma``.
    """
    D = _int(n_features, "n_features", 1)
    n = _int(n, "n", 1)
    d_in = _int(d_in, "d_in", 1)
    C = _int(n_centers, "n_centers", 1)
    B = _int(batch, "batch", 1)
    gamma = _positive(gamma, "gamma")
    noise_var = _positive(noise_var, "noise_var", allow_zero=True)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int (one seed for every D), got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed}")
    _check_size("random_fourier_family", [(B, n, D), (B, D, D), (B, n, n)])
    data_rng = np.random.default_rng([int(seed), 0])
    feat_rng = np.random.default_rng([int(seed), 1, D])
    inputs = data_rng.normal(size=(B, n, d_in))
    centers = data_rng.normal(size=(B, C, d_in))
    beta = data_rng.normal(size=(B, C))

    def rbf(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
        sq = np.sum((a[:, :, None, :] - b[:, None, :, :]) ** 2, axis=-1)
        return np.exp(-gamma * sq)

    f_star = np.einsum("bnc,bc->bn", rbf(inputs, centers), beta)
    W = feat_rng.normal(scale=np.sqrt(2.0 * gamma), size=(B, d_in, D))
    phase = feat_rng.uniform(0.0, 2.0 * np.pi, size=(B, 1, D))

    def features(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.sqrt(2.0 / D) * np.cos(x @ W + phase)

    X = features(inputs)
    theta = np.einsum("bcd,bc->bd", features(centers), beta)
    s, V = _right_svd(X)  # full eigenbasis of X^T X: O(B D^2) memory
    return ProblemBatch(
        X=X,
        theta_star=theta,
        noise_var=np.full(B, noise_var),
        singular_values=s,
        eigvecs=V,
        meta={
            "family": "random_fourier",
            "n": n,
            "D": D,
            "gamma": gamma,
            "seed": int(seed),
            "inputs": inputs,
            "f_star": f_star,
            "gram": rbf(inputs, inputs),
        },
    )


# --------------------------------------------------------------------------- grids of a family

#: The families :func:`family_grid` draws from, with the parameters each takes as an
#: array (one value per problem or per direction); any other parameter given as a
#: list is a grid axis.
FAMILY_ARRAYS: dict[str, tuple[str, ...]] = {
    "theorem1_family": ("ranks",),
    "repeated_singular_values": (),
    "spread_theta": ("weights",),
    "singular_gap_family": ("gaps",),
    "random_design_family": ("levels",),
    "random_fourier_family": (),
}


def _axis(value: object) -> bool:
    return isinstance(value, (list, tuple)) or isinstance(value, np.ndarray) and value.ndim == 1


def _label(name: str, values: list[Any]) -> tuple[str, NDArray[Any]]:
    """The label of a grid axis: its values if numeric, else ``NAME_choice``, the index
    into them."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iuf":
        return name, arr
    return f"{name}_choice", np.arange(len(values), dtype=np.int64)


def family_grid(family: str, *, count: int = 1, **params: Any) -> ProblemBatch:
    r"""``count`` independent draws of a family at every combination of its listed parameters.

    Parameters
    ----------
    family : str
        A family of this module (a key of :data:`FAMILY_ARRAYS`).
    count : int, default=1
        Draws per combination; draw i uses the seed ``seed + i`` (``seed`` as
        given, default 0), so draws are independent and reproducible, and draw i
        of every combination shares its seed (paired comparisons).
    **params
        The family's keyword arguments. A list for a parameter the family takes
        as a scalar (``noise_var = [0.01, 0.1]``) is a grid axis; the array
        parameters of :data:`FAMILY_ARRAYS` (``ranks``, ``gaps``, ``weights``,
        ``levels``) are passed as they are. Every problem must have one shape
        (n, d): ``n``, ``d`` and what fixes them take one value.

    Returns
    -------
    ProblemBatch
        B = combinations x count x (problems per call), combination-major, then
        draw; labels per problem: each grid axis (its values, or ``NAME_choice``,
        the index into a list of strings), ``draw`` and ``seed``.

    Notes
    -----
    The fixed-design families' risks do not depend on the seed (it only rotates
    X): their draws differ in risk only through the grid axes. Random-design
    draws (:func:`random_design_family`) differ.

    Examples
    --------
    >>> batch = family_grid("theorem1_family", count=2, ranks=[2, 4], noise_var=[0.1, 1.0])
    >>> batch.batch_size, batch.labels["noise_var"].tolist()
    (8, [0.1, 0.1, 0.1, 0.1, 1.0, 1.0, 1.0, 1.0])
    """
    if family not in FAMILY_ARRAYS:
        raise ValueError(f"family must be one of {sorted(FAMILY_ARRAYS)}, got {family!r}")
    func: Callable[..., ProblemBatch] = globals()[family]
    count = _int(count, "count", 1)
    seed = params.pop("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0 (draw i uses seed + i), got {seed!r}")
    axes = {k: list(v) for k, v in params.items() if _axis(v) and k not in FAMILY_ARRAYS[family]}
    for name, values in axes.items():
        if not values:
            raise ValueError(f"{name} is an empty list; give at least one value")
    fixed = {k: v for k, v in params.items() if k not in axes}
    combos = list(itertools.product(*axes.values()))
    calls = len(combos) * count
    parts: list[ProblemBatch] = []
    for combo in combos:
        for draw in range(count):
            batch = func(**fixed, **dict(zip(axes, combo)), seed=int(seed) + draw)
            if parts and batch.X.shape[1:] != parts[0].X.shape[1:]:
                varying = ", ".join(axes) or "the parameters"
                raise ValueError(
                    f"the problems must share one shape (n, d): {dict(zip(axes, combo))} "
                    f"gives {batch.X.shape[1:]}, the first {parts[0].X.shape[1:]}; give "
                    f"{varying} values of one shape"
                )
            if not parts and calls > 1:  # the whole grid under the limit before building it
                _check_size(family, [(calls * a.shape[0],) + a.shape[1:] for a in _arrays(batch)])
            B = batch.batch_size
            labels = dict(batch.labels)
            for (name, values), value in zip(axes.items(), combo):
                key, column = _label(name, values)
                labels[key] = np.full(B, column[values.index(value)])
            labels["draw"] = np.full(B, draw, dtype=np.int64)
            labels["seed"] = np.full(B, int(seed) + draw, dtype=np.int64)
            parts.append(replace(batch, labels=labels))
    out = parts[0] if len(parts) == 1 else concat_batches(*parts)
    meta = {"family": family, "count": count, "seed": int(seed), "axes": axes}
    return replace(out, meta=meta)


def _arrays(batch: ProblemBatch) -> list[NDArray[Any]]:
    """The float arrays of a batch (what its memory is)."""
    arrays = [batch.X, batch.theta_star, batch.noise_var, batch.singular_values, batch.eigvecs]
    return arrays + ([] if batch.cov is None else [batch.cov])
