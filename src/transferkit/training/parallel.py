"""Data parallelism for the strategies that train the body: torch DDP inside a process group someone else set up
(Ray Train's TorchTrainer: gloo on CPUs, NCCL on GPUs).

Every worker runs the same strategy code on the same data with the same seed, so all draw the same batch order.
Inside :func:`data_parallel`, each worker keeps its contiguous slice of every global batch (:func:`local_part`),
the trained modules run through :class:`~torch.nn.parallel.DistributedDataParallel` (:func:`wrap`), whose
backward pass averages the gradients, and losses over pairs of the whole batch see every worker's embeddings
(:func:`gather`). With equal slices the averaged gradient is the gradient of the global batch, so ``N`` workers
take the steps one worker takes with the same global batch and seed. Outside it, all three do nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from transferkit.errors import TransferKitError


@dataclass(frozen=True)
class Group:
    rank: int
    world: int


_current: list[Group] = []


@contextlib.contextmanager
def data_parallel(rank: int, world: int) -> Iterator[Group]:
    """Train data-parallel as worker ``rank`` of ``world`` inside the block (needs an initialised process group
    when ``world > 1``)."""
    if world > 1 and not dist.is_initialized():
        raise RuntimeError("data_parallel needs torch.distributed's process group (Ray Train sets it up)")
    _current.append(Group(rank, world))
    try:
        yield _current[-1]
    finally:
        _current.pop()


def current() -> Group | None:
    """The data-parallel group this process trains in, or None."""
    return _current[-1] if _current and _current[-1].world > 1 else None


def slice_sizes(n: int, world: int) -> list[int]:
    """Rows of a batch of ``n`` each worker takes (contiguous, the first ones one longer when uneven)."""
    return [n // world + (1 if rank < n % world else 0) for rank in range(world)]


def local_part(index: Sequence[int]) -> list[int]:
    """This worker's contiguous slice of a global batch's row indices (all of them outside data parallelism)."""
    group = current()
    if group is None:
        return list(index)
    sizes = slice_sizes(len(index), group.world)
    start = sum(sizes[: group.rank])
    return list(index[start : start + sizes[group.rank]])


def check_batch(batch_size: int) -> None:
    """Equal slices are what make the averaged gradient the global batch's: refuse a batch that does not split."""
    group = current()
    if group is not None and batch_size % group.world:
        raise TransferKitError(
            f"--batch-size {batch_size} does not split evenly over {group.world} workers; use a multiple of "
            f"{group.world} (it is the global batch: each worker takes batch_size / workers examples a step)"
        )


class _Forward(torch.nn.Module):
    """A module around a forward function, holding the modules whose parameters it trains (what DDP wraps)."""

    def __init__(self, forward: Callable[[Any], torch.Tensor], modules: Sequence[torch.nn.Module]) -> None:
        super().__init__()
        self.parts = torch.nn.ModuleList(modules)
        self._function = forward

    def forward(self, inputs: Any) -> torch.Tensor:
        return self._function(inputs)


def wrap(forward: Callable[[Any], torch.Tensor], modules: Sequence[torch.nn.Module]) -> Callable[[Any], torch.Tensor]:
    """``forward`` through DDP over ``modules`` (whose trainable parameters it uses), or ``forward`` itself."""
    group = current()
    if group is None:
        return forward
    module = _Forward(forward, modules)
    device = next(module.parameters()).device
    # Buffers (batch-norm statistics) stay each worker's own: every worker runs the same examples through the
    # frozen part, and the trained part's statistics come from its own slice, as with one worker per slice.
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[device] if device.type == "cuda" else None, broadcast_buffers=False
    )


def gather(local: torch.Tensor) -> torch.Tensor:
    """Every worker's rows of a global batch, in rank order, with gradients flowing back to each worker's own."""
    group = current()
    if group is None:
        return local
    from torch.distributed.nn.functional import all_gather

    sizes = torch.tensor([len(local)], device=local.device)
    all_sizes = [torch.zeros_like(sizes) for _ in range(group.world)]
    dist.all_gather(all_sizes, sizes)
    counts = [int(size) for size in all_sizes]
    padded = torch.nn.functional.pad(local, (0, 0, 0, max(counts) - len(local)))
    return torch.cat([part[:count] for part, count in zip(all_gather(padded), counts, strict=True)])
