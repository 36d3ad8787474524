"""The Ray executor: each unit is a Ray remote task running :func:`kdfair.sweep.worker.run_unit`.

``address`` joins a running cluster (``ray.init(address)``, e.g. ``"auto"`` or ``"ray://host:10001"``);
without it a local instance starts with ``workers`` CPUs and no dashboard. Each task asks for
``threads_per_worker(workers)`` CPUs, and for one GPU only with ``--device cuda`` (Ray then sets
``CUDA_VISIBLE_DEVICES``); without ``--device cuda`` the tasks train on the CPU, even on GPU nodes, since
they hold no GPU. Tasks print one line per epoch, which Ray forwards to the driver's console. The
scheduler submits a DS unit only after its teacher's task has finished, so a failed teacher is reported
once and its students are not started. Works offline: the environment variables below keep Ray from
packaging a uv environment and from reporting usage.
"""

from __future__ import annotations

import os
from typing import Any

from kdfair.errors import ConfigError
from kdfair.sweep.expand import Unit
from kdfair.sweep.worker import run_unit, threads_per_worker

OFFLINE_ENV = {"RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0", "RAY_USAGE_STATS_ENABLED": "0"}


class RayBackend:
    """Submits units as Ray tasks and waits on their ObjectRefs."""

    def __init__(
        self, workers: int, address: str | None, device: str | None, progress: bool | str = False
    ) -> None:
        for key, value in OFFLINE_ENV.items():
            os.environ.setdefault(key, value)
        import ray

        self.ray = ray
        self.started_here = not ray.is_initialized()
        if self.started_here:
            if address:
                ray.init(address=address, log_to_driver=True)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=True)
        self.threads = threads_per_worker(workers) if not address else 1
        gpus = 1 if device == "cuda" else 0
        if gpus and ray.cluster_resources().get("GPU", 0) < 1:
            self.close()
            raise ConfigError("--device cuda with --executor ray, but the Ray cluster has no GPU")
        cluster_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        cpus = min(self.threads, cluster_cpus)
        self.capacity = max(1, cluster_cpus // cpus)
        self.remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_unit)
        self.device = "cuda" if gpus else "cpu"  # a task without a GPU must not pick one up by itself
        self.progress = progress

    def submit(self, unit: Unit) -> Any:
        return self.remote.remote(unit, self.device, self.threads, self.progress)

    def wait(self, handles: list[Any]) -> list[tuple[Any, BaseException | None]]:
        ready, _ = self.ray.wait(handles, num_returns=1)
        out: list[tuple[Any, BaseException | None]] = []
        for ref in ready:
            try:
                self.ray.get(ref)
                out.append((ref, None))
            except self.ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
                out.append((ref, cause))
            except self.ray.exceptions.RayError as exc:  # worker died, object lost, ...
                out.append((ref, exc))
        return out

    def close(self) -> None:
        if self.started_here and self.ray.is_initialized():
            self.ray.shutdown()
