"""Faults a new or unlucky user runs into, through the Python API.

Each test is one case of a fault report (bad input that was accepted, a
result that was silently wrong, or an error that named the wrong thing): it
fails on the code before the fix and passes after it.
"""

import os
import warnings

import numpy as np
import pytest

import fastsd
from fastsd.exceptions import NonFiniteResultWarning

RNG = np.random.default_rng(0)
X3 = RNG.normal(size=(3, 20, 4))
THETA3 = RNG.normal(size=(3, 4))


def _record(func, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = func(*args, **kwargs)
    return out, [w for w in caught if issubclass(w.category, RuntimeWarning)]


# ------------------------------------------------------------------ non-finite results


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_inf_risks_warn_once_with_the_count(backend):
    """xis=[1e200]: numba returned inf silently, NumPy warned about overflow 3 times."""
    risk, caught = _record(
        fastsd.sweep_risk, X3, THETA3, 1.0, [1.0], [1e200, 0.5], 2, backend=backend
    )
    bad = int(np.count_nonzero(~np.isfinite(risk)))
    assert bad > 0
    assert len(caught) == 1 and caught[0].category is NonFiniteResultWarning
    assert str(caught[0].message).startswith(f"{bad} of {risk.size} risks are inf or NaN")
    assert caught[0].filename == __file__  # points at the caller


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_inf_mse_warns_once(backend):
    rng = np.random.default_rng(1)
    X, y, Xv, yv = (rng.normal(size=s) for s in ((2, 20, 3), (2, 20), (2, 6, 3), (2, 6)))
    mse, caught = _record(fastsd.sweep_mse, X, y, Xv, yv, [1.0], [1e200], 2, backend=backend)
    assert not np.all(np.isfinite(mse))
    assert [w.category for w in caught] == [NonFiniteResultWarning]
    assert " MSEs are inf or NaN" in str(caught[0].message)


@pytest.mark.parametrize("reduce", [None, "min"])
def test_chunked_sweep_warns_once(reduce):
    out, caught = _record(
        fastsd.sweep_risk_chunked,
        X3,
        THETA3,
        1.0,
        [1.0],
        [1e200, 0.5],
        2,
        reduce=reduce,
        backend="numpy",
    )
    assert [w.category for w in caught] == [NonFiniteResultWarning]
    assert str(caught[0].message).startswith("6 of 18 risks")


def test_finite_sweeps_do_not_warn():
    _, caught = _record(fastsd.sweep_risk, X3, THETA3, 1.0, [0.1, 1.0], [0.0, 0.5, 2.0], 3)
    assert caught == []


# ------------------------------------------------------------------ streamed inputs


def test_iterator_x_with_a_longer_y_is_refused():
    """decompose(iterator of 60 rows, y of 65) returned a decomposition."""
    rng = np.random.default_rng(2)
    blocks = iter([rng.normal(size=(30, 3)), rng.normal(size=(30, 3))])
    with pytest.raises(ValueError, match=r"^y has 65 rows, X has 60; y must match X row for row"):
        fastsd.decompose(blocks, rng.normal(size=65))


def test_iterator_x_with_a_shorter_y_is_refused():
    rng = np.random.default_rng(2)
    blocks = iter([rng.normal(size=(30, 3)), rng.normal(size=(30, 3))])
    with pytest.raises(ValueError, match=r"^y has 55 rows, X at least 60"):
        fastsd.decompose(blocks, rng.normal(size=55))


def test_iterator_eval_set_with_a_longer_y_eval_is_refused():
    """sweep_mse with a 10-row iterator X_eval and 14 y_eval values returned results."""
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=40)
    with pytest.raises(ValueError, match=r"^y_eval has 14 rows, X_eval has 10"):
        fastsd.sweep_mse(
            X, y, iter([rng.normal(size=(10, 3))]), rng.normal(size=14), [1.0], [0.5], 1
        )


def test_truncated_fortran_npy_names_the_file(tmp_path):
    """A truncated Fortran-order .npy gave "mmap length is greater than file size"."""
    path = tmp_path / "X.npy"
    np.save(path, np.asfortranarray(np.random.default_rng(4).normal(size=(100, 3))))
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 400)
    with pytest.raises(ValueError, match=r"X = '.*X\.npy' is truncated: its header promises"):
        fastsd.decompose(str(path))


def test_npy_with_no_columns_says_so(tmp_path):
    """A .npy with 0 columns gave "cannot reshape ..."."""
    path = tmp_path / "X.npy"
    np.save(path, np.zeros((10, 0)))
    with pytest.raises(ValueError, match="X must have at least one feature, got 0 columns"):
        fastsd.decompose(str(path))


def test_wide_streamed_npy_is_refused_before_allocating(tmp_path):
    """A streamed .npy of shape (2, 40000) tried to allocate 11.9 GiB."""
    path = tmp_path / "X.npy"
    np.save(path, np.zeros((2, 40000)))
    with pytest.raises(ValueError, match=r"decompose: X\^T X and its eigenvectors .* GiB limit"):
        fastsd.decompose(str(path))


def test_dask_x_with_a_y_of_the_wrong_length():
    """A Dask X with a y of the wrong length gave "Chunks do not add up ..."."""
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(5)
    X = da.from_array(rng.normal(size=(40, 3)), chunks=(10, 3))
    with pytest.raises(ValueError, match=r"y must have shape \(40,\) to match X, got \(45,\)"):
        fastsd.decompose(X, rng.normal(size=45))
    with pytest.raises(ValueError, match=r"y_eval must have shape \(40,\) to match X_eval"):
        fastsd.sweep_mse(
            rng.normal(size=(40, 3)), rng.normal(size=40), X, rng.normal(size=45), [1.0], [0.5], 1
        )


# ------------------------------------------------------------------ kernels


def test_misspelled_kernel_parameter_is_an_error():
    """kernel_params={"gama": 5} was ignored and the default gamma used."""
    X = np.random.default_rng(6).normal(size=(20, 2))
    with pytest.raises(
        ValueError, match="unknown parameter 'gama' for kernel 'rbf'; did you mean 'gamma'"
    ):
        fastsd.decompose(X, kernel="rbf", kernel_params={"gama": 5})


def test_kernel_params_must_be_a_dict():
    """kernel_params="gamma=1" gave "dictionary update sequence ..."."""
    X = np.random.default_rng(6).normal(size=(20, 2))
    with pytest.raises(TypeError, match="kernel_params must be a dict such as"):
        fastsd.decompose(X, kernel="rbf", kernel_params="gamma=1")


def test_callable_kernel_parameters_are_checked():
    def kernel(a, b, width=1.0):
        return float(np.exp(-np.sum((a - b) ** 2) / width))

    X = np.random.default_rng(6).normal(size=(10, 2))
    with pytest.raises(ValueError, match="unknown parameter 'wdth'.*did you mean 'width'"):
        fastsd.decompose(X, kernel=kernel, kernel_params={"wdth": 2.0})
    fastsd.decompose(X, kernel=kernel, kernel_params={"width": 2.0})


def test_large_kernel_matrix_is_refused_before_allocating():
    """decompose(X of 40000 x 2, kernel="rbf") tried to allocate 11.9 GiB."""
    with pytest.raises(ValueError, match=r"decompose: the kernel matrix .* GiB limit"):
        fastsd.decompose(np.zeros((40000, 2)), kernel="rbf")


# ------------------------------------------------------------------ arrays and arguments


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_empty_batch_is_refused_for_every_dtype(dtype):
    """A float64 batch of 0 problems, shape (0, 4, 3), was accepted."""
    with pytest.raises(ValueError, match=r"X is empty \(shape \(0, 4, 3\)\)"):
        fastsd.decompose(np.zeros((0, 4, 3), dtype=dtype))


def test_chunked_out_of_the_wrong_shape_is_named():
    """out= of the wrong shape gave "could not broadcast ..."."""
    risk_out, xi_out = np.empty((3, 2, 3)), np.empty((3, 1, 2, 2))
    with pytest.raises(ValueError, match=r"out\[0\] \(risk\) must have shape \(3, 1, 3\)"):
        fastsd.sweep_optimal_chunked(X3, THETA3, 1.0, [1.0], 2, out=(risk_out, xi_out))
    with pytest.raises(ValueError, match=r"^out must have shape \(3, 1, 1, 3\)"):
        fastsd.sweep_risk_chunked(X3, THETA3, 1.0, [1.0], [0.5], 2, out=np.empty((3, 2, 1, 3)))


def test_memory_limit_takes_a_size_string():
    """memory_limit="1GiB" gave "'<=' not supported between 'str' and 'int'"."""
    a = fastsd.sweep_risk_chunked(X3, THETA3, 1.0, [1.0], [0.5], 2, memory_limit="1GiB")
    b = fastsd.sweep_risk_chunked(X3, THETA3, 1.0, [1.0], [0.5], 2, memory_limit=1 << 30)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(
        ValueError, match="memory_limit must be a positive number of bytes or a size"
    ):
        fastsd.sweep_risk_chunked(X3, THETA3, 1.0, [1.0], [0.5], 2, memory_limit="lots")
