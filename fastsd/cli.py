"""The ``fastsd`` command line: reproduce, sweep, export, plot, info, warmup, bench.

Errors in arguments or configs are reported as one line on stderr with a
non-zero exit status (2), never a traceback (set FASTSD_DEBUG=1 to see one);
an interrupted run exits with 130 after saying where its finished work is.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import cast

__all__ = ["main"]


class _Failure(Exception):
    """An error to report as one line."""


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .experiments.reproduce import reproduce

    summary = reproduce(
        args.output,
        quick=args.quick,
        seeds=args.seeds,
        backend=args.backend,
        progress=not args.no_progress,
        full=args.full,
    )
    print(f"report written to {summary}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .config_sweep import load_config, run_sweep
    from .core import IllConditionedXiWarning

    cfg = load_config(args.config)
    if args.output:
        cfg = cfg.with_output(args.output)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", IllConditionedXiWarning)
            out = run_sweep(
                cfg,
                resume=args.resume,
                overwrite=args.overwrite,
                progress=not args.no_progress,
                scheduler=args.scheduler,
            )
        for warning in caught:
            print(f"fastsd sweep: warning: {warning.message}", file=sys.stderr)
    except KeyboardInterrupt:
        if os.path.exists(os.path.join(cfg.output, "manifest.json")):
            raise _Failure(
                f"interrupted; finished blocks are kept in {cfg.output}, rerun with --resume"
            ) from None
        raise _Failure("interrupted before the first block; nothing was written") from None
    print(
        f"results written to {out} (open with fastsd.load_sweep; fastsd export {out} --format csv)"
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .results import load_sweep

    result = load_sweep(args.output)
    if not result.complete:
        raise ValueError(
            f"{args.output} is an unfinished sweep; finish it with "
            "fastsd sweep CONFIG --resume first"
        )
    path = args.to or os.path.join(args.output, f"results.{args.format}")
    frame = result.to_dataframe()
    if args.format == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    print(f"{len(frame)} rows written to {path}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from .plotting import plot_sweep
    from .results import load_sweep

    result = load_sweep(args.output)
    directory = args.to or os.path.join(args.output, "figures")
    os.makedirs(directory, exist_ok=True)
    for path in plot_sweep(result.to_xarray().load(), directory):
        print(f"figure written to {path}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import numba
    import numpy as np
    import scipy

    from . import __version__
    from ._jit import cache_dir
    from .sweep import sweep_risk

    sweep_risk(np.eye(3)[None], np.ones((1, 3)), 1.0, [1.0], [0.5], 1)  # start the thread pool
    lines = [
        ("fastsd", __version__),
        ("python", sys.version.split()[0]),
        ("numpy", np.__version__),
        ("scipy", scipy.__version__),
        ("numba", numba.__version__),
        (
            "numba threads",
            f"{numba.get_num_threads()} (NUMBA_NUM_THREADS="
            # set by numba.config at import time; numba exports threading_layer
            # without declaring it
            f"{numba.config.NUMBA_NUM_THREADS})",  # type: ignore[attr-defined]
        ),
        ("threading layer", numba.threading_layer()),  # type: ignore[attr-defined]
        ("kernel cache", cache_dir()),
        ("cpu count", str(os.cpu_count())),
    ]
    for optional in (
        "matplotlib",
        "tqdm",
        "sklearn",
        "asv",
        "zarr",
        "xarray",
        "pandas",
        "distributed",
    ):
        try:
            module = __import__(optional)
            lines.append((optional, getattr(module, "__version__", "installed")))
        except ImportError:
            lines.append((optional, "not installed"))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return 0


def _cmd_warmup(args: argparse.Namespace) -> int:
    from . import warmup
    from ._jit import cache_dir

    seconds = warmup()
    width = max(map(len, seconds))
    for name, value in seconds.items():
        print(f"{name:<{width}}  {value:.2f} s")
    print(f"{len(seconds)} kernels ready in {sum(seconds.values()):.2f} s (cache: {cache_dir()})")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if "--runner" in args.rest:  # the block runner and Dask executor (fastsd.perf_runner)
        from .perf_runner import main as runner_main

        return runner_main([a for a in args.rest if a != "--runner"])
    from .perf import main as bench_main

    return bench_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastsd",
        description="Fast, exact repeated self-distillation of ridge regression.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"fastsd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rep = sub.add_parser(
        "reproduce",
        help="reproduce the paper's figures and Table 1",
        description="Run the synthetic studies and the UCI protocol on the "
        "embedded defaults; write tables, figures and a summary.",
    )
    # --output everywhere a command writes a directory (as `sweep --output`); --out is an alias
    rep.add_argument(
        "--output",
        "--out",
        dest="output",
        default="fastsd-report",
        help="report directory (default: %(default)s; alias: --out)",
    )
    rep.add_argument("--quick", action="store_true", help="fewer seeds and grid points (seconds)")
    rep.add_argument(
        "--full",
        action="store_true",
        help="tuning benchmark with 20 paired splits, 10-seed learning curves (minutes)",
    )
    rep.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="number of random splits per dataset (default: 3 with --quick, else 10)",
    )
    rep.add_argument("--backend", choices=("numba", "numpy"), default="numba")
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    rep.set_defaults(func=_cmd_reproduce)

    swp = sub.add_parser(
        "sweep",
        help="run a sweep described by a TOML config",
        description="Run a user-defined sweep (user guide: 'Sweep configs').",
    )
    swp.add_argument("config", help="TOML config file")
    swp.add_argument("--output", help="override run.output")
    swp.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    swp.add_argument("--overwrite", action="store_true", help="discard an existing output")
    swp.add_argument("--no-progress", action="store_true", help="no progress bar")
    swp.add_argument(
        "--scheduler",
        default=None,
        help="compute blocks with Dask: 'local:N' (N worker processes here) or "
        "'tcp://HOST:PORT' (a running dask scheduler); default in-process",
    )
    swp.set_defaults(func=_cmd_sweep)

    exp = sub.add_parser(
        "export",
        help="write a sweep's results as one tidy table",
        description="One row per (problem, lambda, [schedule,] k), numeric "
        "columns (user guide: 'Sweep results').",
    )
    exp.add_argument("output", help="sweep output directory")
    exp.add_argument("--format", choices=("csv", "parquet"), default="csv")
    exp.add_argument("--to", help="file to write (default: OUTPUT/results.FORMAT)")
    exp.set_defaults(func=_cmd_export)

    plo = sub.add_parser(
        "plot",
        help="standard figures of a sweep (matplotlib)",
        description="Risk/MSE against lambda per k, best risk against k, "
        "heat map of the optimal xi.",
    )
    plo.add_argument("output", help="sweep output directory")
    plo.add_argument("--to", help="figure directory (default: OUTPUT/figures)")
    plo.set_defaults(func=_cmd_plot)

    info = sub.add_parser(
        "info",
        help="versions, threads, threading layer, cache location",
        description="Print the environment fastsd runs in.",
    )
    info.set_defaults(func=_cmd_info)

    warm = sub.add_parser(
        "warmup",
        help="compile or load every kernel (fills the on-disk cache)",
        description="Compile every Numba kernel, or load it from the on-disk cache, "
        "so that later sessions and workers start at once.",
    )
    warm.set_defaults(func=_cmd_warmup)

    bench = sub.add_parser(
        "bench",
        help="measure workloads W1/W2 (numba vs NumPy reference); "
        "--e2e: W3-W5 and streaming vs the BLAS limit",
        description="Measure W1/W2 (or --e2e); options are passed on (fastsd bench --help-bench).",
        add_help=False,
    )
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        # argparse's REMAINDER drops leading options ("bench --quick"): pass them on as given
        args = argparse.Namespace(command="bench", func=_cmd_bench, rest=argv[1:])
    else:
        args = parser.parse_args(argv)
    if args.command == "bench" and args.rest in (["--help-bench"], ["-h"], ["--help"]):
        args.rest = ["--help"]
    try:
        return cast(int, args.func(args))
    except _Failure as exc:
        print(f"fastsd: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("fastsd: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every error is one line (FASTSD_DEBUG=1 for the traceback)
        if os.environ.get("FASTSD_DEBUG"):
            raise
        known = isinstance(exc, (ValueError, TypeError, OSError, ImportError))
        message = " ".join(str(exc).split()) if known else f"{type(exc).__name__}: {exc}"
        print(f"fastsd {args.command}: error: {' '.join(message.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
