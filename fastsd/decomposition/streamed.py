"""Designs larger than memory: the Gram route over row blocks.

A streamed X is read one block of rows at a time; each block adds
X_b^T X_b (BLAS ``dsyrk`` into one d x d matrix), X_b^T y_b and ||y_b||^2,
so memory is O(d^2 + block) however many rows X has. Then the d x d Gram
matrix is eigendecomposed exactly as for an X in memory
(:func:`fastsd.decomposition.finish_gram`: same rank cutoff, same merging).

Accepted forms of X (and, block for block, of y):

* a path to a ``.npy`` file (read with plain file reads into one reused
  buffer, so the pages of X never stay in the process);
* a 2-D ``numpy.memmap`` (or any ndarray: ``decompose`` sends only memmaps
  here);
* a Zarr array (read in blocks of whole chunks);
* a Dask array: the reductions X^T X, X^T y run on Dask's own scheduler --
  on a ``distributed`` cluster, where the chunks live -- and only d x d
  results come back;
* an iterator of row blocks (array_like of shape (m_i, d)); y then an
  iterator of blocks of the same lengths.

Every block is checked as it arrives (2-D, width d, real, finite); the
error names the block and its rows, and no result is returned.
"""

from __future__ import annotations

import collections.abc
import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from io import FileIO
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict, cast

import numpy as np

from .._typing import FloatArray
from .._validation import check_result_size

if TYPE_CHECKING:
    from .base import Decomposition
from .base import Decomposition, finish_gram, raise_nonfinite
from .lapack import blas_threads, gram, syevd_descending

__all__ = ["is_streamed", "decompose_streamed", "eval_projection", "BLOCK_BYTES"]

#: Default block: about this many bytes of X rows (a .npy file holds two:
#: one being read while the other is used).
BLOCK_BYTES = 32 << 20


class _Stats(TypedDict):
    """What one pass over a streamed X accumulates."""

    G: FloatArray
    Xty: FloatArray | None
    yy: float
    n: int
    d: int


def _is_dask(X: object) -> bool:
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "chunks")


def _is_zarr(X: object) -> bool:
    return type(X).__module__.split(".")[0] == "zarr" and hasattr(X, "shape")


def is_streamed(X: object) -> bool:
    """True for the forms of X that are read in row blocks (see the module docstring)."""
    return (
        isinstance(X, (str, os.PathLike))
        or isinstance(X, np.memmap)
        and X.ndim == 2
        or _is_dask(X)
        or _is_zarr(X)
        or isinstance(X, collections.abc.Iterator)
    )


def _block_rows(block_rows: int | None, d: int) -> int:
    if block_rows is None:
        return max(1, BLOCK_BYTES // (8 * max(1, d)))
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)):
        raise TypeError(f"block_rows must be a positive int, got {type(block_rows).__name__}")
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    return int(block_rows)


def _checked_block(
    block: Any, name: str, index: int, start: int, width: int | None, ndim: int, finite: bool = True
) -> FloatArray:
    """One block as float64, or a ValueError/TypeError naming block and rows.

    ``finite=False`` leaves the NaN/inf check to the caller (X blocks: a
    non-finite entry shows on the diagonal of the block's Gram matrix, so
    no extra pass over the block is needed; :func:`_raise_nonfinite` then
    says where).
    """
    where = f"{name} block {index} (rows {start}..)"
    try:
        arr = np.asarray(block)
    except Exception as exc:  # ragged nested lists
        raise ValueError(
            f"{where} is ragged or not an array ({exc}); every block must be "
            f"a rectangular array of real numbers"
        ) from None
    if arr.dtype == object:
        raise ValueError(
            f"{where} is ragged or not numeric (dtype object); every block must "
            "be a rectangular array of real numbers"
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.issubdtype(
        arr.dtype, np.complexfloating
    ):
        raise TypeError(f"{where} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{where} must have {ndim} dimension(s), got shape {arr.shape}")
    if ndim == 2 and width is not None and arr.shape[1] != width:
        raise ValueError(
            f"{where} has {arr.shape[1]} columns, but X has {width} "
            f"(from its first block or its shape); every block must have {width}"
        )
    arr = np.asarray(arr, dtype=np.float64)
    if finite and not np.all(np.isfinite(arr)):
        _raise_nonfinite(arr, name, index, start)
    return arr


def _raise_nonfinite(arr: FloatArray, name: str, index: int, start: int) -> NoReturn:
    bad = np.argwhere(~np.isfinite(arr))
    if not bad.size:
        raise ValueError(
            f"{name} block {index} (rows {start}..) is too large: its Gram matrix "
            f"overflows float64; rescale {name}"
        )
    bad = bad[0]
    raise ValueError(
        f"{name} block {index} contains NaN or infinite values (first at row "
        f"{start + int(bad[0])}"
        + (f", column {int(bad[1])}" if arr.ndim == 2 else "")
        + "); remove or impute them first"
    )


class _NpyFile:
    """A .npy file read by row blocks with plain reads into a reused buffer."""

    def __init__(self, path: str | os.PathLike[str], name: str) -> None:
        self.path = os.fspath(path)
        self.name = name
        if not os.path.isfile(self.path):
            raise ValueError(f"{name}: no such file {self.path!r}")
        with open(self.path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read(f)
            except ValueError as exc:
                raise ValueError(
                    f"{name} = {self.path!r} is not a .npy file ({exc}); save "
                    "it with np.save, or pass an array"
                ) from None
            self.offset = f.tell()
        if (
            dtype.hasobject
            or not (np.issubdtype(dtype, np.number) or dtype == np.bool_)
            or np.issubdtype(dtype, np.complexfloating)
        ):
            raise TypeError(f"{name} = {self.path!r} must hold real numbers, got dtype {dtype}")
        self.shape, self.fortran, self.dtype = tuple(shape), fortran, dtype
        need = self.offset + int(np.prod(self.shape, dtype=np.int64)) * dtype.itemsize
        have = os.path.getsize(self.path)
        if have < need:
            raise ValueError(
                f"{name} = {self.path!r} is truncated: its header promises shape "
                f"{self.shape} ({need:,} bytes), the file has {have:,}; save it again"
            )

    def blocks(self, rows: int) -> Iterator[Any]:
        """Blocks of ``rows`` rows; the next one is read (in a second buffer) meanwhile."""
        if self.fortran:  # columns are contiguous on disk: read through a memmap
            data = np.load(self.path, mmap_mode="r")
            for start in range(0, self.shape[0], rows):
                yield data[start : start + rows]
            return
        width = int(np.prod(self.shape[1:], dtype=np.int64))
        rows = max(1, min(rows, self.shape[0]))
        buffers = [np.empty(rows * width, dtype=self.dtype) for _ in range(2)]
        starts = range(0, self.shape[0], rows)

        def read(f: FileIO, i: int) -> Any:
            count = min(rows, self.shape[0] - starts[i]) * width
            view = buffers[i % 2][:count]
            # an ndarray is a buffer (NumPy's stubs say so only for Python >= 3.12)
            if f.readinto(memoryview(view).cast("B")) != view.nbytes:  # type: ignore[arg-type]
                raise ValueError(
                    f"{self.name} = {self.path!r} is truncated: rows from {starts[i]} are missing"
                )
            return view.reshape((-1,) + self.shape[1:])

        with open(self.path, "rb", buffering=0) as f, ThreadPoolExecutor(1) as reader:
            f.seek(self.offset)
            pending = reader.submit(read, f, 0) if len(starts) else None
            for i in range(len(starts)):
                assert pending is not None  # submitted whenever there is a block
                block = pending.result()
                if i + 1 < len(starts):
                    pending = reader.submit(read, f, i + 1)
                yield block


class _Sliced:
    """A memmap or Zarr array read by row slices (Zarr: whole chunks)."""

    def __init__(self, X: Any, name: str) -> None:
        self.X, self.name, self.shape = X, name, tuple(X.shape)
        chunks = getattr(X, "chunks", None)
        self.chunk = int(chunks[0]) if _is_zarr(X) and chunks else 1

    def blocks(self, rows: int) -> Iterator[Any]:
        rows = max(self.chunk, rows // self.chunk * self.chunk)
        for start in range(0, self.shape[0], rows):
            yield self.X[start : start + rows]


class _Blocks:
    """An iterator of row blocks (read once)."""

    def __init__(self, it: Iterator[Any], name: str) -> None:
        self.it, self.name = it, name
        self.shape: tuple[int, ...] | None = None

    def blocks(self, rows: int) -> Iterator[Any]:
        return self.it


def _source(X: Any, name: str) -> _NpyFile | _Sliced | _Blocks:
    if isinstance(X, (str, os.PathLike)):
        if not os.fspath(X).endswith(".npy"):
            raise ValueError(
                f"{name} = {os.fspath(X)!r} is not a .npy file; save it with "
                "np.save (a .npz holds several arrays: pass np.load(path)[key])"
            )
        return _NpyFile(X, name)
    if isinstance(X, collections.abc.Iterator):
        return _Blocks(X, name)
    return _Sliced(X, name)


class _Targets:
    """y read alongside X: ``take(count, index)`` returns the next ``count`` values.

    y given as blocks (an iterator) must match X's blocks one for one; any
    other form is cut to X's blocks.
    """

    data: Any  # y in memory (array or memmap), else None
    it: Iterator[Any] | None  # y's blocks when not in memory
    shape: tuple[int, ...] | None

    def __init__(self, y: Any, name: str, n: int | None, x_name: str = "X") -> None:
        self.name, self.x_name, self.pos, self.pending = name, x_name, 0, np.empty(0)
        self.data = self.it = None
        self.per_block = isinstance(y, collections.abc.Iterator)
        if self.per_block:
            self.it, self.shape = y, None
        elif isinstance(y, (str, os.PathLike)) or _is_zarr(y):
            src = _source(y, name)
            self.it, self.shape = iter(src.blocks(1 << 16)), src.shape
        else:
            self.data = y if isinstance(y, np.memmap) else np.asarray(y)
            self.shape = self.data.shape
        if self.shape is not None and (
            len(self.shape) != 1 or (n is not None and self.shape[0] != n)
        ):
            want = f"({n},) to match X" if n is not None else "(n,), one value per row of X"
            raise ValueError(f"{name} must have shape {want}, got {self.shape}")

    def _read(self, count: int) -> Any:
        if self.data is not None:
            return self.data[self.pos - count : self.pos]
        assert self.it is not None  # y is read in blocks when not in memory
        parts, have = [], 0
        while have < count:
            if self.pending.size == 0:
                self.pending = np.array(next(self.it, np.empty(0)))
                if self.pending.size == 0:
                    break
            part, self.pending = self.pending[: count - have], self.pending[count - have :]
            parts.append(part)
            have += part.size
        return np.concatenate(parts) if parts else np.empty(0)

    def take(self, count: int, index: int) -> FloatArray:
        start = self.pos
        self.pos += count
        if self.per_block:
            assert self.it is not None  # set for per-block y
            out = next(self.it, None)
            if out is None:
                raise ValueError(
                    f"{self.name} has fewer blocks than {self.x_name}: none for "
                    f"{self.x_name} block {index} (rows {start}..)"
                )
        else:
            out = self._read(count)
        out = _checked_block(out, self.name, index, start, None, 1)
        if out.shape[0] != count:
            if not self.per_block:
                raise ValueError(
                    f"{self.name} has {start + out.shape[0]} rows, {self.x_name} at least "
                    f"{start + count}; {self.name} must match {self.x_name} row for row"
                )
            raise ValueError(
                f"{self.name} block {index} has {out.shape[0]} rows, {self.x_name} block "
                f"{index} has {count} (rows {start}..); {self.name} must match "
                f"{self.x_name} row for row"
            )
        return out

    def finish(self, n: int) -> None:
        """After the pass over X's ``n`` rows: y must have had exactly as many."""
        x_name = self.x_name
        if self.shape is not None and self.shape[0] != n:  # X of unknown length (an iterator)
            raise ValueError(
                f"{self.name} has {self.shape[0]} rows, {x_name} has {n}; {self.name} "
                f"must match {x_name} row for row"
            )
        if self.data is not None:
            return
        assert self.it is not None  # y is read in blocks when not in memory
        if self.pending.size or next(self.it, None) is not None:
            raise ValueError(f"{self.name} has more rows (or blocks) than {x_name} ({n} rows)")


class StreamedX:
    """A re-readable streamed design kept by a Decomposition for U = X V / s."""

    def __init__(self, X: Any, block_rows: int, threads: int) -> None:
        self.X, self.block_rows, self.threads = X, block_rows, threads

    def matmul(self, V: FloatArray, s2: FloatArray) -> FloatArray:
        """U = X V / s (zero where s == 0), one more pass over X."""
        if _is_dask(self.X):
            U = np.asarray((self.X @ V).compute())
        elif isinstance(self.X, collections.abc.Iterator):
            raise ValueError(
                "U is not available: X was an iterator of blocks, read once; "
                "pass a re-readable X (a .npy path, memmap, Zarr or Dask array)"
            )
        else:
            src = _source(self.X, "X")
            U = np.concatenate(
                [np.asarray(b, dtype=np.float64) @ V for b in src.blocks(self.block_rows)]
            )
        s = np.sqrt(s2)
        return cast(FloatArray, np.divide(U, s, out=U, where=s > 0))

    def project_y(self, y: Any, V: FloatArray, name: str) -> FloatArray:
        """V^T X^T y for new targets (one more pass over X and y)."""
        if isinstance(self.X, collections.abc.Iterator):
            raise ValueError(
                f"{name} must be given to decompose: X was an iterator of blocks, read once"
            )
        stats = _accumulate(self.X, y, self.block_rows, self.threads, name, gram_too=False)
        assert stats["Xty"] is not None  # y was given
        return V.T @ stats["Xty"]


def _check_width(d: int, gram_too: bool = True) -> None:
    """At least one feature, and a Gram matrix and eigenvectors (d x d) under the limit."""
    if d == 0:
        raise ValueError("X must have at least one feature, got 0 columns")
    if gram_too:
        check_result_size(
            "decompose",
            [(d, d), (d, d)],
            what="X^T X and its eigenvectors",
            fix=f"X has {d} columns: a streamed X is read by rows and must have few "
            "columns (transpose it if it is stored as (features, samples))",
        )


def _accumulate(
    X: Any, y: Any, block_rows: int | None, threads: int, y_name: str = "y", gram_too: bool = True
) -> _Stats:
    """One pass: G = X^T X (upper, Fortran; unless not ``gram_too``), X^T y, ||y||^2, n, d."""
    if _is_dask(X):
        return _accumulate_dask(X, y, y_name, gram_too)
    src = _source(X, "X")
    shape = src.shape
    if shape is not None and len(shape) != 2:
        raise ValueError(f"X must have 2 dimensions (n, d) to be streamed, got shape {shape}")
    d = shape[1] if shape is not None else None
    if d is not None:
        _check_width(d, gram_too)
    targets = None if y is None else _Targets(y, y_name, None if shape is None else shape[0])
    G: FloatArray | None = None
    Xty: FloatArray | None = None
    yy, n = 0.0, 0
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    with blas_threads(1), pool or contextlib.nullcontext():
        for index, raw in enumerate(src.blocks(_block_rows(block_rows, d or 1))):
            block = _checked_block(raw, "X", index, n, d, 2, finite=not gram_too)
            if G is None:
                d = block.shape[1]
                _check_width(d, gram_too)
                G, Xty = np.zeros((d, d), order="F"), np.zeros(d)
            # the block's Gram on the worker threads (chunks fixed by shape: the
            # sums do not depend on the thread count), then added in order
            if gram_too:
                part = gram(block, True, pool)
                if not np.isfinite(np.trace(part)):
                    _raise_nonfinite(block, "X", index, n)
                G += part
            if targets is not None:
                assert Xty is not None  # allocated with G at the first block
                yb = targets.take(block.shape[0], index)
                Xty += yb @ block
                yy += float(yb @ yb)
            n += block.shape[0]
    if G is None or n == 0:
        raise ValueError("X has no rows: at least one sample is needed")
    if targets is not None:
        targets.finish(n)
    assert d is not None  # known from the first block
    return dict(G=G, Xty=Xty if y is not None else None, yy=yy, n=n, d=d)


def _dask_targets(y: Any, X: Any, name: str, x_name: str) -> Any:
    """y as a Dask array of shape (n,) chunked like the rows of the Dask array X."""
    import dask.array as da

    if not _is_dask(y):
        y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"{name} must have shape ({X.shape[0]},) to match {x_name}, got {tuple(y.shape)}"
        )
    return y if _is_dask(y) else da.from_array(y, chunks=(X.chunks[0],))


def _accumulate_dask(X: Any, y: Any, y_name: str, gram_too: bool = True) -> _Stats:
    import dask.array as da

    if X.ndim != 2:
        raise ValueError(f"X must have 2 dimensions (n, d) to be streamed, got shape {X.shape}")
    if any(np.isnan(c) for c in X.chunks[0] + X.chunks[1]):
        raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first")
    _check_width(int(X.shape[1]), gram_too)
    Xf = X.astype(np.float64)
    parts = dict(G=Xf.T @ Xf if gram_too else da.zeros((1, 1)), finite=da.isfinite(Xf).all())
    if y is not None:
        yd = _dask_targets(y, Xf, y_name, "X")
        yd = yd.astype(np.float64).rechunk((Xf.chunks[0],))
        parts.update(Xty=Xf.T @ yd, yy=(yd * yd).sum(), yfinite=da.isfinite(yd).all())
    keys = list(parts)
    values = dict(zip(keys, da.compute(*[parts[k] for k in keys])))
    if not values["finite"]:
        raise ValueError(
            "X contains NaN or infinite values (in a Dask chunk); remove or impute them first"
        )
    if y is not None and not values["yfinite"]:
        raise ValueError(f"{y_name} contains NaN or infinite values; remove or impute them first")
    G = np.asfortranarray(values["G"])
    return dict(
        G=G,
        Xty=values.get("Xty"),
        yy=float(values.get("yy", 0.0)),
        n=int(X.shape[0]),
        d=int(X.shape[1]),
    )


def decompose_streamed(
    X: Any, y: Any = None, *, threads: int = 1, block_rows: int | None = None
) -> Decomposition:
    """The Gram route of :func:`fastsd.decompose` over row blocks of X (see module docstring)."""
    stats = _accumulate(X, y, block_rows, threads)
    n, d, G = stats["n"], stats["d"], stats["G"]
    s2, vecs = np.empty(d), np.empty((d, d))
    with blas_threads(1):  # a threaded dsyevd sums in an order set by the thread count
        syevd_descending(G, s2, vecs)
    if not np.isfinite(s2[0]):
        raise_nonfinite(np.zeros((1, 1)), "X")  # blocks were finite: X^T X overflowed
    s2, V = finish_gram(s2, vecs, n, d)
    source = StreamedX(X, _block_rows(block_rows, d), threads)
    z = y_norm2 = None
    if y is not None:
        assert stats["Xty"] is not None  # y was given
        z, y_norm2 = V.T @ stats["Xty"], stats["yy"]
    return Decomposition(
        s2=np.ascontiguousarray(s2),
        V=np.ascontiguousarray(V),
        z=z,
        y_norm2=y_norm2,
        method="gram",
        X=source,
        shape=(n, d),
    )


def eval_projection(
    X_eval: Any,
    y_eval: Any,
    V: FloatArray,
    *,
    block_rows: int | None = None,
    names: tuple[str, str] = ("X_val", "y_val"),
) -> tuple[FloatArray, FloatArray, float, int]:
    """R, c, resid2 of ``reference.eval_projection(X_eval V, y_eval)`` over row blocks.

    The evaluation set enters a sweep only through the thin QR of
    [X_eval V, y_eval]: its triangular factor R_aug ((p + 1) x (p + 1) at
    most) is updated block by block, R_aug <- qr([R_aug; X_b V, y_b]), in
    O(p^2 + block) memory; R = R_aug[:m, :p], c = R_aug[:m, p] (= Q^T y) and
    resid2 = ||R_aug[m:, p]||^2 with m = min(n_eval, p). A Dask X_eval uses
    ``dask.array.linalg.qr`` (tall-and-skinny QR where the chunks live).

    Returns
    -------
    R : ndarray of shape (m, p)
    c : ndarray of shape (m,)
    resid2 : float
    n_eval : int
    """
    d, p = V.shape
    if _is_dask(X_eval):
        import dask.array as da

        if X_eval.ndim != 2 or X_eval.shape[1] != d:
            raise ValueError(f"{names[0]} must have shape (n_val, {d}), got {X_eval.shape}")
        yd = _dask_targets(y_eval, X_eval, names[1], names[0])
        A = da.concatenate(
            [
                X_eval.astype(np.float64) @ V,
                yd.astype(np.float64).rechunk((X_eval.chunks[0],))[:, None],
            ],
            axis=1,
        ).rechunk({1: -1})
        R, finite = da.compute(da.linalg.qr(A)[1], da.isfinite(A).all())
        if not finite:
            raise ValueError(
                f"{names[0]} or {names[1]} contains NaN or infinite values; "
                "remove or impute them first"
            )
        n = int(X_eval.shape[0])
    else:
        src = _source(X_eval, names[0])
        if src.shape is not None and (len(src.shape) != 2 or src.shape[1] != d):
            raise ValueError(f"{names[0]} must have shape (n_val, {d}), got {src.shape}")
        targets = _Targets(y_eval, names[1], None if src.shape is None else src.shape[0], names[0])
        R, n = np.zeros((0, p + 1)), 0
        for index, raw in enumerate(src.blocks(_block_rows(block_rows, d))):
            block = _checked_block(raw, names[0], index, n, d, 2)
            A = np.empty((block.shape[0], p + 1))
            A[:, :p] = block @ V
            A[:, p] = targets.take(block.shape[0], index)
            R = np.linalg.qr(np.vstack([R, A]), mode="r")
            n += block.shape[0]
        if n == 0:
            raise ValueError(f"{names[0]} has no rows")
        targets.finish(n)
    m = min(n, p)
    R = np.asarray(R)
    return R[:m, :p], R[:m, p], float(np.sum(R[m:, p] ** 2)), n
