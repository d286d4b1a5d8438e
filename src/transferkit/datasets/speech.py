"""Spoken words made on the spot with espeak-ng: labeled speech for tests and benchmarks, no download.

``synthesize(folder, words, voices, speeds)`` writes ``folder/<word>/<voice>-<speed>.wav`` (a folder of class
sub-folders, what ``transferkit fit`` reads) with espeak-ng's formant voices: different speakers (voice
variants), speaking rates and pitches, plus optional background noise, at espeak's 22.05 kHz (so reading them
exercises resampling). Needs the ``espeak-ng`` program (Debian/Ubuntu: ``apt-get install espeak-ng``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from transferkit.errors import DataError

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
VOICES = (
    "en-us+m1", "en-us+m3", "en-us+m7", "en-us+f2", "en-us+f4", "en-gb+m2", "en-gb+f3", "en-gb-scotland+m4",
    "en-gb-x-rp+f1", "en-us+klatt", "en-gb+klatt2", "en-us+croak",
)  # fmt: skip


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesize(
    folder: str | Path,
    words: Sequence[str] = COMMANDS,
    voices: Sequence[str] = VOICES,
    speeds: Sequence[int] = (130, 170),
    pitches: Sequence[int] = (40, 60),
    noise: float = 0.0,
    seed: int = 0,
) -> list[tuple[str, str, str]]:
    """Write one WAV per (word, voice, speed, pitch); returns (path, word, voice) rows.

    Args:
        noise: Standard deviation of white noise added, relative to the clip's peak (0 = clean).

    Raises:
        DataError: espeak-ng is not installed.
    """
    if not espeak_available():
        raise DataError("espeak-ng is not installed; apt-get install espeak-ng (it synthesises the spoken words)")
    import soundfile

    rng = np.random.default_rng(seed)
    rows = []
    for word in words:
        target = Path(folder) / word
        target.mkdir(parents=True, exist_ok=True)
        for voice in voices:
            for speed in speeds:
                for pitch in pitches:
                    path = target / f"{voice.replace('+', '_')}-{speed}-{pitch}.wav"
                    command = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), word]
                    subprocess.run(command, check=True, capture_output=True, timeout=60)
                    if noise > 0:
                        samples, rate = soundfile.read(str(path), dtype="float32")
                        peak = float(np.abs(samples).max()) or 1.0
                        samples = samples + rng.normal(0, noise * peak, samples.shape).astype(np.float32)
                        soundfile.write(str(path), np.clip(samples, -1, 1), rate)
                    rows.append((str(path), word, voice))
    return rows
