"""Every cross-process operation of training, in one place (SPEC §3, multi-GPU; issue 4 item 5).

On one process (no `torch.distributed` group initialised) each function is the identity, so the
single-device loop calls them at exactly the places a multi-process run needs them: the MoCo keys
are gathered before they are enqueued, the DirectPred F̂ statistics are averaged, Barlow Twins sees
the global batch, the kNN bank is gathered, only the main process writes files. Every rank draws the
same global batch (same seeded generator) and takes its own contiguous shard of it.

A multi-process run is started by torchrun (`deep.train_ddp`), which sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `process_group` joins it.
"""
import contextlib
import os

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as functional_collectives  # autograd-aware collectives
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from deep.losses import at_least_float32


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def is_main() -> bool:
    """The process that writes the run directory and shows progress."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    """Whether this process is one of torchrun's workers (torchrun sets LOCAL_RANK)."""
    return "LOCAL_RANK" in os.environ


@contextlib.contextmanager
def process_group():
    """Join the process group torchrun describes in the environment; leave it on exit.

    Each process uses GPU LOCAL_RANK where there is one. Collectives on CPU tensors go through gloo,
    on CUDA tensors through NCCL, so `--device cpu` also works on a GPU machine.
    """
    local_rank = int(os.environ["LOCAL_RANK"])
    backend = "gloo"
    if torch.cuda.is_available() and local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process got here."""
    if is_initialized():
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Run the body on the main process first, then on the others (e.g. a download, then reading it)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def check_divisible(global_size: int, what: str, world: int | None = None) -> None:
    """ValueError unless `global_size` splits into equal shards over `world` (default: this run's) processes."""
    world = world_size() if world is None else world
    if global_size % world:
        raise ValueError(f"{what}={global_size} must be divisible by the number of processes ({world})")


def shard(global_size: int) -> slice:
    """This rank's contiguous slice of a global batch of `global_size` items (equal shards)."""
    check_divisible(global_size, "batch_size")
    local = global_size // world_size()
    return slice(rank() * local, (rank() + 1) * local)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of `tensor` over ranks (equal shards ⇒ the global-batch mean of per-rank means)."""
    if not is_initialized():
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor / world_size()


def broadcast_from_main(tensor: torch.Tensor) -> torch.Tensor:
    """The main process's `tensor` on every process."""
    if not is_initialized():
        return tensor
    tensor = tensor.contiguous()
    dist.broadcast(tensor, src=0)
    return tensor


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's `tensor` along dim 0, in rank order; no gradient flows back."""
    if not is_initialized():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Like `gather`, but gradients flow back to each rank's own part (Barlow Twins' global batch).

    The backward pass sums, for each rank's part, the gradients every rank computed for it
    (a reduce-scatter). So when every rank evaluates the same loss L of the gathered tensor, rank r
    receives W·∂L/∂z_r, and DistributedDataParallel's mean over the W ranks gives exactly the
    single-process gradient ∂L/∂θ: the loss needs no rescaling.
    """
    if not is_initialized():
        return tensor
    return functional_collectives.all_gather_single(tensor.contiguous(), 0, dist.group.WORLD)


def _all_reduce_sum_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Σ over ranks; the backward pass sums every rank's gradient, as for Σ_r L_r."""
    return functional_collectives.all_reduce(tensor, "sum", dist.group.WORLD)


class CPUSyncBatchNorm(_BatchNorm):
    """BatchNorm whose training-mode statistics are those of the global batch, on the CPU (gloo).

    torch's `nn.SyncBatchNorm` needs an accelerator, so CPU runs and the CPU tests use this layer;
    over W ranks holding B/W samples each it computes what `nn.BatchNorm` computes on all B:
    y = γ (x − μ)/√(σ² + eps) + β with μ, σ² (biased) over every rank's samples, and the running
    statistics moved towards μ and the unbiased σ² with the layer's momentum. Gradients reach every
    rank's input through the all-reduces. Eval mode and single-process runs use plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        values = at_least_float32(x)
        count = values.numel() // values.shape[1] * world_size()
        mean = _all_reduce_sum_with_grad(values.sum(dims)) / count
        centred = values - mean.view(shape)  # two passes: no cancellation in E[x²] − E[x]²
        variance = _all_reduce_sum_with_grad(centred.square().sum(dims)) / count
        y = centred * torch.rsqrt(variance + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(variance.detach() * count / (count - 1), momentum)
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, device: str) -> nn.Module:
    """Replace, in place, every BatchNorm layer of `module` by one with global-batch statistics:
    torch's `nn.SyncBatchNorm` on an accelerator, `CPUSyncBatchNorm` on the CPU. Parameters and
    buffers are kept (the same tensors), and so are the state-dict keys: a checkpoint loads
    into the network with or without the conversion. The identity on one process."""
    if world_size() == 1:
        return module
    if device != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm) and not isinstance(child, CPUSyncBatchNorm):
            layer = CPUSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats)
            if child.affine:
                layer.weight, layer.bias = child.weight, child.bias
            if child.track_running_stats:
                layer.running_mean, layer.running_var = child.running_mean, child.running_var
                layer.num_batches_tracked = child.num_batches_tracked
            layer.train(child.training)
            setattr(module, name, layer)
        else:
            convert_sync_batchnorm(child, device)
    return module


def chained_statistics(start: torch.Tensor, ends: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    """The end r of one EMA chain run through every rank's groups in rank order, from per-rank chains.

    Each group moves a running statistic by r ← (1 − m) r + m s (s: that group's statistic). Rank w
    ran its g groups from the common `start` r₀ and ended at `ends[w]` = R_w; a = (1 − m)^g is `decay`.
    Rank w's groups add R_w − a r₀ to whatever they start from, so one chain through all ranks ends at
        r = a^W r₀ + Σ_w a^(W−1−w) (R_w − a r₀).
    """
    world = len(ends)
    chained = decay**world * start
    for w, end in enumerate(ends):
        chained = chained + decay ** (world - 1 - w) * (end - decay * start)
    return chained


@contextlib.contextmanager
def rank_ordered_batchnorm(modules, groups_per_rank: int):
    """BatchNorm running statistics as if one process had run every rank's groups, rank after rank.

    Shuffle BN (MoCo) runs `groups_per_rank` groups per rank, one after another, through plain
    (per-rank) BatchNorm layers of `modules`; one process would run all W·g groups of the global batch
    in rank order. On exit every rank holds the running statistics of that one process
    (`chained_statistics`, one all_gather for all layers); the step counters advance by W·g.
    The identity on one process.
    """
    world = world_size()
    if world == 1:
        yield
        return
    layers = [layer for module in modules for layer in module.modules()
              if isinstance(layer, _BatchNorm) and layer.track_running_stats and layer.training]
    if any(layer.momentum is None for layer in layers):
        raise ValueError("rank_ordered_batchnorm needs BatchNorm layers with an exponential momentum")
    start = torch.cat([torch.cat([layer.running_mean, layer.running_var]) for layer in layers])
    yield
    end = torch.cat([torch.cat([layer.running_mean, layer.running_var]) for layer in layers])
    decay = torch.cat([torch.full((2 * layer.num_features,), (1 - layer.momentum) ** groups_per_rank,
                                  dtype=end.dtype, device=end.device) for layer in layers])
    chained = chained_statistics(start, gather(end[None]), decay)
    offset = 0
    for layer in layers:
        # Written through .data: BatchNorm's backward lists the running statistics among its inputs
        # (unused in training mode), and a tracked in-place write would fail autograd's version check.
        for buffer in (layer.running_mean, layer.running_var):
            buffer.data.copy_(chained[offset:offset + layer.num_features])
            offset += layer.num_features
        layer.num_batches_tracked.data.add_(groups_per_rank * (world - 1))


def data_parallel(module: nn.Module, device: str) -> nn.Module:
    """`module` wrapped in DistributedDataParallel (gradients averaged over ranks); itself on one process.

    Buffers are copied from rank 0 once, at the start, but not before each forward pass: every one
    of them (BatchNorm statistics, the MoCo queue, F̂) is kept identical on all ranks by construction,
    and the distributed test checks that. No parameter is left unused by a step, so DDP need not search.
    """
    if world_size() == 1:
        return module
    device_ids = [torch.cuda.current_device()] if device == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, forward_sync_buffers=False)
