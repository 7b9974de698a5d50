r"""Run a sweep config: ``fastsd sweep CONFIG.toml``.

The config is read and checked by :mod:`fastsd.config.schema`, its problems
built by :mod:`fastsd.config.sources`; this module estimates the sizes, plans
the blocks, and runs them with the block runner (:mod:`fastsd.blocks.runner`) on an
executor (in-process or Dask, :mod:`fastsd.blocks.executors`) into the store
(:mod:`fastsd.store`). Everything that can fail on the config or the data fails
before the output directory is touched, and a run that fails before its first
block is stored leaves nothing behind.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from numpy.typing import NDArray

from .._jit import check_threads
from ..blocks.executors import CONNECT_TIMEOUT, DaskExecutor, get_executor
from ..blocks.plan import IN_FLIGHT, block_grid, block_memory, memory_needed, plan_blocks
from ..blocks.population import PopulationTask
from ..blocks.runner import run_blocks
from ..blocks.tasks import StoreTask, SweepTask
from ..exceptions import (
    ConfigError,
    StoreIntegrityWarning,
    report_nonfinite,
    report_unrecoverable,
)
from ..store.layout import KIND_OF, METRICS, coordinates, layout, value_counts
from ..store.manifest import (
    BLOCKS,
    MANIFEST,
    ZARR,
    prepare_output,
    read_manifest,
    remove_entries,
)
from ..store.staging import remove_leftovers, remove_tree, staging_dir, swap
from ..store.writer import SweepStore
from .schema import SweepConfig, diff_configs, load_config
from .sources import load_problems

if TYPE_CHECKING:
    from ..blocks.plan import Block
    from .sources import ProblemSet

__all__ = ["ConfigError", "SweepConfig", "load_config", "plan_sweep", "run_sweep"]


def _gb(n: float) -> str:
    return f"{n / 1e9:,.3g} GB"


def plan_sweep(cfg: SweepConfig, problems: ProblemSet) -> dict[str, Any]:
    """Sizes, block plan and memory estimates of a config on its problems.

    Returns
    -------
    dict
        ``kind``, ``variables`` (name -> (dims, shape, dtype)), ``chunks``
        (problems, lambdas per block), ``blocks``, ``output_bytes``,
        ``block_bytes`` and ``peak_bytes``.

    Raises
    ------
    ConfigError
        When the output would exceed ``run.max_output_gb`` or one block
        ``run.memory_limit`` -- before anything is allocated.
    """
    run = cfg.run
    kind = KIND_OF[(run["selection"], problems.oracle)]
    X = problems.arrays["X"]
    B, n, d = X.shape
    L, K = cfg.lams.size, cfg.max_steps
    G = None if cfg.xis is None else cfg.xis.size
    variables = layout(kind, B, L, K, G, test="X_test" in problems.arrays)
    itemsize = {"float64": 8, "bool": 1}
    per_pair = sum(math.prod(shape[2:]) * itemsize[dtype] for _, shape, dtype in variables.values())
    output_bytes = B * L * per_pair
    limit = run["max_output_gb"] * 1e9
    if output_bytes > limit:
        raise ConfigError(
            f"the results would take {_gb(output_bytes)} ({B} problems x {L} lambdas x "
            f"{per_pair:,} bytes), over run.max_output_gb = {run['max_output_gb']:g}; "
            "shrink the grid (lams, xis, max_steps) or raise run.max_output_gb"
        )
    n_eval = sum(a.shape[1] for name, a in problems.arrays.items() if name in ("X_val", "X_test"))
    per_problem, work = block_memory(
        n,
        d,
        K,
        G,
        n_eval=n_eval,
        metrics=sum(name.endswith(("risk", "mse")) for name in variables),
        stored=per_pair,
        backend=run["backend"],
    )
    if "cov" in problems.arrays:  # Sigma and V^T Sigma V of each problem in a block
        per_problem += 2 * 8 * d * d
    try:
        pb, lb = plan_blocks(B, L, per_problem, work, run["memory_limit"], per_pair)
    except ValueError:
        raise ConfigError(
            f"one block (1 problem x 1 lambda) needs about "
            f"{_gb(memory_needed(per_problem, work))} of run.memory_limit, over "
            f"{_gb(run['memory_limit'])}; raise run.memory_limit or shrink max_steps / xis"
        ) from None
    if run["block"] is not None:
        pb = min(pb, run["block"])
    block_bytes = pb * (per_problem + lb * work)
    inputs = sum(a.nbytes for a in problems.arrays.values())
    return {
        "kind": kind,
        "variables": variables,
        "chunks": (pb, lb),
        "blocks": len(block_grid(B, L, pb, lb)),
        "output_bytes": int(output_bytes),
        "block_bytes": int(block_bytes),
        "peak_bytes": int(inputs + 2 * IN_FLIGHT * block_bytes),
    }


def _task(cfg: SweepConfig, problems: ProblemSet, kind: str, threads: int | None) -> SweepTask:
    a = problems.arrays
    options: dict[str, Any] = {
        name: a.get(name)
        for name in ("theta_star", "noise_var", "y", "X_val", "y_val", "X_test", "y_test")
    }
    options.update(
        schedules=cfg.schedules,
        backend=cfg.run["backend"],
        threads=threads,
    )
    if "cov" in a:  # random design: the population risk
        return PopulationTask(kind, a["X"], cfg.lams, cfg.max_steps, cov=a["cov"], **options)
    return SweepTask(kind, a["X"], cfg.lams, cfg.max_steps, **options)


def _attrs(
    cfg: SweepConfig, problems: ProblemSet, plan: dict[str, Any]
) -> dict[str, str | int | float]:
    import json

    attrs: dict[str, str | int | float] = {
        "selection": cfg.run["selection"],
        "kind": plan["kind"],
        "backend": cfg.run["backend"],
        "config_hash": cfg.hash,
        "split": json.dumps(cfg.resolved["split"]),
        "preprocess": json.dumps(cfg.resolved["preprocess"]),
    }
    for key, value in problems.attrs.items():
        attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
    return attrs


def _remove_new_output(out: str, created_dir: bool) -> None:
    """Undo a fresh run that stored no block: remove what it created, nothing else."""
    remove_entries(out, (MANIFEST, ZARR, BLOCKS))
    if created_dir and os.path.isdir(out) and not os.listdir(out):
        os.rmdir(out)


def run_sweep(
    cfg: SweepConfig | str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | Callable[[int, int], object] = True,
    scheduler: str | None = None,
    client: Any = None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> str:
    """Run a config block by block into its output directory.

    Parameters
    ----------
    cfg : SweepConfig or str
        A config from :func:`load_config`, or the path of a TOML file.
    resume : bool
        Continue the sweep in ``cfg.output`` (same config hash required).
    overwrite : bool
        Replace a previous fastsd sweep in ``cfg.output``: the new run is built beside
        it (``OUTPUT.fastsd-new-XXXXXXXX``) and swapped in once complete, so that a
        failed or killed run leaves the previous one as it was
        (:mod:`fastsd.store.staging`).
    progress : bool or callable
        A tqdm bar, or ``progress(blocks_done, blocks_total)``.
    scheduler, client, connect_timeout
        Where to compute the blocks (see :func:`fastsd.blocks.executors.get_executor`).
        Under Dask the workers write their blocks into ``cfg.output`` themselves:
        it must be a path they all see (a shared filesystem).

    Returns
    -------
    str
        The output directory; open it with :func:`fastsd.load_sweep`. Its
        manifest's ``last_run`` holds this run's timestamps (``started``,
        ``problems_loaded``, ``executor_ready``, ``store_closed``; seconds since
        the epoch), the executor and the number of blocks computed.
    """
    import zarr  # noqa: F401  (the store's library: imported with the start-up, not in the sweep)

    started = time.time()
    if not isinstance(cfg, SweepConfig):
        cfg = load_config(cfg)
    out = cfg.output
    problems = load_problems(cfg.resolved)
    plan = plan_sweep(cfg, problems)
    loaded = time.time()
    # before touching the output
    if scheduler is None and client is None:  # in process: this machine's thread limit
        try:
            check_threads(cfg.run["threads"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"run.threads: {exc}") from None
    executor = get_executor(scheduler=scheduler, client=client, connect_timeout=connect_timeout)
    with executor:
        ready = time.time()
        mode = prepare_output(
            out,
            resume=resume,
            overwrite=overwrite,
            config_hash=cfg.hash,
            config_path=cfg.path,
            diff=lambda old: diff_configs(old, cfg.resolved),
        )
        remove_leftovers(out)
        # --overwrite builds the new run beside the old one and swaps it in when complete
        staging = staging_dir(out) if mode == "replace" else None
        try:
            store, blocks, computed = _run(
                cfg, problems, plan, mode, staging or out, executor, progress
            )
            store.finish(  # complete before the executor (a local cluster) is shut down
                {
                    "executor": executor.name,
                    "blocks_computed": computed,
                    "started": started,
                    "problems_loaded": loaded,
                    "executor_ready": ready,
                    "store_closed": time.time(),
                }
            )
            if staging is not None:
                swap(staging, out)
                store = SweepStore(out, store.manifest)
        except BaseException as exc:
            if staging is None:
                raise
            remove_tree(staging)
            if isinstance(exc, KeyboardInterrupt):
                raise KeyboardInterrupt(f"the new run was discarded; {out} is unchanged") from None
            raise
    _warn(store, blocks, plan["kind"])
    return out


def _run(
    cfg: SweepConfig,
    problems: ProblemSet,
    plan: dict[str, Any],
    mode: str,
    out: str,
    executor: Any,
    progress: bool | Callable[[int, int], object],
) -> tuple[SweepStore, list[Block], int]:
    """Compute and store the blocks not yet stored in ``out``; returns the store, the
    blocks and how many were computed."""
    store, created_dir = _open_store(cfg, problems, plan, mode, out)
    if mode == "resume":
        _recheck(store)
    B, L = problems.n_problems, cfg.lams.size
    blocks = block_grid(B, L, *store.manifest["plan"]["chunks"])
    threads = None if isinstance(executor, DaskExecutor) else cfg.run["threads"]
    task = StoreTask(_task(cfg, problems, plan["kind"], threads), store.writer)
    try:
        computed = run_blocks(
            blocks,
            task,
            lambda block, record: None,  # the task stored the block
            executor=executor,
            skip=store.done(),
            progress=progress,
            desc="sweep",
        )
    except BaseException as exc:
        kept = bool(store.done())
        if mode == "new" and not kept:
            _remove_new_output(out, created_dir)
        if isinstance(exc, ConnectionError) and mode != "replace":
            hint = f"finished blocks are kept in {out}; rerun with --resume" if kept else ""
            raise ConnectionError("; ".join(filter(None, [str(exc), hint]))) from None
        raise
    return store, blocks, computed


def _recheck(store: SweepStore) -> None:
    """Resume trusts only the stored blocks that verify; the others are computed again."""
    failed, stored = store.drop_damaged()
    if failed:
        warnings.warn(
            f"resume: {len(failed)} of {stored} stored blocks failed verification (missing "
            f"or damaged chunks, first: {failed[0].file}); recomputing them",
            StoreIntegrityWarning,
            stacklevel=3,
        )


def _open_store(
    cfg: SweepConfig, problems: ProblemSet, plan: dict[str, Any], mode: str, out: str
) -> tuple[SweepStore, bool]:
    """The store in ``out`` to resume (mode "resume", ready) or a new one; and whether its
    directory is new."""
    existing = read_manifest(out) if mode == "resume" else None
    created_dir = not os.path.isdir(out)
    if existing is not None and existing.get("state") == "ready":
        return SweepStore.open(out), created_dir
    coords = coordinates(
        problems.n_problems, cfg.lams, cfg.max_steps, cfg.schedules, cfg.xis, problems.coords
    )
    keys = ("kind", "chunks", "blocks", "output_bytes", "block_bytes", "peak_bytes")
    manifest = {
        "config": cfg.resolved,
        "config_hash": cfg.hash,
        "plan": {k: plan[k] for k in keys},
    }
    try:
        store = SweepStore.create(
            out, manifest, plan["variables"], coords, plan["chunks"], _attrs(cfg, problems, plan)
        )
    except BaseException:
        _remove_new_output(out, created_dir)
        raise
    return store, created_dir


#: The counts of :func:`fastsd.store.layout.value_counts`, which every block's record holds.
_COUNTS = ("nonfinite", "metrics", "nan_xi", "schedules")


def _warn(store: SweepStore, blocks: list[Block], kind: str) -> None:
    """One warning of each kind for the whole stored sweep (non-finite metrics, unrecoverable
    xi), from the counts in the blocks' records."""
    total = dict.fromkeys(_COUNTS, 0)
    for record in store.records():
        if not set(_COUNTS) <= set(record):  # a marker written before markers held records
            record = _stored_counts(store, blocks[record["block"]])
        for key in _COUNTS:
            total[key] += record[key]
    what = "risks" if kind in ("risk", "optimal") else "MSEs"
    report_nonfinite(total["nonfinite"], total["metrics"], what, 4)
    report_unrecoverable(total["nan_xi"], total["schedules"], 4)


def _stored_counts(store: SweepStore, block: Block) -> dict[str, int]:
    """The counts of one stored block, read back from the store."""
    import zarr

    group = zarr.open_group(os.path.join(store.out, ZARR), mode="r")
    where = (slice(block.b0, block.b1), slice(block.l0, block.l1))
    names = [n for n in (*METRICS, "xi_reproducible") if n in group]
    # zarr types a selection as any array-like: these are the arrays fastsd wrote
    return value_counts({n: cast("NDArray[Any]", cast(Any, group[n])[where]) for n in names})
