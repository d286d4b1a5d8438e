"""Image augmentation for fine-tuning: the transforms' names and their parser (the transforms themselves are
:class:`transferkit.training.augment.Augmenter`, which needs torch).

Augmentation runs on the normalised pixel tensors fine-tuning already holds (no second decode of the files),
fresh for every batch from the run's seeded generator, so runs repeat exactly. It needs the lowest block to
see the raw pixels, so a run with augmentation does not cache frozen lower blocks (each step costs a full
forward pass of the network).

``FitConfig.augment`` names the transforms, comma-separated (``"flip,crop,color"``), or ``"none"``:

- ``flip``: mirror left-right with probability 1/2 (leave it out for digits, text, or anything with a handedness);
- ``crop``: a random crop of 60-100% of the area, aspect ratio 3/4-4/3, resized back to the input size;
- ``color``: brightness, contrast and saturation each scaled by a factor in [0.8, 1.2].
"""

from __future__ import annotations

AUGMENTATIONS = ("flip", "crop", "color")


def parse_augment(spec: str) -> tuple[str, ...]:
    """``"flip,crop"`` -> ("flip", "crop"); ``"none"`` or "" -> ().

    Raises:
        ValueError: An unknown transform name.
    """
    names = tuple(part.strip().lower() for part in spec.split(",") if part.strip() and part.strip() != "none")
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(
            f"unknown augmentation {', '.join(map(repr, unknown))}; use a comma-separated list of "
            f"{', '.join(AUGMENTATIONS)}, or 'none'"
        )
    return names
