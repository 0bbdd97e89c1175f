"""`ssldyn`: one entry point, subcommands registered by each package (SPEC §1).

Conventions every subcommand follows:
- ``--json`` prints exactly one JSON object on stdout and nothing else there (`ssldyn.output.emit`;
  the packages' cli modules import it from there, never from here, which imports them);
- bad input exits 2 with one line on stderr naming the argument and what is allowed, no traceback.
  Handlers signal bad input by raising ``ValueError`` / ``OSError`` (or subclasses) with a message
  that already names the culprit; set SSLDYN_DEBUG=1 to see the traceback instead.
- a package's ``cli.register`` must stay cheap to import: torch is imported inside handlers only,
  so that the theory commands start fast and ``linear_dynamics`` never needs torch.
"""
import os
import sys

# numpy's BLAS on one thread: the linear model's matrices are at most 128×128, where a second thread
# only adds waiting, and on a busy 2-core machine an implicit solver's factorisation measured 0.25 s
# with two OpenBLAS threads against 0.8 ms with one (`ssldyn linear --alpha-p 1e4`: 1.44 s → 0.91 s).
# Set before numpy loads; a value the user exported wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from ssldyn.errors import Parser, report_errors  # noqa: E402 (after the BLAS setting)


def build_parser() -> Parser:
    from analysis import cli as analysis_cli
    from deep import cli as deep_cli
    from figures import cli as figures_cli
    from linear_dynamics import cli as linear_cli

    parser = Parser(prog="ssldyn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for module in (linear_cli, deep_cli, analysis_cli, figures_cli):
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return report_errors(f"ssldyn {args.command}", args.func, args)


if __name__ == "__main__":
    sys.exit(main())
