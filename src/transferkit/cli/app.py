"""The command line's shared parts: the typer app, consoles, one-line errors, common options."""

from __future__ import annotations

import functools
import inspect
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from transferkit.config import FitConfig
from transferkit.errors import TransferKitError
from transferkit.settings import declared
from transferkit.strategies.registry import STRATEGIES

app = typer.Typer(
    name="transferkit",
    help="Transfer learning for small labeled data sets: fit, evaluate, predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(width=None if os.isatty(1) else 120)  # wide tables when piped or logged
err = Console(stderr=True)


def friendly(command):
    """Turn user errors into one line on stderr (exit 2) and Ctrl-C into a clean exit (130)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TransferKitError as error:
            # One line whatever the terminal width (soft_wrap), with the message printed verbatim (escape: a
            # message such as "pip install 'transferkit[text]'" must not lose its brackets to rich markup).
            message = escape(" ".join(str(error).splitlines()))
            err.print(f"[red]error:[/red] {message}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted; no model folder or output file was written")
            raise typer.Exit(130) from None

    return wrapper


TextCol = Annotated[str | None, typer.Option("--text-col", help="Column holding the texts (detected if omitted).")]
LabelCol = Annotated[str | None, typer.Option("--label-col", help="Column holding the labels (detected if omitted).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or status lines.")]
Modality = Annotated[
    str | None,
    typer.Option(help="text | image | audio (detected if omitted: a folder of such files, or a column of paths)."),
]
OnBadFile = Annotated[
    str,
    typer.Option(help="Missing or unreadable image/audio files: fail (one error naming them) | skip (leave them out)."),
]


def _show_metrics(metrics: dict, title: str) -> None:
    from transferkit.evaluation import metrics_table

    for table in metrics_table(metrics, title=title):
        out.print(table)


def _write_json(path: Path, data: dict) -> None:
    from transferkit.files import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)


def _setting_parameters() -> list[inspect.Parameter]:
    """Command line options for every declared setting: FitConfig's, then each strategy's own (same names,
    defaults and help as in Python; see :mod:`transferkit.settings`)."""
    declarations = [*declared(FitConfig)]
    declarations += [item for spec in STRATEGIES if spec.settings for item in declared(spec.settings)]
    parameters = []
    for item in declarations:
        if not item.cli:
            continue
        names = [f"--{item.name.replace('_', '-')}", *([item.short] if item.short else [])]
        option = typer.Option(*names, help=item.help)
        annotation = Annotated[item.type, option]
        parameters.append(
            inspect.Parameter(item.name, inspect.Parameter.KEYWORD_ONLY, default=item.default, annotation=annotation)
        )
    return parameters


def with_settings(command):
    """Give ``command`` (which takes ``**settings``) one option per declared setting."""
    signature = inspect.signature(command, eval_str=True)
    fixed = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    command.__signature__ = signature.replace(parameters=[*fixed, *_setting_parameters()])
    return command
