"""Learning-rate schedules shared by the fine-tuning methods (pictures and audio networks)."""

from __future__ import annotations

import numpy as np

__all__ = ["WarmupCosine"]


class WarmupCosine:
    """Learning rate: linear warm-up over ``warmup`` steps to ``peak``, then cosine decay to 5 % at ``total``."""

    def __new__(cls, peak: float, warmup: int, total: int):
        from soundlib.runtime import import_tf

        tf, K = import_tf()

        class Schedule(K.optimizers.schedules.LearningRateSchedule):  # type: ignore[name-defined]
            def __call__(self, step):
                step = tf.cast(step, tf.float32)
                w, t = float(max(1, warmup)), float(max(total, warmup + 1))
                warm = peak * (step + 1.0) / w
                progress = tf.clip_by_value((step - w) / (t - w), 0.0, 1.0)
                cos = peak * (0.05 + 0.95 * 0.5 * (1.0 + tf.cos(np.pi * progress)))
                return tf.where(step < w, warm, cos)

            def get_config(self):
                return {"peak": peak, "warmup": warmup, "total": total}

        return Schedule()
