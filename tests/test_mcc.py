"""MCC (minimum class confusion) during fine-tuning: the loss itself, and ``fit --strategy finetune --adapt mcc``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import transferkit as tk
from transferkit.adaptation.mcc import mcc_loss
from transferkit.cli import app
from transferkit.config import FitConfig
from transferkit.datasets import load_builtin
from transferkit.errors import TransferKitError
from transferkit.strategies.finetune import train
from transferkit.strategies.fit import fit_model


def test_mcc_loss_is_zero_for_certain_distinct_classes_and_high_for_confused_ones():
    certain = torch.tensor([[40.0, 0, 0], [0, 40.0, 0], [0, 0, 40.0]] * 4)
    confused = torch.zeros(12, 3)
    assert float(mcc_loss(certain)) < 1e-3
    assert float(mcc_loss(confused)) == pytest.approx(2 / 3, abs=1e-6)  # every row spread evenly: (k - 1) / k
    binary = torch.tensor([[6.0], [-6.0], [0.1], [-0.2]])  # one logit per example, as binary heads give
    assert 0 < float(mcc_loss(binary)) < 0.5


def test_mcc_gradient_steps_make_predictions_less_confused():
    logits = torch.randn(16, 4, generator=torch.Generator().manual_seed(0)).requires_grad_()
    optimizer = torch.optim.Adam([logits], lr=0.1)
    start = float(mcc_loss(logits.detach()))
    for _ in range(100):
        optimizer.zero_grad()
        mcc_loss(logits).backward()
        optimizer.step()
    assert float(mcc_loss(logits.detach())) < start / 10
    assert set(logits.argmax(1).tolist()) == {0, 1, 2, 3}  # decisive, yet no class swallowed by another


@pytest.fixture()
def texts():
    spam = ["free money now", "win a prize", "cheap pills", "claim your reward"] * 3
    ham = ["meeting at noon", "see the report", "lunch tomorrow?", "notes attached"] * 3
    target = ["urgent: your account prize", "agenda for the review", "cash bonus inside", "minutes of the call"] * 4
    return spam + ham, ["spam"] * 12 + ["ham"] * 12, target


def test_finetune_with_mcc_trains_differently_and_round_trips(texts, tmp_path, monkeypatch):
    inputs, labels, target = texts
    settings = {"strategy": "finetune", "epochs": 2, "quiet": True, "unfreeze_layers": -1}
    plain = fit_model(inputs, labels, task="classification", backbone="toy-text", config=FitConfig(**settings))
    seen = []  # the loss runs on target batches, with gradients into the trained blocks
    counted = lambda logits: seen.append((len(logits), logits.requires_grad)) or mcc_loss(logits)  # noqa: E731
    monkeypatch.setattr(train, "mcc_loss", counted)
    config = FitConfig(adapt="mcc", **settings)
    adapted = fit_model(inputs, labels, task="classification", backbone="toy-text", config=config, unlabeled=target)
    assert len(seen) >= 2 * 8 and all(size == 16 and grad for size, grad in seen)  # every step of 2 epochs
    assert adapted.info["adaptation"] == {"method": "mcc", "reason": "--adapt mcc", "n_target": 16}
    assert adapted.info["mcc_target_inputs"] == 16 and adapted.finetuned
    assert not np.allclose(plain.predict_proba(target), adapted.predict_proba(target), atol=1e-4)
    tk.save(adapted, tmp_path / "mcc")
    loaded = tk.load(tmp_path / "mcc")
    np.testing.assert_allclose(loaded.predict_proba(target), adapted.predict_proba(target), atol=1e-5)


@pytest.mark.parametrize("strategy", ["feature-extraction", "auto"])
def test_mcc_needs_finetune(texts, strategy):
    inputs, labels, target = texts
    with pytest.raises(TransferKitError, match="use --strategy finetune"):
        fit_model(inputs, labels, task="classification", backbone="toy-text",
                  config=FitConfig(strategy=strategy, adapt="mcc"), unlabeled=target)  # fmt: skip


def test_cli_fit_finetune_adapt_mcc_on_minilm(tmp_path):
    frame = load_builtin("spam-assassin")
    frame = frame.assign(text=frame["text"].str.slice(0, 200))
    first = frame[frame.group.isin(["easy-ham-1", "spam-1"])].groupby("label").sample(10, random_state=0)
    later = frame[frame.group.isin(["easy-ham-2", "hard-ham-1", "spam-2"])].groupby("label").sample(8, random_state=0)
    first[["text", "label"]].to_csv(tmp_path / "source.csv", index=False)
    later[["text"]].to_csv(tmp_path / "target.csv", index=False)
    arguments = [
        "fit", str(tmp_path / "source.csv"), "--unlabeled", str(tmp_path / "target.csv"), "--strategy", "finetune",
        "--adapt", "mcc", "--backbone", "minilm", "--epochs", "1", "--test-size", "0", "-o", str(tmp_path / "m"), "-q",
    ]  # fmt: skip
    done = CliRunner().invoke(app, arguments)
    assert done.exit_code == 0, done.output
    assert "adapt: mcc (--adapt mcc)" in done.output
    loaded = tk.load(tmp_path / "m")
    assert loaded.info["adaptation"]["method"] == "mcc" and loaded.info["mcc_target_inputs"] == 16
    assert set(loaded.predict(list(later.text[:4]))) <= {"spam", "ham"}
