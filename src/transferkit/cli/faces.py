"""``transferkit faces``: calibrate a same-person threshold on the user's people, verify two photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from transferkit.cli.app import OnBadFile, app, friendly, out

faces_app = typer.Typer(help="Faces: calibrate a same-person threshold, verify two photos.", no_args_is_help=True)
app.add_typer(faces_app, name="faces")


@faces_app.command("calibrate")
@friendly
def faces_calibrate(
    data: Annotated[str, typer.Argument(help="A folder with one sub-folder of photos per person (or a table).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Verifier folder to write.")],
    max_false_accept: Annotated[
        float | None,
        typer.Option(help="Keep the false-accept rate at or below this (e.g. 0.01); default: best balanced accuracy."),
    ] = None,
    on_bad_file: OnBadFile = "fail",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing verifier folder.")] = False,
) -> None:
    """Set the same-person distance threshold on your own labeled faces; reports how it does on unseen people."""
    from transferkit.artifacts import check_output
    from transferkit.data import load_labeled
    from transferkit.faces import calibrate

    check_output(output, overwrite=overwrite)
    labeled = load_labeled(data, modality="image", task="classification", on_bad_file=on_bad_file)
    verifier = calibrate(labeled.inputs, labeled.y, max_false_accept=max_false_accept)
    verifier.save(output, overwrite=overwrite)
    facts = verifier.calibration
    unseen = facts["on_unseen_people"] or {}
    out.print(
        f"threshold {verifier.threshold} from {facts['people']} people, {facts['photos']} photos "
        f"({facts['faces_detected']} faces detected); on unseen people: true accept "
        f"{unseen.get('true_accept_rate', 'n/a')}, false accept {unseen.get('false_accept_rate', 'n/a')}; "
        f"saved to {output}",
        highlight=False, markup=False, soft_wrap=True,
    )  # fmt: skip


@faces_app.command("verify")
@friendly
def faces_verify(
    verifier: Annotated[Path, typer.Argument(help="Folder written by `transferkit faces calibrate`.")],
    first: Annotated[str, typer.Argument(help="A photo.")],
    second: Annotated[str, typer.Argument(help="Another photo.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Same person or not: the distance between the two faces against the calibrated threshold."""
    import json

    from transferkit.faces import FaceVerifier

    result = FaceVerifier.load(verifier).verify(first, second)
    if json_output:
        out.print(json.dumps(result), highlight=False, markup=False)
        return
    verdict = "same person" if result["same"] else "different people"
    sign = "<" if result["same"] else ">="
    out.print(f"{verdict} (distance {result['distance']} {sign} threshold {result['threshold']})", highlight=False)
