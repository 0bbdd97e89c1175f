"""The knob settings of the collapse map and the config of one probe.

A setting is BYOL with a predictor (`linear`: one bias-free layer, the theory's W_p; or `mlp`),
a predictor lr ratio α_p (`predictor_lr_mult`) and an EMA rate m (`ema`; 0 is SimSiam). The map's
grid is two lines through the default (α_p = 1, ema = 0.9, BYOL's): α_p over ALPHAS at the default
EMA, and the EMA over EMAS at α_p = 1 (issue 12, item 1).

A probe is the first `probe_epochs` epochs of a run of the preset with the setting, a weight decay
and a seed (PROBES): exactly the beginning of that run, so a probe can be continued to check that
its verdict holds later (`deep.collapse_map.runner.check_probe_length`). The preset's own values
stay, except what PROBES changes, said beside each value.
"""
from dataclasses import dataclass

from deep import config as config_module

ALPHAS = (0.3, 1.0, 3.0, 10.0)
EMAS = (0.0, 0.9, 0.99)
DEFAULT_ALPHA, DEFAULT_EMA = 1.0, 0.9  # BYOL's (deep.methods.byol)
PREDICTORS = ("linear", "mlp")

# Per preset: the probe's schedule and length. cpu: the cpu preset (width 16, batch 256, lr 0.2,
# 10-epoch cosine) with a quarter-epoch warm-up instead of one epoch, so that a probe spends most of
# its steps at the full lr and weight decay (our choice; with the preset's one-epoch warm-up a
# one-epoch probe would be all warm-up), and 2 snapshots (W_p and F̂ at step 0: the initial spectrum
# the eigenvalue ODE starts from). probe_epochs: see the K check in docs/ablations.md (the collapse map).
PROBES = {
    "cpu": {"overrides": {"warmup_epochs": 0.25, "snapshots": 2}, "probe_epochs": 1},
    "thesis": {"overrides": {"snapshots": 2}, "probe_epochs": 10},
    "smoke": {"overrides": {"epochs": 3, "snapshots": 2}, "probe_epochs": 1},
}


@dataclass(frozen=True)
class Setting:
    """One point of the grid."""

    predictor: str
    predictor_lr_mult: float
    ema: float

    def __post_init__(self):
        if self.predictor not in PREDICTORS:
            raise ValueError(f"unknown predictor {self.predictor!r} for the collapse map; allowed: "
                             f"{', '.join(PREDICTORS)}")
        config_module.check_value("predictor_lr_mult", self.predictor_lr_mult)
        config_module.check_value("ema", self.ema)

    @property
    def name(self) -> str:
        return f"{self.predictor}-alpha{self.predictor_lr_mult:g}-ema{self.ema:g}"

    @property
    def overrides(self) -> dict:
        return {"predictor": self.predictor, "predictor_lr_mult": self.predictor_lr_mult, "ema": self.ema}


def grid(predictors=PREDICTORS, alphas=ALPHAS, emas=EMAS) -> list[Setting]:
    """The α_p line at the default EMA and the EMA line at α_p = 1, for each predictor, without
    repeats; ValueError if it is empty."""
    settings = []
    for predictor in predictors:
        line = [Setting(predictor, float(a), DEFAULT_EMA) for a in alphas]
        line += [Setting(predictor, DEFAULT_ALPHA, float(m)) for m in emas]
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


def probe_epochs(preset: str) -> int:
    """K: how many epochs of its run a probe trains (3K must fit in the run's schedule: the K check)."""
    return PROBES[preset]["probe_epochs"]
