"""Configs that scale: ``problems.count`` draws, family parameters as lists and ranges,
the random-design family with its population risk (docs: "Many problems from one family")."""

import os

import numpy as np
import pytest

import fastsd
from fastsd.cli import main
from fastsd.config.schema import ConfigError, load_config
from fastsd.config.sources import load_problems
from fastsd.problems import family_grid, random_design_family, theorem1_family

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(tmp_path, body):
    path = tmp_path / "sweep.toml"
    path.write_text(body)
    return str(path)


def synthetic(family, params, count=None, tail=""):
    count_line = "" if count is None else f"count = {count}\n"
    return f"""
[problems]
source = "synthetic"
family = "{family}"
{count_line}params = {params}

[grid]
lams = {{ start = 0.01, stop = 10.0, num = 3 }}
max_steps = 2
{tail}
"""


def docs_configs():
    text = open(os.path.join(ROOT, "docs", "user_guide", "scale.md")).read()
    section = text[text.index("### Many problems from one family") :]
    section = section[: section.index("\n## ")]
    blocks = section.split("```toml")[1:]
    return [block[: block.index("```")] for block in blocks]


def resolved_problem_count(problems):
    """B of a resolved synthetic config, from its lists (without building the problems)."""
    from fastsd.problems import FAMILY_ARRAYS

    per_problem = {"ranks", "gaps"}  # array parameters with one entry per problem
    B = problems["count"] * problems["params"].get("batch", 1)
    for name, value in problems["params"].items():
        in_array = name in FAMILY_ARRAYS[problems["family"]] and name not in per_problem
        if isinstance(value, list) and not in_array:
            B *= len(value)
    return B


def test_the_docs_show_a_ten_thousand_problem_config_in_under_15_lines(tmp_path):
    configs = docs_configs()
    assert len(configs) == 2
    for body in configs:
        lines = [line for line in body.splitlines() if line.strip()]
        assert len(lines) < 15, body
        cfg = load_config(write(tmp_path, body))
        assert resolved_problem_count(cfg.resolved["problems"]) == 10_000


def test_docs_theorem1_config_builds_distinct_problems(tmp_path):
    """Scaled down (2 noise levels): 20 ranks x noise levels, one risk curve each."""
    body = docs_configs()[0].replace("num = 500", "num = 2")
    problems = load_problems(load_config(write(tmp_path, body)).resolved)
    assert problems.n_problems == 40
    pairs = set(zip(problems.coords["rank"].tolist(), problems.coords["noise_var"].tolist()))
    assert len(pairs) == 40


def test_count_draws_use_derived_seeds():
    batch = family_grid("theorem1_family", count=3, ranks=[2, 4], seed=7)
    assert batch.batch_size == 6
    assert batch.labels["seed"].tolist() == [7, 7, 8, 8, 9, 9]
    assert batch.labels["draw"].tolist() == [0, 0, 1, 1, 2, 2]
    for draw in range(3):  # draw i is the family called with seed + i
        alone = theorem1_family([2, 4], seed=7 + draw)
        np.testing.assert_array_equal(batch.X[2 * draw : 2 * draw + 2], alone.X)


def test_lists_of_scalar_parameters_are_grid_axes():
    batch = family_grid("theorem1_family", ranks=[2, 3], noise_var=[0.1, 1.0], spread=[0.3, 0.6])
    assert batch.batch_size == 8
    assert batch.labels["noise_var"].tolist() == [0.1] * 4 + [1.0] * 4
    assert batch.labels["spread"].tolist() == [0.3, 0.3, 0.6, 0.6] * 2
    np.testing.assert_array_equal(batch.noise_var, batch.labels["noise_var"])
    strings = family_grid("theorem1_family", ranks=[2], align=["top", "bottom"])
    assert strings.labels["align_choice"].tolist() == [0, 1]
    assert strings.labels["align_index"].tolist() == [0, 1]  # the family's own label is kept


def test_a_grid_of_shapes_is_refused():
    with pytest.raises(ValueError, match=r"share one shape \(n, d\).*give n values of one shape"):
        family_grid("theorem1_family", ranks=[2], n=[16, 32])


def test_the_whole_grid_is_size_checked_before_it_is_built():
    with pytest.raises(ValueError, match="theorem1_family: the problems' arrays .* GiB limit"):
        family_grid("theorem1_family", count=10**6, ranks=[200])


@pytest.mark.parametrize(
    "key, spec, values",
    [
        ("ranks", "{ start = 1, stop = 4 }", [1, 2, 3, 4]),
        ("ranks", "{ start = 2, stop = 9, step = 3 }", [2, 5, 8]),
        ("noise_var", "{ start = 0.5, stop = 1.5, step = 0.5 }", [0.5, 1.0, 1.5]),
        ("noise_var", "{ start = 0.1, stop = 0.3, num = 3 }", [0.1, 0.2, 0.3]),
        ("noise_var", "{ start = 0.01, stop = 1.0, num = 3, log = true }", [0.01, 0.1, 1.0]),
    ],
)
def test_ranges_resolve_to_lists(tmp_path, key, spec, values):
    params = f"{{ ranks = [2], {key} = {spec} }}" if key != "ranks" else f"{{ ranks = {spec} }}"
    got = load_config(write(tmp_path, synthetic("theorem1_family", params)))
    got = got.resolved["problems"]["params"][key]
    np.testing.assert_allclose(got, values)
    assert [type(v) for v in got] == [type(v) for v in values]


@pytest.mark.parametrize(
    "params, needle",
    [
        ("{ ranks = { start = 1, stop = 4, num = 4, step = 1 } }", "not both"),
        ("{ ranks = { start = 1, stop = 4, step = 1, log = true } }", "log goes with num"),
        ("{ ranks = { start = 1 } }", "needs finite numbers start and stop"),
        (
            "{ ranks = [2], noise_var = { start = 0.0, stop = 1.0, num = 3, log = true } }",
            "log = true needs",
        ),
        ("{ ranks = { start = 1, stop = 4, steps = 1 } }", "did you mean 'step'"),
        ("{ ranks = [2], seed = -1 }", "problems.params.seed must be an integer >= 0"),
    ],
)
def test_bad_ranges_name_the_key(tmp_path, params, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(write(tmp_path, synthetic("theorem1_family", params)))


def test_count_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="problems.count must be an integer between 1 and"):
        load_config(write(tmp_path, synthetic("theorem1_family", "{ ranks = [2] }", count=0)))
    body = synthetic("theorem1_family", "{ ranks = [2] }").replace(
        'source = "synthetic"\nfamily = "theorem1_family"', 'source = "dataset"\nname = "airfoil"'
    )
    body = body.replace("params = { ranks = [2] }", "count = 2")
    with pytest.raises(ConfigError, match="unknown key problems.count"):
        load_config(write(tmp_path, body))


RANDOM = "{ levels = [1.0, 0.5, 0.2, 0.05], n = 6, batch = 2, noise_var = [0.1, 1.0], seed = 3 }"


def test_random_design_fixed_xi_is_the_population_risk(tmp_path, capsys):
    tail = '[run]\nselection = "fixed"\noutput = "out"\nblock = 3\n'
    body = synthetic("random_design_family", RANDOM, count=3, tail=tail)
    body = body.replace("max_steps = 2", "max_steps = 2\nxis = [0.0, 0.5, 2.0]")
    assert main(["sweep", write(tmp_path, body), "--no-progress"]) == 0
    ds = fastsd.load_sweep(tmp_path / "out").to_xarray().load()
    assert ds.attrs["risk"] == "population"
    batch = family_grid(
        "random_design_family",
        count=3,
        levels=[1.0, 0.5, 0.2, 0.05],
        n=6,
        batch=2,
        noise_var=[0.1, 1.0],
        seed=3,
    )
    assert ds.sizes["problem"] == batch.batch_size == 12
    want = fastsd.sweep_risk(
        batch.X,
        batch.theta_star,
        batch.noise_var,
        ds["lam"].values,
        [0.0, 0.5, 2.0],
        2,
        cov=batch.cov,
    )
    np.testing.assert_allclose(ds["risk"].values, want, rtol=1e-12)
    fixed = fastsd.sweep_risk(
        batch.X, batch.theta_star, batch.noise_var, ds["lam"].values, [0.0, 0.5, 2.0], 2
    )
    assert not np.allclose(ds["risk"].values, fixed)  # not the fixed-design risk
    assert ds["seed"].values.tolist() == [3, 3, 4, 4, 5, 5] * 2
    # draws differ (random design): no two problems share their risks
    risks = ds["risk"].values.reshape(12, -1)
    assert len({tuple(np.round(r, 12)) for r in risks}) == 12


def test_random_design_oracle_needs_the_reference(tmp_path, capsys):
    body = synthetic("random_design_family", RANDOM, tail='[run]\noutput = "out"\n')
    with pytest.raises(ConfigError, match="set run.backend = 'numpy'"):
        load_config(write(tmp_path, body))
    body = body.replace("[run]\n", '[run]\nbackend = "numpy"\n')
    assert main(["sweep", write(tmp_path, body), "--no-progress"]) == 0
    ds = fastsd.load_sweep(tmp_path / "out").to_xarray().load()
    batch = random_design_family([1.0, 0.5, 0.2, 0.05], n=6, batch=2, noise_var=0.1, seed=3)
    risk, _ = fastsd.sweep_optimal(
        batch.X,
        batch.theta_star,
        batch.noise_var,
        ds["lam"].values,
        2,
        cov=batch.cov,
        backend="numpy",
    )
    np.testing.assert_allclose(ds["risk"].values[:2], risk, rtol=1e-12)
