"""Starting or joining a Ray cluster, with one-line errors for the ways it goes wrong."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from transferkit.errors import TransferKitError

INSTALL = "pip install 'transferkit[distributed]'"
CONNECT_TIMEOUT_S = 3.0
JOIN_WAIT_S = 5


class DistributedError(TransferKitError):
    """Ray is missing, a cluster cannot be reached, or the worker settings are invalid."""


def ray_module() -> Any:
    """Import Ray (Data and Train included), or say in one line which extra installs it."""
    try:
        import ray
        import ray.data
        import ray.train
    except ImportError as error:
        raise DistributedError(f"--workers runs on Ray, which is not installed ({error}); run: {INSTALL}") from None
    return ray


def check_workers(workers: int | None, ray_address: str | None = None) -> None:
    """Refuse worker counts below one (``None`` means "no Ray": the single-process path), and a cluster address
    without a worker count."""
    if workers is not None and workers < 1:
        raise DistributedError(f"--workers must be >= 1, got {workers}; leave it out to run in this process")
    if ray_address is not None and workers is None:
        raise DistributedError("--ray-address needs --workers N (how many workers to run on the cluster)")


def check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's minutes of retries, when ``host:port`` does not answer.

    ``auto`` is left to Ray, which answers at once when no cluster runs on this machine.
    """
    if address == "auto":
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    if parsed.scheme not in ("ray", "") or not parsed.hostname or parsed.port is None:
        raise DistributedError(f"--ray-address must be auto, ray://host:port or host:port, got {address!r}")
    fix = "check the address (`ray status` on the head node prints it) or leave --ray-address out for a local cluster"
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        reason = error.strerror or error
        raise DistributedError(f"cannot reach the Ray cluster at {address} ({reason}); {fix}") from None
    if parsed.scheme == "ray" and "://" in address and os.environ.get("RAY_USE_TLS", "0") in ("0", ""):
        problem = _client_problem(parsed.hostname, parsed.port)
        if problem:
            raise DistributedError(f"cannot reach the Ray cluster at {address}: {problem}; {fix}")


def _client_problem(host: str, port: int) -> str | None:
    """Ask the Ray Client server for a ping (what ``ray.init`` does, with minutes of retries) once, briefly:
    None when something Ray-like answers (an authentication refusal included), else what went wrong."""
    import grpc
    from ray.core.generated import ray_client_pb2, ray_client_pb2_grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        request = ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING)
        try:
            ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(request, timeout=CONNECT_TIMEOUT_S)
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                return None
            return f"no Ray Client server answers there ({error.code().name.lower()})"
    return None


@contextlib.contextmanager
def ray_cluster(workers: int, address: str | None = None, *, cpus_per_worker: int = 1) -> Iterator[Any]:
    """Yield the ``ray`` module connected to a cluster for ``workers`` workers.

    Without ``address``, a local cluster starts with ``workers * cpus_per_worker`` CPUs, bound to the loopback
    interface and without the dashboard, and stops on exit. With ``address`` (``auto``, ``ray://host:port``), the
    cluster is joined and left running. When Ray is already initialised (a test's shared cluster), it is used as it is.

    Raises:
        DistributedError: Ray missing, ``workers < 1``, or an unreachable address.
    """
    check_workers(workers)
    ray = ray_module()
    if address is not None:
        check_reachable(address)
    if ray.is_initialized():
        _quiet_data(ray)
        yield ray
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    quiet_logs = {"logging_level": logging.WARNING, "log_to_driver": False, "configure_logging": True}
    if address is None:
        options: dict[str, Any] = {
            "num_cpus": workers * cpus_per_worker,
            "include_dashboard": False,
            "_node_ip_address": "127.0.0.1",
        }
    else:
        options = {"address": address}
    try:
        with _short_join_wait(address):
            ray.init(**options, **quiet_logs)
    except (ConnectionError, RuntimeError, ValueError) as error:
        lines = str(error).strip().splitlines() or [type(error).__name__]
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise DistributedError(f"could not start or join {where}: {lines[0]}") from None
    _quiet_data(ray)
    try:
        yield ray
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _short_join_wait(address: str | None) -> Iterator[None]:
    """Joining a cluster, wait seconds for its control store (GCS) instead of Ray's default 20 (unless the user
    set the budget); starting a local cluster keeps Ray's default."""
    settings = {"RAY_gcs_server_port_wait_time_s": str(JOIN_WAIT_S)}
    added = [] if address is None else [name for name in settings if name not in os.environ]
    os.environ.update({name: settings[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _quiet_data(ray: Any) -> None:
    """Ray Data's own progress bars and status lines off (ours count rows), results in input order."""
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True
