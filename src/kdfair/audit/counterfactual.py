"""The audit's pairs for individual fairness (SPEC §6): counterfactual twins, and diagnostics of kNN pairs.

Per run (:func:`run_pairs`, called by :func:`kdfair.audit.runmetrics.audit_run`):

- with a ``counterfactual.npz`` (:mod:`kdfair.counterfactual`): the twins per protected attribute changed,
  from which the table's ``needs_twins`` metrics (:mod:`kdfair.metrics.table`) give the rows
  ``counterfactual_unfairness`` (mean total variation between f(x) and f(x_cf)) and
  ``counterfactual_flip_rate`` (share of pairs whose predicted class flips) of ``run_metrics.csv``;
- for the kNN graph used (if any): the share of pairs with the same true label and with the same group.

Across runs (:func:`individual_fairness_info`, :func:`counterfactual_info`): ``audit.json``'s
``individual_fairness`` (the representation, whose space it is, the pair diagnostics, a note when kNN
individual fairness was skipped) and ``counterfactual`` (runs with twins, pairs per attribute). A warning
(``audit.json`` ``warnings``, the console, the report) says when fewer than half of the kNN pairs share the
label (the number then measures accuracy, not fairness), when some runs lack twin predictions, or when runs
were scored on different twins.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kdfair.counterfactual import COUNTERFACTUAL_NPZ, load_counterfactual
from kdfair.errors import KdfairWarning, PredictionFormatError
from kdfair.metrics.counterfactual import knn_pair_diagnostics
from kdfair.metrics.table import METRICS, TwinPairs
from kdfair.runfolder import REPRESENTATION_NPZ

if TYPE_CHECKING:
    from kdfair.audit.inputs import Reference
    from kdfair.audit.runmetrics import RunContext, RunResult

MIN_SAME_LABEL = 0.5  # warn when fewer than this share of the kNN pairs have the same true label
CF_METRICS = tuple(name for name, entry in METRICS.items() if entry.needs_twins)


def source_rows(source_id: np.ndarray, ref: Reference, where: Path) -> np.ndarray:
    """The reference row of each ``source_id``; PredictionFormatError naming one that is not a test id."""
    ordered = ref.sample_id[ref.sorter]
    kinds = {source_id.dtype.kind, ordered.dtype.kind}
    if len(kinds) > 1 and not kinds <= set("iu"):
        raise PredictionFormatError(
            f"{where}: 'source_id' is {source_id.dtype} but predictions.npz 'sample_id' is {ordered.dtype}"
        )
    position = np.clip(np.searchsorted(ordered, source_id), 0, len(ordered) - 1)
    found = ordered[position] == source_id
    if not found.all():
        missing = source_id[~found][0]
        raise PredictionFormatError(
            f"{where}: {int((~found).sum())} 'source_id' values are not sample ids of predictions.npz, "
            f"e.g. {missing.item()!r}"
        )
    return ref.sorter[position]


def run_pairs(run_dir: Path, ctx: RunContext) -> tuple[dict[str, TwinPairs], dict[str, Any]]:
    """One run's counterfactual twins per protected attribute changed (rows of the reference order, for
    the table's ``needs_twins`` metrics) and what the audit keeps about its pairs:
    ``{"counterfactual": {"fingerprint", "n_pairs"} or None, "knn_pairs": diagnostics or None}``.

    Raises PredictionFormatError on a bad counterfactual.npz.
    """
    ref = ctx.reference
    extras: dict[str, Any] = {"counterfactual": None, "knn_pairs": None}
    if ctx.neighbors is not None:
        extras["knn_pairs"] = knn_pair_diagnostics(
            ctx.neighbors[0], ref.y_true, sensitive_features=ref.attributes
        )
    twins = load_counterfactual(run_dir)
    if twins is None:
        return {}, extras
    if twins.n_classes != ref.n_classes:
        raise PredictionFormatError(
            f"{twins.path}: {twins.n_classes} classes, but predictions.npz has {ref.n_classes}"
        )
    rows = source_rows(twins.source_id, ref, twins.path)
    unknown = sorted(set(twins.attribute.tolist()) - set(ref.attributes))
    if unknown:
        warnings.warn(
            f"{COUNTERFACTUAL_NPZ} changes {', '.join(unknown)}, not a protected attribute of "
            "predictions.npz",
            KdfairWarning,
            stacklevel=2,
        )
    changed = np.asarray(twins.attribute).astype(str)
    if changed.shape != (len(rows),):
        raise PredictionFormatError(f"{twins.path}: 'attribute' must have one entry per twin")
    by_attribute = {
        name: TwinPairs(twins.probs[changed == name], rows[changed == name])
        for name in dict.fromkeys(changed.tolist())
    }
    n_pairs = {a: len(pairs.source_index) for a, pairs in by_attribute.items()}
    extras["counterfactual"] = {"fingerprint": twins.fingerprint(), "n_pairs": n_pairs}
    return by_attribute, extras


def representation_space(description: str, runs_dir: Path) -> str:
    """Which space the kNN pairs live in: ``teacher``, ``input`` (the sweep's standardised test inputs),
    ``file`` (an npz given by path) or ``none``."""
    if description == "none":
        return "none"
    if description.startswith("teacher features"):
        return "teacher"
    return "input" if Path(description) == Path(runs_dir) / REPRESENTATION_NPZ else "file"


def _skip_note(option: str) -> str:
    if option == "none":
        return "kNN individual fairness skipped (--representation none)"
    return (
        "kNN individual fairness skipped: no teacher run with a 'features' array (nor a checkpoint "
        "teacher's teacher_features_s<seed>.npz), and the default kNN "
        "space is the teacher's penultimate features (SPEC §6); use --representation input (the sweep's "
        "representation.npz) or PATH.npz to choose another space"
    )


def individual_fairness_info(ctx: RunContext, results: list[RunResult], runs_dir: Path) -> dict[str, Any]:
    """``audit.json``'s ``individual_fairness``: ``representation`` (where it came from), ``option`` (as
    given), ``space``, ``k``, ``pairs`` (diagnostics of the kNN pairs, or None) and ``note``. Warns when
    fewer than ``MIN_SAME_LABEL`` of the pairs share the true label."""
    space = representation_space(ctx.description, runs_dir)
    pairs = next((r.extras.get("knn_pairs") for r in results if r.extras.get("knn_pairs")), None)
    note = None
    if space == "none":
        note = _skip_note(ctx.option)  # the warning itself comes from resolve_representation
    elif space == "teacher":
        note = (
            "kNN pairs in the teacher's penultimate feature space (the same pairs for every model); this "
            "favours the teacher, whose own value is measured in its own space"
        )
    if pairs is not None and pairs["same_label"] < MIN_SAME_LABEL:
        warnings.warn(
            f"individual fairness: only {100 * pairs['same_label']:.0f}% of the kNN pairs ({space} space) "
            "have the same true label; the kNN individual unfairness and consistency then measure accuracy, "
            "not fairness (SPEC §6); prefer counterfactual twins or the teacher's feature space",
            KdfairWarning,
            stacklevel=2,
        )
    return {
        "representation": ctx.description,
        "option": ctx.option,
        "space": space,
        "k": ctx.k,
        "pairs": pairs,
        "note": note,
    }


def counterfactual_info(results: list[RunResult]) -> dict[str, Any]:
    """``audit.json``'s ``counterfactual``: ``n_runs`` with twin predictions (of ``n_runs_total``),
    ``pairs`` per attribute (of the first such run) and ``runs_without`` (folder names). Warns when only
    some runs have twins, or when runs were scored on different twins."""
    with_twins = [r for r in results if r.extras.get("counterfactual")]
    info: dict[str, Any] = {"n_runs": len(with_twins), "n_runs_total": len(results), "pairs": {}}
    info["runs_without"] = []
    if not with_twins:
        return info
    info["runs_without"] = [r.run_dir.name for r in results if not r.extras.get("counterfactual")]
    first = with_twins[0].extras["counterfactual"]
    info["pairs"] = first["n_pairs"]
    if info["runs_without"]:
        shown = ", ".join(info["runs_without"][:5]) + (" ..." if len(info["runs_without"]) > 5 else "")
        warnings.warn(
            f"counterfactual metrics cover {len(with_twins)} of {len(results)} runs: no "
            f"{COUNTERFACTUAL_NPZ} in {shown}",
            KdfairWarning,
            stacklevel=2,
        )
    fingerprint = first["fingerprint"]
    differing = [
        r.run_dir.name for r in with_twins if r.extras["counterfactual"]["fingerprint"] != fingerprint
    ]
    if differing:
        warnings.warn(
            f"counterfactual twins differ between runs ({', '.join(differing[:5])} vs "
            f"{with_twins[0].run_dir.name}); their counterfactual metrics are not comparable",
            KdfairWarning,
            stacklevel=2,
        )
    return info


def console_lines(info: dict[str, Any]) -> list[str]:
    """Lines for the console summary: the kNN space and its pair diagnostics, and the twins."""
    lines = []
    fairness = info.get("individual_fairness") or {}
    if fairness.get("space") and fairness["space"] != "none":
        pairs = fairness.get("pairs") or {}
        groups = ", ".join(f"{a} {100 * v:.0f}%" for a, v in (pairs.get("same_group") or {}).items())
        space = "the teacher's feature" if fairness["space"] == "teacher" else f"the {fairness['space']}"
        line = f"individual fairness: k = {fairness.get('k')} nearest neighbours in {space} space"
        if pairs:
            line += f"; pairs with the same label {100 * pairs['same_label']:.0f}%"
            line += f", with the same group: {groups}" if groups else ""
        lines.append(line)
        if pairs and pairs["same_label"] < MIN_SAME_LABEL:
            lines.append(
                f"  WARNING: only {100 * pairs['same_label']:.0f}% of the kNN pairs share the true label: "
                "the kNN individual unfairness and consistency measure accuracy here, not fairness"
            )
    if fairness.get("note"):
        lines.append(f"  note: {fairness['note']}")
    twins = info.get("counterfactual") or {}
    if twins.get("n_runs"):
        pairs = ", ".join(f"{a} {n}" for a, n in twins["pairs"].items())
        lines.append(
            f"counterfactual twins: {twins['n_runs']} of {twins['n_runs_total']} runs; "
            f"pairs per attribute: {pairs}"
        )
    return lines


def twin_attributes(info: dict[str, Any]) -> list[str]:
    """The protected attributes the audited twins change (empty without twin predictions)."""
    return list((info.get("counterfactual") or {}).get("pairs") or {})


def summary_entries(value: Callable[[str, str], Any], info: dict[str, Any]) -> dict[str, Any]:
    """A condition's ``--json`` table entries: mean counterfactual unfairness and flip rate per attribute
    changed; ``value(metric, attribute)`` reads the condition's summary mean."""
    attributes = twin_attributes(info)
    return {metric: {a: value(metric, a) for a in attributes} for metric in CF_METRICS}


def console_header(info: dict[str, Any]) -> list[str]:
    """Console table columns: counterfactual unfairness (TV, a fraction) and flips (%) per attribute."""
    attributes = twin_attributes(info)
    return [f"CF TV {a}" for a in attributes] + [f"CF flips {a} %" for a in attributes]


def console_cells(row: dict[str, Any], info: dict[str, Any]) -> list[str]:
    """The cells of :func:`console_header` for one row of the ``--json`` table, in the table's units."""
    attributes = twin_attributes(info)
    return [
        "-" if row[m][a] is None else f"{METRICS[m].scale * row[m][a]:.{METRICS[m].decimals}f}"
        for m in CF_METRICS
        for a in attributes
    ]
