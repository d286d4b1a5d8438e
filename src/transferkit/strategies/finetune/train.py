"""The fine-tuning loop: train the top blocks of the backbone together with a linear head.

Recipe, each part a lever in :class:`~transferkit.config.FitConfig`:

- the head starts from a logistic / ridge probe on frozen features ("LP-FT", Kumar et al. 2022,
  https://arxiv.org/abs/2202.10054), so early gradients do not wreck the pre-trained features;
- only the top ``unfreeze_layers`` blocks train; the frozen blocks below run *once* and their outputs are
  cached, so each epoch costs only the trainable blocks (a large saving on a CPU);
- discriminative learning rates: each block gets ``layer_decay`` times the rate of the block above
  (Howard & Ruder 2018, https://arxiv.org/abs/1801.06146);
- optional L2-SP, a penalty toward the pre-trained weights (Li et al. 2018, https://arxiv.org/abs/1802.01483);
- AdamW with warm-up and linear decay, early stopping on a validation split, best epoch restored;
- with unlabeled target inputs (``adapt="mcc"``), each step adds the minimum-class-confusion loss of a batch of
  them (:mod:`transferkit.adaptation.mcc`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score

from transferkit.adaptation.mcc import WEIGHT, mcc_loss
from transferkit.augment import parse_augment
from transferkit.backbones import Backbone
from transferkit.config import FitConfig
from transferkit.errors import TransferKitError
from transferkit.heads import LinearHead, loss_function
from transferkit.progress import progress_bar
from transferkit.strategies.body import caches_prefix, close_body, collate, embedder, examples_of, open_body
from transferkit.targets import TargetEncoder
from transferkit.training import adamw, parallel, train
from transferkit.training.augment import Augmenter

MIN_STEPS_PER_EPOCH = 8


def finetune(
    backbone: Backbone,
    inputs: Sequence[Any],
    target: np.ndarray,
    encoder: TargetEncoder,
    init_head: LinearHead,
    config: FitConfig,
    valid: tuple[Sequence[Any], np.ndarray] | None = None,
    *,
    unlabeled: Sequence[Any] | None = None,
) -> tuple[LinearHead, list[str], dict[str, Any] | None, dict[str, Any]]:
    """Fine-tune ``backbone`` in place (or LoRA adapters merged into it, with ``config.adapter == "lora"``);
    with ``unlabeled`` target inputs, each step also minimises the class confusion of a batch of them (MCC).

    Returns:
        The trained head, the names of the backbone parameters (and buffers, such as batch-norm running
        statistics) that changed, the LoRA adapter to save (or None), and training facts.
    """
    augment = parse_augment(config.augment)
    if unlabeled and parallel.current() is not None:  # a second forward per step would break DDP's bookkeeping
        raise TransferKitError("adapt='mcc' trains in one process in this version; leave --workers out")
    if augment and backbone.modality != "image":
        raise TransferKitError(
            f"augmentation ({config.augment}) applies to images, and {backbone.name!r} is a {backbone.modality} "
            "backbone; leave augment at 'none'"
        )
    module = backbone.module
    body = open_body(backbone, config, weight_decay=0.0 if config.l2sp else config.weight_decay)
    blocks, first, trainable, groups = body.blocks, body.first, body.trainable, body.groups
    reference = {name: tensor.detach().clone() for name, tensor in trainable.items()}

    seed = 0 if config.seed is None else config.seed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = init_head.to_torch().to(body.device)
        groups.append(
            {"params": list(head.parameters()), "lr": config.head_learning_rate, "weight_decay": config.weight_decay}
        )
        all_parameters = {**trainable, **{f"head.{n}": p for n, p in head.named_parameters()}}
        optimizer = adamw(groups)
        loss_fn = loss_function(encoder.task, encoder.n_outputs)

        # Augmented pixels change every batch, so the blocks below cannot be run once and cached.
        cache = caches_prefix(backbone, inputs, body, config) and not augment
        with progress_bar("preparing", 1, quiet=config.quiet) as advance:
            module.eval()
            train_examples = examples_of(backbone, inputs, first, config.batch_size, cache)
            valid_examples = examples_of(backbone, valid[0], first, config.batch_size, cache) if valid else None
            target_examples = examples_of(backbone, unlabeled, first, config.batch_size, cache) if unlabeled else None
            advance(1)
        labels = torch.from_numpy(target).to(body.device)
        generator = torch.Generator().manual_seed(seed)
        augmenter = None
        if augment:  # its own generator: shuffling stays the same with and without augmentation
            augmenter = Augmenter(augment, backbone.mean, backbone.std, torch.Generator().manual_seed(seed + 1))

        embed = embedder(backbone, first, cache)
        # Under data parallelism (fit --workers) each worker takes its slice of every batch, through DDP.
        parallel.check_batch(config.batch_size)
        forward = parallel.wrap(lambda batch: head(embed(batch)), [module, head])

        # Few-shot data gives one or two steps per epoch; cycling through the (reshuffled) data until an
        # epoch has MIN_STEPS_PER_EPOCH steps keeps validation and early stopping meaningful.
        steps = max(MIN_STEPS_PER_EPOCH, -(-len(train_examples) // config.batch_size))

        def batches(epoch: int):
            needed = steps * config.batch_size
            order = torch.cat(
                [
                    torch.randperm(len(train_examples), generator=generator)
                    for _ in range(-(-needed // len(train_examples)))
                ]
            ).tolist()
            for start in range(0, min(needed, len(order)), config.batch_size):
                index = parallel.local_part(order[start : start + config.batch_size])
                inputs = collate([train_examples[i] for i in index])
                if augmenter is not None:
                    inputs["pixels"] = augmenter(inputs["pixels"])
                yield inputs, labels[index]

        target_generator = torch.Generator().manual_seed(seed + 2)

        def loss_of(batch) -> torch.Tensor:
            inputs, y = batch
            loss = loss_fn(forward(inputs), y)
            if target_examples:  # a fresh random batch of unlabeled target inputs every step
                index = torch.randperm(len(target_examples), generator=target_generator)[: config.batch_size]
                loss = loss + WEIGHT * mcc_loss(forward(collate([target_examples[i] for i in index.tolist()])))
            if config.l2sp:
                penalty = sum(((p - reference[n]) ** 2).sum() for n, p in trainable.items())
                loss = loss + config.l2sp / 2 * penalty
            return loss

        def validate() -> dict[str, float]:
            scores = _scores(valid_examples, embed, head, config.batch_size)
            return _validation_score(scores, valid[1], encoder, loss_fn)

        def set_train_mode(on: bool) -> None:
            module.train(on)
            head.train(on)

        result = train(
            parameters=all_parameters,
            optimizer=optimizer,
            batches=batches,
            steps_per_epoch=steps,
            loss_of=loss_of,
            validate=validate if valid_examples else None,
            epochs=config.epochs,
            patience=config.patience,
            set_train_mode=set_train_mode,
            quiet=config.quiet,
            buffers=dict(module.named_buffers()),
        )
    changed, adapter = close_body(backbone, body)
    info = {
        "trained_blocks": [blocks.start, blocks.stop - 1],
        "num_blocks": backbone.num_blocks,
        "frozen_prefix_cached": cache,
        "augment": list(augment),
        **({"mcc_target_inputs": len(unlabeled)} if unlabeled else {}),
        "adapter": None if adapter is None else {k: v for k, v in adapter["config"].items() if k != "targets"},
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "validation_score": None if valid_examples is None else result.best_score,
        "seconds": round(result.seconds, 2),
        "history": result.history,
    }
    return LinearHead.from_torch(head, **init_head.info), changed, adapter, info


@torch.no_grad()
def _scores(examples: list[dict], embed, head: torch.nn.Module, batch_size: int) -> torch.Tensor:
    """The head's scores on ``examples``, on the CPU (where validation scores them)."""
    outputs = [head(embed(collate(examples[s : s + batch_size]))) for s in range(0, len(examples), batch_size)]
    return torch.cat(outputs).cpu()


def _validation_score(scores: torch.Tensor, target: np.ndarray, encoder: TargetEncoder, loss_fn) -> dict[str, float]:
    """Higher is better: macro-F1 (ties broken by loss) for classification, minus MSE for regression."""
    loss = float(loss_fn(scores, torch.from_numpy(target)))
    if encoder.task == "regression":
        return {"score": -loss, "valid_loss": loss}
    values = scores.numpy()
    if encoder.task == "multilabel":
        predicted = (values > 0).astype(int)
    elif values.shape[1] == 1:
        predicted = (values[:, 0] > 0).astype(int)
    else:
        predicted = values.argmax(1)
    f1 = f1_score(target.astype(int), predicted, average="macro", zero_division=0)
    return {"score": float(f1) - 1e-3 * loss, "valid_macro_f1": float(f1), "valid_loss": loss}
