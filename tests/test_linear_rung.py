"""The ladder's linear rungs as engine options (issue 21): `--set backbone=linear loss=l2`.

Pinned against hand computations: the pooled input is a plain block mean; the l2 loss is ½ mean‖p − z‖²;
one BYOL step's gradients on W and W_p are the closed forms of the theory's loss on the batch
(Tian et al. 2021, Eq. 1), with no gradient through the target; the EMA target moves as m·W_a + (1−m)·W;
options that do not combine are refused in one line; and a real run of the rung learns: at a small
weight decay W keeps directions, above the largest η_j* none.
"""
import numpy as np
import pytest
import torch

from deep import config as config_module
from deep.collapse_map.store import protocol
from deep.ladder import rungs
from deep.ladder.runner import check_grid, initial_weights, movement, read_rows, staircase_rows
from deep.linear_backbone import LinearBackbone, reduce
from deep.losses import squared_error, symmetric_squared_error
from deep.train import build_training_method, train
from ssldyn.cli import main


def _config(**overrides):
    return config_module.resolve("byol", "synthetic", preset="smoke", overrides={
        "backbone": "linear", "loss": "l2", "predictor": "linear", "precision": "fp32", "linear_dim": 4, **overrides})


def test_reduce_is_the_mean_of_each_4x4_block_at_32_pixels_and_covers_28_pixel_images():
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    blocks = images.numpy().reshape(2, 3, 8, 4, 8, 4).mean(axis=(3, 5)).reshape(2, -1)
    np.testing.assert_allclose(reduce(images).numpy(), blocks, rtol=1e-6, atol=1e-7)
    assert reduce(torch.ones(1, 1, 28, 28)).shape == (1, 64)
    np.testing.assert_allclose(reduce(torch.ones(1, 1, 28, 28)).numpy(), 1.0, rtol=1e-6)


def test_squared_error_is_half_the_mean_squared_distance():
    p = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    z = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    assert squared_error(p, z).item() == pytest.approx(0.5 * (4 + 25) / 2)
    assert symmetric_squared_error(p, z, p, z).item() == pytest.approx(0.5 * (4 + 25) / 2)  # p1→z2, p2→z1
    assert symmetric_squared_error(p, z, z, p).item() == 0.0


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_one_step_has_the_theory_gradients_and_none_through_the_target(ema):
    torch.manual_seed(0)
    method = build_training_method(_config(ema=ema), 3, 10)
    gen = torch.Generator().manual_seed(1)
    views = [torch.randn(6, 3, 32, 32, generator=gen) for _ in range(2)]
    loss = method(views, torch.zeros(6, dtype=torch.long), 0)
    loss.backward()
    W, Wp = method.backbone.W.weight.detach().double(), method.predictor.weight.detach().double()
    Wa = W if ema == 0 else method.target_backbone.W.weight.detach().double()
    x1, x2 = (reduce(v).double() for v in views)
    grad_W, grad_Wp = torch.zeros_like(W), torch.zeros_like(Wp)
    for a, b in ((x1, x2), (x2, x1)):  # L = ½J(view a → b) + ½J(b → a), J = ½ mean‖W_p W a − W_a b‖²
        f = a @ W.T
        residual = f @ Wp.T - b @ Wa.T
        grad_Wp += 0.5 * residual.T @ f / len(a)
        grad_W += 0.5 * Wp.T @ residual.T @ a / len(a)
    torch.testing.assert_close(method.predictor.weight.grad.double(), grad_Wp, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(method.backbone.W.weight.grad.double(), grad_W, rtol=1e-5, atol=1e-7)
    if ema:
        assert method.target_backbone.W.weight.grad is None


def test_the_ema_target_moves_by_m_wa_plus_one_minus_m_w():
    torch.manual_seed(0)
    method = build_training_method(_config(ema=0.9), 3, 10)
    with torch.no_grad():
        method.backbone.W.weight.add_(1.0)
    before_target = method.target_backbone.W.weight.detach().clone()
    online = method.backbone.W.weight.detach().clone()
    method.update_targets()
    torch.testing.assert_close(method.target_backbone.W.weight, 0.9 * before_target + 0.1 * online)


def test_the_linear_backbone_is_w_alone_and_carries_its_dimension():
    torch.manual_seed(0)
    method = build_training_method(_config(linear_dim=5), 3, 10)
    assert isinstance(method.backbone, LinearBackbone)
    assert [name for name, p in method.named_parameters() if p.requires_grad] == ["backbone.W.weight", "predictor.weight"]
    assert method.backbone.W.weight.shape == (5, 192)
    assert method.embed(torch.zeros(2, 3, 32, 32)).shape == (2, 5)


@pytest.mark.parametrize("overrides, message", [
    ({"backbone": "linear", "width": 8}, "--set width=8: backbone=linear is one linear map"),
    ({"backbone": "linear", "projector": "mlp"}, "--set projector=mlp: backbone=linear"),
    ({"loss": "mse"}, "loss='mse' is not allowed: expected one of cosine, l2"),
    ({"linear_dim": 8}, "--set linear_dim=8: it sizes backbone=linear's W"),
])
def test_options_that_do_not_combine_are_refused_in_one_line(overrides, message):
    with pytest.raises(ValueError, match=None) as info:
        config_module.resolve("byol", "synthetic", preset="smoke", overrides=overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_resnet_only_method_refuses_the_rung_keys():
    with pytest.raises(ValueError, match="--set backbone: not a key of method moco"):
        config_module.resolve("moco", "synthetic", preset="smoke", overrides={"backbone": "linear"})


def test_a_config_whose_projector_was_edited_back_is_refused_by_validate():
    config = _config()
    with pytest.raises(ValueError, match="backbone=linear takes no projector"):
        config_module.validate({**config, "projector": "mlp"})


def test_the_collapse_maps_protocol_does_not_see_the_new_keys_at_their_defaults():
    config = config_module.resolve("byol", "cifar10", preset="cpu")
    old = {k: v for k, v in config.items() if k not in ("backbone", "loss", "linear_dim")}
    assert protocol(config) == protocol(old)
    assert protocol(config) != protocol({**config, "loss": "l2"})


def test_the_cli_refuses_a_rung_option_with_a_resnet_key_exit_2_one_line(capsys, tmp_path):
    argv = ["train", "--method", "byol", "--dataset", "synthetic", "--preset", "smoke", "--out", str(tmp_path / "r"),
            "--set", "backbone=linear", "--set", "width=8"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ssldyn train: error: --set width=8")
    assert not (tmp_path / "r").exists()


def test_initial_weights_are_the_ones_train_starts_from(tmp_path):
    """At lr 1e-12 and no decay one epoch leaves W and W_p where they started, to ~1e-10."""
    from deep.data import load_dataset
    from deep.train import load_method

    torch.set_num_threads(1)
    config = _config(lr=1e-12, weight_decay=0.0, epochs=1, lr_schedule="constant", warmup_epochs=0.0, seed=3)
    data = load_dataset("synthetic", None, seed=3)
    train(config, tmp_path / "run", dataset=data)
    method, _ = load_method(tmp_path / "run")
    w0, wp0 = initial_weights(config, 3, len(data.classes))
    np.testing.assert_allclose(method.backbone.W.weight.detach().double().numpy(), w0, atol=1e-8)
    np.testing.assert_allclose(method.predictor.weight.detach().double().numpy(), wp0, atol=1e-8)


def test_a_grid_with_no_predicted_step_inside_is_refused_naming_the_thresholds():
    lam, nu = np.array([4.0, 1.0]), np.array([0.0, 0.0])  # η* = 1, 0.25
    check_grid([0.1, 0.5, 2.0], lam, nu)
    with pytest.raises(ValueError, match="predicts 0 modes at both 2 and 5.*highest steps are at 1, 0.25$"):
        check_grid([2.0, 5.0], lam, nu)
    # W with one output keeps at most one mode: from 0.1 to 0.5 the count is 1 either way (2 → 1 at 0.25 is
    # no step of the capped staircase), and the only step it has is the largest threshold's
    check_grid([0.1, 0.5], lam, nu)
    with pytest.raises(ValueError, match=r"predicts 1 modes at both 0.1 and 0.5.*highest steps are at 1 \(at most 1 "):
        check_grid([0.1, 0.5], lam, nu, outputs=1)
    check_grid([0.5, 2.0], lam, nu, outputs=1)
    with pytest.raises(ValueError, match=r"at 1, 0.25 \(at most 2 modes"):
        check_grid([2.0, 5.0], lam, nu, outputs=2)


def test_the_drawn_staircase_is_capped_at_ws_outputs():
    lam, nu = np.array([4.0, 1.0, 0.25]), np.zeros(3)  # η* = 1, 0.25, 0.0625 (λ/4 with ν = 0)
    rows = staircase_rows(lam, nu, 0.01, 10.0, count=7)
    assert [r["staircase"] for r in rows] == [3, 3, 2, 1, 0, 0, 0]  # 0.01, 0.0316, 0.1, 0.316, 1, 3.16, 10
    assert [r["staircase"] for r in staircase_rows(lam, nu, 0.01, 10.0, count=7, outputs=2)] == [2, 2, 2, 1, 0, 0, 0]


def test_movement_reads_the_kept_directions_only():
    half, full = np.array([1.0, 0.5, 1e-9]), np.array([1.05, 0.45, 1e-12])
    assert movement(half, full, 2) == pytest.approx(0.1)
    assert movement(half, full, 0) == 0.0


def test_a_ladder_csv_with_other_columns_is_refused(tmp_path):
    bad = tmp_path / "ladder.csv"
    bad.write_text("rung,setting\nr1,x\n")
    with pytest.raises(ValueError, match="ladder.csv: expected the columns rung, setting, predictor_lr_mult"):
        read_rows(bad)


def test_the_rungs_are_byol_with_the_linear_network_and_their_loss():
    r1 = rungs.point_config("r1", rungs.Setting(1.0, 0.0), 0.1, 0, 4, dataset="synthetic")
    r2 = rungs.point_config("r2", rungs.Setting(3.0, 0.99), 0.1, 0, 4, dataset="synthetic")
    assert (r1["backbone"], r1["projector"], r1["loss"], r1["predictor"]) == ("linear", "none", "l2", "linear")
    assert (r2["loss"], r2["predictor_lr_mult"], r2["ema"]) == ("cosine", 3.0, 0.99)
    with pytest.raises(ValueError, match="unknown rung 'r3'"):
        rungs.point_config("r3", rungs.Setting(1.0, 0.0), 0.1, 0, 4, dataset="synthetic")


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "3"], "argument --epochs: must be even"),
    (["--wd-range", "1", "0.1"], "argument --wd-range: LOW must be below HIGH"),
    (["--wds", "2"], "argument --wds: needs at least 3 weight decays"),
    (["--lr=-1"], "argument --lr: must be > 0"),
    (["--rung", "r3"], "argument --rung: invalid choice"),
])
def test_ladder_bad_arguments_exit_2_with_one_line_before_any_work(capsys, tmp_path, argv, message):
    try:
        code = main(["ladder", "--dataset", "synthetic", "--out", str(tmp_path / "l"), *argv])
    except SystemExit as exit_info:  # argparse's own refusals exit from the parser
        code = exit_info.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "l").exists()


def test_a_grid_that_cannot_bracket_the_prediction_is_refused_from_the_cli_and_writes_nothing(capsys, tmp_path,
                                                                                            monkeypatch):
    """Moments with η_j* = λ_j/4 = 1 and 0.25 (ν = 0; the data's are stood in for, the refusal is what is
    tested) and weight decays far above both: the staircase is 0 across the grid, so the runs could not
    test it; one line naming the thresholds, exit 2, no run, no record, no moments file."""
    from deep.ladder import runner

    monkeypatch.setattr(runner, "moments", lambda config, out: (np.diag([4.0, 1.0]), np.diag([4.0, 1.0])))
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: pytest.fail("a run started past the refused grid"))
    out = tmp_path / "l"
    code = main(["ladder", "--rung", "r1", "--wd-range", "10", "50", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "predicts 0 modes at both 10 and 50" in err[0] and "highest steps are at 1, 0.25" in err[0]
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def test_a_real_run_keeps_the_directions_the_staircase_predicts_and_none_above_it(tmp_path):
    """The synthetic set's two-view moments give η_j*; R1 trained 20 short epochs (SimSiam, α_p 1, lr 0.005)
    at a weight decay between the 2nd and 3rd largest η_j* (their geometric mean, ×2.6 from either on this
    set) keeps 2 directions of W, and at 3× the largest none (the count of `population.surviving_count`)."""
    from deep import augment
    from deep.data import load_dataset
    from deep.train import load_method
    from deep.view_covariance import mode_spectra, view_moments
    from linear_dynamics.modes import mode_thresholds
    from linear_dynamics.population import surviving_count

    torch.set_num_threads(1)
    data = load_dataset("synthetic", None, seed=0)
    a_bar, c_bar = view_moments(data.train.images, augment.training_views("ssl", 2), 2,
                                torch.Generator().manual_seed(0), data.mean, data.std)
    spectra = mode_spectra(c_bar, a_bar - c_bar)
    eta = np.sort(mode_thresholds(np.clip(spectra["lam"], 1e-12, None), np.clip(spectra["nu"], 0, None)))[::-1]
    a_max = float(np.linalg.eigvalsh(a_bar)[-1])
    for weight_decay, expected in ((float(np.sqrt(eta[1] * eta[2])), 2), (float(3 * eta[0]), 0)):
        config = _config(ema=0.0, lr=0.005, lr_scaling="none", lr_schedule="constant", warmup_epochs=0.0, epochs=20,
                         weight_decay=weight_decay, batch_size=64, linear_dim=8)
        run = tmp_path / f"wd-{weight_decay:g}"
        train(config, run, dataset=data)
        method, _ = load_method(run)
        sv = torch.linalg.svdvals(method.backbone.W.weight.detach().double()).numpy()
        assert surviving_count(sv, weight_decay, a_max) == expected, (weight_decay, sv[:4])


def test_the_collapse_map_scans_the_l2_loss_under_its_own_name_and_protocol(capsys):
    from deep.collapse_map import grid

    l2, cosine = grid.Setting("linear", 1.0, 0.9, "l2"), grid.Setting("linear", 1.0, 0.9)
    assert (l2.name, cosine.name) == ("linear-alpha1-ema0.9-l2", "linear-alpha1-ema0.9")
    configs = [grid.probe_config(s, 1e-3, 0, preset="cpu", dataset="cifar10") for s in (l2, cosine)]
    assert configs[0]["loss"] == "l2" and configs[1]["loss"] == "cosine"
    assert protocol(configs[0]) != protocol(configs[1])
    assert main(["collapse-map", "--loss", "l2", "--out", "/nonexistent/never-made"]) == 2
    assert "scan the l2 loss with --scan N" in capsys.readouterr().err


def test_a_scan_at_another_lr_is_its_own_setting_and_protocol_and_needs_scan(capsys):
    from deep.collapse_map import grid

    slow = grid.Setting("linear", 1.0, 0.9, "l2", 0.002)
    assert slow.name == "linear-alpha1-ema0.9-l2-lr0.002"
    config = grid.probe_config(slow, 1e-3, 0, preset="cpu", dataset="cifar10")
    assert config["lr"] == 0.002
    assert protocol(config) != protocol(grid.probe_config(grid.Setting("linear", 1.0, 0.9, "l2"), 1e-3, 0,
                                                           preset="cpu", dataset="cifar10"))
    assert main(["collapse-map", "--lr", "0.002", "--out", "/nonexistent/never-made"]) == 2
    assert "use it with --scan N" in capsys.readouterr().err


@pytest.mark.parametrize("ema, alpha_p", [(0.0, 1.0), (0.9, 3.0)])
def test_ten_engine_steps_on_one_fixed_batch_are_the_population_recursion_on_its_moments(ema, alpha_p):
    """With the same two views at every step, the batch loss is the expected loss of that sample, so the engine
    (build_optimizer's groups, train_step, the EMA) must follow `population_sgd` with the sample's Ā, C̄
    exactly (float32 engine against float64 recursion: 1e-4 relative)."""
    from deep.train import autocast_factory, build_optimizer, train_step
    from linear_dynamics.population import population_sgd

    torch.manual_seed(0)
    config = _config(ema=ema, predictor_lr_mult=alpha_p, lr=0.01, weight_decay=0.05, lr_scaling="none")
    method = build_training_method(config, 3, 10)
    optimizer = build_optimizer(method, config)
    w0, wp0 = (m.weight.detach().double().numpy().copy() for m in (method.backbone.W, method.predictor))
    gen = torch.Generator().manual_seed(2)
    views = [torch.randn(16, 3, 32, 32, generator=gen) for _ in range(2)]
    x1, x2 = (reduce(v).double().numpy() for v in views)
    a_bar = 0.5 * (x1.T @ x1 + x2.T @ x2) / len(x1)
    c_bar = 0.5 * (x2.T @ x1 + x1.T @ x2) / len(x1)
    for step in range(10):
        train_step(method, optimizer, views, torch.zeros(16, dtype=torch.long), step, 0.01,
                   autocast_factory("cpu", "fp32"))
    expected = population_sgd(a_bar, c_bar, w0, wp0, lr=0.01, momentum=config["momentum"], weight_decay=0.05,
                              alpha_p=alpha_p, ema=ema, steps=10)
    np.testing.assert_allclose(method.backbone.W.weight.detach().double().numpy(), expected["W"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(method.predictor.weight.detach().double().numpy(), expected["W_p"], rtol=1e-4,
                               atol=1e-6)
    if ema:
        np.testing.assert_allclose(method.target_backbone.W.weight.detach().double().numpy(), expected["W_a"],
                                   rtol=1e-4, atol=1e-6)


def test_the_ladder_continues_the_first_k_seeds_to_twice_the_length_and_resumes_without_training(tmp_path, capsys,
                                                                                                   monkeypatch):
    """`--check-seeds 2` of 3 seeds: the 2× rows are the first two seeds' (no third), each the same run
    continued; the same command again reads every row back. (The smoke preset: the synthetic set is smaller
    than the cpu preset's validation split.)"""
    import csv

    from deep.ladder import rungs

    monkeypatch.setattr(rungs, "PRESET", "smoke")
    argv = ["ladder", "--dataset", "synthetic", "--device", "cpu", "--out", str(tmp_path / "l"), "--epochs", "2",
            "--wds", "3", "--wd-range", "0.05", "50", "--seeds", "3", "--check-seeds", "2", "--alpha-p", "1",
            "--ema", "0", "--json"]
    assert main(argv) == 0
    capsys.readouterr()
    rows = list(csv.DictReader((tmp_path / "l" / "ladder.csv").open()))
    assert sorted({(r["seed"], r["epochs"]) for r in rows}) == [("0", "2"), ("0", "4"), ("1", "2"), ("1", "4"),
                                                                 ("2", "2")]
    assert len(rows) == 3 * 3 + 2 * 3
    before = (tmp_path / "l" / "ladder.csv").read_text()
    import deep.train

    monkeypatch.setattr(deep.train, "train", lambda *a, **k: pytest.fail("a ladder row was trained again"))
    assert main(argv) == 0 and (tmp_path / "l" / "ladder.csv").read_text() == before
    assert main(argv[:-1] + ["--check-seeds", "4"]) == 2
    assert "argument --check-seeds: at most --seeds (3)" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(rungs, "PRESET", "smoke")
    other = list(argv)
    other[other.index("--out") + 1] = str(tmp_path / "m")
    del other[other.index("--check-seeds"):other.index("--check-seeds") + 2]
    assert main(other + ["--seeds", "1", "--no-check"]) == 0  # no 2× run, where the default would continue seed 0
    capsys.readouterr()
    assert {r["epochs"] for r in csv.DictReader((tmp_path / "m" / "ladder.csv").open())} == {"2"}


def test_a_rung_point_runs_at_the_documented_lr_and_its_protocol_sees_the_outputs():
    """lr 0.005 (the module docstring: the population recursion blows up at 0.04), constant; and two runs
    differing only in W's outputs are different protocols, so neither is reused for the other."""
    from deep.schedule import peak_lr

    config = rungs.point_config("r1", rungs.Setting(1.0, 0.0), 0.1, 0, 4, dataset="synthetic")
    assert config["lr"] == peak_lr(config) == 0.005
    assert protocol(config) != protocol({**config, "linear_dim": 16})


def test_a_population_recursion_that_blew_up_has_no_count():
    """Singular values with a NaN (the recursion diverged): NaN, not a count or an error; finite ones are
    counted against the floor 0.1·η/a_max = 0.01 (1.0² and 0.2² above it, 0.05² = 0.0025 below)."""
    import math

    from deep.ladder.runner import _count

    assert math.isnan(_count(np.array([np.nan, 1.0]), 0.1, 1.0))
    assert _count(np.array([1.0, 0.2, 0.05]), 0.1, 1.0) == 2.0


def test_a_ladder_point_reads_its_own_run_and_gives_the_recursion_the_run_s_settings(tmp_path, monkeypatch):
    """One point of R1 (smoke preset, 3 epochs, W with 2 outputs, α_p 3, SimSiam): the moments come from a
    class-balanced sample of the class-sorted training split; the recursion gets the run's lr, momentum, α_p,
    EMA, its initial W and W_p, its step count and a record at the half-length step (epoch 1 of 3, read off
    the run's own log); the staircase is capped at W's 2 outputs (uncapped it is larger at this weight
    decay); and `converged` is the half and full counts agreeing (here W's spectrum, stubbed, keeps 2 at
    half length and 1 at the end, so not converged, and moved by 0.8/1.0 − 1)."""
    import json

    import linear_dynamics.population as population
    from deep import view_covariance
    from deep.evaluate.sample import balanced_sample
    from deep.ladder import runner
    from deep.train import training_splits
    from deep.view_covariance import mode_spectra
    from linear_dynamics.modes import surviving_modes

    torch.set_num_threads(1)
    monkeypatch.setattr(rungs, "PRESET", "smoke")
    monkeypatch.setitem(rungs.RUNGS, "r1", {**rungs.RUNGS["r1"], "linear_dim": 2})
    monkeypatch.setattr(runner, "MOMENT_IMAGES", 40)
    setting, weight_decay = rungs.Setting(3.0, 0.0), 1e-6
    config = rungs.point_config("r1", setting, weight_decay, 1, 3, dataset="synthetic")
    seen = {}
    real_moments, real_sgd = view_covariance.view_moments, population.population_sgd

    def moments_spy(images, *args, **kwargs):
        seen["images"] = images
        return real_moments(images, *args, **kwargs)

    def sgd_spy(*args, **kwargs):
        seen["sgd"] = (args, kwargs)
        return real_sgd(*args, **kwargs)

    monkeypatch.setattr(view_covariance, "view_moments", moments_spy)
    monkeypatch.setattr(population, "population_sgd", sgd_spy)
    a_bar, c_bar = runner.moments(config, tmp_path, seed=1)
    train_split = training_splits(runner.dataset(config), config).train
    assert len(set(train_split.labels[:40].tolist())) <= 2  # the first 40 would be one or two classes
    expected = balanced_sample(train_split.images, train_split.labels, 40, 1)
    assert torch.equal(seen["images"], expected)
    where = [int(torch.nonzero((train_split.images.flatten(1) == im.flatten()).all(1))[0]) for im in seen["images"]]
    assert np.bincount(train_split.labels[where].numpy(), minlength=10).tolist() == [4] * 10

    spectra = iter([np.array([1.0, 0.5]), np.array([0.8, 1e-15])])  # σ² at half length, then at the end
    monkeypatch.setattr(runner, "spectrum", lambda run: next(spectra))
    row = runner.run_point("r1", setting, weight_decay, 1, 3, schedule=3, out=tmp_path, a_bar=a_bar, c_bar=c_bar,
                           dataset_name="synthetic", data_root=None, device="cpu", ladder=tmp_path / "ladder.csv",
                           known={})
    (run,) = (tmp_path / "runs").glob("r1/*/seed-1/wd-1e-06")
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = {line["epoch"]: line["step"] for line in log if line["kind"] == "epoch"}
    (lr,) = {line["lr"] for line in log if line["kind"] == "step"}  # constant, as the engine ran it
    (a_seen, c_seen, w0, wp0), kwargs = seen["sgd"]
    assert a_seen is a_bar and c_seen is c_bar
    assert (kwargs["alpha_p"], kwargs["ema"], kwargs["momentum"]) == (3.0, 0.0, config["momentum"])
    assert kwargs["lr"] == pytest.approx(lr, rel=1e-6) and row["lr"] == pytest.approx(lr, rel=1e-6)
    assert kwargs["weight_decay"] == weight_decay and row["steps"] == kwargs["steps"] == steps[3]
    assert kwargs["record"] == (steps[1], steps[3]) and steps[1] < steps[3] // 2  # epoch 1 of 3, not half the steps
    np.testing.assert_array_equal(w0, initial_weights(config, 3, 10)[0])
    np.testing.assert_array_equal(wp0, initial_weights(config, 3, 10)[1])
    assert w0.shape == (2, 192)

    spectra = mode_spectra(c_bar, a_bar - c_bar)
    lam, nu = np.clip(spectra["lam"], 1e-12, None), np.clip(spectra["nu"], 0, None)
    assert surviving_modes(weight_decay, lam, nu) > 2 and row["staircase"] == 2
    assert (row["modes_half"], row["modes"], row["converged"]) == (2.0, 1.0, False)
    assert row["movement"] == pytest.approx(0.2)
