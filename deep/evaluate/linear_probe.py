"""Linear evaluation (thesis Sec. 4.5, Tables 4.1–4.2): a linear layer on frozen backbone features.

The protocol: softmax regression y = W f + b on the backbone's features, W and b from zero (the
problem is convex, so no random start is needed), trained with SGD (momentum 0.9) and a cosine
learning-rate decay to 0 over every step, minibatches of `batch_size` (the last smaller one kept),
lr given per 256 images and scaled by batch_size/256 (lightly's convention). The thesis: 10 epochs, lr 0.3
(Table 4.1 sweeps 0.05–0.35). The reported accuracy is the test top-1 after the FINAL epoch: the
test set is never used to pick an epoch.
"""
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from deep.evaluate.accuracy import topk_accuracy
from deep.schedule import cosine_lr

# Thesis Table 4.1: BYOL's linear-probe top-1 for each learning rate.
THESIS_TABLE_4_1 = {0.05: 85.3, 0.1: 85.48, 0.15: 85.48, 0.2: 85.51, 0.25: 85.52, 0.3: 85.55, 0.35: 85.7}


@dataclass(frozen=True)
class ProbeResult:
    """Test top-1/top-5 after the final epoch, and the mean training loss of each epoch."""

    top1: float
    top5: float
    epoch_losses: tuple[float, ...]


def fit_linear_probes(train_features: torch.Tensor | Callable[[int], torch.Tensor], train_labels: torch.Tensor,
                      test_features: torch.Tensor, test_labels: torch.Tensor, num_classes: int, *,
                      lrs, epochs: int, batch_size: int = 256, momentum: float = 0.9,
                      weight_decay: float = 0.0, seed: int = 0) -> list[ProbeResult]:
    """One linear classifier per learning rate in `lrs`, trained on `train_features` (N, d), tested after
    the last epoch.

    The classifiers see the same minibatches in the same order (`seed`), so each one is exactly what
    training it alone would give; training them side by side lets a sweep share every epoch's
    features. train_features may be a function epoch → (N, d) features (a new augmented view each epoch).
    """
    lrs = tuple(lrs)
    if not lrs or min(lrs) <= 0 or epochs < 1 or batch_size < 1 or weight_decay < 0 or not 0 <= momentum < 1:
        raise ValueError(f"need learning rates > 0, epochs >= 1, batch_size >= 1, weight_decay >= 0, momentum in "
                         f"[0, 1); got lrs={lrs}, epochs={epochs}, batch_size={batch_size}, "
                         f"weight_decay={weight_decay}, momentum={momentum}")
    features_of = train_features if callable(train_features) else (lambda epoch: train_features)
    n, dim = len(train_labels), test_features.shape[1]
    device = test_features.device
    classifiers, optimizers = [], []
    for lr in lrs:
        classifier = torch.nn.Linear(dim, num_classes).to(device)
        torch.nn.init.zeros_(classifier.weight)
        torch.nn.init.zeros_(classifier.bias)
        classifiers.append(classifier)
        optimizers.append(torch.optim.SGD(classifier.parameters(), lr=lr, momentum=momentum,
                                          weight_decay=weight_decay))
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = steps_per_epoch * epochs
    step, losses = 0, [[] for _ in lrs]
    for epoch in range(epochs):
        features = features_of(epoch)
        if features.shape != (n, dim):
            raise ValueError(f"epoch {epoch}: training features have shape {tuple(features.shape)}, "
                             f"expected {(n, dim)}")
        order = torch.randperm(n, generator=generator).to(device)
        totals = [0.0] * len(lrs)
        for first in range(0, n, batch_size):
            index = order[first:first + batch_size]
            batch, labels = features[index], train_labels[index]
            for r, (lr, classifier, optimizer) in enumerate(zip(lrs, classifiers, optimizers)):
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(step, total_steps, 0, lr * batch_size / 256)
                loss = F.cross_entropy(classifier(batch), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                totals[r] += loss.item() * len(index)
            step += 1
        for r in range(len(lrs)):
            losses[r].append(totals[r] / n)
    results = []
    with torch.no_grad():
        for classifier, epoch_losses in zip(classifiers, losses):
            scores = classifier(test_features)
            results.append(ProbeResult(topk_accuracy(scores, test_labels, 1), topk_accuracy(scores, test_labels, 5),
                                       tuple(epoch_losses)))
    return results


def parse_sweep(text: str) -> tuple[float, ...]:
    """'0.05,0.1,0.3' → (0.05, 0.1, 0.3); 'a,b,...,c' is the progression a, b, … up to c (step b − a).

    Every rate must be a finite number > 0; ValueError says what is wrong.
    """
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if "..." in parts:
            if len(parts) != 4 or parts[2] != "...":
                raise ValueError("a progression is written first,second,...,last")
            first, second, last = float(parts[0]), float(parts[1]), float(parts[3])
            step = second - first
            count = (last - first) / step if step > 0 else math.nan
            if not math.isfinite(count) or count < 1 or abs(count - round(count)) > 1e-6:
                raise ValueError(f"{last} is not reached from {first} in steps of {step:g}")
            rates = tuple(round(first + i * step, 12) for i in range(round(count) + 1))
        else:
            rates = tuple(float(p) for p in parts)
    except ValueError as err:
        raise ValueError(f"--sweep expects comma-separated learning rates > 0 (or first,second,...,last), "
                         f"got {text!r}: {err}") from None
    if not all(math.isfinite(r) and r > 0 for r in rates):
        raise ValueError(f"--sweep: every learning rate must be a finite number > 0, got {text!r}")
    if len(set(rates)) != len(rates):
        raise ValueError(f"--sweep: learning rates must be distinct, got {text!r}")
    return rates


def sweep_markdown(rates, top1s, epochs: int) -> str:
    """Thesis Table 4.1's layout: one column per learning rate; ours and, where it has one, the thesis'."""
    def cells(values):
        return " | ".join(values)

    thesis = [f"{THESIS_TABLE_4_1[r]:.2f}" if r in THESIS_TABLE_4_1 else "–" for r in rates]
    return "\n".join([
        f"| Learning rate | {cells(f'{r:g}' for r in rates)} |",
        f"|---|{'---|' * len(rates)}",
        f"| Top-1, ours (final epoch of {epochs}) | {cells(f'{a:.2f}' for a in top1s)} |",
        f"| Top-1, thesis Table 4.1 (BYOL, 400 ep.) | {cells(thesis)} |",
    ])
