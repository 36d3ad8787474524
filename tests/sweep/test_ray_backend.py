"""The Ray backend's resource requests, on a stand-in ``ray`` module (no Ray instance is started):
a GPU per task only with ``--device cuda``; without it tasks are told to train on the CPU."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from kdfair.errors import ConfigError


class FakeRay:
    """Records ``ray.init``, ``ray.remote`` options and task submissions."""

    def __init__(self, gpus: int) -> None:
        self.gpus, self.initialized = gpus, False
        self.init_kwargs: dict[str, Any] = {}
        self.remote_kwargs: dict[str, Any] = {}
        self.submitted: list[tuple] = []

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **kwargs: Any) -> None:
        self.initialized, self.init_kwargs = True, kwargs

    def shutdown(self) -> None:
        self.initialized = False

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 4.0, "GPU": float(self.gpus)}

    def remote(self, **kwargs: Any):  # noqa: ANN201
        self.remote_kwargs = kwargs
        submitted = self.submitted

        class Task:
            def remote(self, *args: Any) -> str:
                submitted.append(args)
                return "ref"

        return lambda function: Task()


@pytest.fixture
def ray_for(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    def install(gpus: int) -> FakeRay:
        fake = FakeRay(gpus)
        monkeypatch.setitem(sys.modules, "ray", fake)
        monkeypatch.setattr("kdfair.sweep.worker.available_cores", lambda: 4)
        return fake

    return install


@pytest.mark.parametrize("device", [None, "cpu"])
def test_without_device_cuda_tasks_ask_for_no_gpu_and_train_on_the_cpu(ray_for, device: str | None) -> None:
    from kdfair.sweep.ray_backend import RayBackend

    fake = ray_for(gpus=2)  # even on a cluster with GPUs
    backend = RayBackend(2, None, device, "lines")
    assert fake.init_kwargs["num_cpus"] == 2 and fake.remote_kwargs == {
        "num_cpus": 2,
        "num_gpus": 0,
        "max_retries": 0,
    }
    backend.submit("unit")  # type: ignore[arg-type]
    assert fake.submitted == [("unit", "cpu", 2, "lines")]  # device, threads, a progress line per epoch
    assert backend.capacity == 2
    backend.close()
    assert not fake.initialized


def test_device_cuda_asks_each_task_for_one_gpu(ray_for) -> None:
    from kdfair.sweep.ray_backend import RayBackend

    fake = ray_for(gpus=1)
    backend = RayBackend(4, None, "cuda", False)
    assert fake.remote_kwargs["num_gpus"] == 1
    backend.submit("unit")  # type: ignore[arg-type]
    assert fake.submitted == [("unit", "cuda", 1, False)]


def test_device_cuda_on_a_cluster_without_gpus_is_an_error(ray_for) -> None:
    from kdfair.sweep.ray_backend import RayBackend

    fake = ray_for(gpus=0)
    with pytest.raises(ConfigError, match="the Ray cluster has no GPU"):
        RayBackend(2, None, "cuda")
    assert not fake.initialized
