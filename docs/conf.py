"""Sphinx configuration for the fastsd documentation.

Build with ``python -m sphinx -W -b html docs docs/_build/html`` (needs the
``docs`` extra: ``pip install -e '.[docs]'``). The API reference is generated
at build time from ``fastsd.__all__`` and the ``__all__`` of every public
submodule (see :func:`write_api_pages`), so names added to the package appear
without editing these files. The gallery (``docs/examples/``) is executed on
every build by sphinx-gallery.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import warnings
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

#: Submodules that are not part of the public API: Numba kernels (private by
#: design), the CLI entry points and the package's __main__.
PRIVATE_MODULES = {"fastsd.kernels", "fastsd.cli", "fastsd.__main__"}

API_DIR = DOCS / "api" / "generated"


def public_modules():
    """fastsd's submodules whose names do not start with "_" (kernels excluded)."""
    names = []
    for info in pkgutil.walk_packages(fastsd.__path__, prefix="fastsd."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts[1:]):
            continue
        if any(info.name == m or info.name.startswith(m + ".") for m in PRIVATE_MODULES):
            continue
        names.append(info.name)
    return sorted(names)


def top_level_names():
    """Public names of ``fastsd``: ``__all__`` plus lazily imported attributes in ``dir``."""
    names = list(getattr(fastsd, "__all__", []))
    names += [
        n
        for n in dir(fastsd)
        if not n.startswith("_")
        and n not in names
        and n[0].isupper()
        and not isinstance(getattr(fastsd, n), type(fastsd))
    ]
    return names


def _autosummary(title, module, names, underline="="):
    lines = [
        title,
        underline * len(title),
        "",
        f".. currentmodule:: {module}",
        "",
        ".. autosummary::",
        "   :toctree: .",
        "   :nosignatures:",
        "",
    ]
    lines += [f"   {n}" for n in names]
    return "\n".join(lines) + "\n"


def write_api_pages(app=None):
    """Write one page per public module into docs/api/generated (git-ignored).

    ``fastsd``'s own names get one page; every other public module lists the
    names of its ``__all__`` not documented already (under ``fastsd`` or an
    enclosing package), so each object has one page. A public module without
    ``__all__`` is listed with its docstring only, and a warning says so.
    """
    API_DIR.mkdir(parents=True, exist_ok=True)
    for old in API_DIR.glob("*.rst"):
        old.unlink()
    top = top_level_names()
    documented = {id(getattr(fastsd, n)) for n in top}
    modules = [n for n in top if isinstance(getattr(fastsd, n), type(fastsd))]
    functions = [n for n in top if n not in modules]
    pages = {
        "00_fastsd": "\n".join(
            [
                "fastsd",
                "======",
                "",
                ".. automodule:: fastsd",
                "   :no-members:",
                "",
                _autosummary("Contents", "fastsd", functions, "-"),
            ]
        )
    }
    for i, modname in enumerate(public_modules(), start=1):
        module = importlib.import_module(modname)
        doc_first = (module.__doc__ or "").strip().splitlines()
        names = getattr(module, "__all__", None)
        if names is None:
            warnings.warn(
                f"{modname} has no __all__: only its docstring is documented", stacklevel=1
            )
            names = []
        # each object once: under fastsd, else under the first (outermost) module
        # (a package's __all__ may name submodules not imported yet: their own pages)
        names = [n for n in names if hasattr(module, n)]
        own = [
            n
            for n in names
            if id(getattr(module, n)) not in documented
            and not isinstance(getattr(module, n), type(fastsd))
        ]
        documented.update(id(getattr(module, n)) for n in own)
        text = [
            modname,
            "=" * len(modname),
            "",
            f".. automodule:: {modname}",
            "   :no-members:",
            "",
        ]
        if own:
            text.append(_autosummary("Contents", modname, own, underline="-"))
        elif not doc_first:
            continue
        pages[f"{i:02d}_{modname}"] = "\n".join(text) + "\n"
    for stem, text in pages.items():
        path = API_DIR / f"{stem}.rst"
        path.write_text(text)


write_api_pages()


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
    app.connect("build-finished", copy_asv_dashboard)
