"""Evaluation: how good are the uncertainty signals for a given model (``uq eval``, ``uq calibrate``).

:mod:`.qa` reads labelled QA files and judges answers, :mod:`.pipeline` runs sessions through the
system's API or its parts in-process, :mod:`.runner` records them, :mod:`.measures` holds AUROC, PRR,
AUPRC and ECE, :mod:`.report` writes the tables and plots. See docs/evaluation.md.
"""
