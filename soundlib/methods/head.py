"""The classifier head on cached embeddings: dropout + softmax, trained with Adam, in numpy.

:func:`fit_softmax_head` runs the optimisation tf_keras' ``model.fit`` would run
for ``Sequential([Dropout, Dense(softmax)])`` (mini-batch Adam on label-smoothed
cross-entropy plus an L2 penalty on the kernel, Glorot-uniform initialisation),
without TensorFlow: a head this small trains in milliseconds, while importing
TensorFlow costs seconds in every sweep run. TensorFlow enters only when the head
is exported (:func:`soundlib.models.export.export_model` copies :meth:`SoftmaxHead.get_weights`
into a tf_keras ``Dense`` layer).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["SoftmaxHead", "fit_softmax_head"]

#: tf_keras' defaults: Adam's beta_1, beta_2 and epsilon, and the clipping epsilon of the cross-entropy.
_BETA1, _BETA2, _ADAM_EPS, _CE_EPS = 0.9, 0.999, 1e-7, 1e-7


class SoftmaxHead:
    """A dense softmax layer: ``probabilities = softmax(x @ kernel + bias)``.

    Parameters
    ----------
    kernel : np.ndarray, shape (dim, n_classes), float32
    bias : np.ndarray, shape (n_classes,), float32
    """

    def __init__(self, kernel: np.ndarray, bias: np.ndarray):
        self.kernel = np.asarray(kernel, np.float32)
        self.bias = np.asarray(bias, np.float32)

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Class probabilities, shape (N, n_classes), of embeddings ``x`` of shape (N, dim)."""
        return _softmax(np.asarray(x, np.float32) @ self.kernel + self.bias)

    def get_weights(self) -> list[np.ndarray]:
        """``[kernel, bias]``, in the order of a tf_keras ``Dense`` layer's ``set_weights``."""
        return [self.kernel.copy(), self.bias.copy()]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _loss_and_accuracy(p: np.ndarray, target: np.ndarray, onehot: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy of ``p`` against (smoothed) ``target``, and accuracy against ``onehot``."""
    ce = -(target * np.log(np.clip(p, _CE_EPS, 1.0 - _CE_EPS))).sum(axis=1).mean()
    return float(ce), float((p.argmax(1) == onehot.argmax(1)).mean())


def fit_softmax_head(
    x: np.ndarray,
    onehot: np.ndarray,
    perms: Sequence[np.ndarray],
    x_val: np.ndarray,
    onehot_val: np.ndarray,
    *,
    learning_rate: float,
    dropout: float,
    label_smoothing: float,
    l2: float,
    batch_size: int,
    seed: int,
) -> tuple[SoftmaxHead, dict[str, list[float]]]:
    """Train a dropout + softmax head with Adam; one epoch per permutation in ``perms``.

    Parameters
    ----------
    x : np.ndarray, shape (N, dim)
        Training embeddings.
    onehot : np.ndarray, shape (N, n_classes)
        One-hot training labels.
    perms : sequence of np.ndarray, each shape (N,)
        The order of the training clips in each epoch; batches are consecutive ``batch_size`` slices of it.
    x_val, onehot_val : np.ndarray, shapes (M, dim) and (M, n_classes)
        Validation clips, scored (without dropout) after every epoch; ``M`` may be 0.
    learning_rate, dropout, label_smoothing, l2, batch_size, seed
        As in :class:`soundlib.methods.train.TrainConfig`; ``l2`` weighs the sum of the squared kernel
        entries, and ``seed`` drives the initial kernel and the dropout masks.

    Returns
    -------
    (SoftmaxHead, history)
        ``history`` holds per-epoch ``loss`` and ``accuracy`` (means over the epoch's batches,
        with dropout, the loss including the L2 penalty) and, with validation clips,
        ``val_loss`` and ``val_accuracy``.
    """
    x = np.asarray(x, np.float32)
    onehot = np.asarray(onehot, np.float32)
    dim, n_classes = x.shape[1], onehot.shape[1]
    rng = np.random.default_rng([int(seed), 0x50F7])
    limit = np.sqrt(6.0 / (dim + n_classes))
    kernel = rng.uniform(-limit, limit, (dim, n_classes)).astype(np.float32)
    bias = np.zeros(n_classes, np.float32)
    params = [kernel, bias]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    x_val = np.asarray(x_val, np.float32)
    onehot_val = np.asarray(onehot_val, np.float32)
    target = onehot * (1.0 - label_smoothing) + label_smoothing / n_classes
    target_val = onehot_val * (1.0 - label_smoothing) + label_smoothing / n_classes
    keep = 1.0 - dropout
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    if len(x_val):
        history.update(val_loss=[], val_accuracy=[])
    step = 0
    for perm in perms:
        total = correct = 0.0
        for start in range(0, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            xb, tb = x[idx], target[idx]
            if dropout > 0:
                xb = np.where(rng.random(xb.shape, dtype=np.float32) < keep, xb / keep, 0.0).astype(np.float32)
            p = _softmax(xb @ kernel + bias)
            loss, acc = _loss_and_accuracy(p, tb, onehot[idx])
            loss += l2 * float((kernel * kernel).sum())
            k = len(idx)
            total += loss * k
            correct += acc * k
            dz = (p - tb) / k  # d(mean cross-entropy)/d(logits) of a softmax
            grads = [xb.T @ dz + 2.0 * l2 * kernel, dz.sum(axis=0)]
            step += 1
            lr_t = learning_rate * np.sqrt(1.0 - _BETA2 ** step) / (1.0 - _BETA1 ** step)
            for param, g, mi, vi in zip(params, grads, m, v):
                mi += (1.0 - _BETA1) * (g - mi)
                vi += (1.0 - _BETA2) * (g * g - vi)
                param -= (lr_t * mi / (np.sqrt(vi) + _ADAM_EPS)).astype(np.float32)
        n = max(1, len(perm))
        history["loss"].append(total / n)
        history["accuracy"].append(correct / n)
        if len(x_val):
            val_loss, val_acc = _loss_and_accuracy(_softmax(x_val @ kernel + bias), target_val, onehot_val)
            history["val_loss"].append(val_loss + l2 * float((kernel * kernel).sum()))
            history["val_accuracy"].append(val_acc)
    return SoftmaxHead(kernel, bias), history
