"""The package version (one home: ``fastsd.__version__``, the manifest, ``--version``)."""

__version__ = "0.1.0"
