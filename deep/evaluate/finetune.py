"""Fine-tuning (thesis Sec. 4.6.6, Table 4.3): the whole network trained on a fraction of the labels.

The network is the supervised baseline's (`deep.methods.supervised`: the ResNet-18 and a new linear
classifier, cross-entropy on one view with the supervised crop-and-flip augmentation unless the
self-supervised view is asked for), its backbone initialised
from the run's and trained by the engine's own step (`deep.train.train_step`): SGD momentum 0.9,
cosine decay without warm-up, lr per 256 images scaled by batch/256, the last incomplete batch
dropped, on a class-balanced seeded label subset (`deep.evaluate.labels`). So fine-tuning and
`ssldyn train --method supervised --labels P%` differ only in where the backbone starts (and in
the schedule's length and lr). Thesis: BYOL, 70 epochs, lr 0.005, 10% and 100% of the labels.
The reported accuracy is the test top-1 after the FINAL epoch.
"""
from dataclasses import dataclass

import torch
from tqdm import tqdm

from deep import augment
from deep import config as config_module
from deep.evaluate.accuracy import classifier_accuracy
from deep.evaluate.labels import label_subset
from deep.methods import build_method
from deep.schedule import cosine_lr, peak_lr
from deep.train import build_optimizer, train_step


@dataclass
class FinetuneResult:
    """Test top-1/top-5 after the final epoch, the mean loss of each epoch, the fine-tuned network and
    the supervised config it was trained with (what `eval_finetune_*.json` records)."""

    top1: float
    top5: float
    epoch_losses: tuple[float, ...]
    method: torch.nn.Module
    config: dict
    train_images: int


def finetune_config(run_config: dict, *, labels: float, epochs: int, lr: float, batch_size: int,
                    weight_decay: float, seed: int, device: str, augmentation: str = "crop_flip") -> dict:
    """The supervised config of a fine-tuning: the run's width and precision, the given schedule (lr
    per 256 images, cosine per step, no warm-up) and augmentation (default: the supervised crop_flip)."""
    overrides = {"width": run_config["width"], "precision": run_config["precision"],
                 "channels_last": run_config["channels_last"], "labels": labels, "epochs": epochs, "lr": lr,
                 "lr_scaling": "linear", "lr_schedule": "cosine_step", "batch_size": batch_size,
                 "weight_decay": weight_decay, "warmup_epochs": 0.0, "seed": seed, "augmentation": augmentation,
                 "val_split": 0}
    return config_module.resolve("supervised", run_config["dataset"], preset=run_config["preset"],
                                 overrides=overrides, data_root=run_config["data_root"], device=device)


def finetune(trained, data, config: dict, progress: bool = True) -> FinetuneResult:
    """Fine-tune `trained.backbone` (a `deep.evaluate.runs.TrainedRun`) with the supervised `config`
    (from `finetune_config`) on `data` (its `deep.data.Dataset`, on the run's device).

    The run's own network is left as it is: a copy of its backbone is trained.
    """
    device, seed = config["device"], config["seed"]
    torch.manual_seed(seed)  # the new classifier's initialisation
    info = trained.info
    method = build_method(config, info["in_channels"], info["num_classes"]).to(device)
    method.backbone.load_state_dict(trained.backbone.state_dict())
    memory_format = trained.memory_format
    method = method.to(memory_format=memory_format).train()
    optimizer = build_optimizer(method, config)
    generator = torch.Generator(device=device).manual_seed(seed)
    subset = label_subset(data.train, config["labels"], seed)
    batch = config["batch_size"]
    if batch > len(subset):
        raise ValueError(f"--batch-size {batch} is larger than the {len(subset)} labelled training images")
    steps_per_epoch = len(subset) // batch
    total_steps = steps_per_epoch * config["epochs"]
    mean, std = info["mean"], info["std"]
    views = augment.training_views(config["augmentation"], method.VIEWS)

    step, epoch_losses = 0, []
    for _ in tqdm(range(config["epochs"]), desc="fine-tune", disable=not progress, leave=False):
        order = torch.randperm(len(subset), generator=generator, device=device)
        losses = []
        for index in range(steps_per_epoch):
            chosen = order[index * batch:(index + 1) * batch]
            images = subset.images[chosen]
            inputs = [view.apply(images, view.sample(len(images), generator, device), mean, std)
                      .contiguous(memory_format=memory_format) for view in views]
            lr = cosine_lr(step, total_steps, 0, peak_lr(config))
            losses.append(train_step(method, optimizer, inputs, subset.labels[chosen], step, lr, trained.autocast))
            step += 1
        epoch_losses.append(sum(losses) / len(losses))
    top1, top5 = classifier_accuracy(method.backbone, method.classifier, data.test.images, data.test.labels,
                                     lambda x: augment.normalize(x, mean, std), trained.autocast, memory_format)
    return FinetuneResult(top1, top5, tuple(epoch_losses), method.eval(), config, len(subset))
