"""``kdfair audit``: a folder of runs in the prediction format -> tidy tables (docs/audit.md).

* :mod:`kdfair.audit.engine`: :func:`audit_runs` (a runs folder) and :func:`audit_run_set`.
* :mod:`kdfair.audit.options`: :class:`AuditOptions`, the options as data (``audit.json`` ``options``).
* :mod:`kdfair.audit.write`: :func:`write_audit`, the audit folder written all or nothing.
* :mod:`kdfair.audit.api`: :func:`audit_predictions`, the audit of predictions in memory (:class:`Run`
  objects or a tidy DataFrame).
* :mod:`kdfair.audit.conditions`: runs -> conditions (teacher, NDS, DS per method, temperature and alpha).
* :mod:`kdfair.audit.inputs`: checks against the reference run; the individual-fairness representation.
* :mod:`kdfair.audit.parallel`: the process pool (kNN graph rows and runs over forked workers).
* :mod:`kdfair.audit.runmetrics`: one run's metrics. :mod:`kdfair.audit.tables`: the output tables.
* :mod:`kdfair.audit.summary`: the console table and the ``--json`` document.
* :mod:`kdfair.audit.cli`: the command.

Submodules are imported on use, so ``kdfair --help`` does not load pandas or torch; ``from kdfair.audit
import audit_predictions, Run, audit_runs, AuditResult`` imports them then.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the submodule that defines it (imported on first use)
_EXPORTS = {
    "audit_predictions": "kdfair.audit.api",
    "Run": "kdfair.audit.api",
    "audit_runs": "kdfair.audit.engine",
    "write_audit": "kdfair.audit.write",
    "AuditOptions": "kdfair.audit.options",
    "AuditResult": "kdfair.audit.engine",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kdfair.audit' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
