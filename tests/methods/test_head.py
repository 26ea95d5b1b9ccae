"""The numpy head (soundlib.methods.head) runs the optimisation tf_keras' model.fit runs, without TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from soundlib.methods.head import fit_softmax_head


def test_same_optimisation_as_tf_keras_fit():
    """Same initial weights, same batches, no dropout: the weights after 3 epochs of Adam agree."""
    from soundlib.runtime import import_tf

    tf, tf_keras = import_tf()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 50)]
    kw = dict(learning_rate=0.05, dropout=0.0, label_smoothing=0.1, l2=0.01, batch_size=16, seed=3)
    perms = [np.arange(50)] * 3
    head, hist = fit_softmax_head(x, y, perms, x[:10], y[:10], **kw)

    # the reference: the same initial kernel (re-drawn with a zero learning rate), Keras' own fit
    start, _ = fit_softmax_head(x, y, [np.arange(0)], x[:0], y[:0], **{**kw, "learning_rate": 1e-30})
    model = tf_keras.Sequential([tf_keras.Input((6,)), tf_keras.layers.Dense(
        3, activation="softmax", kernel_regularizer=tf_keras.regularizers.l2(0.01))])
    model.set_weights(start.get_weights())
    model.compile(optimizer=tf_keras.optimizers.Adam(0.05),
                  loss=tf_keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    ref = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, validation_data=(x[:10], y[:10]))
    for mine, theirs in zip(head.get_weights(), model.get_weights()):
        np.testing.assert_allclose(mine, theirs, atol=2e-5)
    np.testing.assert_allclose(hist["val_loss"], ref.history["val_loss"], rtol=1e-4)
    np.testing.assert_allclose(hist["val_accuracy"], ref.history["val_accuracy"])
    np.testing.assert_allclose(head(x), model(x).numpy(), atol=1e-5)


def test_dropout_is_seeded_and_training_imports_no_tensorflow():
    code = """
import sys
import numpy as np
from soundlib.methods.train import TrainConfig, train_head
rng = np.random.default_rng(0)
x = np.concatenate([rng.normal(3 * k, 1.0, (40, 8)) for k in range(3)]).astype(np.float32)
y = np.repeat(np.arange(3), 40)
a = train_head(x, y, 3, config=TrainConfig(epochs=20, learning_rate=0.05, dropout=0.3, validation_split=0.1, seed=5))
b = train_head(x, y, 3, config=TrainConfig(epochs=20, learning_rate=0.05, dropout=0.3, validation_split=0.1, seed=5))
c = train_head(x, y, 3, config=TrainConfig(epochs=20, learning_rate=0.05, dropout=0.3, validation_split=0.1, seed=6))
assert np.array_equal(a.model.get_weights()[0], b.model.get_weights()[0])
assert not np.array_equal(a.model.get_weights()[0], c.model.get_weights()[0])
assert (a.predict_proba(x).argmax(1) == y).mean() > 0.95
assert "tensorflow" not in sys.modules, "training a head imported TensorFlow"
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
