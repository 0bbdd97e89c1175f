"""The learning-rate schedule of a run: its peak lr and the lr of every step (thesis Sec. 4.4).

The thesis' reference code (its refs [4]/[5]) runs SGD at lr 0.06 without batch scaling under
`CosineAnnealingLR(optim, max_epochs)` stepped once per epoch and no warm-up (`lr_scaling=none`,
`lr_schedule=cosine_epoch`, `warmup_epochs=0`); the cpu preset steps its cosine every step after a
one-epoch warm-up; `lr_schedule=constant` holds the peak after the warm-up, so that a run's length
and its annealing are separate (the collapse map's probe-length check); `lr_scaling=linear` scales the lr by batch/256 (Goyal et al. 2017).
"""
import math


def cosine_lr(step: int, total_steps: int, warmup_steps: int, peak: float, steps_per_epoch: int = 1) -> float:
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then cosine decay to 0 at `total_steps`.

    steps_per_epoch > 1 holds the lr for a whole epoch at its value at the epoch's first step: with no
    warm-up that is PyTorch's CosineAnnealingLR(T_max = epochs) stepped once per epoch,
    peak·½(1 + cos(π·e/E)) in epoch e (the thesis' reference code; config lr_schedule=cosine_epoch).
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    step = max(warmup_steps, step - step % steps_per_epoch)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def constant_lr(step: int, warmup_steps: int, peak: float) -> float:
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then `peak` for good (lr_schedule=constant:
    probes whose length does not change how far the lr has annealed)."""
    return peak * (step + 1) / warmup_steps if step < warmup_steps else peak


def peak_lr(config: dict) -> float:
    """The optimizer's peak lr: `lr` as given (lr_scaling=none, the thesis' reference code: lr 0.06 at
    batch 512), or scaled by batch/256 (lr_scaling=linear; Goyal et al. 2017). batch_size is the
    global batch, all processes together."""
    scale = config["batch_size"] / 256 if config.get("lr_scaling", "linear") == "linear" else 1.0
    return config["lr"] * scale


def lr_at(step: int, config: dict, steps_per_epoch: int) -> float:
    """The lr of `step` under the config's schedule (warm-up, then cosine per step or per epoch, or constant)."""
    total_steps = steps_per_epoch * config["epochs"]
    warmup_steps = round(config["warmup_epochs"] * steps_per_epoch)
    if config.get("lr_schedule") == "constant":
        return constant_lr(step, warmup_steps, peak_lr(config))
    per_epoch = steps_per_epoch if config.get("lr_schedule", "cosine_step") == "cosine_epoch" else 1
    return cosine_lr(step, total_steps, warmup_steps, peak_lr(config), per_epoch)
