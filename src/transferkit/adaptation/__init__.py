"""Domain adaptation: use unlabeled inputs of the domain a model will serve (the target) to adapt a model trained
on labeled inputs of another (the source).

Pure functions on features where possible: :mod:`.alignment` (CORAL, subspace alignment), :mod:`.self_training`
(confident class-balanced pseudo-labels), :mod:`.selection` (reverse validation, the label-free check that
``adapt="auto"`` uses); :mod:`.adabn` re-estimates batch-norm statistics in a torch backbone; :mod:`.heads`
folds a feature map into a head so a saved model needs no extra step. :mod:`transferkit.strategies.adapt` runs
them inside ``fit``. This file imports nothing heavy: the command line reads :data:`METHODS` for ``--help``.
"""

from __future__ import annotations

# "auto": measured choice (or source-only); "none": source-only. Order: cheapest first. "mcc" (:mod:`.mcc`) is a
# loss during fine-tuning (--strategy finetune, where "auto" weighs it); the others run on frozen features.
METHODS = ("auto", "none", "coral", "subspace", "self-training", "adabn", "mcc")
TRAINING_METHODS = ("mcc",)
