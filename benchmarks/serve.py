"""Serving: requests/s and p50/p99 latency of ``transferkit serve`` at 1, 8 and 64 concurrent clients, with and
without dynamic batching, for each model folder given (a PyTorch folder from ``fit``, an exported one from
``export``).

Each (model, batching) pair gets its own server, the real command line in a subprocess on a free loopback
port, so the clients (asyncio + httpx, in this process) do not share an interpreter with it. Every request
carries one text (real e-mails of the bundled SpamAssassin set, cut to 300 characters) to
``/v2/models/NAME/infer``; a level stops after ``--requests`` requests or ``--max-seconds``. The servers of
each batching mode (on without waiting, on with a 5 ms queue delay, off) run side by side and take turns, level
by level, for ``--rounds`` rounds; each cell shows its best round (other work on the machine only ever slows a
round down). "inputs/call" is the mean number of inputs per model call over the level (the server's batching
counters).

    python benchmarks/serve.py runs/spam-minilm [runs/spam-minilm-onnx ...] --requests 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from transferkit.datasets import load_builtin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


MODES = {"on": [], "wait": ["--max-wait-ms", "5"], "off": ["--no-batching"]}  # dynamic batching: no wait, 5 ms, off
LABELS = {"on": "on, no wait", "wait": "on, 5 ms wait", "off": "off"}


def start_server(folder: Path, port: int, mode: str, threads: int | None) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "transferkit.cli",
        "serve",
        str(folder),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    command += MODES[mode]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}  # torch reads it at start
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server for {folder} exited: {process.stderr.read().strip()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server for {folder} did not become ready in 120 s")


async def load(url: str, texts: list[str], clients: int, requests: int, max_seconds: float) -> tuple[list, float]:
    """Send up to ``requests`` one-text requests from ``clients`` concurrent clients; latencies and wall time."""
    latencies: list[float] = []
    sent = 0
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(session: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < requests and time.perf_counter() < deadline:
            text = texts[sent % len(texts)]
            sent += 1
            body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}
            began = time.perf_counter()
            response = await session.post(url, json=body)
            latencies.append(time.perf_counter() - began)
            if response.status_code != 200:
                raise SystemExit(f"request failed ({response.status_code}): {response.text}")

    async with httpx.AsyncClient(timeout=120, limits=limits) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return latencies, time.perf_counter() - began


class Server:
    """One ``transferkit serve`` subprocess for one (model folder, batching) pair."""

    def __init__(self, folder: Path, batching: str, threads: int | None) -> None:
        port = free_port()
        self.process = start_server(folder, port, batching, threads)
        self.base, self.batching = f"http://127.0.0.1:{port}", batching
        self.name = httpx.get(f"{self.base}/v2", timeout=30).json()["models"][0]
        self.platform = httpx.get(f"{self.base}/v2/models/{self.name}", timeout=30).json()["platform"]
        self.url = f"{self.base}/v2/models/{self.name}/infer"

    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self.base}/v2/models/{self.name}", timeout=30).json()["parameters"]["stats"]

    def level(self, clients: int, texts: list[str], args: argparse.Namespace) -> dict:
        before = self.stats()
        latencies, wall = asyncio.run(load(self.url, texts, clients, args.requests, args.max_seconds))
        after = self.stats()
        milliseconds = np.array(latencies) * 1000
        calls = max(1, after["predict_calls"] - before["predict_calls"])
        return {
            "model": self.name, "platform": self.platform, "batching": LABELS[self.batching],
            "clients": clients, "requests": len(latencies), "per_second": len(latencies) / wall,
            "p50": float(np.percentile(milliseconds, 50)), "p99": float(np.percentile(milliseconds, 99)),
            "inputs_per_call": (after["inputs"] - before["inputs"]) / calls,
        }  # fmt: skip

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def measure(folder: Path, modes: list[bool], levels: list[int], args: argparse.Namespace, texts: list[str]) -> list:
    """The best of ``args.rounds`` rounds for each (batching, clients) cell. Conditions alternate within a round,
    so a burst of other work on the machine hits both modes rather than one."""
    servers = []
    try:
        for batching in modes:
            servers.append(Server(folder, batching, args.server_threads))
            asyncio.run(load(servers[-1].url, texts, 4, 16, 30))  # warm-up: first calls allocate
        best: dict[tuple[bool, int], dict] = {}
        for round_number in range(args.rounds):
            for clients in levels:
                for server in servers:
                    row = server.level(clients, texts, args)
                    key = (server.batching, clients)
                    if key not in best or row["per_second"] > best[key]["per_second"]:
                        best[key] = row
                    print(f"  round {round_number + 1}: {row['model']} batching {row['batching']}, {clients} "
                          f"clients: {row['per_second']:.1f}/s", file=sys.stderr)  # fmt: skip
        return [best[(batching, clients)] for batching in modes for clients in levels]
    finally:
        for server in servers:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="Model folders (PyTorch or exported).")
    parser.add_argument("--clients", default="1,8,64", help="Concurrency levels, comma-separated.")
    parser.add_argument("--requests", type=int, default=200, help="Requests per level (at most).")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="Time limit per level.")
    parser.add_argument(
        "--batching", choices=["all", "on", "wait", "off"], default="all",
        help="on: merge what queued, no wait (the server's default); wait: a 5 ms queue delay; off; all: each",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="Rounds per cell; the table shows each cell's best.")
    parser.add_argument(
        "--server-threads", type=int, default=None,
        help="OMP_NUM_THREADS of the server (torch's threads; default: torch's own, one per core). On a machine "
        "shared with other work, 1 avoids threads waiting on each other for a core.",
    )  # fmt: skip
    args = parser.parse_args()
    for folder in args.models:
        if not folder.is_dir():
            raise SystemExit(f"model folder {str(folder)!r} does not exist")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    frame = load_builtin("spam-assassin").sample(256, random_state=0)
    texts = frame["text"].str.slice(0, 300).tolist()
    levels = [int(level) for level in args.clients.split(",")]
    modes = list(MODES) if args.batching == "all" else [args.batching]
    rows = [row for folder in args.models for row in measure(folder, modes, levels, args, texts)]
    threads = args.server_threads or "default"
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; server threads {threads}; one text per "
          f"request; up to {args.requests} requests or {args.max_seconds:g} s per level, best of {args.rounds} "
          "rounds\n")  # fmt: skip
    print("| model | platform | dynamic batching | clients | requests | requests/s | p50 ms | p99 ms | inputs/call |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['model']} | {row['platform']} | {row['batching']} | {row['clients']} | {row['requests']} | "
            f"{row['per_second']:.1f} | {row['p50']:.1f} | {row['p99']:.1f} | {row['inputs_per_call']:.1f} |"
        )


if __name__ == "__main__":
    main()
