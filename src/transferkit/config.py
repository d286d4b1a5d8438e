"""Training settings, declared once (default, help, validation) and validated on construction.

:class:`FitConfig` holds the settings every strategy shares. A strategy's own settings (auto's time budget,
say) are declared by the strategy (:mod:`transferkit.strategies.registry`) and travel in
``FitConfig.options``; :meth:`FitConfig.from_settings` sorts keyword arguments into the two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from transferkit.adaptation import METHODS as ADAPT_METHODS
from transferkit.augment import parse_augment
from transferkit.devices import DEVICES
from transferkit.errors import TransferKitError
from transferkit.settings import setting, validate
from transferkit.strategies.registry import STRATEGIES, check_options, strategy_settings_owner

HEADS = ("logistic", "ridge", "mlp")
ADAPTERS = ("none", "lora")
NGRAMS = ("auto", "off")
DEFAULT_STRATEGY = "auto"
# Settings that describe where a run computes, keeps its files or how it talks, not how the model is trained:
# left out of the saved model's settings.
RUNTIME_SETTINGS = ("device", "cache_dir", "use_cache", "quiet")


def _strategy_names() -> list[str]:
    return STRATEGIES.names()


def _head_names() -> list[str]:
    return [*HEADS, "auto"]


@dataclass(kw_only=True)
class FitConfig:
    """How to adapt a backbone: the settings every strategy shares (see each field's help).

    ``options`` holds the strategies' own settings by name (``{"time_budget": 60}``), each checked by the
    strategy that declares it.
    """

    strategy: str = setting(DEFAULT_STRATEGY, "How to adapt the backbone", choices=_strategy_names)
    head: str = setting("auto", "Head on frozen features (auto: ridge for regression, else logistic)",
                        choices=_head_names)  # fmt: skip
    unfreeze_layers: int = setting(
        2, "Training the body: how many top blocks train (-1: all, embeddings included)",
        check=lambda v: v == -1 or v >= 1, rule="-1 (all) or >= 1",
        fix="use strategy='feature-extraction' to train the head only",
    )  # fmt: skip
    epochs: int = setting(8, "Training the body: maximum epochs (early stopping usually ends sooner)",
                          check=lambda v: v >= 1, rule=">= 1")  # fmt: skip
    batch_size: int = setting(16, "Training the body: examples per step", check=lambda v: v >= 1, rule=">= 1")
    learning_rate: float = setting(5e-5, "Training the body: learning rate of the top block",
                                   check=lambda v: v > 0, rule="> 0")  # fmt: skip
    head_learning_rate: float = setting(1e-3, "Training the body: learning rate of the head",
                                        check=lambda v: v > 0, rule="> 0")  # fmt: skip
    layer_decay: float = setting(
        0.8, "Training the body: each block below the top gets this times the rate of the block above",
        check=lambda v: 0 < v <= 1, rule="in (0, 1]", fix="1 means one rate for all",
    )  # fmt: skip
    adapter: str = setting(
        "none", "Training the body: train LoRA adapters (merged afterwards) instead of the weights",
        choices=lambda: list(ADAPTERS),
    )  # fmt: skip
    lora_rank: int = setting(8, "Training the body with --adapter lora: rank of each adapter",
                             check=lambda v: v >= 1, rule=">= 1")  # fmt: skip
    weight_decay: float = setting(0.01, "AdamW weight decay", check=lambda v: v >= 0, rule=">= 0")
    l2sp: float = setting(0.0, "Training the body: L2-SP strength toward the pre-trained weights (0 = off)",
                          check=lambda v: v >= 0, rule=">= 0")  # fmt: skip
    patience: int = setting(2, "Early stopping: epochs without validation improvement before stopping",
                            check=lambda v: v >= 1, rule=">= 1")  # fmt: skip
    augment: str = setting("none", "Training the body on images: flip,crop,color (comma-separated) or none")
    validation_fraction: float = setting(
        0.2, "Share of the training data held out for early stopping and calibration",
        check=lambda v: 0 < v < 0.5, rule="in (0, 0.5)",
    )  # fmt: skip
    calibrate: bool = setting(False, "Temperature scaling on held-out scores, so probabilities can be trusted")
    adapt: str = setting(
        "auto", "With unlabeled target inputs: domain adaptation (auto: measured by reverse validation, else none)",
        choices=lambda: list(ADAPT_METHODS),
    )  # fmt: skip
    ngrams: str = setting(
        "auto", "Text classifiers: blend in a TF-IDF n-gram model where n-grams alone come close to the backbone "
        "(auto: measured by cross-validation before training)", choices=lambda: list(NGRAMS),
    )  # fmt: skip
    max_length: int = setting(128, "Tokens kept per text (longer texts are truncated)",
                              check=lambda v: v >= 8, rule=">= 8 tokens")  # fmt: skip
    seed: int | None = setting(0, "Random seed (splits, initialisation, shuffling)")
    device: str = setting("auto", "Where training and embedding run (auto: a CUDA GPU where torch sees one, else "
                          "the CPU)", choices=lambda: list(DEVICES))  # fmt: skip
    cache_dir: str | None = setting(
        None, "Embedding cache folder (default: $TRANSFERKIT_CACHE or ~/.cache/transferkit)"
    )
    use_cache: bool = setting(True, "Read and write the embedding cache")
    quiet: bool = setting(False, "No progress bars or status lines", short="-q")
    options: dict[str, Any] | None = setting(None, "The strategies' own settings, by name", cli=False)

    def __post_init__(self) -> None:
        self.strategy = self.strategy.replace("_", "-")
        self.options = dict(self.options or {})
        try:
            self.augment = ",".join(parse_augment(self.augment)) or "none"
        except ValueError as error:
            raise TransferKitError(str(error)) from None
        validate(self)
        check_options(self.options)

    @classmethod
    def from_settings(cls, **settings: Any) -> FitConfig:
        """Build from keyword arguments, the shared settings and any strategy's own ones mixed.

        Raises:
            TransferKitError: A setting nobody declares (with the closest match), or an invalid value.
        """
        known = {item.name for item in fields(cls)} - {"options"}
        options = dict(settings.pop("options", None) or {})
        for key in list(settings):
            if key not in known and strategy_settings_owner(key) is not None:
                options[key] = settings.pop(key)
        unknown = sorted(set(settings) - known)
        if unknown:
            check_options({unknown[0]: None})  # raises "unknown setting ... did you mean"
        return cls(**settings, options=options)

    def option(self, name: str) -> Any:
        """The value of a strategy's own setting: given, or the declaring strategy's default."""
        if name in self.options:
            return self.options[name]
        spec = strategy_settings_owner(name)
        if spec is None:
            raise KeyError(f"no strategy declares the setting {name!r}")
        return getattr(spec.settings(), name)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in RUNTIME_SETTINGS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FitConfig:
        """Build from JSON, ignoring keys this version does not know (forward compatibility)."""
        known = {item.name for item in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        options = dict(values.pop("options", None) or {})
        # Settings saved by older versions at the top level (time_budget) are strategy options now.
        options.update({k: v for k, v in data.items() if k not in known and strategy_settings_owner(k) is not None})
        values["options"] = {k: v for k, v in options.items() if strategy_settings_owner(k) is not None}
        return cls(**values)
