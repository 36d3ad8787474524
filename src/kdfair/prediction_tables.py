"""Predictions as a table: ``predictions.csv``, ``predictions.parquet`` and the Python API's DataFrames.

One row per test sample, in columns (README, "Prediction format"):

==============================================  =====================================================
``sample_id``                                   int or str, unique
``y_true``                                      int class index in [0, C)
``logit_0`` .. ``logit_{C-1}``                  float, one column per class; or ``prob_0`` ..
                                                ``prob_{C-1}`` (rows sum to 1); exactly one of the two
``logits`` or ``probs``                         instead of the columns above: one list column of C floats
                                                per row (Parquet and DataFrames; CSV has no lists)
``attr_<name>``                                 int or str, one column per protected attribute
``feature_0`` .. ``feature_{d-1}``              float, optional (or one list column ``features``)
==============================================  =====================================================

Any other column is an error: a typo such as ``atr_sex`` would otherwise drop an attribute without a word.
A table becomes the arrays of ``predictions.npz`` (:func:`frame_arrays`), which
:func:`kdfair.predictions.validate_arrays` checks exactly as it checks an npz. The files are read by pandas
(CSV) and pyarrow (Parquet); this module only maps columns to arrays.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from kdfair.errors import PredictionFormatError
from kdfair.extras import require
from kdfair.runfolder import ATTR_PREFIX

# column family -> (npz array it becomes, its list-column name); per-class columns are <family>_<index>
FAMILIES = {"logit": "logits", "prob": "probs", "feature": "features"}
_INDEXED = re.compile(r"^(logit|prob|feature)_(0|[1-9][0-9]*)$")


def read_table(path: Path) -> dict[str, np.ndarray]:
    """The arrays of ``predictions.csv`` or ``predictions.parquet`` in the npz layout (not yet validated)."""
    if path.suffix == ".parquet":
        return frame_arrays(_read_parquet(path), path)
    return frame_arrays(_read_csv(path), path, text=True)


def _read_parquet(path: Path) -> pd.DataFrame:
    require("pyarrow", f"reading {path.name}")
    import pyarrow as pa

    try:
        return pd.read_parquet(path, engine="pyarrow")
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise PredictionFormatError(
            f"{path}: not a readable Parquet file ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from exc


def _read_csv(path: Path) -> pd.DataFrame:
    """The CSV as text-faithful columns: only an empty field is missing ("NA" may be an attribute level)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # a row longer than the header
            frame = pd.read_csv(path, index_col=False, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError as exc:
        raise PredictionFormatError(f"{path}: empty CSV file (no header)") from exc
    except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError, OSError) as exc:
        raise PredictionFormatError(
            f"{path}: not a readable CSV file ({type(exc).__name__}: {str(exc).strip().splitlines()[-1]})"
        ) from exc
    if len(frame) and frame.iloc[-1].isna().any() and not _ends_with_newline(path):
        empty = [str(c) for c in frame.columns[frame.iloc[-1].isna().to_numpy()]]
        raise PredictionFormatError(
            f"{path}: the last row has no value for {_names(empty)} and the file does not end with a "
            "newline: the file looks truncated"
        )
    return frame


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return False
        handle.seek(-1, 2)
        return handle.read(1) in (b"\n", b"\r")


def _names(columns: Iterable[str], limit: int = 6) -> str:
    """``'a', 'b', ...`` with at most ``limit`` names and a count of the rest."""
    columns = list(columns)
    shown = ", ".join(f"'{c}'" for c in columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")


def describe_columns(columns: Iterable[str]) -> str:
    """The columns of a table in short: per-class families as ``logit_0..logit_9``."""
    plain, indexed = [], {}
    for column in map(str, columns):
        match = _INDEXED.match(column)
        if match:
            indexed.setdefault(match.group(1), []).append(int(match.group(2)))
        else:
            plain.append(column)
    ranges = [f"{f}_{min(i)}..{f}_{max(i)}" if len(i) > 1 else f"{f}_{i[0]}" for f, i in indexed.items()]
    return ", ".join(plain + ranges)


def frame_arrays(frame: pd.DataFrame, where: str | Path, *, text: bool = False) -> dict[str, np.ndarray]:
    """The npz arrays of a predictions table (module docstring); ``where`` prefixes errors.

    ``text``: the table was read from CSV, so a number column that pandas left as text (it holds ``nan`` or
    something that is not a number) is converted, and a value that is not a number is named. A Parquet file
    or DataFrame has types, and a text column where numbers belong is a schema error.
    """
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise PredictionFormatError(f"{where}: duplicate column names")
    unknown = [
        c
        for c in columns
        if c not in ("sample_id", "y_true", *FAMILIES.values())
        and not c.startswith(ATTR_PREFIX)
        and not _INDEXED.match(c)
    ]
    if unknown:
        raise PredictionFormatError(
            f"{where}: unknown column(s) {_names(unknown)}; expected sample_id, y_true, logit_<class> or "
            "prob_<class> (or a list column logits or probs), attr_<name>, optional feature_<j> or features"
        )
    for key in ("sample_id", "y_true"):
        if key not in columns:
            raise PredictionFormatError(f"{where}: missing column '{key}' (has: {describe_columns(columns)})")
    arrays = {"sample_id": _labels(frame["sample_id"], "sample_id", where)}
    arrays["y_true"] = _class_indices(frame["y_true"], where)
    for family, array in FAMILIES.items():
        matrix = _matrix(frame, family, array, where, text)
        if matrix is not None:
            arrays[array] = matrix
    if "logits" not in arrays and "probs" not in arrays:
        raise PredictionFormatError(
            f"{where}: needs logit_0..logit_<C-1> or prob_0..prob_<C-1> columns, or a list column 'logits' "
            f"or 'probs' (has: {describe_columns(columns)})"
        )
    for column in columns:
        if column.startswith(ATTR_PREFIX):
            arrays[column] = _labels(frame[column], column, where)
    return arrays


def _missing(series: pd.Series, column: str, where: str | Path) -> None:
    missing = series.isna().to_numpy()
    if missing.any():
        raise PredictionFormatError(
            f"{where}: column '{column}' has {int(missing.sum())} missing value(s) "
            f"(first in row {int(np.argmax(missing))})"
        )


def _labels(series: pd.Series, column: str, where: str | Path) -> np.ndarray:
    """Ids or group labels: numbers (integers as int64) or strings."""
    _missing(series, column, where)
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.int64 if pd.api.types.is_integer_dtype(series) else None)
    return label_array(series.to_numpy(dtype=object), column, where)


def label_array(values: np.ndarray, name: str, where: str | Path) -> np.ndarray:
    """``values`` (ids or group labels) with an array of Python objects of one kind turned into that kind:
    all ``str`` -> a numpy string array, all ``int`` -> int64; mixed kinds are an error naming ``name``."""
    if not values.dtype.hasobject:
        return values
    kinds = {type(v) for v in values.ravel()}
    if all(issubclass(k, str) for k in kinds):
        return values.astype(str)
    if all(issubclass(k, (int, np.integer)) and not issubclass(k, (bool, np.bool_)) for k in kinds):
        return values.astype(np.int64)
    names = ", ".join(sorted(k.__name__ for k in kinds))
    raise PredictionFormatError(f"{where}: '{name}' holds {names} values (dtype object); expected int or str")


def _class_indices(series: pd.Series, where: str | Path) -> np.ndarray:
    _missing(series, "y_true", where)
    if pd.api.types.is_integer_dtype(series):
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series.to_numpy()  # validate_arrays names the dtype
    raise PredictionFormatError(
        f"{where}: column 'y_true' must hold integer class indices, got {series.dtype}"
    )


def _matrix(
    frame: pd.DataFrame, family: str, list_column: str, where: str | Path, text: bool
) -> np.ndarray | None:
    """The (N, k) matrix of ``<family>_0..<family>_{k-1}`` or of the list column; None when neither exists."""
    indices = sorted(
        int(m.group(2)) for c in map(str, frame.columns) if (m := _INDEXED.match(c)) and m.group(1) == family
    )
    if indices and list_column in frame.columns:
        raise PredictionFormatError(
            f"{where}: has both {family}_<index> columns and a list column '{list_column}'"
        )
    if list_column in frame.columns:
        return _stack(frame[list_column], list_column, where)
    if not indices:
        return None
    absent = sorted(set(range(indices[-1] + 1)) - set(indices))
    if absent:
        raise PredictionFormatError(
            f"{where}: column '{family}_{absent[0]}' is missing: per-class columns run "
            f"{family}_0..{family}_{indices[-1]} without gaps"
        )
    return np.column_stack([_numbers(frame[f"{family}_{i}"], f"{family}_{i}", where, text) for i in indices])


def _numbers(series: pd.Series, column: str, where: str | Path, text: bool) -> np.ndarray:
    """A float column; CSV text columns are converted by numpy's float parser (``nan`` and ``inf`` too)."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy()
        return values if np.issubdtype(values.dtype, np.floating) else values.astype(np.float64)
    if text and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=object)
        try:
            return values.astype(np.float64)
        except (TypeError, ValueError):
            row = next(i for i, v in enumerate(values) if not _is_number(v))
            raise PredictionFormatError(
                f"{where}: column '{column}' is not numeric (row {row} holds {values[row]!r})"
            ) from None
    raise PredictionFormatError(f"{where}: column '{column}' must hold numbers, got {series.dtype}")


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _stack(series: pd.Series, column: str, where: str | Path) -> np.ndarray:
    """A list column (one sequence of floats per row) as an (N, k) float matrix."""
    _missing(series, column, where)
    try:
        rows = [np.asarray(v) for v in series.to_numpy(dtype=object)]
    except (TypeError, ValueError) as exc:
        raise PredictionFormatError(f"{where}: list column '{column}' is unreadable ({exc})") from exc
    widths = {r.shape for r in rows}
    if len(widths) > 1 or any(r.ndim != 1 for r in rows):
        raise PredictionFormatError(
            f"{where}: list column '{column}' needs one list of the same length in every row "
            f"(lengths: {sorted({len(r) if r.ndim == 1 else -1 for r in rows})[:5]})"
        )
    dtype = np.result_type(*{r.dtype for r in rows}) if rows else np.float64
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_):
        raise PredictionFormatError(f"{where}: list column '{column}' must hold numbers, got {dtype}")
    matrix = np.stack(rows) if rows else np.empty((0, 0))
    return matrix if np.issubdtype(matrix.dtype, np.floating) else matrix.astype(np.float64)
