"""Write a synthetic audit folder (docs/ARCHITECTURE.md, "Audit output") with known values, for report tests
and ``benchmarks/bench_report.py``.

Per-seed metric values are drawn at random (or set through ``overrides``) and returned, so a test
can recompute every table cell independently. ``summary.csv`` holds their mean and std (ddof = 1); class
tests are real Welch tests on the written normalised class accuracies; counts and BH follow from them.
audit.json's ``conditions`` and ``settings`` (data set, models by condition, common and per-condition run
settings) are made by the audit engine's own functions from the runs' ``run.json`` contents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from kdfair.audit.conditions import group_conditions
from kdfair.audit.tables import collect_settings
from kdfair.convergence import criterion_info
from kdfair.degenerate import rule_info
from kdfair.predictions import RunMeta
from kdfair.synthetic import run_id

PLAIN_METRICS = ("accuracy", "auroc", "f1", "individual_unfairness", "consistency")
ATTRIBUTE_METRICS = ("dpd", "eod", "deo_mean", "deo_max")
Key = tuple[str, str, str]  # (condition, metric, attribute)


@dataclass
class SyntheticAudit:
    path: Path
    conditions: list[dict]
    per_seed: dict[Key, list[float]] = field(default_factory=dict)
    class_tests: pd.DataFrame | None = None
    counts: pd.DataFrame | None = None


TEACHER_MODEL, STUDENT_MODEL, DATASET, EPOCHS, DEVICE = "resnet56", "resnet20", "cifar10", 3, "cpu"


def _run_metas(temperatures, methods, alphas, seeds) -> list[tuple[Path, RunMeta]]:
    """The run.json of every run the audit would have read (teacher, NDS, DS per method x alpha x T)."""
    common = {"epochs": EPOCHS, "device": DEVICE, "batch_size": 128, "precision": "fp32"}
    runs = []
    for seed in seeds:
        specs = [dict(role="teacher", model=TEACHER_MODEL), dict(role="nds", model=STUDENT_MODEL)]
        specs += [
            dict(role="ds", model=STUDENT_MODEL, method=m, temperature=float(t), alpha=float(a))
            for m in methods
            for a in alphas
            for t in temperatures
        ]
        for spec in specs:
            lr = 0.1 if spec["role"] == "teacher" else 0.05
            meta = RunMeta(seed=seed, dataset=DATASET, settings={**common, "lr": lr}, **spec)
            name = run_id(meta.role, seed, str(meta.method), meta.temperature, meta.alpha or 0.0)
            runs.append((Path("runs") / name, meta))
    return runs


def _conditions(temperatures, methods, alphas, seeds) -> tuple[list[dict], dict]:
    """audit.json's ``conditions`` and ``settings``, made by the audit engine's own functions."""
    conditions = group_conditions(_run_metas(temperatures, methods, alphas, seeds))
    return [c.describe() for c in conditions], collect_settings(conditions)


def _metric_values(conditions, seeds, attributes, rng, overrides) -> dict[Key, list[float]]:
    values: dict[Key, list[float]] = {}
    for i, cond in enumerate(conditions):
        keys = [(cond["id"], m, "") for m in PLAIN_METRICS]
        keys += [(cond["id"], m, a) for a in attributes for m in ATTRIBUTE_METRICS]
        for key in keys:
            centre = {"accuracy": 0.7, "auroc": 0.85, "f1": 0.75, "individual_unfairness": 0.3}.get(
                key[1], 0.1
            )
            spread = rng.uniform(0.001, 0.02)
            values[key] = list(np.clip(centre + 0.003 * i + spread * rng.standard_normal(len(seeds)), 0, 1))
    values.update({k: list(v) for k, v in (overrides or {}).items()})
    return values


def _long_tables(conditions, seeds, values) -> tuple[pd.DataFrame, pd.DataFrame]:
    by_id = {c["id"]: c for c in conditions}
    rows, summary = [], []
    for (cid, metric, attribute), seed_values in values.items():
        c = by_id[cid]
        ident = {k: c[k] for k in ("role", "method", "temperature", "alpha")}
        for seed, v in zip(seeds, seed_values, strict=True):
            rows.append(dict(condition=cid, **ident, seed=seed, metric=metric, attribute=attribute, value=v))
        arr = np.asarray(seed_values, dtype=float)
        std = float(arr.std(ddof=1)) if len(arr) > 1 else float("nan")
        summary.append(
            dict(
                condition=cid,
                **ident,
                metric=metric,
                attribute=attribute,
                n_seeds=len(arr),
                mean=arr.mean(),
                std=std,
            )
        )
    return pd.DataFrame(rows), pd.DataFrame(summary)


def _class_accuracy(conditions, seeds, n_classes, values, rng, shifted) -> dict[str, np.ndarray]:
    """condition -> (n_seeds, C) class accuracies; DS conditions get a shift on the ``shifted`` classes."""
    base = rng.uniform(0.4, 0.95, n_classes)
    out = {}
    for i, cond in enumerate(conditions):
        acc = base + 0.02 * rng.standard_normal((len(seeds), n_classes))
        if cond["role"] == "ds":
            acc[:, shifted] += 0.05 * (1 + i % 3)
        if cond["role"] == "teacher":
            acc += 0.05
        out[cond["id"]] = np.clip(acc, 0.0, 1.0)
    return out


def _class_tests(conditions, accuracy, run_accuracy, n_classes, level) -> pd.DataFrame:
    norm = {cid: acc / np.asarray(run_accuracy[cid])[:, None] for cid, acc in accuracy.items()}
    rows = []
    for cond in (c for c in conditions if c["role"] == "ds"):
        for comparison, ref in (("nds_vs_ds", "nds"), ("teacher_vs_ds", "teacher")):
            a, b = norm[ref], norm[cond["id"]]
            undefined = (a.var(axis=0) == 0) & (b.var(axis=0) == 0)
            p = stats.ttest_ind(a, b, equal_var=False, axis=0).pvalue
            p = np.where(undefined | np.isnan(p), 1.0, p)
            p_bh = stats.false_discovery_control(p, method="bh")
            for c in range(n_classes):
                rows.append(
                    dict(
                        comparison=comparison,
                        condition=cond["id"],
                        **{"class": c},
                        p_value=float("nan") if undefined[c] else p[c],
                        p_value_bh=float("nan") if undefined[c] else p_bh[c],
                        significant=bool(p[c] <= level and not undefined[c]),
                        significant_bh=bool(p_bh[c] <= level and not undefined[c]),
                        mean_change=float(b[:, c].mean() - a[:, c].mean()),
                        undefined=bool(undefined[c]),
                    )
                )
    return pd.DataFrame(rows)


def _counts(conditions, tests, n_classes, level, seeds) -> pd.DataFrame:
    rows = []
    for cond in (c for c in conditions if c["role"] == "ds"):
        mine = tests[tests["condition"] == cond["id"]]
        nds, teacher = mine[mine["comparison"] == "nds_vs_ds"], mine[mine["comparison"] == "teacher_vs_ds"]
        rows.append(
            dict(
                condition=cond["id"],
                method=cond["method"],
                temperature=cond["temperature"],
                alpha=cond["alpha"],
                sc=int(nds["significant"].sum()),
                sc_bh=int(nds["significant_bh"].sum()),
                tc=int(teacher["significant"].sum()),
                tc_bh=int(teacher["significant_bh"].sum()),
                n_classes=n_classes,
                level=level,
                n_seeds=len(seeds),
            )
        )
    return pd.DataFrame(rows)


def _disagreement(path: Path, conditions, n_classes, rng) -> pd.DataFrame:
    rows = []
    for cond in (c for c in conditions if c["role"] != "teacher"):
        matrix = rng.poisson(3.0, (n_classes, n_classes)).astype(np.float64)
        np.fill_diagonal(matrix, 0.0)
        np.save(path / "disagreement" / f"{cond['id']}.npy", matrix)
        rate = np.minimum(matrix.sum(axis=1) / (100.0 + 4.0 * n_classes), 1.0)
        rows += [dict(condition=cond["id"], **{"class": c}, rate=rate[c]) for c in range(n_classes)]
    return pd.DataFrame(rows)


def write_synthetic_audit(
    path: Path,
    *,
    n_classes: int = 10,
    temperatures: tuple[float, ...] = (1, 2, 4),
    seeds: tuple[int, ...] = (0, 1, 2),
    methods: tuple[str, ...] = ("kd",),
    alphas: tuple[float, ...] = (0.8,),
    attributes: dict[str, list[str]] | None = None,
    overrides: dict[Key, list[float]] | None = None,
    warnings: list[str] | None = None,
    settings: dict | None = None,
    shifted_classes: tuple[int, ...] = (1, 3),
    rng_seed: int = 0,
    level: float = 0.05,
) -> SyntheticAudit:
    """Write a full audit folder into ``path`` and return the values it holds."""
    rng = np.random.default_rng(rng_seed)
    attributes = {"color": ["red", "blue"]} if attributes is None else attributes
    path.mkdir(parents=True, exist_ok=True)
    (path / "disagreement").mkdir(exist_ok=True)
    conditions, real_settings = _conditions(temperatures, methods, alphas, seeds)
    values = _metric_values(conditions, seeds, attributes, rng, overrides)
    run_metrics, summary = _long_tables(conditions, seeds, values)
    run_metrics.to_csv(path / "run_metrics.csv", index=False)
    summary.to_csv(path / "summary.csv", index=False)
    accuracy = _class_accuracy(conditions, seeds, n_classes, values, rng, list(shifted_classes))
    run_accuracy = {c["id"]: values[(c["id"], "accuracy", "")] for c in conditions}
    pd.DataFrame(
        [
            dict(
                condition=cid,
                seed=s,
                **{"class": c},
                accuracy=acc[j, c],
                normalized_accuracy=acc[j, c] / run_accuracy[cid][j],
            )
            for cid, acc in accuracy.items()
            for j, s in enumerate(seeds)
            for c in range(n_classes)
        ]
    ).to_csv(path / "class_accuracy.csv", index=False)
    tests = _class_tests(conditions, accuracy, run_accuracy, n_classes, level)
    tests.to_csv(path / "class_tests.csv", index=False)
    counts = _counts(conditions, tests, n_classes, level, seeds)
    counts.to_csv(path / "significance_counts.csv", index=False)
    _disagreement(path, conditions, n_classes, rng).to_csv(path / "disagreement_rate.csv", index=False)
    meta = {
        "kdfair_version": "0.1.0",
        "runs_dir": str(path.parent / "runs"),
        "n_runs": len(conditions) * len(seeds),
        "n_classes": n_classes,
        "class_names": [f"class_{c}" for c in range(n_classes)],
        "attributes": attributes,
        "level": level,
        "n_seeds": {c["id"]: len(seeds) for c in conditions},
        "conditions": conditions,
        "settings": settings if settings is not None else real_settings,
        "individual_fairness": {"representation": "input", "k": 5},
        "warnings": warnings if warnings is not None else ["class 7: Welch test undefined (zero variance)"],
        # kdfair.audit.health: nothing degenerate, no learning curves
        "degenerate": {**rule_info(), "conditions": {}},
        "convergence": {**criterion_info(), "conditions": {}},
    }
    (path / "audit.json").write_text(json.dumps(meta, indent=2))
    return SyntheticAudit(path=path, conditions=conditions, per_seed=values, class_tests=tests, counts=counts)
