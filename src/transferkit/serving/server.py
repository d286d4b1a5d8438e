"""Running the service with uvicorn: in the foreground (``transferkit serve``) or on a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from transferkit.errors import TransferKitError
from transferkit.serving.app import create_app
from transferkit.serving.config import ServeConfig
from transferkit.serving.models import load_served_models


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port), for uvicorn to listen on.

    Binding here rather than in uvicorn turns a busy port into a one-line error, and lets a caller that asked
    for port 0 learn the port before the server starts (``sock.getsockname()[1]``).

    Raises:
        TransferKitError: The address cannot be bound (port in use, unknown host).
    """
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, protocol)
    except (OSError, UnicodeError) as error:
        raise TransferKitError(f"cannot listen on {host}:{port} ({error}); check --host") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise TransferKitError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); choose another --port"
        ) from None
    return sock


def _uvicorn_server(app, *, log_level: str = "warning"):
    import uvicorn

    config = uvicorn.Config(
        app, log_level=log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=5, server_header=False
    )
    return uvicorn.Server(config)


def serve(
    model_paths: Sequence[str | Path],
    config: ServeConfig | None = None,
    *,
    announce: Callable[[str], None] = print,
) -> None:
    """Load the models and serve them until interrupted (Ctrl-C or SIGTERM).

    uvicorn finishes the requests in flight, then re-raises the signal: Ctrl-C returns, SIGTERM ends the
    process as SIGTERM does.

    Raises:
        TransferKitError: A folder is missing or not a model, two folders share a name, or the port is busy.
    """
    config = config or ServeConfig()
    models = load_served_models(model_paths)
    sock = bind_socket(config.host, config.port)
    port = sock.getsockname()[1]
    server = _uvicorn_server(create_app(models, config))
    batching = (
        f"dynamic batching up to {config.max_merge} inputs a call, waiting {config.max_wait_ms:g} ms"
        if config.batches else "no batching"
    )  # fmt: skip
    names = ", ".join(f"{name} ({model.modality} {model.task})" for name, model in models.items())
    host = f"[{config.host}]" if ":" in config.host else config.host
    announce(
        f"serving {names} at http://{host}:{port}/v2/models/<name>/infer; {batching}; "
        f"{'API key required' if config.api_key else 'no API key'}; Ctrl-C stops"
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down gracefully, then re-raised Ctrl-C: a normal way to stop
        announce("stopped")
    finally:
        sock.close()


@contextmanager
def running(
    model_paths: Sequence[str | Path], config: ServeConfig | None = None, *, timeout: float = 60.0
) -> Iterator[str]:
    """Serve the models on a background thread while the block runs; yields the base URL.

    With ``config.port == 0`` (the default here) the server takes any free port. For tests, notebooks and
    benchmarks; the server stops (and its port closes) when the block ends.
    """
    config = config or ServeConfig(port=0)
    models = load_served_models(model_paths)
    sock = bind_socket(config.host, config.port)
    server = _uvicorn_server(create_app(models, config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="transferkit-serve", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise TransferKitError(f"the server did not start within {timeout:g} s")
            time.sleep(0.01)
        host, port = sock.getsockname()[:2]
        yield f"http://{f'[{host}]' if ':' in host else host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
