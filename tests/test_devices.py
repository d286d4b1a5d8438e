"""Devices: ``auto`` | ``cpu`` | ``cuda`` resolved against the machine, training and embedding run where the
backbone's weights are, and whatever the device a fitted model and its folder hold CPU tensors.

On a machine without a GPU the real path runs on the CPU; the ``meta`` device (shapes without values) shows that
the embedding path moves each batch to the weights, and the ``gpu`` tests (deselected by default) run it on CUDA.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import transferkit as tk
from transferkit.backbones import create_backbone
from transferkit.devices import module_device, place, resolve_device, to_device
from transferkit.errors import TransferKitError
from transferkit.strategies.body import collate, embedder, examples_of

STRATEGY_SETTINGS = {
    "finetune": {"epochs": 2, "learning_rate": 1e-3},
    "contrastive": {"contrastive_steps": 6, "contrastive_learning_rate": 1e-3},
}
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")


def test_auto_takes_a_gpu_where_torch_sees_one_and_bad_devices_are_one_line_errors():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(TransferKitError, match="--device must be one of auto, cpu, cuda, got 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(TransferKitError, match="device must be one of auto, cpu, cuda, got 'gpu'"):
        tk.FitConfig(device="gpu")


def test_batches_move_to_the_device_of_the_weights():
    batch = {"ids": torch.ones(2, 3, dtype=torch.long), "parts": (torch.zeros(2), [torch.zeros(1)]), "name": "x"}
    moved = to_device(batch, "meta")
    assert moved["ids"].device.type == moved["parts"][0].device.type == moved["parts"][1][0].device.type == "meta"
    assert isinstance(moved["parts"], tuple) and moved["name"] == "x"
    assert module_device(torch.nn.Linear(2, 2).to("meta")).type == "meta"
    assert module_device(torch.nn.ReLU()).type == "cpu"  # no tensors: the CPU


def test_the_training_embedder_runs_where_the_backbone_is(spam_frame):
    """Examples are collated on the CPU; the embedder moves them to the weights (here ``meta``: shapes only), so
    the forward pass runs there, through the frozen block and the trained ones above it."""
    backbone = create_backbone("toy-text")
    examples = examples_of(backbone, spam_frame["text"].tolist()[:4], 1, 4, cache=False)
    batch = collate(examples)
    assert {tensor.device.type for tensor in batch.values()} == {"cpu"}
    place(backbone, "meta")
    embeddings = embedder(backbone, 1, cache=False)(batch)
    assert embeddings.device.type == "meta" and embeddings.shape == (4, backbone.dim)


@pytest.mark.parametrize("strategy", ["finetune", "contrastive"])
def test_device_cpu_saves_exactly_what_the_default_saves(spam_csv, tmp_path, strategy):
    settings = dict(strategy=strategy, backbone="toy-text", quiet=True, **STRATEGY_SETTINGS[strategy])
    default = tk.fit(spam_csv, output=tmp_path / "default", **settings)
    on_cpu = tk.fit(spam_csv, output=tmp_path / "cpu", device="cpu", **settings)
    for name in ("backbone.safetensors", "head.safetensors"):
        saved, again = load_file(tmp_path / "default" / name), load_file(tmp_path / "cpu" / name)
        assert saved and saved.keys() == again.keys()
        assert all(torch.equal(saved[key], again[key]) for key in saved)
    assert default.metrics == on_cpu.metrics
    # where it ran is not how it was trained: the folder does not record the device
    assert "device" not in json.loads((tmp_path / "cpu" / "config.json").read_text())["settings"]
    assert {parameter.device.type for parameter in on_cpu.backbone.module.parameters()} == {"cpu"}
    texts = ["win money now", "see you at lunch"]
    np.testing.assert_allclose(tk.load(tmp_path / "cpu").scores(texts), on_cpu.scores(texts), atol=1e-6)


@no_gpu
def test_device_cuda_without_a_gpu_fails_in_one_line_before_reading_data(tmp_path):
    with pytest.raises(TransferKitError, match="--device cuda: torch sees no CUDA GPU on this machine"):
        tk.fit(tmp_path / "missing.csv", output=tmp_path / "model", device="cuda", strategy="finetune")
    estimator = tk.TransferClassifier(backbone="toy-text", device="cuda")
    with pytest.raises(TransferKitError, match="torch sees no CUDA GPU"):
        estimator.fit(["win money", "see you", "cheap pills", "lunch at noon"], ["spam", "ham", "spam", "ham"])
    assert not (tmp_path / "model").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("strategy", ["finetune", "contrastive"])
def test_on_a_gpu_training_runs_there_and_the_folder_holds_cpu_tensors(spam_csv, tmp_path, strategy):
    settings = dict(strategy=strategy, backbone="toy-text", quiet=True, **STRATEGY_SETTINGS[strategy])
    on_gpu = tk.fit(spam_csv, output=tmp_path / "gpu", device="cuda", **settings)
    on_cpu = tk.fit(spam_csv, output=tmp_path / "cpu", device="cpu", **settings)
    assert {parameter.device.type for parameter in on_gpu.backbone.module.parameters()} == {"cpu"}
    texts = ["win money now", "see you at lunch", "cheap pills online"]
    loaded = tk.load(tmp_path / "gpu")
    np.testing.assert_allclose(loaded.scores(texts), on_gpu.scores(texts), atol=1e-6)
    np.testing.assert_allclose(on_gpu.scores(texts), on_cpu.scores(texts), atol=1e-3)  # other kernels, same steps
    backbone = create_backbone("toy-text")
    place(backbone, "cuda")  # the frozen prefix cache is computed on the GPU and kept on the CPU
    cached = examples_of(backbone, texts, 1, 4, cache=True)
    assert {tensor.device.type for example in cached for tensor in example.values()} == {"cpu"}
