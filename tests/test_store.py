"""The store on its own (fastsd/store): layout, manifest, writer and reader."""

import json

import numpy as np
import pytest

from fastsd.blocks.plan import block_grid
from fastsd.store import SweepStore, load_sweep
from fastsd.store.layout import coordinates, layout, store_values
from fastsd.store.manifest import MANIFEST, load_manifest, read_manifest, write_json

pytest.importorskip("zarr")
pytest.importorskip("xarray")


@pytest.mark.parametrize("kind", ["risk", "optimal", "mse", "optimal_validation"])
def test_layout_shapes(kind):
    B, L, K, G = 3, 4, 2, 5
    variables = layout(kind, B, L, K, G if kind in ("risk", "mse") else None)
    for dims, shape, dtype in variables.values():
        assert len(dims) == len(shape) and shape[:2] == (B, L)
        assert dtype in ("float64", "bool")
    if kind in ("optimal", "optimal_validation"):
        assert variables["xi"][1] == (B, L, K + 1, K)
        assert variables["xi_reproducible"][2] == "bool"


def test_store_values_marks_unrecoverable_schedules():
    xi = np.ones((1, 2, 2, 2))
    xi[0, 1, 1] = np.nan  # the 2-step schedule at the second lambda
    out = store_values("optimal", {"risk": np.zeros((1, 2, 3)), "xi": xi})
    assert out["xi"].shape == (1, 2, 3, 2) and np.isnan(out["xi"][:, :, 0]).all()
    assert out["xi_reproducible"].tolist() == [[[True, True, True], [True, True, False]]]


def test_manifest_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="not a fastsd sweep output"):
        load_manifest(str(tmp_path))
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="manifest.json is not a readable JSON"):
        load_manifest(str(tmp_path))
    (tmp_path / MANIFEST).write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a fastsd sweep manifest"):
        load_manifest(str(tmp_path))
    assert read_manifest(str(tmp_path)) is None


def test_write_json_replaces_atomically(tmp_path):
    path = str(tmp_path / "m.json")
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_store_round_trip(tmp_path):
    B, L, K = 4, 3, 2
    variables = layout("optimal", B, L, K)
    coords = coordinates(B, np.logspace(-1, 1, L), K)
    out = str(tmp_path / "out")
    store = SweepStore.create(
        out, {"config": {}, "config_hash": "x"}, variables, coords, (2, 3), {}
    )
    rng = np.random.default_rng(0)
    want = {"risk": rng.normal(size=(B, L, K + 1)), "xi": rng.normal(size=(B, L, K, K))}
    for blk in block_grid(B, L, 2, 3):
        part = {name: a[blk.b0 : blk.b1, blk.l0 : blk.l1] for name, a in want.items()}
        store.write(blk, store_values("optimal", part))
    assert store.done() == {0, 1}
    store.finish()
    result = load_sweep(out)
    assert result.complete
    ds = result.to_xarray()
    assert np.array_equal(ds["risk"].values, want["risk"])
    assert np.array_equal(ds["xi"].values[:, :, 1:], want["xi"])
