"""The linear probe on feature tensors (deep.evaluate.linear_probe; thesis Tables 4.1–4.2)."""
import math

import pytest
import torch

from deep.evaluate.linear_probe import THESIS_TABLE_4_1, fit_linear_probes, parse_sweep, sweep_markdown


def separable(n_per_class: int, classes: int = 10, dim: int = 32, seed: int = 0):
    """Features whose class is the coordinate with a large positive entry: linearly separable."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    features = 0.3 * torch.randn(len(labels), dim, generator=generator)
    features[torch.arange(len(labels)), labels] += 3.0
    return features, labels


def test_probe_reaches_full_accuracy_on_linearly_separable_features():
    train_x, train_y = separable(100)
    test_x, test_y = separable(30, seed=1)
    (result,) = fit_linear_probes(train_x, train_y, test_x, test_y, 10, lrs=(0.3,), epochs=10)
    assert result.top1 == 100.0 and result.top5 == 100.0
    assert len(result.epoch_losses) == 10 and result.epoch_losses[-1] < result.epoch_losses[0]


def test_probe_is_at_chance_on_features_without_information():
    train_y = torch.arange(10).repeat_interleave(50)
    (result,) = fit_linear_probes(torch.ones(500, 8), train_y, torch.ones(200, 8),
                                  torch.arange(10).repeat_interleave(20), 10, lrs=(0.3,), epochs=3)
    assert result.top1 == pytest.approx(10.0)  # every test image gets the same class


def test_a_sweep_trains_each_rate_exactly_as_alone():
    train_x, train_y = separable(20)
    test_x, test_y = separable(10, seed=1)
    train_x = train_x + 2.0 * torch.randn(train_x.shape, generator=torch.Generator().manual_seed(5))
    together = fit_linear_probes(train_x, train_y, test_x, test_y, 10, lrs=(0.05, 0.3), epochs=3, batch_size=32)
    alone = [fit_linear_probes(train_x, train_y, test_x, test_y, 10, lrs=(lr,), epochs=3, batch_size=32)[0]
             for lr in (0.05, 0.3)]
    assert together == alone
    assert together[0].epoch_losses != together[1].epoch_losses


def test_learning_rate_of_every_step_follows_the_cosine_schedule(monkeypatch):
    """Each step t of T = ceil(N/B)·epochs (the last, smaller batch kept) runs at
    lr·B/256·½(1 + cos(πt/T)), no warm-up, for every rate of a sweep: recorded as each SGD step is taken."""
    taken = {}

    class RecordingSGD(torch.optim.SGD):
        def step(self, closure=None):
            (group,) = self.param_groups
            taken.setdefault(id(self), []).append(group["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "SGD", RecordingSGD)
    train_x, train_y = separable(5)  # 50 images: batches of 16, 16, 16, 2
    fit_linear_probes(train_x, train_y, train_x, train_y, 10, lrs=(0.3, 0.1), epochs=3, batch_size=16)
    total = math.ceil(50 / 16) * 3
    assert len(taken) == 2
    for rate, recorded in zip((0.3, 0.1), taken.values()):
        expected = [rate * 16 / 256 * 0.5 * (1 + math.cos(math.pi * t / total)) for t in range(total)]
        assert recorded == pytest.approx(expected, rel=1e-12)


def test_feature_function_is_called_once_per_epoch_for_all_rates():
    train_x, train_y = separable(10)
    calls = []

    def features(epoch):
        calls.append(epoch)
        return train_x

    fit_linear_probes(features, train_y, train_x, train_y, 10, lrs=(0.1, 0.2, 0.3), epochs=4, batch_size=16)
    assert calls == [0, 1, 2, 3]


@pytest.mark.parametrize("kwargs", [{"lrs": (-0.1,)}, {"lrs": ()}, {"epochs": 0}, {"batch_size": 0},
                                    {"weight_decay": -1.0}])
def test_bad_settings_are_refused(kwargs):
    x, y = separable(2)
    with pytest.raises(ValueError):
        fit_linear_probes(x, y, x, y, 10, **{"lrs": (0.3,), "epochs": 1, **kwargs})


def test_parse_sweep_expands_the_thesis_progression():
    assert parse_sweep("0.05,0.1,...,0.35") == tuple(THESIS_TABLE_4_1)
    assert parse_sweep("0.3, 0.1") == (0.3, 0.1)


@pytest.mark.parametrize("text", ["0.1,-0.2", "0.1,,0.2", "a,b", "0.05,0.1,...,0.33", "0.1,0.1", "0.1,...,0.3",
                                  "0.2,0.1,...,0.5", "nan", "0,0.1"])
def test_parse_sweep_rejects_bad_lists(text):
    with pytest.raises(ValueError, match="--sweep"):
        parse_sweep(text)


def test_sweep_markdown_has_table_4_1_layout():
    text = sweep_markdown((0.1, 0.3, 0.5), (80.0, 81.25, 79.5), epochs=10)
    lines = text.splitlines()
    assert lines[0] == "| Learning rate | 0.1 | 0.3 | 0.5 |"
    assert lines[2] == "| Top-1, ours (final epoch of 10) | 80.00 | 81.25 | 79.50 |"
    assert lines[3].endswith("| 85.48 | 85.55 | – |")
