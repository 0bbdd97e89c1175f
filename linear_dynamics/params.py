"""Validated, frozen parameter sets of the linear BYOL / SimSiam model (SPEC §2).

Every check happens once, at construction; a bad value raises ``ValueError`` naming the field and
the allowed range, so the command line can print it as one line.
"""
import math
from dataclasses import dataclass

# Every parameter and initial value is at most MAX_VALUE in size: products of a few of them then stay far
# inside the floating-point range, and the rates (up to 10⁶ against η down to 0) within what the
# integrators' stiff paths resolve in seconds.
MAX_VALUE = 1e6

# The matrix model keeps every saved W, W_p, W_a (201 by default): n1·n2 and n2² at most this many
# entries each (e.g. n1 = n2 = 128) keeps those saved states under about 80 MB. A flow that turns stiff
# needs the implicit solver's dense Jacobian as well, which is far larger (19 GB at n1 = n2 = 128): it
# has its own budget, `matrix_flow.IMPLICIT_MEMORY_BUDGET`, checked when the solver is chosen.
MAX_MATRIX_ENTRIES = 128 * 128
# The matrix flow past its transient is stability-limited (explicit) or Jacobian-bound (implicit): about
# 20 s per 10⁴ time units on a busy 2-core machine at n1 = 16, n2 = 8.
MAX_FLOW_TIME = 1e4


def _check(name: str, value, allowed: str, ok) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number ({allowed}), got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number ({allowed}), got {value}")
    if not ok(value):
        raise ValueError(f"{name} must be {allowed}, got {value}")
    if abs(value) > MAX_VALUE:
        raise ValueError(f"{name} must be at most {MAX_VALUE:g} in size (rescale time or the weights), got {value:g}")


def check_positive(name: str, value) -> None:
    _check(name, value, "> 0", lambda v: v > 0)


def check_nonnegative(name: str, value) -> None:
    _check(name, value, ">= 0", lambda v: v >= 0)


def check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


@dataclass(frozen=True)
class EigenParams:
    """Parameters of the eigenvalue ODEs (Eqs. 11–13).

    alpha_p: predictor learning-rate ratio α_p > 0.  eta: weight decay η ≥ 0.
    sigma2: augmentation variance σ² ≥ 0.
    Exactly one of
      tau:  a fixed target/online ratio τ ≥ 0 (τ ≡ 1 is SimSiam; Eq. 13 switched off), or
      beta: the EMA rate β > 0, so that τ follows Eq. 13 from an initial τ0.
    """

    alpha_p: float
    eta: float
    sigma2: float = 0.0
    tau: float | None = None
    beta: float | None = None

    def __post_init__(self):
        check_positive("alpha_p", self.alpha_p)
        check_nonnegative("eta", self.eta)
        check_nonnegative("sigma2", self.sigma2)
        if (self.tau is None) == (self.beta is None):
            raise ValueError("give exactly one of tau (fixed τ >= 0) or beta (EMA rate > 0)")
        if self.tau is not None:
            check_nonnegative("tau", self.tau)
        else:
            check_positive("beta", self.beta)

    @property
    def ema(self) -> bool:
        """True when τ evolves by Eq. 13 (BYOL with an EMA target)."""
        return self.beta is not None


@dataclass(frozen=True)
class LinearConfig:
    """The matrix model of Eqs. 2–4 in the isotropic setting A2 (X = I, X' = σ²I).

    Defaults are chosen so that a run takes a few seconds (flow or SGD) and does not collapse:
    η = 0.02 is well below η* = 1/(4(1+σ²)) = 1/6, and the small predictor start puts every mode of
    F above the parabola s = p²/α_p. The variants collapse within the horizon: without a predictor W
    shrinks at rate σ² + η, without stop-gradient at rate ≥ σ² + η (Thm 2).

    beta=None is SimSiam (W_a ≡ W); beta > 0 is BYOL with dW_a/dt = β(W − W_a) (Eq. 4).
    stop_grad=False lets the gradient flow through the target branch, which must then be W itself.
    predictor=False fixes W_p = I. symmetric_predictor keeps W_p symmetric (assumption A3) by
    starting it symmetric and projecting its velocity onto symmetric matrices.
    init_scale_p scales the predictor's random start (entries N(0, init_scale_p²/n2)); W starts with
    entries N(0, 1/n1); W_a starts equal to W.
    """

    n1: int = 16
    n2: int = 8
    eta: float = 0.02
    alpha_p: float = 1.0
    beta: float | None = None
    sigma2: float = 0.5
    stop_grad: bool = True
    predictor: bool = True
    symmetric_predictor: bool = False
    t_end: float = 40.0
    seed: int = 0
    init_scale_p: float = 0.3

    def __post_init__(self):
        check_count("n1", self.n1)
        check_count("n2", self.n2)
        if self.n1 * self.n2 > MAX_MATRIX_ENTRIES or self.n2**2 > MAX_MATRIX_ENTRIES:
            raise ValueError(f"n1, n2: the matrix model is limited to n1·n2 <= {MAX_MATRIX_ENTRIES} and "
                             f"n2² <= {MAX_MATRIX_ENTRIES} (e.g. n1 = n2 = 128), got n1 = {self.n1}, n2 = {self.n2}")
        check_nonnegative("eta", self.eta)
        check_positive("alpha_p", self.alpha_p)
        if self.beta is not None:
            check_positive("beta", self.beta)
        check_nonnegative("sigma2", self.sigma2)
        check_positive("t_end", self.t_end)
        if self.t_end > MAX_FLOW_TIME:
            raise ValueError(f"t_end must be at most {MAX_FLOW_TIME:g} for the matrix model, got {self.t_end:g}")
        check_nonnegative("init_scale_p", self.init_scale_p)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a whole number >= 0, got {self.seed!r}")
        if not self.stop_grad and self.beta is not None:
            raise ValueError("beta: without stop-gradient the target branch is W itself; leave beta unset (SimSiam)")
        if self.symmetric_predictor and not self.predictor:
            raise ValueError("symmetric_predictor needs a trained predictor (predictor=True)")

    @property
    def ema(self) -> bool:
        return self.beta is not None
