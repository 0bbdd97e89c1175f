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

`--under-load` measures instead what the training loop's thread governor (`deep.threads`) keeps
when another process competes for the cores (issue 13, item 1). In one run, alternating:
  quiet:  the step (a) with the governor, and with torch's fixed default threads, step by step;
  loaded: the step with the governor while a busy-loop process of its own runs, counted from the
          step the load starts (the governor's reaction included); then a few steps with fixed
          default threads beside the same load, for comparison.
The last line is {"quiet_img_per_s", "loaded_img_per_s", "loaded_ratio", "quiet_fixed_img_per_s",
"quiet_ratio_to_fixed", "loaded_fixed_img_per_s"}; targets: loaded_ratio >= 0.45 and
quiet_ratio_to_fixed >= 0.95.

    python benchmarks/train_throughput.py [--steps 20] [--data-root PATH] [--under-load [--rounds 2]]
"""
import json
import subprocess
import sys
import time

import torch
from PIL import Image

from deep import augment, config as config_module
from deep.data import load_dataset
from deep.methods import build_method
from deep.threads import ThreadGovernor
from deep.schedule import peak_lr
from deep.train import autocast_factory, batch_views, build_optimizer, train_step
from ssldyn.args import count
from ssldyn.errors import Parser, report_errors

WARMUP_STEPS = 3
LOADED_FIXED_STEPS = 2  # fixed threads beside a busy process are 20-40x slower: a couple of steps show it


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


def interleaved_seconds_per_step(batch_makers, step_fn, steps: int, step_fns=None) -> list[float]:
    """Like `seconds_per_step` for several batch sources (and optionally step functions) at once,
    alternating them step by step, so that a change in the machine's load (it is shared) affects each
    measurement alike."""
    step_fns = step_fns or [step_fn] * len(batch_makers)
    for make, fn in zip(batch_makers, step_fns):
        for _ in range(WARMUP_STEPS):
            fn(*make())
    totals = [0.0] * len(batch_makers)
    for _ in range(steps):
        for index, (make, fn) in enumerate(zip(batch_makers, step_fns)):
            start = time.perf_counter()
            fn(*make())
            totals[index] += time.perf_counter() - start
    return [total / steps for total in totals]


def busy_process() -> subprocess.Popen:
    """A competing process that keeps one core busy until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def under_load(make_batch, step_fn, steps: int, rounds: int, batch: int) -> dict:
    """Quiet (governor vs fixed threads, alternating step by step) and loaded (governor, then fixed)
    throughput, `rounds` times each; images/s over all rounds."""
    default_threads = torch.get_num_threads()
    governor = ThreadGovernor(max_threads=default_threads)

    def governed(views, labels):
        governor.adapt()
        step_fn(views, labels)

    def fixed(views, labels):
        torch.set_num_threads(default_threads)
        step_fn(views, labels)
        torch.set_num_threads(governor.threads)

    quiet = quiet_fixed = loaded = loaded_fixed = 0.0
    loaded_fixed_steps = 0
    for _ in range(rounds):
        time.sleep(governor.window)  # a whole quiet window: the governor is back at full threads
        governed_s, fixed_s = interleaved_seconds_per_step([make_batch, make_batch], None, steps,
                                                           step_fns=[governed, fixed])
        quiet, quiet_fixed = quiet + governed_s, quiet_fixed + fixed_s
        load = busy_process()
        try:
            time.sleep(0.2)
            start = time.perf_counter()
            for _ in range(steps):
                governed(*make_batch())
            round_loaded = (time.perf_counter() - start) / steps
            loaded += round_loaded
            torch.set_num_threads(default_threads)
            start = time.perf_counter()
            for _ in range(LOADED_FIXED_STEPS):
                step_fn(*make_batch())
            loaded_fixed += time.perf_counter() - start
            loaded_fixed_steps += LOADED_FIXED_STEPS
            torch.set_num_threads(governor.threads)
        finally:
            load.kill()
            load.wait()
        print(f"round: quiet {batch / governed_s:.1f} img/s (fixed threads {batch / fixed_s:.1f}), loaded "
              f"{batch / round_loaded:.1f} img/s; steps at each thread count so far {governor.steps_at}", flush=True)
    quiet_rate, loaded_rate = batch * rounds / quiet, batch * rounds / loaded
    return {"quiet_img_per_s": round(quiet_rate, 1), "loaded_img_per_s": round(loaded_rate, 1),
            "loaded_ratio": round(loaded_rate / quiet_rate, 3),
            "quiet_fixed_img_per_s": round(batch * rounds / quiet_fixed, 1),
            "quiet_ratio_to_fixed": round(quiet_fixed / quiet, 3),
            "loaded_fixed_img_per_s": round(batch * loaded_fixed_steps / loaded_fixed, 1),
            "default_threads": default_threads}


def main() -> None:
    parser = Parser(prog="python benchmarks/train_throughput.py", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=count(10**6), default=20, help="timed steps per measurement")
    parser.add_argument("--data-root", help="CIFAR-10 location (default: the data module's default)")
    parser.add_argument("--under-load", action="store_true",
                        help="measure the thread governor: quiet vs beside a busy process of its own")
    parser.add_argument("--rounds", type=count(1000), default=2, help="--under-load: quiet/loaded rounds")
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

    if args.under_load:
        result = under_load(device_batch, step_fn, args.steps, args.rounds, batch)
        print(f"precision {config['precision']}, width {config['width']}, batch {batch}, {args.steps} timed steps "
              f"per phase, {args.rounds} rounds", flush=True)
        print(json.dumps(result))
        return

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
    sys.exit(report_errors("python benchmarks/train_throughput.py", main))
