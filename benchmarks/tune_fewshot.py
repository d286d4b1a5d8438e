"""Tune transferkit's few-shot settings on development splits, never on text_fewshot.py's test sets.

Each data set is split exactly as ``text_fewshot.py`` splits it (same test set, random_state=1234); the test
set is then dropped. From the remaining pool a development set (400 examples, stratified, random_state=99) is
held out, and training examples are sampled from the rest with seeds 100, 101, ... (the benchmark samples from
the whole pool with seeds 0-4). Each variant is a transferkit ``TransferClassifier`` with some settings changed;
it prints the dev macro-F1 of every variant per data set and the mean.

Run:  python benchmarks/tune_fewshot.py --variants 'base={}' 't0.1={"temperature": 0.1}' --budget 8 --seeds 2
(a variant is NAME=JSON, split at the first "="; a key "_NAME" sets the contrastive strategy's module constant
NAME for that variant, e.g. "_passes": 60 the step budget's passes, "_early_stopping_min_per_class": 1000;
NAME=METHOD runs a method of text_fewshot.py instead, e.g. 'setfit=setfit-paper', on the same samples).
A transferkit variant whose model has an n-gram blend (``ngrams="auto"``, the default) is also scored with the
blend removed, as the row NAME/unblended: the same fitted model, so the pair measures the blend alone.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from text_fewshot import MAX_LENGTH, METHODS, TEST_SIZE, sample  # noqa: E402

from transferkit import TransferClassifier  # noqa: E402
from transferkit.data import load_labeled  # noqa: E402
from transferkit.strategies.contrastive import fit as contrastive_fit  # noqa: E402

CONSTANTS = {name: getattr(contrastive_fit, name) for name in dir(contrastive_fit) if name.isupper()}

DEV_SIZE = 400


def dev_split(name: str):
    data = load_labeled(name)
    texts, y = np.array(data.inputs, dtype=object), np.array(data.y)
    pool, _test = train_test_split(np.arange(len(y)), test_size=TEST_SIZE.get(name, 500), stratify=y, random_state=1234)
    train_pool, dev = train_test_split(pool, test_size=DEV_SIZE, stratify=y[pool], random_state=99)
    return texts, y, train_pool, dev


def _transferkit(
    settings: dict, strategy: str, train_x: list, train_y: list, dev_x: list, seed: int
) -> tuple[list, list | None]:
    """Dev predictions, and those of the same model without its n-gram blend (None when it has none)."""
    with tempfile.TemporaryDirectory() as cache:
        settings = {"strategy": strategy, **settings}
        # "_name": the contrastive strategy's module constant NAME (e.g. the step budget's passes)
        for constant, value in CONSTANTS.items():
            setattr(contrastive_fit, constant, settings.pop(f"_{constant.lower()}", value))
        model = TransferClassifier(random_state=seed, cache_dir=cache, max_length=MAX_LENGTH, verbose=False, **settings)
        predicted = model.fit(train_x, train_y).predict(dev_x)
        fitted = model.model_
        if fitted.ngrams is None:
            return predicted, None
        fitted.ngrams = None
        return predicted, model.predict(dev_x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="fortune-topics,sotu-president,spam-assassin,sotu-party")
    parser.add_argument("--variants", nargs="+", required=True, help="NAME=JSON settings of TransferClassifier")
    parser.add_argument("--strategy", default="contrastive")
    parser.add_argument("--budget", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    variants = dict(item.split("=", 1) for item in args.variants)
    scores: dict[str, dict[str, list[float]]] = {}
    for name in args.datasets.split(","):
        texts, y, train_pool, dev = dev_split(name)
        for seed in range(100, 100 + args.seeds):
            chosen = train_pool[sample(y[train_pool], args.budget, seed)]
            for variant, settings in variants.items():
                start = time.perf_counter()
                train_x, train_y, dev_x = texts[chosen].tolist(), y[chosen].tolist(), texts[dev].tolist()
                unblended = None
                if settings in METHODS:  # a method of text_fewshot.py as the reference, e.g. setfit-paper
                    predicted = METHODS[settings](train_x, train_y, dev_x, seed)
                else:
                    predicted, unblended = _transferkit(
                        json.loads(settings), args.strategy, train_x, train_y, dev_x, seed
                    )
                seconds = time.perf_counter() - start
                rows = {variant: predicted}
                if settings not in METHODS:  # without a blend, the unblended row is the model itself
                    rows[f"{variant}/unblended"] = predicted if unblended is None else unblended
                for row, predictions in rows.items():
                    score = f1_score(y[dev], predictions, average="macro")
                    scores.setdefault(row, {}).setdefault(name, []).append(score)
                    print(f"{name:15s} seed {seed} {row:24s} {score:.3f} {seconds:6.1f}s", flush=True)
    names = args.datasets.split(",")
    print("\n| variant | " + " | ".join(names) + " | mean |")
    print("|" + "---|" * (len(names) + 2))
    for variant, by_set in scores.items():
        means = [np.mean(by_set[n]) for n in names]
        print(f"| {variant} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {np.mean(means):.3f} |")


if __name__ == "__main__":
    main()
