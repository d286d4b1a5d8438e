"""``transferkit serve``: the real HTTP server (uvicorn on a free loopback port) answering real requests.

The server runs on a background thread (:func:`transferkit.serving.running`) for most tests and as the real
command line in a subprocess for the CLI tests. Models are fitted once per module on the tiny ``toy-text``
backbone, plus one on the bundled MiniLM.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import transferkit as tk
from transferkit.cli import app as cli_app
from transferkit.config import FitConfig
from transferkit.errors import TransferKitError

pytest.importorskip("fastapi", reason="needs the deploy extra: pip install -e '.[deploy]'")
from transferkit.serving import DynamicBatcher, ServeConfig, api_key_from_env, load_served_models, running

LIMITS = dict(max_body_bytes=64 * 1024, max_batch=16, max_text_chars=2000, max_file_bytes=32 * 1024)
TIMEOUT = httpx.Timeout(60.0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, spam_frame, afinn_frame, multilabel_frame) -> dict[str, str]:
    """Model folders by name: spam (toy-text), spam-minilm (MiniLM), valence (regression), tags (multi-label)."""
    root = tmp_path_factory.mktemp("models")
    fits = {
        "spam": (spam_frame, "toy-text", {}),
        "spam-minilm": (spam_frame, "minilm", {}),
        "valence": (afinn_frame[["text", "valence"]], "toy-text", {"task": "regression"}),
        "tags": (multilabel_frame, "toy-text", {"task": "multilabel"}),
    }
    for name, (frame, backbone, extra) in fits.items():
        tk.fit(frame, backbone=backbone, strategy="feature-extraction", output=root / name, quiet=True,
               use_cache=False, **extra)  # fmt: skip
    return {name: str(root / name) for name in fits}


@pytest.fixture(scope="module")
def server(folders) -> str:
    config = ServeConfig(port=0, max_wait_ms=20, **LIMITS)
    with running(list(folders.values()), config) as url:
        yield url


@pytest.fixture()
def client(server):
    with httpx.Client(base_url=server, timeout=TIMEOUT) as session:
        yield session


def infer_body(values: list, name: str = "text") -> dict:
    return {"inputs": [{"name": name, "shape": [len(values)], "datatype": "BYTES", "data": values}]}


def outputs_of(response: httpx.Response) -> dict[str, dict]:
    assert response.status_code == 200, response.text
    return {tensor["name"]: tensor for tensor in response.json()["outputs"]}


def test_health_and_metadata_follow_the_open_inference_protocol(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["models"] == ["spam", "spam-minilm", "tags", "valence"]
    metadata = client.get("/v2/models/spam").json()
    assert metadata["name"] == "spam" and metadata["platform"] == "transferkit_pytorch"
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert metadata["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
    ]
    assert metadata["parameters"]["classes"] == ["ham", "spam"]
    assert client.get("/v2/models/valence").json()["outputs"] == [
        {"name": "prediction", "datatype": "FP32", "shape": [-1]}
    ]
    assert client.get("/v2/models/tags/ready").json() == {"name": "tags", "ready": True}


@pytest.mark.parametrize("name", ["spam", "spam-minilm"])
def test_predictions_equal_transferkit_predict(name, folders, client, spam_frame, tmp_path):
    texts = spam_frame["text"].tolist()[:12]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "inputs.csv", index=False)
    done = CliRunner().invoke(cli_app, ["predict", folders[name], str(tmp_path / "inputs.csv"), "-o",
                                        str(tmp_path / "out.csv"), "--quiet"])  # fmt: skip
    assert done.exit_code == 0, done.output
    expected = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    expected_proba = expected[["proba_ham", "proba_spam"]].to_numpy()

    plain = client.post(f"/v2/models/{name}/predict", json={"inputs": texts}).json()
    assert plain["labels"] == ["ham", "spam"]
    assert plain["predictions"] == expected["prediction"].tolist()
    np.testing.assert_allclose(plain["probabilities"], expected_proba, atol=1e-5)

    tensors = outputs_of(client.post(f"/v2/models/{name}/infer", json={"id": "r1", **infer_body(texts)}))
    assert tensors["label"]["data"] == expected["prediction"].tolist() and tensors["label"]["shape"] == [12]
    assert tensors["probabilities"]["shape"] == [12, 2] and tensors["probabilities"]["datatype"] == "FP32"
    np.testing.assert_allclose(np.reshape(tensors["probabilities"]["data"], (12, 2)), expected_proba, atol=1e-5)


def test_regression_multilabel_and_requested_outputs(folders, client, afinn_frame, multilabel_frame):
    words = afinn_frame["text"].tolist()[:5]
    numbers, _ = tk.load(folders["valence"]).predict_outputs(words)
    tensors = outputs_of(client.post("/v2/models/valence/infer", json=infer_body(words)))
    assert list(tensors) == ["prediction"] and tensors["prediction"]["shape"] == [5]
    np.testing.assert_allclose(tensors["prediction"]["data"], numbers, atol=1e-5)
    plain = client.post("/v2/models/valence/predict", json={"inputs": words}).json()
    assert set(plain) == {"predictions"}
    np.testing.assert_allclose(plain["predictions"], numbers, atol=1e-5)

    tags = tk.load(folders["tags"])
    labels, probabilities = tags.predict_outputs(words)
    plain = client.post("/v2/models/tags/predict", json={"inputs": words}).json()
    assert plain["predictions"] == labels and plain["labels"] == tags.classes
    np.testing.assert_allclose(plain["probabilities"], probabilities, atol=1e-5)
    body = {**infer_body(words), "outputs": [{"name": "label"}]}
    tensors = outputs_of(client.post("/v2/models/tags/infer", json=body))
    assert list(tensors) == ["label"] and tensors["label"]["data"] == ["|".join(row) for row in labels]


def _oversized() -> bytes:
    return b'{"inputs": ["' + b"x" * (LIMITS["max_body_bytes"] + 10) + b'"]}'


REFUSALS = [
    ("unknown model", "/v2/models/nope/infer", infer_body(["hi"]), 404, "unknown model 'nope'.*serves spam"),
    ("unknown route", "/v2/nothing", {}, 404, "no route"),
    ("body too large", "/v2/models/spam/predict", _oversized(), 413, "the most is 65536"),
    ("too many inputs", "/v2/models/spam/predict", {"inputs": ["a"] * 17}, 422, "17 inputs.*the most is 16"),
    ("text too long", "/v2/models/spam/predict", {"inputs": ["a" * 2001]}, 422, "2001 characters.*the most is 2000"),
    ("malformed JSON", "/v2/models/spam/predict", b'{"inputs": [', 422, "not valid JSON"),
    ("wrong type", "/v2/models/spam/predict", {"inputs": [1, 2]}, 422, "input 0 is int; this model takes texts"),
    ("no list", "/v2/models/spam/predict", {"inputs": "one text"}, 422, '"inputs" must be a list'),
    ("empty", "/v2/models/spam/predict", {"inputs": []}, 422, "no inputs"),
    ("wrong input name", "/v2/models/spam/infer", infer_body(["hi"], name="x"), 422, "unknown input 'x'"),
    ("wrong datatype", "/v2/models/spam/infer", {"inputs": [{**infer_body(["a"])["inputs"][0], "datatype": "FP32"}]},
     422, "datatype BYTES"),
    ("shape mismatch", "/v2/models/spam/infer", {"inputs": [{**infer_body(["a"])["inputs"][0], "shape": [3]}]}, 422,
     r"shape \[3\] but 1 values"),
    ("unknown output", "/v2/models/spam/infer", {**infer_body(["a"]), "outputs": [{"name": "x"}]}, 422,
     "unknown output 'x'"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "path", "body", "status", "match"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_bad_requests_get_a_one_line_json_error(client, case, path, body, status, match):
    if isinstance(body, bytes):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert "\n" not in error
    assert re.search(match, error), error


def test_a_chunked_body_is_cut_off_at_the_limit(client):
    def chunks():  # no Content-Length: the server counts what arrives
        yield b'{"inputs": ["'
        for _ in range(20):
            yield b"x" * 4096
        yield b'"]}'

    response = client.post("/v2/models/spam/predict", content=chunks())
    assert response.status_code == 413 and "more than 65536 bytes" in response.json()["error"]


GARBAGE = [
    b"", b" ", b"null", b"true", b"0", b"1e999", b'"text"', b"[]", b"{}", b"\xff\xfe\x00", b"NaN", b"[" * 100_000,
    b'{"inputs": null}', b'{"inputs": {}}', b'{"inputs": [null]}', b'{"inputs": [[["deep"]]]}',
    b'{"inputs": [{"a": 1}]}', b'{"inputs": [""]}', b'{"inputs": ["   "]}', b'{"inputs": [NaN]}',
    b'{"inputs": ["\\ud800"]}', b'{"inputs": ["\\u0000"]}', b'{"inputs": [true]}', b'{"inputs": [1e999]}',
    b'{"inputs": [{"name": "text"}]}', b'{"inputs": [{"name": "text", "datatype": "BYTES"}]}',
    b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": "1", "data": ["a"]}]}',
    b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1], "data": ["a"]}]}',
    b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [true], "data": ["a"]}]}',
    b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 2], "data": ["a", "b"]}]}',
    b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": {"a": 1}}]}',
    b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [["a", ["b"]]]}]}',
    b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [5]}], "outputs": "label"}',
    b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"]}], "outputs": [1]}',
    b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"]}], "id": 5}',
    b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [0], "data": []}]}',
    b'{"inputs": [1, 2, 3], "parameters": null}', b'{"inputs": [{}, {}]}',
]  # fmt: skip


def test_garbage_never_gets_a_500(client):
    for path in ("/v2/models/spam/infer", "/v2/models/spam/predict", "/v2/models/valence/infer",
                 "/v2/models/tags/predict"):  # fmt: skip
        for body in GARBAGE:
            for content_type in ("application/json", "text/plain"):
                response = client.post(path, content=body, headers={"content-type": content_type})
                assert response.status_code < 500, (path, body[:80], response.status_code, response.text)
                if response.status_code != 200:  # a text of one NUL character is odd, not wrong
                    assert response.status_code in (413, 422) and isinstance(response.json()["error"], str)
    assert client.get("/v2/models/spam/infer").status_code == 405
    assert client.put("/v2/models/spam/predict", content=b"{}").json()["error"].startswith("PUT is not allowed")
    assert client.get("/v2/health/ready").status_code == 200  # the server is still up


def test_the_api_key_guards_every_route_but_health(folders):
    with (
        running([folders["spam"]], ServeConfig(port=0, api_key="s3cret key")) as url,
        httpx.Client(base_url=url, timeout=TIMEOUT) as session,
    ):
        assert session.get("/v2/health/live").status_code == 200
        assert session.get("/v2/health/ready").status_code == 200
        body = {"inputs": ["win money"]}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret key"},
                        {"Authorization": "Basic s3cret key"}):  # fmt: skip
            response = session.post("/v2/models/spam/predict", json=body, headers=headers)
            assert response.status_code == 401 and "API key" in response.json()["error"]
            assert response.headers["www-authenticate"] == "Bearer"
        assert session.get("/v2/models/spam").status_code == 401
        assert session.get("/v2/models/nope").status_code == 401  # who may ask comes before what exists
        good = {"Authorization": "Bearer s3cret key"}
        assert session.post("/v2/models/spam/predict", json=body, headers=good).status_code == 200
        assert session.get("/v2/models/spam", headers={"authorization": "bearer s3cret key"}).status_code == 200


def test_the_key_comes_from_a_set_environment_variable(monkeypatch):
    monkeypatch.setenv("TK_TEST_KEY", "abc")
    assert api_key_from_env("TK_TEST_KEY") == "abc"
    monkeypatch.setenv("TK_TEST_KEY", " ")
    with pytest.raises(TransferKitError, match="TK_TEST_KEY is unset or empty"):
        api_key_from_env("TK_TEST_KEY")
    monkeypatch.delenv("TK_TEST_KEY")
    with pytest.raises(TransferKitError, match="export TK_TEST_KEY="):
        api_key_from_env("TK_TEST_KEY")
    with pytest.raises(TransferKitError, match="max_batch must be >= 1, got 0"):
        ServeConfig(max_batch=0)
    assert ServeConfig().host == "127.0.0.1" and not ServeConfig(batching=False).batches


def test_a_burst_of_concurrent_clients_is_batched_and_answered_correctly(folders, server, spam_frame):
    texts = spam_frame["text"].tolist()[:32]
    labels, probabilities = tk.load(folders["spam"]).predict_outputs(texts)
    with httpx.Client(base_url=server, timeout=TIMEOUT) as session:
        before = session.get("/v2/models/spam").json()["parameters"]["stats"]
    start = threading.Barrier(32)

    def client_thread(index: int) -> list[tuple[int, dict]]:
        answers = []
        with httpx.Client(base_url=server, timeout=TIMEOUT) as session:
            start.wait(timeout=60)
            for _ in range(4):
                answers.append((index, session.post("/v2/models/spam/predict", json={"inputs": [texts[index]]})))
        return answers

    with ThreadPoolExecutor(32) as pool:
        answers = [answer for batch in pool.map(client_thread, range(32)) for answer in batch]
    assert len(answers) == 128
    for index, response in answers:
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == [labels[index]]
        np.testing.assert_allclose(response.json()["probabilities"][0], probabilities[index], atol=1e-5)
    with httpx.Client(base_url=server, timeout=TIMEOUT) as session:
        after = session.get("/v2/models/spam").json()["parameters"]["stats"]
    assert after["requests"] - before["requests"] == 128
    calls = after["predict_calls"] - before["predict_calls"]
    assert calls < 128 and after["largest_batch"] > 1, after  # requests were merged
    assert after["largest_batch"] <= LIMITS["max_batch"]


def _fake_predict(calls: list[int]):
    def predict(inputs: list) -> tuple[list, np.ndarray]:
        calls.append(len(inputs))
        if "bad" in inputs:
            raise TransferKitError("bad input")
        return [f"label-{x}" for x in inputs], np.array([[float(x == "a")] for x in inputs])

    return predict


def test_the_batcher_merges_up_to_max_batch_and_isolates_a_failing_request():
    async def scenario(max_wait: float, merge: bool = True) -> tuple[list, list[int]]:
        calls: list[int] = []
        batcher = DynamicBatcher(_fake_predict(calls), max_batch=4, max_wait=max_wait, merge=merge)
        batcher.start()
        requests = [["a"], ["b", "c"], ["bad"], ["d", "e", "f"], ["a"]]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)
        await batcher.stop()
        return results, calls

    results, calls = asyncio.run(scenario(0.05))
    assert results[0] == (["label-a"], pytest.approx(np.array([[1.0]])))
    assert results[3][0] == ["label-d", "label-e", "label-f"] and results[4][0] == ["label-a"]
    assert isinstance(results[2], TransferKitError)
    assert max(calls) <= 4 and calls[0] == 4  # a, b c, bad merged; d e f carried to the next batch
    results, calls = asyncio.run(scenario(0.0))  # no waiting: what queued while the worker was busy merges
    assert calls[0] == 4 and max(calls) <= 4 and results[4][0] == ["label-a"]
    results, calls = asyncio.run(scenario(0.05, merge=False))
    assert calls == [1, 2, 1, 3, 1] and isinstance(results[2], TransferKitError)  # no batching: one call each


def test_one_line_errors_at_start_up(folders, tmp_path):
    with pytest.raises(TransferKitError, match="does not exist"):
        load_served_models([tmp_path / "missing"])
    twin = tmp_path / "other" / "spam"
    twin.parent.mkdir()
    twin.symlink_to(folders["spam"], target_is_directory=True)
    with pytest.raises(TransferKitError, match="two models are named 'spam'"):
        load_served_models([folders["spam"], twin])
    with pytest.raises(TransferKitError, match="not a transferkit model folder"):
        load_served_models([tmp_path])


def test_serving_imports_without_torch():
    code = "import sys, transferkit.serving; print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr[-500:]


def test_images_are_sent_as_base64_files(tmp_path):
    from PIL import Image

    from transferkit.strategies.fit import fit_model

    rng = np.random.default_rng(0)
    labels = ["dark", "bright"] * 8
    images = [np.clip(rng.normal(60 if y == "dark" else 190, 25, (40, 40, 3)), 0, 255).astype(np.uint8) for y in labels]
    config = FitConfig(strategy="feature-extraction", quiet=True, use_cache=False)
    model = fit_model(images, labels, task="classification", backbone="small-cnn", config=config)
    tk.save(model, tmp_path / "shades")
    files = []
    for index, array in enumerate(images[:3]):
        Image.fromarray(array).save(tmp_path / f"{index}.png")
        files.append(tmp_path / f"{index}.png")
    rgba = np.dstack([images[3], np.full((40, 40), 128, np.uint8)])  # half transparent: composed on white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    files.append(tmp_path / "rgba.png")
    expected_labels, expected = tk.load(tmp_path / "shades").predict_outputs([str(f) for f in files])
    encoded = [base64.b64encode(f.read_bytes()).decode("ascii") for f in files]
    with (
        running([tmp_path / "shades"], ServeConfig(port=0, max_file_bytes=32 * 1024)) as url,
        httpx.Client(base_url=url, timeout=TIMEOUT) as session,
    ):
        assert session.get("/v2/models/shades").json()["inputs"][0]["name"] == "image"
        tensors = outputs_of(session.post("/v2/models/shades/infer", json=infer_body(encoded, name="image")))
        assert tensors["label"]["data"] == expected_labels
        np.testing.assert_allclose(np.reshape(tensors["probabilities"]["data"], (4, 2)), expected, atol=1e-5)
        for bad, match in (("not base64!", "not valid base64"), (base64.b64encode(b"GIF89a junk").decode(),
                           "not a readable image"), ("A" * 50_000, "larger than 32768 bytes")):  # fmt: skip
            response = session.post("/v2/models/shades/predict", json={"inputs": [encoded[0], bad]})
            assert response.status_code == 422 and match in response.json()["error"], response.text


def test_audio_is_sent_as_base64_sound_files_at_any_rate(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    pytest.importorskip("librosa", reason="needs the audio extra")
    from transferkit.backbones.audio import RATE
    from transferkit.serving.models import SAMPLE_RATE
    from transferkit.strategies.fit import fit_model

    assert SAMPLE_RATE == RATE
    rng = np.random.default_rng(0)
    labels = ["low", "high"] * 6
    seconds = np.arange(8000) / 8000  # 8 kHz files: the server resamples them as `predict` does
    clips = [(0.3 * np.sin(2 * np.pi * (220 if y == "low" else 1760) * seconds)).astype(np.float32)
             + 0.02 * rng.normal(size=8000).astype(np.float32) for y in labels]  # fmt: skip
    paths = []
    for index, clip in enumerate(clips):
        soundfile.write(tmp_path / f"{index}.wav", clip, 8000, subtype="FLOAT")
        paths.append(str(tmp_path / f"{index}.wav"))
    model = fit_model(paths, labels, task="classification", config=FitConfig(strategy="mfcc-lr", quiet=True))
    tk.save(model, tmp_path / "tones")
    expected_labels, expected = tk.load(tmp_path / "tones").predict_outputs(paths[:4])
    encoded = [base64.b64encode(Path(path).read_bytes()).decode("ascii") for path in paths[:4]]
    with (
        running([tmp_path / "tones"], ServeConfig(port=0)) as url,
        httpx.Client(base_url=url, timeout=TIMEOUT) as session,
    ):
        plain = session.post("/v2/models/tones/predict", json={"inputs": encoded}).json()
        assert plain["predictions"] == expected_labels
        np.testing.assert_allclose(plain["probabilities"], expected, atol=1e-5)
        response = session.post("/v2/models/tones/predict", json={"inputs": [base64.b64encode(b"RIFF").decode()]})
        assert response.status_code == 422 and "not a readable sound file" in response.json()["error"]


def test_an_exported_folder_is_served_like_its_pytorch_model(folders, tmp_path, spam_frame):
    graph = pytest.importorskip("transferkit.export.graph", reason="needs transferkit.export and the deploy extra")
    texts = spam_frame["text"].tolist()[:8]
    graph.export_model(tk.load(folders["spam"]), tmp_path / "spam", quiet=True)
    original_labels, original = tk.load(folders["spam"]).predict_outputs(texts)
    with (
        running([tmp_path / "spam"], ServeConfig(port=0)) as url,
        httpx.Client(base_url=url, timeout=TIMEOUT) as session,
    ):
        assert session.get("/v2/models/spam").json()["platform"] == "onnxruntime_onnx"
        plain = session.post("/v2/models/spam/predict", json={"inputs": texts}).json()
    assert plain["predictions"] == original_labels
    np.testing.assert_allclose(plain["probabilities"], original, atol=1e-4)
    code = (
        "import sys\nfrom transferkit.serving import create_app, load_served_models\n"
        f"models = load_served_models([{str(tmp_path / 'spam')!r}])\ncreate_app(models)\n"
        "print(models['spam'].predict(['win a free cruise'])[0], 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[-1] == "False", done.stderr[-800:]  # served without importing torch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(*arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "transferkit.cli", *arguments], capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip


def test_the_serve_command_serves_until_terminated(folders):
    port = _free_port()
    env = {**os.environ, "TK_SERVE_KEY": "k3y"}
    command = [sys.executable, "-m", "transferkit.cli", "serve", folders["spam"], "--port", str(port),
               "--api-key-env", "TK_SERVE_KEY"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 90
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        response = httpx.post(f"{url}/v2/models/spam/infer", json=infer_body(["win a free cruise"]),
                              headers={"Authorization": "Bearer k3y"}, timeout=TIMEOUT)  # fmt: skip
        assert outputs_of(response)["label"]["data"][0] in ("ham", "spam")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    # uvicorn finishes the requests in flight, then re-raises SIGTERM so that the process dies of it
    assert process.returncode in (0, -signal.SIGTERM) and "Traceback" not in stderr, stderr
    assert f"at http://127.0.0.1:{port}/v2/models/<name>/infer" in stderr and "API key required" in stderr


def test_the_serve_command_fails_in_one_line(folders, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TK_MISSING_KEY"}
    cases = [
        (["serve", str(tmp_path / "missing")], "does not exist"),
        (["serve", folders["spam"], "--api-key-env", "TK_MISSING_KEY"], "TK_MISSING_KEY is unset or empty"),
        (["serve", folders["spam"], "--port", "70000"], "port must be in 0..65535"),
    ]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cases.append((["serve", folders["spam"], "--port", str(busy.getsockname()[1])], "choose another --port"))
        for arguments, match in cases:
            done = _cli(*arguments, env=env)
            assert done.returncode == 2, (arguments, done.stderr)
            assert match in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
