"""Scale-out on Ray: rows/s of ``embed`` and ``predict`` on 1 and 2 Ray workers against the plain single-process
path (and that path limited to one thread), fine-tuning samples/s on 1 vs 2 DDP workers, scaling efficiency, and
a paper estimate for 8 and 64 machines on 10 million texts from the measured rates and Ray's documented overheads.

Texts: the bundled SpamAssassin e-mails cut into 250-character pieces (distinct texts, about 50-60 MiniLM tokens).
Every run starts from an empty embedding cache; the Ray cluster (2 CPUs, loopback) starts once, before the timed
runs (its start is reported on its own); each Ray run's time includes starting its actors and loading the model.

    python benchmarks/scale.py --output benchmarks/results/scale.json
    python benchmarks/scale.py --table-only benchmarks/results/scale.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

import transferkit as tk  # noqa: E402
from transferkit.api import fit as fit_api  # noqa: E402
from transferkit.datasets import load_builtin  # noqa: E402
from transferkit.distributed.batch import run_sharded  # noqa: E402
from transferkit.distributed.training import fit_on_ray  # noqa: E402

# Ray's documented costs, for the paper estimate (https://docs.ray.io/en/latest/ray-core/patterns/too-fine-grained-tasks.html:
# "every task invocation has a non-trivial overhead (e.g., scheduling, inter-process communication, updating the
# system state)", of the order of a millisecond; a shard is one task here, so with 10,000-row shards it vanishes).
TASK_OVERHEAD_S = 0.001
TEXTS_ON_PAPER = 10_000_000
CORES_PER_MACHINE = 8


def texts(n: int) -> pd.DataFrame:
    """``n`` distinct 250-character pieces of the SpamAssassin e-mails, in a fixed order."""
    pieces: list[str] = []
    for body in load_builtin("spam-assassin")["text"]:
        pieces += [body[i : i + 250] for i in range(0, len(body) - 100, 250)]
    unique = list(dict.fromkeys(p.strip() for p in pieces if p.strip()))
    if len(unique) < n:
        raise SystemExit(f"only {len(unique)} distinct pieces; ask for fewer rows")
    return pd.DataFrame({"text": unique[:n]})


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def batch_runs(kind: str, model: str, data: Path, rows: int, shard_rows: int, folder: Path) -> list[dict]:
    """The plain path (all threads, then one thread) and Ray with 1 and 2 one-core workers."""
    results = []
    threads = torch.get_num_threads()
    for label, workers, limit in (("plain", None, threads), ("plain, 1 thread", None, 1), ("ray, 1 worker", 1, None),
                                  ("ray, 2 workers", 2, None)):  # fmt: skip
        if limit:
            torch.set_num_threads(limit)
        output = folder / f"{kind}-{label.replace(' ', '').replace(',', '-')}.parquet"
        cache = tempfile.mkdtemp(prefix="cache-", dir=folder)  # a cold cache for every run
        seconds = timed(lambda w=workers, o=output, c=cache: run_sharded(
            kind, model, data, o, workers=w, shard_rows=shard_rows, cache_dir=c, use_cache=kind == "predict",
            quiet=True, overwrite=True,
        ))  # fmt: skip
        torch.set_num_threads(threads)
        results.append({"kind": kind, "run": label, "workers": workers, "threads": limit or 1, "rows": rows,
                        "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1)})  # fmt: skip
        print(f"{kind:8s} {label:16s} {rows / seconds:8.1f} rows/s ({seconds:.1f}s)", flush=True)
    return results


def finetune_runs(examples: int, folder: Path) -> list[dict]:
    """Fine-tuning MiniLM's top 2 blocks, one epoch, global batch 16: samples/s of the training loop."""
    frame = load_builtin("spam-assassin").groupby("label").sample(examples // 2, random_state=0)
    frame = frame.assign(text=frame["text"].str.slice(0, 300))[["text", "label"]]
    data = folder / "finetune.csv"
    frame.to_csv(data, index=False)
    results = []
    for workers in (1, 2):
        start = time.perf_counter()
        model = fit_on_ray(fit_api, str(data), workers=workers, output=folder / f"ft{workers}", strategy="finetune",
                           epochs=1, batch_size=16, quiet=True, overwrite=True, test_size=0.2,
                           cache_dir=tempfile.mkdtemp(prefix="cache-", dir=folder))  # fmt: skip
        wall = time.perf_counter() - start
        info = model.info
        fit_part = round(model.data_info["n_train"] * 0.8)  # less the validation split (validation_fraction)
        steps = max(8, -(-fit_part // 16))  # at least MIN_STEPS_PER_EPOCH steps an epoch
        samples = steps * 16 * info["epochs_run"]
        results.append({"kind": "finetune", "workers": workers, "samples": samples,
                        "train_seconds": info["seconds"], "samples_per_s": round(samples / info["seconds"], 1),
                        "wall_seconds": round(wall, 1)})  # fmt: skip
        print(f"finetune {workers} worker(s): {samples / info['seconds']:.1f} samples/s "
              f"({info['seconds']:.1f}s training, {wall:.1f}s wall)", flush=True)  # fmt: skip
    return results


def paper(result: dict) -> list[dict]:
    """10 million texts on 8 and 64 machines of CORES_PER_MACHINE one-core workers, from the measured rate of one
    Ray worker, the measured 2-worker efficiency (applied per machine: cores share memory bandwidth as here),
    one task per 10,000-row shard at TASK_OVERHEAD_S, and the measured start (cluster + actors + model)."""
    rows = {r["run"]: r for r in result["runs"] if r["kind"] == "embed"}
    per_worker = rows["ray, 1 worker"]["rows_per_s"]
    efficiency = rows["ray, 2 workers"]["rows_per_s"] / (2 * per_worker)
    start = result["cluster_start_s"] + rows["ray, 1 worker"]["seconds"] - rows["ray, 1 worker"]["rows"] / per_worker
    estimates = []
    for machines in (8, 64):
        workers = machines * CORES_PER_MACHINE
        rate = workers * per_worker * efficiency
        shards = TEXTS_ON_PAPER // 10_000
        seconds = max(start, 0) + TEXTS_ON_PAPER / rate + shards * TASK_OVERHEAD_S / workers
        estimates.append({"machines": machines, "workers": workers, "rows_per_s": round(rate),
                          "hours": round(seconds / 3600, 2)})  # fmt: skip
    return estimates


def table(result: dict) -> str:
    lines = ["| job | run | rows/s | seconds | vs plain, 1 thread | vs 1 Ray worker |", "|---|---|---|---|---|---|"]
    for kind in ("embed", "predict"):
        rows = {r["run"]: r for r in result["runs"] if r["kind"] == kind}
        if not rows:
            continue
        single, one = rows["plain, 1 thread"]["rows_per_s"], rows["ray, 1 worker"]["rows_per_s"]
        for name, row in rows.items():
            lines.append(f"| {kind} ({row['rows']:,} texts) | {name} | {row['rows_per_s']:.1f} | "
                         f"{row['seconds']:.1f} | {row['rows_per_s'] / single:.2f}x | "
                         f"{row['rows_per_s'] / one:.2f}x |")  # fmt: skip
    tune = {r["workers"]: r for r in result["runs"] if r["kind"] == "finetune"}
    if tune:
        lines += ["", "| fine-tuning (DDP, global batch 16) | samples/s | training s | wall s | scaling efficiency |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for workers, row in tune.items():
            efficiency = row["samples_per_s"] / (workers * tune[1]["samples_per_s"])
            lines.append(f"| {workers} worker(s) | {row['samples_per_s']:.1f} | {row['train_seconds']:.1f} | "
                         f"{row['wall_seconds']:.1f} | {efficiency:.2f} |")  # fmt: skip
    if result.get("paper"):
        lines += ["", f"| on paper: {TEXTS_ON_PAPER:,} texts, {CORES_PER_MACHINE} one-core workers a machine | "
                  "workers | rows/s | hours |", "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {p['machines']} machines | {p['workers']} | {p['rows_per_s']:,} | {p['hours']} |"
                  for p in result["paper"]]  # fmt: skip
    lines.append(f"\nRay cluster start (2 CPUs, local): {result['cluster_start_s']:.1f}s; goals: {result['goals']}")
    return "\n".join(lines)


def goals(result: dict) -> dict:
    rows = {r["run"]: r for r in result["runs"] if r["kind"] == "embed"}
    two_vs_one = rows["ray, 2 workers"]["rows_per_s"] / rows["ray, 1 worker"]["rows_per_s"]
    one_vs_plain = rows["ray, 1 worker"]["rows_per_s"] / rows["plain, 1 thread"]["rows_per_s"]
    return {"2 workers / 1 worker (goal >= 1.6)": round(two_vs_one, 2),
            "1 Ray worker / plain 1 thread (goal >= 0.85)": round(one_vs_plain, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embed-rows", type=int, default=20_000)
    parser.add_argument("--predict-rows", type=int, default=5_000)
    parser.add_argument("--shard-rows", type=int, default=1_000)
    parser.add_argument("--finetune-examples", type=int, default=400, help="0 skips fine-tuning")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/scale.json"))
    parser.add_argument("--table-only", type=Path, help="print the table of an earlier run's JSON")
    args = parser.parse_args()
    if args.table_only:
        print(table(json.loads(args.table_only.read_text())))
        return
    import ray

    folder = Path(tempfile.mkdtemp(prefix="scale-"))
    frame = texts(max(args.embed_rows, args.predict_rows))
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level=logging.WARNING,
             log_to_driver=False)  # fmt: skip
    result = {"cluster_start_s": round(time.perf_counter() - start, 2), "cpus": os.cpu_count(), "runs": []}
    frame.iloc[: args.embed_rows].to_parquet(folder / "embed.parquet", index=False)
    # Untimed warm-up: the ONNX graph of MiniLM is exported into the cache once, files are read into memory.
    frame.iloc[:300].to_parquet(folder / "warm.parquet", index=False)
    run_sharded("embed", "minilm", folder / "warm.parquet", folder / "warm-out.parquet", use_cache=False, quiet=True)
    result["runs"] += batch_runs("embed", "minilm", folder / "embed.parquet", args.embed_rows, args.shard_rows, folder)
    labeled = load_builtin("spam-assassin").groupby("label").sample(100, random_state=0)
    tk.fit(labeled, text_col="text", label_col="label", strategy="feature-extraction", output=folder / "model",
           quiet=True, cache_dir=str(folder / "fit-cache"))  # fmt: skip
    frame.iloc[: args.predict_rows].to_parquet(folder / "predict.parquet", index=False)
    result["runs"] += batch_runs("predict", str(folder / "model"), folder / "predict.parquet", args.predict_rows,
                                 args.shard_rows, folder)  # fmt: skip
    if args.finetune_examples:
        result["runs"] += finetune_runs(args.finetune_examples, folder)
    ray.shutdown()
    result["goals"] = goals(result)
    result["paper"] = paper(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
