"""The table ``predict`` writes, shared by the single-process command and the sharded workers (torch-free, so an
exported model predicts without torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd


def prediction_table(
    fitted: Any, frame: pd.DataFrame, inputs: Sequence[Any], *, proba: bool = True, quiet: bool = True
) -> pd.DataFrame:
    """The input table plus ``prediction`` and, for classifiers, one ``proba_<class>`` column per class."""
    predicted, probabilities = fitted.predict_outputs(inputs, quiet=quiet)
    result = frame.copy()
    result["prediction"] = ["|".join(p) for p in predicted] if fitted.task == "multilabel" else predicted
    if proba and probabilities is not None:
        for i, name in enumerate(fitted.classes):
            result[f"proba_{name}"] = probabilities[:, i].round(6)
    return result
