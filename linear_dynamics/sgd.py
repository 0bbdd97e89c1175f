"""Real minibatch SGD on the linear model, with gradients from torch autograd.

An independent check of the hand-derived flow (Eqs. 2–4): nothing here uses those equations. Each
step samples x ~ N(0, I), two views x1,2 = x + σ·N(0, I) (assumption A2), and minimises
J = ½ mean‖W_p W x1 − sg(W_a x2)‖² with `torch.optim.SGD`:
- W: lr, weight_decay η                         → dW/dt = −∂J/∂W − ηW at t = steps·lr
- W_p: lr α_p·lr, weight_decay η/α_p            → dW_p/dt = −α_p ∂J/∂W_p − ηW_p (the theory's
  −ηW_p is not multiplied by α_p; SPEC §2 note)
- W_a ← W_a + β·lr·(W − W_a) after each step    → dW_a/dt = β(W − W_a)
The verdict is `matrix_fate.sgd_fate`: 'diverged' only when the run's own weights blow up (an entry
above BLOW_UP, or not finite; the run then ends there; the message gives lr·κ at the last saved step, κ = `matrix_fate.sgd_curvature`,
as the likely cause when it exceeds 2). lr·κ > 2 at some step is no verdict by itself: κ is the
population loss' curvature at that point, and the iterates can leave that region before they blow up
(`ssldyn linear --sgd --lr 0.7`: lr·κ = 2.12 at t = 0, yet seeds 0 and 2 train finite and end at p₊).
torch is imported inside the functions so that `linear_dynamics` imports without it.
"""
from dataclasses import dataclass, replace

import numpy as np

from linear_dynamics.matrix_fate import sgd_curvature, sgd_fate
from linear_dynamics.matrix_model import initial_state
from linear_dynamics.params import LinearConfig, check_count, check_positive
from linear_dynamics.run import LinearRun

MAX_STEPS = 1_000_000  # several minutes of this loop (4000 default steps take about 1 s)
# Weights this large have blown up: no stable run comes near (the fixed points of Eqs. 11–12 have
# |p| ≤ 1/(1+σ²) and s = p²/α_p), and the products the metrics take of a few of them stay finite in float64.
BLOW_UP = 1e30


@dataclass(frozen=True)
class SGDStates:
    """The saved states of one SGD run: t (steps·lr), W, W_p, W_a (time-major; W_a is W in SimSiam);
    diverged_at (SGD time) and why when the weights left the finite numbers, else None and ''."""

    t: np.ndarray
    W: np.ndarray
    W_p: np.ndarray
    W_a: np.ndarray
    diverged_at: float | None
    why: str


def simulate_sgd(config: LinearConfig, batch: int = 128, lr: float = 0.01, steps: int | None = None,
                 n_save: int = 201) -> LinearRun:
    """Run SGD from `initial_state(config)` for `steps` (default t_end/lr) steps (`sgd_states`); time is
    steps·lr; the verdict is `matrix_fate.sgd_fate`."""
    states = sgd_states(config, batch, lr, steps, n_save)
    run = LinearRun(t=states.t, W=states.W, W_p=states.W_p, W_a=states.W_a, config=config, method="sgd", fate=None)
    return replace(run, fate=sgd_fate(run, lr, states.diverged_at, states.why))


def sgd_states(config: LinearConfig, batch: int = 128, lr: float = 0.01, steps: int | None = None,
               n_save: int = 201, stop_below: float | None = None) -> SGDStates:
    """The states of SGD from `initial_state(config)` at n_save evenly spaced steps of `steps` (default
    t_end/lr), without a verdict. stop_below: end the run at the first saved step where ‖W‖_F is below it.

    Samples come from a torch generator seeded with config.seed; float64 throughout so that what
    separates SGD from the flow is the minibatch noise and the step size, not rounding.
    """
    import torch

    check_count("batch", batch)
    check_positive("lr", lr)
    if steps is None:
        steps = max(1, round(config.t_end / lr))
    check_count("steps", steps)
    if steps > MAX_STEPS:
        raise ValueError(f"lr, steps: at most {MAX_STEPS} SGD steps (t_end/lr or --steps), got {steps}; raise lr or lower t_end")
    if config.ema and config.beta * lr > 1:
        raise ValueError(f"lr: the EMA step beta*lr must be <= 1, got {config.beta * lr:g}")
    if isinstance(n_save, bool) or not isinstance(n_save, int) or n_save < 2:
        raise ValueError(f"n_save must be a whole number >= 2, got {n_save!r}")

    # The matrices are tiny: extra intra-op threads only add synchronisation (and spin badly on a
    # busy machine), so the loop runs single-threaded and restores the caller's setting afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _sgd_loop(config, batch, lr, steps, n_save, stop_below)
    finally:
        torch.set_num_threads(threads)


def _sgd_loop(config: LinearConfig, batch: int, lr: float, steps: int, n_save: int,
              stop_below: float | None) -> SGDStates:
    import torch

    W0, W_p0, W_a0 = initial_state(config)
    W = torch.tensor(W0, requires_grad=True)
    W_p = torch.tensor(W_p0, requires_grad=config.predictor)
    W_a = torch.tensor(W_a0)
    groups = [{"params": [W], "lr": lr, "weight_decay": config.eta}]
    if config.predictor:
        groups.append({"params": [W_p], "lr": config.alpha_p * lr, "weight_decay": config.eta / config.alpha_p})
        if config.symmetric_predictor:
            W_p.register_hook(lambda grad: (grad + grad.T) / 2)  # projected gradient keeps W_p symmetric (A3)
    optimizer = torch.optim.SGD(groups)
    generator = torch.Generator().manual_seed(config.seed)
    sigma = float(np.sqrt(config.sigma2))

    save_steps = np.unique(np.linspace(0, steps, n_save).round().astype(int))
    saved, diverged_at, why = [], None, ""

    for step in range(steps + 1):
        if step == save_steps[len(saved)]:
            saved.append((W.detach().numpy().copy(), W_p.detach().numpy().copy(),
                          (W_a if config.ema else W).detach().numpy().copy()))
            if len(saved) == len(save_steps) or (stop_below is not None and np.linalg.norm(saved[-1][0]) < stop_below):
                break
        x = torch.randn(batch, config.n1, generator=generator, dtype=torch.float64)
        x1 = x + sigma * torch.randn(batch, config.n1, generator=generator, dtype=torch.float64)
        x2 = x + sigma * torch.randn(batch, config.n1, generator=generator, dtype=torch.float64)
        target = x2 @ (W_a if config.ema else W).T
        if config.stop_grad:
            target = target.detach()
        loss = 0.5 * ((x1 @ W.T @ W_p.T - target) ** 2).sum(dim=1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if config.ema:
            with torch.no_grad():
                W_a += config.beta * lr * (W - W_a)
        if not (W.abs().max() <= BLOW_UP and W_p.abs().max() <= BLOW_UP):  # False for NaN too
            diverged_at = (step + 1) * lr
            last = save_steps[len(saved) - 1]
            why = f"the weights blew up (an entry above {BLOW_UP:g} or not finite) at step {step + 1}"
            curvature = sgd_curvature(saved[-1][0], saved[-1][1], config)
            if lr * curvature > 2:  # gradient descent on a quadratic of curvature κ diverges for lr·κ > 2
                why += (f"; at step {last} lr·κ = {lr * curvature:.3g} > 2 (κ = {curvature:.3g}, the population "
                        f"loss' largest curvature there)")
            break

    W_t, W_p_t, W_a_t = (np.stack(m) for m in zip(*saved))
    return SGDStates(save_steps[:len(saved)] * lr, W_t, W_p_t, W_a_t, diverged_at, why)
