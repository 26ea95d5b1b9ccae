"""Stage 6, models: the exported-model format and what runs it.

:mod:`~soundlib.models.format` (file names, checksums: the format's one definition),
:mod:`~soundlib.models.export` (writing a model), :mod:`~soundlib.models.load` (reading and verifying one),
:mod:`~soundlib.models.litert_runner` (the LiteRT copy), :mod:`~soundlib.models.label` (labelling files:
``predict``), :mod:`~soundlib.models.card` (``MODEL_CARD.md`` and ``soundlib info``),
:mod:`~soundlib.models.train` (train one fold or all folds and export), :mod:`~soundlib.models.events`,
:mod:`~soundlib.models.tag`. Imports everything below it (audio … methods, evaluation); nothing above.
"""
