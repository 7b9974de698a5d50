"""asv benchmark suite of fastsd (see the user guide, "Benchmarks").

Modules, one class per operation:

* ``decomposition`` -- :func:`fastsd.decompose`;
* ``sweeps`` -- fixed-xi sweeps (risk, held-out MSE) and the optimal-xi sweep;
* ``validation`` -- validation-optimal xi selection;
* ``workflow`` -- the end-to-end paper workflow on synthetic problems;
* ``accuracy`` -- numba vs NumPy reference, spectral vs literal refit, optimal
  risk at large k vs an mpmath reference;
* ``memory`` -- peak memory of the chunked (memory-bounded) sweeps;
* ``jit_compile`` -- cold compile time in a fresh process;
* ``runner`` -- the block runner in-process and on Dask local:2 (fastsd.bench.runner).

Benchmarks of kernels that are not BLAS run with single-threaded BLAS so
that numbers do not depend on the BLAS thread pool (override by exporting
``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` before running asv). This must
happen before NumPy is imported, hence here.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
del _var
