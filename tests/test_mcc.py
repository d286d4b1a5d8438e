"""MCC (minimum class confusion) during fine-tuning: the loss itself, ``fit --strategy finetune --adapt mcc``, and
``--adapt auto`` with fine-tuning, which fine-tunes with and without MCC and keeps what reverse validation says."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import transferkit as tk
from transferkit.adaptation.mcc import mcc_loss
from transferkit.backbones import create_backbone
from transferkit.cli import app
from transferkit.config import FitConfig
from transferkit.datasets import load_builtin
from transferkit.errors import TransferKitError
from transferkit.strategies import adapt
from transferkit.strategies.common import FitRun, validation_split
from transferkit.strategies.finetune import train
from transferkit.strategies.finetune.fit import fit as finetune_fit
from transferkit.strategies.fit import fit_model
from transferkit.targets import TargetEncoder


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


FINETUNE = {"strategy": "finetune", "epochs": 1, "quiet": True, "unfreeze_layers": -1}


def _fit(texts, adapt_setting: str, backbone="toy-text"):
    inputs, labels, target = texts
    config = FitConfig(adapt=adapt_setting, **FINETUNE)
    return fit_model(inputs, labels, task="classification", backbone=backbone, config=config, unlabeled=target)


def test_finetune_auto_measures_both_fine_tunings_on_the_held_out_split(texts):
    backbone = create_backbone("toy-text")
    before = {k: v.clone() for k, v in backbone.module.state_dict().items()}
    model = _fit(texts, "auto", backbone)
    record = model.info["adaptation"]
    assert all(torch.equal(before[k], v) for k, v in backbone.module.state_dict().items())  # caller's untouched
    assert set(record["reverse_validation"]) == {"none", "mcc"} and record["n_target"] == 16
    assert all(0 <= x <= 1 for x in record["reverse_validation"].values()) and record["standard_error"] >= 0
    assert "held out from fine-tuning" in record["reason"] and record["method"] in ("none", "mcc")
    assert ("mcc_target_inputs" in model.info) == (record["method"] == "mcc")  # the model is the chosen one


@pytest.mark.parametrize(("winner", "same_as"), [("mcc", "mcc"), ("none", "none")])
def test_finetune_auto_returns_the_fine_tuning_reverse_validation_prefers(texts, monkeypatch, winner, same_as):
    def measured(model, run, target):  # the winner's reverse model labels every held-out example right
        arm = "mcc" if "mcc_target_inputs" in model.info else "none"
        truth = run.target[run.valid_part]
        return np.eye(2)[truth if arm == winner else np.zeros_like(truth)]

    monkeypatch.setattr(adapt, "_reverse_outputs_finetuned", measured)
    chosen = _fit(texts, "auto")
    direct = _fit(texts, same_as)  # the same seed and split: the same fine-tuning
    assert chosen.info["adaptation"]["method"] == winner
    assert chosen.info["adaptation"]["reason"].startswith("mcc: " if winner == "mcc" else "fine-tuning alone: ")
    assert chosen.config.adapt == "auto"
    target = texts[2]
    np.testing.assert_allclose(chosen.predict_proba(target), direct.predict_proba(target), atol=1e-5)


def test_finetune_auto_keeps_fine_tuning_when_mccs_gain_is_within_its_bootstrap_error(texts, monkeypatch):
    def measured(model, run, target):  # MCC's reverse model gets one more of the 5 held-out examples right
        truth = run.target[run.valid_part]
        wrong = truth.copy()
        wrong[: 0 if "mcc_target_inputs" in model.info else 1] ^= 1
        return np.eye(2)[wrong]

    monkeypatch.setattr(adapt, "_reverse_outputs_finetuned", measured)
    record = _fit(texts, "auto").info["adaptation"]
    gain = record["reverse_validation"]["mcc"] - record["reverse_validation"]["none"]
    assert gain > 0.01 and gain < 1.645 * record["standard_error"]  # a real gain, but not beyond the noise
    assert record["method"] == "none" and "bootstrap standard errors" in record["reason"]


def test_auto_that_chose_fine_tuning_keeps_its_decision_when_mcc_wins(texts, monkeypatch):
    inputs, labels, target = texts
    config = FitConfig(**FINETUNE)
    backbone = create_backbone("toy-text")
    pretrained = copy.deepcopy(backbone)
    encoder = TargetEncoder.fit(labels, "classification")
    fit_part, valid_part = validation_split(labels, "classification", config)
    run = FitRun(inputs=inputs, target=encoder.encode(labels), encoder=encoder, backbone=backbone, config=config,
                 fit_part=fit_part, valid_part=valid_part)  # fmt: skip
    model = finetune_fit(run)
    model.info["auto"] = {"chosen": "finetune", "reason": "measured"}
    truth = run.target[valid_part]
    monkeypatch.setattr(adapt, "_reverse_outputs_finetuned", lambda m, *_: np.eye(2)[
        truth if "mcc_target_inputs" in m.info else 1 - truth])  # fmt: skip
    adapted = adapt.adapt_model(model, run, target, pretrained)
    assert adapted is not model and adapted.info["mcc_target_inputs"] == 16
    assert adapted.info["auto"] == {"chosen": "finetune", "reason": "measured"}
    assert adapted.info["adaptation"]["reverse_validation"] == {"none": 0.0, "mcc": 1.0}


def test_finetune_auto_falls_back_to_fine_tuning_alone_when_it_cannot_measure(texts):
    inputs, labels, target = texts
    few = fit_model(inputs[:3] + inputs[-3:], labels[:3] + labels[-3:], task="classification", backbone="toy-text",
                    config=FitConfig(**FINETUNE), unlabeled=target)  # fmt: skip  # 6 examples: nothing held out
    assert few.info["adaptation"]["method"] == "none"
    assert (
        few.info["adaptation"]["reason"]
        == "source-only: too few labeled examples held out from fine-tuning to measure MCC on"
    )
    scores = [float(len(text)) for text in inputs]
    regression = fit_model(inputs, scores, task="regression", backbone="toy-text", config=FitConfig(**FINETUNE),
                           unlabeled=target)  # fmt: skip
    assert "classification only, not regression" in regression.info["adaptation"]["reason"]
    assert "mcc_target_inputs" not in few.info and "mcc_target_inputs" not in regression.info
