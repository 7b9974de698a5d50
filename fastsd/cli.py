"""The ``fastsd`` command line: reproduce, sweep, export, plot, verify, info, warmup, bench.

Errors in arguments or configs are reported as one line on stderr with a
non-zero exit status (2), never a traceback (set FASTSD_DEBUG=1 to see one);
an interrupted run exits with 130 after saying where its finished work is.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import TextIO, cast

from ._config import BACKENDS
from .blocks.executors import CONNECT_TIMEOUT

__all__ = ["main"]


class _Failure(Exception):
    """An error to report as one line."""


def _path(value: str, name: str) -> str:
    """A path argument with ``~`` and environment variables expanded."""
    from .store.manifest import expand_path

    return expand_path(value, name)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .experiments.reproduce import reproduce

    summary = reproduce(
        _path(args.output, "--output"),
        quick=args.quick,
        seeds=args.seeds,
        backend=args.backend,
        progress=not args.no_progress,
        full=args.full,
        overwrite=args.overwrite,
    )
    print(f"report written to {summary}")
    return 0


@contextlib.contextmanager
def _warning_lines(command: str) -> Iterator[None]:
    """Every warning, as it comes, as one line on stderr: ``fastsd COMMAND: warning: ...``
    (fastsd's own each time they are raised)."""
    from .exceptions import IllConditionedXiWarning, NonFiniteResultWarning, StoreIntegrityWarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        print(f"fastsd {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    with warnings.catch_warnings():
        for category in (IllConditionedXiWarning, NonFiniteResultWarning, StoreIntegrityWarning):
            warnings.simplefilter("always", category)
        warnings.showwarning = show
        yield


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .config.run import load_config, run_sweep

    cfg = load_config(_path(args.config, "config"))
    if args.output:
        cfg = cfg.with_output(_path(args.output, "--output"))
    try:
        with _warning_lines("sweep"):  # at once: "resume: N blocks failed ..." comes first
            out = run_sweep(
                cfg,
                resume=args.resume,
                overwrite=args.overwrite,
                progress=not args.no_progress,
                scheduler=args.scheduler,
                connect_timeout=args.connect_timeout,
            )
    except KeyboardInterrupt as exc:
        if str(exc):  # what the run says about its output
            raise _Failure(f"interrupted; {exc}") from None
        if os.path.exists(os.path.join(cfg.output, "manifest.json")):
            raise _Failure(
                f"interrupted; finished blocks are kept in {cfg.output}, rerun with --resume"
            ) from None
        raise _Failure("interrupted before the first block; nothing was written") from None
    print(
        f"results written to {out} (open with fastsd.load_sweep; fastsd export {out} --format csv)"
    )
    return 0


#: Table formats of ``export`` by file extension.
_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _export_target(out: str, to: str | None, fmt: str | None) -> tuple[str, str]:
    """(path, format) of ``export``: the format from the extension of ``--to``
    (``--format`` must agree), the file outside the store, its directory writable."""
    from .store.manifest import check_output_file, inside

    if to is None:
        fmt = fmt or "csv"
        return os.path.join(out, f"results.{fmt}"), fmt
    path = check_output_file(to, "--to")
    store, real = os.path.realpath(out), os.path.realpath(path)
    if inside(path, out) and os.path.relpath(real, store) not in (
        "results.csv",
        "results.parquet",
    ):
        raise ValueError(
            f"--to {path} is inside the sweep output {out}, where it could replace the "
            "store's files; write the table outside it, or omit --to (OUTPUT/results.FORMAT)"
        )
    ext = os.path.splitext(path)[1].lower()
    implied = _FORMATS.get(ext)
    if implied is None and fmt is None:
        raise ValueError(
            f"--to {path}: cannot tell the format from {ext or 'no extension'!r}; end the "
            "name in .csv or .parquet, or pass --format"
        )
    if implied is not None and fmt is not None and fmt != implied:
        raise ValueError(
            f"--to {path} names a {implied} file, but --format is {fmt}; drop --format "
            f"or end the name in .{fmt}"
        )
    fmt = fmt or implied
    assert fmt is not None  # from the extension or --format
    return path, fmt


@contextlib.contextmanager
def _reading(out: str) -> Iterator[None]:
    """Errors reading the store of ``out`` name its damaged metadata file, if one is."""
    from .store.manifest import damaged_metadata

    try:
        yield
    except Exception as exc:
        damaged = damaged_metadata(out)
        if damaged is None:
            raise
        raise ValueError(
            f"{damaged} is damaged ({type(exc).__name__}); the sweep in {out} cannot be "
            "read: run it again with --overwrite"
        ) from None


def _cmd_export(args: argparse.Namespace) -> int:
    from .store.reading import load_sweep

    out = _path(args.output, "OUTPUT")
    path, fmt = _export_target(out, args.to, args.format)
    with _warning_lines("export"), _reading(out):
        result = load_sweep(out)
        if not result.complete:
            done, total = result.blocks_done
            raise ValueError(
                f"{out} is an unfinished sweep ({done} of {total} blocks done); finish it with "
                "fastsd sweep CONFIG --resume first"
            )
        rows = result.export(path, fmt)  # block by block, in bounded memory
    print(f"{rows} rows written to {path}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from .plotting import plot_sweep
    from .store.reading import load_sweep

    out = _path(args.output, "OUTPUT")
    directory = _path(args.to, "--to") if args.to else os.path.join(out, "figures")
    with _warning_lines("plot"), _reading(out):  # nothing is created for a store not read
        result = load_sweep(out)
        data = result.to_xarray(dask=False)  # lazy: plot_sweep reads block by block
    done, total = result.blocks_done
    partial = None if result.complete else f"partial: {done} of {total} blocks"
    if partial and not args.partial:
        raise ValueError(
            f"{out} is an unfinished sweep ({done} of {total} blocks done); finish it with "
            "fastsd sweep CONFIG --resume, or pass --partial to plot the blocks done"
        )
    created = not os.path.isdir(directory)
    os.makedirs(directory, exist_ok=True)
    try:
        with _reading(out):
            paths = plot_sweep(data, directory, partial)
    except BaseException:
        if created and not os.listdir(directory):
            os.rmdir(directory)
        raise
    for path in paths:
        print(f"figure written to {path}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    import json
    from collections import Counter

    from .store.integrity import verify_store
    from .store.manifest import load_manifest

    out = _path(args.output, "OUTPUT")
    checks = verify_store(out, load_manifest(out)["plan"]["blocks"])
    counts = Counter(check.status for check in checks)
    damaged = sum(check.failed for check in checks)
    if args.json:
        report = {
            "output": out,
            "blocks": len(checks),
            "damaged": damaged,
            "counts": dict(counts),
            "checks": [check.as_dict() for check in checks],
        }
        print(json.dumps(report, indent=1))
    else:
        for check in checks:
            if check.status not in ("ok", "not done"):
                where = f": {check.file}" if check.file else ""
                detail = f" ({check.detail})" if check.detail else ""
                print(f"block {check.block}: {check.status}{where}{detail}")
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        print(f"{out}: {len(checks)} blocks: {summary}")
        if damaged:
            print(f"recompute the damaged blocks with fastsd sweep CONFIG --output {out} --resume")
    return 1 if damaged else 0


def _cmd_info(args: argparse.Namespace) -> int:
    import numba
    import numpy as np
    import scipy

    from . import __version__
    from ._jit import cache_dir
    from .engine.sweeps import sweep_risk

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
    if "--runner" in args.rest:  # the block runner and Dask executor (fastsd.bench.runner)
        from .bench.runner import main as runner_main

        return runner_main([a for a in args.rest if a != "--runner"])
    if "--scale" in args.rest:  # many Dask workers on loopback, sleeps for compute
        from .bench.scale import main as scale_main

        return scale_main([a for a in args.rest if a != "--scale"])
    if "--sweep" in args.rest:  # a sweep as users pay: API, CLI, local:2 (fastsd.bench.sweep)
        from .bench.sweep import main as sweep_main

        return sweep_main([a for a in args.rest if a != "--sweep"])
    from .bench.kernels import main as bench_main

    return bench_main(args.rest)


def _seconds(text: str) -> float:
    """A positive number of seconds (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from ._argparse import OneLineParser

    parser = OneLineParser(
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
    rep.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier report in --output (only what it wrote), or write the "
        "report beside the files of a directory that is not one",
    )
    rep.add_argument("--backend", choices=BACKENDS, default="numba")
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
    swp.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing sweep output (the new run is built beside it and swapped "
        "in when complete)",
    )
    swp.add_argument("--no-progress", action="store_true", help="no progress bar")
    swp.add_argument(
        "--scheduler",
        default=None,
        help="compute blocks with Dask: 'local:N' (N worker processes here, at most one "
        "per CPU core) or 'tcp://HOST:PORT' (a running dask scheduler); default in-process",
    )
    swp.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=CONNECT_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for a tcp:// scheduler (default: %(default)g)",
    )
    swp.set_defaults(func=_cmd_sweep)

    exp = sub.add_parser(
        "export",
        help="write a sweep's results as one tidy table",
        description="One row per (problem, lambda, [schedule,] k), numeric "
        "columns (user guide: 'Sweep results').",
    )
    exp.add_argument("output", help="sweep output directory")
    exp.add_argument(
        "--format",
        choices=("csv", "parquet"),
        default=None,
        help="table format (default: from the extension of --to, else csv)",
    )
    exp.add_argument(
        "--to",
        help="file to write, .csv or .parquet, outside OUTPUT (default: OUTPUT/results.FORMAT)",
    )
    exp.set_defaults(func=_cmd_export)

    plo = sub.add_parser(
        "plot",
        help="standard figures of a sweep (matplotlib)",
        description="Risk/MSE against lambda per k, best risk against k, "
        "heat map of the optimal xi.",
    )
    plo.add_argument("output", help="sweep output directory")
    plo.add_argument("--to", help="figure directory (default: OUTPUT/figures)")
    plo.add_argument(
        "--partial",
        action="store_true",
        help="plot an unfinished sweep (titles say 'partial: N of M blocks'; medians skip "
        "the missing values and say so)",
    )
    plo.set_defaults(func=_cmd_plot)

    ver = sub.add_parser(
        "verify",
        help="check a sweep's stored blocks against their checksums",
        description="Check every stored block of a sweep output against the checksums "
        "recorded when it was written: list each block that is damaged (missing file, "
        "checksum mismatch, damaged marker) or unverifiable (written without checksums), "
        "then the count of each status (ok, not done, ...). Exit status: 0 when every "
        "stored block verifies, 1 when damage is found, 2 on errors.",
    )
    ver.add_argument("output", help="sweep output directory")
    ver.add_argument("--json", action="store_true", help="every block's status as JSON")
    ver.set_defaults(func=_cmd_verify)

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
        "--e2e: W3-W5 and streaming vs the BLAS limit; --runner [--dask]: the block runner; "
        "--sweep: API vs fastsd sweep vs local:2; --scale: many Dask workers",
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
    except BrokenPipeError:  # the reader of stdout left (``| head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # every error is one line (FASTSD_DEBUG=1 for the traceback)
        if os.environ.get("FASTSD_DEBUG"):
            raise
        known = isinstance(exc, (ValueError, TypeError, OSError, ImportError))
        message = " ".join(str(exc).split()) if known else f"{type(exc).__name__}: {exc}"
        print(f"fastsd {args.command}: error: {' '.join(message.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
