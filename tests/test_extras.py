"""The optional extras: a missing one is named in one line; the audit and the report run without torch (the
core install) and give the same tables as with it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kdfair.cli import main
from kdfair.extras import MissingExtraError, missing_extra, optional, require
from kdfair.metrics.individual import knn_graph
from kdfair.predictions import softmax
from kdfair.synthetic import make_synthetic_sweep

INSTALL = 'pip install "kdfair[{}]"'
EXTRA_MODULES = ("torch", "torchvision", "timm", "transformers", "tokenizers", "ray")
# Python code that makes every module of an extra fail to import, as in an environment without them
BLOCK_EXTRAS = f"""
import importlib.abc, sys
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in {EXTRA_MODULES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name.partition(".")[0])
sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch):
    """``without("torch", ...)``: importing these modules fails from now on, as if not installed."""

    # scipy.stats asks at import time whether arrays are torch tensors, reading sys.modules["torch"]: a None
    # there (this fixture's block) breaks it, where a real missing torch (no entry) does not. Import it first.
    import scipy.stats  # noqa: F401

    def block(*modules: str) -> None:
        for module in modules:
            monkeypatch.setitem(sys.modules, module, None)  # import raises ModuleNotFoundError(name=module)

    return block


@pytest.mark.parametrize(
    ("module", "distribution", "extra"),
    [
        ("torch", "torch", "train"),
        ("torchvision", "torchvision", "train"),
        ("timm", "timm", "train"),
        ("PIL", "pillow", "train"),
        ("transformers", "transformers", "text"),
        ("tokenizers", "tokenizers", "text"),
        ("ray", "ray", "ray"),
    ],
)
def test_require_names_the_extra_in_one_line(without, module: str, distribution: str, extra: str) -> None:
    without(module)
    with pytest.raises(MissingExtraError) as raised:
        require(module, "training")
    assert (
        str(raised.value) == f"training needs {distribution}, which is not installed: {INSTALL.format(extra)}"
    )
    assert optional(module) is None


def test_only_a_missing_extra_is_named() -> None:
    assert missing_extra(ModuleNotFoundError("No module named 'torch'", name="torch")) is not None
    # torch is there but broken, another package is missing, or a name is missing from a module
    assert missing_extra(ModuleNotFoundError("No module named 'torch._C'", name="torch._C")) is None
    assert missing_extra(ModuleNotFoundError("No module named 'yaml'", name="yaml")) is None
    assert missing_extra(ImportError("cannot import name 'x' from 'torch'", name="torch")) is None
    assert optional("json") is not None and require("json", "x").dumps(1) == "1"


@pytest.mark.parametrize("command", [["sweep", "any.yaml"], ["demo"], ["sweep", "any.yaml", "--dry-run"]])
def test_training_commands_without_torch_say_which_extra(
    without, command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    without("torch")
    argv = [*command, "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    expected = (
        f"kdfair {command[0]}: error: training needs torch, which is not installed: {INSTALL.format('train')}"
    )
    assert err == expected + "\n"


def test_ray_executor_without_ray_says_which_extra(without) -> None:
    from kdfair.sweep.executors import _make_backend

    without("ray")
    with pytest.raises(
        MissingExtraError, match=r'^--executor ray needs ray, .*: pip install "kdfair\[ray\]"$'
    ):
        _make_backend("ray", 2, None, None, None)


def test_any_command_that_meets_a_missing_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A module of an extra imported deep inside a command (a text model's transformers) is named too."""

    def needs(name: str):
        def run(args) -> int:
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)

        return run

    monkeypatch.setattr("kdfair.report.cli.run", needs("transformers"))
    assert main(["report", "somewhere"]) == 2
    expected = "kdfair report: error: this command needs transformers, which is not installed: "
    assert capsys.readouterr().err == expected + INSTALL.format("text") + "\n"
    monkeypatch.setattr("kdfair.report.cli.run", needs("not_an_extra"))
    with pytest.raises(ModuleNotFoundError):  # a bug, not a missing extra: the traceback stays
        main(["report", "somewhere"])


@pytest.mark.parametrize(("n", "dim", "k"), [(10, 2, 3), (300, 5, 5), (2_000, 16, 5), (1_100, 3, 1)])
def test_knn_graph_without_torch_finds_the_same_neighbours(without, n: int, dim: int, k: int) -> None:
    rng = np.random.default_rng(n)
    points = rng.normal(size=(n, dim))
    points[1] = points[0]  # a duplicate: a neighbour at distance 0, ties broken by index
    with_torch = knn_graph(points, k)
    without("torch")
    assert optional("torch") is None
    indices, distances = knn_graph(points, k)
    np.testing.assert_array_equal(indices, with_torch[0])
    np.testing.assert_array_equal(distances, with_torch[1])


def test_float16_logits_without_torch_give_the_same_probabilities(without) -> None:
    logits = np.random.default_rng(0).normal(scale=4, size=(700, 9)).astype(np.float16)
    with_torch = softmax(logits)
    without("torch")
    np.testing.assert_array_equal(softmax(logits), with_torch)
    assert with_torch.dtype == np.float32


def test_audit_and_report_without_any_extra_match_the_audit_with_them(tmp_path: Path) -> None:
    """The core install's audit (numpy kNN graph, numpy float16 cast) writes the same tables, and the report
    is built, in a process where no module of an extra can be imported."""
    runs = tmp_path / "runs"
    make_synthetic_sweep(
        runs, n_classes=6, n_samples=900, seeds=[0, 1], temperatures=[1, 4], logit_dtype="float16", seed=3
    )
    assert main(["audit", str(runs), "--out", str(tmp_path / "with")]) == 0
    script = BLOCK_EXTRAS + textwrap.dedent(f"""
        from kdfair.cli import main
        assert main(["audit", {str(runs)!r}, "--out", {str(tmp_path / "without")!r}]) == 0
        assert main(["report", {str(tmp_path / "without")!r}, "--out", {str(tmp_path / "report")!r}]) == 0
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {EXTRA_MODULES!r})
        assert not loaded, loaded
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    tables = sorted(p.relative_to(tmp_path / "with") for p in (tmp_path / "with").rglob("*") if p.is_file())
    compared = [t for t in tables if t.suffix in (".csv", ".npy")]
    assert len(compared) > 5
    for table in compared:
        assert (tmp_path / "without" / table).read_bytes() == (tmp_path / "with" / table).read_bytes(), table
    assert (tmp_path / "report" / "index.html").is_file()
