"""``kdfair audit``: a folder of runs in the prediction format -> tidy tables (docs/audit.md).

* :mod:`kdfair.audit.engine`: :func:`audit_runs` and :func:`write_audit`.
* :mod:`kdfair.audit.conditions`: runs -> conditions (teacher, NDS, DS per method, temperature and alpha).
* :mod:`kdfair.audit.inputs`: checks against the reference run; the individual-fairness representation.
* :mod:`kdfair.audit.parallel`: the process pool (kNN graph rows and runs over forked workers).
* :mod:`kdfair.audit.runmetrics`: one run's metrics. :mod:`kdfair.audit.tables`: the output tables.
* :mod:`kdfair.audit.summary`: the console table and the ``--json`` document.
* :mod:`kdfair.audit.cli`: the command.

Submodules are imported on use, so ``kdfair --help`` does not load pandas or torch.
"""
