"""How noisy is the n-gram blend's rule? Its measurement on the few-shot samples of ``text_fewshot.py``.

The rule (``transferkit/strategies/ngrams.py``) blends TF-IDF + logistic regression into a text classifier where the
n-grams' cross-validated macro-F1 reaches ``SHARE`` (80%) of the frozen embeddings', both searched over C on the
same stratified folds. On a few examples per class that ratio depends on how the folds fall. For each seed's sample
(the same examples ``text_fewshot.py`` trains on), this prints the ratio the rule computes on ``--splits``
different fold splits (the first is the rule's own: ``random_state`` = the seed), their mean (what repeated
cross-validation would measure), and the same ratio on the benchmark's test set (n-gram model with the C its search
chose vs the frozen embeddings' logistic head, C=1, as feature extraction fits it, both trained on the sample).

Run:  python benchmarks/ngram_rule.py --dataset sotu-president --budget 8 --seeds 1,2,3,4,5

``--dev`` judges rules by what they do to ``auto``, on the development splits of ``tune_fewshot.py`` (seeds 100,
101, ...; never the test sets): each sample trains ``auto`` once without a blend, and the same model is scored on
the dev set unblended and blended (with the n-gram model each rule would attach). A rule's score is the mean dev
macro-F1 of its choices: the rule (one 5-fold split), the same averaged over repeated splits, either one only
where the n-grams beat chance (1 / the number of classes), never, always, and the better of the two in each cell.
Each cell's facts go to ``--output`` as they come; ``--dev --table-only`` tabulates them again.

Run:  python benchmarks/ngram_rule.py --dev --budgets 8,16 --dev-seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split  # noqa: E402
from text_fewshot import MAX_LENGTH, TEST_SIZE, sample  # noqa: E402
from tune_fewshot import dev_split  # noqa: E402

from transferkit import TransferClassifier  # noqa: E402
from transferkit.backbones import create_backbone  # noqa: E402
from transferkit.data import load_labeled  # noqa: E402
from transferkit.strategies import ngrams  # noqa: E402
from transferkit.strategies.scratch.tfidf import TfidfFeatures  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="sotu-president")
    parser.add_argument("--budget", type=int, default=8)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--splits", type=int, default=3, help="fold splits per sample (the first is the rule's)")
    parser.add_argument("--dev", action="store_true", help="judge the rules by auto's dev macro-F1 (see above)")
    parser.add_argument(
        "--datasets", default="sotu-president,fortune-topics,spam-assassin,sotu-party,afinn,first-names"
    )
    parser.add_argument("--budgets", default="8,16")
    parser.add_argument("--dev-seeds", type=int, default=3, help="with --dev: seeds 100, 101, ...")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "ngram_rule_dev.json"))
    parser.add_argument("--table-only", action="store_true", help="with --dev: tabulate --output and exit")
    args = parser.parse_args()
    if args.dev:
        if args.table_only:
            tabulate(json.loads(Path(args.output).read_text()))
        else:
            budgets = [int(b) for b in args.budgets.split(",")]
            judge_on_dev(args.datasets.split(","), budgets, args.dev_seeds, args.output)
        return
    data = load_labeled(args.dataset)
    texts, labels = np.array(data.inputs, dtype=object), np.array(data.y)
    y = np.unique(labels, return_inverse=True)[1]
    pool, test = train_test_split(
        np.arange(len(y)), test_size=TEST_SIZE.get(args.dataset, 500), stratify=labels, random_state=1234
    )
    backbone = create_backbone("minilm", max_length=MAX_LENGTH)
    test_embeddings = backbone.encode(texts[test].tolist())
    print(
        f"{args.dataset}, {args.budget} per class: n-gram / embedding macro-F1 (the rule blends at >= {ngrams.SHARE})"
    )
    print("| seed | the rule's split | other splits | mean over the splits | test set |")
    print("|---|---|---|---|---|")
    for seed in (int(s) for s in args.seeds.split(",")):
        chosen = pool[sample(labels[pool], args.budget, seed)]
        train_texts, target = texts[chosen].tolist(), y[chosen]
        features = TfidfFeatures()
        counted, embedded = features.fit_transform(train_texts), backbone.encode(train_texts)
        measured, head = [], None
        for split in range(args.splits):
            folds = ngrams.rule_folds(target, len(np.unique(y)), seed + 1000 * split)
            ngram_head, ngram_score, embedding_score = ngrams.measure(counted, embedded, target, folds, seed)
            measured.append((ngram_score, embedding_score))
            head = head or ngram_head  # the rule's split chose the blended model's C
        ratios = [n / e for n, e in measured]
        mean_ratio = np.mean([n for n, _ in measured]) / np.mean([e for _, e in measured])
        frozen = LogisticRegression(max_iter=3000).fit(embedded, target).predict(test_embeddings)
        ngram_test = f1_score(y[test], head.scores(features.encode(texts[test].tolist())).argmax(1), average="macro")
        embedding_test = f1_score(y[test], frozen, average="macro")
        first = f"{measured[0][0]:.3f} / {measured[0][1]:.3f} = {ratios[0]:.2f}"
        others = ", ".join(f"{r:.2f}" for r in ratios[1:])
        test_cell = f"{ngram_test:.3f} / {embedding_test:.3f} = {ngram_test / embedding_test:.2f}"
        print(f"| {seed} | {first} | {others} | {mean_ratio:.2f} | {test_cell} |", flush=True)


HELD_OUT, REPEATS = 400, 10  # the repeated-splits alternative: fresh splits until ~400 held out, at most 10


def repeated_folds(target: np.ndarray, seed: int) -> RepeatedStratifiedKFold:
    """The alternative to the rule's one split: its folds, split again until about HELD_OUT examples were held out
    in all (at most REPEATS splits)."""
    count = ngrams.rule_folds(target, int(target.max()) + 1, seed).get_n_splits()
    repeats = int(np.clip(np.ceil(HELD_OUT / len(target)), 1, REPEATS))
    return RepeatedStratifiedKFold(n_splits=count, n_repeats=repeats, random_state=seed)


def judge_on_dev(datasets: list[str], budgets: list[int], seeds: int, output: str) -> None:
    """Train auto once per (set, budget, seed) without a blend; record its dev macro-F1 unblended and blended with
    the n-gram model that one split and repeated splits choose (their C), and both measurements; tabulate."""
    backbone = create_backbone("minilm", max_length=MAX_LENGTH)
    records = []
    for name in datasets:
        texts, y, train_pool, dev = dev_split(name)
        classes = np.unique(y)
        for budget in budgets:
            for seed in range(100, 100 + seeds):
                chosen = train_pool[sample(y[train_pool], budget, seed)]
                train_x, train_y, dev_x = texts[chosen].tolist(), y[chosen], texts[dev].tolist()
                target = np.searchsorted(classes, train_y)
                features = TfidfFeatures()
                counted, embedded = features.fit_transform(train_x), backbone.encode(train_x)
                one = ngrams.measure(counted, embedded, target, ngrams.rule_folds(target, len(classes), seed), seed)
                repeated = ngrams.measure(counted, embedded, target, repeated_folds(target, seed), seed)
                model = TransferClassifier(random_state=seed, max_length=MAX_LENGTH, verbose=False, ngrams="off")
                fitted = model.fit(train_x, train_y.tolist()).model_
                assert list(fitted.classes) == classes.tolist(), "the blend needs the model's class order"
                raw = fitted.scores(dev_x)

                blends = [ngrams.NgramBlend(features, head, ngrams.WEIGHT) for head, *_ in (one, repeated)]
                blended = [dev_f1(y[dev], fitted, blend.blend(raw, dev_x)) for blend in blends]
                records.append({
                    "dataset": name, "budget": budget, "seed": seed, "classes": len(classes),
                    "one_split": [one[1], one[2]], "repeated": [repeated[1], repeated[2]],
                    "unblended": dev_f1(y[dev], fitted, raw),
                    "blended_one_split": blended[0], "blended_repeated": blended[1],
                })  # fmt: skip
                print(json.dumps(records[-1]), flush=True)
                Path(output).write_text(json.dumps(records, indent=1) + "\n")
    tabulate(records)


def dev_f1(truth: np.ndarray, fitted, scores: np.ndarray) -> float:
    return float(f1_score(truth, fitted.predict_from_scores(scores), average="macro"))


def tabulate(records: list[dict]) -> None:
    """Mean dev macro-F1 of auto under each rule, per (set, budget) and over them."""

    def ratio_rule(measured: str, blended: str, chance: bool):
        def choose(r: dict) -> float:
            ngram, embedding = r[measured]
            blends = ngrams.left_out(ngram, embedding) is None and (not chance or ngram > 1 / r["classes"])
            return r[blended] if blends else r["unblended"]

        return choose

    rules = {
        "one split (the rule)": ratio_rule("one_split", "blended_one_split", chance=False),
        "one split, above chance": ratio_rule("one_split", "blended_one_split", chance=True),
        "repeated splits": ratio_rule("repeated", "blended_repeated", chance=False),
        "repeated splits, above chance": ratio_rule("repeated", "blended_repeated", chance=True),
        "never": lambda r: r["unblended"],
        "always": lambda r: r["blended_one_split"],
        "per-cell best (oracle)": lambda r: max(r["unblended"], r["blended_one_split"]),
    }
    cells = list(dict.fromkeys(f"{r['dataset']} {r['budget']}" for r in records))
    print("\n| rule | " + " | ".join(cells) + " | mean |")
    print("|" + "---|" * (len(cells) + 2))
    for rule, choose in rules.items():
        means = [np.mean([choose(r) for r in records if f"{r['dataset']} {r['budget']}" == cell]) for cell in cells]
        print(f"| {rule} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {np.mean(means):.3f} |")


if __name__ == "__main__":
    main()
