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
AudioInput = str | Path | np.ndarray
RATE = 16_000  # audio backbones read 16 kHz mono
VAD_CHUNK = 512  # samples per silero step at 16 kHz (32 ms)
VAD_CONTEXT = 64
VAD_THRESHOLD = 0.5
VAD_PAD_SECONDS = 0.1
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


def load_audio(item: AudioInput, rate: int = RATE) -> np.ndarray:
    """Mono float32 samples at ``rate`` from a file path (any rate, any channels) or a 1-d array at ``rate``.

    Raises:
        DataError: A missing or unreadable file, or an empty clip.
    """
    if isinstance(item, (str, Path)):
        import soundfile

        try:
            samples, source_rate = soundfile.read(str(item), dtype="float32", always_2d=True)
        except FileNotFoundError:
            raise DataError(f"audio file {str(item)!r} does not exist") from None
        except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
            if not Path(item).exists():
                raise DataError(f"audio file {str(item)!r} does not exist") from None
            raise DataError(f"audio file {str(item)!r} cannot be read ({error}); use WAV, FLAC or OGG") from None
        samples = to_rate(samples.mean(axis=1), int(source_rate), rate)
        name = str(item)
    elif isinstance(item, np.ndarray):
        samples = item.astype(np.float32).reshape(-1) if item.ndim == 1 else item.astype(np.float32).mean(axis=-1)
        name = "an audio array"
    else:
        raise DataError(f"cannot read audio from {type(item).__name__}; give a file path or a 1-d array at {rate} Hz")
    if samples.size == 0:
        raise DataError(f"{name} holds no samples")
    return np.ascontiguousarray(samples, dtype=np.float32)


def to_rate(samples: np.ndarray, source_rate: int, rate: int = RATE) -> np.ndarray:
    """Mono samples resampled from ``source_rate`` to ``rate`` (polyphase, ``scipy.signal.resample_poly``)."""
    if source_rate == rate:
        return samples
    from math import gcd

    from scipy.signal import resample_poly

    divisor = gcd(source_rate, rate)
    return resample_poly(samples, rate // divisor, source_rate // divisor).astype(np.float32)


class SpeechTrimmer:
    """Cuts leading and trailing non-speech with silero VAD (the ``silero-vad`` package's ONNX graph at ``path``)."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.path = Path(path)
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """Speech probability of each 32 ms chunk."""
        state = np.zeros((2, 1, 128), dtype=np.float32)
        context = np.zeros((1, VAD_CONTEXT), dtype=np.float32)
        padded = np.pad(samples, (0, -len(samples) % VAD_CHUNK))
        output = []
        for start in range(0, len(padded), VAD_CHUNK):
            chunk = np.concatenate([context, padded[None, start : start + VAD_CHUNK]], axis=1)
            feeds = {"input": chunk, "state": state, "sr": np.array(RATE, dtype=np.int64)}
            probability, state = self._session.run(None, feeds)
            output.append(float(probability[0, 0]))
            context = chunk[:, -VAD_CONTEXT:]
        return np.asarray(output)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        speech = np.flatnonzero(self.probabilities(samples) > VAD_THRESHOLD)
        if not len(speech):
            return samples
        pad = int(VAD_PAD_SECONDS * RATE)
        start = max(0, speech[0] * VAD_CHUNK - pad)
        stop = min(len(samples), (speech[-1] + 1) * VAD_CHUNK + pad)
        return samples[start:stop]


# GE2E's input (Resemblyzer, Wan et al. 2018, https://arxiv.org/abs/1710.10467): 40-band mel power spectrogram
# of 25 ms windows every 10 ms, cut into partial windows of 160 frames (1.6 s) at 1.3 per second.
GE2E_FFT, GE2E_HOP, GE2E_FRAMES, GE2E_RATE, GE2E_COVERAGE = 400, 160, 160, 1.3, 0.75


def ge2e_windows(samples: np.ndarray, mel_filters: np.ndarray) -> np.ndarray:
    """The partial mel windows GE2E embeds for one clip (16 kHz), as Resemblyzer cuts them: the volume scaled to
    a peak of 0.5, the clip zero-padded to cover its last window, the power spectrogram (Hann window, centred
    frames, ``mel_filters`` (40, 201) as ``librosa.filters.mel`` builds it).

    Shape:
        (windows, 160, 40), float32.
    """
    peak = float(np.abs(samples).max())
    samples = samples / peak * 0.5 if peak > 0 else samples
    slices = ge2e_slices(len(samples))
    stop = slices[-1].stop * GE2E_HOP
    if stop >= len(samples):
        samples = np.pad(samples, (0, stop - len(samples)))
    padded = np.pad(samples.astype(np.float32), GE2E_FFT // 2)
    frames = 1 + (len(padded) - GE2E_FFT) // GE2E_HOP
    index = np.arange(GE2E_FFT)[None, :] + GE2E_HOP * np.arange(frames)[:, None]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(GE2E_FFT) / GE2E_FFT)).astype(np.float32)  # periodic Hann
    power = np.abs(np.fft.rfft(padded[index] * window, axis=1)) ** 2
    mel = (power @ mel_filters.T).astype(np.float32)
    return np.ascontiguousarray([mel[s] for s in slices], dtype=np.float32)


def ge2e_slices(n_samples: int) -> list[slice]:
    """Frame ranges of the partial windows (Resemblyzer's ``compute_partial_slices`` at rate 1.3, coverage 0.75)."""
    n_frames = int(np.ceil((n_samples + 1) / GE2E_HOP))
    step = int(np.round((RATE / GE2E_RATE) / GE2E_HOP))
    slices = [slice(i, i + GE2E_FRAMES) for i in range(0, max(1, n_frames - GE2E_FRAMES + step + 1), step)]
    last = slices[-1]
    coverage = (n_samples - last.start * GE2E_HOP) / (GE2E_FRAMES * GE2E_HOP)
    return slices[:-1] if coverage < GE2E_COVERAGE and len(slices) > 1 else slices
