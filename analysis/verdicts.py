"""Verdict rules: from measured quantities to `holds` / `fails` / `inconclusive` (SPEC §5).

Each rule names the quantity it reads and its thresholds, with why; docs/theory.md repeats the
linear ones. The rules are the same for the linear model and for deep runs wherever the quantity is.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from analysis.trajectory import SIGNAL_FRACTION

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
COLLAPSED, NOT_COLLAPSED, UNKNOWN = "collapsed", "not collapsed", "unknown"

# H3 / H4 read quantities the theory drives to 0 exponentially (the antisymmetric part of W_p decays
# under weight decay; the commutator [F, W_p] under Thm 3's K ≻ 0). Such a quantity "went to 0" when, at
# the last snapshot, it is both small in absolute terms and down by an order of magnitude from the
# first (DROP = 0.1, ≥ 2.3 e-foldings: far beyond snapshot-to-snapshot noise, and not met by a
# quantity that merely drifts); it "did not move" if the last value is still ≥ STALLED × the first.
# For the asymmetry, which is at most 2 (W_p antisymmetric), the drop implies SMALL_ASYMMETRY; the
# alignment and the commutator can fall 10× and stay large, and their small bounds do bind.
SMALL_ASYMMETRY = 0.2      # ‖W_p−W_pᵀ‖/‖W_p‖ = 0.2: the antisymmetric part holds 1% of ‖W_p‖² (i.i.d. W_p: 50%, ≈ √2)
SMALL_MISALIGNMENT = 0.05  # 1 − mean |cos ∠(W_p u_j, u_j)| over the signal directions: W_p u_j within ≈ 18° of u_j
SMALL_COMMUTATOR = 0.05    # ‖[F,W_p]‖/(‖F‖‖W_p‖), at most √2 (Böttcher–Wenzel): 3.5% of its largest value
DROP = 0.1
STALLED = 0.9
RULES = {
    "H3": (f"H3 holds if the asymmetry at the last snapshot is ≤ {SMALL_ASYMMETRY:g} and ≤ {DROP:g}× its first "
           f"value, fails if it is still ≥ {STALLED:g}× the first, else inconclusive."),
    "H4": (f"H4 applies that rule to 1 − the mean alignment of the directions with s_j ≥ {SIGNAL_FRACTION:g} s_1 "
           f"(small: ≤ {SMALL_MISALIGNMENT:g}) and to the relative commutator (small: ≤ {SMALL_COMMUTATOR:g}); "
           f"it holds only if both hold and fails if either fails."),
}

# H5 (linear): the located collapse threshold agrees with η* within THRESHOLD_TOL. The bisection
# brackets it to 1% (the located value is within 0.5%) and the observer's horizon delays detection
# by < 0.03% (linear_dynamics.threshold): 2% rejects any real disagreement larger than that resolution.
THRESHOLD_TOL = 0.02

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


def not_in_units(verdict: Verdict, reason: str) -> Verdict:
    """`verdict` as inconclusive because its prediction is not in the network's units (`reason`, which ends
    on the words its rule's reading completes), the outcome its rule gave kept in the evidence."""
    return Verdict(verdict.hypothesis, verdict.setting, verdict.prediction,
                   f"{reason} ({verdict.outcome}) is not {verdict.hypothesis}'s: {verdict.observation}", INCONCLUSIVE,
                   {**verdict.evidence, "rule_outcome": verdict.outcome, "not_in_units": reason})


def complete_collapse(effective_rank: float) -> bool:
    """The collapse map's probe rule: collapsed iff the projector outputs span fewer than
    COLLAPSED_RANK directions (RankMe): the trivial fixed point that weight decay drives a network to
    (every output equal, or zero: rank 1). The std half of `collapse_status` is left out here: early
    in training a linear predictor's outputs share one large mean direction, which holds std × √d
    near 0.05 while they still span 7–9 directions and recover (the map's pilot, docs/ablations.md).
    NaN (not logged) is not collapse."""
    return bool(effective_rank < COLLAPSED_RANK)


def decay_outcome(first: float, last: float, small: float) -> str:
    """Did a quantity that should go to 0 go there? holds: last ≤ small and last ≤ DROP·first;
    fails: last ≥ STALLED·first (fell by less than 10%, or grew); inconclusive otherwise."""
    if last <= small and last <= DROP * first:
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


def alignment_outcome(signal_alignment, relative_commutator) -> tuple[str, dict]:
    """H4: the eigenspaces of W_p and F align. Quantities, first against last snapshot, each by
    `decay_outcome`: 1 − the unweighted mean alignment |u_jᵀW_pu_j|/‖W_pu_j‖ over F's signal directions
    (s_j ≥ SIGNAL_FRACTION·s_1; `trajectory.PredictorTrajectory.signal_alignment`; small =
    SMALL_MISALIGNMENT), and the relative commutator ‖[F,W_p]‖/(‖F‖‖W_p‖) (small = SMALL_COMMUTATOR).
    holds only if both hold; fails if either fails; one snapshot: inconclusive."""
    alignment = np.asarray(signal_alignment, dtype=float)
    commutator = np.asarray(relative_commutator, dtype=float)
    evidence = {**_trend_evidence(alignment, "signal_alignment"), **_trend_evidence(commutator, "commutator")}
    if len(alignment) < 2:
        return INCONCLUSIVE, evidence
    parts = (decay_outcome(1 - alignment[0], 1 - alignment[-1], SMALL_MISALIGNMENT),
             decay_outcome(commutator[0], commutator[-1], SMALL_COMMUTATOR))
    evidence.update(alignment_outcome=parts[0], commutator_outcome=parts[1])
    return combine(parts), evidence


def threshold_outcome(observed: float | None, critical: float, located: bool = True) -> str:
    """H5 (linear): holds if a located collapse threshold is within THRESHOLD_TOL (relative) of η*;
    fails otherwise, and when the threshold lies outside the searched bracket (not located)."""
    if not located or observed is None:
        return FAILS
    return HOLDS if abs(observed / critical - 1) <= THRESHOLD_TOL else FAILS


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
