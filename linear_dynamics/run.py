"""One trajectory of the matrix model, from the gradient flow or from SGD, its metrics and its verdict.

Every metric comes from `analysis.metrics`, the implementation the deep runs use too. The verdict is
`matrix_fate.MatrixFate`: decided by a certificate on the dynamics, not by a snapshot at t_end.
"""
from dataclasses import dataclass

import numpy as np

from analysis import metrics
from linear_dynamics.matrix_fate import MatrixFate
from linear_dynamics.params import LinearConfig


@dataclass(frozen=True)
class LinearRun:
    """W (T, n2, n1), W_p (T, n2, n2), W_a (T, n2, n1) at times t (T,); SGD time is steps × lr.

    Without a predictor W_p is the identity; in SimSiam (beta unset) W_a is W. `fate` is the run's
    verdict with its certificate (`matrix_fate`); a diverged SGD run ends where divergence was seen.
    """

    t: np.ndarray
    W: np.ndarray
    W_p: np.ndarray
    W_a: np.ndarray
    config: LinearConfig
    method: str  # "flow" or "sgd"
    fate: MatrixFate

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
    def verdict(self) -> str:
        """'collapsed' | 'non-collapsed' | 'undecided' | 'diverged' (SGD only): `fate.verdict`."""
        return self.fate.verdict

    @property
    def collapsed(self) -> bool:
        return self.fate.verdict == "collapsed"

    def final(self) -> dict[str, float]:
        F, W_p = self.F[-1], self.W_p[-1]
        return {"W_norm": float(self.W_norm[-1]), "asymmetry": metrics.asymmetry(W_p),
                "commutator": metrics.relative_commutator(F, W_p)}
