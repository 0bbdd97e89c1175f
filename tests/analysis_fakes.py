"""Small fake run directories with known properties, written as deep training writes them (run_format)."""
import json
from pathlib import Path

import numpy as np

DIM = 6
F_EIGENVALUES = np.array([3.0, 2.0, 1.5, 1.0, 0.5, 0.2])
P_EIGENVALUES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])


def basis(seed: int = 0) -> np.ndarray:
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(DIM, DIM)))
    return Q


def aligning_predictors(count: int, seed: int = 0):
    """(W_p, F) pairs: W_p moves linearly from a random (asymmetric, unaligned) matrix to
    U diag(P) Uᵀ, which is symmetric and shares F = U diag(F_EIGENVALUES) Uᵀ's eigenvectors."""
    U = basis(seed)
    F = U @ np.diag(F_EIGENVALUES) @ U.T
    start = np.random.default_rng(seed + 1).normal(size=(DIM, DIM)) / np.sqrt(DIM)
    end = U @ np.diag(P_EIGENVALUES) @ U.T
    return [((1 - lam) * start + lam * end, F) for lam in np.linspace(0, 1, count)]


def static_predictors(count: int, seed: int = 0):
    """(W_p, F) pairs where W_p stays the same random asymmetric matrix."""
    pairs = aligning_predictors(count, seed)
    return [(pairs[0][0], F) for _, F in pairs]


def tail_unaligned_predictors(count: int, seed: int = 0):
    """(W_p, F) pairs where the signal directions of F (its top three, s_j ≥ 1% of s_1) end aligned but
    W_p keeps mapping the three null directions (s_j = 0) onto them. W_p moves from a random matrix to
    U (diag(P) + E) Uᵀ with E nonzero only in the (signal row, null column) block: W_p u_j is along u_j
    for every signal direction j, yet [F, W_p] = U [Λ, E] Uᵀ ≠ 0 at the end."""
    U = basis(seed)
    values = np.array([3.0, 2.0, 1.5, 0.0, 0.0, 0.0])
    F = U @ np.diag(values) @ U.T
    coupling = np.zeros((DIM, DIM))
    coupling[:3, 3:] = 0.5  # W_p e_tail has components on e_signal; W_p e_signal stays along e_signal
    start = np.random.default_rng(seed + 1).normal(size=(DIM, DIM)) / np.sqrt(DIM)
    end = U @ (np.diag(P_EIGENVALUES) + coupling) @ U.T
    return [((1 - lam) * start + lam * end, F) for lam in np.linspace(0, 1, count)]


def write_run(path: Path, pairs=None, *, predictor: str = "linear", epochs: int = 8, std=None, rank=None,
              config_overrides: dict | None = None, knn=None) -> Path:
    """A run directory: config.json, metrics.jsonl (step and epoch lines), snapshots/step_*.npz."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = {"method": "byol", "dataset": "synthetic", "preset": "test", "seed": 0, "width": 4,
              "batch_size": 64, "epochs": epochs, "lr": 0.06, "weight_decay": 5e-4, "momentum": 0.9,
              "ema": 0.99, "predictor": predictor, "predictor_lr_mult": 1.0, "projector": "mlp",
              "device": "cpu", "snapshots": 0 if pairs is None else len(pairs)}
    config.update(config_overrides or {})
    (path / "config.json").write_text(json.dumps(config))
    std = np.full(epochs, 0.8) if std is None else np.asarray(std, dtype=float)
    rank = np.full(epochs, 5.0) if rank is None else np.asarray(rank, dtype=float)
    knn = np.linspace(20, 40, epochs) if knn is None else np.asarray(knn, dtype=float)
    steps_per_epoch = 10
    lines = []
    for e in range(1, epochs + 1):
        lines.append({"kind": "step", "step": (e - 1) * steps_per_epoch, "epoch": e - 1, "loss": 1.0 / e,
                      "lr": 0.06, "img_per_s": 100.0})
        lines.append({"kind": "epoch", "epoch": e, "step": e * steps_per_epoch, "loss": 1.0 / e,
                      "knn_top1": float(knn[e - 1]), "knn_top5": float(knn[e - 1]) + 30, "std": float(std[e - 1]),
                      "effective_rank": float(rank[e - 1]), "seconds": 1.0})
    (path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if pairs is not None:
        snapshots = path / "snapshots"
        snapshots.mkdir(exist_ok=True)
        last = epochs * steps_per_epoch
        for i, (W_p, F) in enumerate(pairs):
            step = round(i * last / max(1, len(pairs) - 1))
            np.savez(snapshots / f"step_{step:07d}.npz", W_p=W_p, F=F, step=np.int64(step),
                     epoch=np.int64(step // steps_per_epoch))
    return path
