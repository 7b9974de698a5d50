"""Private Numba kernels. Public wrappers live in :mod:`fastsd.engine.sweeps` and
:mod:`fastsd.decomposition`; each kernel mirrors a function of
:mod:`fastsd.reference` and is tested against it."""
