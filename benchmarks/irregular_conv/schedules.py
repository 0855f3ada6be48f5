"""The three schedules of the irregular-convolution benchmark (``--quick``, default, ``--full``).

A schedule fixes every size that changes what a number means; it is part of
the protocol configuration of ``results.json`` (see
:class:`benchmarks.common.results.ResultStore`), so changing one invalidates
the stored records instead of mixing numbers.

=================  ==========================  ==========================  ======================
field              quick (smoke, tests)        default (``make bench``)    full
=================  ==========================  ==========================  ======================
feature maps       8x10, 12x16, 16x20          32x40, 64x80                32x40 ... 90x120
ratios             1/16, 1/64, 1/256           1/16, 1/64                  1/16, 1/64, 1/256
channels C         16                          128                         128
images per map     1                           2                           2
timing repeats     1 (+0 warm-up)              3 (+1)                      10 (+2)
=================  ==========================  ==========================  ======================

The task part trains with the ``segmentation`` schedules of
:mod:`benchmarks.common.dense_prediction` of the same name, the default one shortened by
:data:`benchmarks.irregular_conv.task.SCHEDULE_CHANGES`.

The default sizes are chosen so that operator and task parts together finish
in under 15 minutes on 2 CPU cores; they are far below the paper's
(ResNet-101 on 1024x2048 Cityscapes crops), so no figure here is comparable
with the paper's tables -- only the *relations* between the convolutions are.
"""
from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["SCHEDULES", "IrregularSchedule", "ratio_label"]


@dataclasses.dataclass(frozen=True)
class IrregularSchedule:
    """Sizes of one schedule of the benchmark.

    Attributes:
        sizes: operator feature-map sizes ``(H, W)`` (stride-8 maps of images
            resized to ``(8H, 8W)``).
        ratio_denominators: downsampling ratios ``1/d`` of the group graphs.
        channels: feature channels ``C`` (input = output of every conv).
        batch: images per feature map (the group graphs of a batch).
        repeats: timed calls per measurement (the median is reported).
        warmup: untimed calls before them.
    """

    sizes: tuple[tuple[int, int], ...]
    ratio_denominators: tuple[int, ...]
    channels: int
    batch: int
    repeats: int
    warmup: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (part of the protocol configuration)."""
        return {"sizes": [list(s) for s in self.sizes],
                "ratios": [f"1/{d}" for d in self.ratio_denominators],
                "channels": self.channels, "batch": self.batch, "repeats": self.repeats,
                "warmup": self.warmup}


def ratio_label(denominator: int) -> str:
    """``'1/64'`` for ``64``."""
    return f"1/{denominator}"


#: schedule name (``benchmarks.common.cli.schedule_name``) -> sizes
SCHEDULES: dict[str, IrregularSchedule] = {
    "quick": IrregularSchedule(sizes=((8, 10), (12, 16), (16, 20)),
                               ratio_denominators=(16, 64, 256), channels=16, batch=1,
                               repeats=1, warmup=0),
    "default": IrregularSchedule(sizes=((32, 40), (64, 80)),
                                 ratio_denominators=(16, 64), channels=128, batch=2,
                                 repeats=3, warmup=1),
    "full": IrregularSchedule(sizes=((32, 40), (48, 64), (64, 80), (90, 120)),
                              ratio_denominators=(16, 64, 256), channels=128, batch=2,
                              repeats=10, warmup=2),
}
