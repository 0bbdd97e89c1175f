"""Everything a user of the GPU path relies on, measured by one script (issue 13, item 3).

    python benchmarks/gpu_check.py                      # on a GPU: under 8 minutes
    python benchmarks/gpu_check.py --device cpu --steps 2   # a dry run of every part on the CPU

1. Throughput: BYOL at `--preset thesis` (width 64, batch 512, bf16 autocast, channels_last) through
   the training loop's own step (`deep.train.train_step(sync=False)`: no host synchronisation per
   step), eager and with `torch.compile` of the backbones; warm-up steps first (compilation and
   cuDNN's autotuning happen there and are timed apart), then `--steps` timed steps between two
   synchronisations. Seconds per 50,000-image epoch = seconds per step × 97 steps. The images are
   random uint8 tensors of CIFAR-10's shape already on the device, unless `--data-root` gives
   CIFAR-10: the step's cost does not depend on the pixels.
2. The kNN evaluation of one epoch (50,000-image bank, 10,000 queries), timed apart.
3. Model FLOPs per image (torch.utils.flop_counter over one eager step: forward and backward of
   both views and the target's forward) and the fraction of the GPU's dense bf16 peak reached.
4. Peak GPU memory.
5. The device against the CPU's fp32 path: the same network, weights and batch (64 images), the
   first 3 steps' losses. fp32 on the device (TF32 off) must agree to rtol 1e-3 (reduction order
   only), bf16 to rtol 3e-2 (bf16 keeps 8 bits of mantissa; the losses are computed in fp32).
6. One step of `--nproc 1` training through torchrun (NCCL on a GPU, gloo on the CPU).
The last line printed is one JSON object with all of it. Target on an H100/H200-class GPU: at most
2.5 s per epoch, i.e. the thesis' 400 epochs in under 17 minutes.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from deep import augment
from deep import config as config_module
from deep.knn import extract_features, knn_accuracy
from deep.methods import build_method
from deep.schedule import lr_at
from deep.train import autocast_factory, batch_views, build_optimizer, compile_backbones, train_step

TARGET_SECONDS_PER_EPOCH = 2.5
EPOCH_IMAGES, TEST_IMAGES = 50_000, 10_000
COMPARE_BATCH, COMPARE_STEPS = 64, 3
RTOL = {"fp32": 1e-3, "bf16": 3e-2}
# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' datasheets, by a substring of the name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A6000": 155.0, "4090": 165.0}
DRY_RUN = {"width": 8, "batch_size": 64}  # --device cpu: a network this machine steps in a second
REPO = Path(__file__).resolve().parent.parent


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _images(count: int, device: str, generator: torch.Generator):
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator).to(device)
    labels = torch.randint(0, 10, (count,), generator=generator).to(device)
    return images, labels


def _dataset(args, device: str, bank_size: int, query_size: int):
    """(train ImageSet, test ImageSet, mean, std, what they are)."""
    from deep.data import ImageSet, load_dataset

    if args.data_root:
        data = load_dataset("cifar10", args.data_root)
        return data.train.to(device), data.test.to(device), data.mean, data.std, f"CIFAR-10 from {args.data_root}"
    generator = torch.Generator().manual_seed(0)
    train, test = ImageSet(*_images(bank_size, "cpu", generator)), ImageSet(*_images(query_size, "cpu", generator))
    return (train.to(device), test.to(device), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26),
            "random uint8 images of CIFAR-10's shape")


def _stepper(config: dict, train_set, mean, std, compiled: bool):
    """A BYOL method, its optimizer, and a function that takes one training step (no host sync)."""
    torch.manual_seed(0)
    method = build_method(config, 3, 10).to(config["device"], memory_format=torch.channels_last)
    if compiled:
        compile_backbones(method)
    optimizer = build_optimizer(method, config)
    autocast = autocast_factory(config["device"], config["precision"])
    generator = torch.Generator(device=config["device"]).manual_seed(0)
    batch, steps_per_epoch = config["batch_size"], len(train_set) // config["batch_size"]
    order = torch.randperm(len(train_set), generator=generator, device=config["device"])
    state = {"step": 0}

    def step():
        index = state["step"] % steps_per_epoch
        views, labels = batch_views(train_set, order[index * batch:(index + 1) * batch], augment.BYOL_VIEWS,
                                    generator, mean, std, torch.channels_last)
        loss = train_step(method, optimizer, views, labels, state["step"],
                          lr_at(state["step"], config, steps_per_epoch), autocast, sync=False)
        state["step"] += 1
        return loss

    return method, step


def throughput(config: dict, train_set, mean, std, warmup: int, steps: int, compiled: bool) -> dict:
    device = config["device"]
    method, step = _stepper(config, train_set, mean, std, compiled)
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    losses = [step() for _ in range(steps)]
    _sync(device)
    seconds_per_step = (time.perf_counter() - start) / steps
    finite = bool(torch.isfinite(torch.stack(losses)).all())
    return {"seconds_per_step": seconds_per_step, "seconds_per_epoch": seconds_per_step * (EPOCH_IMAGES // config["batch_size"]),
            "img_per_s": config["batch_size"] / seconds_per_step, "warmup_seconds": warmup_seconds,
            "losses_finite": finite, "method": method}


def flops_per_image(config: dict, train_set, mean, std) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    _, step = _stepper(config, train_set, mean, std, compiled=False)
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops() / config["batch_size"]


def knn_seconds(method, config: dict, train_set, test_set, mean, std) -> float:
    autocast = autocast_factory(config["device"], config["precision"])
    start = time.perf_counter()
    normalize = lambda x: augment.normalize(x, mean, std)  # noqa: E731
    bank = extract_features(method.backbone, train_set.images, normalize, 1024, autocast, torch.channels_last)
    queries = extract_features(method.backbone, test_set.images, normalize, 1024, autocast, torch.channels_last)
    knn_accuracy(queries, test_set.labels, bank, train_set.labels, 10, k=config["knn_k"],
                 temperature=config["knn_temperature"])
    _sync(config["device"])
    return time.perf_counter() - start


def first_losses(config: dict, train_set, mean, std, device: str, precision: str) -> list[float]:
    """The first COMPARE_STEPS losses on `device` in `precision`, from the seed-0 network and batch."""
    config = dict(config, device=device, precision=precision, batch_size=COMPARE_BATCH)
    torch.manual_seed(0)
    method = build_method(config, 3, 10).to(device)
    optimizer = build_optimizer(method, config)
    generator = torch.Generator().manual_seed(0)
    images = train_set.images[:COMPARE_BATCH].cpu()
    views = [augment.augment(images, cfg, generator, mean, std).to(device) for cfg in augment.BYOL_VIEWS]
    labels = train_set.labels[:COMPARE_BATCH].to(device)
    autocast = autocast_factory(device, precision)
    return [train_step(method, optimizer, views, labels, step, 0.06, autocast) for step in range(COMPARE_STEPS)]


def cpu_match(config: dict, train_set, mean, std, device: str) -> dict:
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        reference = first_losses(config, train_set, mean, std, "cpu", "fp32")
        out = {"cpu_fp32_losses": reference}
        for precision in ("fp32", "bf16"):
            losses = first_losses(config, train_set, mean, std, device, precision)
            error = max(abs(a - b) / abs(b) for a, b in zip(losses, reference))
            out[precision] = {"losses": losses, "max_relative_difference": error, "rtol": RTOL[precision],
                              "agrees": error <= RTOL[precision]}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    return out


def torchrun_step(device: str) -> dict:
    """One epoch of the smoke preset on the synthetic set through torchrun with one process."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                   "-m", "deep.train_ddp", "--method", "byol", "--dataset", "synthetic", "--preset", "smoke",
                   "--device", device, "--set", "epochs=1", "--out", str(Path(folder) / "run"), "--json"]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
        ok = done.returncode == 0
        summary = json.loads(done.stdout.strip().splitlines()[-1]) if ok else None
        return {"backend": "nccl" if device == "cuda" else "gloo", "ok": ok, "seconds": time.perf_counter() - start,
                "device": summary and summary["device"], "error": None if ok else done.stderr.strip().splitlines()[-1:]}


def peak_tflops(name: str) -> float | None:
    return next((value for key, value in PEAK_BF16_TFLOPS.items() if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per variant (default 60)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 15 on a GPU, 1 on the CPU)")
    parser.add_argument("--data-root", help="CIFAR-10 instead of random images of its shape")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available; use --device cpu for a dry run")
    dry = device == "cpu"
    warmup = args.warmup if args.warmup is not None else (1 if dry else 15)
    overrides = dict(DRY_RUN) if dry else {}
    config = config_module.resolve("byol", "cifar10", preset="thesis", device=device, overrides=overrides)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    bank_size, query_size = (1024, 256) if dry else (EPOCH_IMAGES, TEST_IMAGES)
    train_set, test_set, mean, std, data = _dataset(args, device, bank_size, query_size)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    result = {"device_name": name, "torch": torch.__version__, "data": data, "dry_run": dry,
              "width": config["width"], "batch_size": config["batch_size"], "precision": config["precision"]}
    print(f"gpu_check on {name}: BYOL width {config['width']}, batch {config['batch_size']}, {config['precision']}",
          file=sys.stderr, flush=True)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    variants = {"eager": throughput(config, train_set, mean, std, warmup, args.steps, compiled=False)}
    if not (dry or args.no_compile):
        variants["compiled"] = throughput(config, train_set, mean, std, warmup, args.steps, compiled=True)
    for label, v in variants.items():
        print(f"{label}: {v['seconds_per_epoch']:.2f} s/epoch ({v['img_per_s']:.0f} img/s), warm-up "
              f"{v['warmup_seconds']:.1f} s", file=sys.stderr, flush=True)
    best = min(variants, key=lambda k: variants[k]["seconds_per_epoch"])
    result.update({f"seconds_per_epoch_{k}": v["seconds_per_epoch"] for k, v in variants.items()})
    result.update({f"warmup_seconds_{k}": v["warmup_seconds"] for k, v in variants.items()})
    result.update(best_variant=best, seconds_per_epoch=variants[best]["seconds_per_epoch"],
                  img_per_s=variants[best]["img_per_s"], losses_finite=all(v["losses_finite"] for v in variants.values()))
    result["knn_eval_seconds"] = knn_seconds(variants["eager"]["method"], config, train_set, test_set, mean, std)
    result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    flops = flops_per_image(config, train_set, mean, std)
    achieved = flops * result["img_per_s"] / 1e12
    peak = peak_tflops(name) if device == "cuda" else None
    result.update(flops_per_image=flops, achieved_tflops=achieved, peak_bf16_tflops=peak,
                  fraction_of_peak=achieved / peak if peak else None)
    result["cpu_match"] = cpu_match(config, train_set, mean, std, device)
    result["torchrun"] = torchrun_step(device)
    epoch = result["seconds_per_epoch"] + result["knn_eval_seconds"]
    result.update(target_seconds_per_epoch=TARGET_SECONDS_PER_EPOCH,
                  meets_target=None if dry else result["seconds_per_epoch"] <= TARGET_SECONDS_PER_EPOCH,
                  thesis_400_epochs_minutes=400 * epoch / 60)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
