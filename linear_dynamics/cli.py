"""Subcommands of `ssldyn` provided by the linear_dynamics package."""


def register(subparsers) -> None:
    """Add this package's subcommands to the `ssldyn` parser."""
