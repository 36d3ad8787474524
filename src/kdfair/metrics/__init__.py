"""Plain metric functions with fairlearn-style signatures (SPEC §4-§6); results are fractions unless noted.

* :mod:`kdfair.metrics.table`: ``METRICS``, the table of per-run metrics (inputs, direction, display) that
  drives the audit, the report's labels and the property tests.
* :mod:`kdfair.metrics.classwise`: accuracy, class accuracy, normalised class accuracy, disagreement,
  AUROC, F1.
* :mod:`kdfair.metrics.group`: demographic parity and equalized odds differences, DEO.
* :mod:`kdfair.metrics.individual`: the kNN graph, individual unfairness, consistency.
* :mod:`kdfair.metrics.counterfactual`: counterfactual unfairness and flip rate; diagnostics of kNN pairs.
"""

from kdfair.metrics.classwise import (
    accuracy,
    auroc,
    class_accuracy,
    disagreement_matrix,
    disagreement_rate,
    f1,
    normalized_class_accuracy,
)
from kdfair.metrics.counterfactual import (
    counterfactual_by_attribute,
    counterfactual_flip_rate,
    counterfactual_unfairness,
    knn_pair_diagnostics,
)
from kdfair.metrics.group import demographic_parity_difference, deo, deo_gaps, equalized_odds_difference
from kdfair.metrics.individual import consistency, individual_unfairness, knn_graph

__all__ = [
    "accuracy",
    "auroc",
    "class_accuracy",
    "consistency",
    "counterfactual_by_attribute",
    "counterfactual_flip_rate",
    "counterfactual_unfairness",
    "deo",
    "deo_gaps",
    "demographic_parity_difference",
    "disagreement_matrix",
    "disagreement_rate",
    "equalized_odds_difference",
    "f1",
    "individual_unfairness",
    "knn_graph",
    "knn_pair_diagnostics",
    "normalized_class_accuracy",
]
