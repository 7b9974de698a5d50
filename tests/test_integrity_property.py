"""Property: whatever happens to a sweep store, the final ``--resume`` gives the same bytes.

A random sequence of faults -- runs that die mid-block (an exception injected into the
writer after some of a block's chunks are written, as a kill would leave it), chunk
files deleted, flipped, truncated or replaced by another block's, markers deleted --
interleaved with resumes, always ends, after a last resume, in a store that verifies and
whose Dataset is identical to an uninterrupted run's. (SIGKILL of a real process at
random moments: ``test_sweep_store.test_resume_after_sigkill_at_random_points``.)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

import fastsd
from fastsd.config.run import load_config, run_sweep
from fastsd.store.integrity import verify_store
from fastsd.store.writer import BlockWriter

pytest.importorskip("zarr")
pytest.importorskip("xarray")
hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

CONFIG = """
[problems]
source = "synthetic"
family = "theorem1_family"
params = { ranks = [2, 3, 4, 5, 3, 2], seed = 3 }

[grid]
lams = { start = 1e-3, stop = 1e3, num = 4 }
max_steps = 3

[run]
selection = "oracle"
output = "out"
block = 1
"""
BLOCKS = 6


class Injected(Exception):
    pass


def _sweep(cfg, fail_at=0, written=0):
    """Resume (or start) the sweep; with ``fail_at``, the writer dies in its fail_at-th
    block after writing ``written`` of the block's chunks (no marker)."""
    original, calls = BlockWriter.write, []

    def dying(self, block, values, record):
        calls.append(block.index)
        if len(calls) == fail_at:
            where = (slice(block.b0, block.b1), slice(block.l0, block.l1))
            for name, arr in list(self._open().items())[:written]:
                arr[where] = values[name]
            raise Injected
        return original(self, block, values, record)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unrecoverable xi, resume's recomputations
        BlockWriter.write = dying
        try:
            run_sweep(cfg, resume=True, progress=False)
        except Injected:
            pass
        finally:
            BlockWriter.write = original


def _markers(out):
    folder = out / "blocks"
    return sorted(p for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []


def _chunks(out, rng_value):
    """(block's marker, chunk path) of a stored block, chosen by ``rng_value``; or None."""
    markers = _markers(out)
    if not markers:
        return None
    marker = markers[rng_value % len(markers)]
    chunks = sorted(json.loads(marker.read_text())["chunks"])
    return marker, out / chunks[(rng_value // len(markers)) % len(chunks)]


def _damage(out, op, value):
    picked = _chunks(out, value)
    if picked is None:
        return
    marker, path = picked
    if op == "delete marker":
        marker.unlink()
    elif not path.exists():
        return
    elif op == "delete chunk":
        path.unlink()
    elif op == "flip":
        data = bytearray(path.read_bytes())
        data[value % len(data)] ^= 1 << (value % 8)
        path.write_bytes(bytes(data))
    elif op == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: value % len(data)])
    elif op == "swap":  # the same variable's chunk of another block
        variable = out / "results.zarr" / path.relative_to(out / "results.zarr").parts[0]
        others = [p for p in (variable / "c").rglob("*") if p.is_file() and p != path]
        if others:
            shutil.copyfile(others[value % len(others)], path)


OPS = ("run", "delete chunk", "flip", "truncate", "swap", "delete marker", "resume")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    (folder / "sweep.toml").write_text(CONFIG)
    cfg = load_config(str(folder / "sweep.toml"))
    _sweep(cfg)
    ds = fastsd.load_sweep(cfg.output).to_xarray().load()
    assert fastsd.load_sweep(cfg.output).blocks_done == (BLOCKS, BLOCKS)
    return ds


@hypothesis.settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(
    first=st.tuples(st.integers(0, BLOCKS), st.integers(0, 3)),
    ops=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 10**6)), max_size=8),
)
def test_any_faults_then_resume_give_the_uninterrupted_bytes(reference, first, ops):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "sweep.toml").write_text(CONFIG)
        cfg = load_config(os.path.join(folder, "sweep.toml"))
        out = Path(cfg.output)
        _sweep(cfg, fail_at=first[0], written=first[1])
        for op, value in ops:
            if op == "run":
                _sweep(cfg, fail_at=1 + value % BLOCKS, written=value % 4)
            elif op == "resume":
                _sweep(cfg)
            else:
                _damage(out, op, value)
            if (out / "manifest.json").exists():  # verify never fails to answer
                for check in verify_store(str(out), BLOCKS):
                    assert check.status in ("ok", "not done", "missing file", "checksum mismatch")
        _sweep(cfg)
        assert [c.status for c in verify_store(str(out), BLOCKS)] == ["ok"] * BLOCKS
        result = fastsd.load_sweep(out)
        assert result.complete
        assert result.to_xarray().load().identical(reference)
