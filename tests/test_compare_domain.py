"""``transferkit compare DATA --unlabeled TARGET --test TARGET_TEST``: every adaptation method vs source-only on a
real shift (SpamAssassin's first collection -> its later one, on MiniLM), with consistent numbers, a report that
shows the shift, and one-line errors that write nothing."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import f1_score
from typer.testing import CliRunner

import transferkit as tk
from transferkit.cli import app
from transferkit.data import LabeledData
from transferkit.datasets import load_builtin
from transferkit.evaluation import stats
from transferkit.experiments.domain import HELPS, HURTS, NO_DIFFERENCE, compare_domain
from transferkit.experiments.domain_report import domain_report


@pytest.fixture(scope="module")
def spam_shift(tmp_path_factory):
    """Real e-mails, cut to 300 characters: 20 per class from the first collection (labeled source), 30 per class
    from the later, harder one (easy-ham-2, hard-ham-1, spam-2), half unlabeled target, half the target test."""
    folder = tmp_path_factory.mktemp("spam-shift")
    frame = load_builtin("spam-assassin")
    frame = frame.assign(text=frame["text"].str.slice(0, 300))
    first = frame[frame.group.isin(["easy-ham-1", "spam-1"])].groupby("label").sample(20, random_state=0)
    later = frame[frame.group.isin(["easy-ham-2", "hard-ham-1", "spam-2"])].groupby("label").sample(30, random_state=0)
    test = later.groupby("label").sample(15, random_state=1)
    first[["text", "label"]].to_csv(folder / "source.csv", index=False)
    later.drop(test.index)[["text"]].to_csv(folder / "target.csv", index=False)
    test[["text", "label"]].to_csv(folder / "target_test.csv", index=False)
    return folder


def test_cli_compare_unlabeled_on_minilm_writes_consistent_json_and_a_report_with_the_shift(spam_shift, tmp_path):
    output = tmp_path / "domain"
    arguments = [
        "compare", str(spam_shift / "source.csv"), "--unlabeled", str(spam_shift / "target.csv"), "--test",
        str(spam_shift / "target_test.csv"), "--backbone", "minilm", "-o", str(output), "-q",
    ]  # fmt: skip
    done = CliRunner().invoke(app, arguments)
    assert done.exit_code == 0, done.output
    result = json.loads((output / "compare.json").read_text())
    arms = result["arms"]
    assert list(arms) == ["none", "coral", "subspace", "self-training", "auto"]  # MiniLM has no batch norm
    assert result["n_source"] == 40 and result["n_target"] == 30 and result["n_test"] == 30

    # Source-only is a plain feature-extraction fit scored on the target test set.
    test = pd.read_csv(spam_shift / "target_test.csv")
    plain = tk.fit(str(spam_shift / "source.csv"), strategy="feature-extraction", backbone="minilm", test_size=0,
                   quiet=True)  # fmt: skip
    expected = f1_score(test.label, plain.predict(list(test.text)), average="macro")
    assert arms["none"]["macro_f1"] == pytest.approx(expected, abs=1e-9)
    words = {stats.HELPS: HELPS, stats.NEGATIVE: HURTS, stats.NO_DIFFERENCE: NO_DIFFERENCE}
    for name, arm in arms.items():
        assert arm["low"] <= arm["macro_f1"] <= arm["high"]
        if name != "none":
            assert arm["difference"] == pytest.approx(arm["macro_f1"] - arms["none"]["macro_f1"])
            assert arm["verdict"] == words[stats.verdict(arm["difference_low"], arm["difference_high"])]
    assert all(line in done.output for line in result["summary"])  # the verdict lines, one per method
    assert arms["auto"]["used"] in arms and "reverse validation" in arms["auto"]["reason"]
    reference = result["reference"]
    assert "2-fold cross-fitted" in reference["method"] and 0 <= reference["macro_f1"] <= 1
    shift = result["shift"]
    assert len(shift["before"]["source"]) == 40 and len(shift["before"]["target"]) == 30
    assert shift["after_coral"]["mean_distance"] < shift["before"]["mean_distance"]  # CORAL moves the means
    report = (output / "report.html").read_text()
    assert "data:image/png;base64," in report and "after CORAL" in report and "target-supervised" in report
    assert all(arm["verdict"] in report for name, arm in arms.items() if name != "none")


def test_python_compare_with_adabn_on_digits_vs_inverted_digits():
    digits = load_digits()
    images = list(np.clip(digits.images[:90] * 16, 0, 255).astype(np.uint8))
    labels = [str(v) for v in digits.target[:90] % 2]  # odd vs even: 2 classes
    source = LabeledData(images[:40], labels[:40], "classification", "image", "label", "digits", {"modality": "image"})
    test = LabeledData([255 - i for i in images[60:]], labels[60:], "classification", "image", "label")
    result = compare_domain(source, [255 - i for i in images[40:60]], test, backbone="small-cnn", quiet=True,
                            rounds=200)  # fmt: skip
    assert "adabn" in result["arms"] and result["arms"]["adabn"]["used"] == "adabn"
    assert result["arms"]["adabn"]["verdict"] in (HELPS, NO_DIFFERENCE, HURTS)
    assert "<figure>" in domain_report(result)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"test": None}, "needs --test TARGET_TEST"),
        ({"test": "UNLABELED_TEST"}, "column 'label' is not in .*target.csv"),
        ({"unlabeled": "IMAGES"}, "target inputs are image but the labeled inputs are text"),
        ({"unlabeled": "BLANK"}, "blank.csv' has no rows"),
    ],
)  # fmt: skip
def test_bad_domain_compare_input_gives_one_line_and_writes_nothing(spam_shift, tmp_path, change, message):
    from PIL import Image

    (tmp_path / "blank.csv").write_text("text\n")
    images = tmp_path / "images"
    images.mkdir()
    for index, image in enumerate(load_digits().images[:3]):
        Image.fromarray((image * 16).astype(np.uint8)).save(images / f"{index}.png")
    paths = {
        "BLANK": str(tmp_path / "blank.csv"),
        "IMAGES": str(images),
        "UNLABELED_TEST": str(spam_shift / "target.csv"),
    }
    options = {"unlabeled": str(spam_shift / "target.csv"), "test": str(spam_shift / "target_test.csv")} | change
    arguments = ["compare", str(spam_shift / "source.csv"), "--backbone", "toy-text", "-o", str(tmp_path / "out"), "-q"]
    for name, value in options.items():
        if value is not None:
            arguments += [f"--{name}", paths.get(value, value)]
    done = CliRunner().invoke(app, arguments)
    assert done.exit_code == 2, done.output
    assert len(done.output.strip().splitlines()) == 1 and re.search(message, done.output), done.output
    assert not (tmp_path / "out").exists()
