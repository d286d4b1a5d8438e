"""Feature extraction: a frozen backbone, embeddings cached on disk, and a head fitted on them."""

from transferkit.strategies.registry import register_strategy

register_strategy(
    name="feature-extraction",
    summary="frozen backbone, cached embeddings, a logistic / ridge / MLP head: few labels, fast iteration",
    entry="fit:fit",
    package=__name__,
    kind="transfer",
    cost="cheap",
)
