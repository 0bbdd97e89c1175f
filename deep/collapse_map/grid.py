"""The knob settings of the collapse map and the config of one probe.

A setting is BYOL with a predictor (`linear`: one bias-free layer, the theory's W_p; or `mlp`),
a predictor lr ratio α_p (`predictor_lr_mult`) and an EMA rate m (`ema`; 0 is SimSiam). The map's
grid is two lines through the default (α_p = 1, ema = 0.9, BYOL's): α_p over ALPHAS at the default
EMA, and the EMA over EMAS at α_p = 1 (issue 12, item 1).

A probe is the first `probe_epochs` epochs of a run of the preset at constant lr with the setting, a
weight decay and a seed (PROBES): exactly the beginning of that run, so a probe can be continued to
check that its verdict holds later (`deep.collapse_map.runner.check_probe_length`). The preset's own values
stay, except what PROBES changes, said beside each value.
"""
from dataclasses import dataclass

from deep import config as config_module

ALPHAS = (0.3, 1.0, 3.0, 10.0)
EMAS = (0.0, 0.9, 0.99)
DEFAULT_ALPHA, DEFAULT_EMA = 1.0, 0.9  # BYOL's (deep.methods.byol)
PREDICTORS = ("linear", "mlp")

# Per preset: the probe's schedule, size and length K (epochs). cpu: the cpu preset (width 16, lr 0.2,
# 10-epoch cosine stepped every step), changed where said:
# - a quarter-epoch warm-up instead of one epoch, so that a probe spends most of its steps at the full
#   lr and weight decay (with the preset's one-epoch warm-up a short probe would be mostly warm-up);
# - batch 64 on a class-balanced quarter of the training images (11,250) instead of batch 256 on all
#   45,000: an epoch keeps its 175 steps, the lr (no batch scaling) and so the weight decay's pull per
#   step, lr·wd, while a step costs a quarter (measured: 0.10 s against 0.41 s on this 2-core CPU).
#   Weight decay acts through the number of steps, (1−μ)/(lr·wd) ≈ 100 steps at wd 5e-3 with momentum
#   0.9; K = 1 epoch (175 steps) at batch 256 failed its check, and K = 3 here costs about what K = 1 did there;
# - 2 snapshots (W_p and F̂ at step 0: the initial spectrum the eigenvalue ODE starts from);
# - every preset: the lr held at its peak after the warm-up (lr_schedule=constant), so that a probe
#   continued to 2K or 4K epochs differs from it in length only, not in how far its lr has annealed
#   (with the 10-epoch cosine, 3 → 9 epochs also took the lr from 82% of its peak to 2.5%; issue 20),
#   and a schedule of 4K epochs at least, so that `epochs` bounds nothing the K check asks for.
# probe_epochs: K, checked by continuing edge probes to 3K (docs/ablations.md, the collapse map).
PROBES = {
    "cpu": {"overrides": {"warmup_epochs": 0.25, "batch_size": 64, "train_fraction": 0.25, "snapshots": 2,
                          "lr_schedule": "constant", "epochs": 12},
            "probe_epochs": 3},
    "thesis": {"overrides": {"snapshots": 2, "lr_schedule": "constant"}, "probe_epochs": 10},
    "smoke": {"overrides": {"epochs": 4, "snapshots": 2, "lr_schedule": "constant"}, "probe_epochs": 1},
}


@dataclass(frozen=True)
class Setting:
    """One point of the grid."""

    predictor: str
    predictor_lr_mult: float
    ema: float
    loss: str = "cosine"  # BYOL's; l2 is the linear theory's (the ladder's R3 with both losses, issue 21)
    lr: float | None = None  # the preset's; another where the l2 loss trains only at a smaller lr
    wd_scope: str = "all"    # the reference code's; weights or heads where the theory puts the decay (issue 20)

    def __post_init__(self):
        if self.predictor not in PREDICTORS:
            raise ValueError(f"unknown predictor {self.predictor!r} for the collapse map; allowed: "
                             f"{', '.join(PREDICTORS)}")
        config_module.check_value("predictor_lr_mult", self.predictor_lr_mult)
        config_module.check_value("ema", self.ema)
        config_module.check_value("loss", self.loss)
        if self.lr is not None:
            config_module.check_value("lr", self.lr)
        config_module.check_value("wd_scope", self.wd_scope)

    @property
    def name(self) -> str:
        suffix = (("" if self.loss == "cosine" else f"-{self.loss}") + ("" if self.wd_scope == "all" else f"-wd{self.wd_scope}")
                  + ("" if self.lr is None else f"-lr{self.lr:g}"))
        return f"{self.predictor}-alpha{self.predictor_lr_mult:g}-ema{self.ema:g}{suffix}"

    @property
    def overrides(self) -> dict:
        extra = (({} if self.loss == "cosine" else {"loss": self.loss}) | ({} if self.lr is None else {"lr": self.lr})
                 | ({} if self.wd_scope == "all" else {"wd_scope": self.wd_scope}))
        return {"predictor": self.predictor, "predictor_lr_mult": self.predictor_lr_mult, "ema": self.ema, **extra}


def grid(predictors=PREDICTORS, alphas=ALPHAS, emas=EMAS, loss: str = "cosine", lr: float | None = None,
         wd_scope: str = "all") -> list[Setting]:
    """The α_p line at the default EMA and the EMA line at α_p = 1, for each predictor, without
    repeats; ValueError if it is empty."""
    settings = []
    for predictor in predictors:
        line = [Setting(predictor, float(a), DEFAULT_EMA, loss, lr, wd_scope) for a in alphas]
        line += [Setting(predictor, DEFAULT_ALPHA, float(m), loss, lr, wd_scope) for m in emas]
        for setting in line:
            if setting not in settings:
                settings.append(setting)
    if not settings:
        raise ValueError("the collapse-map grid is empty: give at least one predictor and one α_p or EMA value")
    return settings


def probe_config(setting: Setting, weight_decay: float, seed: int, *, preset: str, dataset: str,
                 data_root: str | None = None, device: str = "cpu") -> dict:
    """The resolved config of one probe (what its config.json holds)."""
    if preset not in PROBES:
        raise ValueError(f"unknown --preset {preset!r} for the collapse map; allowed: {', '.join(PROBES)}")
    overrides = {**PROBES[preset]["overrides"], **setting.overrides, "weight_decay": weight_decay, "seed": seed}
    return config_module.resolve("byol", dataset, preset=preset, overrides=overrides, data_root=data_root,
                                 device=device)


def probe_epochs(preset: str, length: int = 1) -> int:
    """How many epochs of its run a probe trains: K, or `length` × K for a map of longer probes (the
    threshold against probe length, at constant lr: issue 20)."""
    return PROBES[preset]["probe_epochs"] * length


def check_schedule(preset: str, dataset: str, length: int, factor: int, checks: int) -> None:
    """ValueError in one line when probes of length × K epochs, continued to `factor` times that by the
    K check (if `checks`), do not fit the probe's schedule (its `epochs`)."""
    needed = probe_epochs(preset, length) * (factor if checks else 1)
    schedule = probe_config(Setting("linear", DEFAULT_ALPHA, DEFAULT_EMA), 1e-3, 0, preset=preset,
                            dataset=dataset)["epochs"]
    if needed > schedule:
        raise ValueError(f"argument --length: probes of {probe_epochs(preset, length)} epochs"
                         + (f" continued to {needed} by the K check" if checks else "")
                         + f" do not fit the {preset} probes' schedule of {schedule} epochs; use a smaller --length"
                         + (", a smaller --check-factor or --check 0" if checks else ""))
