"""Face embeddings with dlib: detect, align (5 landmarks), embed (128-d ResNet, metric-learned).

``dlib-face`` is a backbone like any other, so "who is this?" (a folder per person) is plain classification
with feature extraction, and :mod:`transferkit.faces` adds verification ("same person?") with a distance
threshold calibrated on the user's own faces.

Per image: the RGB image is upscaled so its shorter side is at least 150 px (small crops), dlib's HOG detector
finds faces (the largest is used; with none, the whole image is taken as the face, which suits pre-cropped
faces), the 5-point shape predictor aligns it, and the ResNet turns the 150 px face chip into a 128-d vector
in which the same person's faces lie within about 0.6 of each other (dlib's published threshold, LFW).
The models are the ``.dat`` files of the ``face-recognition-models`` package, used by path.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.backbones.base import InferenceOnlyBackbone, ProgressCallback
from transferkit.backbones.image import ImageBackbone
from transferkit.backbones.preprocess import ImageInput, load_image
from transferkit.errors import BackboneError

MIN_SIDE = 150


def _models_folder() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations or importlib.util.find_spec("dlib") is None:
        raise BackboneError("backbone 'dlib-face' is not installed; run: pip install 'transferkit[face]'")
    return Path(next(iter(spec.submodule_search_locations)), "models")


class DlibFaceBackbone(ImageBackbone, InferenceOnlyBackbone):
    """dlib's face detector, 5-point aligner and 128-d face ResNet (inference only).

    Attributes:
        detected: For the last :meth:`encode` call, whether a face was detected in each image (False: the
            whole image was used as the face).
    """

    engine = "dlib (no gradients)"

    def __init__(self, *, name: str = "dlib-face", source: dict[str, str] | None = None, jitter: int = 0, **_: Any):
        import dlib

        folder = _models_folder()
        self._path = folder / "dlib_face_recognition_resnet_model_v1.dat"
        self.name, self.source = name, source or {"registry": "dlib-face"}
        self.jitter = int(jitter)
        self._detector = dlib.get_frontal_face_detector()
        self._shapes = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(str(self._path))
        self._data_config(size=MIN_SIDE, resize=MIN_SIDE, mean=(0.0,) * 3, std=(1.0,) * 3)
        self.dim = 128
        self.detected: list[bool] = []

    def reference(self) -> dict[str, Any]:
        return {**super().reference(), "jitter": self.jitter}

    def preprocessing_key(self) -> str:
        return f"dlib-hog-5pt-chip150-jitter{self.jitter}"

    def face(self, item: ImageInput) -> tuple[np.ndarray, Any, bool]:
        """The RGB array (upscaled if small), the face rectangle, and whether it was detected."""
        import dlib
        from PIL import Image

        image = load_image(item)
        if min(image.size) < MIN_SIDE:
            scale = MIN_SIDE / min(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
        array = np.asarray(image)
        faces = self._detector(array, 1 if max(image.size) < 400 else 0)
        if len(faces):
            return array, max(faces, key=lambda r: r.area()), True
        return array, dlib.rectangle(0, 0, array.shape[1] - 1, array.shape[0] - 1), False

    def _features(self, pixels: np.ndarray) -> np.ndarray:
        raise AssertionError("dlib-face encodes images directly")  # encode() below does not call pixels()

    def encode(
        self, inputs: Sequence[ImageInput], *, batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        items = list(inputs)
        output = np.zeros((len(items), self.dim), dtype=np.float32)
        self.detected = []
        for row, item in enumerate(items):
            array, rectangle, found = self.face(item)
            shape = self._shapes(array, rectangle)
            output[row] = np.asarray(self._net.compute_face_descriptor(array, shape, self.jitter), dtype=np.float32)
            self.detected.append(found)
            if progress is not None and (row + 1) % batch_size == 0:
                progress(batch_size)
        if progress is not None and len(items) % batch_size:
            progress(len(items) % batch_size)
        return output
