"""What the README and the documentation say about installing and running fastsd is true.

Checked against the sources of truth: ``pyproject.toml`` (Python version, core
dependencies, extras) and the command line's own ``--help``. Also: the Python examples of
the README and Getting started run without a warning, and the API reference lists exactly
the public names (``docs/conf.py``'s check, run here without building the docs).
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
import warnings
from pathlib import Path

import pytest

from fastsd.cli import main

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
README = (ROOT / "README.md").read_text()
GETTING_STARTED = (ROOT / "docs" / "getting_started.rst").read_text()
SKIP_DIRS = {"_build", "auto_examples", "generated"}
DOC_FILES = [ROOT / "README.md"] + [
    p
    for p in sorted((ROOT / "docs").rglob("*"))
    if p.suffix in (".rst", ".md") and not SKIP_DIRS & set(p.relative_to(ROOT).parts)
]


def _name(requirement: str) -> str:
    """The distribution name of a requirement ("dask[array]>=2024" -> "dask")."""
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def _words(text: str) -> set[str]:
    """Comma/"and"-separated package names of a list written in prose."""
    parts = re.split(r",\s*|\s+and\s+", text.strip().rstrip("."))
    return {_name(p.strip()) for p in parts if p.strip()}


def test_python_version_is_the_same_everywhere():
    want = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert PYPROJECT["tool"]["mypy"]["python_version"] == want
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + want.replace(".", "")
    said = {
        (path.name, version)
        for path in DOC_FILES
        for version in re.findall(r"Python\s*(?:≥|>=)\s*(\d+\.\d+)", path.read_text())
    }
    assert {name for name, _ in said} >= {"README.md", "getting_started.rst"}
    assert {version for _, version in said} == {want}, sorted(said)


def test_core_dependencies_are_listed():
    want = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    readme = re.search(r"Core dependencies: ([^.]+)\.", README)
    guide = re.search(r"core dependencies are ([^;]+);", " ".join(GETTING_STARTED.split()))
    assert readme and _words(readme.group(1)) == want
    assert guide and _words(guide.group(1)) == want


def test_extras_table_matches_pyproject():
    """Getting started's table lists every extra with exactly the packages it adds."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    rows = {
        m.group(1): {_name(p) for p in re.split(r",\s+", m.group(2))}
        for m in re.finditer(r"^   \* - ``(\w+)``\n     - (.+)$", GETTING_STARTED, re.M)
    }
    assert set(rows) == set(extras)
    for extra, requirements in extras.items():
        assert rows[extra] == {_name(r) for r in requirements}, extra
    for extra in extras:  # the README names each one and points to the table
        assert f"`{extra}`" in README, extra


def _help(*argv: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def _shell_blocks(text: str) -> list[str]:
    """The shell code blocks: ```bash/sh/console fences and reST code-block:: bash/console."""
    blocks = re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, re.S)
    blocks += [
        m.group(1)
        for m in re.finditer(
            r"^\.\. code-block:: (?:bash|sh|console)\n\n((?:(?:   .*)?\n)+)", text, re.M
        )
    ]
    return blocks


def _documented_commands() -> dict[str, set[str]]:
    """command -> options used with ``fastsd COMMAND`` in the README and the docs: in
    inline code (`fastsd sweep CONFIG --resume`) and on the command lines of shell blocks."""
    found: dict[str, set[str]] = {}
    for path in DOC_FILES:
        text = path.read_text()
        spans = re.findall(r"`{1,2}(fastsd [^`]+)`{1,2}", text)
        for block in _shell_blocks(text):
            spans += re.findall(r"(?:^|&&|\$)\s*(fastsd [^\n#]+)", block, re.M)
        for span in spans:
            words = span.split()
            if len(words) < 2 or not re.fullmatch(r"[a-z]+", words[1]):
                continue  # `fastsd --version`, `fastsd COMMAND --help`
            found.setdefault(words[1], set()).update(re.findall(r"--[a-z][a-z0-9-]*", span))
    return found


def test_documented_commands_and_options_exist(capsys):
    """Every ``fastsd COMMAND --option`` the docs use is in that command's --help."""
    documented = _documented_commands()
    top = _help(capsys=capsys)
    assert {"reproduce", "sweep", "bench"} <= set(documented)
    for command, options in sorted(documented.items()):
        assert re.search(rf"^\s+{command}\s", top, re.M), f"fastsd {command} is not a command"
        text = _help(command, capsys=capsys)
        for suite in ("--runner", "--sweep", "--scale"):  # fastsd bench --runner --help ...
            if command == "bench" and suite in options:
                text += _help("bench", suite, capsys=capsys)
        missing = sorted(o for o in options if o not in text and o != "--help")
        assert not missing, f"fastsd {command} --help does not show {missing}"


def _python_blocks(text: str) -> list[str]:
    """The ```python fences of Markdown and the code-block:: python of reST."""
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    for m in re.finditer(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", text, re.M):
        lines = m.group(1).splitlines()
        blocks.append("\n".join(line[3:] for line in lines))
    return blocks


@pytest.mark.parametrize(
    "path", ["README.md", "docs/getting_started.rst", "docs/index.rst"], ids=lambda p: p
)
def test_python_examples_run_without_warnings(path):
    blocks = _python_blocks((ROOT / path).read_text())
    assert blocks
    for code in blocks:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            exec(compile(code, path, "exec"), {"__name__": "__example__"})


def test_api_reference_lists_exactly_the_public_names():
    spec = importlib.util.spec_from_file_location("docs_conf", ROOT / "docs" / "conf.py")
    assert spec and spec.loader
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    assert conf.check_api_reference() == []
    listed = conf.listed_names()
    assert "Any" not in listed and "decompose" in listed
    # the check can fail: a missing public name and a non-public one are both reported
    problems = conf.check_api_reference([n for n in listed if n != "decompose"] + ["Any"])
    assert any("fastsd.decompose is public but not listed" in p for p in problems)
    assert any("Any is listed but not public" in p for p in problems)


def test_performance_table_is_printed_from_the_kept_run():
    """The README's and the performance page's W1/W2/WK table is `fastsd bench`'s own
    output for the run kept in the repository, not numbers typed by hand."""
    import json

    from fastsd.bench.kernels import format_table

    res = json.loads((ROOT / "benchmarks" / "bench-repeat5.json").read_text())
    assert res["repeat"] == 5
    for key in ("w1_speedup", "w2_speedup", "wk_speedup", "w1_numba_s"):
        assert len(res[key]) == 5, key
    table = format_table(res)
    performance = (ROOT / "docs" / "user_guide" / "performance.md").read_text()
    for name, text in (("README.md", README), ("performance.md", performance)):
        assert table in text, f"{name}: paste the output of format_table(bench-repeat5.json)"
