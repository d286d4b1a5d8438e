"""Does the transferability ranking pick the right backbone? Scores vs brute-force truth, on real data.

For each data set, a stratified sample of ``--pool`` + ``--test`` examples is embedded once by every
installed text candidate (timed cold, no cache); each seed splits it into a pool of ``--pool`` labeled
examples (the user's training set) and a test set of the rest (the future). For every candidate:

  truth (brute force)  train the model transferkit would train on the pool and score it on the test set:
                       feature extraction (the default head on frozen features; macro-F1, or R2 for regression),
                       and with --finetune also `strategy="finetune"` for backbones that have gradients (the
                       better of the two is the truth)
  scores               LogME, H-score (shrinkage), N-LEEP and the cross-validated linear probe, computed on the
                       pool's embeddings only, exactly as `transferkit rank` computes them

Reported per score: Kendall's tau between score and truth over the candidates (mean over data sets and seeds),
top-1 hits (the score's first pick is the truth's best), mean regret (truth of the best candidate minus truth
of the pick, in points) and the time of ranking (embedding the pool + the score) vs brute force (embedding pool
and test, training and evaluating every candidate). A seed's embedding time is its share of the measured
time of the whole sample.

Run:  python benchmarks/ranking.py [--datasets spam-assassin,sotu-party,first-names,afinn,afinn-valence]
                                   [--candidates minilm,wordllama,...] [--pool 400] [--test 800] [--seeds 3]
                                   [--finetune] [--output benchmarks/results/ranking.json]
      python benchmarks/ranking.py --table-only   # the tables of the last run, from its JSON
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402
from sklearn.metrics import f1_score, r2_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from transferkit.backbones import create_backbone  # noqa: E402
from transferkit.config import FitConfig  # noqa: E402
from transferkit.datasets import load_builtin  # noqa: E402
from transferkit.heads import fit_linear_head  # noqa: E402
from transferkit.selection import candidates_for, score_features  # noqa: E402
from transferkit.selection.ranking import ALL_SCORES  # noqa: E402
from transferkit.targets import TargetEncoder  # noqa: E402

MAX_LENGTH = 128
RESULTS = Path(__file__).parent / "results" / "ranking.json"
# name -> (built-in data set, text column, target column, task, column the sample is stratified by)
DATASETS = {
    "spam-assassin": ("spam-assassin", "text", "label", "classification", "label"),
    "sotu-party": ("sotu-party", "text", "label", "classification", "label"),
    "first-names": ("first-names", "text", "label", "classification", "label"),
    "afinn": ("afinn", "text", "sentiment", "classification", "sentiment"),
    "afinn-valence": ("afinn", "text", "valence", "regression", "sentiment"),  # the same sample as afinn
}


def universe(name: str, size: int, seed: int = 0) -> tuple[list[str], list, str]:
    """A stratified sample of ``size`` examples of the data set, which every seed splits into pool and test."""
    builtin, text_col, target_col, task, strata = DATASETS[name]
    frame = load_builtin(builtin).dropna(subset=[text_col, target_col]).reset_index(drop=True)
    if size < len(frame):
        frame, _ = train_test_split(frame, train_size=size, stratify=frame[strata], random_state=seed)
    return frame[text_col].astype(str).tolist(), frame[target_col].tolist(), task


def held_out_score(task: str, truth: np.ndarray, scores: np.ndarray) -> float:
    if task == "regression":
        return float(r2_score(np.ravel(truth), np.ravel(scores)))
    predicted = (scores[:, 0] > 0).astype(int) if scores.shape[1] == 1 else scores.argmax(1)
    return float(f1_score(truth, predicted, average="macro"))


def finetune_truth(name, pool_x, pool_y, test_x, test_y, task, seed) -> tuple[float, float]:
    from transferkit.strategies.fit import fit_model

    start = time.perf_counter()
    config = FitConfig(strategy="finetune", seed=seed, max_length=MAX_LENGTH, use_cache=False, quiet=True)
    model = fit_model(pool_x, pool_y, task=task, backbone=name, config=config)
    scores = model.scores(test_x, quiet=True)
    seconds = time.perf_counter() - start
    return held_out_score(task, model.target.encode(test_y), scores), seconds


def embed_all(texts: list[str], candidates: list[str]) -> dict[str, tuple[np.ndarray, float, bool]]:
    """Each candidate's embeddings of ``texts``, its cold encoding seconds per text, and whether it can be
    fine-tuned."""
    result = {}
    for candidate in candidates:
        backbone = create_backbone(candidate, max_length=MAX_LENGTH)
        start = time.perf_counter()
        features = backbone.encode(texts)
        result[candidate] = (features, (time.perf_counter() - start) / len(texts), backbone.trainable)
        print(f"  embedded {len(texts)} texts with {candidate} in {result[candidate][1] * len(texts):.1f}s", flush=True)
    return result


def run_one(name: str, seed: int, texts: list[str], y: list, task: str, embedded: dict, args) -> dict:
    """One ranking: split the universe into pool and test with ``seed``, score on the pool, train and test."""
    stratify = y if task == "classification" else None
    pool, test = train_test_split(np.arange(len(texts)), train_size=args.pool, stratify=stratify, random_state=seed)
    pool_y, test_y = [y[i] for i in pool], [y[i] for i in test]
    encoder = TargetEncoder.fit(pool_y, task)
    target, test_target = encoder.encode(pool_y), encoder.encode(test_y)
    rows = {}
    for candidate, (features, per_text, trainable) in embedded.items():
        values, seconds = {}, {}
        for score in ALL_SCORES:
            start = time.perf_counter()
            values[score] = score_features(features[pool], target, task, [score], seed=seed)[score]
            seconds[score] = time.perf_counter() - start
        start = time.perf_counter()
        head = fit_linear_head(features[pool], target, encoder, seed=seed)
        truth = held_out_score(task, test_target, head.scores(features[test]))
        row = {"truth_fe": truth, "scores": values, "seconds_score": seconds}
        row["seconds_embed_pool"] = per_text * len(pool)
        row["seconds_brute_fe"] = per_text * len(texts) + time.perf_counter() - start
        if args.finetune and trainable:
            pool_x, test_x = [texts[i] for i in pool], [texts[i] for i in test]
            ft, ft_seconds = finetune_truth(candidate, pool_x, pool_y, test_x, test_y, task, seed)
            row.update(truth_ft=ft, seconds_brute_ft=ft_seconds)
            truth = max(truth, ft)
        row["truth"] = truth
        rows[candidate] = row
        print(f"  {name:14s} seed {seed} {candidate:10s} truth {truth:.3f} " + " ".join(
            f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in values.items()), flush=True)  # fmt: skip
    return {"dataset": name, "seed": seed, "task": task, "pool": len(pool), "test": len(test), "rows": rows}


def summarise(runs: list[dict]) -> list[dict]:
    table = []
    for score in ALL_SCORES:
        taus, hits, regrets, counted, seconds = [], 0, [], 0, []
        for run in runs:
            rows = {k: v for k, v in run["rows"].items() if v["scores"][score] is not None}
            if len(rows) < 2:
                continue
            names = list(rows)
            truth = np.array([rows[n]["truth"] for n in names])
            values = np.array([rows[n]["scores"][score] for n in names])
            taus.append(kendalltau(values, truth).statistic)
            pick = int(values.argmax())
            hits += int(truth[pick] == truth.max())
            regrets.append(100 * (truth.max() - truth[pick]))
            counted += 1
            seconds.append(sum(r["seconds_embed_pool"] + r["seconds_score"][score] for r in rows.values()))
        if counted:
            table.append({"score": score, "tasks": counted, "kendall_tau": float(np.mean(taus)),
                          "top1_hits": hits, "regret_points": float(np.mean(regrets)),
                          "rank_seconds": float(np.mean(seconds))})  # fmt: skip
    return table


def print_tables(result: dict) -> None:
    runs = result["runs"]
    brute_key = "seconds_brute_ft" if result["args"].get("finetune") else "seconds_brute_fe"
    brute = np.mean([sum(r.get(brute_key, r["seconds_brute_fe"]) for r in run["rows"].values()) for run in runs])
    seeds = result["args"]["seeds"]
    print(f"\nTruth per data set (held-out macro-F1, or R2 for afinn-valence; mean over {seeds} seeds):")
    names = list(runs[0]["rows"])
    print(f"| data set | {' | '.join(names)} |")
    print("|---" * (len(names) + 1) + "|")
    for dataset in dict.fromkeys(run["dataset"] for run in runs):
        chosen = [run for run in runs if run["dataset"] == dataset]
        cells = [f"{np.mean([run['rows'][n]['truth'] for run in chosen]):.3f}" for n in names]
        print(f"| {dataset} | {' | '.join(cells)} |")
    print(f"\nScores vs truth over {len(runs)} rankings ({len(names)} candidates each):")
    print("| score | Kendall tau | top-1 hits | regret (points) | ranking s | brute force s | time ratio |")
    print("|---|---|---|---|---|---|---|")
    for row in result["summary"]:
        print(f"| {row['score']} | {row['kendall_tau']:+.2f} | {row['top1_hits']}/{row['tasks']} | "
              f"{row['regret_points']:.1f} | {row['rank_seconds']:.1f} | {brute:.1f} | "
              f"{brute / row['rank_seconds']:.1f}x |")  # fmt: skip
    print(
        "\n(time ratio = brute force / ranking, mean seconds per data set: brute force embeds pool and test and "
        f"trains every candidate{' (fine-tuning where it can)' if result['args'].get('finetune') else ''}; "
        "ranking embeds the pool and scores)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--candidates", default=None, help="default: every installed text candidate")
    parser.add_argument("--pool", type=int, default=400)
    parser.add_argument("--test", type=int, default=800)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--finetune", action="store_true", help="also fine-tune trainable candidates (slow)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes (and --table-only reads)")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if args.table_only:
        print_tables(json.loads(args.output.read_text()))
        return
    args.candidates = args.candidates.split(",") if args.candidates else candidates_for("text")
    runs, embedded = [], {}
    for name in args.datasets.split(","):
        texts, y, task = universe(name, args.pool + args.test)
        key = DATASETS[name][0]  # afinn and afinn-valence share their sample, and so their embeddings
        if key not in embedded:
            embedded[key] = embed_all(texts, args.candidates)
        for seed in range(args.seeds):
            runs.append(run_one(name, seed, texts, y, task, embedded[key], args))
    output = args.output
    result = {"args": {**vars(args), "output": str(output)}, "runs": runs, "summary": summarise(runs)}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1))
    print_tables(result)


if __name__ == "__main__":
    main()
