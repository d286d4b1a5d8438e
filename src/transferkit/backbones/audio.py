"""Audio encoders: spoken keywords (EfficientWord-Net), speech features (openWakeWord), speakers (GE2E).

An audio backbone takes what a user has: file paths (WAV, FLAC, OGG; any sample rate, any number of
channels) or float arrays already at 16 kHz. Every clip is mixed to mono, resampled to 16 kHz (polyphase,
``scipy.signal.resample_poly``), and its leading and trailing silence is cut with the silero voice-activity
detector (ONNX), keeping ``VAD_PAD_SECONDS`` around the speech; a clip where it hears no speech is kept whole.
Every audio backbone gives frozen features (feature extraction, ``auto``, ranking); GE2E (PyTorch) fine-tunes
too, the ONNX and TFLite engines refuse fine-tuning in one line.

- ``efficientword``: EfficientWord-Net, a ResNet-50 trained with ArcFace loss to tell words apart; 1.5 s of
  audio (centred, zero-padded) as 149 x 64 log filter banks -> 2048-d, L2-normalised.
- ``openwakeword``: openWakeWord's melspectrogram and speech-embedding models (Google's speech embedding,
  TFLite through the package's bundled runtime): a 96-d vector per 80 ms, averaged over the clip.
- ``ge2e``: Resemblyzer's GE2E speaker encoder (3-layer LSTM on 40 mel bands): 256-d, averaged over
  1.6 s windows; made to tell voices apart, so suited to speaker identification.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones.base import Backbone, InferenceOnlyBackbone, ProgressCallback, content_key
from transferkit.backbones.onnx_runtime import ExportedForward, OnnxFrozen, session
from transferkit.backbones.preprocess import RATE, AudioInput, SpeechTrimmer, load_audio
from transferkit.devices import module_device
from transferkit.errors import BackboneError


def package_folder(module: str, backbone: str, extra: str = "audio") -> Path:
    """The folder of an installed package, or a one-line error saying how to install it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(f"backbone {backbone!r} is not installed; see the README's audio setup ({extra} extra)")
    return Path(next(iter(spec.submodule_search_locations)))


def vad_file() -> Path:
    """silero VAD's ONNX graph, from the ``silero-vad`` package."""
    return package_folder("silero_vad", "silero-vad") / "data" / "silero_vad.onnx"


class AudioBackbone(Backbone):
    """What every audio encoder shares: reading, resampling, trimming, content-hashed cache keys.

    Args:
        trim: Cut leading and trailing silence with silero VAD before embedding.
    """

    modality = "audio"

    def _setup(self, name: str, trim: bool) -> None:
        self.name, self.source, self.trim = name, {"registry": name}, bool(trim)
        self._trimmer = SpeechTrimmer(vad_file()) if trim else None

    def reference(self) -> dict[str, Any]:
        return {**super().reference(), "trim": self.trim}

    def preprocessing_key(self) -> str:
        return f"mono-{RATE}-{'vad' if self.trim else 'raw'}"

    def input_key(self, item: AudioInput) -> bytes:
        return content_key(item if isinstance(item, (str, Path)) else np.asarray(item, np.float32), "audio file")

    def samples(self, item: AudioInput) -> np.ndarray:
        """The clip as the encoder sees it: 16 kHz mono, silence trimmed."""
        samples = load_audio(item)
        return self._trimmer(samples) if self._trimmer is not None else samples

    def _embed(self, samples: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _prepare(self, n_clips: int) -> None:
        """Called once per :meth:`encode` with the number of clips (engines choose themselves here)."""

    def encode(
        self, inputs: Sequence[AudioInput], *, batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        items = list(inputs)
        output = np.zeros((len(items), self.dim), dtype=np.float32)
        self._prepare(len(items))
        for row, item in enumerate(items):
            output[row] = self._embed(self.samples(item))
            if progress is not None:
                progress(1)
        return output


class EfficientWordBackbone(AudioBackbone, InferenceOnlyBackbone):
    """EfficientWord-Net's keyword embedding (ONNX; ``quantized=True`` uses the int8 graph)."""

    engine = "ONNX Runtime"
    WINDOW = int(1.5 * RATE)

    def __init__(self, *, trim: bool = True, quantized: bool = False, **_: Any) -> None:
        folder = package_folder("eff_word_net", "efficientword") / "models" / "resnet_50_arc"
        suffix = "_qint8" if quantized else ""
        self._path = folder / f"slim_93%_accuracy_72.7390%{suffix}.onnx"
        self.quantized = bool(quantized)
        self._setup("efficientword", trim)
        self._session = session(self._path)
        self.dim = 2048

    def reference(self) -> dict[str, Any]:
        return {**super().reference(), "quantized": self.quantized}

    def _embed(self, samples: np.ndarray) -> np.ndarray:
        from eff_word_net.audio_utils import logfbank

        if len(samples) > self.WINDOW:
            start = (len(samples) - self.WINDOW) // 2
            samples = samples[start : start + self.WINDOW]
        else:
            before = (self.WINDOW - len(samples)) // 2
            samples = np.pad(samples, (before, self.WINDOW - len(samples) - before))
        features = logfbank(samples, samplerate=RATE, winlen=0.025, winstep=0.01, nfilt=64, nfft=512, preemph=0.0)
        vector = self._session.run(None, {"input": features[None, None].astype(np.float32)})[0][0]
        return vector / max(float(np.linalg.norm(vector)), 1e-12)


class OpenWakeWordBackbone(AudioBackbone, InferenceOnlyBackbone):
    """openWakeWord's speech embedding (96-d per 80 ms), averaged over the clip."""

    engine = "TFLite (openWakeWord)"
    MIN_SECONDS = 2.0  # the embedding needs 76 mel frames (about 0.8 s) of context before its first output

    def __init__(self, *, trim: bool = True, **_: Any) -> None:
        from pyopen_wakeword import OpenWakeWordFeatures

        folder = package_folder("pyopen_wakeword", "openwakeword")
        self._path = folder / "models" / "embedding_model.tflite"
        self._setup("openwakeword", trim)
        self._features = OpenWakeWordFeatures.from_builtin()
        self.dim = 96

    def _embed(self, samples: np.ndarray) -> np.ndarray:
        minimum = int(self.MIN_SECONDS * RATE)
        if len(samples) < minimum:  # centre short clips in silence so every clip yields embeddings
            before = (minimum - len(samples)) // 2
            samples = np.pad(samples, (before, minimum - len(samples) - before))
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
        self._features.reset()
        self._features.new_audio_samples = 0  # reset() queues 8 s of silence (a streaming warm-up); not ours
        vectors = [np.asarray(v, dtype=np.float32).reshape(-1, self.dim) for v in self._features.process_streaming(pcm)]
        if not vectors:
            return np.zeros(self.dim, dtype=np.float32)
        return np.concatenate(vectors).mean(axis=0)


class GE2EBackbone(OnnxFrozen, AudioBackbone):
    """Resemblyzer's GE2E speaker encoder (256-d, L2-normalised), frozen or fine-tuned.

    Frozen features follow Resemblyzer's recipe (40-band mel spectrogram, 1.6 s partial windows at 1.3 per
    second, the normalised mean of the partial embeddings), with the network run by ONNX Runtime (exported once
    per set of weights to the cache folder) when ``runtime`` is "auto" or "onnx", by PyTorch with "torch".
    Fine-tuning trains blocks 0-2 (the three LSTM layers) and 3 (the projection) on each clip's first 1.6 s
    window, the whole clip for commands of that length or less.
    """

    PARTIAL = int(1.6 * RATE)

    def __init__(self, *, trim: bool = True, runtime: str = "auto", **_: Any) -> None:
        import contextlib
        import io

        package_folder("resemblyzer", "ge2e")
        with contextlib.redirect_stdout(io.StringIO()):
            from resemblyzer import VoiceEncoder

            self._model = VoiceEncoder("cpu", verbose=False).eval()
        self._set_runtime(runtime)
        self._setup("ge2e", trim)
        self.dim = 256

    @property
    def num_blocks(self) -> int:
        return self._model.lstm.num_layers + 1

    def block_parameters(self, index: int) -> list[torch.nn.Parameter]:
        if index == self.num_blocks - 1:
            return list(self._model.linear.parameters())
        return [p for name, p in self._model.lstm.named_parameters() if name.endswith(f"_l{index}")]

    def _mels(self, samples: np.ndarray) -> tuple[np.ndarray, list[slice]]:
        from resemblyzer import audio

        peak = float(np.abs(samples).max())
        samples = samples / peak * 0.5 if peak > 0 else samples  # GE2E was trained on normalised volume
        wav_slices, mel_slices = self._model.compute_partial_slices(len(samples), rate=1.3, min_coverage=0.75)
        if wav_slices[-1].stop >= len(samples):
            samples = np.pad(samples, (0, wav_slices[-1].stop - len(samples)))
        return audio.wav_to_mel_spectrogram(samples), mel_slices

    def tokenize(self, inputs: Sequence[AudioInput]) -> dict[str, torch.Tensor]:
        windows = []
        for item in inputs:
            mel, slices = self._mels(self.samples(item))
            windows.append(mel[slices[0]])
        return {"mels": torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))}

    def _layers(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        lstm = self._model.lstm
        for layer in range(start, stop):
            weights = [getattr(lstm, f"{kind}_l{layer}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            zeros = x.new_zeros(1, x.shape[0], lstm.hidden_size)
            x = torch.lstm(x, (zeros, zeros), weights, True, 1, 0.0, self._model.training, False, True)[0]
        return x

    def forward_prefix(self, batch: dict[str, torch.Tensor], n_blocks: int) -> dict[str, torch.Tensor]:
        return {"hidden": self._layers(batch["mels"], 0, n_blocks)} if n_blocks else dict(batch)

    def forward_suffix(self, state: dict[str, torch.Tensor], n_blocks: int) -> torch.Tensor:
        x = state["hidden"] if "hidden" in state else state["mels"]
        last = self._layers(x, n_blocks if "hidden" in state else 0, self._model.lstm.num_layers)[:, -1]
        embeds = torch.relu(self._model.linear(last))
        return embeds / embeds.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def _prepare(self, n_clips: int) -> None:
        self._model.eval()
        example = torch.zeros(2, 160, 40)  # partial windows: 160 frames of 40 mel bands
        build = lambda: ExportedForward(self, "mels", example, {0: "batch", 1: "frames"}, "ge2e")  # noqa: E731
        self._engine = self._onnx_engine(n_clips, 1, build)

    def _embed(self, samples: np.ndarray) -> np.ndarray:
        mel, slices = self._mels(samples)
        mels = np.ascontiguousarray([mel[s] for s in slices], dtype=np.float32)
        if self._engine is not None:
            partials = self._engine(mels)
        else:
            with torch.inference_mode():
                partials = self.forward({"mels": torch.from_numpy(mels).to(module_device(self._model))}).cpu().numpy()
        mean = partials.mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


class MfccStatistics(AudioBackbone, InferenceOnlyBackbone):
    """Not pre-trained: mean and standard deviation over time of 20 MFCCs and their deltas (80-d), the
    from-scratch audio baseline's features (``mfcc-lr``)."""

    engine = "no network (MFCC features)"

    def __init__(self, *, trim: bool = True, **_: Any) -> None:
        self._setup("mfcc-stats", trim)
        self.dim = 80

    def compute_weights_hash(self) -> str:
        return hashlib.sha256(b"mfcc-20-deltas-mean-std-v1").hexdigest()

    def _embed(self, samples: np.ndarray) -> np.ndarray:
        import librosa

        mfcc = librosa.feature.mfcc(y=samples, sr=RATE, n_mfcc=20, n_fft=512, hop_length=160)
        width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))
        delta = librosa.feature.delta(mfcc, width=width) if width >= 3 else np.zeros_like(mfcc)
        both = np.concatenate([mfcc, delta])
        return np.concatenate([both.mean(axis=1), both.std(axis=1)]).astype(np.float32)
