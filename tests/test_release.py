"""Release hygiene: version, --help of every subcommand, lazy submodules, __all__, short reprs."""

import importlib
import subprocess
import sys

import numpy as np
import pytest

import fastsd
from fastsd.cli import build_parser, main

SUBCOMMANDS = ("reproduce", "sweep", "export", "plot", "verify", "info", "warmup", "bench")


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastsd {fastsd.__version__}"


def test_every_subcommand_is_covered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(SUBCOMMANDS)


@pytest.mark.parametrize(
    "argv",
    [[s, "--help"] for s in SUBCOMMANDS]
    + [
        ["bench", "--e2e", "--help"],
        ["bench", "--runner", "--help"],
        ["bench", "--runner", "--dask", "--help"],
    ],
)
def test_help_exits_zero(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--help" in out


def test_reproduce_output_flag_and_out_alias():
    parser = build_parser()
    assert parser.parse_args(["reproduce", "--output", "a"]).output == "a"
    assert parser.parse_args(["reproduce", "--out", "b"]).output == "b"
    assert parser.parse_args(["sweep", "c.toml", "--output", "d"]).output == "d"


def test_public_submodules_are_lazy_attributes():
    code = (
        "import sys, fastsd; before = [m for m in fastsd._SUBMODULES "
        "if 'fastsd.' + m in sys.modules]; fastsd.problems.theorem1_family; "
        "fastsd.experiments.__all__; print(before, 'fastsd.problems' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "True"]
    assert fastsd.datasets.__name__ == "fastsd.datasets"
    assert set(fastsd._SUBMODULES) <= set(dir(fastsd))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = fastsd.nope


@pytest.mark.parametrize(
    "name",
    [
        "fastsd",
        "fastsd.problems",
        "fastsd.datasets",
        "fastsd.experiments",
        "fastsd.plotting",
        "fastsd.tables",
        "fastsd.engine.sweeps",
        "fastsd.engine.single",
        "fastsd.blocks.chunked",
        "fastsd.store",
        "fastsd.store.reading",
        "fastsd.math.filters",
        "fastsd.decomposition",
        "fastsd.exceptions",
        "fastsd.reference",
    ],
)
def test_all_lists_only_what_the_module_defines(name):
    module = importlib.import_module(name)
    assert module.__all__, name
    for public in module.__all__:
        assert hasattr(module, public) or importlib.util.find_spec(f"{name}.{public}"), public
    assert "np" not in module.__all__ and "dataclass" not in module.__all__


def test_short_reprs():
    batch = fastsd.problems.theorem1_family([2, 3, 4], n=30, d=8)
    text = repr(batch)
    assert text.startswith("ProblemBatch(B=3, n=30, d=8") and len(text) < 200, text
    lams = np.logspace(-2, 1, 5)
    best = fastsd.sweep_risk_chunked(
        batch.X, batch.theta_star, batch.noise_var, lams, np.full((1, 2), 1.0), 2, reduce="min"
    )
    text = repr(best)
    assert (
        text.startswith("BestRisk(B=3, K=2, optimal_xi=False, L=5, min_risk=") and len(text) < 120
    )
    assert f"{np.nanmin(best.risk):.4g}" in text
    decomp = fastsd.decompose(batch.X)
    assert "n_samples=30" in repr(decomp) and len(repr(decomp)) < 200
    result = fastsd.SweepResult("out", {"complete": True, "variables": ["risk"]})
    assert repr(result) == "SweepResult('out', complete, variables=['risk'])"


def test_split_repr():
    split = fastsd.datasets.load_split("airfoil", seed=0)
    n = split.X_train.shape[0]
    assert repr(split).startswith(f"Split(n_train={n}, n_val=") and len(repr(split)) < 120
    assert repr(split).endswith("d=5, standardized=True)")


def test_every_public_module_has_all():
    import pkgutil

    private = ("fastsd.kernels", "fastsd.cli", "fastsd.__main__")  # as docs/conf.py
    missing = []
    for info in pkgutil.walk_packages(fastsd.__path__, prefix="fastsd."):
        if any(p.startswith("_") for p in info.name.split(".")[1:]) or info.name.startswith(
            private
        ):
            continue
        if not hasattr(importlib.import_module(info.name), "__all__"):
            missing.append(info.name)
    assert missing == []
