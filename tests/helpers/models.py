"""Small model builders for the model and FLOPs tests (CPU-sized widths)."""
import torch

from pyg_hgconv.nn.models import HGResNetSeg, HGResUNet, ResNetSeg, ResUNet

WIDTH = 0.125
GRID_MODELS = {"resnet_seg": ResNetSeg, "resunet": ResUNet}
HG_MODELS = {"resnet_seg": HGResNetSeg, "resunet": HGResUNet}


def build(family: str, hg: bool, backbone: str = "resnet18", num_classes: int = 3, **kwargs):
    torch.manual_seed(0)
    cls = (HG_MODELS if hg else GRID_MODELS)[family]
    if hg:
        kwargs.setdefault("ratio", 1 / 4)
    return cls(backbone, num_classes, width=WIDTH, **kwargs)


def structured_batch(batch=2, channels=3, height=48, width=64, seed=0):
    """Flat regions with bright blocks, so that clustering has structure to find."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(batch, channels, height, width)
    x[:, :, height // 2:] = 0.6
    size = max(1, min(height, width) // 4)
    for _ in range(6):
        y0 = int(torch.randint(0, height - size + 1, (1,), generator=g))
        x0 = int(torch.randint(0, width - size + 1, (1,), generator=g))
        x[:, :, y0:y0 + size, x0:x0 + size] = torch.rand(channels, 1, 1, generator=g)
    return x + 0.05 * torch.randn(x.shape, generator=g)
