"""Array type aliases shared by fastsd's annotations."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["BoolArray", "FloatArray", "IntArray"]

#: A float64 NumPy array (what fastsd returns).
FloatArray = NDArray[np.float64]
#: An integer NumPy array (indices, step counts).
IntArray = NDArray[np.int64]
#: A boolean NumPy array (masks).
BoolArray = NDArray[np.bool_]
