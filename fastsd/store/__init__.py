r"""The sweep store: ``manifest.json`` + ``results.zarr``, one Zarr chunk per block.

Layout of an output directory ``OUT``::

    OUT/manifest.json     resolved config, its hash, versions, host, block plan,
                          state ("creating" -> "ready") and "complete"
    OUT/results.zarr/     Zarr v3 group, variables chunked exactly by block
    OUT/blocks/NNNNNN     marker: block NNNNNN is fully stored (a small JSON record:
                          its counts of non-finite values and unrecoverable xi,
                          timings, the host and process that wrote it)

Integrity rules:

* Each Zarr chunk is written atomically (zarr's local store writes a temporary
  file and renames it); a block's marker is created (atomically) only after
  all its chunks, so a block is either done or recomputed whole -- never lost,
  duplicated or half-read. SIGKILL at any moment is safe to resume. The
  process that computes a block writes it (:class:`~fastsd.store.writer.BlockWriter`;
  a Dask worker writes its own blocks), and a write that fails stops the run
  before that block's marker.
* A marker records the size and SHA-256 digest of each chunk file of its block
  (:mod:`~fastsd.store.integrity`): resume recomputes the blocks that no longer
  verify, :func:`load_sweep` refuses them (naming block and file), ``fastsd
  verify OUT`` lists them.
* A run resumes only into a store whose config hash matches; otherwise the
  refusal names the differing keys.
* ``overwrite`` replaces only a directory whose manifest says it is a fastsd
  sweep and that holds nothing else, and refuses ``/``, the home directory, a
  directory containing the config file or the working directory. The new run
  is built beside it and swapped in when complete (:mod:`~fastsd.store.staging`):
  a failed or killed overwrite leaves the old run.
"""

from .manifest import prepare_output
from .reading import SweepResult, label_sweep, load_sweep, to_dataframe
from .writer import SweepStore

__all__ = [
    "SweepResult",
    "SweepStore",
    "label_sweep",
    "load_sweep",
    "prepare_output",
    "to_dataframe",
]
