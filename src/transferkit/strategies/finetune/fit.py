"""The fine-tuning strategy: a linear probe on frozen features, then the top blocks and the head trained together."""

from __future__ import annotations

from typing import Any

from transferkit.heads import fit_linear_head
from transferkit.model import TransferModel
from transferkit.progress import say
from transferkit.strategies.common import FitRun
from transferkit.strategies.finetune.train import finetune


def training_work(run: FitRun, n: int) -> tuple[int, int]:
    """Examples fine-tuning on ``n`` of ``run``'s inputs passes through the trained blocks (every epoch, every
    example), and how many top blocks train (-1: all)."""
    return n * run.config.epochs, run.config.unfreeze_layers


def fit(run: FitRun) -> TransferModel:
    """Fine-tune ``run.backbone`` in place on ``run.fit_part``, early-stopping on ``run.valid_part`` (with
    ``adapt="mcc"``, with the MCC loss on ``run.unlabeled``)."""
    unlabeled = run.unlabeled if run.config.adapt == "mcc" else None
    model = finetuned_model(run, unlabeled)
    if unlabeled is not None:
        model.info["adaptation"] = {"method": "mcc", "reason": "--adapt mcc", "n_target": len(unlabeled)}
        say(f"adapt: mcc (--adapt mcc, {len(unlabeled)} unlabeled target inputs)", quiet=run.config.quiet)
    return model


def finetuned_model(run: FitRun, unlabeled: list[Any] | None = None) -> TransferModel:
    """The fine-tuned model, with the minimum-class-confusion loss on ``unlabeled`` target inputs when given
    (``adapt="auto"`` fine-tunes a second time this way to measure MCC; it says what it chose itself)."""
    fit_part, valid_part = run.fit_part, run.valid_part
    probe = fit_linear_head(run.embeddings()[fit_part], run.target[fit_part], run.encoder, seed=run.config.seed)
    valid = None if valid_part is None else ([run.inputs[i] for i in valid_part], run.target[valid_part])
    head, changed, adapter, info = finetune(
        run.backbone, [run.inputs[i] for i in fit_part], run.target[fit_part], run.encoder, probe, run.config, valid,
        unlabeled=unlabeled,
    )  # fmt: skip
    return TransferModel(
        backbone=run.backbone, head=head, target=run.encoder, config=run.config, strategy="finetune",
        finetuned=changed, adapter=adapter, info={"head": "linear", **info},
    )  # fmt: skip
