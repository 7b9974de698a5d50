"""The config layer on its own (fastsd/config/schema.py): resolution, hashing, key checks."""

import numpy as np
import pytest

from fastsd.config.schema import diff_configs, load_config, parse_bytes
from fastsd.exceptions import ConfigError

BASE = """
[problems]
source = "synthetic"
family = "theorem1_family"
params = {{ ranks = [2, 3], n = 30, d = 8 }}
[grid]
lams = {{ start = 0.01, stop = 10.0, num = 5 }}
max_steps = 2
[run]
output = "{out}"
threads = {threads}
"""


def _write(tmp_path, name="c.toml", **kw):
    text = BASE.format(out=kw.pop("out", "o1"), threads=kw.pop("threads", 1))
    for old, new in kw.items():
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_resolved_and_paths_absolute(tmp_path):
    cfg = load_config(_write(tmp_path))
    assert cfg.run["selection"] == "oracle" and cfg.run["backend"] == "numba"
    assert cfg.max_steps == 2 and cfg.xis is None
    np.testing.assert_allclose(cfg.lams, np.logspace(-2, 1, 5))
    assert cfg.output == str(tmp_path / "o1")


def test_where_and_how_fast_do_not_change_the_hash(tmp_path):
    a = load_config(_write(tmp_path, "a.toml"))
    b = load_config(_write(tmp_path, "b.toml", out="elsewhere", threads=2))
    assert a.hash == b.hash
    assert diff_configs(a.resolved, b.resolved) == []
    c = load_config(_write(tmp_path, "c.toml", **{"max_steps = 2": "max_steps = 3"}))
    assert c.hash != a.hash
    assert diff_configs(a.resolved, c.resolved) == ["grid.max_steps"]


def test_unknown_keys_are_named_with_a_suggestion(tmp_path):
    path = _write(tmp_path, **{"max_steps = 2": "max_step = 2"})
    with pytest.raises(ConfigError, match=r"grid\.max_step.*max_steps"):
        load_config(path)


@pytest.mark.parametrize(
    "value, want", [("1GiB", 1 << 30), ("512MiB", 512 << 20), ("2GB", 2 * 10**9), (4096, 4096)]
)
def test_parse_bytes(value, want):
    assert parse_bytes(value) == want


@pytest.mark.parametrize("value", ["lots", -1, "1.5 XB", True])
def test_parse_bytes_refuses_nonsense(value):
    with pytest.raises(ConfigError, match="run.memory_limit"):
        parse_bytes(value)
