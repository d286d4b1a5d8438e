"""``transferkit serve``: models behind an HTTP service that KServe, Triton and Seldon clients can call.

The Open Inference Protocol (v2) routes and a plain ``/predict`` (:mod:`~transferkit.serving.app`), with an
optional API key, limits that answer with a one-line JSON error, and dynamic batching of concurrent requests
(:mod:`~transferkit.serving.batching`). Importing this package loads neither torch nor the models: an exported
folder is served by ONNX Runtime alone, and torch is imported only to load a PyTorch model folder.

    from transferkit.serving import ServeConfig, serve
    serve(["models/spam"], ServeConfig(port=8080))
"""

from __future__ import annotations

import transferkit.serving._dependencies  # noqa: F401 - first: a one-line error when fastapi or uvicorn is missing
from transferkit.serving.app import create_app
from transferkit.serving.batching import BatchStats, DynamicBatcher
from transferkit.serving.config import ServeConfig, api_key_from_env
from transferkit.serving.models import ServedModel, load_served_model, load_served_models
from transferkit.serving.server import bind_socket, running, serve

__all__ = [
    "BatchStats",
    "DynamicBatcher",
    "ServeConfig",
    "ServedModel",
    "api_key_from_env",
    "bind_socket",
    "create_app",
    "load_served_model",
    "load_served_models",
    "running",
    "serve",
]
