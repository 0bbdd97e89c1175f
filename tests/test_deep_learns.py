"""Training learns: BYOL and MoCo, trained by `deep.train.train` for 300 steps on data where raw pixels
fail (tests/oriented_textures.py: 4 orientation classes of random-frequency noise textures), lower
their loss and end with a kNN accuracy well above both the untrained network's and raw pixels'.

The untrained network and raw pixels are the negative controls: the same kNN (k = 20, τ = 0.1,
train bank → test set) must stay low on them. A step that trains the wrong thing (no optimizer
step, a target pulled the wrong way, a missing stop-gradient) ends near the untrained network.
About 25 s of one CPU thread per method.
"""
import contextlib
import json

import pytest
import torch

from deep import augment
from deep import config as config_module
from deep.knn import extract_features, knn_accuracy
from deep.methods import build_method
from deep.train import load_method, train
from oriented_textures import oriented_textures

K, TEMPERATURE = 20, 0.1
SETTINGS = {  # 25 steps an epoch; lr is the optimizer's own at batch 32 (lr_scaling none, the default)
    "common": {"seed": 0, "width": 4, "batch_size": 32, "epochs": 12, "warmup_epochs": 1.0, "lr": 0.5,
               "precision": "fp32", "channels_last": False, "proj_hidden": 128, "proj_dim": 64, "knn_k": K,
               "knn_temperature": TEMPERATURE, "log_every": 1000},
    "byol": {"pred_hidden": 128, "ema": 0.9, "lr": 1.0},
    "moco": {"ema": 0.9, "temperature": 0.2, "queue_size": 256, "bn_splits": 2},
}


@pytest.fixture(scope="module")
def data():
    return oriented_textures(seed=0)


def _knn(features_of, data) -> float:
    """kNN top-1 (%) of the test set against the training set, both as `features_of` maps them."""
    return knn_accuracy(features_of(data.test.images), data.test.labels, features_of(data.train.images),
                        data.train.labels, len(data.classes), k=K, temperature=TEMPERATURE)[0]


def _backbone_features(backbone, data):
    def features(images):
        return extract_features(backbone, images, lambda x: augment.normalize(x, data.mean, data.std), 512,
                                contextlib.nullcontext)
    return features


def test_raw_pixels_are_near_chance(data):
    """The data set's point: 4 classes (chance 25%), and pixels alone do not tell them apart."""
    raw = _knn(lambda images: augment.normalize(images, data.mean, data.std).flatten(1), data)
    assert raw < 55


@pytest.mark.parametrize("method", ["byol", "moco"])
def test_training_learns_a_representation_raw_pixels_and_the_untrained_network_lack(method, data, tmp_path):
    config = config_module.resolve(method, "synthetic", overrides={**SETTINGS["common"], **SETTINGS[method]})
    raw = _knn(lambda images: augment.normalize(images, data.mean, data.std).flatten(1), data)
    torch.manual_seed(config["seed"])  # an untrained network as `train` builds it
    untrained = _knn(_backbone_features(build_method(config, 3, len(data.classes)).backbone, data), data)

    train(config, tmp_path / "run", dataset=data)

    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [record["loss"] for record in epochs if record["kind"] == "epoch"]
    trained = _knn(_backbone_features(load_method(tmp_path / "run")[0].backbone, data), data)
    assert len(losses) == config["epochs"]
    assert max(losses[-3:]) < losses[0] - 0.1, f"{method}: the loss did not fall: {losses}"
    assert untrained < 50
    assert trained > untrained + 20 and trained > raw + 10, \
        f"{method}: kNN top-1 trained {trained:.1f}%, untrained {untrained:.1f}%, raw pixels {raw:.1f}%"
