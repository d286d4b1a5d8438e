"""``backbone="auto"``: fit on the installed candidate that ranks first on the user's own data."""

from __future__ import annotations

from typing import Any

from transferkit.backbones import Backbone, create_backbone
from transferkit.data.media import infer_modality
from transferkit.errors import DataError
from transferkit.progress import say
from transferkit.selection.ranking import rank


def choose_backbone(
    inputs: list[Any], y: list[Any], *, task: str, trainable: bool, seed: int | None, max_length: int,
    cache_dir: str | None, use_cache: bool, quiet: bool,
) -> tuple[Backbone, dict[str, Any]]:  # fmt: skip
    """The candidate with the best transferability score (skipping inference-only backbones when the strategy
    must train the body), and the ranking to record with the model.

    Raises:
        DataError: No ranked candidate can be trained, when ``trainable`` is required.
    """
    result = rank(
        inputs, y, task=task, rounds=0, seed=seed, max_length=max_length, cache_dir=cache_dir,
        use_cache=use_cache, quiet=quiet, modality=infer_modality(inputs),
    )  # fmt: skip
    for row in result["ranking"]:
        backbone = create_backbone(row["name"], max_length=max_length)
        if not trainable or backbone.trainable:
            break
    else:
        raise DataError("no ranked candidate can be fine-tuned; use --strategy feature-extraction")
    ranking = {
        "score": result["score"],
        "chosen": row["name"],
        "scores": {r["name"]: r["scores"][result["score"]] for r in result["ranking"]},
    }
    say(f"backbone auto: {row['name']} ({result['summary']})", quiet=quiet)
    return backbone, ranking
