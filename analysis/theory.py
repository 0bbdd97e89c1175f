"""The linear theory's predictions, and how a deep run's hyperparameters map onto it.

Every number comes from `linear_dynamics` (fixed points and η* of Eqs. 11–12, the integrator of
Eqs. 11–13); nothing here re-derives a closed form.

Mapping a deep SGD run onto the linear model (used for H5–H7 on deep runs):
- Time. SGD with learning rate lr and momentum μ moves the weights by about lr/(1−μ) × (gradient +
  weight_decay · W) per step, so one step is lr/(1−μ) of flow time, and the gradient and the decay
  are scaled alike: the flow's η is PyTorch's `weight_decay` of the encoder, whatever lr is.
  (lr is the optimizer's peak lr, `deep.schedule.peak_lr`: config lr, times batch_size/256 only
  with lr_scaling=linear.)
- Predictor. The deep predictor's lr is α_p·lr with the same `weight_decay`, so its decay per unit
  of flow time is α_p·weight_decay, where Eq. 2 has η (SPEC §2 note: matching needs η/α_p). This
  does not move η*: with a predictor decay η_p, dp/dt = 0 and ds/dt = 0 (s ≠ 0) give
  p(τ − (1+σ²)p) = η (from Eq. 12 alone, the encoder's η) and s = η_p p² / (α_p η); only the
  non-collapsed points slide along s (to s = p² instead of p²/α_p). So regime and η* use η = the
  encoder's weight_decay, and α_p = `predictor_lr_mult`.
- Target. `ema` = m updates W_a ← m W_a + (1−m) W each step, i.e. β = (1−m)(1−μ)/lr per unit flow
  time (Eq. 4); m = 0 is SimSiam, τ ≡ 1. Eq. 13's fixed point is τ = 1, so η* is taken at τ = 1.
- σ² (augmentation variance relative to the data's, assumption A2) has no measured counterpart in
  a ResNet run; it is a parameter (default 0, which gives the largest η* = 1/4: a weight decay above
  1/4 is past η* for every σ²).
- Not mapped: the deep loss is a cosine between normalised outputs, BatchNorm fixes their scale and
  the network is not linear, so "η > η*" is the theory's statement transplanted, not a measurement.
"""
import math
from dataclasses import asdict, dataclass, field

from deep.schedule import peak_lr
from linear_dynamics.eigen_ode import integrate_eigen
from linear_dynamics.fixed_points import eta_critical, fixed_points, p_roots, regime
from linear_dynamics.params import EigenParams

COLLAPSE, NO_COLLAPSE, UNDECIDED = "collapse", "no collapse", "undecided"
STEADY_TAU = 1.0  # Eq. 13's fixed point: the EMA target catches up with the online network
# What reading η = weight_decay leaves unmeasured (issue 20, item 5): η* = τ²/(4(1+σ²)) is in units of
# the linear model's squared-error gradient on W and W_p alone; a network's cosine loss divides its
# gradient by the prediction's norm and is invariant to the weights' scale, and its weight decay (at
# wd_scope=all) also acts on BatchNorm and biases. Until those scales are measured, a deep run's weight decay and η* are
# different units: verdicts that set one against the other say inconclusive and name these.
# Why H6's basin part is not judged on a network with weight decay (issue 20, item 5). The network's predictor
# trains at α_p·lr under the same weight decay, so per unit of flow time it decays at α_p·η; the eigen ODE
# whose collapse basin shrinks as α_p grows (Eq. 11) decays it at η for every α_p. Its fixed points, and so
# η*, are the same either way (s = p² and kp² − τp + η = 0 at a fixed point), so a threshold's independence
# of α_p stays a test; the basin is the dynamics' and is not. Without weight decay the two systems agree.
PREDICTOR_DECAY_UNITS = (
    "not in the theory's units: the network's predictor trains at α_p·lr under the same weight decay, so per unit of "
    "flow time it decays at α_p·η, where the eigen ODE whose basin shrinks with α_p (Eq. 11) decays it at η for every "
    "α_p; along this line α_p changes the predictor's decay too, so the trend the rule reads")

UNMEASURED_SCALES = ("the cosine loss's gradient scale (1/‖q‖ on the prediction, and the loss's invariance to the "
                     "scale of W and W_p), the per-mode input variance of the projector's input, and (unless "
                     "wd_scope leaves them out) weight decay on BatchNorm and biases, which the linear model lacks")


@dataclass(frozen=True)
class Prediction:
    """What the linear theory says for (α_p, η, σ², τ or β) and, if given, initial states (p0, s0)."""

    alpha_p: float
    eta: float
    sigma2: float
    tau: float | None          # fixed τ; None with EMA
    beta: float | None         # EMA rate; None with a fixed τ
    regime: str                # 'no-weight-decay' | 'moderate' | 'too-large' (at τ, or τ = 1 with EMA)
    eta_star: float            # η* = τ²/(4(1+σ²))
    p_minus: float | None      # saddle p₋ (None when η > η*)
    p_plus: float | None       # stable non-collapsed p₊ (None when η > η*)
    fixed_points: dict         # linear_dynamics' FixedPointReport.to_dict()
    verdicts: tuple = ()       # one per initial state: COLLAPSE / NO_COLLAPSE / UNDECIDED (fate under Eqs. 11–13)
    basis: tuple = ()          # per initial state: 'theorem' | 'numerical' | None (linear_dynamics.fate)
    final: dict = field(default_factory=dict)  # p, s, τ at t_end per initial state
    t_end: float | None = None

    @property
    def verdict(self) -> str | None:
        """COLLAPSE if every given mode collapses, NO_COLLAPSE if none does, 'partial collapse' if
        some do and some do not, UNDECIDED if an undecided mode leaves it open; without initial
        states, COLLAPSE when η > η* (certain) and None otherwise."""
        if not self.verdicts:
            return COLLAPSE if self.regime == "too-large" else None
        if all(v == COLLAPSE for v in self.verdicts):
            return COLLAPSE
        if all(v == NO_COLLAPSE for v in self.verdicts):
            return NO_COLLAPSE
        return "partial collapse" if {COLLAPSE, NO_COLLAPSE} <= set(self.verdicts) else UNDECIDED

    def as_dict(self) -> dict:
        return {"alpha_p": self.alpha_p, "eta": self.eta, "sigma2": self.sigma2, "tau": self.tau,
                "beta": self.beta, "regime": self.regime, "eta_star": self.eta_star,
                "p_minus": self.p_minus, "p_plus": self.p_plus, "verdict": self.verdict,
                "verdicts": list(self.verdicts), "basis": list(self.basis), "final": self.final, "t_end": self.t_end,
                "fixed_points": self.fixed_points}


def default_horizon(eta: float) -> float:
    """Flow time long enough for a collapsing mode to reach s ≤ 1e-6 (s decays like e^{−2ηt} near
    the origin, so 8/η gives e^{−16}); 400 when η is 0 or large."""
    return 400.0 if eta == 0 else max(400.0, 8.0 / eta)


def predict(alpha_p: float, eta: float, sigma2: float = 0.0, *, tau: float | None = None,
            beta: float | None = None, p0=None, s0=None, tau0=None, t_end: float | None = None) -> Prediction:
    """Regime, η*, p± (paper Sec. 3.4 via linear_dynamics.fixed_points) and, when initial states
    (p0, s0[, tau0]) are given, the fate per state under Eqs. 11–13 (integrate_eigen's verdicts; the
    final state is the one at t_end).

    Exactly one of tau (fixed ratio; 1 = SimSiam) or beta (EMA rate, τ follows Eq. 13 from tau0,
    default 1) must be given. With EMA the fixed points are those at τ = 1, Eq. 13's fixed point.
    """
    params = EigenParams(alpha_p, eta, sigma2, tau=tau, beta=beta)  # validates
    tau_fp = STEADY_TAU if params.ema else tau
    report = fixed_points(alpha_p, eta, sigma2, tau_fp)
    roots = p_roots(eta, tau_fp, sigma2)
    p_minus, p_plus = roots if roots is not None else (None, None)
    base = dict(alpha_p=alpha_p, eta=eta, sigma2=sigma2, tau=tau, beta=beta,
                regime=regime(eta, tau_fp, sigma2), eta_star=eta_critical(tau_fp, sigma2),
                p_minus=p_minus, p_plus=p_plus, fixed_points=report.to_dict())
    if p0 is None and s0 is None:
        return Prediction(**base)
    if p0 is None or s0 is None:
        raise ValueError("p0, s0: give both initial eigenvalues (or neither)")
    horizon = default_horizon(eta) if t_end is None else t_end
    traj = integrate_eigen(p0, s0, params, horizon, tau0=tau0, n_save=2)
    words = {"collapsed": COLLAPSE, "non-collapsed": NO_COLLAPSE, "undecided": UNDECIDED}
    verdicts = tuple(words[v] for v in traj.verdicts)
    final = {k: v.tolist() for k, v in traj.final.items()}
    return Prediction(**base, verdicts=verdicts, basis=traj.basis, final=final, t_end=horizon)


@dataclass(frozen=True)
class DeepMapping:
    """A deep run's hyperparameters in the linear theory's terms (module docstring)."""

    alpha_p: float | None      # predictor_lr_mult; None without a predictor
    eta: float                 # encoder weight_decay
    eta_predictor: float | None  # α_p · weight_decay: the predictor's decay per unit flow time
    beta: float | None         # (1−m)(1−μ)/lr; None for SimSiam (ema = 0: τ ≡ 1)
    sigma2: float
    eta_star: float            # at τ = 1
    regime: str
    predicted: str             # COLLAPSE when η > η*, else NO_COLLAPSE

    def as_dict(self) -> dict:
        return asdict(self)


def ema_rate(ema: float, momentum: float, lr: float) -> float:
    """β of Eq. 4 per unit flow time for an EMA target updated with rate 1−m every SGD step, one step
    being lr/(1−μ) of flow time (module docstring): β = (1−m)(1−μ)/lr."""
    return (1 - ema) * (1 - momentum) / lr


def deep_to_linear(config: dict, sigma2: float = 0.0) -> DeepMapping:
    """Map a resolved deep config (config.json) onto the linear model; see the module docstring.

    Missing keys raise ValueError naming them (a resolved config has them all)."""
    def need(key):
        if key not in config:
            raise ValueError(f"config.json: key {key!r} is missing; the mapping to the linear theory needs it")
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"config.json: {key}={value!r} must be a finite number")
        return float(value)

    eta = need("weight_decay")
    has_predictor = config.get("predictor", "none") != "none"
    alpha_p = need("predictor_lr_mult") if has_predictor else None
    ema = float(config.get("ema", 0.0) or 0.0)
    beta = None
    if ema > 0:
        step_lr = peak_lr({"lr": need("lr"), "batch_size": need("batch_size"),
                           "lr_scaling": config.get("lr_scaling", "linear")})
        beta = ema_rate(ema, need("momentum"), step_lr)
    eta_star = eta_critical(STEADY_TAU, sigma2)
    mode = regime(eta, STEADY_TAU, sigma2)
    return DeepMapping(alpha_p=alpha_p, eta=eta, eta_predictor=None if alpha_p is None else alpha_p * eta,
                       beta=beta, sigma2=sigma2, eta_star=eta_star, regime=mode,
                       predicted=COLLAPSE if mode == "too-large" else NO_COLLAPSE)
