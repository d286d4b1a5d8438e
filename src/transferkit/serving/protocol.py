"""The wire formats: Open Inference Protocol (v2) requests and responses, and the plain ``/predict`` JSON.

The Open Inference Protocol is what KServe, Triton and Seldon (MLServer) clients speak
(https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/). Everything here is a pure
function of parsed JSON, so every malformed request becomes a :class:`RequestError` (a 4xx with a one-line
``{"error": "..."}`` body) and never reaches the model.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

# What one model reads, by modality: the OIP input name (its datatype is always BYTES).
INPUT_NAMES = {"text": "text", "image": "image", "audio": "audio"}


class RequestError(Exception):
    """A request the service refuses, with its HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def parse_json(body: bytes) -> Any:
    """The request body as JSON.

    Raises:
        RequestError: 422 for an empty body, bytes that are not UTF-8, or text that is not JSON.
    """
    if not body.strip():
        raise RequestError(422, "the request body is empty; send a JSON object")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise RequestError(422, "the request body is not UTF-8; send a JSON object") from None
    except (json.JSONDecodeError, RecursionError, ValueError) as error:
        raise RequestError(422, f"the request body is not valid JSON ({error})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _object(payload: Any, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise RequestError(422, f"{what} must be a JSON object, got {type(payload).__name__}")
    return payload


def output_names(task: str) -> list[str]:
    """The OIP outputs a model of ``task`` returns."""
    return ["prediction"] if task == "regression" else ["label", "probabilities"]


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in data:
        if isinstance(item, list):
            if any(isinstance(inner, list) for inner in item):
                raise RequestError(422, "input data is nested too deeply; send shape [n] or [n, 1]")
            flat.extend(item)
        else:
            flat.append(item)
    return flat


def infer_request(payload: Any, *, modality: str, task: str) -> tuple[list[Any], list[str], str | None]:
    """The input values, the outputs asked for and the request id of an OIP v2 inference request.

    Raises:
        RequestError: 422 for anything but one BYTES input named after the model's modality, with data whose
            length matches a shape of [n] or [n, 1], and known output names.
    """
    payload = _object(payload, "the inference request")
    name = INPUT_NAMES[modality]
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise RequestError(422, f'"inputs" must be a list of one tensor named {name!r} (datatype BYTES)')
    tensor = _object(inputs[0], "the input tensor")
    if tensor.get("name") != name:
        raise RequestError(422, f"unknown input {tensor.get('name')!r}; this model takes one input named {name!r}")
    if tensor.get("datatype") != "BYTES":
        raise RequestError(422, f"input {name!r} must have datatype BYTES, got {tensor.get('datatype')!r}")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape)
        or (len(shape) == 2 and shape[1] != 1)
    ):
        raise RequestError(422, f"input {name!r} must have shape [n] or [n, 1], got {shape!r}")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise RequestError(422, f'input {name!r} needs a list of values in "data", got {type(data).__name__}')
    values = _flatten(data)
    if len(values) != shape[0]:
        raise RequestError(422, f"input {name!r} has shape {shape} but {len(values)} values")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(422, f'"id" must be a string, got {type(request_id).__name__}')
    known = output_names(task)
    wanted = payload.get("outputs")
    if wanted is None:
        return values, known, request_id
    if not isinstance(wanted, list) or not all(isinstance(o, dict) for o in wanted):
        raise RequestError(422, '"outputs" must be a list of objects like {"name": "label"}')
    names = [o.get("name") for o in wanted]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RequestError(422, f"unknown output {unknown[0]!r}; this model returns {', '.join(known)}")
    return values, [n for n in known if n in names], request_id


def predict_request(payload: Any) -> list[Any]:
    """The input values of a plain ``{"inputs": [...]}`` request.

    Raises:
        RequestError: 422 when the body is not an object with a list under "inputs".
    """
    payload = _object(payload, "the request")
    values = payload.get("inputs")
    if not isinstance(values, list):
        raise RequestError(422, '"inputs" must be a list, e.g. {"inputs": ["first text", "second text"]}')
    return values


def _floats(array: np.ndarray) -> list[float]:
    # JSON has no NaN or infinity; a model that produced one says so rather than writing invalid JSON.
    values = np.asarray(array, dtype=np.float64).reshape(-1)
    if not np.isfinite(values).all():
        raise ValueError("the model produced a non-finite number")
    return values.tolist()


def infer_response(
    *,
    model_name: str,
    task: str,
    predictions: list[Any],
    probabilities: np.ndarray | None,
    outputs: list[str],
    request_id: str | None,
) -> dict[str, Any]:
    """An OIP v2 inference response: ``label`` (BYTES [n]; multi-label joined with "|") and ``probabilities``
    (FP32 [n, k]), or ``prediction`` (FP32 [n]) for regression; data flattened in row-major order."""
    n = len(predictions)
    tensors = []
    for name in outputs:
        if name == "label":
            labels = ["|".join(p) for p in predictions] if task == "multilabel" else [str(p) for p in predictions]
            tensors.append({"name": "label", "datatype": "BYTES", "shape": [n], "data": labels})
        elif name == "probabilities" and probabilities is not None:
            shape = [n, int(probabilities.shape[1])]
            tensors.append({"name": name, "datatype": "FP32", "shape": shape, "data": _floats(probabilities)})
        elif name == "prediction":
            data = _floats(np.asarray(predictions, dtype=np.float64))
            tensors.append({"name": name, "datatype": "FP32", "shape": [n], "data": data})
    response: dict[str, Any] = {"model_name": model_name, "outputs": tensors}
    if request_id is not None:
        response["id"] = request_id
    return response


def predict_response(
    *, task: str, classes: list[str], predictions: list[Any], probabilities: np.ndarray | None
) -> dict[str, Any]:
    """``{"predictions", "probabilities", "labels"}`` (labels: the class names, the probabilities' columns);
    regression returns the predictions only."""
    if task == "regression":
        return {"predictions": _floats(np.asarray(predictions, dtype=np.float64))}
    rows = np.asarray(probabilities, dtype=np.float64)
    if not np.isfinite(rows).all():
        raise ValueError("the model produced a non-finite probability")
    return {"predictions": list(predictions), "probabilities": rows.tolist(), "labels": list(classes)}


def model_metadata(
    *, name: str, platform: str, task: str, modality: str, classes: list[str], stats: dict[str, Any]
) -> dict[str, Any]:
    """OIP v2 model metadata (name, platform, inputs, outputs; -1 marks the batch dimension), with the task,
    the class names and the batching counters under ``parameters``."""
    if task == "regression":
        outputs = [{"name": "prediction", "datatype": "FP32", "shape": [-1]}]
    else:
        outputs = [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes)]},
        ]
    return {
        "name": name,
        "versions": ["1"],
        "platform": platform,
        "inputs": [{"name": INPUT_NAMES[modality], "datatype": "BYTES", "shape": [-1]}],
        "outputs": outputs,
        "parameters": {"task": task, "modality": modality, "classes": list(classes), "stats": stats},
    }
