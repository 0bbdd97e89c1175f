"""Subcommands of `ssldyn` provided by the analysis package."""


def register(subparsers) -> None:
    """Add this package's subcommands to the `ssldyn` parser."""
