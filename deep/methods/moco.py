"""MoCo (He et al. 2020; thesis Sec. 2.2, 4.6.1): InfoNCE against a queue of momentum-encoded keys.

query  q = projector(backbone(x)),  key k = the same through the EMA key encoder (Eq. 2.4)
loss   ½ InfoNCE(q1, k2, queue) + ½ InfoNCE(q2, k1, queue), cosine similarity / τ (Eqs. 2.1–2.2)
queue  FIFO of the latest `queue_size` keys; each step's keys of the whole global batch (from every
       process, in the order one process would have them) enqueued once, after the loss has used the
       old queue: the queue is the same on every process.
Shuffle BN (MoCo Sec. 3.3): BatchNorm statistics of a batch would let the query recognise its own
key among the queued ones. As MoCo does across GPUs, the global batch is split into `bn_splits`
groups with their own statistics: queries in consecutive groups, keys in groups of a random
permutation of the global batch. On W processes each holds bn_splits/W of the groups; their inputs
are gathered for the key permutation, and the BatchNorm running statistics are chained across
processes (`distributed.rank_ordered_batchnorm`), so a step is the single-process step on the same
global batch. `bn_splits = 1` (off): one group, the global batch (synchronised BatchNorm).
"""
import torch
import torch.nn.functional as F

from deep import distributed, heads
from deep.ema import frozen_copy
from deep.losses import info_nce
from deep.methods.base import Method

# Thesis Sec. 4.6.1: temperature 0.1, key momentum 0.99, queue 4096 (MoCo's CIFAR values).
# Projector: MoCo v2's 2048-wide head with a 128-d output. Base lr 0.06 and weight decay 5e-4 as
# for the other methods (not given in the thesis). 8 shuffle-BN groups, as 8 GPUs in MoCo.
DEFAULTS = {
    "lr": 0.06,
    "weight_decay": 5e-4,
    "ema": 0.99,
    "temperature": 0.1,
    "queue_size": 4096,
    "bn_splits": 8,
    "projector": "mlp",
    "proj_layers": 2,
    "proj_hidden": 2048,
    "proj_dim": 128,
}


class MoCo(Method):
    DEFAULTS = DEFAULTS

    def __init__(self, config: dict, in_channels: int, num_classes: int):
        super().__init__(config, in_channels, num_classes)
        self.projector, dim = heads.projector(config["projector"], self.backbone.output_dim, config["proj_hidden"],
                                              config["proj_dim"], config["proj_layers"])
        self.key_backbone = frozen_copy(self.backbone)
        self.key_projector = frozen_copy(self.projector)
        # MoCo starts from random unit keys; they are pushed out after queue_size / (2·batch) steps.
        self.register_buffer("queue", F.normalize(torch.randn(config["queue_size"], dim), dim=1))
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))

    @classmethod
    def check_world_size(cls, config, world):
        super().check_world_size(config, world)
        splits = config["bn_splits"]  # groups of the global batch (deep.config checks they divide it)
        if splits > 1 and splits % world:
            raise ValueError(f"bn_splits={splits}: with {world} processes each must hold whole shuffle-BN groups; "
                             f"use a multiple of {world}, or --set bn_splits=1")

    def synchronise_batchnorm(self, device):
        if self.config["bn_splits"] == 1:  # one BatchNorm group: the global batch
            super().synchronise_batchnorm(device)
        # else each shuffle-BN group keeps its own statistics: plain BatchNorm on every process

    def _grouped(self, backbone, projector, x):
        """projector(backbone(·)) of this process's shuffle-BN groups of x, each with its own statistics."""
        if self.config["bn_splits"] == 1:
            return projector(backbone(x))
        groups = self.config["bn_splits"] // distributed.world_size()
        with distributed.rank_ordered_batchnorm((backbone, projector), groups):
            return torch.cat([projector(backbone(part)) for part in x.chunk(groups)])

    @torch.no_grad()
    def _keys(self, x):
        """Keys of the whole global batch (every process's x), in order; the key encoder sees the
        batch shuffled across the shuffle-BN groups (one permutation, the main process's)."""
        images = distributed.gather(x)
        order = distributed.broadcast_from_main(torch.randperm(len(images), device=x.device))
        mine = images[order][distributed.shard(len(images))]
        keys = distributed.gather(self._grouped(self.key_backbone, self.key_projector, mine))
        return keys[torch.argsort(order)]

    def forward(self, views, labels, step):
        q1, q2 = (self._grouped(self.backbone, self.projector, x) for x in views)
        k1, k2 = (self._keys(x) for x in views)
        mine = distributed.shard(len(k1))  # the positives of this process's queries
        negatives = self.queue.clone()
        loss = 0.5 * info_nce(q1, k2[mine], negatives, self.config["temperature"]) \
            + 0.5 * info_nce(q2, k1[mine], negatives, self.config["temperature"])
        self.enqueue(torch.cat([k1, k2]))
        return loss

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write `keys` over the oldest entries (FIFO ring buffer); only the newest queue_size fit."""
        size = len(self.queue)
        keys = F.normalize(keys.to(self.queue.dtype), dim=1)[-size:]
        slots = (self.queue_pointer + torch.arange(len(keys), device=keys.device)) % size
        self.queue[slots] = keys
        self.queue_pointer.copy_((self.queue_pointer + len(keys)) % size)

    def momentum_pairs(self):
        return [(self.key_backbone, self.backbone), (self.key_projector, self.projector)]

    def embed(self, images):
        return self.projector(self.backbone(images))
