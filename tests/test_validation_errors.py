"""Bad input (issue 2, item 6): clear errors naming the argument; inputs never modified."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

import fastsd
from fastsd import IllConditionedXiWarning

N, D, N_VAL = 12, 4, 7


def _data(seed=0, batch=None):
    rng = np.random.default_rng(seed)
    lead = () if batch is None else (batch,)
    return dict(
        X=rng.normal(size=lead + (N, D)),
        y=rng.normal(size=lead + (N,)),
        theta_star=rng.normal(size=lead + (D,)),
        X_val=rng.normal(size=lead + (N_VAL, D)),
        y_val=rng.normal(size=lead + (N_VAL,)),
    )


# Every public entry point, called positionally with arguments taken from a
# dict, so that one argument at a time can be replaced by a bad value.
def call_self_distill(a):
    return fastsd.self_distill(a["X"], a["y"], a.get("lam", 0.5), a.get("xi", [0.3, 1.2]))


def call_excess_risk(a):
    return fastsd.excess_risk(
        a["X"], a["theta_star"], a.get("noise_var", 0.5), a.get("lam", 0.5), a.get("xi", [0.3, 1.2])
    )


def call_optimal_xi(a):
    return fastsd.optimal_xi(
        a["X"], a["theta_star"], a.get("noise_var", 0.5), a.get("lam", 0.5), a.get("k", 2)
    )


def call_oracle_risk(a):
    return fastsd.oracle_risk(a["X"], a["theta_star"], a.get("noise_var", 0.5), a.get("lam", 0.5))


def call_validation(a):
    return fastsd.optimal_xi_validation(
        a["X"], a["y"], a["X_val"], a["y_val"], a.get("lam", 0.5), a.get("k", 2)
    )


def call_decompose(a):
    return fastsd.decompose(a["X"], a["y"])


USES = {
    "self_distill": (call_self_distill, {"X", "y", "lam", "xi"}),
    "excess_risk": (call_excess_risk, {"X", "theta_star", "noise_var", "lam", "xi"}),
    "optimal_xi": (call_optimal_xi, {"X", "theta_star", "noise_var", "lam", "k"}),
    "oracle_risk": (call_oracle_risk, {"X", "theta_star", "noise_var", "lam"}),
    "optimal_xi_validation": (call_validation, {"X", "y", "X_val", "y_val", "lam", "k"}),
    "decompose": (call_decompose, {"X", "y"}),
}
ARRAYS = ["X", "y", "theta_star", "X_val", "y_val"]


def _cases(args):
    return [(fn, arg) for fn, (_, used) in USES.items() for arg in args if arg in used]


def _poison(arr, value):
    arr = arr.copy()
    arr.flat[arr.size // 2] = value
    return arr


@pytest.mark.parametrize("batch", [None, 2])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fn,arg", _cases(ARRAYS))
def test_non_finite_arrays(fn, arg, bad, batch):
    a = _data(batch=batch)
    a[arg] = _poison(a[arg], bad)
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        USES[fn][0](a)


@pytest.mark.parametrize("fn,arg", _cases(["lam", "noise_var"]))
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_scalars(fn, arg, bad):
    a = _data()
    a[arg] = bad
    with pytest.raises(ValueError, match=arg):
        USES[fn][0](a)


def test_non_finite_xi():
    a = _data()
    for bad in (np.nan, np.inf):
        a["xi"] = [0.5, bad]
        for fn in ("self_distill", "excess_risk"):
            with pytest.raises(ValueError, match="xi"):
                USES[fn][0](a)


SHAPE_CASES = [
    # (argument, replacement shape) -- for an unbatched problem X (N, D)
    ("y", (N - 1,)),
    ("y", (N, 1)),
    ("y", (2, N)),
    ("theta_star", (D + 1,)),
    ("theta_star", (2, D)),
    ("X_val", (N_VAL, D - 1)),
    ("X_val", (2, N_VAL, D)),
    ("X_val", (N_VAL,)),
    ("y_val", (N_VAL + 1,)),
    ("y_val", (2, N_VAL)),
    ("X", (D,)),
    ("X", (1, 1, N, D)),
]


@pytest.mark.parametrize(
    "fn,arg,shape",
    [
        (fn, arg, shape)
        for arg, shape in SHAPE_CASES
        for fn, (_, used) in USES.items()
        if arg in used
    ],
)
def test_shape_mismatch(fn, arg, shape):
    a = _data()
    a[arg] = np.ones(shape)
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        USES[fn][0](a)


BATCH_SHAPE_CASES = [
    ("y", (3, N)),
    ("y", (N,)),
    ("theta_star", (3, D)),
    ("theta_star", (D,)),
    ("X_val", (3, N_VAL, D)),
    ("X_val", (N_VAL, D)),
    ("y_val", (2, N_VAL + 1)),
    ("noise_var", (3,)),
]


@pytest.mark.parametrize(
    "fn,arg,shape",
    [
        (fn, arg, shape)
        for arg, shape in BATCH_SHAPE_CASES
        for fn, (_, used) in USES.items()
        if arg in used
    ],
)
def test_batch_shape_mismatch(fn, arg, shape):
    a = _data(batch=2)
    a[arg] = np.ones(shape)
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        USES[fn][0](a)


@pytest.mark.parametrize("fn", [fn for fn, (_, used) in USES.items() if "lam" in used])
@pytest.mark.parametrize("lam", [-1.0, -1e-300, [1.0, -0.5], np.ones((2, 2)), []])
def test_bad_lam(fn, lam):
    a = _data()
    a["lam"] = lam
    with pytest.raises(ValueError, match="lam"):
        USES[fn][0](a)


@pytest.mark.parametrize("fn", [fn for fn, (_, used) in USES.items() if "noise_var" in used])
@pytest.mark.parametrize("noise_var", [-1.0, -1e-12, np.ones(2), np.ones((1, 1))])
def test_bad_noise_var(fn, noise_var):
    a = _data()
    a["noise_var"] = noise_var
    with pytest.raises(ValueError, match="noise_var"):
        USES[fn][0](a)


@pytest.mark.parametrize("fn", ["optimal_xi", "optimal_xi_validation"])
@pytest.mark.parametrize(
    "k,exc",
    [
        (-1, ValueError),
        (2.0, TypeError),
        (2.5, TypeError),
        ("2", TypeError),
        (None, TypeError),
        (True, TypeError),
        (np.float64(2.0), TypeError),
        ([2], TypeError),
    ],
)
def test_bad_k(fn, k, exc):
    a = _data()
    a["k"] = k
    with pytest.raises(exc, match=r"\bk\b"):
        USES[fn][0](a)


@pytest.mark.parametrize("k", [np.int64(2), np.int32(2), 2])
def test_integer_k_types_accepted(k):
    a = _data()
    a["k"] = k
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedXiWarning)
        xi, _ = call_optimal_xi(a)
        assert xi.shape == (2,)
        xi, _ = call_validation(a)
        assert xi.shape == (2,)


@pytest.mark.parametrize(
    "fn,arg,shape",
    [
        ("decompose", "X", (0, D)),
        ("decompose", "X", (N, 0)),
        ("self_distill", "X", (0, D)),
        ("excess_risk", "X", (N, 0)),
        ("optimal_xi", "X", (2, 0, D)),
        ("optimal_xi_validation", "X_val", (0, D)),
        ("self_distill", "y", (0,)),
        ("excess_risk", "theta_star", (0,)),
        ("optimal_xi_validation", "y_val", (0,)),
    ],
)
def test_empty_data(fn, arg, shape):
    a = _data()
    a[arg] = np.zeros(shape)
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        USES[fn][0](a)


@pytest.mark.parametrize("fn", ["self_distill", "excess_risk"])
@pytest.mark.parametrize("batch", [None, 2])
@pytest.mark.parametrize(
    "xi", [0.5, np.float64(1.0), np.ones((3, 2)), np.ones((5, 1, 2)), np.ones((4, 4, 2))]
)
def test_bad_xi_shape(fn, batch, xi):
    """A scalar xi, or a 2-D+ xi not broadcastable to ([B,] [L,] k), is rejected."""
    a = _data(batch=batch)
    a["lam"] = np.array([0.1, 1.0])  # output lead shape ([B,] 2)
    a["xi"] = xi
    with pytest.raises(ValueError, match=r"\bxi\b"):
        USES[fn][0](a)


@pytest.mark.parametrize("fn,arg", _cases(["X", "y", "theta_star", "X_val", "y_val"]))
@pytest.mark.parametrize("bad", [["a"] * 3, np.array([1 + 2j, 3j]), object()])
def test_wrong_type(fn, arg, bad):
    a = _data()
    a[arg] = bad
    with pytest.raises(TypeError, match=rf"\b{arg}\b"):
        USES[fn][0](a)


def test_ragged_X():
    a = _data()
    a["X"] = [[1.0, 2.0], [3.0]]
    with pytest.raises((TypeError, ValueError), match=r"\bX\b"):
        call_self_distill(a)


# ---------------------------------------------------------------------------
# inputs are never modified; float32 is upcast and matches float64


def _all_calls(a):
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedXiWarning)
        for name, (fn, _) in USES.items():
            res = fn(a)
            out[name] = res
    return out


def _flatten(result):
    if isinstance(result, fastsd.Decomposition):
        return [result.s2, result.z, result.y_norm2]
    if isinstance(result, tuple):
        return [np.asarray(r) for r in result]
    return [np.asarray(result)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", [None, 2])
@pytest.mark.parametrize("order", ["C", "F"])
def test_inputs_not_modified(dtype, batch, order):
    a = {k: np.asarray(v, dtype=dtype, order=order) for k, v in _data(3, batch).items()}
    a["lam"] = np.array([0.0, 0.1, 10.0], dtype=dtype)
    a["xi"] = np.array([0.5, -1.5, 2.0], dtype=dtype)
    a["noise_var"] = (
        np.asarray(0.5, dtype=dtype) if batch is None else np.array([0.5, 1.0], dtype=dtype)
    )
    a["k"] = 3
    before = {
        k: (v.copy(), v.dtype, v.flags["C_CONTIGUOUS"])
        for k, v in a.items()
        if isinstance(v, np.ndarray)
    }
    _all_calls(a)
    # reusing a decomposition (with y) must not modify it either
    dec = fastsd.decompose(a["X"], a["y"])
    dec_before = [dec.s2.copy(), dec.V.copy(), dec.U.copy(), dec.z.copy()]
    b = dict(a, X=dec, y=None)
    for name in (
        "self_distill",
        "excess_risk",
        "optimal_xi",
        "oracle_risk",
        "optimal_xi_validation",
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IllConditionedXiWarning)
            USES[name][0](b)
    for k, (v, dt, c) in before.items():
        assert a[k].dtype == dt and a[k].flags["C_CONTIGUOUS"] == c
        assert np.array_equal(a[k], v), k
    for new, old in zip([dec.s2, dec.V, dec.U, dec.z], dec_before):
        assert np.array_equal(new, old)


@pytest.mark.parametrize("batch", [None, 2])
def test_float32_upcast_matches_float64(batch):
    a32 = {k: v.astype(np.float32) for k, v in _data(4, batch).items()}
    a32["lam"] = np.array([1e-3, 0.5, 50.0], dtype=np.float32)
    a32["xi"] = np.array([0.5, -1.5, 2.0], dtype=np.float32)
    a32["k"] = 2
    # the float64 run sees exactly the same numbers
    a64 = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v) for k, v in a32.items()}
    got, want = _all_calls(a32), _all_calls(a64)
    for name in USES:
        for g, w in zip(_flatten(got[name]), _flatten(want[name])):
            assert g.dtype == np.float64, name
            # same float64 inputs, same code path: identical up to BLAS rounding
            assert_allclose(g, w, rtol=1e-12, atol=0, err_msg=name)


def test_integer_and_list_input_accepted():
    a = _data(5)
    X_int = np.round(a["X"] * 3).astype(np.int64)
    y_list = list(a["y"])
    got = fastsd.self_distill(X_int, y_list, 0.5, [0.3])
    want = fastsd.self_distill(X_int.astype(float), np.array(y_list), 0.5, [0.3])
    assert got.dtype == np.float64
    assert_allclose(got, want, rtol=1e-14)


@pytest.mark.parametrize(
    "func", ["sweep_risk", "sweep_optimal", "sweep_mse", "sweep_optimal_validation"]
)
def test_grid_arguments_are_checked_before_the_decomposition(func, monkeypatch):
    """A bad max_steps or lams is reported before X is decomposed (the mse and
    validation sweeps decomposed X and projected the evaluation set first)."""
    import fastsd.engine.sweeps as sweeps

    def no_decomposition(*args, **kwargs):
        raise AssertionError("X was decomposed before the grid arguments were checked")

    monkeypatch.setattr(sweeps, "batched", no_decomposition)
    d = _data()
    args = {
        "sweep_risk": (d["X"], d["theta_star"], 1.0),
        "sweep_optimal": (d["X"], d["theta_star"], 1.0),
        "sweep_mse": (d["X"], d["y"], d["X_val"], d["y_val"]),
        "sweep_optimal_validation": (d["X"], d["y"], d["X_val"], d["y_val"]),
    }[func]
    fixed = func in ("sweep_risk", "sweep_mse")
    with pytest.raises(ValueError, match="max_steps"):
        getattr(fastsd, func)(*args, [0.1], *([[0.5]] if fixed else []), -1)
    with pytest.raises(ValueError, match="lams"):
        getattr(fastsd, func)(*args, [-1.0], *([[0.5]] if fixed else []), 2)
