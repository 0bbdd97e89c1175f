"""The predictor's state over training, measured with analysis.metrics (thesis Fig. 4.8).

Takes plain sequences of (W_p, F) pairs, so the same function measures snapshots of a ResNet run
and a trajectory of the linear model's gradient flow.
"""
from dataclasses import dataclass

import numpy as np

from analysis import metrics

# Signal directions of F: eigenvectors with s_j ≥ SIGNAL_FRACTION · s_1. The rest carry (almost) no
# variance: their eigenvectors are ill-defined and the thesis (Fig. 4.8) finds them unaligned.
SIGNAL_FRACTION = 0.01


@dataclass(frozen=True)
class PredictorTrajectory:
    """Per-snapshot measurements; rows are snapshots in time order, columns eigen-directions of F
    (largest eigenvalue first)."""

    step: np.ndarray                # (T,)
    epoch: np.ndarray               # (T,)
    F_eigenvalues: np.ndarray       # (T, d) panel 1 of Fig. 4.8
    W_p_eigenvalues: np.ndarray     # (T, d) panel 2 (real parts, sorted)
    alignment: np.ndarray           # (T, d) panel 3: |u_jᵀ W_p u_j| / ‖W_p u_j‖
    mean_alignment: np.ndarray      # (T,)   alignment weighted by F's eigenvalues
    signal_alignment: np.ndarray    # (T,)   unweighted mean alignment over F's signal directions (H4)
    asymmetry: np.ndarray           # (T,)   panel 4, thesis Eq. 4.1 (H3)
    relative_commutator: np.ndarray  # (T,)  ‖[F, W_p]‖ / (‖F‖‖W_p‖), paper Thm 3

    def __len__(self) -> int:
        return len(self.step)


def signal_alignment(alignment: np.ndarray, F_eigenvalues: np.ndarray) -> float:
    """Unweighted mean of one snapshot's per-direction alignment over F's signal directions (NaN if
    F has no positive eigenvalue); both arrays in F's eigenvalue order, largest first."""
    top = F_eigenvalues.max()
    if top <= 0:
        return float("nan")
    return float(alignment[F_eigenvalues >= SIGNAL_FRACTION * top].mean())


def predictor_trajectory(W_ps, Fs, steps=None, epochs=None) -> PredictorTrajectory:
    """Measure each (W_p, F) pair; `steps` / `epochs` label them (default 0, 1, 2, ...)."""
    W_ps, Fs = list(W_ps), list(Fs)
    if len(W_ps) != len(Fs) or not W_ps:
        raise ValueError(f"need one F per W_p and at least one pair, got {len(W_ps)} W_p and {len(Fs)} F")
    count = len(W_ps)
    steps = np.arange(count) if steps is None else np.asarray(steps)
    epochs = np.zeros(count, dtype=int) if epochs is None else np.asarray(epochs)
    F_eigenvalues = np.stack([metrics.spectrum(F) for F in Fs])
    alignment = np.stack([metrics.eigenspace_alignment(W, F) for W, F in zip(W_ps, Fs)])
    return PredictorTrajectory(
        step=steps,
        epoch=epochs,
        F_eigenvalues=F_eigenvalues,
        W_p_eigenvalues=np.stack([metrics.spectrum(W) for W in W_ps]),
        alignment=alignment,
        mean_alignment=np.array([metrics.mean_alignment(W, F) for W, F in zip(W_ps, Fs)]),
        signal_alignment=np.array([signal_alignment(a, values) for a, values in zip(alignment, F_eigenvalues)]),
        asymmetry=np.array([metrics.asymmetry(W) for W in W_ps]),
        relative_commutator=np.array([metrics.relative_commutator(F, W) for W, F in zip(W_ps, Fs)]),
    )


def snapshot_trajectory(snapshots) -> PredictorTrajectory:
    """`predictor_trajectory` of a run's snapshots (analysis.rundir.Snapshot)."""
    return predictor_trajectory([s.W_p for s in snapshots], [s.F for s in snapshots],
                                [s.step for s in snapshots], [s.epoch for s in snapshots])
