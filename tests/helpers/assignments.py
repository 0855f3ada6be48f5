"""Random sparse assignments S for the tests (coordinate and tiled form)."""
import torch

from pyg_hgconv.nn.pool.tiling import TiledAssignment, TileGrid


def random_assignment(batch, height, width, groups_per_image, max_nnz, seed):
    """A random sparse row-normalised S in COO form, groups local to each image."""
    g = torch.Generator().manual_seed(seed)
    n = batch * height * width
    nnz = torch.randint(1, max_nnz + 1, (n,), generator=g)
    pixel = torch.repeat_interleave(torch.arange(n), nnz)
    image = pixel // (height * width)
    local = torch.randint(0, groups_per_image, (pixel.numel(),), generator=g)
    group = image * groups_per_image + local
    weight = torch.rand(pixel.numel(), generator=g, dtype=torch.float64) + 0.05
    # merge duplicates (pixel, group) and normalise rows
    key = pixel * batch * groups_per_image + group
    uniq, inv = torch.unique(key, return_inverse=True)
    w = torch.zeros(uniq.numel(), dtype=torch.float64).index_add(0, inv, weight)
    pixel, group = uniq // (batch * groups_per_image), uniq % (batch * groups_per_image)
    w = w / torch.zeros(n, dtype=torch.float64).index_add(0, pixel, w)[pixel]
    return torch.stack([pixel, group]), w, batch * groups_per_image


def random_tiled(batch, height, width, tile_h, tile_w, groups_per_image, m, seed,
                 dyadic=False):
    """A random tiled S: every tile has ``m`` distinct candidates among its
    image's groups and random weights (some zero) normalised per pixel; with
    ``dyadic`` the weights are multiples of 1/256 (rows then sum to about one),
    so that every sum of their products is exact in float64, in any order: two
    computations then tie exactly where the mathematics ties."""
    g = torch.Generator().manual_seed(seed)
    grid = TileGrid(batch, height, width, min(tile_h, height), min(tile_w, width))
    t, p = grid.num_tiles, grid.tile_pixels
    m = min(m, groups_per_image)
    local = torch.rand(t, groups_per_image, generator=g).argsort(1)[:, :m]
    image = torch.arange(t) // grid.tiles_per_image
    candidates = image.unsqueeze(1) * groups_per_image + local
    weight = torch.rand(t, m, p, generator=g, dtype=torch.float64)
    weight = weight * (torch.rand(t, m, p, generator=g) > 0.4)
    weight[:, 0] += 0.05  # every pixel keeps an entry
    weight = weight / weight.sum(1, keepdim=True) * grid.valid(dtype=torch.float64)
    if dyadic:
        weight = torch.where(weight > 0, (weight * 256).round().clamp_min(1) / 256, 0.0)
    return TiledAssignment(grid, candidates, weight, batch * groups_per_image)
