"""Scale-out on Ray: sharded embed / predict on a real local 2-worker cluster (loopback) equal to one process,
resuming after a crash or a killed worker, DDP fine-tuning equal to one worker, and one-line errors."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import transferkit as tk
from transferkit.backbones import create_backbone
from transferkit.cache import EmbeddingCache, embed
from transferkit.distributed import batch
from transferkit.distributed.batch import run_sharded
from transferkit.distributed.cluster import DistributedError
from transferkit.errors import TransferKitError

ray = pytest.importorskip("ray", reason="needs the distributed extra: pip install -e '.[distributed]'")


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module: 2 CPUs, loopback only, no dashboard."""
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level=logging.WARNING,
             log_to_driver=False)  # fmt: skip
    yield ray
    ray.shutdown()


@pytest.fixture
def shards_folder(spam_frame, tmp_path) -> Path:
    """The 60 e-mails as a folder of two files in two formats: 35 rows of Parquet, then 25 rows of CSV."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    spam_frame.iloc[:35].to_parquet(folder / "part-a.parquet", index=False)
    spam_frame.iloc[35:].to_csv(folder / "part-b.csv", index=False)
    return folder


def _cli(*args, block_ray: bool = False, timeout: float = 300):
    """Run the CLI in a fresh process (optionally one where importing ray fails); report whether ray loaded."""
    code = (
        "import sys\n"
        + (
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'ray' or name.startswith('ray.'):\n"
            "            raise ImportError('ray is blocked in this test')\n"
            "sys.meta_path.insert(0, Block())\n"
            if block_ray
            else ""
        )
        + "from transferkit.cli import main\n"
        "sys.argv = ['transferkit', *sys.argv[1:]]\n"
        "try:\n    main()\n"
        "finally:\n    print('ray imported' if 'ray' in sys.modules else 'ray not imported')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_embed_on_two_workers_equals_one_process_on_minilm(cluster, shards_folder, spam_frame, minilm, tmp_path):
    alone = run_sharded("embed", "minilm", shards_folder, tmp_path / "alone.parquet", shard_rows=16, quiet=True)
    spread = tk.embed("minilm", shards_folder, tmp_path / "ray.parquet", shard_rows=16, workers=2, device="cpu",
                      quiet=True)  # fmt: skip
    assert alone == spread == 60
    one, two = pd.read_parquet(tmp_path / "alone.parquet"), pd.read_parquet(tmp_path / "ray.parquet")
    assert two["text"].tolist() == one["text"].tolist() == spam_frame["text"].tolist()  # same rows, same order
    assert two["label"].tolist() == spam_frame["label"].tolist()
    np.testing.assert_allclose(np.stack(two["embedding"]), np.stack(one["embedding"]), atol=1e-6, rtol=0)
    # ... and equal to encoding every text at once, as fit and predict do
    whole = embed(minilm, spam_frame["text"].tolist(), use_cache=False, quiet=True)
    np.testing.assert_allclose(np.stack(two["embedding"]), whole, atol=1e-6, rtol=0)
    assert not list(tmp_path.glob(".*.shards"))  # the shard folders were assembled and removed


def test_predict_on_two_workers_equals_plain_predict(cluster, shards_folder, spam_frame, tmp_path):
    tk.fit(spam_frame, backbone="toy-text", strategy="feature-extraction", output=tmp_path / "model", quiet=True)
    data = tmp_path / "all.csv"
    spam_frame.to_csv(data, index=False)
    plain = _cli("predict", tmp_path / "model", data, "-o", tmp_path / "plain.csv", "-q")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip().endswith("ray not imported")  # without --workers, Ray is never imported
    rows = tk.predict(tmp_path / "model", shards_folder, tmp_path / "ray.csv", shard_rows=7, workers=2, quiet=True)
    one, two = pd.read_csv(tmp_path / "plain.csv"), pd.read_csv(tmp_path / "ray.csv")
    assert rows == len(two) == len(one) == 60
    assert list(two.columns) == list(one.columns)
    assert two["text"].tolist() == one["text"].tolist() and two["prediction"].tolist() == one["prediction"].tolist()
    probabilities = [c for c in one.columns if c.startswith("proba_")]
    # probabilities are written rounded to 6 decimals: equal values may round one step apart
    np.testing.assert_allclose(two[probabilities], one[probabilities], atol=1e-6 + 1e-9, rtol=0)


def test_an_interrupted_run_resumes_without_losing_or_repeating_a_row(shards_folder, spam_frame, tmp_path, monkeypatch):
    processed = []
    original = batch.ShardWorker.process

    def crash_after_three(self, shard):
        if len(processed) == 3:
            raise KeyboardInterrupt
        processed.append(shard.index)
        return original(self, shard)

    monkeypatch.setattr(batch.ShardWorker, "process", crash_after_three)
    output = tmp_path / "features"  # a folder of Parquet shards
    with pytest.raises(KeyboardInterrupt):
        run_sharded("embed", "toy-text", shards_folder, output, shard_rows=6, quiet=True)
    assert not output.exists() and len(list((tmp_path / ".features.shards").glob("part-*"))) == 3
    processed.clear()
    monkeypatch.setattr(batch.ShardWorker, "process", lambda self, shard: processed.append(shard.index)
                        or original(self, shard))  # fmt: skip
    assert run_sharded("embed", "toy-text", shards_folder, output, shard_rows=6, quiet=True) == 60
    assert processed == list(range(3, 11))  # 6 + 5 shards of the two files; the first 3 were skipped
    table = pd.concat([pd.read_parquet(p) for p in sorted(output.glob("part-*.parquet"))])
    assert table["text"].tolist() == spam_frame["text"].tolist()


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_shards_cover_every_record_once_in_order(tmp_path, suffix):
    """Quoted fields across lines, doubled quotes and blank lines: the shards read back as the whole file."""
    from transferkit.distributed.shards import plan_shards, read_shard

    texts = ["plain", "two\nlines", 'a "quoted" word', '"starts quoted"', 'ends, "with"\n\nblank', "x" * 50] * 7
    frame = pd.DataFrame({"text": texts, "row": range(len(texts))})
    path = tmp_path / f"data{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, index=False, row_group_size=5)  # shards cut across row groups
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    shards = plan_shards([path], shard_rows=4)
    assert [s.rows for s in shards] == [4] * 10 + [2]
    again = pd.concat([read_shard(shard) for shard in shards], ignore_index=True)
    assert again["text"].tolist() == texts and again["row"].tolist() == list(range(len(texts)))


def _map_workers() -> list[int]:
    """Process ids of Ray Data's actors (Ray titles them ``ray::MapWorker(...)``), read from /proc."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"MapWorker" in entry.read_bytes():
                found.append(int(entry.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds Ray's worker processes in /proc (Linux)")
def test_a_worker_killed_mid_predict_loses_and_repeats_no_row(cluster, spam_frame, tmp_path):
    """A real MiniLM model; one of the two actors is killed (SIGKILL) while shards are in flight."""
    data = tmp_path / "many.csv"
    frame = pd.concat([spam_frame] * 2, ignore_index=True).assign(row=range(120))
    frame["text"] = [f"{text} #{i}" for i, text in enumerate(frame["text"])]  # not in the embedding cache
    frame.to_csv(data, index=False)
    tk.fit(spam_frame, strategy="feature-extraction", output=tmp_path / "model", quiet=True)
    output = tmp_path / "predictions.parquet"
    failure: list[BaseException] = []

    def job():
        try:
            run_sharded("predict", tmp_path / "model", data, output, shard_rows=4, workers=2, quiet=True)
        except TransferKitError as error:
            failure.append(error)

    thread = threading.Thread(target=job)
    thread.start()
    deadline = time.time() + 240
    shards = tmp_path / ".predictions.parquet.shards"
    while time.time() < deadline and len(list(shards.glob("part-*"))) < 3:
        time.sleep(0.05)
    victims = _map_workers()
    assert victims and thread.is_alive(), "the job ended before a worker could be killed"
    os.kill(victims[0], signal.SIGKILL)
    thread.join(timeout=300)
    print("the job", "failed; rerun" if failure else "completed after the kill")  # shown with pytest -s
    if failure:  # Ray could not recover: the rerun resumes from the shards already written
        run_sharded("predict", tmp_path / "model", data, output, shard_rows=4, workers=2, quiet=True)
    result = pd.read_parquet(output)
    assert result["row"].tolist() == list(range(120))  # every row exactly once, in input order


def test_embedding_cache_is_correct_with_several_writers(tmp_path):
    """Three processes store overlapping embeddings into one cache at once; every vector reads back intact."""
    code = (
        "import sys, types, numpy as np\n"
        "from transferkit.cache import EmbeddingCache\n"
        "cache = EmbeddingCache(types.SimpleNamespace(cache_key='shared'), sys.argv[1])\n"
        "for round in range(20):\n"
        "    keys = [f'{k:04d}'.encode() for k in range(round * 10, round * 10 + 200)]\n"
        "    cache.store(keys, np.array([[float(k)] * 4 for k in range(round * 10, round * 10 + 200)], np.float32))\n"
    )
    writers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)]) for _ in range(3)]
    assert all(writer.wait(timeout=300) == 0 for writer in writers)
    cache = EmbeddingCache(SimpleNamespace(cache_key="shared"), tmp_path)
    found = cache.lookup([f"{k:04d}".encode() for k in range(390)])
    assert len(found) == 390
    assert all(np.array_equal(vector, [float(int(key))] * 4) for key, vector in found.items())


def test_feature_extraction_fit_embeds_on_ray_and_fits_the_head_here(cluster, spam_csv, spam_frame, tmp_path):
    settings = dict(strategy="feature-extraction", backbone="toy-text", quiet=True)
    spread = tk.fit(spam_csv, workers=2, output=tmp_path / "ray", cache_dir=str(tmp_path / "c1"), **settings)
    backbone = create_backbone("toy-text", max_length=128)  # as fit creates it
    cached = EmbeddingCache(backbone, tmp_path / "c1").lookup([backbone.input_key(t) for t in spam_frame["text"]])
    assert len(cached) == 60  # every input was embedded on Ray and gathered into this machine's cache
    alone = tk.fit(spam_csv, output=tmp_path / "alone", cache_dir=str(tmp_path / "c2"), **settings)
    texts = spam_frame["text"].tolist()
    np.testing.assert_allclose(spread.predict_proba(texts), alone.predict_proba(texts), atol=1e-6)
    assert spread.metrics == alone.metrics


@pytest.fixture(scope="module")
def toy_without_dropout(tmp_path_factory) -> str:
    """The toy backbone as a Hugging Face folder with dropout off: with dropout, N workers draw other masks."""
    backbone = create_backbone("toy-text")
    backbone.module.config.hidden_dropout_prob = backbone.module.config.attention_probs_dropout_prob = 0.0
    folder = tmp_path_factory.mktemp("toy") / "toy-no-dropout"
    backbone.module.save_pretrained(folder)
    backbone.tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("strategy", ["finetune", pytest.param("contrastive", marks=pytest.mark.slow)])
def test_ddp_on_two_workers_equals_one_worker(cluster, spam_csv, toy_without_dropout, tmp_path, strategy):
    settings = dict(strategy=strategy, backbone=toy_without_dropout, epochs=1, batch_size=8, patience=1,
                    quiet=True, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    # Rates high enough for a few steps to move the weights well beyond the tolerance.
    own = {
        "finetune": {"learning_rate": 1e-3},
        "contrastive": {"contrastive_steps": 6, "contrastive_learning_rate": 1e-3},
    }
    settings.update(own[strategy])
    # tk.fit(workers=N) is `transferkit fit --workers N`: Ray Train's TorchTrainer, DDP over gloo on these CPUs
    models = [tk.fit(spam_csv, workers=n, device="cpu", output=tmp_path / f"w{n}", **settings) for n in (1, 2)]
    one, two = (model.backbone.hashed_state() for model in models)
    pretrained = create_backbone(toy_without_dropout).hashed_state()
    moved = max(float((one[k] - pretrained[k]).abs().max()) for k in one)
    assert moved > 1e-3  # training moved the weights, so equal weights say something
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-5
    np.testing.assert_allclose(models[1].head.scores(np.eye(32, dtype=np.float32)),
                               models[0].head.scores(np.eye(32, dtype=np.float32)), atol=1e-5)  # fmt: skip


def test_unreachable_address_fails_in_seconds_with_one_line(spam_csv, tmp_path):
    start = time.perf_counter()
    done = _cli("embed", "toy-text", spam_csv, "-o", tmp_path / "x.parquet", "--workers", "2",
                "--ray-address", "ray://127.0.0.1:9")  # fmt: skip
    assert time.perf_counter() - start < 60  # the process start and imports included; Ray alone retries minutes
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "cannot reach the Ray cluster at ray://127.0.0.1:9" in done.stderr
    with pytest.raises(DistributedError, match=r"cannot reach the Ray cluster at ray://127\.0\.0\.1:9"):
        run_sharded("embed", "toy-text", spam_csv, tmp_path / "y.parquet", workers=2, ray_address="ray://127.0.0.1:9")
    with pytest.raises(DistributedError, match=r"must be auto, ray://host:port or host:port"):
        run_sharded("embed", "toy-text", spam_csv, tmp_path / "y.parquet", workers=2, ray_address="nowhere")
    with pytest.raises(DistributedError, match=r"--ray-address needs --workers N"):
        tk.fit(spam_csv, output=tmp_path / "model", ray_address="auto")
    assert not (tmp_path / "model").exists()


def test_zero_workers_no_gpu_and_missing_ray_are_one_line_errors(spam_csv, tmp_path):
    with pytest.raises(DistributedError, match="--workers must be >= 1"):
        run_sharded("embed", "toy-text", spam_csv, tmp_path / "x.parquet", workers=0)
    refused = _cli("predict", "no-model", spam_csv, "-o", tmp_path / "p.csv", "--workers", "0")
    assert refused.returncode == 2 and "--workers must be >= 1" in refused.stderr
    import torch

    if not torch.cuda.is_available():  # --device cuda without a GPU: one line, before any work
        no_gpu = _cli("predict", "no-model", spam_csv, "-o", tmp_path / "p.csv", "--device", "cuda")
        assert no_gpu.returncode == 2 and "torch sees no CUDA GPU" in no_gpu.stderr
        with pytest.raises(TransferKitError, match="torch sees no CUDA GPU"):  # DDP on GPUs: refused before Ray starts
            tk.fit(spam_csv, output=tmp_path / "m", workers=2, device="cuda", strategy="finetune", backbone="toy-text")
    missing = _cli("embed", "toy-text", spam_csv, "-o", tmp_path / "x.parquet", "--workers", "2", block_ray=True)
    assert missing.returncode == 2, missing.stderr
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'transferkit[distributed]'" in lines[0]
