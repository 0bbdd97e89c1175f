"""The rungs of the ladder as engine configs (issue 21). Each changes one assumption of the rung below:

- R0: the eigenvalue ODE and the matrix model on isotropic Gaussian inputs (`linear_dynamics`; no training).
- R1: a linear network on CIFAR-10 views with the theory's loss: f = W x on the 8 × 8-pooled normalised
  image (`deep.linear_backbone`), a trained bias-free linear predictor W_p (lr ratio α_p), target W
  (SimSiam, ema 0) or its EMA, ½‖p − z‖² on unnormalised outputs (`loss=l2`), weight decay on W and W_p
  (the only parameters). The theory's assumptions left: none but the real data (non-isotropic,
  non-Gaussian, X and X' not commuting) and SGD's finite batch and step.
- R2: R1 with BYOL's cosine loss (`loss=cosine`): the outputs are normalised, so the gradient scales as
  1/‖f‖ and the loss no longer sees W's scale (docs/cosine-model.md, F1).
- R3: ResNet-18 with the cosine loss: the collapse map's probes (`ssldyn collapse-map`).

Every R1/R2 run is BYOL of the cpu preset (batch 256, momentum 0.9, 5,000 validation images held out)
with these changes, said beside each: fp32 (the population recursion it is compared with is float64),
constant lr without warm-up (the theory's flow has one time scale; `deep.schedule`), lr 0.005, no W_p
snapshots, 32 outputs. The lr: heavy-ball SGD is stable only while lr × curvature < 2(1 + μ) = 3.8, and
the curvature ‖W_p‖²·λ_max(Ā) reaches a few hundred early on (λ_max(Ā) = 77, the images' mean direction,
uncentred); with this ladder's moments the population recursion of SimSiam at α_p = 1 blows up at lr 0.04
and is stable at 0.02. lr 0.005 leaves a margin of 4 to 8 for α_p up to 3 and the finite batch. (It was
chosen with moments read on a biased sample, λ_max ≈ 139, where 0.01 already blew up.)
"""
from dataclasses import dataclass

from deep import config as config_module

LINEAR = {"backbone": "linear", "predictor": "linear", "precision": "fp32", "lr": 0.005, "lr_schedule": "constant",
          "warmup_epochs": 0.0, "snapshots": 0, "linear_dim": 32}
RUNGS = {
    "r1": {**LINEAR, "loss": "l2"},
    "r2": {**LINEAR, "loss": "cosine"},
}
PRESET = "cpu"
ALPHAS = (0.3, 1.0, 3.0)
EMAS = (0.0, 0.99)


@dataclass(frozen=True)
class Setting:
    """α_p and the EMA rate of one line of the ladder (ema 0: SimSiam, the target is W itself)."""

    predictor_lr_mult: float
    ema: float

    def __post_init__(self):
        config_module.check_value("predictor_lr_mult", self.predictor_lr_mult)
        config_module.check_value("ema", self.ema)

    @property
    def name(self) -> str:
        return f"alpha{self.predictor_lr_mult:g}-ema{self.ema:g}"


def settings(alphas=ALPHAS, emas=EMAS) -> list[Setting]:
    """Every α_p × EMA pair (the issue's product grid, not the collapse map's two lines)."""
    grid = [Setting(float(a), float(m)) for a in dict.fromkeys(alphas) for m in dict.fromkeys(emas)]
    if not grid:
        raise ValueError("the ladder's grid is empty: give at least one --alpha-p and one --ema")
    return grid


def point_config(rung: str, setting: Setting, weight_decay: float, seed: int, epochs: int, *, dataset: str,
                 data_root=None, device: str = "cpu", lr: float | None = None) -> dict:
    """The resolved config of one run of the ladder (`lr`: another lr than the rung's, for the unit-free test)."""
    if rung not in RUNGS:
        raise ValueError(f"unknown rung {rung!r}; allowed: {', '.join(RUNGS)} (R3 is `ssldyn collapse-map`)")
    overrides = {**RUNGS[rung], "predictor_lr_mult": setting.predictor_lr_mult, "ema": setting.ema,
                 "weight_decay": weight_decay, "seed": seed, "epochs": epochs}
    if lr is not None:
        overrides["lr"] = config_module.check_value("lr", lr)
    return config_module.resolve("byol", dataset, preset=PRESET, overrides=overrides, data_root=data_root,
                                 device=device)
