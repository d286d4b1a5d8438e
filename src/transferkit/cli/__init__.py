"""The ``transferkit`` command line: a thin typer layer over :mod:`transferkit.api`.

Importing it loads typer, rich and the settings declarations only; each command imports what it needs, so
``transferkit --help``, ``models`` and ``datasets`` answer without torch.
"""

from transferkit.cli import commands, distributed, explain, export, faces, serve  # noqa: F401 - registers the commands on the app
from transferkit.cli.app import app

app.command(name="embed")(distributed.embed)  # after fit, compare, rank, evaluate and predict in --help

__all__ = ["app", "main"]


def main() -> None:
    app()
