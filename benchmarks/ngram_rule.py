"""How noisy is the n-gram blend's rule? Its measurement on the few-shot samples of ``text_fewshot.py``.

The rule (``transferkit/strategies/ngrams.py``) blends TF-IDF + logistic regression into a text classifier where the
n-grams' cross-validated macro-F1 reaches ``SHARE`` (80%) of the frozen embeddings', both searched over C on the
same stratified folds. On a few examples per class that ratio depends on how the folds fall. For each seed's sample
(the same examples ``text_fewshot.py`` trains on), this prints the ratio the rule computes on ``--splits``
different fold splits (the first is the rule's own: ``random_state`` = the seed), their mean (what repeated
cross-validation would measure), and the same ratio on the benchmark's test set (n-gram model with the C its search
chose vs the frozen embeddings' logistic head, C=1, as feature extraction fits it, both trained on the sample).

Run:  python benchmarks/ngram_rule.py --dataset sotu-president --budget 8 --seeds 1,2,3,4,5
"""

from __future__ import annotations

import argparse
import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from text_fewshot import MAX_LENGTH, TEST_SIZE, sample  # noqa: E402

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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
