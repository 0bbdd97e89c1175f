"""Top-k accuracy of class scores, in percent (the numbers of thesis Tables 4.1–4.3)."""
import torch


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Percent of rows of `scores` (N, C) whose true label is among the k highest (k capped at C)."""
    if scores.dim() != 2 or scores.shape[0] != labels.shape[0] or scores.shape[0] == 0:
        raise ValueError(f"scores must be (N, C) with N = len(labels) > 0, got {tuple(scores.shape)} "
                         f"and {tuple(labels.shape)} labels")
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return 100.0 * (top == labels.unsqueeze(1)).any(dim=1).float().mean().item()


@torch.no_grad()
def classifier_accuracy(backbone, classifier, images: torch.Tensor, labels: torch.Tensor, to_input, autocast,
                        memory_format, batch_size: int = 512) -> tuple[float, float]:
    """(top-1, top-5) of classifier(backbone(x)) on uint8 `images`, both networks in eval mode.

    `to_input` maps a uint8 batch to the network input; `autocast` is a context factory.
    """
    modes = backbone.training, classifier.training
    backbone.eval()
    classifier.eval()
    scores = []
    for first in range(0, len(images), batch_size):
        x = to_input(images[first:first + batch_size]).contiguous(memory_format=memory_format)
        with autocast():
            scores.append(classifier(backbone(x)).float())
    backbone.train(modes[0])
    classifier.train(modes[1])
    scores = torch.cat(scores)
    return topk_accuracy(scores, labels, 1), topk_accuracy(scores, labels, 5)
