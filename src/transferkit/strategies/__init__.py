"""How a backbone is adapted: feature extraction, fine-tuning, and ``auto``, which measures both."""

from transferkit.strategies.fit import fit_model

__all__ = ["fit_model"]
