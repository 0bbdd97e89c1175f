"""Config resolution: the thesis defaults, presets, and typed --set overrides that refuse bad input."""
import pytest
from hypothesis import given, strategies as st

from deep import config as config_module
from deep.config import parse_overrides, resolve


def test_thesis_defaults_per_method():
    common = {"batch_size": 512, "epochs": 400, "width": 64, "momentum": 0.9}
    expected = {
        "moco": {"temperature": 0.1, "ema": 0.99, "queue_size": 4096},
        "byol": {"lr": 0.06, "ema": 0.9, "predictor": "mlp"},
        "simsiam": {"lr": 0.04, "ema": 0.0},
        "barlowtwins": {"lambda": 0.005, "proj_layers": 3, "proj_dim": 2048},
        "directpred": {"lr": 0.06, "ema": 0.9, "rho": 0.99, "eps": 0.1, "predictor": "directpred"},
        "directcopy": {"predictor": "directcopy"},
        "supervised": {},
    }
    for method, values in expected.items():
        config = resolve(method, "cifar10")
        assert config["preset"] == "thesis"
        for key, value in {**common, **values}.items():
            assert config[key] == value, (method, key)


def test_cpu_preset_is_width_16_batch_256_ten_epochs():
    config = resolve("byol", "cifar10", preset="cpu")
    assert (config["width"], config["batch_size"], config["epochs"]) == (16, 256, 10)
    assert config["val_split"] == 5000  # tuning never sees the test set


@pytest.mark.parametrize("method, lr", [("byol", 0.06), ("simsiam", 0.04), ("directpred", 0.06)])
def test_thesis_preset_is_the_reference_recipe(method, lr):
    """Thesis Sec. 4.6 and its refs [4]/[5] (main.py): SGD(lr, momentum 0.9, weight decay 5e-4) with no
    batch scaling at batch 512, CosineAnnealingLR(T_max = epochs) stepped per epoch, no warm-up."""
    import torch

    from deep.schedule import lr_at, peak_lr

    config = resolve(method, "cifar10")
    assert (config["batch_size"], config["momentum"], config["weight_decay"]) == (512, 0.9, 5e-4)
    assert peak_lr(config) == lr  # the thesis' effective lr, not lr·512/256
    steps_per_epoch = 3
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=lr, momentum=0.9)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config["epochs"])
    for epoch in range(config["epochs"]):
        expected = optimizer.param_groups[0]["lr"]
        for index in range(steps_per_epoch):
            assert lr_at(epoch * steps_per_epoch + index, config, steps_per_epoch) == pytest.approx(expected, abs=1e-12)
        optimizer.step()
        reference.step()


def test_linear_lr_scaling_is_per_256_images():
    from deep.schedule import peak_lr

    config = resolve("byol", "cifar10", overrides={"lr_scaling": "linear"})
    assert peak_lr(config) == pytest.approx(0.06 * 512 / 256)


def test_cpu_preset_adjusts_what_a_ten_epoch_schedule_needs_and_nothing_else():
    """deep.presets: larger lr for the BYOL family, ρ = 0.3 for the F̂-written predictors; thesis values elsewhere."""
    changed = {"byol": {"lr": 0.2}, "directpred": {"lr": 0.2, "rho": 0.3}, "directcopy": {"lr": 0.2, "rho": 0.3},
               "simsiam": {"lr": 0.2}, "moco": {}, "barlowtwins": {}, "supervised": {}}
    generic = {"width", "batch_size", "epochs", "warmup_epochs", "lr_schedule", "log_every", "val_split", "preset"}
    for method, values in changed.items():
        thesis, cpu = resolve(method, "cifar10"), resolve(method, "cifar10", preset="cpu")
        differing = {k: cpu[k] for k in cpu if cpu[k] != thesis[k] and k not in generic}
        assert differing == values, method


def test_presets_apply_only_the_keys_a_method_has():
    config = resolve("byol", "synthetic", preset="smoke")
    assert "queue_size" not in config and config["width"] == 4
    assert resolve("moco", "synthetic", preset="smoke")["queue_size"] == 64


def test_set_overrides_are_typed_and_win_over_the_preset():
    overrides = parse_overrides(["lr=0.5", "epochs=3", "compile=true", "predictor=linear", "lambda=0.01"])
    assert overrides == {"lr": 0.5, "epochs": 3, "compile": True, "predictor": "linear", "lambda": 0.01}
    config = resolve("byol", "cifar10", preset="cpu", overrides={"lr": 0.5, "epochs": 3})
    assert (config["lr"], config["epochs"]) == (0.5, 3)


@pytest.mark.parametrize("item,message", [
    ("nokey=1", "unknown key; allowed: augmentation, backbone, batch_size"),
    ("lr", "expects key=value"),
    ("epochs=2.5", "expected a whole number"),
    ("lr=fast", "expected a number"),
    ("compile=maybe", "true or false"),
])
def test_bad_set_items_are_refused(item, message):
    with pytest.raises(ValueError, match=message):
        parse_overrides([item])


@pytest.mark.parametrize("overrides,message", [
    ({"lr": -0.1}, r"lr=-0.1 is not allowed: expected a number in \(0, 100\]"),
    # absurd sizes stop at a sanity ceiling before any memory is asked for
    ({"width": 10**8}, r"width=100000000 is not allowed: expected a whole number in \[1, 1024\]"),
    ({"seed": 2**64}, r"expected a whole number in \[0, 4294967295\]"),
    ({"epochs": 10**12}, r"in \[1, 100000\]"),
    ({"weight_decay": 1e30}, r"weight_decay=1e\+30 is not allowed"),
    ({"batch_size": -4}, "batch_size=-4 is not allowed"),
    ({"batch_size": 0}, "batch_size=0 is not allowed"),
    ({"lr": float("nan")}, "lr=nan is not allowed"),
    ({"ema": 1.5}, r"expected a number in \[0, 1\]"),
    ({"predictor": "deep"}, "one of mlp, linear, directpred, directcopy, symmetric, none"),
    ({"temperature": 0.2}, "not a key of method byol; allowed: "),
    ({"warmup_epochs": 20.0, "epochs": 10}, "must not exceed epochs"),
    ({"snapshots": 1}, "0 .none. or >= 2"),
])
def test_bad_values_are_refused_with_what_is_allowed(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve("byol", "cifar10", overrides=overrides)


def test_unknown_method_and_preset_list_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown --method 'simclr'; allowed: moco, byol, simsiam"):
        resolve("simclr", "cifar10")
    with pytest.raises(ValueError, match="unknown --preset 'gpu'; allowed: thesis, cpu, smoke"):
        resolve("byol", "cifar10", preset="gpu")


def test_moco_batch_must_split_into_bn_groups():
    with pytest.raises(ValueError, match="bn_splits"):
        resolve("moco", "cifar10", overrides={"batch_size": 12, "bn_splits": 8})


@given(st.floats(1e-6, 1e3, allow_nan=False))
def test_float_text_round_trips(value):
    assert parse_overrides([f"lr={value!r}"])["lr"] == value


@given(st.sampled_from(sorted(config_module.KEYS)))
def test_every_key_documents_what_is_allowed(key):
    spec = config_module.KEYS[key]
    assert spec.doc and spec.allowed()
