"""Active focus: the coarse prediction moves the cluster centres (Eqs. 11-13)."""
import pytest
import torch
from torch import nn

from pyg_hgconv.nn.models import coarse_attention
from tests.helpers.models import build, structured_batch


class HalfPlaneLogits(nn.Module):
    """A stand-in coarse head: confident foreground on the left half of the
    map (logit +10), confident background (-10) or uncertain (0) on the right."""

    def __init__(self, right: float):
        super().__init__()
        self.right = right

    def forward(self, x):
        b, _, h, w = x.shape
        logits = x.new_full((b, 1, h, w), 10.0)
        logits[..., w // 2:] = self.right
        return logits


def _left_fraction(graph, width):
    return float(((graph.center_pixel % width) < width // 2).float().mean())


@pytest.mark.parametrize("family", ["resnet_seg", "resunet"])
def test_attention_moves_the_centres(family):
    x = structured_batch(2, height=64, width=64)
    fractions = {}
    for mode, right in (("object", -10.0), ("uncertainty", 0.0)):
        model = build(family, hg=True, num_classes=1, attention=mode).eval()
        model.aux_head = HalfPlaneLogits(right)
        out = model(x)
        graph = out.graphs[0]
        width = int(graph.image_size[0, 1])
        fractions[mode] = _left_fraction(graph, width)
        # the returned coarse prediction is the head's, the attention is derived from it
        coarse = HalfPlaneLogits(right)(torch.zeros(2, 1, *graph.image_size[0].tolist()))
        torch.testing.assert_close(out.attention, coarse_attention(coarse, mode))
        assert out.aux.shape == out.out.shape
    # topk_random with beta = 0.75: at least 3/4 of the centres where the attention is
    # (focus >= 10 there, <= 1 elsewhere), the rest uniformly at random
    assert fractions["object"] >= 0.75          # P_k is high on the left
    assert 1 - fractions["uncertainty"] >= 0.75  # the entropy is high on the right


def test_attention_changes_the_centres_of_the_same_model():
    model = build("resnet_seg", hg=True, num_classes=1, attention="object").eval()
    model.aux_head = HalfPlaneLogits(-10.0)
    x = structured_batch(1, height=64, width=64)
    focused = model(x).graphs[0].center_pixel
    model.attention = None  # same weights, no focus
    plain = model(x).graphs[0].center_pixel
    assert not torch.equal(focused, plain)


def test_coarse_attention_values():
    logits = torch.tensor([[[[0.0, 100.0]]], [[[-100.0, 0.0]]]])
    torch.testing.assert_close(coarse_attention(logits, "object"), torch.sigmoid(logits))
    entropy = coarse_attention(logits, "uncertainty")
    torch.testing.assert_close(entropy, torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]]]),
                               atol=1e-6, rtol=0)
    multi = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(coarse_attention(multi, "object", 2),
                               torch.softmax(multi, 1)[:, 2:3])
    with pytest.raises(ValueError, match="focus_class"):
        coarse_attention(multi, "object")
