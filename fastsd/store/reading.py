r"""Reading labelled sweep results, in the layout of :mod:`fastsd.store.layout`.

:func:`label_sweep` labels in-memory arrays; :func:`load_sweep` opens a
``fastsd sweep`` output. Both give a :class:`SweepResult`: a lazily read xarray
Dataset (one chunk per stored block) and the same tidy DataFrame, streamed block
by block, so that a store of any size is read in bounded memory.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from .._typing import FloatArray
from ..exceptions import DamagedStoreError, StoreIntegrityWarning
from .integrity import damaged_message, stored_blocks, verify_store
from .layout import constant_xi, coordinates, layout, store_values
from .manifest import ZARR, load_manifest

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

__all__ = ["label_sweep", "load_sweep", "SweepResult", "to_dataframe"]


def label_sweep(
    *,
    lams: ArrayLike,
    risk: FloatArray | None = None,
    xi: FloatArray | None = None,
    val_mse: FloatArray | None = None,
    test_mse: FloatArray | None = None,
    schedules: ArrayLike | None = None,
    problem_coords: Mapping[str, ArrayLike] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Label the arrays of an in-memory sweep as an ``xarray.Dataset``.

    Parameters
    ----------
    lams : array_like of shape (L,)
    risk, val_mse, test_mse : ndarray of shape (B, L, G, K + 1) (fixed xi) or
        (B, L, K + 1) (optimal xi)
    xi : ndarray of shape (B, L, K, K), optional
        Optimal-xi sweeps: the layout of :func:`fastsd.sweep_optimal`.
    schedules : ndarray of shape (G, K), optional
        Fixed-xi sweeps: the schedules (constant schedules also give an ``xi``
        coordinate).
    problem_coords : dict of str -> array of shape (B,), optional
    attrs : dict, optional

    Returns
    -------
    xarray.Dataset
        The layout described in :mod:`fastsd.store`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, theta = rng.normal(size=(2, 20, 3)), rng.normal(size=(2, 3))
    >>> risk, xi = fastsd.sweep_optimal(X, theta, 1.0, [0.1, 1.0], 2)
    >>> ds = fastsd.label_sweep(lams=[0.1, 1.0], risk=risk, xi=xi)
    >>> dict(ds.sizes)
    {'problem': 2, 'lam': 2, 'k': 3, 'step': 2}
    """
    import xarray as xr

    main = risk if risk is not None else val_mse
    if main is None:
        raise ValueError("label_sweep needs risk or val_mse")
    lams = np.asarray(lams, dtype=float)
    B, K = main.shape[0], main.shape[-1] - 1
    fixed = xi is None
    if fixed and schedules is None:
        raise ValueError("fixed-xi results need their schedules (shape (G, K))")
    kind = (
        ("risk" if risk is not None else "mse")
        if fixed
        else ("optimal" if risk is not None else "optimal_validation")
    )
    result = {
        name: arr
        for name, arr in (("risk", risk), ("val_mse", val_mse), ("test_mse", test_mse), ("xi", xi))
        if arr is not None
    }
    values = store_values(kind, result)
    G = main.shape[2] if fixed else None
    variables = {
        name: (dims, values[name])
        for name, (dims, _, _) in layout(
            kind, B, lams.size, K, G, test=test_mse is not None
        ).items()
    }
    sched = np.asarray(schedules, dtype=float) if fixed else None
    coords = coordinates(B, lams, K, sched, constant_xi(sched) if fixed else None, problem_coords)
    ds = xr.Dataset(
        variables, coords={n: (d, v) for n, (d, v) in coords.items()}, attrs=dict(attrs or {})
    )
    return ds


def to_dataframe(ds: xr.Dataset) -> pd.DataFrame:
    """Tidy table of a labelled sweep: one row per (problem, lam, [schedule,] k).

    Columns: the index dims, the metrics, ``xi_reproducible`` (optimal xi),
    ``xi_1..xi_K`` (the schedule used, NaN past k), and per-problem metadata;
    all numeric (or bool).
    """
    import pandas as pd

    fixed = "schedule" in ds.dims
    order = ["problem", "lam", "schedule", "k"] if fixed else ["problem", "lam", "k"]
    K = ds.sizes["step"] if "step" in ds.dims else 0
    drop = [name for name in list(ds.variables) if "step" in ds[name].dims]
    main = ds.drop_vars(drop)
    if "step" in main.dims:
        main = main.drop_dims("step")
    df = main.to_dataframe(dim_order=order).reset_index()
    if fixed:
        steps = np.asarray(ds["xi_schedule"].values)[df["schedule"].to_numpy()]
        steps = np.where(np.arange(1, K + 1)[None, :] <= df["k"].to_numpy()[:, None], steps, np.nan)
    else:
        steps = ds["xi"].transpose(*order, "step").values.reshape(len(df), K)
    xi_cols = pd.DataFrame(steps, columns=[f"xi_{i}" for i in range(1, K + 1)], index=df.index)
    lead = order + (["xi"] if fixed and "xi" in df else [])
    metrics = [c for c in ("risk", "val_mse", "test_mse", "xi_reproducible") if c in df]
    rest = [c for c in df.columns if c not in lead and c not in metrics]
    return pd.concat([df[lead + metrics], xi_cols, df[rest]], axis=1)


#: Rows of one tidy frame (a Parquet row group, a CSV append) when exporting.
EXPORT_ROWS = 1 << 16


class SweepResult:
    """A finished (or partial) ``fastsd sweep`` output, opened by :func:`load_sweep`.

    Attributes
    ----------
    path : str
        The output directory.
    manifest : dict
        ``manifest.json``: resolved config, its hash, versions, host, plan.
    """

    def __init__(self, path: str, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest

    @property
    def complete(self) -> bool:
        """True when every block is stored (the run finished, and no marker is missing)."""
        done, total = self.blocks_done
        return bool(self.manifest.get("complete")) and done >= total

    @property
    def blocks_done(self) -> tuple[int, int]:
        """(blocks stored, blocks of the sweep)."""
        done = len(stored_blocks(self.path))
        return done, int(self.manifest.get("plan", {}).get("blocks", done))

    def to_xarray(self, dask: bool = True) -> xr.Dataset:
        """The results as an ``xarray.Dataset``, read lazily from ``results.zarr``.

        Parameters
        ----------
        dask : bool, default=True
            True: variables are Dask arrays chunked as the store (one chunk per
            block; when Dask is installed). False: lazily indexed arrays, read
            when sliced, without Dask (what the block-by-block readers use).

        Nothing is read until used; ``.load()`` reads everything into NumPy arrays.
        """
        import xarray as xr

        chunks: dict[str, int] | None = None
        if dask:
            try:
                from dask import array as _  # noqa: F401  (the chunked route needs it)

                chunks = {}
            except ImportError:  # pragma: no cover - depends on the environment
                pass
        ds: xr.Dataset = xr.open_zarr(os.path.join(self.path, ZARR), chunks=chunks)
        return ds

    def to_dataframe(self) -> pd.DataFrame:
        """Tidy pandas DataFrame of the whole sweep, in memory (see :func:`to_dataframe`;
        :meth:`iter_dataframes` and :meth:`export` work block by block)."""
        return to_dataframe(self.to_xarray().load())

    def iter_dataframes(self, rows: int = EXPORT_ROWS) -> Iterator[pd.DataFrame]:
        """The tidy table (:func:`to_dataframe`) in consecutive pieces of at most about
        ``rows`` rows, read one block at a time (memory bounded by one block).

        Concatenated, the pieces are :meth:`to_dataframe` (same rows, order, columns).
        """
        ds = self.to_xarray(dask=False)
        B, L = ds.sizes["problem"], ds.sizes["lam"]
        pb, lb = self.manifest["plan"]["chunks"]
        per_pair = rows_per_pair(ds)
        for b0 in range(0, B, pb):
            for l0 in range(0, L, lb):
                block = ds.isel(problem=slice(b0, b0 + pb), lam=slice(l0, l0 + lb)).load()
                l = block.sizes["lam"]
                step = max(1, rows // (per_pair * l))
                for p0 in range(0, block.sizes["problem"], step):
                    yield to_dataframe(block.isel(problem=slice(p0, p0 + step)))

    def export(self, path: str, format: str = "csv", rows: int = EXPORT_ROWS) -> int:
        """Write the tidy table to ``path`` block by block (Parquet row groups, CSV appends),
        into ``path + ".partial"``, renamed to ``path`` once complete.

        Parameters
        ----------
        path : str
        format : {"csv", "parquet"}
        rows : int
            Rows per Parquet row group / CSV append (about).

        Returns
        -------
        int
            The number of rows written.
        """
        if format not in ("csv", "parquet"):
            raise ValueError(f"format must be 'csv' or 'parquet', got {format!r}")
        total = 0
        writer = None
        partial = f"{path}.partial"  # renamed to path when complete
        try:
            for frame in self.iter_dataframes(rows):
                if format == "csv":
                    frame.to_csv(partial, mode="a" if total else "w", header=not total, index=False)
                else:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(partial, table.schema)
                    writer.write_table(table)
                total += len(frame)
            if writer is not None:
                writer.close()
                writer = None
            os.replace(partial, path)
        except BaseException:
            if writer is not None:
                writer.close()
            if os.path.exists(partial):
                os.remove(partial)
            raise
        return total

    def __repr__(self) -> str:
        state = "complete" if self.complete else "incomplete"
        variables = self.manifest.get("variables")
        return (
            f"SweepResult({self.path!r}, {state}"
            + (f", variables={variables}" if variables else "")
            + ")"
        )


def rows_per_pair(ds: xr.Dataset) -> int:
    """Rows of the tidy table per (problem, lambda) pair: schedules x steps."""
    return int(ds.sizes.get("schedule", 1) * ds.sizes["k"])


def load_sweep(path: str | os.PathLike[str], verify: bool = True) -> SweepResult:
    """Open the output directory of ``fastsd sweep``.

    Parameters
    ----------
    path : str or os.PathLike
        The directory holding ``manifest.json`` and ``results.zarr``.
    verify : bool, default=True
        Check every stored block against the checksums recorded when it was written
        (:mod:`fastsd.store.integrity`) before anything is read: this reads every
        chunk file once. False opens the store without reading it; a missing chunk
        then reads as NaN and a damaged one as whatever its bytes decode to.

    Returns
    -------
    SweepResult

    Raises
    ------
    DamagedStoreError
        When a stored block has a missing chunk file or one that fails its checksum:
        the message names the block, the file and the fix (``fastsd sweep CONFIG
        --resume`` recomputes it).

    Warns
    -----
    StoreIntegrityWarning
        Once, when stored blocks carry no checksums (a store written before fastsd
        recorded them): they are read unverified.
    """
    path = os.fspath(path)
    manifest = load_manifest(path)
    if verify:
        check_stored(path)
    return SweepResult(path, manifest)


def check_stored(path: str) -> None:
    """Verify the stored blocks of the sweep in ``path`` (see :func:`load_sweep`)."""
    checks = verify_store(path)
    message = damaged_message(path, checks)
    if message is not None:
        raise DamagedStoreError(message)
    unverified = sum(c.status == "unverifiable" for c in checks)
    if unverified:
        warnings.warn(
            f"{unverified} of {len(checks)} stored blocks of {path} carry no checksums "
            "(written before fastsd recorded them) and are read unverified; "
            "fastsd sweep CONFIG --overwrite writes them again with checksums",
            StoreIntegrityWarning,
            stacklevel=3,
        )
