"""fastsd.datasets: packaged UCI files, checksums, preprocessing, splits.

The expected digests below are copied from shared/data/uci/SOURCES.md (not
read from fastsd), and the preprocessing is re-derived independently with the
csv module and string comparisons, so the loader is never checked against
itself.
"""

import csv
import gzip
import hashlib
import io
import math
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from fastsd import datasets as ds
from fastsd.datasets import _load
from fastsd.exceptions import ChecksumError

NAMES = ("airfoil", "air_quality", "appliances_energy")

# file -> (sha256 of the .gz, sha256 of the uncompressed file), from SOURCES.md
DIGESTS = {
    "airfoil": (
        "airfoil_self_noise.dat.gz",
        "dee01791d3033c441cb7ebdf56baae497938f285e2cdad48321331ae1e435b9c",
        "74c75fd71783f1e6b71f8a622b993dc592897a97cd689c5090a07147a1b097b3",
    ),
    "air_quality": (
        "AirQualityUCI.csv.gz",
        "a4197a2b3407adee54a97d9b9a753522f99d916109d45e192b512467f328d3dd",
        "13277ae5d8581e80b7be09d47c7d3d06fe9b8e957078f2cf6e859f955e62f996",
    ),
    "appliances_energy": (
        "energydata_complete.csv.gz",
        "6b1af29ce87e12fd1d090cf06d1cce394e5a491466937f15827b3d7f06e6a7e3",
        "2820bf712ad0275cb18b85a05250926100d8e65ebb9f4d2d016ca91ea152a25d",
    ),
}

SHAPES = {
    "airfoil": (1503, 5),
    "air_quality": (8991, 8),  # 9357 rows minus the 366 missing C6H6/sensors
    "appliances_energy": (19735, 25),  # 29 columns - date, Appliances, rv1, rv2
}

AQ_INPUTS = [
    "PT08.S1(CO)",
    "PT08.S2(NMHC)",
    "PT08.S3(NOx)",
    "PT08.S4(NO2)",
    "PT08.S5(O3)",
    "T",
    "RH",
    "AH",
]
AEP_INPUTS = (
    ["lights"]
    + [f"T{i}" for i in range(1, 10)]
    + [f"RH_{i}" for i in range(1, 10)]
    + ["T_out", "Press_mm_hg", "RH_out", "Windspeed", "Visibility", "Tdewpoint"]
)

SOURCES_MD = Path(__file__).resolve().parents[2] / "shared" / "data" / "uci" / "SOURCES.md"


def packaged_bytes(name):
    return resources.files("fastsd").joinpath("data", DIGESTS[name][0]).read_bytes()


def raw_text(name):
    return gzip.decompress(packaged_bytes(name)).decode("ascii")


# ---------------------------------------------------------------- checksums


@pytest.mark.parametrize("name", NAMES)
def test_packaged_file_checksums(name):
    _, sha_gz, sha_raw = DIGESTS[name]
    blob = packaged_bytes(name)
    assert hashlib.sha256(blob).hexdigest() == sha_gz
    assert hashlib.sha256(gzip.decompress(blob)).hexdigest() == sha_raw
    info = ds.dataset_info(name)
    assert (info["filename"], info["sha256_gz"], info["sha256_raw"]) == DIGESTS[name]
    assert "CC BY 4.0" in info["licence"]
    assert info["doi"] in info["citation"]


@pytest.mark.skipif(not SOURCES_MD.exists(), reason="shared/data/uci not present")
def test_digests_match_sources_md():
    published = set(re.findall(r"\b[0-9a-f]{64}\b", SOURCES_MD.read_text("utf-8")))
    for _, sha_gz, sha_raw in DIGESTS.values():
        assert sha_gz in published and sha_raw in published


def test_attribution_file_ships():
    text = resources.files("fastsd").joinpath("data", "ATTRIBUTION.md").read_text("utf-8")
    assert "CC BY 4.0" in text
    for _, sha_gz, sha_raw in DIGESTS.values():
        assert sha_gz in text and sha_raw in text
    for doi in ("10.24432/C5VW2C", "10.24432/C59K5F", "10.24432/C5VC8G"):
        assert doi in text


@pytest.mark.parametrize("name", NAMES)
def test_intact_copy_loads_like_packaged(tmp_path, name):
    path = tmp_path / DIGESTS[name][0]
    path.write_bytes(packaged_bytes(name))
    X, y, names = _load(name, path=path)
    X0, y0, names0 = ds.load_dataset(name)
    assert_array_equal(X, X0)
    assert_array_equal(y, y0)
    assert names == names0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("damage", ["flip", "truncate", "append"])
def test_corrupted_copy_rejected(tmp_path, name, damage):
    blob = bytearray(packaged_bytes(name))
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x01
    elif damage == "truncate":
        del blob[-100:]
    else:
        blob += b"\x00"
    path = tmp_path / DIGESTS[name][0]
    path.write_bytes(bytes(blob))
    with pytest.raises(ChecksumError, match="checksum mismatch") as err:
        _load(name, path=str(path))
    assert DIGESTS[name][1] in str(err.value)  # names the expected digest
    assert hashlib.sha256(bytes(blob)).hexdigest() in str(err.value)


def test_recompressed_copy_rejected(tmp_path):
    # same content, different gzip bytes: the .gz digest is what is pinned
    path = tmp_path / "airfoil.gz"
    content = raw_text("airfoil").encode("ascii")
    path.write_bytes(gzip.compress(content, compresslevel=1, mtime=0))
    with pytest.raises(ChecksumError):
        _load("airfoil", path=path)


# ---------------------------------------------------------------- contents


@pytest.mark.parametrize("name", NAMES)
def test_shapes_dtypes_finite(name):
    X, y, names = ds.load_dataset(name)
    assert X.shape == SHAPES[name]
    assert y.shape == (SHAPES[name][0],)
    assert X.dtype == np.float64 and y.dtype == np.float64
    assert len(names) == X.shape[1] and all(isinstance(s, str) for s in names)
    assert np.isfinite(X).all() and np.isfinite(y).all()
    assert X.flags.writeable and y.flags.writeable


def test_airfoil_matches_independent_parse():
    rows = [line.split("\t") for line in raw_text("airfoil").split("\r\n") if line]
    table = np.array(rows, dtype=float)
    X, y, names = ds.load_dataset("airfoil")
    assert_array_equal(X, table[:, :5])
    assert_array_equal(y, table[:, 5])
    assert y.min() == 103.38 and y.max() == 140.987
    assert names[0] == "frequency"


def test_air_quality_matches_independent_parse():
    reader = csv.DictReader(io.StringIO(raw_text("air_quality")), delimiter=";")
    rows = list(reader)
    assert len(rows) == 9357 + 114
    data = [r for r in rows if r["Date"]]
    assert len(data) == 9357
    cols = AQ_INPUTS + ["C6H6(GT)"]
    # missing marker checked on the strings, not on parsed floats
    complete = [r for r in data if not any(r[c] in ("-200", "-200,0") for c in cols)]
    assert len(complete) == 8991
    table = np.array([[float(r[c].replace(",", ".")) for c in cols] for r in complete])

    X, y, names = ds.load_dataset("air_quality")
    assert names == AQ_INPUTS
    assert X.shape == (len(complete), 8)
    assert_array_equal(X, table[:, :8])
    assert_array_equal(y, table[:, 8])
    assert not np.any(X == -200) and not np.any(y == -200)
    assert not np.any(X <= -100)  # no marker survived in any spelling
    assert y.min() > 0  # benzene concentration


def test_appliances_energy_matches_independent_parse():
    rows = list(csv.DictReader(io.StringIO(raw_text("appliances_energy"))))
    assert len(rows) == 19735
    X, y, names = ds.load_dataset("appliances_energy")
    assert names == AEP_INPUTS
    assert not {"date", "rv1", "rv2", "Appliances"} & set(names)
    assert_array_equal(y, [float(r["Appliances"]) for r in rows])
    assert_array_equal(X, [[float(r[c]) for c in AEP_INPUTS] for r in rows])
    assert y.min() == 10 and y.max() == 1080


def test_aliases_and_case():
    X, y, _ = ds.load_dataset("appliances_energy")
    for alias in ("aep", "appliances", "AEP", " Appliances-Energy "):
        X2, y2, _ = ds.load_dataset(alias)
        assert_array_equal(X2, X)
        assert_array_equal(y2, y)
    assert ds.load_dataset("Air Quality")[0].shape == SHAPES["air_quality"]
    assert ds.dataset_info("aep")["name"] == "appliances_energy"


def test_datasets_mapping():
    assert set(ds.DATASETS) == set(NAMES)
    assert all(isinstance(v, str) and v for v in ds.DATASETS.values())
    with pytest.raises(TypeError):
        ds.DATASETS["x"] = "y"


@pytest.mark.parametrize("bad", ["", "boston", "airfoil2", "air quality index"])
def test_bad_name_lists_valid_names(bad):
    with pytest.raises(ValueError, match="name=") as err:
        ds.load_dataset(bad)
    for valid in NAMES + ("aep", "appliances"):
        assert repr(valid) in str(err.value)
    with pytest.raises(ValueError, match="name="):
        ds.load_split(bad, seed=0)
    with pytest.raises(ValueError, match="name="):
        ds.dataset_info(bad)


def test_non_string_name():
    with pytest.raises(TypeError, match="name"):
        ds.load_dataset(3)


def test_cache_returns_copies():
    X, y, names = ds.load_dataset("airfoil")
    X0, y0 = X.copy(), y.copy()
    X[:] = np.nan
    y[:] = -1.0
    names.append("junk")
    X2, y2, names2 = ds.load_dataset("airfoil")
    assert_array_equal(X2, X0)
    assert_array_equal(y2, y0)
    assert len(names2) == 5
    assert not np.shares_memory(X2, ds.load_dataset("airfoil")[0])


# ---------------------------------------------------------------- splitting


def toy(n=50, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -3.0], rng.normal(size=n)


def test_split_sizes_disjoint_cover():
    X, y, _ = ds.load_dataset("airfoil")
    s = ds.split_dataset(X, y, val_fraction=0.2, test_fraction=0.2, seed=1)
    n = X.shape[0]
    assert (len(s.train_idx), len(s.val_idx), len(s.test_idx)) == (901, 301, 301)
    all_idx = np.concatenate([s.train_idx, s.val_idx, s.test_idx])
    assert_array_equal(np.sort(all_idx), np.arange(n))  # disjoint and covering
    for Xp, yp, idx in [
        (s.X_train, s.y_train, s.train_idx),
        (s.X_val, s.y_val, s.val_idx),
        (s.X_test, s.y_test, s.test_idx),
    ]:
        assert Xp.shape == (len(idx), 5) and yp.shape == (len(idx),)
        assert_array_equal(Xp, X[idx])
        assert_array_equal(yp, y[idx])


def test_split_reproducible_by_seed():
    X, y = toy()
    a = ds.split_dataset(X, y, seed=7)
    b = ds.split_dataset(X, y, seed=7)
    c = ds.split_dataset(X, y, seed=8)
    for f in ("train_idx", "val_idx", "test_idx", "X_train", "y_test"):
        assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.test_idx, c.test_idx)


def test_split_fractions():
    X, y = toy(n=10)
    s = ds.split_dataset(X, y, val_fraction=0.0, test_fraction=0.3, seed=0)
    assert (len(s.train_idx), len(s.val_idx), len(s.test_idx)) == (7, 0, 3)
    assert s.X_val.shape == (0, 3)
    s = ds.split_dataset(X, y, val_fraction=0.01, test_fraction=0.01, seed=0)
    assert (len(s.val_idx), len(s.test_idx)) == (1, 1)  # positive -> at least one row


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(val_fraction=1.0), "val_fraction"),
        (dict(val_fraction=-0.1), "val_fraction"),
        (dict(test_fraction=1.5), "test_fraction"),
        (dict(val_fraction=0.5, test_fraction=0.5), "no training rows"),
        (dict(seed=-1), "seed"),
    ],
)
def test_split_bad_values(kwargs, match):
    X, y = toy(n=10)
    kwargs = {"seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        ds.split_dataset(X, y, **kwargs)


def test_split_bad_inputs():
    X, y = toy(n=10)
    with pytest.raises(ValueError, match="y has 9"):
        ds.split_dataset(X, y[:-1], seed=0)
    with pytest.raises(ValueError, match="X must have 2"):
        ds.split_dataset(y, y, seed=0)
    with pytest.raises(TypeError, match="seed"):
        ds.split_dataset(X, y, seed=1.5)
    with pytest.raises(TypeError, match="val_fraction"):
        ds.split_dataset(X, y, val_fraction="0.2", seed=0)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ds.split_dataset(X, y, seed=0)


def test_split_does_not_modify_inputs():
    X, y = toy()
    X0, y0 = X.copy(), y.copy()
    s = ds.split_dataset(X, y, seed=0)
    s.X_train[:] = 0.0
    s.y_test[:] = 0.0
    assert_array_equal(X, X0)
    assert_array_equal(y, y0)


# ---------------------------------------------------------------- standardize


def test_standardize_uses_training_statistics_only():
    X, y = toy(n=200)
    s = ds.split_dataset(X, y, seed=3)
    (tr, va, te), st = ds.standardize(
        (s.X_train, s.y_train), (s.X_val, s.y_val), (s.X_test, s.y_test)
    )
    assert_allclose(tr[0].mean(axis=0), 0.0, atol=1e-12)
    assert_allclose(tr[0].std(axis=0), 1.0, rtol=1e-12)
    assert abs(tr[1].mean()) < 1e-12
    assert_allclose(st.x_mean, s.X_train.mean(axis=0))
    assert_allclose(st.x_scale, s.X_train.std(axis=0))
    assert st.y_mean == pytest.approx(s.y_train.mean())
    # held-out parts use the training statistics, so are not exactly standardized
    assert np.all(np.abs(te[0].mean(axis=0)) > 1e-6)
    assert np.all(np.abs(te[0].std(axis=0) - 1.0) > 1e-6)
    assert_allclose(te[0], (s.X_test - s.X_train.mean(0)) / s.X_train.std(0))
    assert_allclose(va[1], s.y_val - s.y_train.mean())
    # held-out data cannot influence the statistics
    (_, te2), st2 = ds.standardize((s.X_train, s.y_train), (s.X_test * 100 + 7, s.y_test))
    assert_array_equal(st2.x_mean, st.x_mean)
    assert_array_equal(st2.x_scale, st.x_scale)
    # the target is centred, not scaled; inverse restores it
    assert_allclose(st.inverse_transform_y(te[1]), s.y_test)


def test_standardize_constant_column_and_no_target():
    X, _ = toy(n=30)
    X[:, 1] = 0.3048  # constant, not exactly representable
    (tr, te), st = ds.standardize((X[:20], None), (X[20:], None))
    assert tr[1] is None and te[1] is None and st.y_mean == 0.0
    assert np.isfinite(tr[0]).all() and np.isfinite(te[0]).all()
    assert st.x_scale[1] == 1.0
    assert_allclose(tr[0][:, 1], 0.0, atol=1e-15)
    assert_allclose(tr[0][:, [0, 2]].std(axis=0), 1.0)


def test_standardize_does_not_modify_inputs():
    X, y = toy()
    X0, y0 = X.copy(), y.copy()
    (tr, te), _ = ds.standardize((X[:40], y[:40]), (X[40:], y[40:]))
    tr[0][:] = 0.0
    assert_array_equal(X, X0)
    assert_array_equal(y, y0)


def test_standardize_bad_inputs():
    X, y = toy()
    with pytest.raises(TypeError, match="train"):
        ds.standardize(X)
    with pytest.raises(ValueError, match="others\\[0\\].*columns"):
        ds.standardize((X, y), (X[:, :2], None))
    with pytest.raises(ValueError, match="train y"):
        ds.standardize((X, y[:3]))


# ---------------------------------------------------------------- load_split


@pytest.mark.parametrize("name", NAMES)
def test_load_split(name):
    X, y, names = ds.load_dataset(name)
    s = ds.load_split(name, 0)
    n, d = SHAPES[name]
    assert s.X_train.shape[1] == s.X_val.shape[1] == s.X_test.shape[1] == d
    assert len(s.train_idx) + len(s.val_idx) + len(s.test_idx) == n
    assert list(s.feature_names) == names
    assert_allclose(s.X_train.mean(axis=0), 0.0, atol=1e-10)
    assert_allclose(s.X_train.std(axis=0), 1.0, rtol=1e-10)
    assert abs(s.y_train.mean()) < 1e-9 * max(1.0, abs(s.stats.y_mean))
    for part, idx in [("test", s.test_idx), ("val", s.val_idx)]:
        Xp, yp = getattr(s, f"X_{part}"), getattr(s, f"y_{part}")
        assert np.isfinite(Xp).all()
        assert_allclose(Xp * s.stats.x_scale + s.stats.x_mean, X[idx], rtol=1e-12, atol=1e-12)
        assert_allclose(yp + s.stats.y_mean, y[idx], rtol=1e-12)


def test_load_split_raw_and_reproducible():
    a = ds.load_split("aep", seed=5, val_fraction=0.1, test_fraction=0.3, standardize=False)
    b = ds.load_split("appliances", 5, 0.1, 0.3)
    assert a.stats is None
    assert_array_equal(a.test_idx, b.test_idx)
    # documented sizes: round(fraction * n), halves rounded up
    assert len(a.test_idx) == math.floor(0.3 * 19735 + 0.5) == 5921
    assert len(a.val_idx) == math.floor(0.1 * 19735 + 0.5) == 1974
    X, y, _ = ds.load_dataset("aep")
    assert_array_equal(a.X_test, X[a.test_idx])
    with pytest.raises(TypeError, match="standardize"):
        ds.load_split("airfoil", 0, standardize="yes")
