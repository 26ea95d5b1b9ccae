"""Stage 5b, evaluation: leave-one-fold-out cross-validation and what it writes.

:mod:`~soundlib.evaluation.evaluate` (the protocol), :mod:`~soundlib.evaluation.metrics` (metrics and the
``metrics.json`` / ``results.json`` / ``predictions.csv`` formats), :mod:`~soundlib.evaluation.stats`
(significance), :mod:`~soundlib.evaluation.outputs` (run folders: who may write where),
:mod:`~soundlib.evaluation.plots` (confusion matrices, reliability, histories). Imports audio … methods.
"""
