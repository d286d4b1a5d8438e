"""Reading inputs without torch: file bytes, images as PIL RGB, the network input of an image data config, and
the word tokenizer of static word-vector tables (GloVe).

The torch backbones and the exported-model runtime (:mod:`transferkit.export.runtime`, which must run
without torch) share these, so an exported model sees exactly the pixels its PyTorch original saw.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.errors import DataError

ImageInput = str | Path | np.ndarray | Any  # Any: a PIL image
Tokenizer = Callable[[list[str]], list[list[int]]]


def read_file_bytes(path: str | Path, kind: str = "file") -> bytes:
    """The bytes of an input file (an image, an audio clip).

    Raises:
        DataError: The file does not exist or cannot be read.
    """
    try:
        return Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise DataError(f"{kind} {str(path)!r} does not exist") from None
    except OSError as error:
        raise DataError(f"{kind} {str(path)!r} cannot be read ({error.strerror}); check its permissions") from None


def load_image(item: ImageInput) -> Any:
    """A PIL RGB image from a path, a PIL image or a uint8 array; transparency is composed on white.

    Raises:
        DataError: The file is missing or is not an image Pillow can read.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, (str, Path)):
        data = read_file_bytes(item, "image")
        try:
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                image = opened.copy()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
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


def image_pixels(
    inputs: Sequence[ImageInput],
    *,
    size: int,
    resize: int,
    mean: Sequence[float],
    std: Sequence[float],
    channels: str = "RGB",
    layout: str = "NCHW",
) -> np.ndarray:
    """The network input of a data config: the shorter side resized to ``resize`` (bilinear), the centre
    ``size`` x ``size`` crop, channels in ``channels`` order, ``(value - mean) / std``.

    Shape:
        (n, 3, size, size) for NCHW or (n, size, size, 3) for NHWC, float32.
    """
    from PIL import Image

    mean_array = np.asarray(mean, dtype=np.float32)
    std_array = np.asarray(std, dtype=np.float32)
    batch = np.empty((len(inputs), size, size, 3), dtype=np.float32)
    for row, item in enumerate(inputs):
        image = load_image(item)
        scale = resize / min(image.size)
        width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        image = image.resize((width, height), Image.Resampling.BILINEAR)
        left, top = (width - size) // 2, (height - size) // 2
        array = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32)
        batch[row] = ((array[:, :, ::-1] if channels == "BGR" else array) - mean_array) / std_array
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2)) if layout == "NCHW" else batch


_WORD = re.compile(r"\w+(?:[-'’.,/]\w+)*|[^\w\s]")
_PIECE = re.compile(r"\w+|[^\w\s]")
_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")


def word_ids(vocabulary: dict[str, int]) -> Tokenizer:
    """Lower-cased words and punctuation looked up in ``vocabulary`` (GloVe's, which keeps hyphenated words,
    numbers with separators and clitics such as "'s" and "n't" as tokens); unknown words fall back to their
    pieces, and unknown pieces are dropped."""

    def lookup(token: str, out: list[int]) -> None:
        index = vocabulary.get(token)
        if index is not None:
            out.append(index)
            return
        clitic = _CLITIC.match(token)
        if clitic:
            for part in clitic.groups():
                lookup(part, out)
            return
        for piece in _PIECE.findall(token):
            if piece != token and piece in vocabulary:
                out.append(vocabulary[piece])

    def ids(texts: list[str]) -> list[list[int]]:
        result = []
        for text in texts:
            out: list[int] = []
            for token in _WORD.findall(text.lower().replace("’", "'")):
                lookup(token, out)
            result.append(out)
        return result

    ids.vocabulary = vocabulary  # what export writes as vocabulary.json
    return ids
