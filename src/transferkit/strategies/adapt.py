"""Domain adaptation inside ``fit``: unlabeled target inputs adapt a model fitted on the labeled source.

Runs the methods of :mod:`transferkit.adaptation` on the frozen embeddings of both domains (through the same
embedding cache) and folds the result into the model, so that predicting needs no extra step: CORAL and
self-training refit the head, subspace alignment composes its target projection into the head, AdaBN saves
the backbone's target batch-norm statistics (a ``backbone-delta`` of buffers). ``adapt="auto"`` measures the
methods by reverse validation (:mod:`transferkit.adaptation.selection`) and keeps source-only unless one gains.

A model whose body was fine-tuned (``finetune``, or ``auto`` when it chose fine-tuning) reads no frozen features;
there ``adapt="auto"`` weighs MCC (:mod:`transferkit.adaptation.mcc`) instead: it fine-tunes a second time from
the pre-trained weights, with the MCC loss on the unlabeled target inputs, on the same source examples, seed and
validation split, and reverse-validates both fine-tuned models on that validation split, which neither trained
on. Each model pseudo-labels the target; a ridge classifier on that model's own target features learns those
labels and scores the held-out source examples. Plain fine-tuning stays unless MCC gains there by more than
``AUTO_MARGIN`` and 1.645 bootstrap standard errors of the paired difference (a one-sided test at 5%, as in
``auto``'s held-out contest): the split is small, and on digits <-> MNIST, where both fine-tunings stay near
chance on the target, a one-standard-error rule chose MCC on noise (benchmarks/domain.py). Why not reverse
validation as the frozen methods do it, training each arm on every source fold and again back from the target:
that costs 2 x 3 x 2 fine-tunings; this costs one more fine-tuning and encoding the target twice. The price:
one held-out split (small: 20% of the labeled data), and a backward step that is the same ridge classifier for
both arms rather than fine-tuning with MCC again.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from transferkit.adaptation import METHODS, TRAINING_METHODS
from transferkit.adaptation.adabn import adabn, batch_norm_layers
from transferkit.adaptation.alignment import coral, subspace_alignment
from transferkit.adaptation.heads import compose
from transferkit.adaptation.selection import RidgeScores, choose, reverse_outputs, reverse_validation
from transferkit.adaptation.self_training import self_train
from transferkit.backbones import Backbone
from transferkit.config import FitConfig
from transferkit.data.media import infer_modality
from transferkit.devices import place, resolve_device
from transferkit.errors import DataError, TransferKitError
from transferkit.model import TransferModel
from transferkit.progress import say
from transferkit.strategies.common import (
    ONE_SIDED_Z,
    FitRun,
    folds,
    frozen_embeddings,
    paired_bootstrap_errors,
    validation_score,
)
from transferkit.strategies.feature_extraction.fit import fit_head, resolve_head
from transferkit.strategies.finetune.fit import finetuned_model
from transferkit.strategies.registry import StrategySpec
from transferkit.training import parallel

# Strategies whose model can end as a frozen backbone + head, which is what the methods adapt.
ADAPTABLE = ("feature-extraction", "auto")
# Strategies whose fine-tuning ``auto`` weighs against the same fine-tuning with the MCC loss on the target.
MCC_STRATEGIES = ("finetune",)
AUTO_MARGIN = 0.01  # a method must gain this much reverse-validated macro-F1 over source-only to be used
AUTO_MAX_EXAMPLES = 1000  # reverse validation reads at most this many source and target examples (cost)
# Reverse validation scores small held-out folds (20 examples at 30 per class, binary): one 3-fold pass was too
# noisy to choose by (benchmarks/domain.py), so it repeats the folds.
AUTO_REPEATS = 3


def check_unlabeled(spec: StrategySpec, config: FitConfig, task: str, unlabeled: Sequence[Any] | None) -> None:
    """Refuse, in one line, what adaptation cannot do, before anything trains.

    Raises:
        TransferKitError: ``adapt`` set without unlabeled inputs, a strategy that trains the body or builds its
            own features, self-training or auto on a task other than classification.
        DataError: Empty target data.
    """
    if config.adapt not in METHODS:
        raise TransferKitError(f"adapt must be one of {', '.join(METHODS)}, got {config.adapt!r}")
    if unlabeled is None:
        if config.adapt not in ("auto", "none"):
            raise TransferKitError(f"adapt={config.adapt!r} needs unlabeled target inputs: pass --unlabeled TARGET")
        return
    if len(unlabeled) == 0:
        raise DataError("the unlabeled target data hold no inputs; pass a table or folder with some")
    if config.adapt in TRAINING_METHODS:
        if spec.name != "finetune" or task != "classification":
            raise TransferKitError(
                f"adapt={config.adapt!r} is a loss during fine-tuning of a classifier: use --strategy finetune "
                f"(got {spec.name!r}, {task}), or coral, subspace or self-training on frozen features"
            )
        return
    if (
        config.adapt != "none"
        and spec.name not in ADAPTABLE
        and not (config.adapt == "auto" and spec.name in MCC_STRATEGIES)
    ):
        raise TransferKitError(
            f"strategy {spec.name!r} cannot use unlabeled target data with adapt={config.adapt!r} (adaptation "
            "runs on frozen features); use --strategy feature-extraction or auto, --adapt auto or mcc with "
            "finetune, or --adapt none"
        )
    if config.adapt == "self-training" and task != "classification":
        raise TransferKitError(f"adapt='self-training' needs class labels, not {task}; use coral or subspace")


def check_target_modality(source: Sequence[Any], unlabeled: Sequence[Any], backbone: Backbone | None) -> None:
    """The target inputs must be of the modality the backbone reads.

    Raises:
        DataError: Say, audio clips as the target of a text model.
    """
    expected = backbone.modality if backbone is not None else infer_modality(list(source[:1]))
    found = infer_modality(list(unlabeled[:1]))
    if found != expected:
        raise DataError(
            f"the unlabeled target inputs are {found} but the labeled inputs are {expected}; pass {expected}"
        )


def fit_adapted(run: FitRun, unlabeled: Sequence[Any]) -> TransferModel:
    """Feature extraction adapted to the unlabeled target inputs with ``run.config.adapt``: the head is fitted
    once, the adapted way (or the plain way when the choice is source-only)."""
    head, backbone, finetuned, record = _adapted(run, list(unlabeled), base=None)
    model = TransferModel(
        backbone=backbone, head=head, target=run.encoder, config=run.config, strategy="feature-extraction",
        finetuned=finetuned, info={"head": resolve_head(run.config, run.task)},
    )  # fmt: skip
    return _record(model, record, run.config)


def pretrained_copy(
    spec: StrategySpec, config: FitConfig, task: str, backbone: Backbone | None, unlabeled: Sequence[Any] | None
) -> Backbone | None:
    """A copy of the pre-trained ``backbone`` when ``adapt="auto"`` may fine-tune it a second time with MCC (take
    it before the strategy moves the weights); else None."""
    weighs = unlabeled is not None and config.adapt == "auto" and task == "classification" and spec.trains_body
    return copy.deepcopy(backbone) if weighs and backbone is not None and backbone.trainable else None


def adapt_model(
    model: TransferModel, run: FitRun, unlabeled: Sequence[Any], pretrained: Backbone | None = None
) -> TransferModel:
    """``model`` (fitted by another strategy, ``auto``) adapted to the unlabeled target inputs when it reads frozen
    features, or fine-tuned again with MCC (from ``pretrained``, :func:`pretrained_copy`) when it fine-tuned and
    MCC measures better; records what and why in ``model.info["adaptation"]`` and says it in one line."""
    if run.config.adapt == "none":
        return _record(model, {"method": "none", "reason": "--adapt none"}, run.config)
    if model.strategy in MCC_STRATEGIES and model.finetuned and run.config.adapt == "auto":
        return _weigh_mcc(model, run, list(unlabeled), pretrained)
    if model.finetuned or model.backbone is not run.backbone:
        reason = f"{model.strategy} does not read frozen features, which adaptation needs"
        return _record(model, {"method": "none", "reason": reason}, run.config)
    model.head, model.backbone, model.finetuned, record = _adapted(run, list(unlabeled), base=model.head)
    return _record(model, record, run.config)


def _adapted(run: FitRun, unlabeled: list[Any], base: Any) -> tuple[Any, Backbone, list[str], dict[str, Any]]:
    """(head, backbone, changed backbone tensors, what was done and why) for ``run.config.adapt``; ``base`` is
    the source-only head when one is fitted already.

    Raises:
        TransferKitError: adabn on a backbone without batch norm.
    """
    config, requested = run.config, run.config.adapt
    fit_one = lambda X, y: fit_head(X, y, run.encoder, config)[0]  # noqa: E731
    source_only = lambda: base if base is not None else fit_one(run.embeddings(), run.target)  # noqa: E731
    if requested == "none":
        return source_only(), run.backbone, [], {"method": "none", "reason": "--adapt none"}
    has_bn = bool(batch_norm_layers(run.backbone))
    if requested == "adabn" and not has_bn:
        raise TransferKitError(
            f"adabn needs a backbone with batch norm; {run.backbone.name} has none: "
            "use coral, subspace or self-training"
        )
    features = {"frozen": (run.embeddings(), frozen_embeddings(run.backbone, unlabeled, config))}
    adapted: tuple[Backbone, list[str]] = (run.backbone, [])
    if requested == "adabn" or (requested == "auto" and has_bn and run.task == "classification"):
        source_features, target_features, *adapted = adabn_features(run, unlabeled)
        features["adabn"] = (source_features, target_features)
    if requested == "auto":
        method, reason, measured = _auto(run, features)
    else:
        method, reason, measured = requested, f"--adapt {requested}", {}
    record = {"method": method, "reason": reason, **measured, "n_target": len(unlabeled)}
    if method == "none":
        return source_only(), run.backbone, [], record
    source, target = features["adabn" if method == "adabn" else "frozen"]
    head, details = train(method if method != "adabn" else "none", source, run.target, target, fit_one)
    backbone, finetuned = adapted if method == "adabn" else (run.backbone, [])
    return head, backbone, finetuned, {**record, **details}


def train(
    method: str, source: np.ndarray, labels: np.ndarray, target: np.ndarray, fit_one
) -> tuple[Any, dict[str, Any]]:
    """A head that reads raw target features, trained on the labeled source with ``method``."""
    if method == "coral":
        return fit_one(coral(source, target).source(source), labels), {}
    if method == "subspace":
        alignment = subspace_alignment(source, target)
        head = fit_one(alignment.source(source), labels)
        return compose(head, alignment.target_matrix, alignment.target_offset), {
            "dimensions": int(alignment.target_matrix.shape[1])
        }
    if method == "self-training":
        head, used = self_train(source, labels, target, fit_one)
        return head, {"pseudo_labels": used}
    return fit_one(source, labels), {}


def adabn_features(run: FitRun, unlabeled: list[Any]) -> tuple[np.ndarray, np.ndarray, Backbone, list[str]]:
    """Source embeddings under source batch-norm statistics and target ones under target statistics (AdaBN),
    the target copy of the backbone and the names of the buffers that changed.

    The copies' weights hashes are recomputed so that the embedding cache keys them apart from the pre-trained
    backbone; the target copy gets the pre-trained hash back, since the saved model names the pre-trained
    weights and keeps the statistics as a delta."""
    pretrained_hash = run.backbone.weights_hash
    embeddings, adapted, names = [], run.backbone, []
    for inputs in (run.inputs, unlabeled):
        adapted = copy.deepcopy(run.backbone)
        names = adabn(adapted, inputs, seed=run.config.seed or 0, quiet=run.config.quiet)
        adapted._weights_hash = None
        embeddings.append(frozen_embeddings(adapted, inputs, run.config))
        adapted._weights_hash = pretrained_hash
    return embeddings[0], embeddings[1], adapted, names


def _auto(run: FitRun, features: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[str, str, dict]:
    """Choose by reverse validation on the source folds (with a closed-form ridge classifier standing in for the
    head, which is fitted dozens of times here); source-only when no method gains enough."""
    n_classes = len(run.encoder.classes)
    fit_one = lambda X, y: RidgeScores(X, y, n_classes)  # noqa: E731
    if run.task != "classification":
        return "none", f"source-only: auto measures adaptation on classification only, not {run.task}", {}
    rng = np.random.default_rng(run.config.seed or 0)
    source_rows = _sample(rng, len(run.target), AUTO_MAX_EXAMPLES)
    labels = run.target[source_rows]
    splits = folds(labels, run.encoder, run.config, repeats=AUTO_REPEATS)
    if splits is None:
        return "none", "source-only: too few labeled examples per class to measure adaptation", {}
    score = lambda scores, truth: validation_score(scores, truth, run.encoder)  # noqa: E731
    target_rows = _sample(rng, len(features["frozen"][1]), AUTO_MAX_EXAMPLES)  # the same for every method
    results = {}
    for name in ("none", "coral", "subspace", "self-training", "adabn"):
        kind = "adabn" if name == "adabn" else "frozen"
        if kind not in features:
            continue
        source, target = features[kind]
        target = target[target_rows]
        method = name if name != "adabn" else "none"
        forward = lambda S, y, T, m=method: train(m, S, y, T, fit_one)[0].scores  # noqa: E731
        results[name] = reverse_validation(forward, source[source_rows], labels, target, splits, score)
    chosen, reason = choose(results, margin=AUTO_MARGIN)
    measured = {
        "reverse_validation": {k: round(float(v.mean()), 4) for k, v in results.items()},
        "reverse_validation_folds": {k: [round(float(x), 4) for x in v] for k, v in results.items()},
    }
    return chosen, reason, measured


def _weigh_mcc(model: TransferModel, run: FitRun, unlabeled: list[Any], pretrained: Backbone | None) -> TransferModel:
    """The fine-tuned ``model`` or the same fine-tuning with MCC, whichever reverse-validates better on the
    held-out validation split (the module docstring says how and why); plain fine-tuning when unsure."""
    why_not = _mcc_unmeasurable(run, pretrained)
    if why_not is not None:
        return _record(model, {"method": "none", "reason": f"source-only: {why_not}"}, run.config)
    say(f"adapt: fine-tuning again with MCC on {len(unlabeled)} unlabeled target inputs, to measure it",
        quiet=run.config.quiet)  # fmt: skip
    config = dataclasses.replace(run.config, adapt="mcc")
    place(pretrained, resolve_device(config.device))
    try:
        candidate = finetuned_model(dataclasses.replace(run, backbone=pretrained, config=config), unlabeled)
    finally:
        place(pretrained, "cpu")
    place(candidate, "cpu")
    candidate.config = run.config
    rows = _sample(np.random.default_rng(run.config.seed or 0), len(unlabeled), AUTO_MAX_EXAMPLES)
    target = [unlabeled[i] for i in rows]
    outputs = {name: _reverse_outputs_finetuned(m, run, target) for name, m in (("none", model), ("mcc", candidate))}
    truth = run.target[run.valid_part]
    values = {name: validation_score(value, truth, run.encoder) for name, value in outputs.items()}
    error = paired_bootstrap_errors(outputs, "none", truth, run.task, run.config.seed)["mcc"]
    bar = max(AUTO_MARGIN, ONE_SIDED_Z * error)
    measured = f"reverse validation {values['mcc']:.3f} vs {values['none']:.3f} fine-tuning alone"
    held = f"on the {len(truth)} examples held out from fine-tuning"
    if values["mcc"] - values["none"] > bar:
        chosen, reason = "mcc", f"mcc: {measured} ({held})"
    else:
        chosen = "none"
        reason = (
            f"fine-tuning alone: mcc ({measured}) did not gain more than {bar:.3f} ({AUTO_MARGIN} and "
            f"{ONE_SIDED_Z} bootstrap standard errors, {held})"
        )
    record = {
        "method": chosen,
        "reason": reason,
        "reverse_validation": {k: round(v, 4) for k, v in values.items()},
        "standard_error": round(error, 4),
        "n_target": len(unlabeled),
    }
    if chosen == "none":
        return _record(model, record, run.config)
    candidate.info.update({key: model.info[key] for key in ("auto",) if key in model.info})
    return _record(candidate, record, run.config)


def _mcc_unmeasurable(run: FitRun, pretrained: Backbone | None) -> str | None:
    """Why MCC cannot be measured against the fine-tuned model here, or None when it can."""
    if run.task != "classification":
        return f"auto measures adaptation on classification only, not {run.task}"
    if pretrained is None:
        return "no pre-trained copy of the backbone to fine-tune again with MCC"
    if parallel.current() is not None:
        return "MCC trains in one process, and fine-tuning ran with --workers"
    held = run.valid_part
    if held is None or np.bincount(run.target[held], minlength=len(run.encoder.classes)).min() < 2:
        return "too few labeled examples held out from fine-tuning to measure MCC on"
    return None


def _reverse_outputs_finetuned(model: TransferModel, run: FitRun, target: list[Any]) -> np.ndarray:
    """Reverse validation of a fine-tuned model on ``run.valid_part``: its pseudo-labels of the ``target`` inputs,
    learned back by a ridge classifier on its own target features; that classifier's outputs on the held-out
    source examples (the features of each model are its own)."""
    source = model.embeddings([run.inputs[i] for i in run.valid_part], quiet=run.config.quiet)
    features = model.embeddings(target, quiet=run.config.quiet)
    n_classes = len(run.encoder.classes)
    backward = lambda X, y, _: RidgeScores(X, y, n_classes).scores  # noqa: E731
    return reverse_outputs(backward, model.head.scores(features), features, source)


def _sample(rng: np.random.Generator, n: int, limit: int) -> np.ndarray:
    return np.arange(n) if n <= limit else np.sort(rng.choice(n, limit, replace=False))


def _record(model: TransferModel, record: dict[str, Any], config: FitConfig) -> TransferModel:
    model.info["adaptation"] = record
    say(f"adapt: {record['method']} ({record['reason']})", quiet=config.quiet)
    return model
