"""X and X' of CIFAR-10 under the project's augmentations, how far they are from commuting, and the
per-mode staircase of the linear theory they predict (issue 21; deep.view_covariance,
linear_dynamics.modes). Prints one JSON object.

    python benchmarks/view_spectra.py [--images 2000] [--views 8] [--pool 4] [--seed 0]

Inputs: a seeded class-balanced sample of training images, each seen through `--views` random views
of BYOL's first view (no solarize), normalised and average-pooled by `--pool` (192 dimensions at 4).
"""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ssldyn.args import count, seed_number  # noqa: E402
from ssldyn.errors import Parser, report_errors  # noqa: E402


def main(argv=None) -> int:
    from deep import augment
    from deep.data import load_dataset
    from deep.evaluate.sample import balanced_sample
    from deep.view_covariance import covariances_from_views, mode_spectra, pooled_views
    from linear_dynamics.modes import mode_thresholds, surviving_modes

    parser = Parser(prog="python benchmarks/view_spectra.py", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=count(10**6), default=2000)
    parser.add_argument("--views", type=count(1000), default=8)
    parser.add_argument("--pool", type=count(32), default=4)
    parser.add_argument("--seed", type=seed_number, default=0)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data-root")
    args = parser.parse_args(argv)
    if args.images < 10 or args.views < 2:
        parser.error("--images must be >= 10 and --views >= 2")
    start = time.perf_counter()
    data = load_dataset(args.dataset, args.data_root)
    images = balanced_sample(data.train.images, data.train.labels, args.images, args.seed)
    views = pooled_views(images, augment.BYOL_VIEWS[0], args.views, torch.Generator().manual_seed(args.seed),
                         data.mean, data.std, args.pool)
    X, Xp = covariances_from_views(views)
    spectra = mode_spectra(X, Xp)
    lam, nu = np.clip(spectra["lam"], 1e-12, None), np.clip(spectra["nu"], 0, None)
    thresholds = mode_thresholds(lam, nu)
    etas = [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0]
    print(json.dumps({
        "dataset": args.dataset, "images": len(images), "views": args.views, "dims": int(X.shape[0]),
        "commutator": spectra["commutator"], "off_diagonal": spectra["off_diagonal"],
        "lam_top10": spectra["lam"][:10].round(5).tolist(), "nu_top10": spectra["nu"][:10].round(5).tolist(),
        "nu_over_lam_top10": (spectra["nu"][:10] / spectra["lam"][:10]).round(4).tolist(),
        "eta_star_top10": np.sort(thresholds)[::-1][:10].round(6).tolist(),
        "surviving_modes": {f"{eta:g}": int(surviving_modes(eta, lam, nu)) for eta in etas},
        "seconds": round(time.perf_counter() - start, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(report_errors("python benchmarks/view_spectra.py", main))
