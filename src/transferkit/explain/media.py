"""Where in an image or a clip the evidence is: Integrated Gradients on the normalised pixels of PyTorch image
backbones, occlusion with a sliding patch for any image backbone (ONNX engines included), and occlusion of
short windows (replaced by the clip's own quietest stretch, its recorded silence) for audio.

Each function returns the method-dependent fields of an :class:`~transferkit.explain.core.Explanation`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from transferkit.backbones.audio import RATE, load_audio
from transferkit.explain.core import Target
from transferkit.explain.gradients import captum_attr, integrate, torch_head

MAX_STEPS = 64  # a 224 px network costs a forward and a backward pass per step (seconds on a CPU)
GRID = 32  # gradient maps are summed into at most GRID x GRID cells (JSON stays small)
PATCHES = 8  # occlusion slides a patch of 1/PATCHES of the side, PATCHES x PATCHES positions
WINDOW = 0.1  # seconds of audio silenced at a time
MAX_WINDOWS = 100  # longer clips get longer windows


def picture(backbone: Any, pixels: np.ndarray) -> np.ndarray:
    """The network input of one image back in 0-255 RGB (the resized centre crop the network saw)."""
    array = pixels[0].transpose(1, 2, 0) if backbone.layout == "NCHW" else pixels[0]
    array = array * np.asarray(backbone.std, dtype=np.float32) + np.asarray(backbone.mean, dtype=np.float32)
    if backbone.channels == "BGR":
        array = array[:, :, ::-1]
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def _cells(values: np.ndarray, cell: int) -> np.ndarray:
    """Sum a (side, side) map into cells of ``cell`` x ``cell`` pixels."""
    rows, cols = values.shape[0] // cell, values.shape[1] // cell
    return values[: rows * cell, : cols * cell].reshape(rows, cell, cols, cell).sum(axis=(1, 3))


def image_gradients(
    backbone: Any, head: Any, item: Any, target: Target, steps: int | None, max_steps: int | None = None
) -> dict[str, Any]:
    """Integrated Gradients on the normalised pixel tensor from a zero tensor (the data config's mean colour),
    summed over colour channels and into grid cells."""
    attr = captum_attr()
    pixels = backbone.pixels([item])
    tensor = torch.from_numpy(pixels)
    baseline = torch.zeros_like(tensor)
    backbone.module.eval()
    linear = torch_head(head)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return target.of(linear(backbone.forward({"pixels": batch})))

    with torch.no_grad():
        score, base = (float(forward(x)[0]) for x in (tensor, baseline))
    explainer = attr.IntegratedGradients(forward)

    def attribute(n_steps: int):
        return explainer.attribute(
            tensor, baselines=baseline, n_steps=n_steps, internal_batch_size=16, return_convergence_delta=True
        )

    with torch.enable_grad():
        attributions, delta, used = integrate(attribute, score - base, steps, max_steps or MAX_STEPS)
    channel_axis = 1 if backbone.layout == "NCHW" else 3
    per_pixel = attributions.sum(channel_axis)[0].double().numpy()
    cell = max(1, math.ceil(per_pixel.shape[0] / GRID))
    return {
        "attributions": _cells(per_pixel, cell).tolist(), "cell": cell, "score": score, "baseline_score": base,
        "delta": delta, "steps": used, "picture": picture(backbone, pixels),
    }  # fmt: skip


def image_occlusion(backbone: Any, head: Any, item: Any, target: Target) -> dict[str, Any]:
    """Cover one patch at a time with the mean colour (zero after normalisation): a cell's attribution is
    how much the score drops while it is covered."""
    pixels = backbone.pixels([item])
    side = backbone.size
    cell = max(1, math.ceil(side / PATCHES))
    positions = [(r, c) for r in range(0, side, cell) for c in range(0, side, cell)]
    variants = np.repeat(pixels, len(positions) + 1, axis=0)
    for index, (r, c) in enumerate(positions, start=1):
        if backbone.layout == "NCHW":
            variants[index, :, r : r + cell, c : c + cell] = 0.0
        else:
            variants[index, r : r + cell, c : c + cell, :] = 0.0
    # The network input is built here (patches are cut after resizing and cropping), so it goes to the
    # backbone's feature function directly instead of through encode(), which would read and resize again.
    backbone._prepare(len(variants))
    features = np.concatenate([backbone._features(variants[i : i + 16]) for i in range(0, len(variants), 16)])
    scores = np.asarray(target.of(np.asarray(head.scores(features))), dtype=np.float64)
    n = math.ceil(side / cell)
    return {
        "attributions": (scores[0] - scores[1:]).reshape(n, n).tolist(), "cell": cell, "score": float(scores[0]),
        "picture": picture(backbone, pixels),
    }  # fmt: skip


def audio_occlusion(backbone: Any, head: Any, item: Any, target: Target) -> dict[str, Any]:
    """Silence one short window at a time (``WINDOW`` seconds, longer for long clips) and re-encode the clip
    as the model reads it (trimming included): a window's attribution is how much the score drops."""
    samples = load_audio(item)
    width = max(int(WINDOW * RATE), math.ceil(len(samples) / MAX_WINDOWS))
    starts = list(range(0, len(samples), width))
    # "Silence" is the clip's own quietest window (its background as recorded): digital zeros would be far
    # outside what log-spectral features ever see, and every window would look decisive.
    loudness = [float(np.sqrt(np.mean(samples[s : s + width] ** 2))) for s in starts]
    quiet = samples[starts[int(np.argmin(loudness))] :][:width]
    background = np.resize(quiet, width) if len(quiet) else np.zeros(width, dtype=np.float32)
    variants = [samples]
    for start in starts:
        silenced = samples.copy()
        silenced[start : start + width] = background[: len(silenced[start : start + width])]
        variants.append(silenced)
    scores = np.asarray(target.of(np.asarray(head.scores(backbone.encode(variants)))), dtype=np.float64)
    return {
        "attributions": (scores[0] - scores[1:]).tolist(), "times": [round(s / RATE, 4) for s in starts],
        "window": width / RATE, "score": float(scores[0]), "picture": samples,
    }  # fmt: skip
