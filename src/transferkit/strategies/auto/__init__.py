"""``auto``: measure the strategies (and the cheap from-scratch models) on the user's data, keep the best."""

from dataclasses import dataclass

from transferkit.settings import setting
from transferkit.strategies.registry import register_strategy


@dataclass(kw_only=True)
class AutoSettings:
    """auto's own settings."""

    time_budget: float = setting(600.0, "auto: seconds it may spend measuring (expensive arms are skipped beyond it)",
                                 check=lambda v: v > 0, rule="> 0 seconds")  # fmt: skip


register_strategy(
    name="auto",
    summary="from 32 labels per class, cross-validates feature extraction, the cheap from-scratch models and, "
    "within --time-budget, the strategies that train the body; keeps the best (below 16: contrastive for texts, "
    "else the frozen head; from 16 to 31: contrastive for texts unless the frozen head or a cheap model beats it "
    "on a held-out third)",
    entry="fit:fit",
    package=__name__,
    kind="meta",
    cost="expensive",
    trains_body=True,
    holds_out_validation=True,
    settings=AutoSettings,
)
