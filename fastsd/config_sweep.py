r"""User-defined sweeps from a TOML file: ``fastsd sweep CONFIG.toml``.

Example (every key is documented in the README)::

    [problems]
    source = "synthetic"          # "synthetic", "dataset", "npz" or "csv"
    family = "theorem1_family"    # a fastsd.problems function (synthetic)
    params = { ranks = [2, 4, 8], seed = 0 }

    [grid]
    lams = { start = 1e-3, stop = 1e3, num = 25 }   # log-spaced, or a list
    xis = [0.0, 0.5, 1.0]          # selection = "fixed" only
    max_steps = 4

    [run]
    selection = "oracle"           # "oracle", "validation" or "fixed"
    backend = "numba"
    threads = 2                    # optional
    output = "sweep-out"           # directory (relative to the config file)
    block = 16                     # problems per unit of work

The problems are processed in blocks; each finished block is written
atomically to ``output/parts/`` so an interrupted sweep keeps everything
finished and ``--resume`` computes only the rest. ``output/results.csv`` is
the concatenation, one tidy row per (problem, lambda, [xi,] k).
"""

from __future__ import annotations

import glob
import json
import os
import shutil

import numpy as np

from .tables import read_csv, write_csv

__all__ = ["ConfigError", "load_config", "load_problems", "run_sweep"]

SOURCES = ("synthetic", "dataset", "npz", "csv")
SELECTIONS = ("oracle", "validation", "fixed")


class ConfigError(ValueError):
    """A configuration problem, reported as one line by the CLI."""


def _toml_load(path):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None


def _lams(spec):
    if isinstance(spec, dict):
        unknown = set(spec) - {"start", "stop", "num"}
        if unknown or not {"start", "stop", "num"} <= set(spec):
            raise ConfigError("grid.lams must be a list or {start, stop, num} (log-spaced)")
        start, stop, num = spec["start"], spec["stop"], spec["num"]
        if not (isinstance(num, int) and num >= 1) or not (0 < start <= stop):
            raise ConfigError("grid.lams needs 0 < start <= stop and an integer num >= 1")
        return np.logspace(np.log10(start), np.log10(stop), num)
    try:
        lams = np.asarray(spec, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError("grid.lams must be a list of numbers or {start, stop, num}") from None
    if lams.ndim != 1 or lams.size == 0 or not np.all(np.isfinite(lams)) or np.any(lams < 0):
        raise ConfigError("grid.lams must be a non-empty list of finite numbers >= 0")
    return lams


def load_config(path):
    """Parse and validate a sweep config; returns a plain dict of checked values."""
    raw = _toml_load(path)
    unknown = set(raw) - {"problems", "grid", "run"}
    if unknown:
        raise ConfigError(f"unknown section(s) {sorted(unknown)}; expected problems, grid, run")
    problems = dict(raw.get("problems", {}))
    grid = dict(raw.get("grid", {}))
    run = dict(raw.get("run", {}))
    if problems.get("source") not in SOURCES:
        raise ConfigError(f"problems.source must be one of {SOURCES}, got {problems.get('source')!r}")
    if "lams" not in grid:
        raise ConfigError("grid.lams is required")
    K = grid.get("max_steps", 2)
    if not isinstance(K, int) or isinstance(K, bool) or K < 0:
        raise ConfigError(f"grid.max_steps must be an integer >= 0, got {K!r}")
    selection = run.get("selection", "oracle")
    if selection not in SELECTIONS:
        raise ConfigError(f"run.selection must be one of {SELECTIONS}, got {selection!r}")
    xis = None
    if selection == "fixed":
        if "xis" not in grid:
            raise ConfigError("grid.xis is required when run.selection = 'fixed'")
        xis = np.asarray(grid["xis"], dtype=float)
        if xis.ndim != 1 or xis.size == 0 or not np.all(np.isfinite(xis)):
            raise ConfigError("grid.xis must be a non-empty list of finite numbers")
    backend = run.get("backend", "numba")
    if backend not in ("numba", "numpy"):
        raise ConfigError(f"run.backend must be 'numba' or 'numpy', got {backend!r}")
    threads = run.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"run.threads must be a positive integer, got {threads!r}")
    block = run.get("block", 16)
    if not isinstance(block, int) or block < 1:
        raise ConfigError(f"run.block must be a positive integer, got {block!r}")
    base = os.path.dirname(os.path.abspath(path))
    output = os.path.join(base, run.get("output", "sweep-out"))
    for key in ("path",):
        if key in problems:
            problems[key] = os.path.join(base, problems[key])
    return dict(problems=problems, lams=_lams(grid["lams"]), xis=xis, max_steps=K,
                selection=selection, backend=backend, threads=threads, block=block,
                output=output)


def _split_rows(X, y, seed, val_fraction=0.25):
    rng = np.random.default_rng(seed)
    order = rng.permutation(X.shape[-2])
    n_val = max(1, int(round(val_fraction * X.shape[-2])))
    val, train = order[:n_val], order[n_val:]
    return X[..., train, :], y[..., train], X[..., val, :], y[..., val]


def load_problems(problems):
    """Problems as a dict: X (B, n, d), and theta_star/noise_var or y/X_val/y_val."""
    source = problems["source"]
    if source == "synthetic":
        from . import problems as families

        family = problems.get("family")
        func = getattr(families, str(family), None)
        if family is None or not callable(func) or str(family).startswith("_"):
            raise ConfigError(f"problems.family {family!r} is not a fastsd.problems function")
        try:
            batch = func(**problems.get("params", {}))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"problems.params for {family}: {exc}") from None
        return dict(X=batch.X, theta_star=batch.theta_star, noise_var=batch.noise_var)
    if source == "dataset":
        from .datasets import load_split

        seeds = problems.get("seeds", [0])
        try:
            splits = [load_split(problems.get("name", ""), seed=s) for s in seeds]
        except ValueError as exc:
            raise ConfigError(f"problems.name: {exc}") from None
        return dict(
            X=np.stack([sp.X_train for sp in splits]),
            y=np.stack([sp.y_train for sp in splits]),
            X_val=np.stack([sp.X_val for sp in splits]),
            y_val=np.stack([sp.y_val for sp in splits]),
        )
    path = problems.get("path")
    if not path or not os.path.exists(path):
        raise ConfigError(f"problems.path not found: {path!r}")
    if source == "npz":
        try:
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not a readable .npz file ({exc})") from None
        if "X" not in arrays:
            raise ConfigError(f"{path}: needs an array named X")
        X = arrays["X"]
        if X.ndim == 2:
            arrays = {k: v[None] for k, v in arrays.items() if k != "noise_var"} | (
                {"noise_var": arrays["noise_var"]} if "noise_var" in arrays else {})
        if "y" in arrays and "X_val" not in arrays:
            arrays["X"], arrays["y"], arrays["X_val"], arrays["y_val"] = _split_rows(
                arrays["X"], arrays["y"], problems.get("seed", 0))
        return arrays
    try:
        table = np.loadtxt(path, delimiter=problems.get("delimiter", ","), ndmin=2,
                           skiprows=int(problems.get("skiprows", 0)))
    except ValueError as exc:
        raise ConfigError(f"{path}: could not parse as numeric CSV ({exc}); "
                          "set problems.skiprows = 1 for a header") from None
    X, y = table[:, :-1], table[:, -1]
    X, y, X_val, y_val = _split_rows(X, y, problems.get("seed", 0))
    return dict(X=X[None], y=y[None], X_val=X_val[None], y_val=y_val[None])


def _block_rows(cfg, arrays, b0, b1):
    """Tidy rows for problems b0..b1 (global problem index in column 'problem')."""
    from .sweep import sweep_mse, sweep_optimal, sweep_optimal_validation, sweep_risk

    lams, K, sel = cfg["lams"], cfg["max_steps"], cfg["selection"]
    kw = dict(backend=cfg["backend"], threads=cfg["threads"])
    X = arrays["X"][b0:b1]
    oracle = "theta_star" in arrays
    if sel in ("oracle", "fixed") and oracle:
        theta, var = arrays["theta_star"][b0:b1], np.broadcast_to(
            np.asarray(arrays.get("noise_var", 1.0), float), (arrays["X"].shape[0],))[b0:b1]
    elif sel == "oracle" or "y" not in arrays:
        raise ConfigError("selection 'oracle' needs theta_star (synthetic or npz problems); "
                          "use selection = 'validation' for data")
    B = b1 - b0
    problem = np.arange(b0, b1)
    if sel == "fixed":
        if oracle:
            value, name = sweep_risk(X, theta, var, lams, cfg["xis"], K, **kw), "risk"
        else:
            value, name = sweep_mse(X, arrays["y"][b0:b1], arrays["X_val"][b0:b1],
                                    arrays["y_val"][b0:b1], lams, cfg["xis"], K, **kw), "val_mse"
        G = cfg["xis"].size
        idx = np.indices((B, lams.size, G, K + 1)).reshape(4, -1)
        return {"problem": problem[idx[0]], "lam": lams[idx[1]], "xi": cfg["xis"][idx[2]],
                "k": idx[3], name: value.reshape(-1)}
    if sel == "oracle":
        value, xi = sweep_optimal(X, theta, var, lams, K, **kw)
        name = "risk"
    else:
        value, xi = sweep_optimal_validation(X, arrays["y"][b0:b1], arrays["X_val"][b0:b1],
                                             arrays["y_val"][b0:b1], lams, K, **kw)
        name = "val_mse"
    idx = np.indices((B, lams.size, K + 1)).reshape(3, -1)
    xi_text = [" ".join(f"{v:.10g}" for v in xi[b, l, k - 1, :k]) if k else ""
               for b, l, k in zip(*idx)]
    return {"problem": problem[idx[0]], "lam": lams[idx[1]], "k": idx[2],
            name: value.reshape(-1), "xi": np.asarray(xi_text, dtype=object)}


def run_sweep(cfg, *, resume=False, overwrite=False, progress=True):
    """Run a validated config block by block; returns the results CSV path."""
    out = cfg["output"]
    parts = os.path.join(out, "parts")
    if os.path.exists(out) and not (resume or overwrite) and os.listdir(out):
        raise ConfigError(f"output directory {out} is not empty; pass --resume to continue "
                          "it or --overwrite to start again")
    if overwrite and os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(parts, exist_ok=True)
    arrays = load_problems(cfg["problems"])
    B = arrays["X"].shape[0]
    plan = {"problems": int(B), "block": cfg["block"], "lams": cfg["lams"].tolist(),
            "max_steps": cfg["max_steps"], "selection": cfg["selection"]}
    plan_path = os.path.join(out, "plan.json")
    if os.path.exists(plan_path):
        with open(plan_path) as f:
            if json.load(f) != plan:
                raise ConfigError(f"{out} holds a different sweep; use --overwrite")
    else:
        with open(plan_path, "w") as f:
            json.dump(plan, f)
    starts = list(range(0, B, cfg["block"]))
    todo = [b0 for b0 in starts if not os.path.exists(os.path.join(parts, f"{b0:08d}.csv"))]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(starts), initial=len(starts) - len(todo), desc="sweep",
                   unit="block")
    try:
        for b0 in todo:
            rows = _block_rows(cfg, arrays, b0, min(B, b0 + cfg["block"]))
            write_csv(os.path.join(parts, f"{b0:08d}.csv"), rows)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    results = os.path.join(out, "results.csv")
    files = sorted(glob.glob(os.path.join(parts, "*.csv")))
    tables = [read_csv(f) for f in files]
    merged = {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}
    write_csv(results, merged)
    return results
