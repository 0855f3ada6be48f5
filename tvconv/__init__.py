"""TVConv: translation-variant depthwise convolution with cached per-pixel kernels.

Public API:

* :class:`TVConv` -- the layer; :func:`tvconv_layers` lists a model's layers;
* :mod:`tvconv.apply` -- the pure shifted-slice application functions;
* :func:`count_macs`, :func:`count_params` -- the paper's complexity measures;
* :func:`freeze`, :func:`cached_weights`, :func:`clear_caches`,
  :func:`strip_generators` (:class:`FrozenTVConv`), :func:`export_for_inference`
  -- inference helpers;
* :mod:`tvconv.models` -- MobileNetV2 / ShuffleNetV2 face backbones, AM-Softmax;
* :mod:`tvconv.viz` -- affinity-map plots.
"""
from . import models, viz
from .conv import TVConv, tvconv_layers
from .inference import (
    FrozenTVConv,
    cached_weights,
    clear_caches,
    export_for_inference,
    freeze,
    strip_generators,
)
from .macs import count_macs, count_params
from .weight_generator import WeightGenerator

__all__ = [
    "FrozenTVConv",
    "TVConv",
    "WeightGenerator",
    "cached_weights",
    "clear_caches",
    "count_macs",
    "count_params",
    "export_for_inference",
    "freeze",
    "models",
    "strip_generators",
    "tvconv_layers",
    "viz",
]
