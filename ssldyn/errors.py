"""One line, exit status 2, for bad input: the argument parser and the error report that `ssldyn` and the
benchmarks' scripts share. Importing it has no side effect (ssldyn.cli also sets numpy's thread count)."""
import argparse
import os
import sys

USER_ERRORS = (ValueError, OSError, FloatingPointError, KeyError)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


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
