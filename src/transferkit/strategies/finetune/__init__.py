"""Fine-tuning: train the top blocks of the backbone with a linear head (LP-FT, discriminative rates, L2-SP)."""

from transferkit.strategies.registry import register_strategy

register_strategy(
    name="finetune",
    summary="trains the top --unfreeze-layers blocks with a linear head started from a probe (LP-FT), "
    "discriminative learning rates, optional L2-SP, early stopping: more labels, domain shift",
    entry="fit:fit",
    package=__name__,
    kind="transfer",
    cost="expensive",
    trains_body=True,
    needs_trainable=True,
    holds_out_validation=True,
)
