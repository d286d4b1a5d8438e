"""One readable training loop with early stopping, best-checkpoint keeping and a progress bar."""

from transferkit.training.loop import EarlyStopping, TrainResult, adamw, train

__all__ = ["EarlyStopping", "TrainResult", "adamw", "train"]
