"""kdfair's hand-written metric paths against the well-kept library that does the same, on the same data.

Each pair must agree (the script exits 1 if not); the table gives the median seconds of ``--repeat`` calls
after a warm-up, and the ratio. A hand-written path stays only where it is faster at the audit's sizes, or
the library is not a core dependency (scikit-learn is a test dependency only). Usage::

    python benchmarks/bench_handwritten.py             # reduced sizes (about a minute)
    python benchmarks/bench_handwritten.py --full      # the audit benchmark's sizes: 50,000 x 1,000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import special
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score
from sklearn.neighbors import NearestNeighbors

from kdfair.metrics.classwise import auroc, disagreement_matrix, f1
from kdfair.metrics.individual import knn_graph
from kdfair.predictions import softmax


def seconds(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall seconds of ``repeat`` calls after one warm-up, and the last result."""
    result = call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def sklearn_knn(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's exact kNN (its default algorithm choice), the point itself dropped."""
    distances, indices = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    return indices[:, 1:], distances[:, 1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="50,000 samples x 1,000 classes, kNN of 50,000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--knn-dim", type=int, default=16, help="columns of the kNN representation (audit: <= 128)"
    )
    parser.add_argument("--only", default="", help="run only the computations whose name starts with this")
    args = parser.parse_args()
    n, classes, knn_n = (50_000, 1_000, 50_000) if args.full else (20_000, 100, 10_000)
    rng = np.random.default_rng(0)
    y_true = np.arange(n) % classes
    logits = (rng.normal(size=(n, classes)) + 2.0 * np.eye(classes)[y_true]).astype(np.float32)
    probs = softmax(logits)
    y_pred = probs.argmax(axis=1)
    teacher = np.where(rng.random(n) < 0.8, y_pred, rng.integers(0, classes, n))
    points = rng.normal(size=(knn_n, args.knn_dim))

    cases: list[tuple[str, str, Callable[[], Any], Callable[[], Any], Callable[[Any, Any], bool]]] = [
        (
            f"softmax ({n:,} x {classes:,} float32)",
            "scipy.special.softmax",
            lambda: softmax(logits),
            lambda: special.softmax(logits, axis=1),
            lambda a, b: np.allclose(a, b, rtol=1e-5, atol=1e-7),
        ),
        (
            f"auroc, one-vs-rest macro ({n:,} x {classes:,})",
            "sklearn roc_auc_score(multi_class='ovr')",
            lambda: auroc(y_true, probs),
            lambda: roc_auc_score(y_true, probs, multi_class="ovr", average="macro"),
            lambda a, b: abs(a - b) < 1e-9,
        ),
        (
            f"f1, macro ({n:,}, {classes:,} classes)",
            "sklearn f1_score(average='macro')",
            lambda: f1(y_true, y_pred, classes),
            lambda: f1_score(y_true, y_pred, average="macro"),
            lambda a, b: abs(a - b) < 1e-12,
        ),
        (
            f"disagreement_matrix ({n:,}, {classes:,} classes)",
            "sklearn confusion_matrix",
            lambda: disagreement_matrix(teacher, y_pred, classes),
            lambda: (
                confusion_matrix(teacher, y_pred, labels=np.arange(classes))
                * (1 - np.eye(classes, dtype=int))
            ),
            lambda a, b: np.array_equal(a, b),
        ),
        (
            f"knn_graph ({knn_n:,} x {args.knn_dim}, k = 5)",
            "sklearn NearestNeighbors",
            lambda: knn_graph(points, 5),
            lambda: sklearn_knn(points, 5),
            lambda a, b: np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1], rtol=1e-9),
        ),
    ]
    print("| computation | library | kdfair (s) | library (s) | library / kdfair | same result |")
    print("|---|---|---|---|---|---|")
    status = 0
    for what, library, ours, theirs, same in cases:
        if not what.startswith(args.only):
            continue
        mine, a = seconds(ours, args.repeat)
        other, b = seconds(theirs, args.repeat)
        agree = bool(same(a, b))
        status |= not agree
        verdict = "yes" if agree else "NO"
        print(f"| {what} | {library} | {mine:.3f} | {other:.3f} | {other / mine:.1f}x | {verdict} |")
        sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
