"""Audio: transfer vs from-scratch at several label budgets, and frozen-feature throughput, in one run.

Data: spoken words synthesised with espeak-ng (``transferkit.datasets.speech``): 10 commands x 12 voices x 2
speeds x 2 pitches, white noise at 5% of the peak, 22.05 kHz WAV (so every clip is resampled). Nothing is
downloaded; it needs ``apt-get install espeak-ng``.

Part 1, two tasks, each with ``transferkit.compare`` (the code behind ``transferkit compare``), macro-F1 on a
held-out test set, mean of ``--seeds`` samples per budget:
- spoken commands: train on 8 voices, test on 4 voices never heard; frozen EfficientWord-Net, openWakeWord and
  GE2E features vs the from-scratch MFCC-statistics + logistic-regression baseline;
- speaker identification: which of the 12 voices, trained on 6 of the words, tested on the other 4; GE2E and
  EfficientWord-Net vs MFCC.

Part 2, frozen-feature throughput in clips/s from the WAV files (reading, resampling, VAD trimming included):
our GE2E path (LSTM in ONNX Runtime) vs Resemblyzer's own ``embed_utterance`` (PyTorch eager) on the same
trimmed audio; our EfficientWord-Net path vs the package's ``Resnet50_Arc_loss.audioToVector`` (its own ONNX).

    python benchmarks/audio.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from transferkit.backbones import create_backbone
from transferkit.backbones.audio import load_audio
from transferkit.data import LabeledData
from transferkit.datasets.speech import COMMANDS, VOICES, synthesize
from transferkit.experiments.compare import compare


def _labeled(rows, label_index: int) -> LabeledData:
    return LabeledData(
        inputs=[r[0] for r in rows], y=[r[label_index] for r in rows], task="classification", text_col="audio",
        label_col="label",
    )  # fmt: skip


def run_task(name, pool, test, label_index, backbones, budgets, seeds) -> dict:
    """compare() once per backbone on the same samples (sampling depends on labels, budget and seed only);
    the MFCC baseline runs with the first backbone."""
    curves, gains, summary = {}, [], []
    for position, backbone in enumerate(backbones):
        result = compare(
            _labeled(pool, label_index), test=_labeled(test, label_index), budgets=budgets, seeds=seeds,
            strategies=["feature-extraction"], baselines=["mfcc-lr"] if position == 0 else [], backbone=backbone,
            max_run_seconds=3600, quiet=True,
        )  # fmt: skip
        for arm, curve in result["curves"].items():
            curves[f"{arm} ({backbone})" if arm == "feature-extraction" else arm] = curve
        if position == 0:
            gains, summary = result["gains"], result["summary"]
    print(f"\n{name}: {len(pool)} pool / {len(test)} test clips, macro-F1 (mean of {seeds} seeds; seconds)\n")
    print("| labels/class | " + " | ".join(map(str, budgets)) + " |")
    print("|---" * (len(budgets) + 1) + "|")
    for arm, curve in curves.items():
        points = {p["budget"]: f"{p['score']:.3f} ({p['seconds']:.0f}s)" for p in curve}
        print(f"| {arm} | " + " | ".join(points.get(str(b), "skipped") for b in budgets) + " |")
    print()
    for line in summary:
        print(line)
    return {"curves": curves, "gains": gains, "summary": summary}


def throughput(paths: list[str], repeats: int) -> list[dict]:
    from eff_word_net.audio_processing import Resnet50_Arc_loss

    ours_ge2e = create_backbone("ge2e")
    ours_word = create_backbone("efficientword")
    peer_word = Resnet50_Arc_loss()
    encoder = ours_ge2e.module
    ours_ge2e.encode(paths[:2])  # ONNX export (once per set of weights) and session start, outside the timing

    def peer_ge2e():  # the same reading and trimming as ours, then Resemblyzer's own embedding
        for path in paths:
            samples = ours_ge2e.samples(path)
            encoder.embed_utterance(samples / max(float(np.abs(samples).max()), 1e-9) * 0.5)

    def peer_efficientword():  # the package's own 1.5 s window, filter banks and ONNX session
        for path in paths:
            samples = ours_word.samples(path)
            window = peer_word.window_frames
            samples = np.pad(samples, (0, max(0, window - len(samples))))[:window]
            peer_word.audioToVector(samples)

    def timed(function) -> float:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            best = min(best, time.perf_counter() - start)
        return len(paths) / best

    rows = [
        {"path": "GE2E: Resemblyzer embed_utterance (PyTorch eager)", "clips_per_s": timed(peer_ge2e)},
        {
            "path": "GE2E: transferkit encode (LSTM in ONNX Runtime)",
            "clips_per_s": timed(lambda: ours_ge2e.encode(paths)),
        },
        {"path": "EfficientWord-Net: package audioToVector (its ONNX)", "clips_per_s": timed(peer_efficientword)},
        {"path": "EfficientWord-Net: transferkit encode", "clips_per_s": timed(lambda: ours_word.encode(paths))},
        {
            "path": "openWakeWord: transferkit encode",
            "clips_per_s": timed(lambda: create_backbone("openwakeword").encode(paths)),
        },
    ]
    rows[1]["ratio_vs_peer"] = rows[1]["clips_per_s"] / rows[0]["clips_per_s"]
    rows[3]["ratio_vs_peer"] = rows[3]["clips_per_s"] / rows[2]["clips_per_s"]
    ours = ours_ge2e.encode(paths[:8])
    reference = [encoder.embed_utterance(s / max(float(np.abs(s).max()), 1e-9) * 0.5)
                 for s in (ours_ge2e.samples(p) for p in paths[:8])]  # fmt: skip
    rows[1]["max_abs_difference_vs_peer"] = float(np.abs(ours - np.array(reference)).max())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="1,3,10")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--throughput-clips", type=int, default=60)
    parser.add_argument("--skip-compare", action="store_true", help="throughput only")
    parser.add_argument("--folder", default=None, help="where to write the synthesised clips (default: a temp dir)")
    parser.add_argument("--output", default="benchmarks/results/audio.json")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]

    folder = Path(args.folder or tempfile.mkdtemp(prefix="transferkit-speech-"))
    start = time.perf_counter()
    rows = synthesize(folder, words=COMMANDS, voices=VOICES, speeds=(130, 170), pitches=(40, 60), noise=args.noise)
    print(f"synthesised {len(rows)} clips in {time.perf_counter() - start:.0f}s into {folder}")
    report: dict = {"clips": len(rows), "noise": args.noise, "torch_threads": torch.get_num_threads()}

    unseen = set(VOICES[8:])
    commands_pool = [r for r in rows if r[2] not in unseen]
    commands_test = [r for r in rows if r[2] in unseen]
    if not args.skip_compare:
        report["commands"] = run_task(
            "spoken commands, unseen voices", commands_pool, commands_test, 1,
            ["efficientword", "openwakeword", "ge2e"], budgets, args.seeds,
        )  # fmt: skip
        speaker_pool = [r for r in rows if r[1] in COMMANDS[:6]]
        speaker_test = [r for r in rows if r[1] in COMMANDS[6:]]
        report["speakers"] = run_task(
            "speaker identification, unseen words", speaker_pool, speaker_test, 2, ["ge2e", "efficientword"],
            budgets, args.seeds,
        )  # fmt: skip

    paths = [r[0] for r in commands_test[: args.throughput_clips]]
    load_audio(paths[0])
    table = throughput(paths, repeats=2)
    report["throughput"] = table
    print(f"\nfrozen features, {len(paths)} clips from WAV files, {torch.get_num_threads()} threads\n")
    print("| path | clips/s | vs the package's own path |")
    print("|---|---|---|")
    for row in table:
        ratio = f"{row['ratio_vs_peer']:.2f}x" if "ratio_vs_peer" in row else ""
        print(f"| {row['path']} | {row['clips_per_s']:.1f} | {ratio} |")
    print(f"\nlargest GE2E difference, ours vs Resemblyzer: {table[1]['max_abs_difference_vs_peer']:.2e}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
