"""Everything a user of the GPU path relies on, measured by one script (issues 13 and 23).

    python3 benchmarks/gpu_check.py                           # on a GPU machine, from a checkout
    python3 benchmarks/gpu_check.py --device cpu --steps 2    # a dry run of every stage on the CPU

It needs no install: it puts the checkout it lives in on `sys.path` itself, so it runs on the GPU
machine's image as it is (Python 3.12, torch 2.11, torchvision 0.26 and numpy, scipy, tqdm there).
Each stage below runs on its own: its result, or its error in one line, goes into the JSON object
printed as the last line of stdout, which is printed whatever fails; a stage that runs past its time
budget (BUDGET_SECONDS, 9 minutes in all on a GPU) is stopped and recorded as such. Exit status 0 when
every stage ran, 1 when one failed, 2 for a usage error.

1. data: random uint8 images of CIFAR-10's shape already on the device, unless `--data-root` gives
   CIFAR-10 (a step's cost does not depend on the pixels).
2. eager, compiled: throughput of BYOL at `--preset thesis` (width 64, batch 512, bf16 autocast,
   channels_last) through the training loop's own step (`deep.train.train_step(sync=False)`: no host
   synchronisation per step), warm-up steps first (compilation and cuDNN's autotuning happen there
   and are timed apart), then `--steps` timed steps between two synchronisations; seconds per
   50,000-image epoch = seconds per step × 97 steps; peak GPU memory of each. `compiled` compiles
   the backbones as `--set compile=true` does (inductor); if that fails or runs past its budget the
   stage records why and the summary falls back to eager. The CPU dry run compiles with dynamo's
   `eager` backend (graph capture only: inductor's C++ build takes minutes on a small CPU).
3. knn: the kNN evaluation of one epoch (50,000-image bank, 10,000 queries), run once untimed (cuDNN
   autotunes each new batch shape, the last partial chunks included) and then timed.
4. flops: model FLOPs per image (torch.utils.flop_counter over one eager step: forward and backward
   of both views and the target's forward) and the fraction of the GPU's dense bf16 peak, taken from
   the datasheet of the exact device name (PEAK_BF16_TFLOPS); an unknown name gives no fraction.
5. cpu_match: the device against the CPU's fp32 path: the same network, weights and batch (64
   images), the first 3 steps' losses, each within |a − b| ≤ atol + rtol·|b| (TOLERANCE).
6. ddp_gloo: one epoch of the smoke preset through torchrun with two processes on the CPU (gloo):
   DistributedDataParallel's gradient average and the global-batch BatchNorm across two ranks.
   torchrun_gpu (GPU only): the same through NCCL on the GPU, two ranks on two GPUs; on one GPU one
   rank (NCCL refuses two ranks on one device), which verifies the NCCL process group and the CUDA
   training path under torchrun, not a collective between ranks.
Target on an H100/H200-class GPU: at most 2.5 s per epoch, i.e. the thesis' 400 epochs in under 17
minutes.
"""
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout, with nothing installed (the GPU machine's image)

import torch  # noqa: E402

from deep import augment  # noqa: E402
from deep import config as config_module  # noqa: E402
from deep.knn import extract_features, knn_accuracy  # noqa: E402
from deep.methods import build_method  # noqa: E402
from deep.resnet import ResNet18  # noqa: E402
from deep.schedule import lr_at  # noqa: E402
from deep.train import autocast_factory, batch_views, build_optimizer, compile_backbones, train_step  # noqa: E402
from ssldyn.args import count  # noqa: E402
from ssldyn.errors import Parser, report_errors  # noqa: E402

TARGET_SECONDS_PER_EPOCH = 2.5
EPOCH_IMAGES, TEST_IMAGES = 50_000, 10_000
COMPARE_BATCH, COMPARE_STEPS = 64, 3
# Each stage's wall-clock budget in seconds on a GPU; the CPU dry run (2 slow cores) gets DRY_BUDGET_SCALE×.
BUDGET_SECONDS = {"data": 60, "eager": 60, "compiled": 150, "knn": 45, "flops": 45, "cpu_match": 60,
                  "ddp_gloo": 60, "torchrun_gpu": 60}
DRY_BUDGET_SCALE = 3
# The losses are means of cosines, in [−1, 1], and may sit near 0, where a relative bound alone fails
# (−0.001 against 0.002 is "300% off" while both are a rounding away from 0): so an absolute part on the
# loss's own scale plus a relative part. fp32 with TF32 off differs from the CPU only in the order of
# reductions, ~1e-6 per operation, a few 1e-5 after 3 SGD steps: atol 1e-4, rtol 1e-3. bf16 keeps 8
# bits of mantissa (a rounding of 2⁻⁸ ≈ 0.004 on each activation; the losses themselves are fp32):
# atol 2e-2 (five such roundings, in cosine units) and rtol 2e-2.
TOLERANCE = {"fp32": {"atol": 1e-4, "rtol": 1e-3}, "bf16": {"atol": 2e-2, "rtol": 2e-2}}
# Dense bf16 tensor-core peaks (TFLOP/s) by the exact name torch.cuda.get_device_name() gives: half the
# "with sparsity" figure of NVIDIA's datasheets (H100: SXM 1,979, PCIe 1,513, NVL 1,671; H200: SXM
# 1,979, NVL 1,671; A100 (SXM4 and PCIe): 624). Any other name: no fraction of peak.
PEAK_BF16_TFLOPS = {
    "NVIDIA H100 80GB HBM3": 989.5,  # H100 SXM5
    "NVIDIA H100 PCIe": 756.5,
    "NVIDIA H100 NVL": 835.5,
    "NVIDIA H200": 989.5,  # H200 SXM
    "NVIDIA H200 NVL": 835.5,
    "NVIDIA A100-SXM4-80GB": 312.0,
    "NVIDIA A100-SXM4-40GB": 312.0,
    "NVIDIA A100 80GB PCIe": 312.0,
    "NVIDIA A100-PCIE-40GB": 312.0,
}
DRY_RUN = {"width": 8, "batch_size": 64}  # --device cpu: a network this machine steps in a second


class StageTimeout(Exception):
    """A stage ran past its budget."""


def one_line(error: BaseException) -> str:
    """`error` as one line: its type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")[:400]


def run_stage(name: str, budget: float, function, report: dict) -> None:
    """Run `function()` (a dict of results) within `budget` seconds; record its results, or its error in
    one line, under report["stages"][name], with the seconds it took."""
    def over_budget(signum, frame):
        raise StageTimeout(f"stopped after its budget of {budget:g} s")

    previous = signal.signal(signal.SIGALRM, over_budget)
    signal.setitimer(signal.ITIMER_REAL, budget)
    start = time.perf_counter()
    try:
        outcome = {"ok": True, **function()}
    except Exception as error:  # noqa: BLE001 -- any failure of one stage is that stage's result
        outcome = {"ok": False, "error": one_line(error)}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    outcome["seconds"] = time.perf_counter() - start
    report["stages"][name] = outcome
    print(f"{name}: " + (f"ok in {outcome['seconds']:.1f} s" if outcome["ok"] else outcome["error"]),
          file=sys.stderr, flush=True)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class Check:
    """The shared state of the stages: the config, the data, and what earlier stages measured."""

    def __init__(self, args):
        self.args, self.device = args, args.device
        self.dry = self.device == "cpu"
        overrides = dict(DRY_RUN) if self.dry else {}
        self.config = config_module.resolve("byol", "cifar10", preset="thesis", device=self.device,
                                            overrides=overrides)
        self.warmup = args.warmup if args.warmup is not None else (1 if self.dry else 15)
        self.train_set = self.test_set = self.mean = self.std = None

    # ------------------------------------------------------------------ stages
    def data(self) -> dict:
        from deep.data import ImageSet, load_dataset

        if self.args.data_root:
            data = load_dataset("cifar10", self.args.data_root)
            self.train_set, self.test_set = data.train.to(self.device), data.test.to(self.device)
            self.mean, self.std = data.mean, data.std
            return {"data": f"CIFAR-10 from {self.args.data_root}"}
        bank, queries = (1024, 256) if self.dry else (EPOCH_IMAGES, TEST_IMAGES)
        generator = torch.Generator().manual_seed(0)

        def images(count):
            return ImageSet(torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator),
                            torch.randint(0, 10, (count,), generator=generator))

        self.train_set, self.test_set = images(bank).to(self.device), images(queries).to(self.device)
        self.mean, self.std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
        return {"data": "random uint8 images of CIFAR-10's shape", "bank": bank, "queries": queries}

    def eager(self) -> dict:
        return self._throughput(compiled=False)

    def compiled(self) -> dict:
        return self._throughput(compiled=True)

    def knn(self) -> dict:
        method = self._method()
        seconds = []
        for _ in range(2):  # the first pass autotunes cuDNN for each batch shape; the second is timed
            start = time.perf_counter()
            self._knn(method)
            seconds.append(time.perf_counter() - start)
        return {"knn_eval_seconds": seconds[1], "warmup_seconds": seconds[0]}

    def flops(self) -> dict:
        from torch.utils.flop_counter import FlopCounterMode

        _, step = self._stepper(compiled=False)
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        per_image = counter.get_total_flops() / self.config["batch_size"]
        out = {"flops_per_image": per_image}
        if self.device == "cuda":
            out.update(peak_bf16(torch.cuda.get_device_name()))
        return out

    def cpu_match(self) -> dict:
        tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            reference = self._first_losses("cpu", "fp32")
            out = {"cpu_fp32_losses": reference}
            for precision in ("fp32", "bf16"):
                losses = self._first_losses(self.device, precision)
                tolerance = TOLERANCE[precision]
                excess = max(abs(a - b) - tolerance["rtol"] * abs(b) for a, b in zip(losses, reference))
                out[precision] = {"losses": losses, **tolerance,
                                  "max_abs_difference": max(abs(a - b) for a, b in zip(losses, reference)),
                                  "agrees": excess <= tolerance["atol"]}
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        return out

    def ddp_gloo(self) -> dict:
        return self._torchrun("cpu", 2, BUDGET_SECONDS["ddp_gloo"] * self.budget_scale())

    def torchrun_gpu(self) -> dict:
        ranks = min(2, torch.cuda.device_count())
        out = self._torchrun("cuda", ranks, BUDGET_SECONDS["torchrun_gpu"])
        out["verified"] = ("two ranks on two GPUs: NCCL collectives, SyncBatchNorm and DDP" if ranks == 2 else
                           "one rank on the one GPU: the NCCL process group and the CUDA training path under "
                           "torchrun; no collective between ranks (NCCL refuses two ranks on one device)")
        return out

    # ------------------------------------------------------------------ helpers
    def budget_scale(self) -> float:
        return DRY_BUDGET_SCALE if self.dry else 1

    def stages(self) -> list[tuple[str, float]]:
        names = ["data", "eager"]
        if not self.args.no_compile:
            names.append("compiled")
        names += ["knn", "flops", "cpu_match", "ddp_gloo"]
        if self.device == "cuda":
            names.append("torchrun_gpu")
        return [(name, BUDGET_SECONDS[name] * self.budget_scale()) for name in names]

    def _need_data(self) -> None:
        if self.train_set is None:
            raise RuntimeError("no data: the data stage failed")

    def _method(self):
        self._need_data()
        torch.manual_seed(0)
        return build_method(self.config, 3, 10).to(self.device, memory_format=torch.channels_last)

    def _compile(self, method) -> str:
        if self.dry:  # dynamo's graph capture only (see the module docstring)
            for module in method.modules():
                if isinstance(module, ResNet18):
                    module.compile(backend="eager")
            return "eager (dynamo graph capture only: the CPU dry run)"
        compile_backbones(method)
        return "inductor"

    def _stepper(self, compiled: bool):
        """A BYOL method, and a function that takes one training step of it (no host sync)."""
        method = self._method()
        backend = self._compile(method) if compiled else None
        config, train_set = self.config, self.train_set
        optimizer = build_optimizer(method, config)
        autocast = autocast_factory(self.device, config["precision"])
        generator = torch.Generator(device=self.device).manual_seed(0)
        batch, steps_per_epoch = config["batch_size"], len(train_set) // config["batch_size"]
        order = torch.randperm(len(train_set), generator=generator, device=self.device)
        state = {"step": 0}

        def step():
            index = state["step"] % steps_per_epoch
            views, labels = batch_views(train_set, order[index * batch:(index + 1) * batch], augment.BYOL_VIEWS,
                                        generator, self.mean, self.std, torch.channels_last)
            loss = train_step(method, optimizer, views, labels, state["step"],
                              lr_at(state["step"], config, steps_per_epoch), autocast, sync=False)
            state["step"] += 1
            return loss

        return backend, step

    def _throughput(self, compiled: bool) -> dict:
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        backend, step = self._stepper(compiled)
        start = time.perf_counter()
        for _ in range(self.warmup):
            step()
        _sync(self.device)
        warmup_seconds = time.perf_counter() - start
        start = time.perf_counter()
        losses = [step() for _ in range(self.args.steps)]
        _sync(self.device)
        seconds_per_step = (time.perf_counter() - start) / self.args.steps
        batch = self.config["batch_size"]
        out = {"seconds_per_step": seconds_per_step, "seconds_per_epoch": seconds_per_step * (EPOCH_IMAGES // batch),
               "img_per_s": batch / seconds_per_step, "warmup_seconds": warmup_seconds,
               "losses_finite": bool(torch.isfinite(torch.stack(losses)).all()),
               "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if self.device == "cuda" else None}
        return {**out, "backend": backend} if compiled else out

    def _knn(self, method) -> None:
        autocast = autocast_factory(self.device, self.config["precision"])

        def normalize(images):
            return augment.normalize(images, self.mean, self.std)

        bank = extract_features(method.backbone, self.train_set.images, normalize, 1024, autocast, torch.channels_last)
        queries = extract_features(method.backbone, self.test_set.images, normalize, 1024, autocast,
                                   torch.channels_last)
        knn_accuracy(queries, self.test_set.labels, bank, self.train_set.labels, 10, k=self.config["knn_k"],
                     temperature=self.config["knn_temperature"])
        _sync(self.device)

    def _first_losses(self, device: str, precision: str) -> list[float]:
        """The first COMPARE_STEPS losses on `device` in `precision`, from the seed-0 network and batch."""
        self._need_data()
        config = dict(self.config, device=device, precision=precision, batch_size=COMPARE_BATCH)
        torch.manual_seed(0)
        method = build_method(config, 3, 10).to(device)
        optimizer = build_optimizer(method, config)
        generator = torch.Generator().manual_seed(0)
        images = self.train_set.images[:COMPARE_BATCH].cpu()
        views = [augment.augment(images, cfg, generator, self.mean, self.std).to(device) for cfg in augment.BYOL_VIEWS]
        labels = self.train_set.labels[:COMPARE_BATCH].to(device)
        autocast = autocast_factory(device, precision)
        return [train_step(method, optimizer, views, labels, step, 0.06, autocast) for step in range(COMPARE_STEPS)]

    def _torchrun(self, device: str, ranks: int, budget: float) -> dict:
        """One epoch of the smoke preset on the synthetic set through torchrun with `ranks` processes,
        stopped (the whole process group) a few seconds before the stage's own budget."""
        with tempfile.TemporaryDirectory() as folder:
            command = torchrun_command(device, ranks, Path(folder) / "run")
            env = dict(os.environ, OMP_NUM_THREADS="1",
                       PYTHONPATH=os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))))
            if device == "cpu":
                env["CUDA_VISIBLE_DEVICES"] = ""  # every rank on gloo alone, none touching a GPU
            process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       start_new_session=True, env=env)
            try:
                stdout, stderr = process.communicate(timeout=max(1.0, budget - 5))
            except subprocess.TimeoutExpired:
                raise StageTimeout(f"torchrun did not finish within {budget - 5:g} s") from None
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        if process.returncode != 0:
            last = (stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"torchrun exited with {process.returncode}: {last}")
        summary = json.loads(stdout.strip().splitlines()[-1])
        return {"backend": "nccl" if device == "cuda" else "gloo", "ranks": ranks, "device": summary["device"]}


def peak_bf16(name: str) -> dict:
    """The datasheet's dense bf16 peak of the device named exactly `name`, or why there is none."""
    if name in PEAK_BF16_TFLOPS:
        return {"peak_bf16_tflops": PEAK_BF16_TFLOPS[name]}
    return {"peak_bf16_tflops": None, "peak_note": f"no datasheet entry for {name!r}: no fraction of peak"}


def torchrun_command(device: str, ranks: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
            "-m", "deep.train_ddp", "--method", "byol", "--dataset", "synthetic", "--preset", "smoke",
            "--device", device, "--set", "epochs=1", "--out", str(out), "--json"]


def summarise(report: dict, dry: bool) -> None:
    """The headline numbers from the stages that ran, added to `report`."""
    stages = report["stages"]
    variants = {k: stages[k] for k in ("eager", "compiled") if stages.get(k, {}).get("ok")}
    if "compiled" in stages and not stages["compiled"]["ok"]:
        stages["compiled"]["fell_back_to"] = "eager"
    if not variants:
        return
    best = min(variants, key=lambda k: variants[k]["seconds_per_epoch"])
    report.update(best_variant=best, seconds_per_epoch=variants[best]["seconds_per_epoch"],
                  img_per_s=variants[best]["img_per_s"],
                  losses_finite=all(v["losses_finite"] for v in variants.values()),
                  target_seconds_per_epoch=TARGET_SECONDS_PER_EPOCH,
                  meets_target=None if dry else variants[best]["seconds_per_epoch"] <= TARGET_SECONDS_PER_EPOCH)
    flops = stages.get("flops", {})
    if flops.get("ok"):
        achieved = flops["flops_per_image"] * report["img_per_s"] / 1e12
        report["achieved_tflops"] = achieved
        if flops.get("peak_bf16_tflops"):
            report["fraction_of_peak"] = achieved / flops["peak_bf16_tflops"]
    if stages.get("knn", {}).get("ok"):
        report["thesis_400_epochs_minutes"] = 400 * (report["seconds_per_epoch"]
                                                     + stages["knn"]["knn_eval_seconds"]) / 60


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python benchmarks/gpu_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--steps", type=count(10**6), default=60, help="timed steps per variant (default 60)")
    parser.add_argument("--warmup", type=count(10**6, low=0), default=None, help="untimed steps first (default 15 on a GPU, 1 on the CPU)")
    parser.add_argument("--data-root", help="CIFAR-10 instead of random images of its shape")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available; use --device cpu for a dry run")
    check = Check(args)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    report = {"device_name": name, "torch": torch.__version__, "python": platform.python_version(),
              "dry_run": check.dry, "width": check.config["width"], "batch_size": check.config["batch_size"],
              "precision": check.config["precision"], "stages": {}}
    print(f"gpu_check on {name}: BYOL width {check.config['width']}, batch {check.config['batch_size']}, "
          f"{check.config['precision']}", file=sys.stderr, flush=True)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        for stage, budget in check.stages():
            run_stage(stage, budget, getattr(check, stage), report)
    finally:
        try:
            summarise(report, check.dry)
        except Exception as error:  # noqa: BLE001 -- the stages' results are printed all the same
            report["summary_error"] = one_line(error)
        print(json.dumps(report, default=str), flush=True)
    return 0 if all(s["ok"] for s in report["stages"].values()) else 1


if __name__ == "__main__":
    sys.exit(report_errors("python benchmarks/gpu_check.py", main))
