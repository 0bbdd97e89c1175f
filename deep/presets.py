"""Named bundles of overrides on top of the methods' thesis defaults (issue 3, item 6).

- `thesis`: the defaults themselves: width 64, batch 512, 400 epochs (a GPU protocol).
- `cpu`: the protocol of every CPU number: CIFAR-10, width 16, batch 256, 10 epochs.
- `smoke`: a tiny network and batch, 2 epochs; seconds on the `synthetic` set, for tests.

A preset applies only the keys a method has (e.g. `queue_size` only to MoCo). No torch here.
"""

PRESETS = {
    "thesis": {},
    "cpu": {
        "width": 16,
        "batch_size": 256,
        "epochs": 10,
        # A 10-epoch schedule cannot spend 10 epochs warming up: one epoch (195 steps) is enough
        # to get past the unstable first steps and leaves 90% of the run at high lr.
        "warmup_epochs": 1.0,
        "log_every": 10,
    },
    "smoke": {
        "width": 4,
        "batch_size": 32,
        "epochs": 2,
        "warmup_epochs": 0.5,
        "proj_hidden": 32,
        "proj_dim": 16,
        "pred_hidden": 32,
        "queue_size": 64,
        "bn_splits": 2,
        "log_every": 1,
        "snapshots": 3,
        "eval_batch": 64,
        "knn_k": 20,
    },
}

# Method-specific adjustments of a preset, applied after the preset itself.
METHOD_PRESETS: dict[tuple[str, str], dict] = {}


def overrides(preset: str, method: str, allowed) -> dict:
    """The preset's values for `method`, restricted to the keys the method accepts."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
    merged = {**PRESETS[preset], **METHOD_PRESETS.get((preset, method), {})}
    return {key: value for key, value in merged.items() if key in allowed}
