"""Contrastive few-shot training and LoRA adapters: the loss on hand cases, class-balanced batches, the step
budget, what moves and what is saved, and on the real MiniLM that training separates the classes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import transferkit as tk
from transferkit.backbones import create_backbone
from transferkit.config import FitConfig
from transferkit.errors import BackboneError, ModelFolderError, TransferKitError
from transferkit.strategies.common import FitRun
from transferkit.strategies.contrastive.fit import (
    FULL_LEARNING_RATE,
    FULL_PASSES,
    MANY_CLASSES,
    MAX_STEPS,
    MIN_STEPS,
    SHORT_SHARE,
    _centroid_f1,
    balanced_batches,
    cosine_pair_loss,
    mean_tokens,
    positives,
    recipe_of,
    step_budget,
    supervised_contrastive_loss,
    training_work,
)
from transferkit.strategies.contrastive.fit import fit as contrastive_fit
from transferkit.strategies.fit import fit_model
from transferkit.targets import TargetEncoder
from transferkit.training import adamw


def test_the_loss_is_low_when_classes_cluster_and_high_when_they_mix():
    labels = torch.tensor([0, 0, 1, 1])
    weights = positives(labels, "classification")
    clustered = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    mixed = clustered[[0, 2, 1, 3]]
    low = supervised_contrastive_loss(clustered, weights, temperature=0.1)
    high = supervised_contrastive_loss(mixed, weights, temperature=0.1)
    assert low < 0.05 < 1.0 < high
    # Hand value: each anchor's one positive at similarity ~1 and two negatives at ~0, temperature 1.
    one = supervised_contrastive_loss(torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]]), weights, 1.0)
    assert float(one) == pytest.approx(-np.log(np.e / (np.e + 2)), rel=1e-5)


def test_the_cosine_pair_loss_is_setfits_regression_of_pair_similarities():
    """SetFit's CosineSimilarityLoss over every pair: (cos - 1)^2 for same-class pairs, cos^2 for the others."""
    weights = positives(torch.tensor([0, 0, 1, 1]), "classification")
    clustered = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # same class: cos 1, others: cos 0
    assert float(cosine_pair_loss(clustered, weights)) == pytest.approx(0.0, abs=1e-7)
    mixed = clustered[[0, 2, 1, 3]]  # now pairs (0,1) and (2,3) of the labels are orthogonal, (0,2), (1,3) equal
    # 6 pairs: two same-class pairs at cos 0 (loss 1 each), two different-class pairs at cos 1 (loss 1 each)
    assert float(cosine_pair_loss(mixed, weights)) == pytest.approx(4 / 6, rel=1e-6)
    config = FitConfig.from_settings(strategy="contrastive", seed=0, quiet=True, contrastive_steps=4,
                                     contrastive_loss="cosine")  # fmt: skip
    assert config.option("contrastive_loss") == "cosine"
    with pytest.raises(TransferKitError, match="supcon or cosine"):
        FitConfig.from_settings(strategy="contrastive", contrastive_loss="triplet")


def test_positives_are_same_class_pairs_or_label_set_overlap():
    classes = positives(torch.tensor([0, 1, 0]), "classification")
    assert classes.tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    sets = positives(torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 1]]), "multilabel")
    assert sets[0, 1] == pytest.approx(0.5) and sets[0, 2] == 0 and sets[0, 0] == 0


def test_a_batch_without_any_positive_pair_contributes_nothing():
    embeddings = torch.randn(3, 4, requires_grad=True)
    loss = supervised_contrastive_loss(embeddings, positives(torch.tensor([0, 1, 2]), "classification"), 0.1)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.all(embeddings.grad == 0)


def test_batches_are_class_balanced_with_positives_for_every_anchor():
    target = np.repeat(np.arange(8), 8)
    batches = balanced_batches(target, "classification", 32, torch.Generator().manual_seed(0))
    for _ in range(10):
        batch = next(batches)
        counts = np.bincount(target[batch], minlength=8)
        assert len(batch) == 32 and counts.max() == counts[counts > 0].min() >= 2


def test_the_step_budget_grows_with_the_data_within_bounds():
    assert step_budget(16, 32) == MIN_STEPS and step_budget(100_000, 32) == MAX_STEPS
    assert step_budget(100_000, 32, FULL_PASSES) == MAX_STEPS * 4 and step_budget(64, 16, FULL_PASSES) == 320
    assert MIN_STEPS < step_budget(256, 32) < MAX_STEPS


def test_contrastive_refuses_regression_and_inference_only_backbones_in_one_line(afinn_frame):
    words, valence = afinn_frame["text"].tolist(), afinn_frame["valence"].astype(float).tolist()
    with pytest.raises(TransferKitError, match="strategy 'contrastive' does not learn regression; choose one of"):
        fit_model(words, valence, task="regression", backbone="toy-text", config=FitConfig(strategy="contrastive"))
    with pytest.raises(BackboneError, match="cannot be fine-tuned; use --strategy feature-extraction"):
        fit_model(words, afinn_frame["sentiment"].tolist(), task="classification", backbone="e5-small",
                  config=FitConfig(strategy="contrastive"))  # fmt: skip


@pytest.mark.parametrize("loss", ["supcon", "cosine"])
def test_contrastive_is_deterministic_with_a_seed(spam_frame, loss):
    texts, y = spam_frame["text"].tolist()[:40], spam_frame["label"].tolist()[:40]
    config = FitConfig.from_settings(strategy="contrastive", seed=3, quiet=True, contrastive_steps=6,
                                     contrastive_loss=loss)  # fmt: skip
    first = fit_model(texts, y, task="classification", backbone="toy-text", config=config)
    second = fit_model(texts, y, task="classification", backbone="toy-text", config=config)
    np.testing.assert_array_equal(first.scores(texts), second.scores(texts))
    assert first.info["loss"] == loss


def test_on_the_real_minilm_contrastive_training_separates_the_classes(spam_groups_frame):
    """Held-out e-mails of three kinds: nearest-centroid macro-F1 on the moved embeddings beats the frozen ones."""
    texts, y = spam_groups_frame["text"].tolist(), spam_groups_frame["category"].tolist()
    train, held = slice(0, 36), slice(36, None)
    frozen = create_backbone("minilm")
    config = FitConfig.from_settings(strategy="contrastive", quiet=True, seed=0)
    model = fit_model(texts[train], y[train], task="classification", backbone=frozen, config=config)
    classes = sorted(set(y))
    target = np.array([classes.index(v) for v in y])

    def separation(backbone):
        features = torch.from_numpy(backbone.encode(texts))
        return _centroid_f1(features[train], target[train], features[held], target[held], "classification")

    assert model.strategy == "contrastive" and model.info["steps"] == step_budget(36, config.batch_size)
    assert separation(model.backbone) > separation(frozen) + 0.05


@pytest.mark.parametrize("strategy", ["finetune", "contrastive"])
def test_lora_trains_only_adapters_and_the_folder_keeps_only_them(strategy, spam_frame, tmp_path):
    texts, y = spam_frame["text"].tolist(), spam_frame["label"].tolist()
    backbone = create_backbone("toy-text")
    before = {name: p.detach().clone() for name, p in backbone.module.named_parameters()}
    config = FitConfig.from_settings(strategy=strategy, adapter="lora", lora_rank=4, epochs=2, quiet=True,
                                     contrastive_steps=8)  # fmt: skip
    model = fit_model(texts[:40], y[:40], task="classification", backbone=backbone, config=config)
    after = dict(model.backbone.module.named_parameters())
    assert set(after) == set(before)  # adapters merged and removed: the module is plain again
    moved = {name for name in before if not torch.equal(after[name].detach(), before[name])}
    assert moved and moved <= set(model.adapter["merged"]) and all(name.endswith(".weight") for name in moved)
    assert all(name.startswith("encoder.layer.") for name in model.adapter["merged"])  # the trained blocks only
    folder = tk.save(model, tmp_path / "model")
    assert not (folder / "backbone.safetensors").exists()
    adapter = load_file(str(folder / "adapter.safetensors"))
    assert adapter and all(".lora_" in name for name in adapter)
    assert json.loads((folder / "adapter_config.json").read_text())["rank"] == 4
    loaded = tk.load(folder)
    np.testing.assert_allclose(loaded.scores(texts[40:]), model.scores(texts[40:]), rtol=1e-5, atol=1e-5)
    blend = ["ngrams"] if model.ngrams is not None else []
    assert json.loads((folder / "config.json").read_text())["state"] == ["lora-adapter", *blend, "head"]


def test_lora_adapters_load_only_onto_the_backbone_they_were_trained_on(spam_frame, tmp_path):
    texts, y = spam_frame["text"].tolist(), spam_frame["label"].tolist()
    config = FitConfig.from_settings(strategy="finetune", adapter="lora", epochs=1, quiet=True)
    folder = tk.save(fit_model(texts, y, task="classification", backbone="toy-text", config=config), tmp_path / "m")
    saved = json.loads((folder / "config.json").read_text())
    saved["backbone"]["weights_sha256"] = "0" * 64
    (folder / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ModelFolderError, match="differs from the one"):
        tk.load(folder)


def test_lora_says_so_when_the_trained_blocks_have_no_linear_layer(afinn_frame):
    words, labels = afinn_frame["text"].tolist(), afinn_frame["sentiment"].tolist()
    config = FitConfig.from_settings(strategy="finetune", adapter="lora", quiet=True)
    with pytest.raises(TransferKitError, match=r"no linear layers in the blocks it would train.*--adapter none"):
        fit_model(words, labels, task="classification", backbone="glove-50d", config=config)


def test_contrastive_trains_on_every_input_of_a_run_split_for_another_strategy(spam_frame):
    """auto hands the winner the run fit_model split for early stopping; contrastive holds out its own part."""
    texts, y = spam_frame["text"].tolist()[:40], spam_frame["label"].tolist()[:40]
    encoder = TargetEncoder.fit(y, "classification")
    config = FitConfig.from_settings(strategy="contrastive", quiet=True, contrastive_steps=4)
    run = FitRun(inputs=texts, target=encoder.encode(y), encoder=encoder, backbone=create_backbone("toy-text"),
                 config=config, fit_part=np.arange(32), valid_part=np.arange(32, 40))  # fmt: skip
    model = contrastive_fit(run)
    assert len(model.predict(texts)) == 40 and set(model.predict(texts)) <= set(y)


def test_the_end_to_end_phase_trains_the_same_blocks_with_a_linear_head(spam_frame, tmp_path):
    texts, y = spam_frame["text"].tolist()[:40], spam_frame["label"].tolist()[:40]
    plain = FitConfig.from_settings(strategy="contrastive", quiet=True, contrastive_steps=4, contrastive_layers=1)
    then = FitConfig.from_settings(strategy="contrastive", quiet=True, contrastive_steps=4, contrastive_layers=1,
                                   end_to_end_epochs=2)  # fmt: skip
    first = fit_model(texts, y, task="classification", backbone="toy-text", config=plain)
    second = fit_model(texts, y, task="classification", backbone="toy-text", config=then)
    assert first.info["end_to_end"] is None
    assert second.info["end_to_end"]["epochs_run"] == 2 and second.info["head"] == "linear"
    assert set(second.finetuned) == set(first.finetuned)  # the same blocks, trained further
    assert not np.allclose(second.scores(texts), first.scores(texts))
    tk.save(second, tmp_path / "e2e")
    np.testing.assert_allclose(tk.load(tmp_path / "e2e").scores(texts), second.scores(texts), atol=1e-5)
    with pytest.raises(TransferKitError, match="with --adapter lora set --end-to-end-epochs 0"):
        fit_model(texts, y, task="classification", backbone="toy-text",
                  config=FitConfig.from_settings(strategy="contrastive", quiet=True, contrastive_steps=2,
                                                 adapter="lora", end_to_end_epochs=1))  # fmt: skip


@pytest.mark.parametrize("adapter", ["none", "lora"])
def test_mixing_keeps_that_share_of_the_weight_change(adapter, spam_frame):
    """contrastive_mix=0.5 lands halfway between the pre-trained weights and the fully trained ones (WiSE-FT);
    with LoRA the merged change B @ A is halved the same way."""
    texts, y = spam_frame["text"].tolist()[:24], spam_frame["label"].tolist()[:24]
    backbone = "minilm" if adapter == "lora" else "toy-text"

    def weights(mix: float | None) -> dict[str, torch.Tensor]:
        model = create_backbone(backbone)
        if mix is not None:
            config = FitConfig.from_settings(strategy="contrastive", quiet=True, contrastive_steps=3,
                                             contrastive_layers=1, adapter=adapter, contrastive_mix=mix)  # fmt: skip
            model = fit_model(texts, y, task="classification", backbone=model, config=config).backbone
        return {k: v.clone() for k, v in model.module.state_dict().items()}

    pretrained, trained, halfway = weights(None), weights(1.0), weights(0.5)
    moved = [k for k in pretrained if not torch.equal(pretrained[k], trained[k])]
    assert moved
    for name in moved:
        torch.testing.assert_close(halfway[name], (pretrained[name] + trained[name]) / 2, atol=1e-5, rtol=1e-4)


def _run(inputs: list, labels: list, backbone, **settings) -> FitRun:
    encoder = TargetEncoder.fit(labels, "classification")
    config = FitConfig.from_settings(strategy="contrastive", quiet=True, **settings)
    return FitRun(inputs=inputs, target=encoder.encode(labels), encoder=encoder, backbone=backbone, config=config,
                  fit_part=np.arange(len(inputs)))  # fmt: skip


def test_auto_takes_setfits_full_recipe_for_short_texts_and_the_top_blocks_for_long_ones(afinn_frame, spam_frame):
    """On the real MiniLM (max_length 128): AFINN's single words (about 3.6 tokens) are short, e-mails are not."""
    minilm = create_backbone("minilm")
    words = _run(afinn_frame["text"].tolist(), afinn_frame["sentiment"].tolist(), minilm)
    mails = _run(spam_frame["text"].tolist(), spam_frame["label"].tolist(), minilm)
    short, long = recipe_of(words), recipe_of(mails)
    assert (short.name, short.layers, short.learning_rate, short.loss) == ("full", -1, FULL_LEARNING_RATE, "cosine")
    assert short.passes == FULL_PASSES and not short.early_stopping and "at most 16" in short.reason
    assert (long.name, long.layers, long.loss, long.early_stopping) == ("top", 3, "supcon", True)
    assert mean_tokens(minilm, spam_frame["text"].tolist()) > SHORT_SHARE * minilm.max_length
    # Set by hand, the recipe holds whatever the length; auto's cost estimate follows the recipe.
    assert recipe_of(_run(afinn_frame["text"].tolist(), afinn_frame["sentiment"].tolist(), minilm,
                          contrastive_recipe="top")).name == "top"  # fmt: skip
    top_words = _run(words.inputs, afinn_frame["sentiment"].tolist(), minilm, contrastive_recipe="top")
    full, top = training_work(words, 64), training_work(top_words, 64)
    assert full == (320 * 16, -1) and top == (80 * 16, 3)  # 64 examples, 80 and 20 passes, batch 16
    assert recipe_of(_run(["an image path"], [0], None)).name == "top"  # nothing to count tokens with


def test_auto_takes_setfits_cosine_loss_for_the_top_blocks_from_five_classes(spam_frame):
    """Fortune quotations in 8 topics (long texts: the top recipe) train with the cosine pair loss, two-class e-mails
    with the supervised contrastive loss; a loss set by hand holds."""
    from transferkit.data import load_labeled

    minilm = create_backbone("minilm")
    fortune = load_labeled("fortune-topics")
    topics = recipe_of(_run(fortune.inputs, list(fortune.y), minilm))
    assert (topics.name, topics.loss) == ("top", "cosine") and topics.reason.endswith("cosine loss: 8 classes")
    assert len(set(fortune.y)) >= MANY_CLASSES > 2
    mails = recipe_of(_run(spam_frame["text"].tolist(), spam_frame["label"].tolist(), minilm))
    assert mails.loss == "supcon" and mails.reason.endswith("supcon loss: 2 classes")
    assert recipe_of(_run(fortune.inputs, list(fortune.y), minilm, contrastive_loss="supcon")).loss == "supcon"


def test_the_full_recipe_trains_every_layer_without_a_cache_or_early_stopping(afinn_frame):
    """At max_length 128 the toy backbone's tokens (about 10 per word: it splits into characters) are short:
    every block and the embeddings train, the full step budget runs even at 16+ labels per class (where top
    early-stops)."""
    words, labels = afinn_frame["text"].tolist(), afinn_frame["sentiment"].tolist()
    backbone = create_backbone("toy-text", max_length=128)
    before = {name: p.detach().clone() for name, p in backbone.module.named_parameters()}
    model = fit_model(words, labels, task="classification", backbone=backbone,
                      config=FitConfig.from_settings(strategy="contrastive", quiet=True, seed=0))  # fmt: skip
    info = model.info
    assert info["recipe"] == "full" and info["loss"] == "cosine" and not info["frozen_prefix_cached"]
    assert info["trained_blocks"] == [0, backbone.num_blocks - 1] and info["rounds_run"] == 1
    assert info["steps"] == step_budget(len(words), 16, FULL_PASSES)
    after = dict(model.backbone.module.named_parameters())
    assert not torch.equal(after["embeddings.word_embeddings.weight"], before["embeddings.word_embeddings.weight"])


def test_training_steps_use_the_fused_adamw_kernel():
    optimizer = adamw([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
    assert optimizer.defaults["fused"] is True


def test_on_the_real_minilm_the_full_recipe_separates_held_out_words(afinn_frame):
    """AFINN words, 16 per class: the default (auto: full recipe, every layer) moves MiniLM so that held-out words'
    nearest class centroid is right more often than with the frozen weights."""
    words, sentiment = afinn_frame["text"].tolist(), afinn_frame["sentiment"].tolist()
    train = [i for label in sorted(set(sentiment)) for i in [j for j, s in enumerate(sentiment) if s == label][:16]]
    held = [i for i in range(len(words)) if i not in train]
    frozen = create_backbone("minilm")
    config = FitConfig.from_settings(strategy="contrastive", quiet=True, seed=0)
    model = fit_model([words[i] for i in train], [sentiment[i] for i in train], task="classification",
                      backbone=frozen, config=config)  # fmt: skip
    assert model.info["recipe"] == "full" and model.info["trained_blocks"] == [0, frozen.num_blocks - 1]
    classes = sorted(set(sentiment))
    target = np.array([classes.index(v) for v in sentiment])

    def separation(backbone):
        features = torch.from_numpy(backbone.encode(words))
        return _centroid_f1(features[train], target[train], features[held], target[held], "classification")

    assert separation(model.backbone) > separation(frozen)
