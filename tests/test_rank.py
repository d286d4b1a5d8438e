"""Backbone ranking: the real MiniLM against the random toy encoder, from Python, from `fit` and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import transferkit as tk
from transferkit.config import FitConfig
from transferkit.data import load_labeled
from transferkit.errors import BackboneError
from transferkit.selection import candidates_for, logme, rank, score_features
from transferkit.selection.ranking import ALL_SCORES, _stability, _subsample
from transferkit.strategies.fit import fit_model


@pytest.fixture(scope="module")
def afinn_ranking():
    data = load_labeled("afinn")
    return rank(data.inputs, data.y, task="classification", candidates=["toy-text", "minilm"], max_examples=300,
                rounds=30, quiet=True)  # fmt: skip


def test_a_pretrained_encoder_outranks_random_weights_on_every_score(afinn_ranking):
    ranking = afinn_ranking["ranking"]
    assert [row["name"] for row in ranking] == ["minilm", "toy-text"] and afinn_ranking["top"] == "minilm"
    assert afinn_ranking["n"] == 300
    for score in ("logme", "hscore", "nleep"):
        assert ranking[0]["scores"][score] > ranking[1]["scores"][score]
    assert all(row["seconds_embed"] >= 0 and row["seconds_score"] >= 0 for row in ranking)


def test_stability_is_the_share_of_subsamples_each_candidate_tops(afinn_ranking):
    stability = afinn_ranking["stability"]
    assert set(stability) == {"minilm", "toy-text"} and sum(stability.values()) == pytest.approx(1.0)
    assert stability["minilm"] > 0.9 and "stays on top in" in afinn_ranking["summary"]
    assert "of 30 subsamples (50% of the examples each)" in afinn_ranking["summary"]
    assert "bootstrap" not in afinn_ranking["summary"]


@pytest.mark.parametrize("task", ["classification", "multilabel", "regression"])
def test_subsamples_hold_half_the_examples_without_repeats_and_every_class(task):
    rng = np.random.default_rng(0)
    classes = np.array([0] * 40 + [1] * 17 + [2] * 3 + [3] * 2)  # unbalanced, with two tiny classes
    target = {"classification": classes, "multilabel": np.eye(4)[classes], "regression": rng.normal(size=62)}[task]
    for _ in range(20):
        rows = _subsample(target, task, rng)
        assert len(np.unique(rows)) == len(rows) and np.all(np.diff(rows) > 0)  # no example twice
        if task == "classification":  # half of each class, but at least two (the linear probe's folds need two)
            assert np.bincount(classes[rows], minlength=4).tolist() == [20, 8, 2, 2]
        else:
            assert len(rows) == 31


def _classes_with_features(n=100, k=2, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return rng, y, rng.normal(size=(k, 8))[y] + rng.normal(size=(n, 8))


def test_a_pick_with_a_large_margin_tops_every_subsample():
    rng, y, informative = _classes_with_features()
    noisy = informative + 5.0 * rng.normal(size=informative.shape)  # the same features, buried in noise
    stability = _stability({"noisy": noisy, "informative": informative}, y, "classification", "logme", 50, 0)
    assert stability == {"informative": 1.0, "noisy": 0.0}


def test_subsamples_keep_the_full_data_logme_winner_that_bootstrap_duplicates_unseat():
    # A bootstrap resample of 100 examples holds about 63 distinct ones, each drawn ~1.6 times. 80 weakly
    # informative dimensions fit 63 points exactly, and LogME reads duplicated rows with identical labels as
    # noise-free targets, so the wide features win every resample although the 8 informative dimensions win
    # on the real data (and on every half-sample, where no row repeats).
    rng, y, informative = _classes_with_features()
    wide = 0.2 * rng.normal(size=(2, 80))[y] + rng.normal(size=(100, 80))
    assert logme(informative, y) > logme(wide, y)
    draws = np.random.default_rng(1)
    bootstrap_wins = []
    for _ in range(30):
        rows = draws.integers(0, 100, 100)
        bootstrap_wins.append(logme(informative[rows], y[rows]) > logme(wide[rows], y[rows]))
    assert np.mean(bootstrap_wins) < 0.1
    stability = _stability({"informative": informative, "wide": wide}, y, "classification", "logme", 30, 0)
    assert stability["informative"] > 0.9


def test_candidates_are_the_installed_real_backbones_only():
    names = candidates_for("text")
    assert "minilm" in names and "toy-text" not in names
    assert candidates_for("image") == [] or all(n not in names for n in candidates_for("image"))


def test_regression_is_ranked_by_logme_and_inapplicable_scores_say_so(afinn_frame):
    texts, valence = afinn_frame["text"].tolist(), afinn_frame["valence"].astype(float).tolist()
    result = rank(texts, valence, task="regression", candidates=["minilm", "toy-text"], rounds=0, quiet=True)
    assert result["top"] == "minilm" and result["stability"] == {}
    assert result["ranking"][0]["scores"]["hscore"] is None and result["ranking"][0]["scores"]["logme"] is not None


def test_a_candidate_that_cannot_load_is_skipped_with_its_reason(afinn_frame):
    texts, y = afinn_frame["text"].tolist(), afinn_frame["sentiment"].tolist()
    result = rank(texts, y, task="classification", candidates=["minilm", "no-such-model"], rounds=0, quiet=True)
    assert [row["name"] for row in result["ranking"]] == ["minilm"]
    assert result["skipped"][0]["name"] == "no-such-model" and result["skipped"][0]["reason"]
    with pytest.raises(BackboneError, match="no candidate could be embedded"):
        rank(texts, y, task="classification", candidates=["no-such-model"], quiet=True)


def test_unknown_score_is_refused():
    with pytest.raises(tk.TransferKitError, match="unknown score 'acc'"):
        score_features(np.eye(4), np.array([0, 1, 0, 1]), "classification", ["acc"])


@pytest.mark.parametrize("score", ["acc", "nce", "leep"])
def test_rank_refuses_scores_it_cannot_compute_before_embedding_and_lists_the_usable_ones(score):
    with pytest.raises(tk.TransferKitError) as refused:  # "no-such-model" would fail if it got to embedding
        rank(["a", "b"], [0, 1], task="classification", candidates=["no-such-model"], score=score, quiet=True)
    usable = str(refused.value).split("choose from ")[1].split(", ")
    assert usable == list(ALL_SCORES) and {"nce", "leep"}.isdisjoint(usable)


def test_fit_with_backbone_auto_uses_the_top_ranked_candidate_and_saves_it(afinn_frame, tmp_path):
    texts, y = afinn_frame["text"].tolist(), afinn_frame["sentiment"].tolist()
    model = fit_model(
        texts, y, task="classification", backbone="auto", config=FitConfig(strategy="feature-extraction", quiet=True)
    )
    chosen = model.info["backbone_ranking"]["chosen"]
    assert chosen == max(model.info["backbone_ranking"]["scores"].items(), key=lambda kv: kv[1])[0]
    assert model.backbone.name == chosen
    tk.save(model, tmp_path / "model")
    assert tk.load(tmp_path / "model").predict(texts[:5]) == model.predict(texts[:5])


def test_rank_cli_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "ranking.json"
    args = ["rank", "afinn", "--candidates", "minilm,toy-text", "--max-examples", "200", "--rounds", "10"]
    done = subprocess.run([sys.executable, "-m", "transferkit.cli", *args, "--json", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "minilm" in done.stdout and "ranks first by logme" in done.stdout and "subsamples" in done.stdout
    assert json.loads(out.read_text())["top"] == "minilm"
    bad = subprocess.run([sys.executable, "-m", "transferkit.cli", "rank", "afinn", "--score", "acc", "--quiet"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown score" in bad.stderr


def test_summary_says_when_the_linear_probe_disagrees_with_the_top_pick():
    from transferkit.selection.ranking import _summary

    rows = [
        {"name": "a", "scores": {"logme": -0.3, "linear-probe": 0.6}},
        {"name": "b", "scores": {"logme": -0.5, "linear-probe": 0.9}},
    ]
    result = {"top": "a", "score": "logme", "ranking": rows, "n": 300, "stability": {"a": 0.5}, "rounds": 20}
    text = _summary(result)
    assert "a close call" in text and "the slower linear probe prefers b (0.900 vs 0.600)" in text
    rows[1]["scores"]["linear-probe"] = 0.5
    assert "prefers" not in _summary(result)


@pytest.fixture()
def image_folder(tmp_path):
    """A folder of class sub-folders holding 8 small generated PNGs (stripes across or down) and a broken one."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "stripes"
    for label in ("across", "down"):
        (folder / label).mkdir(parents=True)
        for i in range(4):
            stripes = np.tile((np.arange(32) // 4 % 2 * 200)[:, None], (1, 32))
            pixels = (stripes if label == "across" else stripes.T) + rng.integers(0, 50, (32, 32))
            Image.fromarray(pixels.astype(np.uint8)).save(folder / label / f"{i}.png")
    (folder / "down" / "broken.png").write_bytes(b"not a png")
    return folder


def test_ranking_a_folder_of_images_ranks_the_image_candidates(image_folder):
    from transferkit.api import rank as rank_api

    images = candidates_for("image")
    if not images:
        pytest.skip("needs the image extra: pip install -e '.[image]'")
    result = rank_api(image_folder, on_bad_file="skip", rounds=0, quiet=True)
    assert {row["name"] for row in result["ranking"]} == set(images) and result["skipped"] == []
    assert result["n"] == 8 and result["top"] in images  # the broken file was left out, not ranked
    with pytest.raises(tk.TransferKitError, match=r"broken\.png"):
        rank_api(image_folder, rounds=0, quiet=True)  # on_bad_file="fail" is the default


def test_rank_cli_detects_images_and_takes_modality_and_on_bad_file(image_folder, tmp_path):
    images = candidates_for("image")
    if not images:
        pytest.skip("needs the image extra: pip install -e '.[image]'")
    out = tmp_path / "ranking.json"
    cli = [sys.executable, "-m", "transferkit.cli", "rank", str(image_folder), "--quiet"]
    done = subprocess.run([*cli, "--on-bad-file", "skip", "--rounds", "0", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {row["name"] for row in json.loads(out.read_text())["ranking"]} == set(images)
    text = subprocess.run([*cli, "--modality", "text"], capture_output=True, text=True, timeout=300)
    assert text.returncode == 2 and "is a folder of image files, not text" in text.stderr
