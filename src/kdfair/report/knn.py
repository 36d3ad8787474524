"""Table 4's notes on the kNN pairs of individual fairness (SPEC §6): their space, what they share, and the
warning when they are not similar individuals. Used by the Table 4 table and its figure."""

from __future__ import annotations

from kdfair.audit.counterfactual import MIN_SAME_LABEL  # the audit's threshold for the pair warning
from kdfair.report.load import AuditData


def knn_notes(audit: AuditData) -> list[str]:
    """Table 4's notes on the kNN pairs: their space (the teacher's, where it is), what they share, and a
    warning when fewer than half share the true label."""
    fairness = audit.meta.get("individual_fairness") or {}
    k, space = fairness.get("k", 5), fairness.get("space")
    where = str(fairness.get("representation", "input"))
    if space == "teacher":
        prefix = "teacher features ("  # the audit's description: "teacher features (<run folder or file>)"
        if where.startswith(prefix) and where.endswith(")"):
            where = where[len(prefix) : -1]
        notes = [
            f"Neighbours: k = {k} nearest in the teacher's penultimate feature space ({where}), the same "
            "pairs for every model (SPEC §6). This favours the teacher: its own value is measured in its "
            "own feature space."
        ]
    else:
        notes = [f"Neighbours: k = {k} nearest in the '{where}' representation (SPEC §6)."]
    pairs = fairness.get("pairs")
    if pairs:
        groups = ", ".join(f"{a} {100 * v:.0f}%" for a, v in (pairs.get("same_group") or {}).items())
        notes.append(
            f"Pairs with the same true label: {100 * pairs['same_label']:.0f}%"
            + (f"; with the same protected group: {groups}." if groups else ".")
        )
        if pairs["same_label"] < MIN_SAME_LABEL:
            notes.append(
                "WARNING: fewer than half of these pairs share the true label, so the values measure "
                "accuracy, not fairness; see the counterfactual table or use the teacher's feature space."
            )
    return notes
