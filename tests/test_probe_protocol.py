"""What a collapse-map probe measures under (issue 20): a constant-lr schedule that separates a
probe's length from its annealing, and a protocol fingerprint that keeps probes measured on the
first images of a class-ordered split apart from probes measured on a class-balanced sample."""
import pytest

from deep import config as config_module
from deep.collapse_map import grid as grid_module
from deep.collapse_map import store
from deep.schedule import lr_at


def test_the_constant_schedule_warms_up_linearly_then_holds_the_peak_whatever_the_run_length():
    config = config_module.resolve("byol", "synthetic", preset="smoke",
                                   overrides={"lr_schedule": "constant", "warmup_epochs": 0.5, "epochs": 3})
    peak, per_epoch = config["lr"] * config["batch_size"] / 256, 10  # smoke scales lr by batch/256
    assert [lr_at(s, config, per_epoch) for s in range(5)] == pytest.approx([peak * (s + 1) / 5 for s in range(5)])
    assert [lr_at(s, config, per_epoch) for s in range(5, 30)] == pytest.approx([peak] * 25)
    longer = {**config, "epochs": 12}  # a longer run does not change any step's lr
    assert [lr_at(s, longer, per_epoch) for s in range(30)] == [lr_at(s, config, per_epoch) for s in range(30)]
    cosine = {**config, "lr_schedule": "cosine_step"}
    assert lr_at(25, cosine, per_epoch) < 0.5 * peak  # the control: the cosine has annealed by then


def test_the_probe_protocol_names_the_metric_sample_so_first_n_probes_are_another_protocol(monkeypatch):
    config = grid_module.probe_config(grid_module.Setting("linear", 1.0, 0.9), 0.01, 0, preset="cpu",
                                      dataset="cifar10")
    now = store.protocol(config)
    monkeypatch.setattr(store, "METRIC_SAMPLE", "the first eval_batch monitor images")
    assert store.protocol(config) != now
    monkeypatch.undo()
    assert store.protocol({**config, "weight_decay": 0.02, "seed": 3}) == now  # per-probe keys do not count
    assert store.protocol({**config, "wd_scope": "weights"}) != now


def test_the_cpu_reference_probes_protocol_is_pinned_so_a_changed_default_cannot_slip_into_old_probes():
    """The digest the committed probes and the remeasured scan carry (figures/collapse_map): a code default,
    preset value or metric sample that changes silently changes this string, and the test says so. If the
    change is meant, the old probes are another protocol: update the literal and remake or --reuse them."""
    config = grid_module.probe_config(grid_module.Setting("linear", 1.0, 0.9), 0.01, 0, preset="cpu",
                                      dataset="cifar10")
    assert store.protocol(config) == "cpu/cifar10/aa0c2341"
    assert store.protocol({**config, "eval_batch": 256}) != "cpu/cifar10/aa0c2341"  # the control


@pytest.mark.parametrize("scope, suffix", [("all", ""), ("weights", "-wdweights"), ("heads", "-wdheads")])
def test_a_wd_scope_setting_decays_where_it_says_under_its_own_name_and_protocol(scope, suffix):
    setting = grid_module.Setting("linear", 1.0, 0.9, wd_scope=scope)
    assert setting.name == "linear-alpha1-ema0.9" + suffix
    config = grid_module.probe_config(setting, 0.01, 0, preset="cpu", dataset="cifar10")
    assert config["wd_scope"] == scope
    reference = grid_module.probe_config(grid_module.Setting("linear", 1.0, 0.9), 0.01, 0, preset="cpu",
                                         dataset="cifar10")
    assert (store.protocol(config) == store.protocol(reference)) == (scope == "all")
    assert [s.name for s in grid_module.grid(["mlp"], [1.0], [0.9], wd_scope=scope)] == ["mlp-alpha1-ema0.9" + suffix]
    both = grid_module.Setting("linear", 1.0, 0.9, lr=0.1, wd_scope=scope)
    assert both.name == "linear-alpha1-ema0.9" + suffix + "-lr0.1"


def test_an_unknown_wd_scope_is_one_line_exit_2(capsys):
    from ssldyn.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["collapse-map", "--wd-scope", "biases", "--scan", "3"])
    assert stop.value.code == 2
    assert "argument --wd-scope: invalid choice: 'biases'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="wd_scope"):
        grid_module.Setting("linear", 1.0, 0.9, wd_scope="biases")
