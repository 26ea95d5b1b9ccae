"""Stage 2, pictures: audio rendered as pictures.

:mod:`~soundlib.pictures.variants` (the named feature variants, ``FeatureSpec``),
:mod:`~soundlib.pictures.features` (spectrograms and waveform plots as arrays),
:mod:`~soundlib.pictures.merge` (channels merged or stacked), :mod:`~soundlib.pictures.featurize`
(clips to PNG pictures, windows to pictures). Imports only :mod:`soundlib.audio`.
"""
