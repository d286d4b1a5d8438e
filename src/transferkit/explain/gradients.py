"""What every Integrated Gradients explanation shares: Captum, the head as a torch module, the step schedule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from transferkit.explain.core import DELTA_TOLERANCE, ExplainError

START_STEPS = 32


def captum_attr() -> Any:
    """``captum.attr``, or a one-line error naming the extra that installs it."""
    try:
        import captum.attr
    except ImportError:
        raise ExplainError(
            "integrated gradients need captum, which is in the 'deploy' extra; run: pip install 'transferkit[deploy]' "
            "(or use method='occlusion', which needs nothing more)"
        ) from None
    return captum.attr


def torch_head(head: Any) -> torch.nn.Module:
    """The head as a torch module in eval mode: a linear head's layer or the MLP's network."""
    module = head.to_torch() if hasattr(head, "to_torch") else head.network
    return module.eval()


def integrate(
    attribute: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    difference: float,
    steps: int | None,
    max_steps: int,
) -> tuple[torch.Tensor, float, int]:
    """Run ``attribute(n_steps) -> (attributions, convergence delta)``; with ``steps`` None, start at
    :data:`START_STEPS` (or ``max_steps`` when smaller) and double until
    ``|delta| <= DELTA_TOLERANCE * |difference|`` or ``max_steps``.

    Returns:
        (attributions, delta, steps used).
    """
    n_steps = steps or min(START_STEPS, max_steps)
    while True:
        attributions, delta = attribute(n_steps)
        value = float(delta.detach().sum())
        converged = abs(value) <= max(DELTA_TOLERANCE * abs(difference), 1e-3)  # near-equal scores: nothing to split
        if steps is not None or converged or n_steps * 2 > max_steps:
            return attributions.detach(), value, n_steps
        n_steps *= 2
