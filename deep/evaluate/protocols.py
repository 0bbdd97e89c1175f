"""The evaluation protocols on a loaded run, each returning the JSON record `ssldyn eval` saves.

Every record carries the provenance `ssldyn table` prints beside the number: the run's method,
preset, width, epochs trained, the data source, and the protocol's own settings; accuracies are
test top-1/top-5 in percent after the protocol's FINAL epoch (`"reported"` says so).
"""
import time

import torch

from deep.augment import normalize
from deep.evaluate.accuracy import classifier_accuracy
from deep.evaluate.features import LINEAR_EVAL_VIEW, frozen_features
from deep.evaluate.finetune import finetune, finetune_config
from deep.evaluate.labels import percent_label
from deep.evaluate.linear_probe import fit_linear_probes
from deep.evaluate.runs import data_source
from deep.knn import knn_accuracy

FINAL_EPOCH = "test accuracy after the final epoch (not the best epoch)"


def provenance(trained, data_root: str | None = None) -> dict:
    """What a number depends on besides its protocol: the run, its training, the data."""
    config = trained.config
    return {"run": str(trained.path), "method": config["method"], "preset": config["preset"],
            "width": config["width"], "epochs_trained": trained.epochs_trained, "epochs_total": config["epochs"],
            "data": data_source(config, data_root), "device": trained.device}


def knn_result(trained, data, *, k: int, temperature: float, data_root: str | None = None) -> dict:
    """Weighted kNN (thesis Fig. 4.4) on clean features: bank = training split, queries = test split."""
    if k > len(data.train.labels):
        raise ValueError(f"--k {k}: more neighbours than the {len(data.train.labels)} training images in the bank; "
                         f"use --k {len(data.train.labels)} or fewer")
    start = time.perf_counter()
    mean, std = trained.info["mean"], trained.info["std"]
    bank = frozen_features(trained, data.train.images, mean, std)
    queries = frozen_features(trained, data.test.images, mean, std)
    top1, top5 = knn_accuracy(queries, data.test.labels, bank, data.train.labels, trained.info["num_classes"],
                              k=k, temperature=temperature)
    return {"protocol": "knn", **provenance(trained, data_root), "k": k, "temperature": temperature,
            "bank": "clean training images", "top1": top1, "top5": top5,
            "seconds": time.perf_counter() - start}


def linear_result(trained, data, *, lrs, epochs: int, batch_size: int, weight_decay: float, augment: bool,
                  seed: int, data_root: str | None = None) -> dict:
    """Linear probes at each learning rate in `lrs` on one set of frozen features (Tables 4.1–4.2).

    Without augmentation the training features are computed once; with it each epoch draws a new view
    of every image. Either way every rate trains on the same features (`fit_linear_probes`).
    """
    start = time.perf_counter()
    mean, std = trained.info["mean"], trained.info["std"]
    test_features = frozen_features(trained, data.test.images, mean, std)
    if augment:
        generator = torch.Generator(device=trained.device).manual_seed(seed)

        def train_features(epoch):  # called once per epoch, in order: each epoch continues the stream
            return frozen_features(trained, data.train.images, mean, std, view=LINEAR_EVAL_VIEW, generator=generator)
    else:
        train_features = frozen_features(trained, data.train.images, mean, std)
    results = fit_linear_probes(train_features, data.train.labels, test_features, data.test.labels,
                                trained.info["num_classes"], lrs=lrs, epochs=epochs, batch_size=batch_size,
                                weight_decay=weight_decay, seed=seed)
    probes = [{"lr": lr, "top1": r.top1, "top5": r.top5, "epoch_losses": list(r.epoch_losses)}
              for lr, r in zip(lrs, results)]
    view = ("random resized crop (0.08-1) + flip, a new view each epoch" if augment
            else "none (clean features computed once)")
    return {"protocol": "linear", **provenance(trained, data_root), "epochs": epochs, "batch_size": batch_size,
            "optimizer": "SGD momentum 0.9, cosine decay to 0, lr per 256 images", "weight_decay": weight_decay,
            "augmentation": view, "seed": seed, "reported": FINAL_EPOCH, "probes": probes,
            "seconds": time.perf_counter() - start}


AUGMENTATION_TEXT = {"crop_flip": "pad 4, random crop, horizontal flip (the supervised CIFAR recipe)",
                     "ssl": "the self-supervised view (one view)"}


def finetune_result(trained, data, *, labels: float, epochs: int, lr: float, batch_size: int,
                    weight_decay: float, seed: int, data_root: str | None = None, progress: bool = True,
                    augmentation: str = "crop_flip") -> dict:
    """Fine-tuning of the whole network on a `labels` fraction of the training labels (Table 4.3)."""
    start = time.perf_counter()
    config = finetune_config(trained.config, labels=labels, epochs=epochs, lr=lr, batch_size=batch_size,
                             weight_decay=weight_decay, seed=seed, device=trained.device, augmentation=augmentation)
    result = finetune(trained, data, config, progress=progress)
    return {"protocol": "finetune", **provenance(trained, data_root), "labels": percent_label(labels),
            "labels_fraction": labels, "train_images": result.train_images, "epochs": epochs, "lr": lr,
            "batch_size": batch_size, "weight_decay": weight_decay, "seed": seed,
            "optimizer": "SGD momentum 0.9, cosine decay to 0 without warm-up, lr per 256 images",
            "augmentation": AUGMENTATION_TEXT[augmentation], "reported": FINAL_EPOCH,
            "top1": result.top1, "top5": result.top5, "epoch_losses": list(result.epoch_losses),
            "supervised_config": result.config, "seconds": time.perf_counter() - start}


def classifier_result(trained, data, *, data_root: str | None = None) -> dict:
    """A supervised run's own classifier on the clean test images (the baselines of Tables 4.2–4.3)."""
    if trained.config["method"] != "supervised":
        raise ValueError(f"{trained.path} is a {trained.config['method']} run: only supervised runs have a "
                         "classifier; evaluate it with `ssldyn eval linear` or `ssldyn eval finetune`")
    start = time.perf_counter()
    mean, std = trained.info["mean"], trained.info["std"]
    top1, top5 = classifier_accuracy(trained.backbone, trained.method.classifier, data.test.images,
                                     data.test.labels, lambda x: normalize(x, mean, std),
                                     trained.autocast, trained.memory_format)
    labels = trained.config["labels"]
    return {"protocol": "classifier", **provenance(trained, data_root), "labels": percent_label(labels),
            "labels_fraction": labels, "reported": "test accuracy of the checkpoint (the last completed epoch)",
            "top1": top1, "top5": top5, "seconds": time.perf_counter() - start}
