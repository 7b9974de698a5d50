"""A sweep store you can trust after any fault: verified chunks, resume, readers, verify.

Every stored block's marker records the size and SHA-256 digest of each chunk file it
wrote. A deleted, truncated, altered or swapped chunk is found by ``fastsd verify``,
recomputed by ``--resume`` (one line saying how many) and refused by the readers with one
line naming the block, the file and the fix.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

import fastsd
from fastsd.cli import main
from fastsd.exceptions import DamagedStoreError, StoreIntegrityWarning
from fastsd.store.integrity import check_block, verify_store

pytest.importorskip("zarr")
pytest.importorskip("xarray")

CONFIG = """
[problems]
source = "synthetic"
family = "theorem1_family"
params = {{ ranks = [2, 3, 4, 5], seed = 0 }}

[grid]
lams = {{ start = 1e-3, stop = 1e3, num = 5 }}
max_steps = 3

[run]
selection = "{selection}"
output = "out"
block = 1
"""
FIXED = 'selection = "fixed"'


def run(args, capsys):
    args = list(map(str, args))
    code = main(args + (["--no-progress"] if args[0] == "sweep" else []))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code, err, *needles):
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def sweep(tmp_path, capsys, selection="oracle", output="out"):
    """A finished 4-block sweep in tmp_path/output; returns (config path, its Dataset)."""
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(CONFIG.format(selection=selection))
    code, _, err = run(["sweep", cfg, "--output", tmp_path / output], capsys)
    assert code == 0, err
    return cfg, fastsd.load_sweep(tmp_path / output).to_xarray().load()


def marker(out, index):
    return json.loads((out / "blocks" / f"{index:06d}").read_text())


def chunk(out, index, variable="risk"):
    """The path (relative to out) of one of block ``index``'s chunks, from its marker."""
    (name,) = [n for n in marker(out, index)["chunks"] if n.split("/")[1] == variable]
    return name


@pytest.fixture()
def stored(tmp_path, capsys):
    cfg, reference = sweep(tmp_path, capsys)
    return cfg, tmp_path / "out", reference


def test_markers_record_every_chunk_and_stay_small(stored):
    _, out, _ = stored
    for index in range(4):
        record = marker(out, index)
        assert record["checksum"] == "sha256"
        names = {n.split("/")[1] for n in record["chunks"]}
        assert names == {"risk", "xi", "xi_reproducible"}
        for name, (size, digest) in record["chunks"].items():
            assert os.path.getsize(out / name) == size and len(digest) == 64
        assert len((out / "blocks" / f"{index:06d}").read_bytes()) < 1024
    assert [c.status for c in verify_store(str(out), 4)] == ["ok"] * 4


def _delete(out, name):
    os.remove(out / name)


def _flip(out, name):
    data = bytearray((out / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (out / name).write_bytes(bytes(data))


def _truncate(out, name):
    data = (out / name).read_bytes()
    (out / name).write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "damage, status",
    [(_delete, "missing file"), (_flip, "checksum mismatch"), (_truncate, "checksum mismatch")],
    ids=["deleted", "flipped", "truncated"],
)
def test_damaged_chunk_is_named_refused_and_recomputed(stored, capsys, damage, status):
    cfg, out, reference = stored
    name = chunk(out, 2)
    damage(out, name)
    # verify: the block, its status and file; exit 1
    code, text, _ = run(["verify", out], capsys)
    assert code == 1
    assert f"block 2: {status}: {name}" in text and "3 ok" in text
    # the readers refuse before reading, naming the block, the file and the fix
    with pytest.raises(DamagedStoreError, match=f"block 2 .*{name}: {status}.*--resume"):
        fastsd.load_sweep(out)
    for command in (["export", out, "--to", out.parent / "t.csv"], ["plot", out]):
        code, _, err = run(command, capsys)
        one_line_error(code, err, "block 2", name, status, "--resume", "fastsd verify")
    assert not (out.parent / "t.csv").exists() and not (out / "figures").exists()
    # resume recomputes it, saying how many, and the Dataset is the uninterrupted one's
    code, _, err = run(["sweep", cfg, "--output", out, "--resume"], capsys)
    assert code == 0, err
    assert "resume: 1 of 4 stored blocks failed verification" in err
    assert err.count("resume:") == 1
    assert fastsd.load_sweep(out).to_xarray().load().identical(reference)
    assert run(["verify", out], capsys)[0] == 0


def test_chunk_replaced_by_another_blocks_chunk(stored, capsys):
    """Valid Zarr bytes of the wrong block: Zarr reads them, the checksum does not."""
    cfg, out, reference = stored
    shutil.copyfile(out / chunk(out, 1), out / chunk(out, 3))
    assert fastsd.load_sweep(out, verify=False).to_xarray().load()["risk"].notnull().all()
    checks = verify_store(str(out), 4)
    assert [c.status for c in checks] == ["ok", "ok", "ok", "checksum mismatch"]
    assert checks[3].file == chunk(out, 3)
    with pytest.raises(DamagedStoreError, match="block 3"):
        fastsd.load_sweep(out)
    assert run(["sweep", cfg, "--output", out, "--resume"], capsys)[0] == 0
    assert fastsd.load_sweep(out).to_xarray().load().identical(reference)


def test_several_damaged_blocks_are_counted(stored, capsys):
    cfg, out, reference = stored
    _delete(out, chunk(out, 0, "xi"))
    _flip(out, chunk(out, 3, "xi_reproducible"))
    (out / "blocks" / "000001").write_text("{not json")
    code, text, _ = run(["verify", out, "--json"], capsys)
    assert code == 1
    report = json.loads(text)
    assert report["damaged"] == 3 and report["counts"] == {
        "missing file": 1,
        "damaged marker": 1,
        "ok": 1,
        "checksum mismatch": 1,
    }
    assert [c["status"] for c in report["checks"]][1] == "damaged marker"
    assert report["checks"][1]["file"] == os.path.join("blocks", "000001")
    with pytest.raises(DamagedStoreError, match="and 2 more damaged blocks"):
        fastsd.load_sweep(out)
    code, _, err = run(["sweep", cfg, "--output", out, "--resume"], capsys)
    assert code == 0 and "3 of 4 stored blocks failed verification" in err
    assert fastsd.load_sweep(out).to_xarray().load().identical(reference)


def test_unfinished_blocks_are_not_damage(stored, capsys):
    _, out, _ = stored
    os.remove(out / "blocks" / "000002")
    os.remove(out / chunk(out, 3))
    os.remove(out / "blocks" / "000003")  # a block that was never finished
    code, text, _ = run(["verify", out], capsys)
    assert code == 0 and "2 not done, 2 ok" in text
    assert check_block(str(out), 2).status == "not done"
    fastsd.load_sweep(out)  # partial, but nothing stored is damaged


def test_stores_without_checksums_are_read_with_one_warning(stored, capsys):
    """A store written before markers held checksums: unverifiable, trusted, warned once."""
    cfg, out, reference = stored
    for index in (0, 2):
        path = out / "blocks" / f"{index:06d}"
        record = json.loads(path.read_text())
        del record["chunks"], record["checksum"]
        path.write_text(json.dumps(record))
    (out / "blocks" / "000003").write_text("")  # the oldest markers were empty files
    code, text, _ = run(["verify", out], capsys)
    assert code == 0
    assert "block 0: unverifiable (no checksums in its marker)" in text
    assert "1 ok, 3 unverifiable" in text
    with pytest.warns(StoreIntegrityWarning, match="3 of 4 stored blocks .* no checksums"):
        result = fastsd.load_sweep(out)
    code, _, err = run(["export", out, "--to", out.parent / "t.csv"], capsys)
    assert code == 0 and err.count("\n") == 1, err  # the warning, as one line
    assert err.startswith("fastsd export: warning: 3 of 4 stored blocks"), err
    assert result.to_xarray().load().identical(reference)
    fastsd.load_sweep(out, verify=False)  # no warning: pytest's filter would show it
    code, _, err = run(["sweep", cfg, "--output", out, "--resume"], capsys)
    assert code == 0 and "failed verification" not in err


def test_verify_refuses_what_is_not_a_sweep(tmp_path, capsys):
    code, _, err = run(["verify", tmp_path], capsys)
    one_line_error(code, err, "not a fastsd sweep output")


def test_verify_is_documented_in_its_help(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0 when every stored block verifies, 1 when damage is found" in text


# ----------------------------------------------------------------------------
# honest plots
# ----------------------------------------------------------------------------


def _titles(monkeypatch):
    """Record the axes titles of every figure plot_sweep saves, by file name."""
    import fastsd.plotting as plotting

    titles, save = {}, plotting._save

    def recording(fig, path, *args, **kwargs):
        titles[os.path.basename(path)] = " ".join(ax.get_title() for ax in fig.axes)
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(plotting, "_save", recording)
    return titles


def test_plot_refuses_a_half_finished_sweep_unless_partial(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(CONFIG.format(selection="oracle"))

    def stop(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), pytest.warns(fastsd.IllConditionedXiWarning):
        fastsd.config.run.run_sweep(str(cfg), progress=stop)
    out = tmp_path / "out"
    done, total = fastsd.load_sweep(out).blocks_done
    assert total == 4 and done in (2, 3)  # the write of the next block may have finished
    code, _, err = run(["plot", out], capsys)
    one_line_error(code, err, "unfinished sweep", f"{done} of 4 blocks done", "--partial")
    assert not (out / "figures").exists()
    titles = _titles(monkeypatch)
    code, _, err = run(["plot", out, "--partial"], capsys)
    assert code == 0, err
    assert sorted(titles) == ["best_vs_k.png", "metric_vs_lam.png", "xi_heatmap.png"]
    for name, title in titles.items():
        assert f"partial: {done} of 4 blocks" in title, name
        assert "NaN skipped" in title, name  # the problems not stored are NaN
    # finished: no "partial", and NaN skipped only where there was NaN
    assert run(["sweep", cfg, "--resume"], capsys)[0] == 0
    titles.clear()
    assert run(["plot", out], capsys)[0] == 0
    assert not any("partial" in title for title in titles.values())
    assert "NaN skipped" not in titles["metric_vs_lam.png"]  # every risk is finite
    ds = fastsd.load_sweep(out).to_xarray().load()
    unrecoverable = bool(ds["xi"].isel(k=-1).isnull().any())
    assert ("NaN skipped" in titles["xi_heatmap.png"]) == unrecoverable


def test_a_marker_lost_after_the_run_makes_the_sweep_unfinished(stored, capsys):
    cfg, out, reference = stored
    os.remove(out / "blocks" / "000001")
    result = fastsd.load_sweep(out)
    assert not result.complete and result.blocks_done == (3, 4)
    code, _, err = run(["export", out, "--to", out.parent / "t.csv"], capsys)
    one_line_error(code, err, "unfinished sweep")
    assert run(["sweep", cfg, "--output", out, "--resume"], capsys)[0] == 0
    assert fastsd.load_sweep(out).complete
