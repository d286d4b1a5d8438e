"""Temperature scaling inside ``fit`` (Guo et al. 2017, https://arxiv.org/abs/1706.04599), on scores the model
did not train on: the validation split of a model whose body trained, or out-of-fold scores (the strategy
refitted per fold) for models on frozen or from-scratch features."""

from __future__ import annotations

import numpy as np

from transferkit.evaluation.calibration import fit_temperature
from transferkit.model import TransferModel
from transferkit.strategies.common import FitRun, folds
from transferkit.strategies.registry import STRATEGIES


def calibrate(model: TransferModel, run: FitRun) -> None:
    """Set ``model.temperature`` and record how in ``model.info["calibration"]``."""
    if model.finetuned:
        if run.valid_part is None:
            model.info["calibration"] = "skipped: too few examples to hold out a validation split"
            return
        scores, truth, source = run.scores_of(model, run.valid_part), run.target[run.valid_part], "validation split"
    else:
        splits = folds(run.target, run.encoder, run.config)
        if splits is None:
            model.info["calibration"] = "skipped: too few examples per class for out-of-fold scores"
            return
        implementation = STRATEGIES.get(model.strategy).implementation()
        scores = np.zeros((len(run.inputs), run.encoder.n_outputs), dtype=np.float64)
        for train, held in splits:
            scores[held] = run.scores_of(implementation(run.subset(train)), held)
        truth, source = run.target, f"{len(splits)}-fold out-of-fold scores"
    model.temperature = fit_temperature(scores, truth, run.encoder.task)
    model.info["calibration"] = {"method": "temperature", "temperature": round(model.temperature, 4), "on": source}
