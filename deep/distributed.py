"""Every cross-process operation of training, in one place (SPEC §3, multi-GPU).

On one process (no `torch.distributed` group initialised) each function is the identity, so the
single-device loop calls them at exactly the places a multi-process run needs them: the MoCo keys
are gathered before they are enqueued, the DirectPred F̂ statistics are averaged, Barlow Twins sees
the global batch, the kNN bank is gathered, only the main process writes files. Every rank draws the
same global batch (same seeded generator) and takes its own contiguous shard of it.
"""
import torch
import torch.distributed as dist


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def is_main() -> bool:
    """The process that writes the run directory and shows progress."""
    return rank() == 0


def shard(global_size: int) -> slice:
    """This rank's contiguous slice of a global batch of `global_size` items (equal shards)."""
    world = world_size()
    if global_size % world:
        raise ValueError(f"batch_size={global_size} must be divisible by the number of processes ({world})")
    local = global_size // world
    return slice(rank() * local, (rank() + 1) * local)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of `tensor` over ranks (equal shards ⇒ the global-batch mean of per-rank means)."""
    if not is_initialized():
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor / world_size()


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's `tensor` along dim 0, in rank order; no gradient flows back."""
    if not is_initialized():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Like `gather`, but gradients flow back to each rank's own part (Barlow Twins' global batch)."""
    if not is_initialized():
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()))
