"""Stage 7, the lab: what the notebooks call.

:mod:`~soundlib.lab.notebook` (notebook helpers), :mod:`~soundlib.lab.trials` (the picture explorer),
:mod:`~soundlib.lab.embedmap` (embedding maps). Imports every stage below; the sweep imports it.
"""
