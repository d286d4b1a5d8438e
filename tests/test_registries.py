"""Smoke tests generated from the registries: every backbone (installed), strategy and baseline gets one, so a
new entry cannot be forgotten; and the declared settings agree with the command line and the estimators.

Scores are covered the same way in ``test_selection_scores.py`` (parametrised over ``SCORES``).
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest

import transferkit
from transferkit.artifacts import FORMAT_VERSION
from transferkit.backbones import BACKBONES, create_backbone, is_installed
from transferkit.config import FitConfig
from transferkit.errors import ModelFolderError, TransferKitError
from transferkit.estimators import TransferClassifier, TransferRegressor
from transferkit.experiments.baselines import BASELINES
from transferkit.settings import declared
from transferkit.state import STATE_PARTS
from transferkit.strategies.fit import fit_model
from transferkit.strategies.registry import STRATEGIES


def _images(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Dark and bright 40 px RGB images with noise: two classes any image model separates."""
    rng = np.random.default_rng(seed)
    labels = ["dark", "bright"] * (n // 2)
    images = [
        np.clip(rng.normal(60 if label == "dark" else 190, 25, (40, 40, 3)), 0, 255).astype(np.uint8)
        for label in labels
    ]
    return images, labels


def _clips(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """One-second clips at 16 kHz: a low or a high tone in noise."""
    rng = np.random.default_rng(seed)
    time = np.arange(16000) / 16000
    labels = ["low", "high"] * (n // 2)
    clips = [
        (0.3 * np.sin(2 * np.pi * (220 if label == "low" else 1760) * time) + 0.02 * rng.normal(size=16000)).astype(
            np.float32
        )
        for label in labels
    ]
    return clips, labels


def _texts(spam_frame, n: int = 40) -> tuple[list[str], list[str]]:
    return spam_frame["text"].tolist()[:n], spam_frame["label"].tolist()[:n]


def _data_for(modality: str, spam_frame, n: int = 40):
    if modality == "image":
        return _images(n)
    if modality == "audio":
        return _clips(n)
    return _texts(spam_frame, n)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_installed_catalog_backbone_encodes_its_modality_and_recreates_from_its_reference(name, spam_frame):
    if not is_installed(name):
        pytest.skip(f"{name} is not installed here")
    info = BACKBONES.info(name)
    backbone = create_backbone(name)
    inputs, _ = _data_for(info["modality"], spam_frame, n=4)
    features = backbone.encode(inputs[:3])
    assert features.shape == (3, backbone.dim) and np.isfinite(features).all()
    assert backbone.dim == info["dim"]
    again = create_backbone(backbone.reference())
    assert again.weights_hash == backbone.weights_hash
    np.testing.assert_allclose(again.encode(inputs[:3]), features, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_fits_predicts_saves_and_loads(name, spam_frame, tmp_path):
    spec = STRATEGIES.get(name)
    modality = spec.modalities[0]
    inputs, y = _data_for(modality, spam_frame, n=40)
    backbone = {"text": "toy-text", "image": "small-cnn", "audio": "mfcc-stats"}[modality]
    config = FitConfig.from_settings(strategy=name, epochs=2, quiet=True, cache_dir=str(tmp_path / "cache"))
    model = fit_model(inputs[:32], y[:32], task="classification", backbone=backbone, config=config)
    if spec.kind != "meta":
        assert model.strategy == name
    predicted = model.predict(inputs[32:])
    assert len(predicted) == 8 and set(predicted) <= set(y)
    folder = transferkit.save(model, tmp_path / "model")
    saved = json.loads((folder / "config.json").read_text())
    assert saved["format_version"] == FORMAT_VERSION and set(saved["state"]) <= set(STATE_PARTS)
    loaded = transferkit.load(folder)
    np.testing.assert_allclose(loaded.scores(inputs[32:]), model.scores(inputs[32:]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", BASELINES.names())
def test_every_baseline_trains_from_scratch_on_its_modality(name, spam_frame, tmp_path):
    modality = BASELINES.info(name)["modality"]
    modality = "text" if modality == "any" else modality
    inputs, y = _data_for(modality, spam_frame, n=40)
    backbone = create_backbone("toy-text") if name == "scratch-encoder" else None
    config = FitConfig(strategy="feature-extraction", quiet=True, epochs=2, cache_dir=str(tmp_path / "cache"))
    model = BASELINES.create(name, inputs=inputs[:32], y=y[:32], task="classification", config=config,
                             backbone=backbone)  # fmt: skip
    assert model.strategy == name and model.info["scratch"] is True
    assert set(model.predict(inputs[32:])) <= set(y)


def test_cheap_baselines_learn_the_planted_signal():
    """The from-scratch models are strong baselines, not stubs: they separate tones and words they trained on."""
    clips, y = _clips(40)
    model = fit_model(clips[:30], y[:30], task="classification", config=FitConfig(strategy="mfcc-lr", quiet=True))
    assert model.predict(clips[30:]) == y[30:]
    texts = [f"{word} {filler}" for word, filler in zip(["refund", "invoice"] * 20, range(40), strict=True)]
    labels = ["money", "bill"] * 20
    model = fit_model(texts[:30], labels[:30], task="classification", config=FitConfig(strategy="tfidf-lr", quiet=True))
    assert model.predict(texts[30:]) == labels[30:]


def test_a_strategy_refuses_a_modality_it_does_not_run_on():
    clips, y = _clips(8)
    with pytest.raises(TransferKitError, match="runs on text inputs, not audio"):
        fit_model(clips, y, task="classification", config=FitConfig(strategy="tfidf-lr", quiet=True))


def test_strategy_order_does_not_depend_on_which_package_was_imported_first():
    script = (
        "import transferkit.strategies.{}\n"
        "from transferkit.strategies.registry import STRATEGIES\n"
        "print(STRATEGIES.names())"
    )
    orders = {
        subprocess.run([sys.executable, "-c", script.format(first)], capture_output=True, text=True, check=True).stdout
        for first in ("contrastive", "scratch", "registry")
    }
    assert orders == {f"{STRATEGIES.names()}\n"}


def _declared_settings() -> list:
    items = [item for item in declared(FitConfig) if item.name != "options"]
    return items + [item for spec in STRATEGIES if spec.settings for item in declared(spec.settings)]


def test_command_line_options_are_the_declared_settings():
    from transferkit.cli.commands import fit as fit_command

    options = {p.name: p for p in inspect.signature(fit_command).parameters.values()}
    for item in _declared_settings():
        assert item.name in options, f"`transferkit fit` lacks --{item.name.replace('_', '-')}"
        assert options[item.name].default == item.default
        assert options[item.name].annotation.__metadata__[0].help == item.help


def test_estimator_parameters_are_the_declared_settings():
    renamed = {"seed": "random_state", "quiet": "verbose"}
    expected = {renamed.get(item.name, item.name): item.default for item in _declared_settings()}
    expected["verbose"] = False  # scikit-learn estimators are silent unless asked
    for estimator in (TransferClassifier(), TransferRegressor()):
        params = estimator.get_params()
        assert set(params) == {"backbone", *expected}
        assert {k: v for k, v in params.items() if k != "backbone"} == expected
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        TransferClassifier(epoch=3)


def test_settings_are_validated_from_their_declaration_and_round_trip_through_json():
    with pytest.raises(TransferKitError, match="epochs must be >= 1, got 0"):
        FitConfig(epochs=0)
    with pytest.raises(TransferKitError, match=r"strategy must be one of .*finetune.*, got 'fine-tune'"):
        FitConfig(strategy="fine-tune")
    with pytest.raises(TransferKitError, match="time_budget must be > 0 seconds, got -1"):
        FitConfig.from_settings(strategy="auto", time_budget=-1)
    with pytest.raises(TransferKitError, match="unknown setting 'time_budgt'; did you mean 'time_budget'"):
        FitConfig.from_settings(time_budgt=5)
    config = FitConfig.from_settings(strategy="auto", time_budget=30, epochs=3)
    assert config.option("time_budget") == 30 and FitConfig().option("time_budget") == 600.0
    assert FitConfig.from_json(config.to_json()) == FitConfig.from_settings(strategy="auto", time_budget=30, epochs=3)
    # Models saved before strategies declared their own settings kept time_budget at the top level.
    assert FitConfig.from_json({"strategy": "auto", "time_budget": 9}).option("time_budget") == 9


@pytest.fixture()
def saved_model(spam_frame, tmp_path):
    texts, y = _texts(spam_frame)
    model = fit_model(
        texts,
        y,
        task="classification",
        backbone="toy-text",
        config=FitConfig(strategy="feature-extraction", quiet=True, ngrams="off"),  # parts format 1 knew
    )
    return model, transferkit.save(model, tmp_path / "model"), texts


def test_loading_refuses_state_nobody_declared(saved_model):
    _, folder, _ = saved_model
    config = json.loads((folder / "config.json").read_text())
    config["state"].append("target-statistics")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="holds state 'target-statistics' that this transferkit does not know"):
        transferkit.load(folder)


def test_loading_refuses_a_tensor_file_no_part_declares(saved_model):
    _, folder, _ = saved_model
    (folder / "adapter.safetensors").write_bytes((folder / "head.safetensors").read_bytes())
    with pytest.raises(ModelFolderError, match=r"holds adapter\.safetensors, which no state part"):
        transferkit.load(folder)


def test_format_1_folders_still_load(saved_model):
    model, folder, texts = saved_model
    config = json.loads((folder / "config.json").read_text())
    del config["state"]
    config["format_version"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    np.testing.assert_allclose(transferkit.load(folder).scores(texts), model.scores(texts), rtol=1e-6)
