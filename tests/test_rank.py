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
from transferkit.selection import candidates_for, rank, score_features
from transferkit.strategies.fit import fit_model


@pytest.fixture(scope="module")
def afinn_ranking():
    data = load_labeled("afinn")
    return rank(data.texts, data.y, task="classification", candidates=["toy-text", "minilm"], max_examples=300,
                rounds=30, quiet=True)  # fmt: skip


def test_a_pretrained_encoder_outranks_random_weights_on_every_score(afinn_ranking):
    ranking = afinn_ranking["ranking"]
    assert [row["name"] for row in ranking] == ["minilm", "toy-text"] and afinn_ranking["top"] == "minilm"
    assert afinn_ranking["n"] == 300
    for score in ("logme", "hscore", "nleep"):
        assert ranking[0]["scores"][score] > ranking[1]["scores"][score]
    assert all(row["seconds_embed"] >= 0 and row["seconds_score"] >= 0 for row in ranking)


def test_stability_is_the_share_of_resamples_each_candidate_tops(afinn_ranking):
    stability = afinn_ranking["stability"]
    assert set(stability) == {"minilm", "toy-text"} and sum(stability.values()) == pytest.approx(1.0)
    assert stability["minilm"] > 0.9 and "stays on top" in afinn_ranking["summary"]


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


def test_fit_with_backbone_auto_uses_the_top_ranked_candidate_and_saves_it(afinn_frame, tmp_path):
    texts, y = afinn_frame["text"].tolist(), afinn_frame["sentiment"].tolist()
    model = fit_model(texts, y, task="classification", backbone="auto", config=FitConfig(quiet=True))
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
    assert "minilm" in done.stdout and "ranks first by logme" in done.stdout
    assert json.loads(out.read_text())["top"] == "minilm"
    bad = subprocess.run([sys.executable, "-m", "transferkit.cli", "rank", "afinn", "--score", "acc", "--quiet"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown score" in bad.stderr


def test_summary_says_when_the_linear_probe_disagrees_with_the_top_pick():
    from transferkit.selection.rank import _summary

    rows = [
        {"name": "a", "scores": {"logme": -0.3, "linear-probe": 0.6}},
        {"name": "b", "scores": {"logme": -0.5, "linear-probe": 0.9}},
    ]
    result = {"top": "a", "score": "logme", "ranking": rows, "n": 300, "stability": {"a": 0.5}, "rounds": 20}
    text = _summary(result)
    assert "a close call" in text and "the slower linear probe prefers b (0.900 vs 0.600)" in text
    rows[1]["scores"]["linear-probe"] = 0.5
    assert "prefers" not in _summary(result)
