"""Contrastive few-shot training: move the backbone so that same-class examples embed close together and other
classes far apart, then fit a head on the new embeddings (SetFit's idea, with an in-batch objective)."""

from dataclasses import dataclass

from transferkit.settings import setting
from transferkit.strategies.registry import register_strategy


@dataclass(kw_only=True)
class ContrastiveSettings:
    """contrastive's own settings."""

    contrastive_steps: int = setting(
        0, "contrastive: optimiser steps (0: derived from the data size, see the strategy's docs)",
        check=lambda v: v >= 0, rule=">= 0",
    )  # fmt: skip
    contrastive_recipe: str = setting(
        "auto", "contrastive: top (the top --contrastive-layers blocks over their cached frozen prefix, "
        "--contrastive-loss, early stopping from 16 labels per class), full (SetFit's recipe in batches: every layer "
        "at 2e-5, its cosine pair loss, 4x the passes, no early stopping; the three top options do not apply) or "
        "auto (full when the texts are short, at most max_length/8 tokens on average, where a step of full costs "
        "no more than one of top on texts of full length; top otherwise)",
        check=lambda v: v in ("auto", "top", "full"), rule="auto, top or full",
    )  # fmt: skip
    contrastive_layers: int = setting(
        3, "contrastive: how many top blocks train (-1: all, embeddings included)",
        check=lambda v: v == -1 or v >= 1, rule="-1 (all) or >= 1",
    )  # fmt: skip
    contrastive_learning_rate: float = setting(
        2e-4, "contrastive: learning rate of the top block (each block below gets --layer-decay times it)",
        check=lambda v: v > 0, rule="> 0",
    )  # fmt: skip
    temperature: float = setting(
        0.05, "contrastive: softmax temperature of the supervised contrastive loss",
        check=lambda v: 0 < v <= 1, rule="in (0, 1]",
    )  # fmt: skip
    contrastive_loss: str = setting(
        "auto", "contrastive: the pair objective: supcon (supervised contrastive, softmax over the batch), cosine "
        "(SetFit's: the cosine similarity of every pair regressed to 1 for same class, 0 otherwise) or auto "
        "(cosine for single-label classification with 5 or more classes, supcon otherwise)",
        check=lambda v: v in ("auto", "supcon", "cosine"), rule="auto, supcon or cosine",
    )  # fmt: skip
    contrastive_mix: float = setting(
        1.0, "contrastive: share of the weight change kept after training, the rest returned to the pre-trained "
        "weights (WiSE-FT weight interpolation; 1: all of it)",
        check=lambda v: 0 < v <= 1, rule="in (0, 1]",
    )  # fmt: skip
    end_to_end_epochs: int = setting(
        0, "contrastive: then train the same blocks and a linear head together by cross-entropy for this many "
        "epochs (SetFit's end-to-end phase; --learning-rate, --head-learning-rate; 0: off)",
        check=lambda v: v >= 0, rule=">= 0",
    )  # fmt: skip


register_strategy(
    name="contrastive",
    summary="trains the top --contrastive-layers blocks with a supervised contrastive loss over every pair in each "
    "class-balanced batch (SetFit's idea without explicit pairs), then fits the head: few labels per class",
    entry="fit:fit",
    package=__name__,
    kind="transfer",
    cost="expensive",
    tasks=("classification", "multilabel"),
    trains_body=True,
    needs_trainable=True,
    holds_out_validation=False,
    settings=ContrastiveSettings,
)
