"""Face-embedding backbones of the TVConv paper and the AM-Softmax loss."""
from .am_softmax import AMSoftmax, am_softmax_logits
from .layers import CONV_TYPES, EmbeddingHead, FaceEmbeddingNet
from .mobilenet_v2 import InvertedResidual, MobileNetV2, mobilenet_v2
from .shufflenet_v2 import ShuffleBlock, ShuffleNetV2, shufflenet_v2

__all__ = [
    "CONV_TYPES",
    "AMSoftmax",
    "EmbeddingHead",
    "FaceEmbeddingNet",
    "InvertedResidual",
    "MobileNetV2",
    "ShuffleBlock",
    "ShuffleNetV2",
    "am_softmax_logits",
    "mobilenet_v2",
    "shufflenet_v2",
]
