"""``auto``: compare the strategies (and the cheap from-scratch models) by k-fold cross-validation; keep the best.

A single small validation split (4 examples at 8 labels per class) picks the worse strategy about as often as
the better one, so every arm is scored on the held-out folds of the whole training set (strategies that
train the body early-stop on an inner split of each fold's training part, never on the scored fold).

Arms, all from the strategy registry: feature extraction; the cheap from-scratch models registered for the
modality (TF-IDF + logistic regression for text, MFCC statistics for audio), so that where transfer does not
pay, auto says so and does not use it (negative transfer); and the transfer strategies that train the body
(fine-tuning), when the backbone has gradients and the time budget covers their ``folds + 1`` runs.
An arm replaces the cheaper feature extraction only when it wins fold by fold by more than ``AUTO_MARGIN``
and the standard error of the paired difference. Below ``AUTO_MIN_PER_CLASS`` labels per class nothing is
measured (cross-validating 8 examples picks the worse arm too often): auto uses the strategy that measured best at
that size for the modality (``FEW_SHOT``: contrastive training for texts), when the backbone can train and the
time budget covers it, and feature extraction otherwise. From ``AUTO_MIN_PER_CLASS`` to ``HOLDOUT_MAX_PER_CLASS``
that strategy is the incumbent of a cheaper contest (:func:`_holdout_contest`): it and the cheap arms are fitted
on the same part of the data and scored on the rest, and a cheap arm replaces it only when it wins there by more
than ``AUTO_MARGIN`` and ``HOLDOUT_Z`` bootstrap standard errors of the difference. The part scored is the one the
strategy holds out itself to stop early on (contrastive's ``top`` recipe: a fifth), so its body trains once and
its model is kept when it wins; early stopping read that part to pick its round, which leans the contest a little
toward the incumbent, as the rule already does. Without such a part (the ``full`` recipe for short texts) it is a
held-out third, and the body trains twice (on two thirds, then on everything). The full contest cost about six
contrastive fits at 16 labels per class and chose no better on ``benchmarks/text_fewshot.py``. From
``HOLDOUT_MAX_PER_CLASS`` the full contest cross-validates the few-shot strategy when its ``folds + 1`` runs fit
the time budget; when they do not (and the data are below ``SCREEN_MIN_N`` examples), it gets the holdout contest
too, rather than being left out (one run on first-names at 64 per class kept the frozen head without measuring
contrastive, its estimate over the budget).

Where the fitted model will carry the n-gram blend (``ngrams="auto"`` and the rule said so, before auto ran: see
:mod:`transferkit.strategies.ngrams`), the contests score the transfer arms as those models will score: their
held-out scores blended with the TF-IDF arm's (the same n-gram model) on the same examples; the TF-IDF arm's stay
its own. Unblended, a TF-IDF model that scores a little above the frozen head won the contest exactly where the blend
makes the transfer models better than both (spam-assassin, 64 per class: TF-IDF chosen, 0.939 on the test set,
where the blended frozen head and contrastive scored 0.958 and 0.959). The screen on large data (below) stays
unblended: it only decides whether the rest is worth encoding.

On large data (``SCREEN_MIN_N`` examples or more) where no arm that trains the body fits the time budget, the cheap
arms are first compared on a stratified sample of ``SCREEN_N`` examples: when a from-scratch model beats the frozen
head there, fold by fold as above, it is chosen without encoding the rest. More data help a model learned from
scratch more than a frozen head (the learning curves of ``transferkit compare``), so a lead the scratch model has
at ``SCREEN_N`` examples holds on all of them; the reverse does not, so a frozen head that wins or ties the screen
is measured on all the data as before. ``benchmarks/auto_choice.py --screen`` checks the screen's choice against
the full measurement's on the bundled data sets.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from transferkit.backbones import Backbone
from transferkit.config import FitConfig
from transferkit.data.split import train_test_indices
from transferkit.model import TransferModel
from transferkit.progress import say
from transferkit.strategies.body import restore
from transferkit.strategies.common import (
    ONE_SIDED_Z,
    FitRun,
    folds,
    paired_bootstrap_errors,
    per_class,
    row_key,
    validation_score,
    validation_split,
)
from transferkit.strategies.feature_extraction.fit import fit_head
from transferkit.strategies.ngrams import mix
from transferkit.strategies.registry import STRATEGIES

AUTO_MARGIN = 0.01  # an arm must beat the frozen head by this much (cross-validated) to replace it
AUTO_REPEATS = 5  # cheap arms (frozen head, TF-IDF) are cross-validated this many times on small data ...
AUTO_REPEAT_MAX_N = 600  # ... up to this many examples
# Below this many labels per class (examples, for regression) auto keeps feature extraction without measuring:
# fine-tuning lost to it on every data set we measured, and cross-validation on 8-16 examples picked TF-IDF
# over it where it was worse on held-out data (benchmarks/auto_choice.py, `transferkit compare`).
AUTO_MIN_PER_CLASS = 16
# Below AUTO_MIN_PER_CLASS, the strategy that measured best at 8 labels per class, by modality (elsewhere: the
# frozen head, which was the best or within a point of it on the image and audio benchmarks).
FEW_SHOT = {"text": "contrastive"}
FEW_SHOT_EVIDENCE = "the few-shot text table in benchmarks/README.md"
# From AUTO_MIN_PER_CLASS up to this many labels per class, the few-shot strategy is challenged on one held-out
# third (HOLDOUT_SHARE) instead of cross-validated with every arm; bootstrap resamples give the standard error.
HOLDOUT_MAX_PER_CLASS = 32
HOLDOUT_SHARE = 1 / 3
# The incumbent measured best on the benchmarks at this size; a challenger must beat it on the held-out third by
# more than this many bootstrap standard errors (a one-sided test at the 5% level): a third of 16-31 examples per
# class is small, and at one standard error equal arms would swap about one time in six.
HOLDOUT_Z = ONE_SIDED_Z
# The from-scratch arm whose model is the n-gram blend's (strategies/ngrams.py): blended transfer arms mix its scores.
NGRAM_ARM = "tfidf-lr"
SCREEN_N = 1000  # examples the cheap arms are compared on first, when the data are large ...
SCREEN_MIN_N = 2 * SCREEN_N  # ... from this many examples (the screen then encodes at most half of them)


def fit(run: FitRun) -> TransferModel:
    """Measure the arms on ``run`` (all of its examples) and fit the winner."""
    start = time.perf_counter()
    backbone, target, encoder, config = run.backbone, run.target, run.encoder, run.config
    smallest = per_class(target, encoder)
    if smallest < AUTO_MIN_PER_CLASS:
        return _few_shot(run, smallest, start)
    large = len(run.inputs) >= SCREEN_MIN_N  # large data: the screen below decides first, as before
    too_long, estimates = None, {}
    if smallest >= HOLDOUT_MAX_PER_CLASS and not large:
        too_long, estimates = _cross_validation_too_long(run, start)
    if smallest < HOLDOUT_MAX_PER_CLASS or too_long is not None:
        contested = _holdout_contest(run, smallest, start, too_long=too_long)
        if contested is not None:
            return contested
    # The few-shot strategy, once its cross-validation was found to fit the budget (``estimates`` holds its
    # estimate then), is measured without a second estimate: a passing load must not drop it between the two.
    body = [name for name in STRATEGIES.names(kind="transfer", task=encoder.task) if STRATEGIES.get(name).trains_body]
    scratch = [
        name for name in STRATEGIES.names(kind="scratch", modality=backbone.modality, task=encoder.task)
        if STRATEGIES.get(name).cost == "cheap"
    ]  # fmt: skip
    if large and scratch and not _body_may_fit(run, body, start):
        screened = _screen(run, scratch, start)
        if screened is not None:
            return screened
    repeats = AUTO_REPEATS if len(run.inputs) <= AUTO_REPEAT_MAX_N else 1
    splits = folds(target, encoder, config, repeats=repeats)
    assert splits is not None  # AUTO_MIN_PER_CLASS examples per class leave enough for every fold
    n_folds = len(splits) // repeats
    metric = "minus MSE" if encoder.task == "regression" else "macro-F1"
    outputs = {"feature-extraction": _frozen_head_folds(run, splits)}
    outputs.update({name: _cross_validate(name, run, splits) for name in scratch})
    decision: dict[str, Any] = {"folds": n_folds, "repeats": repeats, "per_class": smallest}
    note = ""
    if body and not backbone.trainable:
        note = f"; {' and '.join(map(_words, body))} skipped: {backbone.name} has no gradients"
    for name in body if backbone.trainable else []:
        one_repeat = splits[:n_folds]  # training the body is the expensive arm: one repeat
        cleared = name in estimates
        estimate = estimates[name] if cleared else _body_estimate(run, name, n_folds)
        left = run.settings("auto").time_budget - (time.perf_counter() - start)
        decision[f"{name}_estimate_s"] = round(estimate, 1)
        if estimate > left and not cleared:
            note += (
                f"; {_words(name)} skipped: measuring it would take ~{estimate:.0f}s and the time budget leaves "
                f"{max(left, 0):.0f}s"
            )
            continue
        outputs[name] = _cross_validate(name, run, one_repeat, inner_validation=True)
    blended, blend_note = _as_blended(outputs, run)
    fold_scores = _fold_values(blended, run, splits)
    scores = {name: float(values.mean()) for name, values in fold_scores.items()}
    decision["scores"] = {k: round(v, 4) for k, v in scores.items()}
    note += blend_note
    # The cheapest arm holds unless another beats it, fold by fold, by more than the margin and more than the
    # standard error of the difference; among those, the best score wins.
    baseline = fold_scores["feature-extraction"]
    challengers = {k: scores[k] for k, v in fold_scores.items() if _wins(v, baseline[: len(v)])}
    chosen = max(challengers, key=challengers.get) if challengers else "feature-extraction"
    listed = ", ".join(f"{k} {v:.3f}" for k, v in sorted(scores.items(), key=lambda kv: -kv[1]))
    times = f" x {repeats}" if repeats > 1 else ""
    reason = f"{chosen}: {n_folds}-fold{times} {metric} {listed}{note}"
    if chosen == "feature-extraction" and len(scores) > 1:
        reason += (
            f" (another arm must win by more than {AUTO_MARGIN} and its standard error to replace the cheaper "
            "feature-extraction)"
        )
    if chosen == "feature-extraction":
        return _frozen_head(run, decision, reason, start)
    if chosen in scratch:
        reason += "; transfer did not pay on these data (a from-scratch baseline scored higher), so it is not used"
    model = STRATEGIES.get(chosen).implementation()(run)
    model.info["auto"] = {**decision, "chosen": chosen, "reason": reason}
    return _announce(model, start)


def _body_estimate(run: FitRun, name: str, n_folds: int) -> float:
    """Seconds cross-validating arm ``name`` (which trains the body) on ``n_folds`` folds and refitting it."""
    work, blocks = STRATEGIES.get(name).module().training_work(run, len(run.fit_part))
    return _estimate_seconds(run.backbone, run.inputs, work, blocks, run.config) * (n_folds + 1)


def _body_may_fit(run: FitRun, body: list[str], start: float) -> bool:
    """Whether measuring some arm that trains the body could fit in the whole time budget left."""
    if not body or not run.backbone.trainable:
        return False
    left = run.settings("auto").time_budget - (time.perf_counter() - start)
    n_folds = len(folds(run.target, run.encoder, run.config) or [None, None])
    return any(_body_estimate(run, name, n_folds) <= left for name in body)


def _screen(run: FitRun, scratch: list[str], start: float) -> TransferModel | None:
    """Compare the frozen head with the cheap scratch arms on a stratified sample of ``SCREEN_N`` examples; the
    fitted scratch model when one wins there, else None (then everything is measured on all the data)."""
    keys = [row_key(value) for value in run.target]
    _, sample = train_test_indices(keys, test_size=SCREEN_N / len(keys), task=run.task, seed=run.config.seed)
    part = run.subset(sample)
    splits = folds(part.target, part.encoder, part.config)
    if splits is None:
        return None
    outputs = {"feature-extraction": _frozen_head_folds(part, splits)}
    outputs.update({name: _cross_validate(name, part, splits) for name in scratch})
    # Unblended: the screen only decides whether the rest is worth encoding, and blending the frozen head made the
    # README's main job (spam-assassin, 4,709 e-mails) encode everything and run the full contest (over 10 minutes
    # instead of 1.5) where TF-IDF leads by 4 points.
    fold_scores = _fold_values(outputs, part, splits)
    scores = {name: float(values.mean()) for name, values in fold_scores.items()}
    winners = {k: scores[k] for k in scratch if _wins(fold_scores[k], fold_scores["feature-extraction"])}
    if not winners:
        return None
    chosen = max(winners, key=winners.get)
    metric = "minus MSE" if run.task == "regression" else "macro-F1"
    listed = ", ".join(f"{k} {v:.3f}" for k, v in sorted(scores.items(), key=lambda kv: -kv[1]))
    reason = (
        f"{chosen}: {len(splits)}-fold {metric} on a sample of {len(sample)} of the {len(run.inputs)} examples "
        f"{listed}; a from-scratch model that leads on a sample gains more than a frozen head from the rest, so "
        "the rest was not encoded; no arm that trains the body fits the time budget; transfer did not pay on "
        "these data (a from-scratch baseline scored higher), so it is not used"
    )
    decision = {
        "folds": len(splits),
        "repeats": 1,
        "screen": len(sample),
        "scores": {k: round(v, 4) for k, v in scores.items()},
    }
    model = STRATEGIES.get(chosen).implementation()(run)
    model.info["auto"] = {
        **decision,
        "per_class": per_class(run.target, run.encoder),
        "chosen": chosen,
        "reason": reason,
    }
    return _announce(model, start)


def _few_shot(run: FitRun, smallest: int, start: float) -> TransferModel:
    """Below ``AUTO_MIN_PER_CLASS`` nothing is measured: the strategy that measured best at that size on the
    modality's benchmark (``FEW_SHOT``), when the backbone can train and the time budget covers it; else the
    frozen head."""
    backbone, encoder, config = run.backbone, run.encoder, run.config
    unit = "examples" if encoder.task == "regression" else "labeled examples per class"
    why = f"with {smallest} {unit} (below {AUTO_MIN_PER_CLASS}) no strategy can be validated reliably"
    choice = _few_shot_choice(run)
    note = ""
    if choice is not None:
        work, blocks = STRATEGIES.get(choice).module().training_work(run, len(run.inputs))
        estimate = _estimate_seconds(backbone, run.inputs, work, blocks, config)
        left = run.settings("auto").time_budget - (time.perf_counter() - start)
        if estimate <= left:
            model = STRATEGIES.get(choice).implementation()(run)
            reason = f"{choice}: {why}, and {choice} measured best at 8 labels per class ({FEW_SHOT_EVIDENCE})"
            model.info["auto"] = {"per_class": smallest, "chosen": choice, "reason": reason}
            return _announce(model, start)
        note = f"; {choice} skipped: it would take ~{estimate:.0f}s and the time budget leaves {max(left, 0):.0f}s"
    reason = (
        f"feature-extraction: {why}, and the frozen backbone was the best or within a point of it at that size in "
        f"our measurements{note}"
    )
    return _frozen_head(run, {"per_class": smallest}, reason, start)


def _few_shot_choice(run: FitRun) -> str | None:
    """The few-shot strategy of ``run``'s modality (``FEW_SHOT``) when it applies: the backbone can train and the
    strategy supports the task; else None."""
    choice = FEW_SHOT.get(run.backbone.modality)
    if choice is None or not run.backbone.trainable or run.encoder.task not in STRATEGIES.get(choice).tasks:
        return None
    return choice


def _cross_validation_too_long(run: FitRun, start: float) -> tuple[str | None, dict[str, float]]:
    """Why the few-shot strategy (``FEW_SHOT``) cannot be cross-validated within the time budget left (its
    ``folds + 1`` runs), or None when it can or does not apply; with its estimate when it can (the contest then
    measures it without estimating again). When it cannot, auto's full contest would leave out the strategy that
    measured best at 8 and 16 per class, and the cheaper arms would win unchallenged; the holdout contest measures
    it in one or two runs instead."""
    choice = _few_shot_choice(run)
    if choice is None:
        return None, {}
    n_folds = len(folds(run.target, run.encoder, run.config) or [None, None])
    estimate = _body_estimate(run, choice, n_folds)
    left = run.settings("auto").time_budget - (time.perf_counter() - start)
    if estimate <= left:
        return None, {choice: estimate}
    return (
        f"cross-validating {choice} ({n_folds} folds and the refit) would take ~{estimate:.0f}s and the time budget "
        f"leaves {max(left, 0):.0f}s"
    ), {}


def _holdout_contest(run: FitRun, smallest: int, start: float, too_long: str | None = None) -> TransferModel | None:
    """The few-shot strategy (``FEW_SHOT``) against the frozen head and the cheap from-scratch arms, all fitted on
    the same part and scored on the rest: the part the strategy holds out itself to stop early on, when it holds
    one (then its body trains once, and its model is kept when it wins), else a held-out third (then the body
    trains twice: on two thirds, then on everything). From ``HOLDOUT_MAX_PER_CLASS`` labels per class it runs only
    when cross-validating the strategy would not fit the time budget (``too_long`` says why). None when no few-shot
    strategy applies or the time budget does not cover the training (then the full contest runs)."""
    backbone, encoder, config = run.backbone, run.encoder, run.config
    choice = _few_shot_choice(run)
    if choice is None:
        return None
    module = STRATEGIES.get(choice).module()
    own_train, own_held = module.held_out_part(run)
    all_work, blocks = module.training_work(run, len(run.inputs))
    if own_held is not None:
        train, held, where = own_train, own_held, f"the part {choice} held out to stop early on"
    else:
        keys = [row_key(value) for value in run.target]
        train, held = train_test_indices(keys, test_size=HOLDOUT_SHARE, task=run.task, seed=config.seed)
        all_work += module.training_work(run, len(train))[0]
        where = "a held-out third"
    estimate = _estimate_seconds(backbone, run.inputs, all_work, blocks, config)
    if estimate > run.settings("auto").time_budget - (time.perf_counter() - start):
        return None
    scratch = [
        name for name in STRATEGIES.names(kind="scratch", modality=backbone.modality, task=encoder.task)
        if STRATEGIES.get(name).cost == "cheap"
    ]  # fmt: skip
    embeddings = run.embeddings()  # frozen, before the body moves
    head, _ = fit_head(embeddings[train], run.target[train], encoder, config)
    scores = {"feature-extraction": head.scores(embeddings[held])}
    scores.update({name: _held_scores(name, run, train, held) for name in scratch})
    incumbent, original = None, {}
    if own_held is not None:
        original = {n: p.detach().clone() for n, p in backbone.module.state_dict().items()}
        incumbent, scores[choice] = module.fit_scored(run)
    else:
        scores[choice] = _held_scores(choice, run, train, held)
    truth = run.target[held]
    scores, blend_note = _as_blended(scores, run)
    values = {name: validation_score(s, truth, encoder) for name, s in scores.items()}
    errors = paired_bootstrap_errors(scores, choice, truth, encoder.task, config.seed)
    winners = {
        k: v for k, v in values.items() if k != choice and v - values[choice] > max(AUTO_MARGIN, HOLDOUT_Z * errors[k])
    }
    chosen = max(winners, key=winners.get) if winners else choice
    metric = "minus MSE" if encoder.task == "regression" else "macro-F1"
    listed = ", ".join(f"{k} {v:.3f}" for k, v in sorted(values.items(), key=lambda kv: -kv[1]))
    if too_long is None:
        why = f"with {smallest} labeled examples per class"
        skipped = f"is not measured below {HOLDOUT_MAX_PER_CLASS} per class: it lost to {choice} at 8 per class"
    else:
        why, skipped = too_long, f"is not measured either: it lost to {choice} at 8 per class"
    reason = (
        f"{chosen}: {metric} on {where} ({len(held)} examples) {listed}; {why}, {choice} is kept unless another "
        f"arm beats it there by more than {AUTO_MARGIN} and {HOLDOUT_Z} bootstrap standard errors (fine-tuning "
        f"{skipped}, {FEW_SHOT_EVIDENCE}){blend_note}"
    )
    if chosen in scratch:
        reason += "; transfer did not pay on these data (a from-scratch baseline scored higher), so it is not used"
    decision = {"holdout": len(held), "per_class": smallest, "scores": {k: round(v, 4) for k, v in values.items()}}
    if incumbent is not None and chosen != choice:  # the frozen head and the scratch arms need the original body
        restore(backbone, {n: original[n] for n in incumbent.finetuned})
    if chosen == "feature-extraction":
        return _frozen_head(run, decision, reason, start)
    model = incumbent if chosen == choice and incumbent is not None else STRATEGIES.get(chosen).implementation()(run)
    model.info["auto"] = {**decision, "chosen": chosen, "reason": reason}
    return _announce(model, start)


def _held_scores(name: str, run: FitRun, train: np.ndarray, held: np.ndarray, **parts: np.ndarray) -> np.ndarray:
    """Scores on ``held`` of strategy ``name`` fitted on ``train`` (``parts``: its fit/validation parts, see
    :meth:`FitRun.subset`); moved backbone weights are put back after."""
    spec = STRATEGIES.get(name)
    moves = spec.trains_body and run.backbone is not None and run.backbone.trainable
    original = {n: p.detach().clone() for n, p in run.backbone.module.state_dict().items()} if moves else {}
    model = spec.implementation()(run.subset(train, **parts))
    scores = run.scores_of(model, held)
    if model.finetuned:
        restore(run.backbone, {n: original[n] for n in model.finetuned})
    return scores


def _cross_validate(
    name: str, run: FitRun, splits: list[tuple[np.ndarray, np.ndarray]], *, inner_validation: bool = False
) -> list[np.ndarray]:
    """Strategy ``name``'s scores on each fold's held-out part; with ``inner_validation``, each fold's training
    part holds out its own validation split (early stopping never sees the scored fold)."""
    outputs = []
    for train, held in splits:
        inner: dict[str, np.ndarray] = {}
        if inner_validation:
            inner_fit, inner_valid = validation_split([row_key(run.target[i]) for i in train], run.task, run.config)
            inner = {"fit_part": inner_fit, "valid_part": inner_valid}
        outputs.append(_held_scores(name, run, train, held, **inner))
    return outputs


def _frozen_head_folds(run: FitRun, splits: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """The frozen head's scores on each fold's held-out part (fitted on the fold's training part)."""
    embeddings = run.embeddings()
    return [
        fit_head(embeddings[train], run.target[train], run.encoder, run.config)[0].scores(embeddings[held])
        for train, held in splits
    ]


def _fold_values(
    outputs: dict[str, list[np.ndarray]], run: FitRun, splits: list[tuple[np.ndarray, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Each arm's validation score on each fold it ran (arms that train the body run the first repeat only)."""
    truth = [run.target[held] for _, held in splits]
    return {
        name: np.array([validation_score(s, t, run.encoder) for s, t in zip(scores, truth, strict=False)])
        for name, scores in outputs.items()
    }


def _as_blended(outputs: dict[str, Any], run: FitRun) -> tuple[dict[str, Any], str]:
    """The arms' held-out scores as their fitted models will score, and what the reason says about it. Where
    ``run``'s model gets the n-gram blend (``run.ngram_weight`` > 0), a transfer arm's model is blended with the
    n-grams, so its scores are blended with those of the n-gram arm (``NGRAM_ARM``, the same TF-IDF model) on the
    same examples; the from-scratch arms' are not. Unblended, the TF-IDF arm could beat transfer models that beat it
    once blended (spam-assassin, 64 per class: TF-IDF chosen, 0.939, where the blended frozen head scored 0.958)."""
    weight, ngrams = run.ngram_weight, outputs.get(NGRAM_ARM)
    if not weight or ngrams is None:
        return outputs, ""

    def blended(scores: Any) -> Any:
        if isinstance(scores, list):  # per fold; an arm that trains the body ran the first repeat's folds only
            return [mix(s, n, weight) for s, n in zip(scores, ngrams, strict=False)]
        return mix(scores, ngrams, weight)

    note = f" (transfer arms scored blended with the {NGRAM_ARM} n-grams at {weight:g}, as their models are)"
    return {name: s if STRATEGIES.get(name).kind == "scratch" else blended(s) for name, s in outputs.items()}, note


def _words(name: str) -> str:
    return "fine-tuning" if name == "finetune" else name


def _wins(challenger: np.ndarray, baseline: np.ndarray) -> bool:
    """Whether paired fold scores beat the baseline by more than AUTO_MARGIN and one standard error."""
    difference = challenger - baseline
    error = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else 0.0
    return bool(difference.mean() > max(AUTO_MARGIN, error))


def _frozen_head(run: FitRun, decision: dict[str, Any], reason: str, start: float) -> TransferModel:
    """Feature extraction on every training example (auto's choice when nothing beat it)."""
    head, info = fit_head(run.embeddings(), run.target, run.encoder, run.config)
    info = {**info, "auto": {**decision, "chosen": "feature-extraction", "reason": reason}}
    model = TransferModel(
        backbone=run.backbone, head=head, target=run.encoder, config=run.config, strategy="feature-extraction",
        info=info,
    )  # fmt: skip
    return _announce(model, start)


def _announce(model: TransferModel, start: float) -> TransferModel:
    """Say what auto chose, why, and what choosing and fitting it cost (seconds, kept in ``info["auto"]``)."""
    seconds = time.perf_counter() - start
    model.info["auto"]["seconds"] = round(seconds, 1)
    say(f"auto chose {model.info['auto']['reason']} ({seconds:.0f}s in all)", quiet=model.config.quiet)
    return model


def _estimate_seconds(backbone: Backbone, inputs: list[Any], work: int, blocks: int, config: FitConfig) -> float:
    """Seconds training the body would take: one frozen pass over the inputs plus forward+backward of the top
    ``blocks`` blocks (-1: all) for ``work`` examples (what the strategy's ``training_work`` says)."""
    sample = inputs[: min(16, len(inputs))]
    seconds = []
    for _ in range(2):  # the faster of two: the first may pay one-time costs, either may meet a passing load
        start = time.perf_counter()
        backbone.encode(sample, batch_size=config.batch_size)
        seconds.append(time.perf_counter() - start)
    per_input = min(seconds) / len(sample)
    share = 1.0 if blocks == -1 else min(blocks, backbone.num_blocks) / backbone.num_blocks
    return per_input * len(inputs) + per_input * share * 3.0 * work
