"""Training throughput of BYOL at width 16, batch 256 on CIFAR-10 (issue 3, item 9).

Three measurements of the same networks, optimizer and precision (the training's own: the `cpu`
preset's, bf16 autocast by default), each after a few warm-up steps:
  (a) train:      the training loop's step: device-resident uint8 batch → batched augmentation of
                  both views (`deep.augment`) → forward, backward, SGD, EMA (`deep.train.train_step`);
  (b) bound:      the same step on views made once before timing: the compute bound of (a);
  (c) dataloader: the usual pipeline: torchvision's PIL transforms of the same augmentation in a
                  DataLoader with 2 worker processes, feeding the same step.
Images/s counts images (each giving two views). The last line is one JSON object:
{"train_img_per_s", "compute_bound_img_per_s", "ratio_to_bound", "speedup_vs_dataloader"}.

    python benchmarks/train_throughput.py [--steps 20] [--data-root PATH]
"""
import argparse
import json
import time

import torch
from PIL import Image

from deep import augment, config as config_module
from deep.data import load_dataset
from deep.methods import build_method
from deep.train import autocast_factory, batch_views, build_optimizer, peak_lr, train_step

WARMUP_STEPS = 3


class PILViews(torch.utils.data.Dataset):
    """Two torchvision-transformed views of each image, from uint8 HWC arrays via PIL."""

    def __init__(self, images_uint8: torch.Tensor, labels: torch.Tensor, mean, std):
        from torchvision import transforms as T

        self.images = images_uint8.permute(0, 2, 3, 1).numpy()
        self.labels = labels.numpy()
        size = self.images.shape[1]

        def pipeline(solarize_p: float):
            return T.Compose([
                T.RandomResizedCrop(size, scale=(0.08, 1.0)),
                T.RandomHorizontalFlip(),
                T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
                T.RandomGrayscale(p=0.2),
                T.RandomSolarize(threshold=128, p=solarize_p),
                T.ToTensor(),
                T.Normalize(mean, std),
            ])

        self.transforms = [pipeline(cfg.solarize_p) for cfg in augment.BYOL_VIEWS]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = Image.fromarray(self.images[index])
        return tuple(t(image) for t in self.transforms), int(self.labels[index])


def seconds_per_step(next_batch, step_fn, steps: int, warmup: int = WARMUP_STEPS) -> float:
    """Mean seconds per step (batch preparation included) over `steps` steps after `warmup` untimed ones."""
    for _ in range(warmup):
        step_fn(*next_batch())
    start = time.perf_counter()
    for _ in range(steps):
        step_fn(*next_batch())
    return (time.perf_counter() - start) / steps


def interleaved_seconds_per_step(batch_makers, step_fn, steps: int) -> list[float]:
    """Like `seconds_per_step` for several batch sources at once, alternating them step by step, so
    that a change in the machine's load (it is shared) affects each measurement alike."""
    for make in batch_makers:
        for _ in range(WARMUP_STEPS):
            step_fn(*make())
    totals = [0.0] * len(batch_makers)
    for _ in range(steps):
        for index, make in enumerate(batch_makers):
            start = time.perf_counter()
            step_fn(*make())
            totals[index] += time.perf_counter() - start
    return [total / steps for total in totals]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--data-root", help="CIFAR-10 location (default: the data module's default)")
    args = parser.parse_args()

    config = config_module.resolve("byol", "cifar10", preset="cpu", data_root=args.data_root)
    dataset = load_dataset("cifar10", args.data_root)
    train_set, batch = dataset.train, config["batch_size"]
    torch.manual_seed(0)
    method = build_method(config, train_set.images.shape[1], len(dataset.classes))
    memory_format = torch.channels_last if config["channels_last"] else torch.contiguous_format
    method = method.to(memory_format=memory_format)
    optimizer = build_optimizer(method, config)
    autocast = autocast_factory("cpu", config["precision"])
    generator = torch.Generator().manual_seed(0)
    lr = peak_lr(config)
    step = [0]

    def step_fn(views, labels):
        train_step(method, optimizer, views, labels, step[0], lr, autocast)
        step[0] += 1

    order = torch.randperm(len(train_set), generator=generator)

    def device_batch():  # as the training loop: consecutive slices of a permutation
        first = (step[0] * batch) % (len(order) - batch)
        indices = order[first:first + batch]
        return batch_views(train_set, indices, augment.BYOL_VIEWS, generator, dataset.mean, dataset.std,
                           memory_format)

    made = device_batch()
    train, bound = interleaved_seconds_per_step([device_batch, lambda: made], step_fn, args.steps)
    print(f"(a) training step (augmentation included): {batch / train:7.1f} img/s", flush=True)
    print(f"(b) compute bound (pre-made views):         {batch / bound:7.1f} img/s", flush=True)

    loader = torch.utils.data.DataLoader(PILViews(train_set.images, train_set.labels, dataset.mean, dataset.std),
                                         batch_size=batch, shuffle=True, num_workers=2, drop_last=True,
                                         persistent_workers=True, generator=torch.Generator().manual_seed(0))
    batches = iter(loader)

    def loader_batch():
        views, labels = next(batches)
        return [v.contiguous(memory_format=memory_format) for v in views], labels

    # the warm-up also drains the batches the workers prefetched while (a) and (b) ran
    piped = seconds_per_step(loader_batch, step_fn, args.steps, warmup=WARMUP_STEPS + 2 * 2)
    print(f"(c) PIL transforms, DataLoader(2 workers):  {batch / piped:7.1f} img/s", flush=True)
    print(f"precision {config['precision']}, width {config['width']}, batch {batch}, {args.steps} timed steps each, "
          f"{torch.get_num_threads()} threads", flush=True)
    print(json.dumps({
        "train_img_per_s": round(batch / train, 1),
        "compute_bound_img_per_s": round(batch / bound, 1),
        "ratio_to_bound": round(bound / train, 3),
        "speedup_vs_dataloader": round(piped / train, 3),
    }))


if __name__ == "__main__":
    main()
