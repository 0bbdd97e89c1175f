"""The cosine model under SGD with momentum and weight decay: why a weight-decay threshold needs the
discrete steps, how it scales, and where the model puts it (docs/cosine-model.md).

The cosine loss does not see the scale of W, W_p or W_a (`cosine_modes`): its gradient is orthogonal
to each of them, and in continuous time weight decay only shrinks the norms and reparametrises time,
so the flow has no critical weight decay. SGD's finite steps change that.

Exact facts (scale invariance; checked against real SGD in the tests):
- S1, lr·wd invariance (the rescaling argument of Li & Arora 2020 and van Laarhoven 2017): SGD from
  W(0) with lr, weight decay wd and momentum μ moves the directions exactly as SGD from W(0)/c with
  lr/c² and wd·c² (the velocity scales as 1/c, an EMA target with W). So, at fixed μ, m and data, a
  collapse threshold in weight decay scales as 1/lr once the start's scale is forgotten.
- S2, the angular update (van Laarhoven 2017; Wan et al. 2021, "spherical motion dynamics"): at
  equilibrium each step turns the weights by δθ with δθ² ≈ 2·lr·wd/(1 + μ) for lr·wd ≪ 1, whatever the
  gradient (signal or noise); for μ = 0 exactly, in expectation, E‖W‖²·wd(2 − lr·wd) = lr·E‖g‖² (g the
  gradient, ⟂ W), the balance of the decay with the second-order growth of a rotation.

Model (ours; phenomenological, one measured and one fitted constant):
- S3, the target's lag. The online direction minus its EMA target's, d, obeys
      d_{n+1} = m[(1 − γ) d_n + ξ_n],   E‖ξ_n‖² = δθ²,
  (the EMA recursion a_{n+1} = m a_n + (1 − m) w_{n+1} applied to the difference; the online moves by
  its angular update and is pulled back toward the target at a rate γ per step). Stationary:
      D = E‖d‖² = m² δθ² / (1 − m²(1 − γ)²),    coherence C = ⟨W_a, W⟩/(‖W_a‖‖W‖) ≈ (1 + D)^{-1/2}.
  γ is not derived: it is measured, from C at one weight decay (`restoring_rate`). SimSiam (m = 0)
  has d ≡ 0: its target is the online network.
- S4, the collapse rule. The network collapses (dimensionally: the effective rank of W Wᵀ falls to
  half) once D exceeds a critical mismatch D_c, one constant fitted on one setting. With S2 and S3,
      wd_c = D_c (1 + μ)(1 − m²(1 − γ)²) / (2 lr m²),
  decreasing with m, ∝ 1/lr (S1), and infinite for m = 0 (no finite threshold from this mechanism).
  LINEAR_CRITICAL_MISMATCH is D_c fitted on the linear model (docs/cosine-model.md gives the command);
  a ResNet needs its own, fitted on one setting of the collapse map.
Validity: δθ² ≪ 1 (S2); γ measured below the threshold, where D grows linearly in wd; α_p and σ² enter
only through the measured γ.
"""
import math
from dataclasses import dataclass

from linear_dynamics.params import check_nonnegative, check_positive

# D_c of S4 fitted on the linear cosine model by bisection on real SGD at one setting (lr 0.2,
# momentum 0.9, ema 0.99, α_p 1, σ² 0.5, n1 = 32, n2 = 16, batch 256, 3000 steps), with γ the mean over
# 12 seeds at wd_c/4 (one seed's coarser probe had given 0.0179 and D_c 1.174); docs/cosine-model.md.
LINEAR_CRITICAL_MISMATCH = 1.17  # `python tests/test_linear_cosine_modes.py fit`: wd_c 0.3106, γ 0.01791, D_c 1.172


@dataclass(frozen=True)
class SGDSetting:
    """One optimiser setting in the deep runs' units: lr, SGD momentum μ ∈ [0, 1), and the target's
    EMA momentum m ∈ [0, 1) per step (0 = SimSiam: the target is the online network)."""

    lr: float
    momentum: float = 0.9
    ema: float = 0.0

    def __post_init__(self):
        check_positive("lr", self.lr)
        check_nonnegative("momentum", self.momentum)
        if self.momentum >= 1:
            raise ValueError(f"momentum must be < 1, got {self.momentum}")
        check_nonnegative("ema", self.ema)
        if self.ema >= 1:
            raise ValueError(f"ema must be < 1 (1 freezes the target), got {self.ema}")


def angular_step_sq(setting: SGDSetting, weight_decay: float) -> float:
    """δθ² ≈ 2·lr·wd/(1 + μ): the squared angle by which each step turns the weights at equilibrium (S2)."""
    check_nonnegative("weight_decay", weight_decay)
    return 2 * setting.lr * weight_decay / (1 + setting.momentum)


def equilibrium_norm_sq(lr: float, weight_decay: float, grad_sq: float) -> float:
    """E‖W‖² = lr·E‖g‖²/(wd(2 − lr·wd)) for plain SGD (μ = 0) on a scale-invariant loss (S2), with
    E‖g‖² the mean squared gradient at the equilibrium weights."""
    check_positive("lr", lr)
    check_positive("weight_decay", weight_decay)
    check_nonnegative("grad_sq", grad_sq)
    if lr * weight_decay >= 2:
        raise ValueError(f"lr·weight_decay must be < 2 (the decay alone is unstable beyond), got {lr * weight_decay:g}")
    return lr * grad_sq / (weight_decay * (2 - lr * weight_decay))


def _check_rate(restoring_rate: float) -> None:
    check_nonnegative("restoring_rate", restoring_rate)
    if restoring_rate > 1:
        raise ValueError(f"restoring_rate must be in [0, 1] (a fraction per step), got {restoring_rate}")


def target_mismatch(setting: SGDSetting, weight_decay: float, restoring_rate: float) -> float:
    """D = m²δθ²/(1 − m²(1 − γ)²): the stationary squared online–target mismatch of S3 (0 for SimSiam)."""
    _check_rate(restoring_rate)
    m = setting.ema
    return m**2 * angular_step_sq(setting, weight_decay) / (1 - m**2 * (1 - restoring_rate) ** 2)


def target_coherence(setting: SGDSetting, weight_decay: float, restoring_rate: float) -> float:
    """C = (1 + D)^{-1/2}: the cosine between the target's and the online weights that S3 predicts."""
    return 1 / math.sqrt(1 + target_mismatch(setting, weight_decay, restoring_rate))


def restoring_rate(setting: SGDSetting, weight_decay: float, coherence: float) -> float:
    """γ of S3 from a coherence C measured at weight decay wd (EMA targets only): solves
    C = (1 + m²δθ²/(1 − m²(1 − γ)²))^{-1/2} for γ."""
    if setting.ema == 0:
        raise ValueError("ema: SimSiam's target is the online network; there is no lag to measure γ from")
    check_positive("weight_decay", weight_decay)
    if not 0 < coherence < 1:
        raise ValueError(f"coherence must be in (0, 1), got {coherence}")
    m = setting.ema
    mismatch = 1 / coherence**2 - 1
    lagged = 1 - m**2 * angular_step_sq(setting, weight_decay) / mismatch  # = m²(1 − γ)²
    if lagged > m**2:
        raise ValueError(f"coherence {coherence}: more mismatch than a target lagging with no pull-back gives "
                         "(γ < 0 needed); the lag model does not describe this run")
    if lagged < 0:
        raise ValueError(f"coherence {coherence}: less mismatch than one angular step gives (γ > 1 needed); the "
                         "lag model does not describe this run")
    return 1 - math.sqrt(lagged) / m


def critical_weight_decay(setting: SGDSetting, restoring_rate: float, critical_mismatch: float) -> float:
    """wd_c = D_c(1 + μ)(1 − m²(1 − γ)²)/(2·lr·m²) (S4), in the deep runs' weight_decay units; math.inf
    for SimSiam (ema = 0), where the model predicts no finite threshold."""
    _check_rate(restoring_rate)
    check_positive("critical_mismatch", critical_mismatch)
    m = setting.ema
    if m == 0:
        return math.inf
    return critical_mismatch * (1 + setting.momentum) * (1 - m**2 * (1 - restoring_rate) ** 2) / (2 * setting.lr * m**2)
