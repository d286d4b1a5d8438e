"""Explanations point at a planted cue: a keyword that decides the class among random filler words, a bright
patch that decides an image's class, a tone burst that decides a clip's class. Integrated Gradients must add up
(completeness delta), occlusion must find the same cue, and the HTML / JSON / CLI / fit report must work."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import transferkit
from synthetic import FILLER, keyword_texts
from transferkit import FitConfig
from transferkit.artifacts import save_model
from transferkit.backbones import create_backbone
from transferkit.cli import app
from transferkit.experiments.report import model_report
from transferkit.explain import ExplainError, explain_examples, explain_html
from transferkit.strategies.fit import fit_model

pytest.importorskip("captum", reason="needs the deploy extra: pip install -e '.[deploy]'")


def fit(texts, labels, backbone, strategy="feature-extraction", task="classification", **settings):
    """Without the n-gram blend: these tests explain the encoder (tests/test_ngrams.py explains a blended model)."""
    config = FitConfig(strategy=strategy, quiet=True, ngrams="off", **settings)
    return fit_model(texts, labels, task=task, backbone=backbone, config=config)


@pytest.fixture(scope="module")
def keyword_data():
    return keyword_texts(80, seed=0), keyword_texts(20, seed=1)


@pytest.fixture(scope="module")
def minilm_model(minilm, keyword_data):
    (texts, labels), _ = keyword_data
    return fit(texts, labels, minilm)


def keyword_rate(explanations, keyword="zebra") -> float:
    return float(np.mean([e.top(1)[0][0] == keyword for e in explanations]))


def test_integrated_gradients_on_minilm_put_the_keyword_on_top_and_add_up(minilm_model, keyword_data):
    _, (texts, labels) = keyword_data
    positives = [t for t, label in zip(texts, labels, strict=True) if label == "pos"][:6]
    explanations = minilm_model.explain(positives, target="pos")
    assert all(e.method == "integrated-gradients" and e.target == "pos" for e in explanations)
    assert keyword_rate(explanations) >= 0.9
    for e, text in zip(explanations, positives, strict=True):
        assert e.tokens == text.split()  # word pieces merged back into the words of the text
        difference = e.score - e.baseline_score
        assert abs(e.delta) <= 0.05 * abs(difference) + 1e-3, (e.delta, difference)
        assert sum(e.attributions) == pytest.approx(difference, abs=abs(e.delta) + 1e-4)
    # the predicted class by default: "neg" texts are explained for "neg", so the keyword's absence is no word
    negatives = minilm_model.explain([t for t, label in zip(texts, labels, strict=True) if label == "neg"][:2])
    assert [e.target for e in negatives] == [e.prediction for e in negatives]


def test_occlusion_on_a_transformer_finds_the_keyword_too(minilm_model, keyword_data):
    _, (texts, labels) = keyword_data
    positives = [t for t, label in zip(texts, labels, strict=True) if label == "pos"][:5]
    explanations = minilm_model.explain(positives, target="pos", method="occlusion")
    assert keyword_rate(explanations) >= 0.8
    assert all(e.delta is None and e.method == "occlusion" for e in explanations)


def test_occlusion_on_the_tfidf_model_puts_the_keyword_on_top(keyword_data):
    (texts, labels), (test_texts, test_labels) = keyword_data
    model = fit(texts, labels, None, strategy="tfidf-lr")
    positives = [t for t, label in zip(test_texts, test_labels, strict=True) if label == "pos"]
    explanations = model.explain(positives)
    assert {e.method for e in explanations} == {"occlusion"}
    assert keyword_rate(explanations) >= 0.9
    with pytest.raises(ExplainError, match=r"integrated gradients need a PyTorch.*method='occlusion'"):
        model.explain(positives[:1], method="integrated-gradients")


def test_static_embeddings_are_explained_through_their_table(keyword_data):
    """WordLlama: gradients on the table rows; the mean is linear in them, so completeness is near exact."""
    (texts, labels), (test_texts, test_labels) = keyword_data
    model = fit(texts, labels, "wordllama")
    positives = [t for t, label in zip(test_texts, test_labels, strict=True) if label == "pos"]
    explanations = model.explain(positives, target="pos")
    assert keyword_rate(explanations) >= 0.8
    for e in explanations:
        assert abs(e.delta) <= 0.05 * abs(e.score - e.baseline_score) + 1e-3


def test_a_finetuned_toy_model_is_explained_word_by_word(keyword_data):
    """The fine-tuned path (weights changed in place) on the character-level toy BERT: pieces become words."""
    (texts, labels), _ = keyword_data
    model = fit(texts[:40], labels[:40], "toy-text", strategy="finetune", epochs=1)
    [explanation] = model.explain(["apple zebra river."])
    assert explanation.tokens == ["apple", "zebra", "river", "."]
    assert abs(explanation.delta) <= 0.05 * abs(explanation.score - explanation.baseline_score) + 1e-3


def test_multilabel_explains_each_predicted_label_and_regression_its_value():
    rng = np.random.default_rng(0)
    texts, tags, values = [], [], []
    for i in range(60):
        words = list(rng.choice(FILLER, size=6))
        row = []
        if i % 2 == 0:
            words.insert(2, "zebra")
            row.append("animal")
        if i % 3 == 0:
            words.insert(4, "mango")
            row.append("fruit")
        texts.append(" ".join(words))
        tags.append(row or ["none"])
        values.append(3.0 * ("zebra" in words) + rng.normal(0, 0.1))
    backbone = create_backbone("wordllama")
    multilabel = fit(texts, tags, backbone, task="multilabel")
    both = "apple zebra stone mango cloud"
    explained = {e.target: e for e in multilabel.explain([both])}
    assert {"animal", "fruit"} <= set(explained)
    assert explained["animal"].top(1)[0][0] == "zebra" and explained["fruit"].top(1)[0][0] == "mango"
    regression = fit(texts, values, backbone, task="regression")
    [value] = regression.explain(["river zebra paper"])
    assert value.target is None and value.probability is None
    assert value.score == pytest.approx(value.prediction, rel=1e-4, abs=1e-4)  # the predicted value itself
    assert value.top(1)[0][0] == "zebra"
    with pytest.raises(ExplainError, match="regression model has no classes"):
        regression.explain(["river"], target="x")


def bright_patch_images(n: int, seed: int, side: int = 32, patch: int = 8):
    """Dark noise; every second image has a white ``patch`` x ``patch`` square somewhere (label "patch")."""
    rng = np.random.default_rng(seed)
    images, labels, boxes = [], [], []
    for i in range(n):
        image = rng.integers(0, 90, size=(side, side)).astype(np.uint8)
        box = None
        if i % 2 == 0:
            top, left = rng.integers(0, side - patch, size=2)
            image[top : top + patch, left : left + patch] = 255
            box = (int(top), int(left))
        images.append(np.dstack([image] * 3))
        labels.append("patch" if box else "plain")
        boxes.append(box)
    return images, labels, boxes


@pytest.mark.parametrize("method", ["integrated-gradients", "occlusion"])
def test_image_saliency_falls_on_the_bright_patch(method):
    """small-cnn (a PyTorch image backbone, 32 px: its input is the image itself) on a bright-patch task: the
    share of the evidence for "patch" (positive attribution) inside the patch is several times its share of the
    area."""
    images, labels, _ = bright_patch_images(40, seed=0)
    model = fit(images, labels, "small-cnn")
    test_images, _, boxes = bright_patch_images(8, seed=1)
    chosen = [i for i, box in enumerate(boxes) if box][:3]
    explanations = model.explain([test_images[i] for i in chosen], target="patch", method=method)
    for e, index in zip(explanations, chosen, strict=True):
        evidence = np.clip(np.asarray(e.attributions), 0, None)  # what pushed towards "patch"
        inside = np.zeros((32, 32), dtype=bool)
        top, left = boxes[index]
        inside[top : top + 8, left : left + 8] = True
        cells = inside.reshape(evidence.shape[0], e.cell, evidence.shape[1], e.cell).any(axis=(1, 3))
        share, area = evidence[cells].sum() / evidence.sum(), cells.mean()
        assert share > 3 * area, (method, share, area)  # measured: 0.26-0.32 vs 0.06 (IG), 0.84-1.0 vs 0.09-0.14
        assert e.picture.shape == (32, 32, 3)
        if method == "integrated-gradients":
            assert abs(e.delta) <= 0.05 * abs(e.score - e.baseline_score) + 1e-3
    page = explain_html(explanations)
    assert page.count("data:image/png;base64,") == len(explanations)


def test_inference_only_backbones_are_explained_by_occlusion(keyword_data):
    """e5-small (ONNX text) and resnet50-thin (ONNX image) have no gradients: auto chooses occlusion, and it
    finds the keyword / the bright patch."""
    (texts, labels), (test_texts, test_labels) = keyword_data
    model = fit(texts, labels, "e5-small")
    positives = [t for t, label in zip(test_texts, test_labels, strict=True) if label == "pos"][:3]
    explanations = model.explain(positives, target="pos")
    assert {e.method for e in explanations} == {"occlusion"} and keyword_rate(explanations) >= 2 / 3
    images, labels, _ = bright_patch_images(20, seed=0, side=64, patch=16)
    model = fit(images, labels, "resnet50-thin")
    test_images, _, boxes = bright_patch_images(2, seed=1, side=64, patch=16)
    [explanation] = model.explain(test_images[:1], target="patch")
    assert explanation.method == "occlusion" and np.shape(explanation.attributions) == (8, 8)
    # 64 px -> resized to 256, centre crop 224: the patch's pixels in the crop are 4 * (box) - 16
    row, col = np.unravel_index(np.argmax(explanation.attributions), (8, 8))
    top, left = (4 * v - 16 for v in boxes[0])
    size = explanation.cell
    assert top - size < row * size < top + 64 and left - size < col * size < left + 64


def test_audio_occlusion_finds_the_tone_burst():
    """mfcc-stats (inference only) on clips of faint noise, half with a 0.2 s tone: silencing the tone's
    windows drops the "tone" score the most."""
    rng = np.random.default_rng(0)
    rate = 16_000
    clips, labels, starts = [], [], []
    for i in range(30):
        clip = rng.normal(0, 0.01, rate).astype(np.float32)
        start = float(rng.uniform(0.1, 0.6))
        if i % 2 == 0:
            t = np.arange(int(0.2 * rate)) / rate
            clip[int(start * rate) : int(start * rate) + len(t)] += 0.5 * np.sin(2 * np.pi * 880 * t)
        clips.append(clip)
        labels.append("tone" if i % 2 == 0 else "noise")
        starts.append(start)
    model = fit(clips, labels, create_backbone("mfcc-stats", trim=False))
    explanations = model.explain([clips[0], clips[2]], target="tone")
    for e, start in zip(explanations, (starts[0], starts[2]), strict=True):
        assert e.method == "occlusion" and e.window == pytest.approx(0.1)
        best = e.times[int(np.argmax(e.attributions))]
        assert start - 0.1 <= best <= start + 0.2, (best, start)
    assert "data:image/png;base64," in explain_html(explanations)


def test_bad_requests_fail_in_one_line(minilm_model):
    with pytest.raises(ExplainError, match=r"target 'zebra' is not a class of this model; pick one of: neg, pos"):
        minilm_model.explain(["apple"], target="zebra")
    with pytest.raises(ExplainError, match="method must be one of"):
        minilm_model.explain(["apple"], method="shap")
    with pytest.raises(ExplainError, match="nothing to explain"):
        minilm_model.explain([])


def test_html_and_json_of_the_real_minilm(minilm_model, tmp_path):
    explanations = minilm_model.explain(["apple zebra <b>river</b>", "stone cloud"])
    json.dumps([e.to_dict() for e in explanations])  # JSON-able as it is
    page = explain_html(explanations)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "zebra" in page
    assert "&lt;" in page and "<b>river" not in page  # texts are escaped
    assert "integrated-gradients" in page and "completeness delta" in page


@pytest.fixture(scope="module")
def model_folder(minilm_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("explain") / "model"
    save_model(minilm_model, folder)
    return folder


def test_cli_explains_texts_and_writes_html_and_json(model_folder, tmp_path):
    runner = CliRunner()
    page, data = tmp_path / "out" / "why.html", tmp_path / "why.json"
    result = runner.invoke(
        app,
        ["explain", str(model_folder), "apple zebra river", "stone cloud", "--html", str(page), "--json", str(data)],
    )
    assert result.exit_code == 0, result.output
    assert "zebra" in result.output and "integrated-gradients" in result.output
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [row["target"] for row in json.loads(data.read_text())] == ["pos", "neg"]
    assert not list(page.parent.glob(".*partial*"))  # written aside and renamed
    table = tmp_path / "texts.csv"
    pd.DataFrame({"text": ["zebra stone", "cloud"]}).to_csv(table, index=False)
    result = runner.invoke(app, ["explain", str(model_folder), "--file", str(table), "--method", "occlusion"])
    assert result.exit_code == 0, result.output
    assert "occlusion" in result.output


def test_cli_explains_image_files(tmp_path):
    from PIL import Image

    images, labels, _ = bright_patch_images(40, seed=0)
    save_model(fit(images, labels, "small-cnn"), tmp_path / "model")
    paths = []
    for index, image in enumerate(bright_patch_images(2, seed=1)[0]):
        paths.append(str(tmp_path / f"image{index}.png"))
        Image.fromarray(image).save(paths[-1])
    data = tmp_path / "why.json"
    result = CliRunner().invoke(app, ["explain", str(tmp_path / "model"), *paths, "--json", str(data)])
    assert result.exit_code == 0, result.output
    rows = json.loads(data.read_text())
    assert [row["input"] for row in rows] == paths and {row["modality"] for row in rows} == {"image"}
    assert np.asarray(rows[0]["attributions"]).shape == (32, 32) and "(y " in result.output
    result = CliRunner().invoke(app, ["explain", str(tmp_path / "model"), str(tmp_path / "missing.png")])
    assert result.exit_code == 2 and "missing.png (does not exist)" in result.output


def test_cli_errors_are_one_line_and_leave_no_html(model_folder, tmp_path):
    runner = CliRunner()
    page = tmp_path / "why.html"
    cases = [
        (["explain", str(tmp_path / "missing"), "apple"], "does not exist"),
        (["explain", str(model_folder), "apple", "--target", "zebra", "--html", str(page)], "not a class"),
        (["explain", str(model_folder)], "either on the command line or with --file"),
    ]
    for arguments, message in cases:
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert not page.exists() and not list(tmp_path.glob(".*partial*"))


def test_fit_report_shows_explained_test_examples(minilm_model, keyword_data):
    _, (texts, labels) = keyword_data
    examples = explain_examples(minilm_model, texts, labels)
    assert 1 <= len(examples) <= 4 and all(e.method == "integrated-gradients" for _, e in examples)
    assert [truth for truth, _ in examples] == [labels[texts.index(e.input)] for _, e in examples]
    report = model_report(minilm_model, None, examples)
    assert "Test examples explained" in report and "completeness delta" in report
    assert explain_examples(minilm_model, [], []) == []


def test_fit_writes_the_explained_examples_into_the_model_report(minilm, keyword_data, tmp_path):
    (texts, labels), _ = keyword_data
    frame = pd.DataFrame({"text": texts[:40], "label": labels[:40]})
    transferkit.fit(frame, backbone=minilm, strategy="feature-extraction", ngrams="off", output=tmp_path / "model",
                    quiet=True)  # fmt: skip
    report = (tmp_path / "model" / "report.html").read_text(encoding="utf-8")
    assert "Test examples explained" in report and "integrated-gradients" in report
