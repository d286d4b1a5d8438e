"""Audio on real speech synthesised in the test (espeak-ng): reading, resampling, trimming, the three audio
backbones, the MFCC baseline, and the CLI on a folder of spoken commands."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("soundfile", reason="needs the audio extra (README: audio setup)")
pytest.importorskip("eff_word_net", reason="needs efficientword-net (README: audio setup)")

from transferkit import FitConfig
from transferkit.datasets.speech import espeak_available, synthesize
from transferkit.errors import DataError
from transferkit.evaluation import compute_metrics

pytestmark = pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng (apt-get install espeak-ng)")
WORDS = ("yes", "no", "up", "down", "left", "right")
VOICES = ("en-us+m1", "en-us+f2", "en-gb+m2", "en-gb+f3", "en-us+m7", "en-gb-x-rp+f1")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """6 words x 6 voices, 22.05 kHz WAV files in word sub-folders; the last two voices are the test speakers."""
    folder = tmp_path_factory.mktemp("speech") / "commands"
    rows = synthesize(folder, words=WORDS, voices=VOICES, speeds=(150,), pitches=(50,), noise=0.01)
    test_voices = set(VOICES[4:])
    train = [(path, word, voice) for path, word, voice in rows if voice not in test_voices]
    test = [(path, word, voice) for path, word, voice in rows if voice in test_voices]
    return folder, train, test


def test_audio_is_read_mono_at_16k_from_any_rate_and_format(tmp_path):
    import soundfile

    from transferkit.backbones.audio import load_audio

    t = np.arange(44_100) / 44_100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1).astype(np.float32) * 0.5
    soundfile.write(tmp_path / "a.wav", stereo, 44_100)
    soundfile.write(tmp_path / "a.flac", stereo, 44_100)
    for name in ("a.wav", "a.flac"):
        samples = load_audio(tmp_path / name)
        assert samples.dtype == np.float32 and samples.ndim == 1 and abs(len(samples) - 16_000) <= 1
        assert abs(float(np.abs(samples).max()) - 0.25) < 0.02  # the two channels averaged
    (tmp_path / "bad.wav").write_bytes(b"RIFF....not audio")
    with pytest.raises(DataError, match=r"bad\.wav' cannot be read"):
        load_audio(tmp_path / "bad.wav")
    with pytest.raises(DataError, match=r"gone\.wav' does not exist"):
        load_audio(tmp_path / "gone.wav")


def test_silence_around_speech_is_trimmed(speech):
    from transferkit.backbones.audio import RATE, SpeechTrimmer, load_audio, vad_file

    _, train, _ = speech
    samples = load_audio(train[0][0])
    padded = np.concatenate([np.zeros(RATE, np.float32), samples, np.zeros(RATE, np.float32)])
    trimmer = SpeechTrimmer(vad_file())
    trimmed = trimmer(padded)
    assert len(trimmed) < len(samples) + 0.5 * RATE  # two seconds of silence went, the word stayed
    assert len(trimmed) > 0.2 * RATE
    silence = np.zeros(RATE, np.float32)
    assert len(trimmer(silence)) == RATE  # no speech heard: the clip is kept whole


@pytest.mark.parametrize(("name", "dim"), [("efficientword", 2048), ("openwakeword", 96), ("ge2e", 256)])
def test_audio_backbones_recognise_words_of_unseen_voices(speech, name, dim):
    """Frozen features + a linear head, trained on 4 voices, tested on 2 voices it never heard: well above
    chance (1/6) for every backbone."""
    from transferkit.strategies.fit import fit_model

    _, train, test = speech
    model = fit_model([r[0] for r in train], [r[1] for r in train], task="classification", backbone=name,
                      config=FitConfig(strategy="feature-extraction", quiet=True, use_cache=False))  # fmt: skip
    assert model.backbone.dim == dim and model.backbone.modality == "audio"
    macro_f1 = compute_metrics("classification", [r[1] for r in test], model.predict([r[0] for r in test]))["macro_f1"]
    assert macro_f1 > 1 / 6 + 0.2


def test_speaker_identification_with_ge2e(speech):
    """Who is speaking: train on four words of each voice, identify the voice on the other two words."""
    from transferkit.strategies.fit import fit_model

    _, train, test = speech
    rows = train + test
    seen = [r for r in rows if r[1] in WORDS[:4]]
    unseen = [r for r in rows if r[1] in WORDS[4:]]
    model = fit_model([r[0] for r in seen], [r[2] for r in seen], task="classification", backbone="ge2e",
                      config=FitConfig(strategy="feature-extraction", quiet=True, use_cache=False))  # fmt: skip
    accuracy = np.mean([p == r[2] for p, r in zip(model.predict([r[0] for r in unseen]), unseen, strict=True)])
    assert accuracy > 1 / 6 + 0.2


def test_ge2e_in_onnx_runtime_equals_resemblyzer(speech, isolated_cache):
    """Our GE2E path (LSTM exported to ONNX) gives Resemblyzer's own embed_utterance on the same audio."""
    from transferkit.backbones import create_backbone

    _, train, _ = speech
    ours = create_backbone("ge2e", runtime="onnx", trim=False)
    clips = [ours.samples(r[0]) for r in train[:3]]  # read and resampled, as encode() sees them
    reference = [ours._model.embed_utterance(c / np.abs(c).max() * 0.5) for c in clips]
    np.testing.assert_allclose(ours.encode(clips), np.array(reference), atol=1e-5)
    assert len(list((isolated_cache / "onnx").glob("*-ge2e.onnx"))) == 1


def test_ge2e_fine_tunes_by_block_and_round_trips(speech, tmp_path):
    """GE2E's blocks split like the text encoders' (3 LSTM layers + projection): the split forward equals the whole
    one, fine-tuning the top 2 blocks moves only them, and the saved model gives the same scores."""
    import torch

    import transferkit
    from transferkit.backbones import create_backbone
    from transferkit.strategies.fit import fit_model

    _, train, test = speech
    ge2e = create_backbone("ge2e", runtime="torch")
    batch = ge2e.tokenize([r[0] for r in train[:3]])
    with torch.inference_mode():
        whole = ge2e.forward(batch)
        for n_blocks in (1, 2, 3):
            np.testing.assert_allclose(ge2e.forward_suffix(ge2e.forward_prefix(batch, n_blocks), n_blocks), whole,
                                       atol=1e-5)  # fmt: skip
        # a clip of 1.6 s or less is one partial window: the frozen path sees what fine-tuning trains on
        np.testing.assert_allclose(ge2e.encode([r[0] for r in train[:3]]), whole.numpy(), atol=1e-5)
    config = FitConfig(strategy="finetune", unfreeze_layers=2, epochs=2, quiet=True, cache_dir=str(tmp_path / "c"))
    model = fit_model([r[0] for r in train], [r[1] for r in train], task="classification", backbone=ge2e, config=config)
    assert {name.split("_l")[-1] for name in model.finetuned if name.startswith("lstm.")} == {"2"}
    assert any(name.startswith("linear.") for name in model.finetuned)
    clips = [r[0] for r in test[:6]]
    transferkit.save(model, tmp_path / "ge2e")
    loaded = transferkit.load(tmp_path / "ge2e")
    np.testing.assert_allclose(loaded.scores(clips), model.scores(clips), atol=1e-5)


def test_mfcc_baseline_round_trips_and_fine_tuning_is_refused(speech, tmp_path):
    import transferkit
    from transferkit.errors import BackboneError
    from transferkit.experiments.baselines import BASELINES, baselines_for
    from transferkit.strategies.fit import fit_model

    assert baselines_for("audio") == ["mfcc-lr", "scratch-encoder"]
    _, train, test = speech
    config = FitConfig(strategy="feature-extraction", quiet=True, cache_dir=str(tmp_path / "cache"))
    model = BASELINES.create("mfcc-lr", inputs=[r[0] for r in train], y=[r[1] for r in train],
                             task="classification", config=config)  # fmt: skip
    clips = [r[0] for r in test]
    transferkit.save(model, tmp_path / "mfcc")
    loaded = transferkit.load(tmp_path / "mfcc")
    np.testing.assert_allclose(loaded.scores(clips), model.scores(clips), rtol=1e-5, atol=1e-5)
    with pytest.raises(BackboneError, match="cannot be fine-tuned"):
        fit_model(clips, [r[1] for r in test], task="classification", backbone="efficientword",
                  config=FitConfig(strategy="finetune", quiet=True))  # fmt: skip


def test_cli_fits_a_folder_of_spoken_commands_and_predicts(speech, tmp_path):
    import json
    import os
    import subprocess
    import sys

    import pandas as pd

    folder, _, test = speech
    env = {**os.environ, "TRANSFERKIT_CACHE": str(tmp_path / "cache"), "COLUMNS": "120"}
    cli = [sys.executable, "-m", "transferkit.cli"]
    fit = [*cli, "fit", folder, "--output", tmp_path / "model", "--quiet", "--strategy", "feature-extraction"]
    fitted = subprocess.run(fit, env=env, capture_output=True, text=True, timeout=600)
    assert fitted.returncode == 0, fitted.stderr
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["backbone"]["name"] == "efficientword" and config["backbone"]["trim"] is True
    table = folder.parent / "clips.csv"  # paths relative to the table's folder
    pd.DataFrame({"audio": [os.path.relpath(r[0], folder.parent) for r in test[:4]]}).to_csv(table, index=False)
    predicted = subprocess.run([*cli, "predict", tmp_path / "model", table, "--output", tmp_path / "p.csv"],
                               env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    assert set(pd.read_csv(tmp_path / "p.csv")["prediction"]) <= set(WORDS)
    wrong = subprocess.run([*cli, "fit", folder, "--output", tmp_path / "bad", "--modality", "image"], env=env,
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert wrong.returncode == 2 and "folder of audio files, not image" in wrong.stderr


def test_backbone_auto_ranks_the_audio_candidates(speech, tmp_path):
    """`backbone="auto"` on audio files ranks the audio backbones only, and the keyword encoder wins on words."""
    from transferkit.selection.ranking import candidates_for
    from transferkit.strategies.fit import fit_model

    _, train, _ = speech
    config = FitConfig(strategy="feature-extraction", quiet=True, cache_dir=str(tmp_path / "cache"))
    model = fit_model([r[0] for r in train], [r[1] for r in train], task="classification", backbone="auto",
                      config=config)  # fmt: skip
    assert set(model.info["backbone_ranking"]["scores"]) == set(candidates_for("audio"))
    assert set(candidates_for("audio")) == {"efficientword", "openwakeword", "ge2e"}


def test_auto_measures_the_mfcc_baseline_on_audio(tmp_path):
    """From 16 clips per class `auto` cross-validates frozen features against the cheap audio baseline."""
    from transferkit.strategies.fit import fit_model

    rows = synthesize(tmp_path / "two", words=("yes", "no"), voices=(*VOICES, "en-us+m3", "en-gb+f2"),
                      speeds=(130, 170), pitches=(50,))  # fmt: skip
    config = FitConfig(strategy="auto", quiet=True, cache_dir=str(tmp_path / "cache"))
    model = fit_model([r[0] for r in rows], [r[1] for r in rows], task="classification", backbone="efficientword",
                      config=config)  # fmt: skip
    scores = model.info["auto"]["scores"]
    assert {"feature-extraction", "mfcc-lr"} <= set(scores) and "finetune" not in scores  # ONNX: no gradients
    assert model.info["auto"]["chosen"] in ("feature-extraction", "mfcc-lr")


def test_contrastive_trains_the_top_lstm_layer_of_ge2e_and_round_trips(speech, tmp_path):
    import transferkit
    from transferkit.backbones import create_backbone
    from transferkit.config import FitConfig
    from transferkit.strategies.fit import fit_model

    _, train, test = speech
    ge2e = create_backbone("ge2e", runtime="torch")
    config = FitConfig.from_settings(strategy="contrastive", contrastive_layers=2, contrastive_steps=4, quiet=True,
                                     cache_dir=str(tmp_path / "c"))  # fmt: skip
    model = fit_model([r[0] for r in train], [r[1] for r in train], task="classification", backbone=ge2e, config=config)
    assert model.strategy == "contrastive" and model.info["steps"] == 4
    assert {name.split("_l")[-1] for name in model.finetuned if name.startswith("lstm.")} == {"2"}
    clips = [r[0] for r in test[:6]]
    transferkit.save(model, tmp_path / "ge2e")
    np.testing.assert_allclose(transferkit.load(tmp_path / "ge2e").scores(clips), model.scores(clips), atol=1e-5)
