"""The thesis' ablations (Ch. 4.6–4.7; SPEC §5) as lists of variants: one method, one preset, and
per variant a few `--set` overrides. No torch here, so `ssldyn --help` stays fast.

Weight decays are chosen on the linear theory's scale, through `analysis.theory`'s mapping of a
deep run onto Eqs. 11–13: one SGD step with momentum μ and learning rate lr is lr/(1−μ) of flow
time, and gradient and decay are scaled alike, so η = `weight_decay` (no conversion), and η* is
taken at the EMA's fixed point τ = 1 with σ² = 0, its largest value (1/4): a weight decay above it
is past η* whatever σ² is. That reading compares different units (`analysis.theory.UNMEASURED_SCALES`):
the labels "η*/2" and "2η*" name the grid, they do not place the network against the theory.
"""
from dataclasses import dataclass, field

from analysis.theory import STEADY_TAU
from deep import config as config_module
from linear_dynamics.fixed_points import eta_critical

ETA_STAR = eta_critical(STEADY_TAU, 0.0)  # 1/4, in weight_decay units (module docstring)
SUGGESTED_WEIGHT_DECAY = 5e-4  # BYOL's default here (deep.methods.byol), the usual CIFAR value


@dataclass(frozen=True)
class Variant:
    """One run of a sweep: its directory name, its legend label, the method and the overrides."""

    name: str
    label: str
    method: str
    overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Ablation:
    """A sweep: what it asks, the thesis' figure it remakes, the hypotheses (SPEC §5) it tests."""

    name: str
    title: str
    thesis: str          # the thesis' (or paper's) finding, set beside ours in summary.md
    hypotheses: tuple    # H1..H7 judged by analysis.hypotheses.deep_verdicts on the sweep's runs
    variants: tuple

    @property
    def knob(self) -> frozenset:
        """Keys every variant sets: the swept knob(s), which a user's --set may not override."""
        keys = [set(v.overrides) for v in self.variants]
        return frozenset(set.intersection(*keys)) if keys else frozenset()

    @property
    def maps_to_theory(self) -> bool:
        """Whether the knob has a counterpart in the linear theory (η, α_p, β): H5–H7."""
        return bool(set(self.hypotheses) & {"H5", "H6", "H7"})


def _g(value: float) -> str:
    return f"{value:g}"


def _weight_decay_variants() -> tuple:
    labels = {SUGGESTED_WEIGHT_DECAY: "suggested", 10 * SUGGESTED_WEIGHT_DECAY: "10× suggested",
              100 * SUGGESTED_WEIGHT_DECAY: "100× suggested",
              ETA_STAR / 2: "η*/2", 2 * ETA_STAR: "2η*, past η*"}
    return tuple(Variant(f"wd-{_g(wd)}", f"weight decay {_g(wd)} ({text})", "byol", {"weight_decay": wd})
                 for wd, text in labels.items())


PREDICTOR_LR_MULTS = (0.1, 0.3, 1.0, 3.0, 10.0)
EMA_RATES = (0.0, 0.5, 0.9, 0.99)
SSL_METHODS = ("moco", "byol", "simsiam", "barlowtwins", "directpred", "directcopy")

ABLATIONS = {
    "no-predictor": Ablation(
        "no-predictor", "SimSiam with and without the predictor (thesis Fig. 4.7)",
        "Thesis Fig. 4.7 (SimSiam without predictor, 100 epochs): the loss drops to its minimum at once, the std "
        "of the representations falls to 0 and the kNN accuracy stagnates; H1 supported.",
        ("H1",),
        (Variant("with-predictor", "with predictor (mlp)", "simsiam", {"predictor": "mlp"}),
         Variant("no-predictor", "no predictor", "simsiam", {"predictor": "none"}))),
    "weight-decay": Ablation(
        "weight-decay", "BYOL at the suggested and at large weight decays (thesis Fig. 4.10)",
        "Thesis Fig. 4.10: with a too large weight decay BYOL's accuracy dropped but it still learned useful "
        "representations; H5 not confirmed.",
        ("H5",),
        _weight_decay_variants()),
    "predictor-lr": Ablation(
        "predictor-lr", "BYOL with different predictor learning rates (thesis Fig. 4.9)",
        "Thesis Fig. 4.9: predictor learning rates up to 0.1 gave the same kNN curve; larger ones still learned "
        "but peaked lower, with wavier curves; H6 not confirmed. The paper's collapse case is a symmetric "
        "linear predictor trained without EMA.",
        ("H6",),
        tuple(Variant(f"alpha-{_g(a)}", f"α_p = {_g(a)}", "byol", {"predictor_lr_mult": a}) for a in PREDICTOR_LR_MULTS)
        + (Variant("symmetric-no-ema", "symmetric linear W_p, no EMA, α_p = 1", "byol",
                   {"predictor_lr_mult": 1.0, "predictor": "symmetric", "ema": 0.0}),)),
    "projector": Ablation(
        "projector", "MoCo with and without the projection head (thesis Fig. 4.2)",
        "Thesis Fig. 4.2: without a projection head MoCo's training loss keeps falling while its kNN accuracy "
        "stagnates (the backbone overfits the task); with the head both improve.",
        (),
        (Variant("with-projector", "with projection head", "moco", {"projector": "mlp"}),
         Variant("no-projector", "no projection head", "moco", {"projector": "none"}))),
    "ema": Ablation(
        "ema", "BYOL at several EMA rates, 0 = SimSiam-like (H7)",
        "Not run in the thesis. The paper: EMA slows training but widens the region without collapse (H7).",
        ("H7",),
        tuple(Variant(f"ema-{_g(m)}", f"ema {_g(m)}" + (" (SimSiam-like)" if m == 0 else ""), "byol", {"ema": m})
              for m in EMA_RATES)),
    "methods": Ablation(
        "methods", "Every self-supervised method at one preset (thesis Fig. 4.6)",
        "Thesis Fig. 4.6 (400 epochs, batch 512): the non-contrastive methods peak near 90% kNN, MoCo near 85%, "
        "Barlow Twins near 80%. DirectCopy was not in the thesis.",
        (),
        tuple(Variant(m, m, m) for m in SSL_METHODS)),
}


def set_text(value) -> str:
    """The text of `--set key=TEXT` that deep.config.parse_value reads back as `value`."""
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def variant_configs(ablation: Ablation, dataset: str, *, preset: str, overrides: dict | None = None,
                    data_root: str | None = None, device: str = "cpu") -> list:
    """[(variant, resolved config)] for every variant: the preset, then the user's overrides, then the
    variant's own (which win). Resolves all before any training, so bad input fails at once.

    A user override of the swept knob would make the variants identical: ValueError naming it."""
    overrides = dict(overrides or {})
    clash = sorted(set(overrides) & ablation.knob)
    if clash:
        raise ValueError(f"--set {clash[0]}: the {ablation.name} ablation sweeps it; "
                         f"leave it out (the variants set {', '.join(sorted(ablation.knob))})")
    return [(v, config_module.resolve(v.method, dataset, preset=preset, overrides={**overrides, **v.overrides},
                                      data_root=data_root, device=device))
            for v in ablation.variants]
