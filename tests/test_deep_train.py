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
from deep.train import batch_views, cosine_lr, load_method, snapshot_steps, train

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
