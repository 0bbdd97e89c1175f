"""MoCo (He et al. 2020; thesis Sec. 2.2, 4.6.1): InfoNCE against a queue of momentum-encoded keys.

query  q = projector(backbone(x)),  key k = the same through the EMA key encoder (Eq. 2.4)
loss   ½ InfoNCE(q1, k2, queue) + ½ InfoNCE(q2, k1, queue), cosine similarity / τ (Eqs. 2.1–2.2)
queue  FIFO of the latest `queue_size` keys; each step's keys (from every process) enqueued once,
       after the loss has used the old queue.
Shuffle BN (MoCo Sec. 3.3): BatchNorm statistics of a batch would let the query recognise its own
key among the queued ones. As MoCo does across GPUs, each process runs queries in `bn_splits`
groups with their own statistics and keys in groups of a random permutation of the batch.
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

    def _queries(self, x):
        """Online projections, each of `bn_splits` groups with its own BatchNorm statistics."""
        return torch.cat([self.projector(self.backbone(part)) for part in x.chunk(self.config["bn_splits"])])

    @torch.no_grad()
    def _keys(self, x):
        """Key projections of a shuffled batch in `bn_splits` groups, returned in the original order."""
        order = torch.randperm(len(x), device=x.device)
        parts = x[order].chunk(self.config["bn_splits"])
        keys = torch.cat([self.key_projector(self.key_backbone(part)) for part in parts])
        return keys[torch.argsort(order)]

    def forward(self, views, labels, step):
        q1, q2 = (self._queries(x) for x in views)
        k1, k2 = (self._keys(x) for x in views)
        negatives = self.queue.clone()
        loss = 0.5 * info_nce(q1, k2, negatives, self.config["temperature"]) \
            + 0.5 * info_nce(q2, k1, negatives, self.config["temperature"])
        self.enqueue(distributed.gather(torch.cat([k1, k2])))
        return loss

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write `keys` over the oldest entries (FIFO ring buffer); only the newest queue_size fit."""
        size = len(self.queue)
        keys = F.normalize(keys.float(), dim=1)[-size:]
        slots = (self.queue_pointer + torch.arange(len(keys), device=keys.device)) % size
        self.queue[slots] = keys
        self.queue_pointer.copy_((self.queue_pointer + len(keys)) % size)

    def momentum_pairs(self):
        return [(self.key_backbone, self.backbone), (self.key_projector, self.projector)]

    def embed(self, images):
        return self.projector(self.backbone(images))
