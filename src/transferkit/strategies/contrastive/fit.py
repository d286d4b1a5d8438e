"""Contrastive few-shot training (SetFit's idea, Tunstall et al. 2022, https://arxiv.org/abs/2209.11055, without
its explicit pairs).

SetFit trains a sentence encoder on generated pairs (same class: similar; different: dissimilar), two
forward passes per pair, then fits a logistic head on the moved embeddings. Here every batch is class
balanced and scored with the supervised contrastive loss (Khosla et al. 2020, https://arxiv.org/abs/2004.11362):
each of its B examples is pulled toward the others of its class and pushed from the rest, so one forward pass
per example yields all B(B-1)/2 pairs. As in fine-tuning, only the top ``contrastive_layers`` blocks train and the
frozen blocks below run once (their outputs are cached), with discriminative learning rates. The number of
steps grows with the data (see :func:`step_budget`); with a validation split (enough examples per class),
training stops early when nearest-centroid macro-F1 on it stops improving. Then the configured head is fitted
on the moved embeddings of every training example. The saved model is the moved tensors and the head:
predicting costs what it costs for any fine-tuned model.

Two recipes (``contrastive_recipe``). ``top`` trains the top blocks as above. ``full`` is SetFit's own recipe run
in these batches: every layer at 2e-5, SetFit's cosine pair loss, 4x the passes, no early stopping; on our
development splits it matched SetFit on the single-word sets (16 per class, afinn and first-names: 0.804 vs
SetFit's 0.801 and ``top``'s 0.779) and costs what SetFit costs, about as many passes through every block, which
on short texts is seconds. ``auto`` (the default) takes ``full`` for short texts (a mean of at most
``SHORT_SHARE`` of ``max_length`` tokens: there a step of ``full``, every block and 4x the passes, costs no more
than one of ``top`` on texts of full length) and ``top`` otherwise; on the longer sets ``full`` costs SetFit's
time for less than SetFit's gain (spam-assassin: 0.917 vs ``top``'s 0.910 and SetFit's 0.933).

The ``top`` recipe's loss (``contrastive_loss="auto"``) is SetFit's cosine pair loss from ``MANY_CLASSES`` classes
and the supervised contrastive loss below. With 8 classes a class-balanced batch of 16 holds 2 examples of each,
so each anchor has one positive against 14 negatives in the softmax; the cosine loss weighs every pair alike. On
the development splits of the two 8-class sets, 8 per class, three seeds, the cosine loss scored 0.753 vs 0.747
(fortune-topics) and 0.442 vs 0.432 (sotu-president, 0.397 vs 0.369 without the n-gram blend); at 16 per class
(two seeds, without early stopping) 0.766 vs 0.756 and 0.410 vs 0.398. On the two-class sets it lost (sotu-party
0.598 vs 0.628, first-names 2 points), so they keep the supervised contrastive loss. On the test sets (five seeds)
it was level on the mean: fortune-topics +1.1 points at 8 per class, sotu-president -0.9 (``benchmarks/README.md``).

Two options, off by default because neither helped on our development splits (``benchmarks/tune_fewshot.py``):
``contrastive_mix`` < 1 keeps only that share of the weight change (WiSE-FT), and ``end_to_end_epochs`` then
trains the same blocks with a linear head by cross-entropy (SetFit's end-to-end phase), as fine-tuning does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score

from transferkit.errors import TransferKitError
from transferkit.heads import fit_linear_head
from transferkit.model import TransferModel
from transferkit.progress import say
from transferkit.strategies.body import (
    caches_prefix,
    close_body,
    collate,
    embedder,
    examples_of,
    interpolate,
    open_body,
)
from transferkit.strategies.common import FitRun, per_class, validation_split
from transferkit.strategies.feature_extraction.fit import fit_head
from transferkit.strategies.finetune.train import finetune
from transferkit.training import adamw, parallel, train

# Each example is seen in about this many batches; bounded below (tiny data still needs a few dozen steps to
# move the encoder) and above (the cost of a step is fixed, the gain flattens).
PASSES = 20
MIN_STEPS, MAX_STEPS = 30, 300
ROUNDS = 5  # validation rounds (early stopping) over the step budget
# From this many examples per class a fifth is held out to stop early on; below, a held-out part would be too
# small to measure and its examples are worth more as training pairs, so the step budget runs out in full.
EARLY_STOPPING_MIN_PER_CLASS = 16
# The full recipe (SetFit's, in batches): every layer at this rate, this many passes, the cosine pair loss.
FULL_PASSES = 80
FULL_LEARNING_RATE = 2e-5
# auto takes the full recipe when the texts' mean length is at most this share of max_length tokens: a step
# through every block (twice top's 3 of 6) with 4x the passes then costs no more than top's on full-length texts.
SHORT_SHARE = 1 / 8
# The top recipe's loss under contrastive_loss="auto": SetFit's cosine pair loss from this many classes
# (single-label), the supervised contrastive loss below. See the module's docs.
MANY_CLASSES = 5


@dataclass(frozen=True)
class Recipe:
    """What trains and how: ``name`` is ``top`` or ``full``; ``reason`` says why (for auto's choice)."""

    name: str
    layers: int
    learning_rate: float
    loss: str
    passes: int
    early_stopping: bool
    reason: str


def recipe_of(run: FitRun) -> Recipe:
    """The recipe ``run`` trains with (``contrastive_recipe``; auto: ``full`` for short texts, else ``top``)."""
    settings = run.settings("contrastive")
    name, reason = settings.contrastive_recipe, "--contrastive-recipe"
    if name == "auto":
        tokens = mean_tokens(run.backbone, run.inputs)
        if tokens is None:
            name, reason = "top", "auto: inputs without tokens"
        else:
            limit = SHORT_SHARE * run.backbone.max_length
            name = "full" if tokens <= limit else "top"
            reason = f"auto: mean {tokens:.1f} tokens, {'at most' if name == 'full' else 'over'} {limit:g}"
    if name == "full":
        return Recipe("full", -1, FULL_LEARNING_RATE, "cosine", FULL_PASSES, False, reason)
    loss = settings.contrastive_loss
    if loss == "auto":
        classes = len(run.encoder.classes)
        loss = "cosine" if run.task == "classification" and classes >= MANY_CLASSES else "supcon"
        reason += f"; {loss} loss: {classes} {'classes' if run.task == 'classification' else 'labels'}"
    return Recipe("top", settings.contrastive_layers, settings.contrastive_learning_rate, loss, PASSES, True,
                  reason)  # fmt: skip


def mean_tokens(backbone: Any, inputs: list[Any], sample: int = 512) -> float | None:
    """Mean token count of (the first ``sample`` of) ``inputs``, truncated at the backbone's ``max_length``; None
    for backbones that do not read tokens."""
    tokenizer, max_length = getattr(backbone, "tokenizer", None), getattr(backbone, "max_length", None)
    texts = [text for text in inputs[:sample] if isinstance(text, str)]
    if tokenizer is None or not max_length or not texts:
        return None
    return float(np.mean([len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]))


def step_budget(n: int, batch_size: int, passes: int = PASSES) -> int:
    """Optimiser steps for ``n`` training examples seen ``passes`` times each (the ceiling grows with ``passes``)."""
    return int(np.clip(np.ceil(passes * n / batch_size), MIN_STEPS, MAX_STEPS * passes // PASSES))


def training_work(run: FitRun, n: int) -> tuple[int, int]:
    """Examples contrastive training on ``n`` of ``run``'s inputs passes through the trained blocks (its steps
    times the batch), and how many top blocks train (-1: all)."""
    recipe, config = recipe_of(run), run.config
    steps = run.settings("contrastive").contrastive_steps or step_budget(n, config.batch_size, recipe.passes)
    return steps * config.batch_size, recipe.layers


def positives(target: torch.Tensor, task: str) -> torch.Tensor:
    """(B, B) weights of each pair as positives: same class (1) or, for multi-label, the Jaccard similarity of
    the two label sets; 0 on the diagonal."""
    if task == "multilabel":
        labels = target.float()
        shared = labels @ labels.T
        union = labels.sum(1, keepdim=True) + labels.sum(1) - shared
        weights = torch.where(union > 0, shared / union.clamp(min=1), torch.zeros_like(shared))
    else:
        weights = (target[:, None] == target[None, :]).float()
    return weights.fill_diagonal_(0.0)


def supervised_contrastive_loss(embeddings: torch.Tensor, weights: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over anchors with a positive of ``-sum_p w_ip log softmax_{a != i}(z_i . z_a / t)_p / sum_p w_ip``.

    Shape:
        embeddings (B, d) (normalised here), weights (B, B) -> scalar.
    """
    z = torch.nn.functional.normalize(embeddings, dim=-1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_probability = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    log_probability = log_probability.masked_fill(self_mask, 0.0)
    total = weights.sum(1)
    anchors = total > 0
    if not anchors.any():
        return (embeddings * 0.0).sum()  # no pair in the batch shares a class: nothing to learn from it
    return (-(weights * log_probability).sum(1)[anchors] / total[anchors]).mean()


def cosine_pair_loss(embeddings: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """SetFit's CosineSimilarityLoss over every pair of the batch: mean of ``(cos(z_i, z_j) - w_ij)^2``, i < j.

    Shape:
        embeddings (B, d), weights (B, B) -> scalar.
    """
    z = torch.nn.functional.normalize(embeddings, dim=-1)
    upper = torch.triu(torch.ones_like(weights, dtype=torch.bool), diagonal=1)
    return ((z @ z.T - weights)[upper] ** 2).mean()


def balanced_batches(target: np.ndarray, task: str, batch_size: int, generator: torch.Generator):
    """Endless class-balanced batches of indices: as many classes as fit with at least 2 examples each, every
    class drawn in turn, so each batch holds positives for every anchor it can."""
    if task == "multilabel":  # group by the first label of each row
        groups_of = [tuple(np.flatnonzero(row)[:1]) for row in target]
    else:
        groups_of = [int(value) for value in target]
    groups: dict[Any, list[int]] = {}
    for index, key in enumerate(groups_of):
        groups.setdefault(key, []).append(index)
    keys = list(groups)
    per_group = max(2, batch_size // max(1, min(len(keys), batch_size // 2)))
    queues: dict[Any, list[int]] = {key: [] for key in keys}
    order: list[Any] = []
    while True:
        if not order:
            order = [keys[i] for i in torch.randperm(len(keys), generator=generator).tolist()]
        batch: list[int] = []
        while len(batch) < batch_size and order:
            key = order.pop()
            for _ in range(per_group):
                if not queues[key]:
                    members = groups[key]
                    queues[key] = [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
                batch.append(queues[key].pop())
        yield batch


def held_out_part(run: FitRun, recipe: Recipe | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(training part, held-out part or None) of ``run``'s inputs: the recipe ``top`` holds out a stratified
    validation split to stop early on from ``EARLY_STOPPING_MIN_PER_CLASS`` labels per class; otherwise every input
    trains. Its own split, also when auto hands it a run split for the strategies that early-stop on fit_model's.
    ``recipe``: :func:`recipe_of` the run, when the caller has it already."""
    if (recipe or recipe_of(run)).early_stopping and per_class(run.target, run.encoder) >= EARLY_STOPPING_MIN_PER_CLASS:
        keys = [row.tobytes() if isinstance(row, np.ndarray) else int(row) for row in run.target]
        return validation_split(keys, run.encoder.task, run.config)
    return np.arange(len(run.inputs)), None


def fit(run: FitRun) -> TransferModel:
    """Contrastive training of the top blocks (or their LoRA adapters), then the head on every training example."""
    return _fit(run, score_held_out=False)[0]


def fit_scored(run: FitRun) -> tuple[TransferModel, np.ndarray | None]:
    """:func:`fit`, and the scores on the held-out part (:func:`held_out_part`, None without one) of a head fitted
    on the moved embeddings of the training part only: what auto's contest compares (early stopping read that part
    too, to pick the round, so the scores lean a little in contrastive's favour)."""
    return _fit(run, score_held_out=True)


def _fit(run: FitRun, *, score_held_out: bool) -> tuple[TransferModel, np.ndarray | None]:
    settings = run.settings("contrastive")
    backbone, config, encoder = run.backbone, run.config, run.encoder
    if settings.end_to_end_epochs and config.adapter != "none":
        raise TransferKitError(
            "the end-to-end phase trains the weights the adapters were merged into; with --adapter lora set "
            "--end-to-end-epochs 0"
        )
    recipe = recipe_of(run)
    layers = "every layer" if recipe.layers == -1 else f"the top {recipe.layers} blocks"
    say(f"contrastive: the {recipe.name} recipe, {layers} ({recipe.reason})", quiet=config.quiet)
    fit_part, valid = held_out_part(run, recipe)
    inputs, target = [run.inputs[i] for i in fit_part], run.target[fit_part]
    body = open_body(backbone, config, weight_decay=config.weight_decay, layers=recipe.layers,
                     learning_rate=recipe.learning_rate)  # fmt: skip
    # The pre-trained values of what trains, kept only when some of the change is to be given back (WiSE-FT).
    pretrained = {}
    if settings.contrastive_mix < 1:
        pretrained = {name: tensor.detach().clone() for name, tensor in body.trainable.items()}
    steps = settings.contrastive_steps or step_budget(len(inputs), config.batch_size, recipe.passes)
    seed = 0 if config.seed is None else config.seed
    rounds = ROUNDS if valid is not None else 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cache = caches_prefix(backbone, run.inputs, body, config)
        backbone.module.eval()
        train_examples = examples_of(backbone, inputs, body.first, config.batch_size, cache)
        valid_examples = None
        if valid is not None:
            valid_examples = examples_of(backbone, [run.inputs[i] for i in valid], body.first, config.batch_size, cache)
        labels = torch.from_numpy(np.asarray(target)).to(body.device)
        sampler = balanced_batches(np.asarray(target), encoder.task, config.batch_size,
                                   torch.Generator().manual_seed(seed))  # fmt: skip
        embed = embedder(backbone, body.first, cache)
        # Under data parallelism (fit --workers) each worker embeds its slice of every batch through DDP, and the
        # loss over every pair sees all slices (gathered).
        forward = parallel.wrap(embed, [backbone.module])

        def batches(_: int):
            for _step in range(steps // rounds):
                index = next(sampler)
                yield collate([train_examples[i] for i in parallel.local_part(index)]), labels[index]

        def loss_of(batch) -> torch.Tensor:
            inputs_batch, y = batch
            weights = positives(y, encoder.task)
            embeddings = parallel.gather(forward(inputs_batch))
            if recipe.loss == "cosine":
                return cosine_pair_loss(embeddings, weights)
            return supervised_contrastive_loss(embeddings, weights, settings.temperature)

        def validate() -> dict[str, float]:
            reference = _embed_all(train_examples, embed, config.batch_size)
            held = _embed_all(valid_examples, embed, config.batch_size)
            return {"score": _centroid_f1(reference, target, held, run.target[valid], encoder.task)}

        result = train(
            parameters=body.trainable,
            optimizer=adamw(body.groups),
            batches=batches,
            steps_per_epoch=steps // rounds,
            loss_of=loss_of,
            validate=validate if valid_examples is not None else None,
            epochs=rounds,
            patience=config.patience,
            set_train_mode=backbone.module.train,
            quiet=config.quiet,
            description="contrastive",
        )
        backbone.module.eval()
        if settings.contrastive_mix < 1:
            interpolate(body, pretrained, settings.contrastive_mix)
        everything = train_examples if valid is None else _merge(train_examples, fit_part, valid_examples, valid)
        embeddings = _embed_all(everything, embed, config.batch_size).numpy()
    changed, adapter = close_body(backbone, body)
    end_to_end = None
    if settings.end_to_end_epochs:  # its linear head, trained with the blocks, is the model's head
        head, more_changed, end_to_end = _end_to_end(run, embeddings, fit_part, valid, settings, recipe)
        changed = sorted(set(changed) | set(more_changed))
        head_info = {"head": "linear"}
    else:
        head, head_info = fit_head(embeddings, run.target, encoder, config)
    held_scores = None
    if score_held_out and valid is not None:
        held_scores = fit_head(embeddings[fit_part], run.target[fit_part], encoder, config)[0].scores(embeddings[valid])
    info = {
        **head_info,
        "trained_blocks": [body.blocks.start, body.blocks.stop - 1],
        "num_blocks": backbone.num_blocks,
        "frozen_prefix_cached": cache,
        "adapter": None if adapter is None else {k: v for k, v in adapter["config"].items() if k != "targets"},
        "steps": steps,
        "recipe": recipe.name,
        "recipe_reason": recipe.reason,
        "loss": recipe.loss,
        "temperature": settings.temperature,
        "mix": settings.contrastive_mix,
        "best_round": result.best_epoch,
        "rounds_run": result.epochs_run,
        "seconds": round(result.seconds, 2),
        "history": result.history,
        "end_to_end": end_to_end,
    }
    model = TransferModel(
        backbone=backbone, head=head, target=encoder, config=config, strategy="contrastive", finetuned=changed,
        adapter=adapter, info=info,
    )  # fmt: skip
    return model, held_scores


def _end_to_end(run: FitRun, embeddings: np.ndarray, fit_part: np.ndarray, valid, settings, recipe: Recipe):
    """SetFit's end-to-end phase: the contrastively trained blocks and a linear head (started from a probe on
    the moved embeddings) trained together by cross-entropy, as fine-tuning trains them."""
    config = dataclasses.replace(run.config, unfreeze_layers=recipe.layers,
                                 epochs=settings.end_to_end_epochs)  # fmt: skip
    probe = fit_linear_head(embeddings[fit_part], run.target[fit_part], run.encoder, seed=config.seed)
    held = None if valid is None else ([run.inputs[i] for i in valid], run.target[valid])
    inputs = [run.inputs[i] for i in fit_part]
    head, changed, _adapter, info = finetune(
        run.backbone, inputs, run.target[fit_part], run.encoder, probe, config, held
    )
    return head, changed, {k: info[k] for k in ("best_epoch", "epochs_run", "validation_score", "seconds")}


def _merge(first: list[dict], first_part: np.ndarray, second: list[dict], second_part: np.ndarray) -> list[dict]:
    """The examples of two disjoint parts, back in the order of the indices they came from."""
    merged: list[dict] = [{}] * (len(first) + len(second))
    for examples, part in ((first, first_part), (second, second_part)):
        for position, index in enumerate(part):
            merged[index] = examples[position]
    return merged


@torch.no_grad()
def _embed_all(examples: list[dict], embed, batch_size: int) -> torch.Tensor:
    return torch.cat([embed(collate(examples[s : s + batch_size])) for s in range(0, len(examples), batch_size)]).cpu()


def _centroid_f1(train: torch.Tensor, target: np.ndarray, held: torch.Tensor, truth: np.ndarray, task: str) -> float:
    """Macro-F1 of the nearest class centroid (cosine) on held-out embeddings: how well the classes separate."""
    train = torch.nn.functional.normalize(train, dim=-1).numpy()
    held = torch.nn.functional.normalize(held, dim=-1).numpy()
    if task == "multilabel":
        scores = []
        for column in range(target.shape[1]):
            on, off = train[target[:, column] == 1], train[target[:, column] == 0]
            if len(on) == 0 or len(off) == 0:
                continue
            predicted = (held @ on.mean(0) > held @ off.mean(0)).astype(int)
            scores.append(f1_score(truth[:, column].astype(int), predicted, zero_division=0))
        return float(np.mean(scores)) if scores else 0.0
    centroids = np.stack([train[target == c].mean(0) for c in range(int(target.max()) + 1)])
    return float(f1_score(truth, (held @ centroids.T).argmax(1), average="macro", zero_division=0))
