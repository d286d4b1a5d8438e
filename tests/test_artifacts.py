"""Model folders: save -> load -> the same predictions, atomic writes, and clear errors for bad folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

import transferkit as tk
from transferkit.artifacts import atomic_folder, load_model, save_model
from transferkit.errors import ModelFolderError, TransferKitError


@pytest.fixture(scope="module", params=["feature-extraction", "finetune"])
def fitted(request, spam_frame):
    return tk.fit(spam_frame, backbone="toy-text", strategy=request.param, epochs=2, quiet=True)


@pytest.mark.parametrize("backbone", ["toy-text", "minilm"])
@pytest.mark.parametrize("strategy", ["feature-extraction", "finetune"])
def test_save_load_same_predictions(tmp_path, spam_frame, backbone, strategy):
    model = tk.fit(spam_frame, backbone=backbone, strategy=strategy, epochs=1, quiet=True)
    texts = spam_frame["text"].tolist()[:12]
    folder = tk.save(model, tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["config.json", "head.safetensors", "metrics.json"]
        + (["backbone.safetensors"] if strategy == "finetune" else [])
        + (["ngrams.json", "ngrams.safetensors"] if model.ngrams is not None else [])
    )
    loaded = tk.load(folder)
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts), atol=1e-5)
    assert loaded.predict(texts) == model.predict(texts)
    assert loaded.metrics == model.metrics and loaded.classes == model.classes


def test_no_pickle_anywhere(tmp_path, fitted):
    folder = tk.save(fitted, tmp_path / "model")
    for path in folder.iterdir():
        assert path.suffix in (".json", ".safetensors")
        assert b"\x80\x04\x95" not in path.read_bytes()[:64]  # pickle protocol 4 header


def test_config_records_backbone_reference_and_hash(tmp_path, fitted):
    config = json.loads((tk.save(fitted, tmp_path / "m") / "config.json").read_text())
    assert config["format"] == "transferkit-model" and config["task"] == "classification"
    assert config["backbone"]["source"] == {"registry": "toy-text"}
    assert config["backbone"]["weights_sha256"] == tk.create_backbone("toy-text").weights_hash
    assert config["target"]["classes"] == ["ham", "spam"]
    assert config["settings"]["strategy"] == fitted.config.strategy


def test_finetuned_model_keeps_the_pretrained_hash_and_only_changed_tensors(tmp_path, spam_frame):
    model = tk.fit(spam_frame, backbone="toy-text", strategy="finetune", unfreeze_layers=1, epochs=1, quiet=True)
    folder = tk.save(model, tmp_path / "m")
    stored = load_file(str(folder / "backbone.safetensors"))
    assert set(stored) == set(model.finetuned)
    assert all(name.startswith("encoder.layer.1.") for name in stored)


@pytest.mark.parametrize(
    "task_settings",
    [
        {"label_col": "valence", "task": "regression"},
        {"label_col": "sentiment"},
    ],
)
def test_round_trip_regression_and_words(tmp_path, afinn_frame, task_settings):
    model = tk.fit(afinn_frame, backbone="toy-text", strategy="feature-extraction", quiet=True, **task_settings)
    loaded = tk.load(tk.save(model, tmp_path / "m"))
    words = afinn_frame["text"].tolist()[:10]
    if model.task == "regression":
        assert loaded.predict(words) == pytest.approx(model.predict(words), abs=1e-5)
    else:
        assert loaded.predict(words) == model.predict(words)


def test_existing_output_needs_overwrite(tmp_path, fitted):
    folder = tk.save(fitted, tmp_path / "m")
    with pytest.raises(TransferKitError, match="already exists; pass --overwrite"):
        tk.save(fitted, folder)
    tk.save(fitted, folder, overwrite=True)
    assert tk.load(folder).predict(["hello"]) == fitted.predict(["hello"])


def test_overwrite_never_deletes_a_foreign_folder(tmp_path, fitted):
    foreign = tmp_path / "my-documents"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("precious")
    with pytest.raises(TransferKitError, match="transferkit did not write; refusing"):
        tk.save(fitted, foreign, overwrite=True)
    assert (foreign / "thesis.txt").read_text() == "precious"


def test_interrupted_save_leaves_nothing(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt), atomic_folder(target) as folder:
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_interrupted_overwrite_keeps_the_old_model(tmp_path, fitted, monkeypatch):
    folder = tk.save(fitted, tmp_path / "m")
    before = (folder / "head.safetensors").read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("transferkit.artifacts.write_json", boom)
    with pytest.raises(KeyboardInterrupt):
        save_model(fitted, folder, overwrite=True)
    assert (folder / "head.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ModelFolderError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text('{"hello": 1}')
    with pytest.raises(ModelFolderError, match="not a transferkit model folder"):
        load_model(tmp_path)


def test_damaged_model_folder(tmp_path, fitted):
    folder = tk.save(fitted, tmp_path / "m")
    (folder / "head.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelFolderError, match="damaged"):
        load_model(folder)
    (folder / "head.safetensors").unlink()
    with pytest.raises(ModelFolderError, match=r"head\.safetensors is missing"):
        load_model(folder)


def test_backbone_with_different_weights_is_refused(tmp_path, fitted):
    folder = tk.save(fitted, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["backbone"]["weights_sha256"] = "0" * 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="differs from the one"):
        load_model(folder)


def test_unknown_finetuned_tensor_is_refused(tmp_path, spam_frame):
    model = tk.fit(spam_frame, backbone="toy-text", strategy="finetune", epochs=1, quiet=True)
    folder = tk.save(model, tmp_path / "m")
    state = load_file(str(folder / "backbone.safetensors"))
    state["not.a.parameter"] = next(iter(state.values())).clone()
    save_file(state, str(folder / "backbone.safetensors"))
    with pytest.raises(ModelFolderError, match="unknown parameters"):
        load_model(folder)


def test_estimator_save_and_load(tmp_path, spam_frame):
    texts, labels = spam_frame["text"].tolist(), spam_frame["label"].to_numpy()
    estimator = tk.TransferClassifier(backbone="toy-text", strategy="feature-extraction").fit(texts[:40], labels[:40])
    estimator.save(tmp_path / "clf")
    restored = tk.TransferClassifier.load(tmp_path / "clf")
    np.testing.assert_allclose(restored.predict_proba(texts[40:]), estimator.predict_proba(texts[40:]), atol=1e-6)
    assert (restored.predict(texts[40:]) == estimator.predict(texts[40:])).all()
