"""The HTTP service: Open Inference Protocol (v2) routes and a plain ``/predict``, over FastAPI.

Routes (``{name}`` is a model folder's name):

- ``GET /v2/health/live``, ``GET /v2/health/ready``: no key needed.
- ``GET /v2``: server metadata. ``GET /v2/models/{name}``: model metadata (inputs, outputs, classes and the
  batching counters). ``GET /v2/models/{name}/ready``.
- ``POST /v2/models/{name}/infer``: OIP v2 inference. ``POST /v2/models/{name}/predict``:
  ``{"inputs": [...]}`` -> ``{"predictions", "probabilities", "labels"}``.

Every refusal is a JSON ``{"error": "..."}`` with a 4xx status: 401 (missing or wrong key), 404 (unknown model
or route), 413 (body over ``max_body_bytes``), 422 (malformed JSON, wrong types, too many inputs, inputs too
long). Bodies are read and parsed here rather than by FastAPI's validation, so no input reaches the model
unchecked and no bad input can produce a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from transferkit._version import __version__
from transferkit.errors import TransferKitError
from transferkit.serving.batching import DynamicBatcher
from transferkit.serving.config import ServeConfig
from transferkit.serving.models import ServedModel, check_batch, decode_inputs
from transferkit.serving.protocol import (
    RequestError,
    infer_request,
    infer_response,
    model_metadata,
    parse_json,
    predict_request,
    predict_response,
)

logger = logging.getLogger("transferkit.serving")


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class Service:
    """The models, their batchers and the settings behind one app (``app.state.service``)."""

    def __init__(self, models: dict[str, ServedModel], config: ServeConfig) -> None:
        self.models = models
        self.config = config
        wait, merge = config.max_wait_ms / 1000, config.batches
        self.batchers = {
            name: DynamicBatcher(model.predict, max_batch=config.max_merge, max_wait=wait, merge=merge)
            for name, model in models.items()
        }
        self._key = None if config.api_key is None else _digest(config.api_key)

    @property
    def ready(self) -> bool:
        return all(batcher.running for batcher in self.batchers.values())

    def authorize(self, request: Request) -> None:
        """Refuse (401) a request without ``Authorization: Bearer <key>`` when a key is set."""
        if self._key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # Compare digests in constant time: neither the key's content nor its length leaks through timing.
        if scheme.lower() != "bearer" or not hmac.compare_digest(_digest(token.strip()), self._key):
            raise RequestError(
                401, "missing or wrong API key; send the header Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip

    def model(self, name: str) -> ServedModel:
        if name not in self.models:
            raise RequestError(404, f"unknown model {name!r}; this server serves {', '.join(sorted(self.models))}")
        return self.models[name]

    async def body(self, request: Request) -> Any:
        """The request's JSON, refused (413) as soon as it passes ``max_body_bytes``."""
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise RequestError(413, f"the request body has {declared} bytes; the most is {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"the request body has more than {limit} bytes; send fewer inputs")
            chunks.append(chunk)
        return parse_json(b"".join(chunks))

    async def predict(self, served: ServedModel, values: list[Any]) -> tuple[list[Any], Any]:
        """Decode ``values`` for the model and predict them through its batcher."""
        check_batch(values, self.config)
        if served.modality == "text":
            inputs = decode_inputs(values, served.modality, self.config)
        else:  # decoding images and audio takes CPU time: keep it off the event loop
            loop = asyncio.get_running_loop()
            inputs = await loop.run_in_executor(None, decode_inputs, values, served.modality, self.config)
        try:
            return await self.batchers[served.name].submit(inputs)
        except TransferKitError as error:  # the model refused an input (a clip too short, say)
            raise RequestError(422, " ".join(str(error).splitlines())) from None


def create_app(models: dict[str, ServedModel], config: ServeConfig | None = None) -> FastAPI:
    """A FastAPI app serving ``models`` (name -> loaded model) under ``config``."""
    config = config or ServeConfig()
    service = Service(models, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One thread per model: each model runs one (batched) prediction at a time, models run side by side.
        executor = ThreadPoolExecutor(max_workers=max(1, len(models)), thread_name_prefix="transferkit-predict")
        for batcher in service.batchers.values():
            batcher.start(executor)
        try:
            yield
        finally:
            for batcher in service.batchers.values():
                await batcher.stop()
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="transferkit", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.service = service
    _add_error_handlers(app)

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> JSONResponse:
        return JSONResponse({"ready": service.ready}, status_code=200 if service.ready else 503)

    @app.get("/v2")
    async def server_metadata(request: Request) -> dict[str, Any]:
        service.authorize(request)
        return {"name": "transferkit", "version": __version__, "extensions": [], "models": sorted(models)}

    @app.get("/v2/models/{name}")
    async def metadata(name: str, request: Request) -> dict[str, Any]:
        service.authorize(request)
        served = service.model(name)
        return model_metadata(
            name=served.name, platform=served.platform, task=served.task, modality=served.modality,
            classes=served.classes, stats=service.batchers[name].stats.to_json(),
        )  # fmt: skip

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str, request: Request) -> dict[str, Any]:
        service.authorize(request)
        return {"name": service.model(name).name, "ready": service.batchers[name].running}

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> dict[str, Any]:
        service.authorize(request)
        served = service.model(name)
        payload = await service.body(request)
        values, outputs, request_id = infer_request(payload, modality=served.modality, task=served.task)
        predictions, probabilities = await service.predict(served, values)
        return infer_response(
            model_name=served.name, task=served.task, predictions=predictions, probabilities=probabilities,
            outputs=outputs, request_id=request_id,
        )  # fmt: skip

    @app.post("/v2/models/{name}/predict")
    async def predict(name: str, request: Request) -> dict[str, Any]:
        service.authorize(request)
        served = service.model(name)
        values = predict_request(await service.body(request))
        predictions, probabilities = await service.predict(served, values)
        return predict_response(
            task=served.task, classes=served.classes, predictions=predictions, probabilities=probabilities
        )

    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": "..."}``, the OIP v2 error body."""

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status, headers=error.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 404:
            message = f"no route {request.method} {request.url.path}; see /v2/models/<name>/infer"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(error.detail)
        return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": f"invalid request: {error.errors()[:1]}"}, status_code=422)

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(error).__name__}); see the server log"}, 500)
