"""scikit-learn estimators for k-step self-distilled ridge regression.

Needs scikit-learn (``pip install fastsd[sklearn]``).

* :class:`SelfDistilledRidge` -- fixed lambda and schedule xi;
* :class:`SelfDistilledRidgeCV` -- lambda, k <= K and xi tuned from one
  decomposition: the safe rule (the default: SD only where its nested
  leave-one-out risk, closed form and exact, beats ridge's by one standard
  error; otherwise RidgeCV's model, and ``selection_`` says which), exact
  leave-one-out, one-shot GCV (k <= 1), or a holdout set;
* :func:`loo_predictions` -- exact leave-one-out predictions of the whole
  k-step procedure, without refits;
* :func:`tuning_table` -- test-MSE comparison of the tuning rules over splits.
"""

try:
    import sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without scikit-learn
    raise ImportError(
        "fastsd.estimators needs scikit-learn; install it with "
        "`pip install scikit-learn` or `pip install fastsd[sklearn]`"
    ) from exc

from ..exceptions import TuningWarning
from ._base import SelfDistilledRidge
from ._cv import DEFAULT_LAMS, SelfDistilledRidgeCV
from ._loo import loo_predictions
from .compare import format_tuning_table, tuning_table

__all__ = [
    "DEFAULT_LAMS",
    "SelfDistilledRidge",
    "SelfDistilledRidgeCV",
    "TuningWarning",
    "format_tuning_table",
    "loo_predictions",
    "tuning_table",
]

# Kernel ridge: SelfDistilledKernelRidge(CV), see ._kernel.
from ._kernel import SelfDistilledKernelRidge, SelfDistilledKernelRidgeCV  # noqa: E402

__all__ += ["SelfDistilledKernelRidge", "SelfDistilledKernelRidgeCV"]
