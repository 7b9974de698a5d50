"""fastsd: fast, exact repeated self-distillation of ridge regression.

Pareek, Du & Oh, "Understanding the Gains from Repeated Self-Distillation"
(NeurIPS 2024, arXiv 2407.04600). Everything is a spectral filter on one
decomposition of the design, computed once by :func:`decompose`.
"""

from typing import Any

from . import datasets, reference
from ._jit import threads
from .blocks.chunked import BestRisk, sweep_optimal_chunked, sweep_risk_chunked
from .decomposition import Decomposition, decompose
from .decomposition.kernel import KernelDecomposition, decompose_kernel
from .engine.single import excess_risk, optimal_xi, optimal_xi_validation, oracle_risk, self_distill
from .engine.sweeps import sweep_mse, sweep_optimal, sweep_optimal_validation, sweep_risk
from .engine.warmup import warmup
from .exceptions import IllConditionedXiWarning, NonFiniteResultWarning
from .math.reparam import xi_to_xibar, xibar_to_xi
from .store.reading import SweepResult, label_sweep, load_sweep

__version__ = "0.1.0"

# scikit-learn estimators, imported on first use so that `import fastsd`
# does not need scikit-learn (the optional extra `fastsd[sklearn]`).
_ESTIMATORS = (
    "SelfDistilledRidge",
    "SelfDistilledRidgeCV",
    "SelfDistilledKernelRidge",
    "SelfDistilledKernelRidgeCV",
)


# public submodules that `import fastsd` does not load itself: `fastsd.problems`
# etc. work after a plain `import fastsd`, imported on first access.
_SUBMODULES = ("problems", "experiments", "plotting", "estimators", "tables")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name in _ESTIMATORS:
        from . import estimators  # ImportError naming scikit-learn if missing

        return getattr(estimators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ESTIMATORS) | set(_SUBMODULES))


__all__ = [
    "BestRisk",
    "Decomposition",
    "IllConditionedXiWarning",
    "datasets",
    "decompose",
    "decompose_kernel",
    "KernelDecomposition",
    "excess_risk",
    "label_sweep",
    "load_sweep",
    "NonFiniteResultWarning",
    "optimal_xi",
    "optimal_xi_validation",
    "oracle_risk",
    "reference",
    "self_distill",
    "sweep_mse",
    "sweep_optimal",
    "sweep_optimal_chunked",
    "sweep_optimal_validation",
    "sweep_risk",
    "sweep_risk_chunked",
    "SweepResult",
    "threads",
    "warmup",
    "xi_to_xibar",
    "xibar_to_xi",
]
