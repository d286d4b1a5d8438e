"""compare end to end (toy and real MiniLM), the report rendered in headless Chromium, scratch baselines,
and auto choosing a scratch baseline where transfer does not pay."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import transferkit
from transferkit.config import FitConfig
from transferkit.data import LabeledData
from transferkit.datasets import load_builtin
from transferkit.errors import TransferKitError
from transferkit.experiments.baselines import randomized_copy
from transferkit.experiments.compare import compare, parse_budgets, sample_budget
from transferkit.experiments.report import compare_report
from transferkit.strategies.fit import fit_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = (
    '<script>window.addEventListener("load", () => { const p = document.createElement("pre"); p.id = "probe";'
    " p.textContent = JSON.stringify([...document.images].map(i => [i.alt, i.complete, i.naturalWidth]));"
    " document.body.appendChild(p); });</script>"
)


def labeled(frame: pd.DataFrame, text: str, label: str, task: str = "classification") -> LabeledData:
    return LabeledData(inputs=frame[text].tolist(), y=frame[label].tolist(), task=task, text_col=text,
                       label_col=label, source="test slice")  # fmt: skip


@pytest.fixture(scope="module")
def spam_slices() -> tuple[LabeledData, LabeledData]:
    """A training pool of 80 real e-mails (40 per class) and a test set of 300, cut to 300 characters."""
    frame = load_builtin("spam-assassin").groupby("label").sample(190, random_state=1)
    frame = frame.assign(text=frame["text"].str.slice(0, 300)).sample(frac=1.0, random_state=0)
    pool = frame.groupby("label").head(40)
    return labeled(pool, "text", "label"), labeled(frame.drop(pool.index).head(300), "text", "label")


@pytest.fixture(scope="module")
def spam_slice(spam_slices) -> LabeledData:
    return spam_slices[0]


@pytest.fixture(scope="module")
def toy_result(spam_slices, tmp_path_factory) -> dict:
    cache = tmp_path_factory.mktemp("compare-cache")
    pool, test = spam_slices
    return compare(pool, test=test, budgets="4,full", seeds=2, backbone="toy-text",
                   strategies=["feature-extraction", "finetune"], quiet=True, cache_dir=str(cache),
                   rounds=200)  # fmt: skip


def codeword_data(n: int = 60) -> tuple[list[str], list[str]]:
    """Real words as filler; the label is carried by one made-up token, which only lexical features see."""
    words = load_builtin("afinn")["text"].tolist()
    rng = np.random.default_rng(0)
    texts, y = [], []
    for i in range(n):
        label = ["north", "south"][i % 2]
        filler = list(rng.choice(words, 12))
        filler.insert(int(rng.integers(0, 12)), "qzx" if label == "north" else "vjk")
        texts.append(" ".join(filler))
        y.append(label)
    return texts, y


def test_compare_runs_every_arm_on_the_same_samples(toy_result):
    arms = {r["arm"] for r in toy_result["runs"]}
    assert arms == {"feature-extraction", "finetune", "tfidf-lr", "scratch-encoder"}
    assert toy_result["budgets"] == ["4", "full"]
    # 2 seeds at 4 per class, one run on the full pool, per arm
    assert len(toy_result["runs"]) == 4 * (2 + 1)
    sizes = {(r["budget"], r["seed"]): r["n"] for r in toy_result["runs"]}
    assert sizes[("4", 0)] == sizes[("4", 1)] == 8 and sizes[("full", 0)] == toy_result["n_pool"] == 80
    for arm, curve in toy_result["curves"].items():
        for point in curve:
            assert point["low"] <= point["score"] + 1e-9 and point["score"] <= point["high"] + 1e-9, arm


def test_compare_gives_a_verdict_and_savings_per_budget(toy_result):
    assert [g["budget"] for g in toy_result["gains"]] == ["4", "full"]
    for gain in toy_result["gains"]:
        assert gain["verdict"] in ("transfer helps", "no measurable difference", "negative transfer")
        assert gain["low"] <= gain["gain"] + 1e-9 <= gain["high"] + 2e-9
    assert toy_result["savings"]["target"] == max(p["score"] for c in ("tfidf-lr", "scratch-encoder")
                                                  for p in toy_result["curves"][c])  # fmt: skip
    assert len(toy_result["summary"]) >= len(toy_result["gains"])
    assert json.loads(json.dumps(toy_result, default=float))  # JSON-ready


def test_compare_on_toy_backbone_says_tfidf_wins(toy_result):
    """A random toy encoder is no pre-trained model: on 300 test e-mails TF-IDF wins, and the summary says so."""
    assert all(g["scratch"] == "tfidf-lr" for g in toy_result["gains"])
    assert toy_result["gains"][-1]["verdict"] == "negative transfer"
    assert any("negative transfer" in line for line in toy_result["summary"])


def test_compare_on_the_real_minilm(spam_slice, tmp_path):
    result = compare(spam_slice, budgets=[8], seeds=1, backbone="minilm", strategies=["feature-extraction"],
                     baselines=["tfidf-lr"], quiet=True, cache_dir=str(tmp_path), rounds=200)  # fmt: skip
    (gain,) = result["gains"]
    assert (gain["transfer"], gain["scratch"]) == ("feature-extraction", "tfidf-lr")
    assert result["curves"]["feature-extraction"][0]["score"] > 0.6  # real features beat guessing on 32 e-mails
    assert result["chosen"]["metrics"]["n"] == result["n_test"]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian chromium (.ci/run installs it)")
def test_report_renders_in_headless_chromium_with_every_figure(toy_result, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(compare_report(toy_result).replace("</body>", PROBE + "</body>"), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]  # fmt: skip
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout  # fmt: skip
    probe = dom.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0]
    images = {alt: (complete, width) for alt, complete, width in json.loads(probe)}
    for figure in ("learning curves", "time vs score", "confusion matrix", "reliability diagram"):
        assert images[figure][0] and images[figure][1] > 300, figure
    for text in ("Is transfer worth it here?", "negative transfer", "Per-class scores"):
        assert text in dom


def test_budgets_are_parsed_and_checked():
    assert parse_budgets("16,4,full") == [4, 16, "full"]
    for bad in ("0", "four", ""):
        with pytest.raises(TransferKitError, match=r"budget|no budgets"):
            parse_budgets(bad)


def test_sample_budget_is_per_class_and_seeded():
    y = ["a"] * 10 + ["b"] * 3
    picked = sample_budget(y, "classification", 4, seed=0)
    assert sorted(y[i] for i in picked) == ["a"] * 4 + ["b"] * 3  # a rare class gives all it has
    assert (picked == sample_budget(y, "classification", 4, seed=0)).all()
    assert len(sample_budget(list(range(50)), "regression", 16, seed=0)) == 16


def test_randomized_copy_keeps_the_architecture_and_changes_the_weights(toy_backbone):
    scratch = randomized_copy(toy_backbone, seed=0)
    assert scratch.weights_hash != toy_backbone.weights_hash
    assert scratch.module.state_dict().keys() == toy_backbone.module.state_dict().keys()
    assert scratch.encode(["same text"]).shape == toy_backbone.encode(["same text"]).shape


def test_auto_picks_a_scratch_baseline_where_transfer_does_not_pay_and_it_saves(tmp_path):
    # Without the n-gram blend: with it the transfer arms carry the same n-grams, are scored blended, and tie
    # (tests/test_strategies.py::test_auto_scores_the_transfer_arms_blended_where_their_models_get_the_ngram_blend).
    texts, y = codeword_data()
    model = fit_model(texts[:40], y[:40], task="classification", backbone="toy-text",
                      config=FitConfig(strategy="auto", quiet=True, ngrams="off"))  # fmt: skip
    assert model.strategy == "tfidf-lr"
    assert "transfer did not pay" in model.info["auto"]["reason"]
    assert model.info["auto"]["scores"]["tfidf-lr"] > model.info["auto"]["scores"]["feature-extraction"]
    predicted = model.predict(texts[40:])
    assert np.mean(np.array(predicted) == np.array(y[40:])) > 0.8
    transferkit.save(model, tmp_path / "lexical")
    assert not list((tmp_path / "lexical").glob("*.pkl"))
    loaded = transferkit.load(tmp_path / "lexical")
    assert loaded.predict(texts[40:]) == predicted
    np.testing.assert_allclose(loaded.predict_proba(texts[40:]), model.predict_proba(texts[40:]), rtol=1e-5)


def test_auto_screens_large_data_on_a_sample_and_encodes_only_that_sample(tmp_path):
    """From SCREEN_MIN_N examples, with no body-training arm in the time budget, a scratch model that wins on a
    sample of SCREEN_N is chosen without encoding the rest (the embedding cache holds only the sample)."""
    from transferkit.strategies.auto.fit import SCREEN_MIN_N, SCREEN_N

    texts, y = codeword_data(SCREEN_MIN_N + 100)
    config = FitConfig.from_settings(strategy="auto", time_budget=0.001, quiet=True, cache_dir=str(tmp_path))
    model = fit_model(texts, y, task="classification", backbone="toy-text", config=config)
    assert model.strategy == "tfidf-lr" and model.info["auto"]["screen"] == SCREEN_N
    assert f"a sample of {SCREEN_N} of the {len(texts)} examples" in model.info["auto"]["reason"]
    assert model.info["auto"]["scores"]["tfidf-lr"] > model.info["auto"]["scores"]["feature-extraction"]
    cached = sqlite3.connect(next(tmp_path.rglob("*.sqlite"))).execute("select count(*) from embedding").fetchone()
    assert cached[0] <= SCREEN_N


def test_compare_cli_writes_report_and_json_and_rejects_bad_input(spam_slice, tmp_path):
    data = tmp_path / "mails.csv"
    pd.DataFrame({"text": spam_slice.inputs[:80], "label": spam_slice.y[:80]}).to_csv(data, index=False)
    command = [sys.executable, "-m", "transferkit.cli", "compare", str(data), "--backbone", "toy-text",
               "--budgets", "4", "--seeds", "1", "--baselines", "tfidf-lr", "--strategies", "feature-extraction",
               "--quiet", "--output"]  # fmt: skip
    done = subprocess.run([*command, str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "report.html").stat().st_size > 10_000
    result = json.loads((tmp_path / "out" / "compare.json").read_text(encoding="utf-8"))
    assert result["gains"][0]["verdict"] in done.stdout or result["summary"][0] in done.stdout
    again = subprocess.run([*command, str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    bad = subprocess.run([*command, str(tmp_path / "bad"), "--budgets", "4,x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "budget 'x'" in bad.stderr and not (tmp_path / "bad").exists()
