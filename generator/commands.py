"""The measuring subcommands of `generate-skills`: coverage, bench and demo."""

from __future__ import annotations

import click


def register_commands(main: click.Group) -> None:
    pass
