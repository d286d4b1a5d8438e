"""Training settings, validated once, with messages that name the bad value and the fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from transferkit.errors import TransferKitError
from transferkit.heads import HEADS

STRATEGIES = ("feature-extraction", "finetune", "auto")


@dataclass(kw_only=True)
class FitConfig:
    """How to adapt a backbone.

    Attributes:
        strategy: "feature-extraction" (frozen encoder + head), "finetune" or "auto" (measure both, keep the better).
        head: Head for feature extraction: "logistic" (classification), "ridge" (regression), "mlp" or "auto".
        unfreeze_layers: Fine-tuning: how many top blocks to train; -1 trains every block including embeddings.
        epochs: Fine-tuning: maximum epochs (early stopping usually ends sooner).
        batch_size: Fine-tuning batch size.
        learning_rate: Fine-tuning learning rate of the top block.
        head_learning_rate: Learning rate of the head while fine-tuning.
        layer_decay: Discriminative learning rates: each block below the top gets ``layer_decay`` times the one above.
        weight_decay: AdamW weight decay.
        l2sp: Strength of the L2-SP penalty pulling fine-tuned weights toward the pre-trained ones (0 = off).
        patience: Early stopping: epochs without validation improvement before stopping.
        augment: Fine-tuning on images: random transforms per batch, comma-separated from "flip", "crop",
            "color" (see :mod:`transferkit.augment`), or "none".
        validation_fraction: Share of the training data held out for early stopping and for ``auto``.
        time_budget: Seconds ``auto`` may spend; fine-tuning is skipped when its estimate exceeds what is left.
        calibrate: Classification: fit a temperature on held-out scores so probabilities are honest.
        max_length: Tokens per text (longer texts are truncated).
        seed: Random seed for splits, initialisation and shuffling.
        cache_dir: Where to cache embeddings (default ``~/.cache/transferkit``).
        use_cache: Whether to read and write the embedding cache.
        quiet: No progress bars or status lines.
    """

    strategy: str = "feature-extraction"
    head: str = "auto"
    unfreeze_layers: int = 2
    epochs: int = 8
    batch_size: int = 16
    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3
    layer_decay: float = 0.8
    weight_decay: float = 0.01
    l2sp: float = 0.0
    patience: int = 2
    augment: str = "none"
    validation_fraction: float = 0.2
    time_budget: float = 600.0
    calibrate: bool = False
    max_length: int = 128
    seed: int | None = 0
    cache_dir: str | None = None
    use_cache: bool = True
    quiet: bool = False

    def __post_init__(self) -> None:
        self.strategy = self.strategy.replace("_", "-")
        checks = [
            (self.strategy in STRATEGIES, f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"),
            (self.head in (*HEADS, "auto"), f"head must be one of {', '.join((*HEADS, 'auto'))}, got {self.head!r}"),
            (
                self.unfreeze_layers == -1 or self.unfreeze_layers >= 1,
                f"unfreeze_layers must be -1 (all) or >= 1, got {self.unfreeze_layers}; "
                "use strategy='feature-extraction' to train the head only",
            ),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (self.head_learning_rate > 0, f"head_learning_rate must be > 0, got {self.head_learning_rate}"),
            (
                0 < self.layer_decay <= 1,
                f"layer_decay must be in (0, 1], got {self.layer_decay}; 1 means one rate for all",
            ),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.l2sp >= 0, f"l2sp must be >= 0, got {self.l2sp}"),
            (self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (
                0 < self.validation_fraction < 0.5,
                f"validation_fraction must be in (0, 0.5), got {self.validation_fraction}",
            ),
            (self.time_budget > 0, f"time_budget must be > 0 seconds, got {self.time_budget}"),
            (self.max_length >= 8, f"max_length must be >= 8 tokens, got {self.max_length}"),
        ]
        from transferkit.augment import parse_augment

        try:
            self.augment = ",".join(parse_augment(self.augment)) or "none"
        except ValueError as error:
            raise TransferKitError(str(error)) from None
        for ok, message in checks:
            if not ok:
                raise TransferKitError(message)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("cache_dir", "use_cache", "quiet")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FitConfig:
        """Build from JSON, ignoring keys this version does not know (forward compatibility)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
