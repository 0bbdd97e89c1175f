"""One trajectory of the matrix model, from the gradient flow or from SGD, and its metrics.

Every metric comes from `analysis.metrics`, the implementation the deep runs use too.
"""
from dataclasses import dataclass

import numpy as np

from analysis import metrics
from linear_dynamics.params import LinearConfig

# ‖W(t_end)‖ below this fraction of ‖W(0)‖ counts as collapse. Non-collapsed runs settle at a
# fraction of order one (each mode at s = p₊²/α_p); collapsing ones shrink exponentially.
COLLAPSE_RATIO = 1e-2


@dataclass(frozen=True)
class LinearRun:
    """W (T, n2, n1), W_p (T, n2, n2), W_a (T, n2, n1) at times t (T,); SGD time is steps × lr.

    Without a predictor W_p is the identity; in SimSiam (beta unset) W_a is W.
    """

    t: np.ndarray
    W: np.ndarray
    W_p: np.ndarray
    W_a: np.ndarray
    config: LinearConfig
    method: str  # "flow" or "sgd"

    @property
    def F(self) -> np.ndarray:
        """F = W X Wᵀ with X = I (assumption A2)."""
        return self.W @ np.swapaxes(self.W, 1, 2)

    @property
    def W_norm(self) -> np.ndarray:
        return np.linalg.norm(self.W, axis=(1, 2))

    @property
    def asymmetry(self) -> np.ndarray:
        """‖W_p − W_pᵀ‖/‖W_p‖ over time (thesis Eq. 4.1)."""
        return np.array([metrics.asymmetry(W_p) for W_p in self.W_p])

    @property
    def commutator(self) -> np.ndarray:
        """‖[F, W_p]‖/(‖F‖‖W_p‖) over time (Thm 3: → 0 as the eigenspaces align)."""
        return np.array([metrics.relative_commutator(F, W_p) for F, W_p in zip(self.F, self.W_p)])

    @property
    def collapsed(self) -> bool:
        return bool(self.W_norm[-1] <= COLLAPSE_RATIO * self.W_norm[0])

    @property
    def verdict(self) -> str:
        return "collapsed" if self.collapsed else "non-collapsed"

    def final(self) -> dict[str, float]:
        F, W_p = self.F[-1], self.W_p[-1]
        return {"W_norm": float(self.W_norm[-1]), "asymmetry": metrics.asymmetry(W_p),
                "commutator": metrics.relative_commutator(F, W_p)}
