"""Real minibatch SGD on the linear model, with gradients from torch autograd.

An independent check of the hand-derived flow (Eqs. 2–4): nothing here uses those equations. Each
step samples x ~ N(0, I), two views x1,2 = x + σ·N(0, I) (assumption A2), and minimises
J = ½ mean‖W_p W x1 − sg(W_a x2)‖² with `torch.optim.SGD`:
- W: lr, weight_decay η                         → dW/dt = −∂J/∂W − ηW at t = steps·lr
- W_p: lr α_p·lr, weight_decay η/α_p            → dW_p/dt = −α_p ∂J/∂W_p − ηW_p (the theory's
  −ηW_p is not multiplied by α_p; SPEC §2 note)
- W_a ← W_a + β·lr·(W − W_a) after each step    → dW_a/dt = β(W − W_a)
The verdict is `matrix_fate.sgd_fate`: 'diverged' as soon as the weights stop being finite or, at a
saved step, lr·κ > 2 (κ = `matrix_fate.sgd_curvature`: past it the step cannot be stable); the run then
ends there. torch is imported inside the function so that `linear_dynamics` imports without it.
"""
from dataclasses import replace

import numpy as np

from linear_dynamics.matrix_fate import sgd_curvature, sgd_fate
from linear_dynamics.matrix_model import initial_state
from linear_dynamics.params import LinearConfig, check_count, check_positive
from linear_dynamics.run import LinearRun

MAX_STEPS = 1_000_000  # several minutes of this loop (4000 default steps take about 1 s)


def simulate_sgd(config: LinearConfig, batch: int = 128, lr: float = 0.01, steps: int | None = None,
                 n_save: int = 201) -> LinearRun:
    """Run SGD from `initial_state(config)` for `steps` (default t_end/lr) steps; time is steps·lr.

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
        return _sgd_loop(config, batch, lr, steps, n_save)
    finally:
        torch.set_num_threads(threads)


def _sgd_loop(config: LinearConfig, batch: int, lr: float, steps: int, n_save: int) -> LinearRun:
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

    def record():
        saved.append((W.detach().numpy().copy(), W_p.detach().numpy().copy(),
                      (W_a if config.ema else W).detach().numpy().copy()))

    for step in range(steps + 1):
        if step == save_steps[len(saved)]:
            record()
            curvature = sgd_curvature(saved[-1][0], saved[-1][1], config)
            if lr * curvature > 2:
                diverged_at = step * lr
                why = (f"lr·κ = {lr * curvature:.3g} > 2 at step {step} (κ = {curvature:.3g}, the loss' largest "
                       f"curvature there): the SGD step cannot be stable; lr < {2 / curvature:.3g} is needed there")
                break
            if len(saved) == len(save_steps):
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
        if not (torch.isfinite(W).all() and torch.isfinite(W_p).all()):
            diverged_at, why = (step + 1) * lr, f"the weights left the finite numbers at step {step + 1}"
            break

    W_t, W_p_t, W_a_t = (np.stack(m) for m in zip(*saved))
    run = LinearRun(t=save_steps[:len(saved)] * lr, W=W_t, W_p=W_p_t, W_a=W_a_t, config=config, method="sgd", fate=None)
    return replace(run, fate=sgd_fate(run, lr, diverged_at, why))
