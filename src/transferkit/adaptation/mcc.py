"""MCC, minimum class confusion: a loss on unlabeled target batches that fine-tuning adds to the source loss.

Jin, Wang, Long & Wang 2020, "Minimum Class Confusion for Versatile Domain Adaptation",
https://arxiv.org/abs/1912.03699. On a batch of target predictions (softened by a temperature), the class
confusion matrix counts how much probability mass each pair of classes shares, each example weighted up the
more certain it is; the loss is the mass off the diagonal (after normalising each class's row), so minimising
it makes target predictions decisive and keeps classes apart without any target label.
"""

from __future__ import annotations

import torch

TEMPERATURE = 2.5  # the paper's setting
WEIGHT = 1.0  # trade-off against the source loss (the paper's)


def mcc_loss(logits: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """The minimum-class-confusion loss of a batch of target logits.

    Args:
        logits: Scores of unlabeled target examples (one column: a binary logit).
        temperature: Rescales the logits before the softmax (the paper's 2.5).

    Returns:
        A scalar in [0, (k - 1) / k]: 0 when every prediction is certain and classes are not confused.

    Shape:
        (batch, k) or (batch, 1) -> ().
    """
    if logits.shape[1] == 1:  # a binary logit z is the two-class softmax of (0, z)
        logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
    batch, classes = logits.shape
    probabilities = torch.softmax(logits / temperature, dim=1)
    entropy = -(probabilities * torch.log(probabilities + 1e-5)).sum(1).detach()
    weight = 1.0 + torch.exp(-entropy)
    weight = (batch * weight / weight.sum()).unsqueeze(1)
    confusion = (probabilities * weight).T @ probabilities  # (k, k), symmetric
    confusion = confusion / confusion.sum(1, keepdim=True)
    return (confusion.sum() - confusion.trace()) / classes
