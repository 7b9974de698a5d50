"""Sphinx configuration for the fastsd documentation.

Build with ``python -m sphinx -W -b html docs docs/_build/html`` (needs the
``docs`` extra: ``pip install -e '.[docs]'``). The API reference
(``docs/api/index.rst``) groups the public names by task; the build fails when a
public name (``fastsd.__all__``, the estimators, the ``__all__`` of the public
submodules) is missing there (:func:`check_api_reference`). The gallery (``docs/examples/``) is executed on
every build by sphinx-gallery.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document the checkout, not an installed copy

os.environ.setdefault("MPLBACKEND", "Agg")

import fastsd  # noqa: E402

project = "fastsd"
author = "fastsd developers"
copyright = "2026, fastsd developers"
release = fastsd.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    # MathJax from the installed package, copied into _static/mathjax: no CDN
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",  # CHANGELOG.md and the Markdown pages of the user guide
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_asv_placeholder", "Thumbs.db", ".DS_Store", "examples/README.rst"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# "#section" links in the user guide pages written in Markdown (moved from the README)
myst_heading_anchors = 3
root_doc = "index"
default_role = "code"  # `x` is inline code, as in the README (no silent cross-reference)

# ----------------------------------------------------------------- autodoc / numpydoc

autosummary_generate = True
autosummary_imported_members = True
# a whole module's page lists its __all__, not every name it imports
autosummary_ignore_module_all = False
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # numpydoc sections carry the types (annotations come in phase B)
# numpydoc would otherwise list every method/attribute of every class (incl. the
# inherited scikit-learn API) and warn on each that has no docstring of its own.
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
# Free-text types ("array_like of shape (n, d)", "dict of 1-D arrays") are not
# cross-reference targets: do not turn them into links that -W would reject.
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# myst (CHANGELOG.md, included under changelog.rst's own title) checks that a
# document's headings start at H1; for an included file they start at H2.
suppress_warnings = ["myst.header"]

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
}
# No network at build time (CI, sandboxed machines): intersphinx inventories
# are optional; with none, references to numpy/sklearn render as plain text.
intersphinx_disabled_reftypes = ["*"]
if os.environ.get("FASTSD_DOCS_INTERSPHINX") != "1":
    intersphinx_mapping = {}

# ----------------------------------------------------------------- HTML

html_theme = "pydata_sphinx_theme"
html_title = f"fastsd {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_show_sourcelink = False
# An explicit default mode: without it the theme starts from an empty mode and logs
# "Got invalid theme mode" on the console of the first page a browser opens.
html_context = {"default_mode": "auto"}

# ----------------------------------------------------------------- gallery

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "abort_on_example_error": True,
    "show_memory": False,
    "min_reported_time": 1,
    # no sg_execution_times pages: they load jQuery/DataTables from a CDN and are
    # build statistics, not documentation
    "write_computation_times": False,
}

# ----------------------------------------------------------------- API pages

#: The API reference (docs/api/index.rst) groups fastsd's public names by task in
#: autosummary tables; :func:`check_api_reference` fails the build when a public name
#: is missing there or a name there is not public. Modules listed as a whole (their
#: page lists their ``__all__``, ``_templates/autosummary/module.rst``):
WHOLE_MODULES = {
    "bench.kernels",
    "bench.e2e",
    "bench.runner",
    "experiments.reproduce",
    "experiments.synthetic",
    "experiments.uci",
    "experiments.kernel_sd",
    "experiments.tuning",
    "plotting",
    "tables",
}
#: Modules whose ``__all__`` names are listed one by one.
ITEMIZED_MODULES = ("problems", "datasets", "estimators", "exceptions", "reference")
#: Names in an ``__all__`` that are plumbing between fastsd's own layers.
INTERNAL_NAMES = {
    "exceptions.report_unrecoverable",
    "exceptions.warn_unrecoverable",
    "exceptions.report_nonfinite",
    "exceptions.warn_nonfinite",
}

API_INDEX = DOCS / "api" / "index.rst"
API_DIR = DOCS / "api" / "generated"


def _resolve(name):
    """The object ``fastsd.<name>`` (importing submodules on the way)."""
    obj = fastsd
    parts = name.split(".")
    for i, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module("fastsd." + ".".join(parts[: i + 1]))
    return obj


def public_names():
    """Every public name, relative to ``fastsd``: the package's ``__all__`` (less its
    submodules) and estimators, and the ``__all__`` of the itemized modules."""
    names = [n for n in fastsd.__all__ if not isinstance(getattr(fastsd, n), type(fastsd))]
    names += list(fastsd._ESTIMATORS)
    for mod in ITEMIZED_MODULES:
        names += [f"{mod}.{n}" for n in _resolve(mod).__all__]
    return [n for n in names if n not in INTERNAL_NAMES]


def listed_names(text=None):
    """The entries of the autosummary tables of docs/api/index.rst, in order."""
    text = API_INDEX.read_text() if text is None else text
    names, inside = [], False
    for line in text.splitlines():
        if line.startswith(".. autosummary::"):
            inside = True
        elif inside and line.startswith("   ") and not line.strip().startswith(":"):
            names.append(line.strip())
        elif inside and line.strip() and not line.startswith("   "):
            inside = False
    return names


def _is_value(obj):
    """Constants compare by name, not identity (small ints and strings are shared)."""
    return isinstance(obj, (int, float, str, bytes, tuple, frozenset))


def check_api_reference(listed=None):
    """Problems with the API reference (an empty list when it is complete and public).

    Every public name must be listed, under its own name or under another name of the
    same object (``datasets.ChecksumError`` is ``exceptions.ChecksumError``); every listed
    name must be public, or one of :data:`WHOLE_MODULES`; none twice.
    """
    listed = listed_names() if listed is None else listed
    problems = [f"{n} is listed twice" for n in sorted({n for n in listed if listed.count(n) > 1})]
    public = public_names()
    objects = {}
    for n in listed:
        try:
            objects[n] = _resolve(n)
        except (AttributeError, ImportError):
            problems.append(f"{n} is listed but fastsd.{n} does not exist")
    for n in listed:
        if n not in public and n not in WHOLE_MODULES:
            problems.append(f"{n} is listed but not public")
    for n in public:
        obj = _resolve(n)
        if not any(m == n or (o is obj and not _is_value(obj)) for m, o in objects.items()):
            problems.append(f"fastsd.{n} is public but not listed in docs/api/index.rst")
    return problems


def prepare_api_pages(app):
    """Check the API reference, and remove the pages of an earlier build (autosummary
    writes them anew into docs/api/generated, git-ignored)."""
    problems = check_api_reference()
    if problems:
        raise RuntimeError("API reference: " + "; ".join(problems))
    API_DIR.mkdir(parents=True, exist_ok=True)
    for old in API_DIR.glob("*.rst"):
        old.unlink()


# ----------------------------------------------------------------- asv dashboard


def copy_asv_dashboard(app, exception):
    """Copy the asv dashboard into <html>/asv (FASTSD_ASV_HTML), or a page saying how.

    ``FASTSD_ASV_HTML`` names the ``html`` directory written by
    ``scripts/asv_dashboard.py`` (or ``asv publish``); the benchmarks page links
    to ``asv/index.html``.
    """
    if exception is not None or app.builder.format != "html":
        return
    import shutil

    source = os.environ.get("FASTSD_ASV_HTML")
    target = Path(app.outdir) / "asv"
    if target.exists():
        shutil.rmtree(target)
    if source:
        if not (Path(source) / "index.html").is_file():
            raise RuntimeError(
                f"FASTSD_ASV_HTML={source} has no index.html (run scripts/asv_dashboard.py first)"
            )
        shutil.copytree(source, target)
    else:
        shutil.copytree(DOCS / "_asv_placeholder", target)


def setup(app):
    # before autosummary (priority 500) writes the pages
    app.connect("builder-inited", prepare_api_pages, priority=400)
    app.connect("build-finished", copy_asv_dashboard)
