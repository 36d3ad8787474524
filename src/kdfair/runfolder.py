"""The names of a run folder's prediction files, in one place (the ground floor: imports nothing of kdfair).

A run folder holds ``run.json`` and one predictions file: ``predictions.npz``, or the same columns as a table
in ``predictions.parquet`` or ``predictions.csv``; each protected attribute is an array or column
``attr_<name>``. :mod:`kdfair.predictions` reads and checks them, :mod:`kdfair.prediction_tables` reads the
tables, :mod:`kdfair.discovery` finds the folders.
"""

from __future__ import annotations

RUN_JSON = "run.json"
PREDICTIONS_NPZ = "predictions.npz"
PREDICTIONS_PARQUET = "predictions.parquet"
PREDICTIONS_CSV = "predictions.csv"
PREDICTION_FILES = (PREDICTIONS_NPZ, PREDICTIONS_PARQUET, PREDICTIONS_CSV)  # a run folder holds one of them
ATTR_PREFIX = "attr_"  # attr_<name>: a protected attribute's array (npz) or column (tables)
DONE = "DONE"  # a sweep run's completion marker, written last by the trainer (kdfair.train.rundir)
REPRESENTATION_NPZ = "representation.npz"  # a sweep's standardised test inputs (--representation input)

AUDIT_FOLDER = "audit"  # <runs_dir>/audit: where `kdfair audit RUNS_DIR` writes by default
AUDIT_JSON = "audit.json"  # an audit folder's metadata and recorded options (kdfair.audit.write)
