"""End to end on the synthetic set: every method trains, writes the run directory of the contract,
and an interrupted run resumes to exactly the metrics of an uninterrupted one."""
import json
import math

import numpy as np
import pytest
import torch

from deep import augment, distributed
from deep import config as config_module
from deep.data import load_dataset
from deep.methods import METHODS
from deep.schedule import cosine_lr
from deep.train import batch_views, load_method, snapshot_steps, train

EPOCH_KEYS = {"kind", "epoch", "step", "loss", "knn_top1", "knn_top5", "std", "effective_rank", "seconds"}
STEP_KEYS = {"kind", "step", "epoch", "loss", "lr", "img_per_s"}
SUMMARY_KEYS = {"method", "epochs", "knn_top1_last", "knn_top1_best", "best_epoch", "seconds", "img_per_s", "device"}
TIMING_KEYS = {"seconds", "img_per_s"}


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def _config(method, **overrides):
    return config_module.resolve(method, "synthetic", preset="smoke", overrides=overrides)


def _lines(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero():
    peak, total, warmup = 0.5, 100, 10
    lrs = [cosine_lr(s, total, warmup, peak) for s in range(total)]
    assert lrs[0] == pytest.approx(peak / warmup) and lrs[warmup - 1] == pytest.approx(peak)
    assert np.allclose(np.diff(lrs[:warmup]), peak / warmup)
    assert lrs[warmup] == pytest.approx(peak)
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))
    assert cosine_lr(total, total, warmup, peak) == pytest.approx(0.0)
    assert cosine_lr((total + warmup) // 2, total, warmup, peak) == pytest.approx(peak / 2)


def test_snapshot_steps_are_evenly_spaced_from_zero_to_the_end():
    assert snapshot_steps(100, 5) == [0, 25, 50, 75, 100]
    assert snapshot_steps(30, 3) == [0, 15, 30]
    assert snapshot_steps(100, 0) == []


def test_process_shards_of_a_global_batch_are_the_rows_of_the_single_process_batch(monkeypatch, synthetic):
    def views(rank, world):
        monkeypatch.setattr(distributed, "world_size", lambda: world)
        monkeypatch.setattr(distributed, "rank", lambda: rank)
        generator = torch.Generator().manual_seed(0)
        return batch_views(synthetic.train, torch.arange(40, 48), augment.BYOL_VIEWS, generator, synthetic.mean,
                           synthetic.std, torch.contiguous_format)

    (whole, labels), (first, first_labels), (second, second_labels) = views(0, 1), views(0, 2), views(1, 2)
    assert len(first[0]) == 4 and not torch.equal(whole[0], whole[1])  # two different views
    for view in range(2):
        assert torch.equal(torch.cat([first[view], second[view]]), whole[view])
    assert torch.equal(torch.cat([first_labels, second_labels]), labels)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_and_writes_the_run_directory(method, synthetic, tmp_path):
    run = tmp_path / method
    summary = train(_config(method), run, dataset=synthetic)
    lines = _lines(run)
    epochs = [r for r in lines if r["kind"] == "epoch"]
    steps = [r for r in lines if r["kind"] == "step"]
    assert [r["epoch"] for r in epochs] == [1, 2] and epochs[-1]["step"] == 2 * (500 // 32)
    assert all(EPOCH_KEYS <= set(r) for r in epochs) and all(STEP_KEYS <= set(r) for r in steps)
    assert len(steps) == 30 and all(math.isfinite(r["loss"]) for r in lines)
    assert all(0 <= r["knn_top1"] <= r["knn_top5"] <= 100 for r in epochs)
    # the synthetic classes are easy: anything that learns at all beats chance (10%) by far
    assert max(r["knn_top1"] for r in epochs) > 30
    assert json.loads((run / "config.json").read_text())["method"] == method
    written = json.loads((run / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(written) and written == summary
    assert summary["knn_top1_last"] == epochs[-1]["knn_top1"]
    assert summary["knn_top1_best"] == max(r["knn_top1"] for r in epochs)
    backbone_method, info = load_method(run)
    assert info["num_classes"] == 10 and backbone_method.backbone.output_dim == 32


def test_one_channel_28_pixel_images_train_like_fashion_mnist(synthetic, tmp_path):
    from deep.data import Dataset, ImageSet

    def gray(split):
        return ImageSet(split.images[:, :1, 2:30, 2:30].contiguous(), split.labels)

    small = Dataset("fashion-mnist", gray(synthetic.train), gray(synthetic.test), synthetic.classes,
                    synthetic.mean[:1], synthetic.std[:1])
    config = config_module.resolve("simsiam", "fashion-mnist", preset="smoke", overrides={"epochs": 1})
    summary = train(config, tmp_path / "gray", dataset=small)
    method, info = load_method(tmp_path / "gray")
    assert info["in_channels"] == 1 and method.backbone.stem[0].in_channels == 1
    assert summary["knn_top1_last"] > 10


def test_predictor_snapshots_hold_W_p_and_F(synthetic, tmp_path):
    run = tmp_path / "linear"
    train(_config("byol", predictor="linear", snapshots=3), run, dataset=synthetic)
    files = sorted((run / "snapshots").iterdir())
    assert [f.name for f in files] == ["step_0000000.npz", "step_0000015.npz", "step_0000030.npz"]
    first, last = np.load(files[0]), np.load(files[-1])
    assert first["W_p"].shape == first["F"].shape == (16, 16)
    assert (int(first["step"]), int(first["epoch"]), int(last["step"]), int(last["epoch"])) == (0, 0, 30, 2)
    np.testing.assert_allclose(last["F"], last["F"].T, atol=1e-6)
    assert np.linalg.eigvalsh(last["F"]).min() > -1e-5  # an uncentred correlation is PSD
    method, _ = load_method(run)
    np.testing.assert_allclose(last["W_p"], method.predictor.weight.detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("method", ["moco", "directpred"])
def test_resumed_run_ends_with_the_same_metrics(method, synthetic, tmp_path):
    config = _config(method)
    whole = train(config, tmp_path / "whole", dataset=synthetic)
    partial = train(config, tmp_path / "split", dataset=synthetic, max_epochs=1)
    assert partial["finished"] is False and not (tmp_path / "split" / "summary.json").exists()
    resumed = train(config, tmp_path / "split", resume=True, dataset=synthetic)

    def untimed(records):
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]

    assert untimed(_lines(tmp_path / "split")) == untimed(_lines(tmp_path / "whole"))
    assert {k: v for k, v in resumed.items() if k not in TIMING_KEYS} == \
        {k: v for k, v in whole.items() if k not in TIMING_KEYS}
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["method"]
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["method"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_written_before_train_fraction_existed_still_resumes(synthetic, tmp_path):
    """config.json and checkpoint.pt without the key read as train_fraction = 1, the value they ran with."""
    from deep import rundir

    config = _config("byol")
    train(config, tmp_path / "old", dataset=synthetic, max_epochs=1)
    old = {k: v for k, v in config.items() if k != "train_fraction"}
    (tmp_path / "old" / rundir.CONFIG).write_text(json.dumps(old))
    state = torch.load(rundir.checkpoint_path(tmp_path / "old"), weights_only=False)
    state["config"] = {k: v for k, v in state["config"].items() if k != "train_fraction"}
    torch.save(state, rundir.checkpoint_path(tmp_path / "old"))
    read = rundir.read_config(tmp_path / "old")
    assert read["train_fraction"] == 1.0
    assert train(read, tmp_path / "old", resume=True, dataset=synthetic)["finished"] is not False


# ------------------------------------------------------------------ validation monitor, test once

def test_holdout_is_class_balanced_disjoint_and_seeded(synthetic):
    from deep.evaluate.labels import holdout

    rest, held = holdout(synthetic.train, 100, seed=0)
    assert torch.bincount(held.labels).tolist() == [10] * 10  # 50 per class in the synthetic train split
    assert len(rest) == len(synthetic.train) - 100
    rows = {tuple(x.flatten().tolist()) for x in synthetic.train.images}
    rest_rows = {tuple(x.flatten().tolist()) for x in rest.images}
    held_rows = {tuple(x.flatten().tolist()) for x in held.images}
    assert not rest_rows & held_rows and rest_rows | held_rows == rows
    assert torch.equal(holdout(synthetic.train, 100, seed=0)[1].images, held.images)
    assert not torch.equal(holdout(synthetic.train, 100, seed=1)[1].images, held.images)
    with pytest.raises(ValueError, match="leaves some class without a validation image"):
        holdout(synthetic.train, 5, seed=0)


def test_val_split_monitors_validation_and_measures_the_test_set_once_at_the_end(synthetic, tmp_path):
    """With val_split the per-epoch kNN runs on held-out training images; the test set is measured
    once, after the last epoch, with the remaining training images as the bank (checked here against
    a kNN computed directly from the trained backbone)."""
    from deep.evaluate.labels import holdout
    from deep.knn import knn_accuracy

    config = _config("byol", val_split=100, precision="fp32")
    summary = train(config, tmp_path / "run", dataset=synthetic)
    epochs = [line for line in _lines(tmp_path / "run") if line["kind"] == "epoch"]
    assert [line["monitor"] for line in epochs] == ["validation"] * config["epochs"]
    assert ["test_knn_top1" in line for line in epochs] == [False] * (config["epochs"] - 1) + [True]
    assert summary["monitor"] == "validation" and summary["monitor_images"] == 100
    assert summary["test_knn_top1"] == epochs[-1]["test_knn_top1"]

    method, info = load_method(tmp_path / "run")
    bank_images, _ = holdout(synthetic.train, 100, seed=config["seed"])

    def features(x):
        with torch.no_grad():
            return method.backbone(augment.normalize(x, info["mean"], info["std"]))

    top1, _ = knn_accuracy(features(synthetic.test.images), synthetic.test.labels, features(bank_images.images),
                           bank_images.labels, 10, k=config["knn_k"], temperature=config["knn_temperature"])
    assert summary["test_knn_top1"] == pytest.approx(top1)


def test_train_fraction_trains_on_a_class_balanced_subset_disjoint_from_validation(synthetic):
    """train_fraction keeps a class-balanced share of the images left after the hold-out, the same
    for a seed and different for another; the monitor's validation images are untouched."""
    import numpy as np

    from deep.train import training_splits

    full = training_splits(synthetic, _config("byol", val_split=100))
    quarter = training_splits(synthetic, _config("byol", val_split=100, train_fraction=0.25))
    per_class = np.bincount(full.train.labels.numpy())
    assert np.array_equal(np.bincount(quarter.train.labels.numpy()), per_class // 4)  # balanced, by hand
    assert torch.equal(quarter.monitor.images, full.monitor.images)
    rows = lambda s: {tuple(x.flatten().tolist()) for x in s.images}  # noqa: E731
    assert rows(quarter.train) <= rows(full.train) and not rows(quarter.train) & rows(full.monitor)
    again = training_splits(synthetic, _config("byol", val_split=100, train_fraction=0.25))
    other = training_splits(synthetic, _config("byol", val_split=100, train_fraction=0.25, seed=1))
    assert torch.equal(again.train.images, quarter.train.images)
    assert not torch.equal(other.train.images, quarter.train.images)
    with pytest.raises(ValueError, match="train_fraction"):
        _config("byol", train_fraction=0)
    with pytest.raises(ValueError, match="train_fraction=0.01 keeps no training image of some class"):
        training_splits(synthetic, _config("byol", val_split=100, train_fraction=0.01))  # 40 per class → 0


def test_without_val_split_the_monitor_is_the_test_set(synthetic, tmp_path):
    summary = train(_config("byol"), tmp_path / "run", dataset=synthetic)
    assert summary["monitor"] == "test" and summary["test_knn_top1"] == summary["knn_top1_last"]


def test_supervised_trains_on_the_crop_flip_view(synthetic, tmp_path, monkeypatch):
    from deep.augment import AugmentConfig, CropFlip

    calls = {"crop_flip": 0, "ssl": 0}
    for cls, name in ((CropFlip, "crop_flip"), (AugmentConfig, "ssl")):
        original = cls.apply

        def counted(self, *args, _original=original, _name=name):
            calls[_name] += 1
            return _original(self, *args)
        monkeypatch.setattr(cls, "apply", counted)
    train(_config("supervised", epochs=1), tmp_path / "sup", dataset=synthetic)
    assert calls["crop_flip"] > 0 and calls["ssl"] == 0
    calls.update(crop_flip=0, ssl=0)
    train(_config("supervised", epochs=1, augmentation="ssl"), tmp_path / "sup-ssl", dataset=synthetic)
    assert calls["ssl"] > 0 and calls["crop_flip"] == 0


def test_progress_reaches_a_log_file(synthetic, tmp_path, capsys, monkeypatch):
    """Not a terminal (nohup, a cluster job): readable lines with loss and images/s, not a tqdm bar."""
    import deep.progress

    monkeypatch.setattr(deep.progress, "PROGRESS_SECONDS", 0.0)
    train(_config("byol", epochs=1, log_every=5), tmp_path / "run", dataset=synthetic)
    lines = [line for line in capsys.readouterr().err.splitlines() if " step " in line]
    assert len(lines) == (500 // 32) // 5
    assert all("loss" in line and "img/s" in line and "byol epoch 1/1" in line for line in lines)


# ------------------------------------------------------------------ TensorBoard

def test_tensorboard_events_hold_the_metrics_lines(synthetic, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(_config("byol", log_every=5), tmp_path / "run", dataset=synthetic, tensorboard=True)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    lines = _lines(tmp_path / "run")
    steps = [line for line in lines if line["kind"] == "step"]
    logged = events.Scalars("step/loss")
    assert [e.step for e in logged] == [line["step"] for line in steps]
    assert [e.value for e in logged] == pytest.approx([line["loss"] for line in steps], rel=1e-6)
    epochs = [line for line in lines if line["kind"] == "epoch"]
    for key in ("knn_top1", "std", "effective_rank", "loss"):
        assert [e.value for e in events.Scalars(f"epoch/{key}")] == pytest.approx([line[key] for line in epochs], rel=1e-6)
    assert [e.step for e in events.Scalars("epoch/knn_top1")] == [1, 2]


def test_tensorboard_without_the_package_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    import builtins

    from ssldyn.cli import main

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    status = main(["train", "--method", "byol", "--dataset", "synthetic", "--preset", "smoke", "--tensorboard",
                   "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err == ["ssldyn train: error: --tensorboard needs the tensorboard package; install it with "
                                   "pip install -e '.[tensorboard]' (or pip install tensorboard)"]
    assert not (tmp_path / "run").exists()


def test_losses_checked_in_a_batch_name_the_first_non_finite_step():
    from deep.train import NonFiniteLoss, checked_losses

    pending = [(7, torch.tensor(0.5)), (8, torch.tensor(-0.25))]
    assert checked_losses(pending) == [0.5, -0.25] and checked_losses([]) == []
    with pytest.raises(NonFiniteLoss, match="loss is nan at step 9"):
        checked_losses(pending + [(9, torch.tensor(float("nan"))), (10, torch.tensor(float("inf")))])


# ------------------------------------------------------------------ resuming

def test_a_checkpoint_written_on_another_device_resumes_with_a_note(synthetic, tmp_path, capsys):
    """A CUDA run's generator state (Philox: 8-byte seed + 8-byte offset) cannot seed the CPU's
    Mersenne Twister: the run goes on from a generator seeded with (seed, epoch), says so, and does
    so reproducibly."""
    config = _config("byol")
    train(config, tmp_path / "cuda", dataset=synthetic, max_epochs=1)
    path = tmp_path / "cuda" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    state["config"] = dict(state["config"], device="cuda")
    state.update(generator=torch.zeros(16, dtype=torch.uint8), cuda_rng=torch.zeros(16, dtype=torch.uint8))
    torch.save(state, path)
    run_json = tmp_path / "cuda" / "config.json"
    run_json.write_text(json.dumps(dict(json.loads(run_json.read_text()), device="cuda")))
    (tmp_path / "copy").mkdir()
    for name in ("checkpoint.pt", "config.json", "metrics.jsonl"):
        (tmp_path / "copy" / name).write_bytes((tmp_path / "cuda" / name).read_bytes())
    capsys.readouterr()

    summary = train(config, tmp_path / "cuda", resume=True, dataset=synthetic)
    note = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert summary["finished"] and summary["epochs"] == 2
    assert len(note) == 1 and "written on cuda" in note[0] and "cannot continue on cpu" in note[0]
    train(config, tmp_path / "copy", resume=True, dataset=synthetic)

    def untimed(records):
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]

    assert untimed(_lines(tmp_path / "copy")) == untimed(_lines(tmp_path / "cuda"))


def test_tensorboard_holds_every_step_once_after_a_resume(synthetic, tmp_path):
    """A run killed in epoch 2 had logged steps past its checkpoint; the resumed run logs them again
    and TensorBoard shows each step once, with the values of metrics.jsonl."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    config, run = _config("byol", log_every=5), tmp_path / "run"
    train(config, run, dataset=synthetic, max_epochs=1, tensorboard=True)
    killed = SummaryWriter(log_dir=str(run / "tensorboard"))  # what the killed call wrote after the checkpoint
    for step in (20, 25):
        killed.add_scalar("step/loss", 99.0, step)
    killed.close()
    with open(run / "metrics.jsonl", "a") as file:
        file.write(json.dumps({"kind": "step", "step": 20, "epoch": 2, "loss": 99.0}) + "\n")

    train(config, run, resume=True, dataset=synthetic, tensorboard=True)
    events = EventAccumulator(str(run / "tensorboard"), purge_orphaned_data=False)  # every event written
    events.Reload()
    lines = _lines(run)
    steps = [line for line in lines if line["kind"] == "step"]
    assert [line["step"] for line in steps] == [5, 10, 15, 20, 25, 30]
    logged = events.Scalars("step/loss")
    assert [e.step for e in logged] == [5, 10, 15, 20, 25, 30]
    assert [e.value for e in logged] == pytest.approx([line["loss"] for line in steps], rel=1e-6)
    assert [e.step for e in events.Scalars("epoch/knn_top1")] == [1, 2]


# ------------------------------------------------------------------ what train() hands the optimizer

@pytest.mark.parametrize("overrides,expected", [
    # smoke: lr 0.06·32/256 (linear scaling), 15 steps an epoch (500 // 32), 30 in all, a warm-up of
    # round(0.5·15) = 8 steps from peak/8 to peak, then peak·½(1 + cos(π(s − 8)/22)) every step
    ({}, lambda s: 0.0075 * (s + 1) / 8 if s < 8 else 0.0075 * 0.5 * (1 + math.cos(math.pi * (s - 8) / 22))),
    # the thesis' schedule: no scaling, no warm-up, ½(1 + cos(π e/2)) held through epoch e: 0.06, then 0.03
    ({"lr_scaling": "none", "lr_schedule": "cosine_epoch", "warmup_epochs": 0.0},
     lambda s: 0.06 if s < 15 else 0.03),
])
def test_the_optimizer_steps_with_the_scheduled_lr(synthetic, tmp_path, monkeypatch, overrides, expected):
    seen = []

    class RecordingSGD(torch.optim.SGD):
        def step(self, closure=None):
            seen.append([(group["name"], group["lr"]) for group in self.param_groups])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "SGD", RecordingSGD)
    train(_config("byol", predictor_lr_mult=10.0, **overrides), tmp_path / "run", dataset=synthetic)
    assert len(seen) == 30 and {name.split()[0] for name, _ in seen[0]} == {"network", "predictor"}
    for step, groups in enumerate(seen):
        for name, lr in groups:  # the predictor's groups at 10× the schedule
            assert lr == pytest.approx((10 if name.startswith("predictor") else 1) * expected(step), rel=1e-12)


def test_each_view_of_each_image_has_its_own_crop(synthetic):
    """Eight copies of one image, flip and colour off, so that only the crop is random: all 16 outputs
    (8 images × 2 views) differ, which they would not if the crop were drawn once per batch or
    shared by the two views of an image."""
    from deep.data import ImageSet

    copies = ImageSet(synthetic.train.images[:1].repeat(8, 1, 1, 1).contiguous(), torch.zeros(8, dtype=torch.int64))
    crop_only = augment.AugmentConfig(flip_p=0.0, jitter_p=0.0, gray_p=0.0)
    generator = torch.Generator().manual_seed(0)
    views, _ = batch_views(copies, torch.arange(8), (crop_only, crop_only), generator, synthetic.mean, synthetic.std,
                           torch.contiguous_format)
    outputs = torch.cat(views)  # view 0 of images 0..7, then view 1
    same = [(i, j) for i in range(16) for j in range(i + 1, 16) if torch.equal(outputs[i], outputs[j])]
    assert same == []


def test_a_run_leaves_torchs_thread_count_as_it_found_it(synthetic, tmp_path, monkeypatch):
    """Runs one after another in one process (a collapse-map scan's probes): a run whose governor ended at
    1 thread, or one given a fixed count, leaves torch at the count it found, so the next run's governor
    starts from the full count again (before, every run after one that ended at 1 thread stayed at 1)."""
    import torch

    from deep import threads
    from deep.train import train

    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "others_running", lambda: 5)  # strangers on every core: the governor drops to 1
    seen = []
    real_set = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (seen.append(n), real_set(n)))
    before = torch.get_num_threads()
    try:
        real_set(2)
        seen.clear()
        train(_config("byol"), tmp_path / "governed", dataset=synthetic, max_epochs=1)
        assert 1 in seen  # the governor did drop
        assert torch.get_num_threads() == 2
        train(_config("byol"), tmp_path / "fixed", dataset=synthetic, max_epochs=1, threads=1)
        assert torch.get_num_threads() == 2
    finally:
        real_set(before)
