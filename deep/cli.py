"""Subcommands of `ssldyn` provided by the deep package."""


def register(subparsers) -> None:
    """Add this package's subcommands to the `ssldyn` parser."""
