"""Connecting the driver to Ray (an in-process local instance, or an existing cluster by address)
and fitting each run's resource request to what the cluster has. Harness layer, under runner.py.
"""

import math
import os
from dataclasses import dataclass


class ResourceError(RuntimeError):
    """The runs ask for resources no node of the cluster has (Ray would leave them pending)."""


@dataclass
class Connection:
    address: str
    dashboard_url: str | None
    started_here: bool  # a local instance this driver started (and must stop)
    owned: bool         # ray.init was called here (ray.shutdown at the end)


def thread_environment(harness):
    """The BLAS/OpenMP thread counts every Ray worker starts with: their pools size themselves
    at import, before a trial could pin them, and idle pools spin on the cores other runs need."""
    from harness.trial import THREAD_VARIABLES

    threads = str(max(1, int(float(harness["cpus_per_run"]))))
    return {name: threads for name in THREAD_VARIABLES}


def resolve_address(harness):
    return harness.get("ray_address") or os.environ.get("RAY_ADDRESS") or "local"


def connect(harness):
    """Join Ray once per driver. A connection made by the caller (tests, notebooks) is reused."""
    address = resolve_address(harness)
    if address == "local" and harness.get("local_only", True):
        # Read by ray at import: bind every Ray port to 127.0.0.1 instead of the node's address.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if address != "local":
        _enable_token_auth_if_available()  # before ray is imported: it reads the mode then
    import ray

    if ray.is_initialized():
        context = ray.get_runtime_context()
        return Connection(address=context.gcs_address, dashboard_url=_dashboard_url(ray),
                          started_here=False, owned=False)
    if address == "local":
        # The local instance's workers (prestarted with it) inherit the driver's environment.
        os.environ.update(thread_environment(harness))
        kwargs = {"num_cpus": harness.get("num_cpus") or os.cpu_count(),
                  "include_dashboard": bool(harness.get("dashboard", True)),
                  "dashboard_host": "127.0.0.1"}
        if harness.get("ray_temp_dir"):
            kwargs["_temp_dir"] = os.path.abspath(harness["ray_temp_dir"])
        context = ray.init(address="local", log_to_driver=True, **kwargs)
        return Connection(address=context.address_info["gcs_address"],
                          dashboard_url=_url(context.dashboard_url), started_here=True, owned=True)
    runtime_env = {"env_vars": thread_environment(harness)}
    if harness.get("ship_code"):
        runtime_env["py_modules"] = _project_modules()
    context = ray.init(address=address, runtime_env=runtime_env)
    return Connection(address=address, dashboard_url=_url(context.dashboard_url),
                      started_here=False, owned=True)


def disconnect(connection):
    import ray

    if connection.owned and ray.is_initialized():
        ray.shutdown()


def _enable_token_auth_if_available():
    """Ray enables token auth on clusters started by `ray start`, but a driver joining by an
    explicit address stays in 'disabled' mode unless told; use the token when one is present."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.exists(token_path):
        os.environ["RAY_AUTH_MODE"] = "token"


def _project_modules():
    import conf
    import engine
    import harness
    import kernels_c
    import kernels_triton

    return [conf, engine, harness, kernels_c, kernels_triton]


def _dashboard_url(ray):
    try:
        from ray._private.worker import global_worker

        return _url(global_worker.node.address_info.get("webui_url"))
    except (AttributeError, ImportError):
        return None


def _url(address):
    if not address:
        return None
    return address if address.startswith("http") else f"http://{address}"


@dataclass
class Request:
    num_cpus: float
    num_gpus: float
    device: str  # the engine device the run will use (cuda may fall back to cpu)


def fit_requests(runs, harness):
    """Per run, the Ray resources and device, checked against the live nodes once."""
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    max_cpus = max((node.get("CPU", 0.0) for node in nodes), default=0.0)
    max_gpus = max((node.get("GPU", 0.0) for node in nodes), default=0.0)
    cpus = float(harness["cpus_per_run"])
    if cpus > max_cpus:
        raise ResourceError(f"harness.cpus_per_run={cpus:g} but the largest node has "
                            f"{max_cpus:g} CPUs")
    requests = {}
    for run in runs:
        device = run.config["device"]["name"]
        gpus = harness.get("gpus_per_run")
        gpus = float(gpus if gpus is not None else (1 if device == "cuda" else 0))
        if gpus > max_gpus:
            if harness.get("cuda_fallback") != "cpu":
                raise ResourceError(
                    f"run {run.name} asks for {gpus:g} GPU(s) (harness.gpus_per_run, device="
                    f"{device}) but the largest node has {max_gpus:g}; set "
                    "harness.cuda_fallback=cpu to run on the CPU instead")
            gpus, device = 0.0, ("cpu" if device == "cuda" else device)
        requests[run.run_id] = Request(num_cpus=cpus, num_gpus=gpus, device=device)
    return requests


def capacity(requests):
    """How many runs fit on the cluster at once (the driver keeps that many tasks in flight)."""
    import ray

    total = ray.cluster_resources()
    fits = []
    for request in requests.values():
        slots = math.floor(total.get("CPU", 0.0) / request.num_cpus + 1e-9)
        if request.num_gpus:
            slots = min(slots, math.floor(total.get("GPU", 0.0) / request.num_gpus + 1e-9))
        fits.append(slots)
    return max(1, min(fits, default=1))
