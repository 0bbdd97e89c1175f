"""Subcommands of `ssldyn` provided by the figures package: phase, figures.

matplotlib and the recipes are imported inside the handlers so that other commands start fast.
"""
from pathlib import Path

from ssldyn.args import nonnegative_float, positive_float, writable_dir
from ssldyn.output import emit

FIGURES_DIR = Path(__file__).resolve().parent


def register(subparsers) -> None:
    """Add this package's subcommands to the `ssldyn` parser."""
    phase = subparsers.add_parser("phase", help="(p, s) phase portraits of Eqs. 11-12 (paper Sec. 3.4)")
    phase.add_argument("--eta", type=nonnegative_float, nargs="+", default=[0.0, 0.01, 1.0],
                       help="weight decays, one panel each (default 0 0.01 1)")
    phase.add_argument("--sigma2", type=nonnegative_float, default=0.0, help="augmentation variance σ² >= 0 (default 0)")
    phase.add_argument("--alpha-p", type=positive_float, default=1.0, help="predictor lr ratio α_p > 0 (default 1)")
    phase.add_argument("--tau", type=nonnegative_float, default=1.0, help="target ratio τ >= 0 (default 1)")
    phase.add_argument("--out", type=writable_dir, default=FIGURES_DIR, help=f"output directory (default {FIGURES_DIR})")
    phase.add_argument("--json", action="store_true", help="print one JSON object")
    phase.set_defaults(func=phase_command)

    figures = subparsers.add_parser("figures", help="remake every figure in figures/ (or only some)")
    figures.add_argument("--only", nargs="+", metavar="NAME", help="run only these recipes")
    figures.add_argument("--out", type=writable_dir, default=FIGURES_DIR, help=f"output directory (default {FIGURES_DIR})")
    figures.add_argument("--json", action="store_true", help="print one JSON object")
    figures.set_defaults(func=figures_command)


def phase_command(args) -> int:
    from figures.theory import draw_phase_portraits

    args.out.mkdir(parents=True, exist_ok=True)
    paths = draw_phase_portraits(args.out, etas=tuple(args.eta), alpha_p=args.alpha_p, sigma2=args.sigma2, tau=args.tau)
    emit({"files": [str(p) for p in paths]}, args.json, "\n".join(map(str, paths)))
    return 0


def figures_command(args) -> int:
    from figures.gallery import RECIPES

    names = args.only or list(RECIPES)
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        raise ValueError(f"argument --only: unknown figure {unknown[0]!r}; choose from {', '.join(RECIPES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    written = {name: [str(p) for p in RECIPES[name](args.out)] for name in names}
    emit({"figures": written}, args.json, "\n".join(p for paths in written.values() for p in paths))
    return 0
