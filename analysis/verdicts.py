"""Verdict rules: from measured quantities to `holds` / `fails` / `inconclusive` (SPEC §5).

Each rule names the quantity it reads and its thresholds; the README's analysis section repeats
them. The rules are the same for the linear model and for deep runs wherever the quantity is.
"""
import math
from dataclasses import dataclass, field

import numpy as np

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
COLLAPSED, NOT_COLLAPSED, UNKNOWN = "collapsed", "not collapsed", "unknown"

# H3 / H4 read a quantity the theory drives to 0 (asymmetry of W_p; 1 − mean alignment).
# It "went to 0" if at the last snapshot it is at most SMALL, or at most HALVED × its first value;
# it "did not move" if the last value is still at least STALLED × the first; otherwise inconclusive.
SMALL_ASYMMETRY = 0.2    # random i.i.d. W_p: ≈ √2; antisymmetric: 2
SMALL_MISALIGNMENT = 0.2  # i.e. F-weighted mean alignment ≥ 0.8; random W_p: ≈ 1 − O(1/√d)
HALVED = 0.5
STALLED = 0.9

# Collapse of embeddings (H1, H2, H5–H7 on deep runs): std of ℓ2-normalised embeddings × √d is ≈ 1
# when they spread over the sphere and 0 when they sit on one point; RankMe is the number of
# directions they effectively span. Collapsed if std < COLLAPSED_STD or rank < COLLAPSED_RANK.
COLLAPSED_STD = 0.1
COLLAPSED_RANK = 2.0


@dataclass(frozen=True)
class Verdict:
    """One hypothesis in one setting: what the theory predicts, what was seen, and the outcome."""

    hypothesis: str      # "H1" .. "H7"
    setting: str         # "linear flow", "linear SGD", "eigenvalue ODE", "deep"
    prediction: str
    observation: str
    outcome: str         # HOLDS / FAILS / INCONCLUSIVE
    evidence: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"hypothesis": self.hypothesis, "setting": self.setting, "prediction": self.prediction,
                "observation": self.observation, "outcome": self.outcome, "evidence": self.evidence}


def decay_outcome(first: float, last: float, small: float) -> str:
    """Did a quantity that should go to 0 go there? holds: last ≤ small or last ≤ HALVED·first;
    fails: last ≥ STALLED·first (fell by less than 10%, or grew); inconclusive in between."""
    if last <= small or last <= HALVED * first:
        return HOLDS
    if last >= STALLED * first:
        return FAILS
    return INCONCLUSIVE


def _trend_evidence(series, name: str) -> dict:
    series = np.asarray(series, dtype=float)
    return {f"{name}_first": float(series[0]), f"{name}_last": float(series[-1]),
            f"{name}_min": float(series.min()), "snapshots": int(len(series))}


def symmetry_outcome(asymmetry) -> tuple[str, dict]:
    """H3: the predictor becomes symmetric. Quantity: asymmetry ‖W_p − W_pᵀ‖/‖W_p‖ (thesis Eq. 4.1),
    first against last snapshot, by `decay_outcome` with small = SMALL_ASYMMETRY. One snapshot
    shows no trend: inconclusive."""
    evidence = _trend_evidence(asymmetry, "asymmetry")
    if evidence["snapshots"] < 2:
        return INCONCLUSIVE, evidence
    return decay_outcome(evidence["asymmetry_first"], evidence["asymmetry_last"], SMALL_ASYMMETRY), evidence


def alignment_outcome(mean_alignment) -> tuple[str, dict]:
    """H4: the eigenspaces of W_p and F align. Quantity: 1 − the F-eigenvalue-weighted mean of the
    per-eigenvector alignment |u_jᵀ W_p u_j| / ‖W_p u_j‖ (analysis.metrics.mean_alignment), first
    against last snapshot, by `decay_outcome` with small = SMALL_MISALIGNMENT."""
    series = np.asarray(mean_alignment, dtype=float)
    evidence = _trend_evidence(series, "mean_alignment")
    if len(series) < 2:
        return INCONCLUSIVE, evidence
    return decay_outcome(1 - series[0], 1 - series[-1], SMALL_MISALIGNMENT), evidence


def last_finite(values) -> float:
    """The last finite entry of a series (NaN if there is none)."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else math.nan


def collapse_status(std: float, effective_rank: float) -> str:
    """Collapsed if std·√d < COLLAPSED_STD or effective rank < COLLAPSED_RANK; not collapsed if
    both are known and above; unknown when neither was measured (NaN)."""
    known = [v for v in (std, effective_rank) if math.isfinite(v)]
    if not known:
        return UNKNOWN
    if (math.isfinite(std) and std < COLLAPSED_STD) or (math.isfinite(effective_rank) and effective_rank < COLLAPSED_RANK):
        return COLLAPSED
    return NOT_COLLAPSED if len(known) == 2 else UNKNOWN


def combine(outcomes) -> str:
    """Several runs or settings of one hypothesis: fails if any fails, holds if all hold, else inconclusive."""
    outcomes = list(outcomes)
    if FAILS in outcomes:
        return FAILS
    if outcomes and all(o == HOLDS for o in outcomes):
        return HOLDS
    return INCONCLUSIVE
