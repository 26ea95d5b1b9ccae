"""The network ports the embedders run: EfficientNet-Lite0, EfficientAT (mn04), YAMNet, the restricted
PyTorch checkpoint reader and AudioSet's class names. Only :mod:`soundlib.embedders` uses them."""
