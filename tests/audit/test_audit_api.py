"""The audit from Python (kdfair.audit.api): runs in memory give the CLI's files, with the CLI's checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audit_helpers import load_npz

from kdfair.audit import AuditResult, Run, audit_predictions
from kdfair.cli import main
from kdfair.errors import PredictionFormatError
from kdfair.report.load import load_audit
from kdfair.synthetic import make_synthetic_sweep

PATH_KEYS = ("runs_dir", "reference_run")  # audit.json entries that name folders, which differ by design


@pytest.fixture(scope="module")
def shuffled_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes, 120 samples, 2 seeds, T = 2, two attributes, each run's rows in its own order."""
    root = tmp_path_factory.mktemp("api_sweep")
    make_synthetic_sweep(
        root,
        n_classes=4,
        n_samples=120,
        seeds=[0, 1],
        temperatures=[2],
        attributes={"group": 2, "region": 3},
        seed=5,
        shuffle_rows=True,
    )
    return root


def runs_in_memory(sweep: Path) -> list[Run]:
    """Every run folder of ``sweep`` as a :class:`Run` named like its folder."""
    runs = []
    for folder in sorted((sweep / "runs").iterdir()):
        meta = json.loads((folder / "run.json").read_text())
        arrays = load_npz(folder / "predictions.npz")
        attributes = {k.removeprefix("attr_"): v for k, v in arrays.items() if k.startswith("attr_")}
        data = {k: v for k, v in arrays.items() if not k.startswith("attr_")}
        runs.append(Run(**meta, **data, attributes=attributes, name=folder.name))
    return runs


def tidy_frame(runs: list[Run], list_column: bool = False) -> pd.DataFrame:
    """One row per (run, sample): run.json's fields, then the columns of predictions.csv."""
    frames = []
    for run in runs:
        frame = pd.DataFrame(
            {
                "role": run.role,
                "seed": run.seed,
                "method": run.method,
                "temperature": run.temperature,
                "alpha": run.alpha,
                "sample_id": run.sample_id,
                "y_true": run.y_true,
            }
        )
        logits = np.asarray(run.logits)
        if list_column:
            frame["logits"] = list(logits)
        else:
            frame = frame.join(pd.DataFrame(logits, columns=[f"logit_{c}" for c in range(logits.shape[1])]))
        frame = frame.assign(**{f"attr_{k}": v for k, v in run.attributes.items()})
        features = np.asarray(run.features)
        frame = frame.join(pd.DataFrame(features, columns=[f"feature_{j}" for j in range(features.shape[1])]))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=0)  # rows in any order


def _without_paths(info: dict) -> dict:
    info = {k: v for k, v in info.items() if k not in PATH_KEYS}
    info["conditions"] = [{k: v for k, v in c.items() if k != "run_dirs"} for c in info["conditions"]]
    return info


def test_api_writes_the_files_of_the_cli(
    shuffled_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", str(shuffled_sweep), "--out", str(tmp_path / "cli")]) == 0
    capsys.readouterr()
    result = audit_predictions(runs_in_memory(shuffled_sweep))
    assert isinstance(result, AuditResult)
    assert result.write(tmp_path / "api") == tmp_path / "api"
    cli, api = tmp_path / "cli", tmp_path / "api"
    files = sorted(str(p.relative_to(cli)) for p in cli.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(api)) for p in api.rglob("*") if p.is_file())
    assert len([f for f in files if f.endswith(".csv")]) == 11
    for name in files:
        if name.endswith(".csv"):  # every table, byte for byte
            assert (api / name).read_bytes() == (cli / name).read_bytes(), name
        elif name.endswith(".npy"):
            np.testing.assert_array_equal(np.load(api / name), np.load(cli / name))
    cli_info = json.loads((cli / "audit.json").read_text())
    api_info = json.loads((api / "audit.json").read_text())
    assert _without_paths(api_info) == _without_paths(cli_info)
    assert api_info["runs_dir"] == "<memory>" and api_info["reference_run"] == "<memory>/teacher_s0"
    assert api_info["conditions"][0]["run_dirs"] == ["<memory>/teacher_s0", "<memory>/teacher_s1"]
    assert api_info["individual_fairness"]["representation"] == "teacher features (teacher_s0)"
    # the tables as DataFrames are those written; the folder is one kdfair report reads
    pd.testing.assert_frame_equal(result.tables["summary"], result.summary)
    assert set(result.tables) == {f.removesuffix(".csv") for f in files if f.endswith(".csv")}
    assert load_audit(api).n_classes == 4


def test_tidy_dataframe_gives_the_same_tables(shuffled_sweep: Path) -> None:
    runs = runs_in_memory(shuffled_sweep)
    expected = audit_predictions(runs, permutations=99)
    forked = audit_predictions(runs, permutations=99, jobs=2)  # workers see the runs in memory at the fork
    for name, table in expected.tables.items():
        pd.testing.assert_frame_equal(forked.tables[name], table, obj=name)
    for frame in (tidy_frame(runs), tidy_frame(runs, list_column=True)):
        got = audit_predictions(frame, permutations=99)
        for name, table in expected.tables.items():
            pd.testing.assert_frame_equal(got.tables[name], table, obj=name)
        assert got.info["n_runs"] == 6 and got.info["attributes"] == {
            "group": ["0", "1"],
            "region": ["0", "1", "2"],
        }


def test_defaults_names_and_sample_order(shuffled_sweep: Path) -> None:
    """Without sample ids the row order is the sample order; default names are the trainer's folder names."""
    runs = runs_in_memory(shuffled_sweep)
    ordered = []
    for run in runs:
        order = np.argsort(run.sample_id)
        ordered.append(
            Run(
                role=run.role,
                seed=run.seed,
                temperature=run.temperature,
                alpha=run.alpha,
                y_true=np.asarray(run.y_true)[order],
                logits=np.asarray(run.logits)[order],
                features=np.asarray(run.features)[order],
                attributes={k: np.asarray(v)[order] for k, v in run.attributes.items()},
            )
        )
    got, expected = audit_predictions(ordered, permutations=0), audit_predictions(runs, permutations=0)
    pd.testing.assert_frame_equal(got.run_metrics, expected.run_metrics)
    assert got.info["conditions"][2]["run_dirs"] == ["<memory>/ds_kd_T2_a0.8_s0", "<memory>/ds_kd_T2_a0.8_s1"]


def _cli_error(sweep: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["audit", str(sweep), "--out", str(sweep / "out")]) == 2
    return capsys.readouterr().err.strip().removeprefix("kdfair audit: error: ")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"logits": "nan"}, "'logits' has NaN or inf values in 1 rows"),
        ({"y_true": "short"}, "'y_true' has shape (119,), expected (120,) to match 'logits'"),
        ({"y_true": "out of range"}, "'y_true' has labels outside [0, 4) (min 0, max 4)"),
        (
            {"attr_group": "one group"},
            "protected attribute 'group' has only one group ('0'); it needs at least two",
        ),
    ],
)
def test_bad_arrays_give_the_cli_message(
    shuffled_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict, needle: str
) -> None:
    """The same defect in memory and in a run folder: the same message, after the run's name."""
    runs = runs_in_memory(shuffled_sweep)
    index = next(i for i, r in enumerate(runs) if r.name == "nds_s1")
    arrays = load_npz(shuffled_sweep / "runs" / "nds_s1" / "predictions.npz")
    key, what = next(iter(change.items()))
    bad = arrays[key].copy()
    if what == "nan":
        bad[5, 1] = np.nan
    elif what == "short":
        bad = bad[:-1]
    elif what == "out of range":
        bad[bad.argmax()] = 4
    else:
        bad[:] = 0
    folder = tmp_path / "sweep"
    shutil.copytree(shuffled_sweep, folder)
    np.savez(folder / "runs" / "nds_s1" / "predictions.npz", **{**arrays, key: bad})
    cli_message = _cli_error(folder, capsys)
    assert cli_message == f"{folder / 'runs' / 'nds_s1' / 'predictions.npz'}: {needle}"
    run = runs[index]
    if key.startswith("attr_"):
        runs[index] = Run(**{**vars(run), "attributes": {**run.attributes, key[5:]: bad}})
    else:
        runs[index] = Run(**{**vars(run), key: bad})
    with pytest.raises(PredictionFormatError) as raised:
        audit_predictions(runs)
    assert str(raised.value) == f"<memory>/nds_s1: {needle}"


def test_runs_that_disagree_and_bad_fields(shuffled_sweep: Path) -> None:
    runs = runs_in_memory(shuffled_sweep)
    moved = [
        Run(**{**vars(r), "sample_id": np.asarray(r.sample_id) + 1}) if r.name == "nds_s0" else r
        for r in runs
    ]
    with pytest.raises(
        PredictionFormatError, match=r"runs <memory>/teacher_s0 and <memory>/nds_s0 have different sample ids"
    ):
        audit_predictions(moved)
    with pytest.raises(
        PredictionFormatError, match=r"runs\[0\] \(role 'student', seed 0\): role: unknown role 'student'"
    ):
        audit_predictions([Run(**{**vars(runs[0]), "role": "student", "name": None})])
    with pytest.raises(PredictionFormatError, match="needs exactly one of 'logits' or 'probs'"):
        audit_predictions([Run(**{**vars(runs[0]), "probs": np.full((120, 4), 0.25)})])
    with pytest.raises(PredictionFormatError, match=r"runs\[0\] and runs\[1\] are both named 'teacher_s1'"):
        audit_predictions([runs[-1], runs[-1]])
    with pytest.raises(PredictionFormatError, match=r"runs\[0\]: unknown field\(s\) logit"):
        audit_predictions([{"role": "nds", "seed": 0, "y_true": [0, 1], "logit": [[0.0, 1.0], [1.0, 0.0]]}])
    ids = np.array([1, "b"] * 60, dtype=object)
    with pytest.raises(PredictionFormatError, match=r"'sample_id' holds int, str values \(dtype object\)"):
        audit_predictions([Run(**{**vars(runs[0]), "sample_id": ids})])
    with pytest.raises(
        PredictionFormatError, match="representation 'input' reads RUNS_DIR/representation.npz"
    ):
        audit_predictions(runs, representation="input")


def test_tidy_dataframe_errors(shuffled_sweep: Path) -> None:
    frame = tidy_frame(runs_in_memory(shuffled_sweep)[:2])
    with pytest.raises(PredictionFormatError, match="DataFrame: missing column 'seed'"):
        audit_predictions(frame.drop(columns="seed"))
    with pytest.raises(PredictionFormatError, match="unknown column\\(s\\) 'atr_sex'"):
        audit_predictions(frame.assign(atr_sex="f"))
    with pytest.raises(PredictionFormatError, match="column 'logit_1' must hold numbers, got str"):
        audit_predictions(frame.assign(logit_1="x"))


def test_import_stays_light() -> None:
    """``import kdfair.audit`` (and ``kdfair --help``) loads neither pandas nor the engine."""
    code = "import sys, kdfair.audit; print('pandas' in sys.modules, 'kdfair.audit.engine' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
