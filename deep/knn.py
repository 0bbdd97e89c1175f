"""Weighted k-nearest-neighbour evaluation (Wu et al. 2018; thesis Sec. 4.5 and Fig. 4.4).

Each test feature f votes with its k most cosine-similar bank features f_i (clean, unaugmented
training images), neighbour i weighing α_i = exp(f_i·f / τ) for its class; the class scores are
sorted for top-1 and top-5. Thesis values: k = 200, τ = 0.1.
"""
import torch
import torch.nn.functional as F

from deep import distributed
from deep.losses import full_precision


@full_precision
def knn_scores(features: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, num_classes: int,
               k: int = 200, temperature: float = 0.1) -> torch.Tensor:
    """Class scores (N, num_classes) for N query features against a bank (M, d) with labels (M,).

    Features need not be normalised (cosine similarity is used). k is capped at the bank size.
    Computed in float32 (float64 stays) with autocast off, so bf16 features lose no vote precision.
    """
    if len(bank) == 0:
        raise ValueError("the kNN bank is empty")
    query = F.normalize(features, dim=1)
    bank = F.normalize(bank, dim=1)
    similarity, index = (query @ bank.T).topk(k=min(k, len(bank)), dim=1)
    weights = (similarity / temperature).exp()
    votes = F.one_hot(bank_labels[index], num_classes).to(weights.dtype)
    return (votes * weights.unsqueeze(-1)).sum(dim=1)


def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor,
                 num_classes: int, k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> tuple[float, float]:
    """(top-1, top-5) accuracy in percent of the weighted kNN classifier; top-5 is top-min(5, C).

    Queries go in chunks of `chunk` so the similarity matrix stays small.
    """
    top = min(5, num_classes)
    correct1 = correct5 = 0
    for start in range(0, len(features), chunk):
        scores = knn_scores(features[start:start + chunk], bank, bank_labels, num_classes, k, temperature)
        ranked = scores.topk(top, dim=1).indices
        truth = labels[start:start + chunk].unsqueeze(1)
        correct1 += (ranked[:, :1] == truth).sum().item()
        correct5 += (ranked == truth).any(dim=1).sum().item()
    return 100.0 * correct1 / len(features), 100.0 * correct5 / len(features)


@torch.no_grad()
def extract_features(network, images_uint8: torch.Tensor, normalize, batch_size: int,
                     autocast, memory_format=torch.contiguous_format) -> torch.Tensor:
    """Features of clean images, this process's shard of them gathered from every process, in order.

    `normalize` maps a uint8 batch to the network's float input; `autocast` is a context factory.
    The network is put in eval mode (BatchNorm running statistics) and back to its previous mode.
    """
    n, world = len(images_uint8), distributed.world_size()
    per_rank = -(-n // world)
    if (world - 1) * per_rank >= n:
        raise ValueError(f"cannot share {n} images among {world} processes so that each gets some")
    local = images_uint8[distributed.rank() * per_rank:(distributed.rank() + 1) * per_rank]
    was_training = network.training
    network.eval()
    outputs = []
    for first in range(0, len(local), batch_size):
        x = normalize(local[first:first + batch_size]).contiguous(memory_format=memory_format)
        with autocast():
            outputs.append(network(x).float())
    network.train(was_training)
    features = torch.cat(outputs)
    if world > 1:  # all_gather needs equal shards: pad the last one, trim after gathering
        features = torch.cat([features, features.new_zeros(per_rank - len(features), features.shape[1])])
        features = distributed.gather(features)[:n]
    return features
