"""Cheap from-scratch models: what the data give *without* pre-trained weights, measured by ``auto`` and
``compare`` next to transfer (strong on purpose: a straw man flatters transfer).

- ``tfidf-lr`` (text): TF-IDF word 1-2 grams + character 2-5 grams, logistic regression with C chosen by
  cross-validation (ridge for regression). The usual winner when labels follow words.
- ``mfcc-lr`` (audio): mean and standard deviation of 20 MFCCs and their deltas over the (silence-trimmed)
  clip, standardised, logistic regression with C by cross-validation.

The expensive from-scratch baselines that train a network (the same encoder from random weights, a small CNN)
are experiments, in :mod:`transferkit.experiments.baselines`.
"""

from transferkit.strategies.registry import register_strategy

register_strategy(
    name="tfidf-lr",
    summary="from scratch: TF-IDF word 1-2 and char 2-5 grams + logistic regression (C by CV) or ridge",
    entry="fit:fit_tfidf",
    package=__name__,
    kind="scratch",
    cost="cheap",
    modalities=("text",),
    uses_backbone=False,
)
register_strategy(
    name="mfcc-lr",
    summary="from scratch: MFCC statistics (20 coefficients + deltas, mean and std) + logistic regression",
    entry="fit:fit_mfcc",
    package=__name__,
    kind="scratch",
    cost="cheap",
    modalities=("audio",),
    uses_backbone=False,
)
