"""A run's configuration: one flat dict, every hyperparameter typed, checked and overridable.

Resolution order (later wins): `COMMON` defaults < the method's thesis defaults
(`deep.methods.<name>.DEFAULTS`) < the preset (`deep.presets`) < `--set key=value` overrides.
A method accepts only the keys it uses; anything else is refused with the list of allowed keys.
The resolved dict is what `config.json` holds and what `deep.train.train` takes. Importing this
module does not import torch (the method registry is looked up inside `resolve`).
"""
import math
from dataclasses import dataclass

from deep import presets
from deep.head_kinds import COPY_NORMS, PREDICTORS, PROJECTORS

PRECISIONS = ("bf16", "fp32")
DEVICES = ("cpu", "cuda")
LR_SCALINGS = ("none", "linear")
LR_SCHEDULES = ("cosine_epoch", "cosine_step", "constant")
AUGMENTATIONS = ("crop_flip", "ssl")
BACKBONES = ("resnet18", "linear")
LOSSES = ("cosine", "l2")
# Keys of the ResNet-18 backbone: refused beside backbone=linear, which has no convolutions or projector.
RESNET_KEYS = ("width", "channels_last", "compile", "projector", "proj_layers", "proj_hidden", "proj_dim")
# Which trained parameters SGD's weight decay acts on: all of them (the reference code), the weight
# matrices and kernels only (no BatchNorm affine, no bias), or only the projector's and predictor's
# matrices (where the linear theory puts η: on W and W_p, Eqs. 2–3).
WD_SCOPES = ("all", "weights", "heads")
IDENTITY_KEYS = ("method", "dataset", "data_root", "preset", "device")  # set by the command line, not --set


def _number(x) -> str:
    """A bound as a reader types it: whole numbers in full (2**32 − 1 is 4294967295, not 4.29497e+09)."""
    return str(x) if isinstance(x, int) else f"{x:g}"


@dataclass(frozen=True)
class Key:
    """One hyperparameter: its type, allowed range or choices, and what it means."""

    kind: type
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        noun = "a whole number" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {_number(self.low)}"
        return noun


KEYS = {
    # every method
    "seed": Key(int, "seeds model init, shuffling and augmentation", low=0, high=2**32 - 1),
    "epochs": Key(int, "length of the schedule in epochs", low=1, high=10**5),
    "batch_size": Key(int, "global batch (images, each giving two views) per optimizer step", low=2, high=65536),
    "width": Key(int, "ResNet-18 first-stage channels (64 = thesis; output dim 8·width)", low=1, high=1024),
    "lr": Key(float, "base learning rate (see lr_scaling)", low=0, low_open=True, high=100),
    "lr_scaling": Key(str, "none: the optimizer's lr is `lr` (the thesis' reference code); linear: lr·batch_size/256",
                      choices=LR_SCALINGS),
    "lr_schedule": Key(str, "cosine_epoch: cosine over the epochs, stepped once per epoch (CosineAnnealingLR, the "
                            "thesis' reference code); cosine_step: cosine stepped every step; constant: the peak "
                            "lr after the warm-up", choices=LR_SCHEDULES),
    "weight_decay": Key(float, "SGD weight decay on the trained parameters wd_scope names", low=0, high=100),
    "wd_scope": Key(str, "the parameters weight decay acts on: all (every trained parameter), weights (weight "
                         "matrices and conv kernels; no BatchNorm, no bias), heads (only the projector's and "
                         "predictor's matrices)", choices=WD_SCOPES),
    "momentum": Key(float, "SGD momentum", low=0, high=1, high_open=True),
    "warmup_epochs": Key(float, "linear warm-up from 0 before the cosine decay", low=0),
    "precision": Key(str, "autocast dtype of the forward pass (bf16) or none (fp32)", choices=PRECISIONS),
    "channels_last": Key(bool, "NHWC memory format for the convolutions"),
    "compile": Key(bool, "torch.compile the backbones"),
    "log_every": Key(int, "steps between per-step lines in metrics.jsonl", low=1),
    "knn_k": Key(int, "neighbours of the weighted kNN monitor", low=1),
    "knn_temperature": Key(float, "temperature τ of the kNN vote weights exp(cos/τ)", low=0, low_open=True),
    "eval_batch": Key(int, "size of the seeded class-balanced sample of monitor images (⌊N/C⌋ per class, "
                                "deep.evaluate.sample) whose projections give the collapse metrics", low=2),
    "val_split": Key(int, "training images held out (class-balanced, drawn from seed) as the per-epoch monitor's "
                          "validation set; 0: the monitor uses the test set, as the thesis' Fig. 4.6 did", low=0),
    "train_fraction": Key(float, "class-balanced fraction of the training images (after val_split) the run trains on "
                                 "and the kNN monitor votes with, drawn from seed (the collapse map's small probes)",
                          low=0, low_open=True, high=1),
    # self-supervised heads
    "projector": Key(str, "projection head (none removes it)", choices=PROJECTORS),
    "proj_layers": Key(int, "projector depth (2 = thesis, 3 = Barlow Twins)", low=1),
    "proj_hidden": Key(int, "projector hidden width", low=1, high=65536),
    "proj_dim": Key(int, "projector output dimension", low=1, high=65536),
    "predictor": Key(str, "prediction head", choices=PREDICTORS),
    "backbone": Key(str, "resnet18, or linear: the linear theory's W, one bias-free linear map on the normalised "
                         "image average-pooled to 8×8 (deep.linear_backbone; needs projector=none, set by default)",
                    choices=BACKBONES),
    "linear_dim": Key(int, "outputs of W with backbone=linear", low=1, high=65536),
    "loss": Key(str, "cosine: BYOL's negative cosine; l2: the linear theory's ½‖p − z‖² on unnormalised outputs "
                     "(Tian et al. 2021, Eq. 1)", choices=LOSSES),
    "pred_hidden": Key(int, "hidden width of the mlp predictor", low=1, high=65536),
    "predictor_lr_mult": Key(float, "α_p: predictor lr = α_p · lr (own param group)", low=0, low_open=True),
    # target network / key encoder
    "ema": Key(float, "target EMA momentum m: θ_t ← m θ_t + (1−m) θ (0 = target ≡ online)", low=0, high=1),
    # MoCo
    "temperature": Key(float, "InfoNCE temperature τ", low=0, low_open=True),
    "queue_size": Key(int, "MoCo queue length (negatives)", low=1, high=2**22),
    "bn_splits": Key(int, "MoCo shuffle-BN groups of the global batch (1 = off)", low=1),
    # Barlow Twins
    "lambda": Key(float, "Barlow Twins off-diagonal weight λ (Eq. 2.5)", low=0),
    # DirectPred / DirectCopy / linear predictor
    "eps": Key(float, "ε added to the predictor eigenvalues √(s/max s) (DirectPred; relative to 1, the top one) or "
                      "as εI to the copied F̂ (DirectCopy: relative to ‖F̂‖_F = 1 with copy_norm=frobenius, in "
                      "F̂'s own units with copy_norm=none)", low=0),
    "copy_norm": Key(str, "DirectCopy's W_p: frobenius = F̂/‖F̂‖_F + εI; none = F̂ + εI, the authors' code "
                          "(luckmatters' directcopy)", choices=COPY_NORMS),
    "rho": Key(float, "F̂ momentum ρ: F̂ ← ρF̂ + (1−ρ)E[ffᵀ]", low=0, high=1, high_open=True),
    "freq": Key(int, "steps between analytic predictor updates", low=1),
    "snapshots": Key(int, "W_p/F̂ snapshots over training (0 = none, else >= 2)", low=0),
    # supervised baseline (Table 4.3)
    "augmentation": Key(str, "crop_flip: pad 4, random crop, flip (the standard supervised CIFAR recipe); "
                             "ssl: the self-supervised view", choices=AUGMENTATIONS),
    "labels": Key(float, "fraction of the labelled training images, class-balanced, drawn from seed "
                         "(deep.evaluate.labels)", low=0, low_open=True, high=1),
}

# Thesis-scale defaults shared by every method: the thesis' reference code (its refs [4], [5]:
# IgorSusmelj/barlowtwins and simsiam-cifar10 main.py; ../shared/REFERENCES.md): batch 512,
# SGD(lr 0.06, momentum 0.9, weight decay 5e-4) with no batch scaling, CosineAnnealingLR over all
# epochs stepped per epoch, no warm-up; 400 epochs (thesis Sec. 4.6); ResNet-18 at width 64.
COMMON = {
    "seed": 0,
    "epochs": 400,
    "batch_size": 512,
    "width": 64,
    "lr": 0.06,
    "lr_scaling": "none",
    "lr_schedule": "cosine_epoch",
    "weight_decay": 5e-4,
    "wd_scope": "all",
    "momentum": 0.9,
    "warmup_epochs": 0.0,
    "precision": "bf16",
    "channels_last": True,
    "compile": False,
    "log_every": 20,
    "knn_k": 200,
    "knn_temperature": 0.1,
    "eval_batch": 512,
    "val_split": 0,
    "train_fraction": 1.0,
}


def method_keys(method_defaults: dict) -> tuple[str, ...]:
    """The --set keys a method accepts: the common ones and its own."""
    return tuple(COMMON) + tuple(k for k in method_defaults if k not in COMMON)


def parse_value(key: str, text: str):
    """Turn the text of `--set key=text` into the key's type; ValueError names key and what is allowed."""
    spec = _spec(key)
    if spec.kind is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"--set {key}={text}: expected {spec.allowed()}")
    if spec.kind in (int, float):
        try:
            return spec.kind(text)
        except ValueError:
            raise ValueError(f"--set {key}={text}: expected {spec.allowed()}") from None
    return text


def check_value(key: str, value):
    """`value` if it fits `key`'s type and range, else ValueError naming the key and what is allowed."""
    spec = _spec(key)
    bad = ValueError(f"{key}={value!r} is not allowed: expected {spec.allowed()}")
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if spec.kind is str:
        if value not in spec.choices:
            raise bad
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad
    if spec.kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise bad
        value = int(value)
    value = float(value) if spec.kind is float else value
    if spec.kind is float and not math.isfinite(value):
        raise bad
    if spec.low is not None and (value < spec.low or (spec.low_open and value == spec.low)):
        raise bad
    if spec.high is not None and (value > spec.high or (spec.high_open and value == spec.high)):
        raise bad
    return value


def parse_overrides(items) -> dict:
    """["key=value", ...] → {key: typed value}; the key is checked later, against the method."""
    overrides = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        if key not in KEYS:
            raise ValueError(f"--set {key}: unknown key; allowed: {', '.join(sorted(KEYS))}")
        overrides[key] = parse_value(key, text)
    return overrides


def resolve(method: str, dataset: str, *, preset: str = "thesis", overrides: dict | None = None,
            data_root: str | None = None, device: str = "cpu") -> dict:
    """The full config of one run (what config.json holds), checked key by key and as a whole."""
    from deep.data import DATASETS
    from deep.methods import METHODS

    if method not in METHODS:
        raise ValueError(f"unknown --method {method!r}; allowed: {', '.join(METHODS)}")
    if dataset not in DATASETS:
        raise ValueError(f"unknown --dataset {dataset!r}; allowed: {', '.join(DATASETS)}")
    if preset not in presets.PRESETS:
        raise ValueError(f"unknown --preset {preset!r}; allowed: {', '.join(presets.PRESETS)}")
    if device not in DEVICES:
        raise ValueError(f"unknown --device {device!r}; allowed: {', '.join(DEVICES)}")
    defaults = METHODS[method].DEFAULTS
    allowed = method_keys(defaults)
    overrides = dict(overrides or {})
    for key in overrides:
        if key not in allowed:
            raise ValueError(f"--set {key}: not a key of method {method}; allowed: {', '.join(sorted(allowed))}")
    config = {"method": method, "dataset": dataset, "data_root": data_root, "preset": preset, "device": device}
    config.update(COMMON)
    config.update(defaults)
    config.update(presets.overrides(preset, method, allowed))
    if overrides.get("backbone") == "linear":
        given = [k for k in RESNET_KEYS if k in overrides and not (k == "projector" and overrides[k] == "none")]
        if given:
            raise ValueError(f"--set {given[0]}={overrides[given[0]]}: backbone=linear is one linear map with no "
                             f"ResNet or projector; drop {', '.join(given)}")
        config["projector"] = "none"
    elif "linear_dim" in overrides:
        raise ValueError(f"--set linear_dim={overrides['linear_dim']}: it sizes backbone=linear's W; add "
                         "--set backbone=linear or drop it")
    config.update(overrides)
    return validate(config)


# Keys added after runs were written, with the value those runs had: a config.json or checkpoint
# without one reads as that value, so older runs still resume, load and compare. A key is added only
# where the run's method takes it (copy_norm: the BYOL family).
ADDED_KEYS = {"train_fraction": 1.0, "wd_scope": "all", "copy_norm": "frobenius", "backbone": "resnet18", "linear_dim": 32,
              "loss": "cosine"}


def with_added_keys(config: dict) -> dict:
    """`config` with every ADDED_KEYS key its method takes and it lacks, set to the value runs had
    before the key existed."""
    from deep.methods import METHODS

    method = METHODS.get(config.get("method"))
    taken = method_keys(method.DEFAULTS) if method else ()
    return {**{k: v for k, v in ADDED_KEYS.items() if k not in config and k in taken}, **config}


def validate(config: dict) -> dict:
    """Check every key's type and range and the constraints between keys; returns a checked copy."""
    from deep.methods import METHODS

    config = with_added_keys(config)
    unknown = [k for k in config if k not in KEYS and k not in IDENTITY_KEYS]
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; allowed: {', '.join(sorted(KEYS))}")
    if config.get("method") not in METHODS:
        raise ValueError(f"unknown method {config.get('method')!r}; allowed: {', '.join(METHODS)}")
    missing = [k for k in method_keys(METHODS[config["method"]].DEFAULTS) if k not in config]
    if missing:
        raise ValueError(f"config lacks keys {missing}")
    checked = {k: (v if k in IDENTITY_KEYS else check_value(k, v)) for k, v in config.items()}
    if checked["warmup_epochs"] > checked["epochs"]:
        raise ValueError(f"warmup_epochs={checked['warmup_epochs']} must not exceed epochs={checked['epochs']}")
    if checked.get("snapshots") == 1:
        raise ValueError("snapshots must be 0 (none) or >= 2 (the first at step 0, the last at the end)")
    if checked.get("backbone") == "linear" and checked["projector"] != "none":
        raise ValueError(f"backbone=linear takes no projector (got projector={checked['projector']}): the theory's W "
                         "is the whole encoder; use projector=none")
    splits = checked.get("bn_splits", 1)
    if checked["batch_size"] % splits or checked["batch_size"] // splits < 2:
        raise ValueError(f"batch_size={checked['batch_size']} must split into bn_splits={splits} groups "
                         "of at least 2 images")
    if checked["channels_last"] and checked.get("device", "cpu") == "cpu" and checked["batch_size"] % 2:
        # torch 2.14.1 on the CPU corrupts memory in the backward pass of a channels_last strided 1×1
        # convolution (the ResNet shortcut) when the batch is odd: refuse instead of crashing.
        raise ValueError(f"batch_size={checked['batch_size']} is odd: on the CPU use an even batch_size "
                         "or --set channels_last=false")
    return checked


def _spec(key: str) -> Key:
    if key not in KEYS:
        raise ValueError(f"unknown key {key!r}; allowed: {', '.join(sorted(KEYS))}")
    return KEYS[key]
