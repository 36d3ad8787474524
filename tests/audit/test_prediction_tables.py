"""predictions.csv and predictions.parquet: the same tables as predictions.npz, the same one-line errors,
and ``kdfair convert`` to the npz form."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audit_helpers import load_npz, rewrite_npz

from kdfair.cli import main
from kdfair.errors import PredictionFormatError
from kdfair.extras import MissingExtraError
from kdfair.predictions import load_predictions
from kdfair.synthetic import make_synthetic_sweep


@pytest.fixture(scope="module")
def npz_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes, 120 samples, 2 seeds, T = 2; float64 logits and features, so CSV text holds them exactly."""
    root = tmp_path_factory.mktemp("tables")
    runs = make_synthetic_sweep(
        root, n_classes=4, n_samples=120, seeds=[0, 1], temperatures=[2], seed=11, logit_dtype="float64"
    )
    for run in runs:
        rewrite_npz(run, features=load_npz(run / "predictions.npz")["features"].astype(np.float64))
    return root


def as_table(arrays: dict[str, np.ndarray], list_columns: bool = False) -> pd.DataFrame:
    """The documented column layout of an npz's arrays."""
    frame = pd.DataFrame({"sample_id": arrays["sample_id"], "y_true": arrays["y_true"]})
    for name, family in (("logits", "logit"), ("features", "feature")):
        if list_columns:
            frame[name] = list(arrays[name])
        else:
            columns = [f"{family}_{i}" for i in range(arrays[name].shape[1])]
            frame = frame.join(pd.DataFrame(arrays[name], columns=columns))
    return frame.assign(**{k: v for k, v in arrays.items() if k.startswith("attr_")})


def to_tables(sweep: Path, target: Path, form: str) -> Path:
    """A copy of ``sweep`` whose runs hold ``predictions.<csv|parquet>`` instead of the npz."""
    shutil.copytree(sweep, target)
    for folder in sorted((target / "runs").iterdir()):
        npz = folder / "predictions.npz"
        arrays = load_npz(npz)
        npz.unlink()
        if form == "csv":
            as_table(arrays).to_csv(folder / "predictions.csv", index=False)
        else:  # alternate the two Parquet layouts: per-class columns and list columns
            as_table(arrays, list_columns=folder.name.endswith("s1")).to_parquet(
                folder / "predictions.parquet"
            )
    return target


def _audit(folder: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, bytes]:
    assert main(["audit", str(folder), "--out", str(out), "--permutations", "99"]) == 0
    capsys.readouterr()
    return {p.name: p.read_bytes() for p in out.glob("*.csv")}


@pytest.mark.parametrize("form", ["csv", "parquet"])
def test_tables_audit_like_npz(
    npz_sweep: Path, tmp_path: Path, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _audit(npz_sweep, tmp_path / "npz_audit", capsys)
    got = _audit(to_tables(npz_sweep, tmp_path / form, form), tmp_path / f"{form}_audit", capsys)
    assert len(expected) == 11 and got == expected
    run = load_predictions(tmp_path / form / "runs" / "nds_s0")
    reference = load_predictions(npz_sweep / "runs" / "nds_s0")
    np.testing.assert_array_equal(run.probs, reference.probs)
    assert run.attribute_levels == reference.attribute_levels


# ---- bad tables: one line naming the file and the problem, exit 2, nothing written ----


@pytest.fixture
def csv_run(npz_sweep: Path, tmp_path: Path) -> Path:
    """A writable copy of the sweep in CSV form; returns the folder of the run the tests break."""
    return to_tables(npz_sweep, tmp_path / "sweep", "csv") / "runs" / "nds_s1"


def _fails(run: Path, capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    sweep = run.parent.parent
    assert main(["audit", str(sweep)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == "", captured.err
    assert lines[0].startswith(f"kdfair audit: error: {run}")
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not (sweep / "audit").exists()


def _rewrite_csv(run: Path, change) -> None:
    frame = pd.read_csv(run / "predictions.csv")
    change(frame).to_csv(run / "predictions.csv", index=False)


def test_truncated_csv(csv_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = csv_run / "predictions.csv"
    text = path.read_text()
    path.write_text(text[: text.rindex(",", 0, len(text) - 40)])  # cut inside the last row
    _fails(
        csv_run,
        capsys,
        "predictions.csv: the last row has no value for",
        "'attr_group' and the file does not end with a newline: the file looks truncated",
    )


def test_missing_column(csv_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _rewrite_csv(csv_run, lambda f: f.drop(columns="y_true"))
    _fails(csv_run, capsys, "predictions.csv: missing column 'y_true' (has: sample_id, attr_group, logit_0..")
    _rewrite_csv(csv_run, lambda f: f.assign(y_true=0).drop(columns="logit_2"))
    _fails(
        csv_run, capsys, "column 'logit_2' is missing: per-class columns run logit_0..logit_3 without gaps"
    )


def test_non_numeric_logit(csv_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame["logit_1"] = frame["logit_1"].astype(object)
        frame.loc[7, "logit_1"] = "abc"
        return frame

    _rewrite_csv(csv_run, change)
    _fails(csv_run, capsys, "predictions.csv: column 'logit_1' is not numeric (row 7 holds 'abc')")


def test_nan_text_is_checked_as_in_npz(csv_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``nan`` and ``inf`` in a CSV are numbers, refused by the npz's check with the npz's message."""

    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame["logit_0"] = frame["logit_0"].astype(object)
        frame.loc[3, "logit_0"], frame.loc[9, "logit_0"] = "nan", "-inf"
        return frame

    _rewrite_csv(csv_run, change)
    _fails(csv_run, capsys, "predictions.csv: 'logits' has NaN or inf values in 2 rows")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda f: f.assign(atr_sex="f"), "unknown column(s) 'atr_sex'; expected sample_id, y_true,"),
        (lambda f: f.assign(y_true=f["y_true"] + 0.5), "'y_true' must be integer class indices, got float64"),
        (lambda f: f.assign(sample_id=0), "'sample_id' values are not unique"),
        (lambda f: f.assign(prob_0=0.5), "needs exactly one of 'logits' or 'probs'"),
    ],
)
def test_other_bad_csv(csv_run: Path, capsys: pytest.CaptureFixture[str], change, needle: str) -> None:
    _rewrite_csv(csv_run, change)
    _fails(csv_run, capsys, needle)


def test_parquet_with_the_wrong_schema(csv_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = pd.read_csv(csv_run / "predictions.csv")
    (csv_run / "predictions.csv").unlink()
    parquet = csv_run / "predictions.parquet"
    frame.assign(y_true=frame["y_true"].astype(str)).to_parquet(parquet)  # class indices stored as text
    _fails(csv_run, capsys, "predictions.parquet: column 'y_true' must hold integer class indices, got str")
    frame.assign(logit_3=frame["logit_3"].astype(str)).to_parquet(parquet)  # text where floats belong
    _fails(csv_run, capsys, "predictions.parquet: column 'logit_3' must hold numbers, got str")
    logits = frame[[f"logit_{c}" for c in range(4)]].to_numpy()
    table = frame.drop(columns=[f"logit_{c}" for c in range(4)])
    table.assign(logits=[row[: 3 + (i % 2)] for i, row in enumerate(logits)]).to_parquet(parquet)
    _fails(csv_run, capsys, "list column 'logits' needs one list of the same length in every row")
    parquet.write_bytes(parquet.read_bytes()[:-100])
    _fails(csv_run, capsys, "predictions.parquet: not a readable Parquet file")


def test_one_predictions_file_per_run(
    csv_run: Path, npz_sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(npz_sweep / "runs" / "nds_s1" / "predictions.npz", csv_run)
    _fails(csv_run, capsys, "has predictions.npz, predictions.csv; a run folder holds one predictions file")


def test_parquet_without_pyarrow_names_the_extra(
    csv_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.read_csv(csv_run / "predictions.csv")
    (csv_run / "predictions.csv").unlink()
    frame.to_parquet(csv_run / "predictions.parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtraError) as raised:
        load_predictions(csv_run)
    assert str(raised.value) == (
        'reading predictions.parquet needs pyarrow, which is not installed: pip install "kdfair[parquet]"'
    )


# ---- kdfair convert ----


def test_convert_writes_the_same_arrays(
    npz_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = to_tables(npz_sweep, tmp_path / "sweep", "parquet")
    run = sweep / "runs" / "ds_kd_T2_a0.8_s1"  # a list-column Parquet file
    assert main(["convert", str(run / "predictions.parquet")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {run / 'predictions.npz'} from predictions.parquet (120 samples, 4 classes, logits" in out
    assert "note: 1 folder(s) now hold a table and predictions.npz" in out
    got, expected = (
        load_npz(run / "predictions.npz"),
        load_npz(npz_sweep / "runs" / run.name / "predictions.npz"),
    )
    assert sorted(got) == sorted(expected)
    for key, values in expected.items():
        np.testing.assert_array_equal(got[key], values, err_msg=key)
    assert main(["audit", str(sweep)]) == 2  # two predictions files in one folder
    assert "a run folder holds one predictions file" in capsys.readouterr().err
    assert main(["convert", str(run / "predictions.parquet")]) == 2
    assert "predictions.npz: exists; pass --force to overwrite it" in capsys.readouterr().err
    # a whole runs folder, replacing the tables: the audit then reads npz files only
    assert main(["convert", str(sweep), "--replace", "--force"]) == 0
    assert capsys.readouterr().out.count("; removed the table") == 6
    assert not list(sweep.rglob("predictions.parquet")) and len(list(sweep.rglob("predictions.npz"))) == 6
    assert main(["audit", str(sweep), "--permutations", "0"]) == 0
    assert json.loads((sweep / "audit" / "audit.json").read_text())["n_runs"] == 6
    capsys.readouterr()


def test_convert_refuses_a_bad_table(csv_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _rewrite_csv(csv_run, lambda f: f.drop(columns="sample_id"))
    assert main(["convert", str(csv_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"kdfair convert: error: {csv_run / 'predictions.csv'}: missing column 'sample_id' "
        "(has: y_true, attr_group, logit_0..logit_3, feature_0..feature_15)"
    )
    assert not (csv_run / "predictions.npz").exists()
    with pytest.raises(SystemExit) as help_exit:
        main(["convert", "--help"])
    assert help_exit.value.code == 0
    assert "--replace" in capsys.readouterr().out
    with pytest.raises(PredictionFormatError):
        load_predictions(csv_run)
