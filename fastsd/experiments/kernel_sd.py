r"""Kernel self-distillation studies: Mobahi et al. (2020), Borup & Andersen (2021),
and a teacher-lambda x student-lambda risk map.

All three run on one synthetic 1-D regression, y = sin(2 pi x) + noise on
n points of [0, 1], with an RBF kernel, through fastsd's kernel decompositions
(one eigendecomposition of K serves every round, schedule and penalty).

* **Mobahi, Farajtabar & Bartlett** -- pure self-distillation (each round
  fits the previous round's predictions, xi = 1) in the constrained form
  min ||f||_H s.t. (1/n) ||f(X) - y_{t-1}||^2 <= eps: each round's penalty
  lam_t is the one whose training error meets the bound exactly (a 1-D
  root find on the spectrum), and the fit collapses to f = 0 once
  ||y_{t-1}||^2 <= n eps. In the eigenbasis the rounds multiply the
  coefficients by d/(d + lam_t), so the filter B_t = prod_i d/(d + lam_i)
  concentrates on the top eigenfunctions; its participation ratio
  (sum b)^2 / sum b^2 is reported as the effective number of basis
  functions. Bound checked: each round removes a residual of norm exactly
  sqrt(n eps), so ||y_t|| >= ||y_0|| - t sqrt(n eps) (triangle inequality)
  and collapse cannot come before round ||y_0|| / sqrt(n eps).
* **Borup & Andersen** -- the same kernel problem with an under-regularized
  teacher (1/30 of the best ridge penalty), with ground-truth weighting
  (targets xi f_{t-1} + (1 - xi) y; their weight on the ground truth is
  1 - xi): the in-sample risk of pure SD (xi = 1) vs the oracle-optimal xi
  per step.
* **Teacher x student map** -- optimal one-step SD risk over a grid of
  teacher and student penalties (Saglietti & Zdeborova's question, on this
  model).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq

from ..decomposition import decompose
from ..engine.single import excess_risk, optimal_xi, self_distill
from ..engine.sweeps import sweep_optimal
from ..exceptions import ignore_unrecoverable
from ..plotting import integer_ticks, pyplot

__all__ = ["sine_problem", "constrained_rounds", "write_kernel_studies"]


def sine_problem(
    n: int = 64, noise: float = 0.3, gamma: float = 1000.0, n_grid: int = 400, seed: int = 0
) -> dict[str, Any]:
    """1-D regression y = sin(2 pi x) + N(0, noise^2), x ~ U[0, 1], RBF kernel.

    The kernel is exp(-gamma (x - x')^2).

    Returns
    -------
    dict
        ``x`` (n, 1), ``y``, ``f_star`` (n,), ``grid`` (n_grid, 1), ``f_grid``,
        ``noise_var`` and the kernel decomposition ``dec`` (with y).
    """
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0.0, 1.0, n))[:, None]
    f_star = np.sin(2 * np.pi * x[:, 0])
    y = f_star + noise * rng.normal(size=n)
    grid = np.linspace(0.0, 1.0, n_grid)[:, None]
    dec = decompose(x, y, kernel="rbf", kernel_params={"gamma": gamma})
    return dict(
        x=x,
        y=y,
        f_star=f_star,
        grid=grid,
        f_grid=np.sin(2 * np.pi * grid[:, 0]),
        noise_var=noise**2,
        dec=dec,
        gamma=gamma,
    )


def _fit_error(
    lam: float,
    d: NDArray[np.float64],
    g: NDArray[np.float64],
    rest2: float,
    n: int,
) -> float:
    """(1/n) ||f - y||^2 of kernel ridge at lam on targets with U^T y = g."""
    shrink = lam / (d + lam)
    return (np.sum((shrink * g) ** 2) + rest2) / n


def constrained_rounds(problem: dict[str, Any], eps: float, max_rounds: int = 50) -> dict[str, Any]:
    """Mobahi et al.'s pure self-distillation rounds, (1/n)||f - y_{t-1}||^2 = eps each round.

    Parameters
    ----------
    problem : dict from :func:`sine_problem`
    eps : float
        Training-error bound of every round.
    max_rounds : int

    Returns
    -------
    dict
        ``lams`` (penalty of each non-collapsed round), ``collapse_round`` (first
        round whose fit is 0, or None), ``n_eff`` (effective number of basis
        functions after each round), ``test_mse`` (mean (f_t - f*)^2 on the grid
        after each round, ending with the collapsed f = 0), ``train_norm``
        (||y_t||), ``bound`` (the lower bound ||y_0|| / sqrt(n eps) on the
        collapse round).
    """
    dec = problem["dec"]
    y = problem["y"]
    n = y.size
    d, U = dec.s2, dec.U
    live = d > 0
    targets = y.copy()
    lams: list[float] = []
    n_eff: list[float] = []
    test_mse: list[float] = []
    norms: list[float | np.floating[Any]] = [np.linalg.norm(y)]
    cross = dec.cross_kernel(problem["grid"])
    collapse = None
    filt = np.ones_like(d)
    for t in range(1, max_rounds + 1):
        g = U.T @ targets
        rest2 = max(float(targets @ targets - g @ g), 0.0)
        if targets @ targets <= n * eps:  # f = 0 meets the bound: collapse
            collapse = t
            test_mse.append(float(np.mean(problem["f_grid"] ** 2)))
            break
        if _fit_error(0.0, d[live], g[live], rest2 + np.sum(g[~live] ** 2), n) >= eps:
            raise ValueError(f"eps = {eps} is below the interpolation error of round {t}")
        lo, hi = 1e-14 * d.max(), 1e14 * d.max()
        lam = brentq(
            lambda v, g=g, rest2=rest2: np.log(_fit_error(v, d, g, rest2, n) / eps),
            lo,
            hi,
            xtol=1e-300,
            rtol=1e-13,
        )
        lams.append(lam)
        filt = filt * np.where(live, d / (d + lam), 0.0)
        n_eff.append(float(filt.sum() ** 2 / np.sum(filt**2)))
        # round t = teacher (t = 1) or student t - 1 with xi = 1: fastsd's per-step lam
        alpha = self_distill(dec, None, lams[0], np.ones(t - 1), student_lams=lams[1:])
        test_mse.append(float(np.mean((cross @ alpha - problem["f_grid"]) ** 2)))
        targets = dec.U @ (d * (dec.U.T @ alpha)) + 0.0  # fitted values K alpha
        norms.append(float(np.linalg.norm(targets)))
    return dict(
        lams=np.array(lams),
        collapse_round=collapse,
        n_eff=np.array(n_eff),
        test_mse=np.array(test_mse),
        train_norm=np.array(norms),
        bound=float(np.linalg.norm(y) / np.sqrt(n * eps)),
    )


def ground_truth_weighting(
    problem: dict[str, Any], lam: float, max_steps: int, pure_steps: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], list[NDArray[np.float64]]]:
    """In-sample risk at one penalty: pure SD (xi = 1) for k = 0..pure_steps and the
    optimal xi for k = 0..max_steps (with the schedules)."""
    dec, f_star, var = problem["dec"], problem["f_star"], problem["noise_var"]
    pure = np.array(
        [float(excess_risk(dec, f_star, var, lam, np.ones(k))) for k in range(pure_steps + 1)]
    )
    best: list[float] = []
    schedules: list[NDArray[np.float64]] = []
    for k in range(max_steps + 1):
        xi, risk = optimal_xi(dec, f_star, var, lam, k)
        best.append(float(risk))
        schedules.append(xi)
    return pure, np.array(best), schedules


def teacher_student_map(
    problem: dict[str, Any], lams: ArrayLike, max_steps: int = 1
) -> NDArray[np.float64]:
    """Optimal k-step risk over teacher x student penalties, shape (L, L, K + 1)."""
    dec, f_star, var = problem["dec"], problem["f_star"], problem["noise_var"]
    with ignore_unrecoverable():  # only the risks are used
        risk, _ = sweep_optimal(
            dec, f_star, var, lams, max_steps, student_lams=lams, backend="numpy"
        )
    return risk


def write_kernel_studies(out: str, quick: bool = False) -> dict[str, Any]:
    """Run the three studies, write figures into ``out``; return summary lines and figures."""
    plt = pyplot()
    os.makedirs(out, exist_ok=True)
    problem = sine_problem(n=48 if quick else 96)
    eps = 0.1 * problem["noise_var"]
    rounds = constrained_rounds(problem, eps)
    figures = []

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    t = np.arange(1, rounds["lams"].size + 1)
    axes[0].semilogy(t, rounds["lams"], "o-")
    axes[0].set(
        xlabel="round $t$",
        ylabel=r"penalty $\lambda_t$ meeting the bound",
        title="constrained rounds",
    )
    axes[1].plot(t, rounds["n_eff"], "o-")
    axes[1].set(
        xlabel="round $t$",
        ylabel=r"$(\sum_j b_j)^2 / \sum_j b_j^2$",
        title="effective number of basis functions",
    )
    axes[2].semilogy(np.arange(1, rounds["test_mse"].size + 1), rounds["test_mse"], "o-")
    if rounds["collapse_round"] is not None:
        axes[2].axvline(rounds["collapse_round"], color="k", ls=":", label="collapse ($f = 0$)")
    axes[2].axvline(rounds["bound"], color="tab:red", ls="--", label="lower bound on rounds")
    axes[2].set(xlabel="round $t$", ylabel="test MSE against $f^*$", title="test error")
    axes[2].legend()
    for ax in axes:
        integer_ticks(ax.xaxis)
    fig.tight_layout()
    path = os.path.join(out, "mobahi_rounds.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    figures.append(path)

    grid = np.logspace(-4, 1, 12 if quick else 31)
    risk = teacher_student_map(problem, grid, 1)
    one = risk[:, :, 1]
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    im = ax.pcolormesh(grid, grid, np.log10(one).T, shading="nearest")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"teacher $\lambda_0$",
        ylabel=r"student $\lambda_1$",
        title=r"$\log_{10}$ risk, optimal one-step SD",
    )
    ax.plot(grid, grid, "w--", lw=0.8, label=r"$\lambda_0 = \lambda_1$")
    ax.legend(loc="upper left", fontsize=8)
    fig.colorbar(im, ax=ax, label=r"$\log_{10}$ excess risk")
    fig.tight_layout()
    path = os.path.join(out, "teacher_student_map.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    figures.append(path)

    # an under-regularized teacher (1/30 of the best ridge penalty): SD has work to do
    K = 8
    lam = float(grid[np.argmin(risk[:, 0, 0])] / 30.0)
    with ignore_unrecoverable():  # NaN xi: not plotted
        pure, best, schedules = ground_truth_weighting(problem, lam, K, 60)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].semilogy(range(pure.size), pure, ".-", label=r"pure SD ($\xi = 1$)")
    axes[0].semilogy(range(K + 1), best, "s-", label=r"optimal $\xi$ per step")
    axes[0].set(
        xlabel="steps $k$",
        ylabel=r"in-sample risk $\|f_k - f^*\|^2/n$",
        title=rf"ground-truth weighting ($\lambda$ = {lam:.3g})",
    )
    axes[0].legend()
    # the schedules shown in the figure are the ones the summary line quotes
    shown = [k for k in (2, 4, K) if np.all(np.isfinite(schedules[k]))]
    for k in shown:
        axes[1].plot(range(1, k + 1), 1.0 - schedules[k], "o-", label=f"$k$ = {k}")
    axes[1].axhline(0.0, color="k", lw=0.5)
    axes[1].set(
        xlabel="step $i$",
        ylabel=r"ground-truth weight $1 - \xi_i$",
        title="optimal weights per step",
    )
    integer_ticks(axes[0].xaxis)
    integer_ticks(axes[1].xaxis)
    if shown:
        axes[1].legend()
    fig.tight_layout()
    path = os.path.join(out, "borup_weighting.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    figures.append(path)

    it, js = np.unravel_index(np.argmin(one), one.shape)
    diag = np.argmin(np.diagonal(one))
    ridge = risk[:, 0, 0].min()
    finite_pure = int(np.argmin(pure))
    ground = [f"k = {k}: " + ", ".join(f"{1 - v:.3g}" for v in schedules[k]) for k in shown]
    lines = [
        f"Mobahi et al. (constrained pure SD, n = {problem['y'].size}, ε = σ²/10): "
        f"{rounds['lams'].size} non-collapsed rounds, collapse at round "
        f"{rounds['collapse_round']} (lower bound ‖y₀‖/√(nε) = {rounds['bound']:.1f}); "
        f"λₜ grows {rounds['lams'][0]:.3g} → {rounds['lams'][-1]:.3g}; effective number of "
        f"basis functions {rounds['n_eff'][0]:.1f} → {rounds['n_eff'][-1]:.1f}; test MSE "
        f"{rounds['test_mse'][0]:.4f} (round 1) → min {rounds['test_mse'].min():.4f} "
        f"(round {int(np.argmin(rounds['test_mse'])) + 1}) → {rounds['test_mse'][-1]:.4f} "
        "(collapsed).",
        f"Borup & Andersen (λ = {lam:.3g}): pure SD risk {pure[0]:.4g} (k = 0) → best "
        f"{pure.min():.4g} at k = {finite_pure} → {pure[-1]:.4g} at k = {pure.size - 1}; "
        "with the optimal "
        f"ground-truth weight per step it is non-increasing: {best[1]:.4g} (k = 1) → "
        f"{best[-1]:.4g} (k = {K}); optimal ground-truth weights 1 − ξᵢ (i = 1..k, as in the "
        "figure): " + ("; ".join(ground) if ground else "none recoverable in float64") + ".",
        f"Teacher × student (optimal one-step SD): best {one[it, js]:.4g} at λ₀ = {grid[it]:.3g}, "
        f"λ₁ = {grid[js]:.3g}; best with λ₀ = λ₁: {one[diag, diag]:.4g} (λ = {grid[diag]:.3g}); "
        f"best ridge {ridge:.4g}.",
    ]
    return dict(
        lines=lines, figures=figures, rounds=rounds, pure=pure, best=best, map=risk, grid=grid
    )
