"""Structured test images for the HG-Conv tests."""
import torch


def structured_image(batch=2, channels=3, height=24, width=32, seed=0):
    """Flat regions with a few bright blobs: structure for SLIC to find."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(batch, channels, height, width)
    x[:, :, height // 2:] = 0.6  # a "road" half
    size = max(1, min(height, width) // 4)
    for _ in range(6):
        y0 = int(torch.randint(0, height - size + 1, (1,), generator=g))
        x0 = int(torch.randint(0, width - size + 1, (1,), generator=g))
        x[:, :, y0:y0 + size, x0:x0 + size] = torch.rand(channels, 1, 1, generator=g)
    return x + 0.02 * torch.randn(x.shape, generator=g)
