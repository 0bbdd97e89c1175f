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
import argparse
import os
import sys

# numpy's BLAS on one thread: the linear model's matrices are at most 128×128, where a second thread
# only adds waiting, and on a busy 2-core machine an implicit solver's factorisation measured 0.25 s
# with two OpenBLAS threads against 0.8 ms with one (`ssldyn linear --alpha-p 1e4`: 1.44 s → 0.91 s).
# Set before numpy loads; a value the user exported wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

USER_ERRORS = (ValueError, OSError, FloatingPointError, KeyError)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


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


def _allocation_failure(err: RuntimeError) -> bool:
    text = str(err).lower()
    return "can't allocate memory" in text or "out of memory" in text


def report_errors(name: str, call, *args) -> int:
    """`call(*args)`'s exit status, with bad input (USER_ERRORS), running out of memory and a number out of
    range each one line `NAME: error: ...` on stderr and status 2 (SSLDYN_DEBUG=1: the traceback instead);
    Ctrl-C is 130. The benchmarks' scripts use it too."""
    try:
        status = call(*args)
    except USER_ERRORS as err:
        if os.environ.get("SSLDYN_DEBUG"):
            raise
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        print(f"{name}: error: {message}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:
        # torch's allocators raise RuntimeError ("can't allocate memory", "out of memory"); any other
        # RuntimeError is a bug and keeps its traceback
        if os.environ.get("SSLDYN_DEBUG") or (isinstance(err, RuntimeError) and not _allocation_failure(err)):
            raise
        print(f"{name}: error: out of memory: the sizes asked for (batch, width, seeds, images, grid) do not "
              "fit in this machine's memory; ask for smaller ones", file=sys.stderr)
        return 2
    except OverflowError as err:
        if os.environ.get("SSLDYN_DEBUG"):
            raise
        print(f"{name}: error: a number given is too large ({err}); use a smaller value", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    return status or 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return report_errors(f"ssldyn {args.command}", args.func, args)


if __name__ == "__main__":
    sys.exit(main())
