"""``kdfair sweep --export-runs DIR`` writes each planned run's resolved config (the input of the DDP entry
point under torchrun) and trains nothing."""

from __future__ import annotations

import json
from pathlib import Path

from sweep_helpers import TINY, run_cli, write_config

from kdfair.sweep.config import load_sweep_config
from kdfair.sweep.expand import expand
from kdfair.train.config import parse_run_config


def test_export_runs_round_trips_every_run_config(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, TINY)
    status, out, err = run_cli(
        "sweep", str(config_path), "--out", str(tmp_path / "out"), "--export-runs", str(tmp_path / "runs")
    )
    assert status == 0, err
    planned = {run.run_id: run for run in expand(load_sweep_config(config_path), tmp_path / "out").runs}
    exported = sorted((tmp_path / "runs").glob("*.json"))
    assert sorted(p.stem for p in exported) == sorted(planned)
    for path in exported:
        assert parse_run_config(json.loads(path.read_text()), str(path)) == planned[path.stem]
    assert not (tmp_path / "out" / "runs").exists()
    assert f"wrote {len(planned)} run configs" in out
