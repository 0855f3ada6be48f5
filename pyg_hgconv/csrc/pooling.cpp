// Fused CPU kernels of HG-Conv's pooling (Eq. 5) and unpooling (Eq. 6) on
// channels-last feature maps, straight from the tiled assignment S ([T, m, P]
// weights of the m candidates of every tile, candidates [T, m] global group ids):
//
//   pool:   X^_g = sum_p S_pg X_p / max(sum_p S_pg, eps)               (Eq. 5)
//   unpool: X_p  = sum_g S_pg X'_g / max(sum_g S_pg, eps)              (Eq. 6)
//
// A channels-last map holds every pixel's channels contiguously, so both are
// row operations over the few non-zero entries of each pixel, vectorised over
// the channels (pooling.h, shared with the clustering op of clustering.cpp),
// without the copies into and out of the tile layout that the batched products of
// the PyTorch path need. The pooling is threaded over blocks of channels (no two
// threads write one group row, whatever groups the tiles index), the unpooling
// over rows of tiles (each pixel's row is written by one thread).
//
// Registered as pyg_hgconv::pool_channels_last and
// pyg_hgconv::unpool_channels_last (forward only; the Python side,
// pyg_hgconv/nn/pool/fused_pooling.py, adds the fake kernels and calls them only
// where no gradient is needed).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "pooling.h"

namespace {

using namespace pyg_hgconv;

ImageTiling check_pool(const char* op, int64_t B, int64_t H, int64_t W, const at::Tensor& weight,
                       const at::Tensor& candidates, int64_t tile_h, int64_t tile_w) {
  TORCH_CHECK(weight.dim() == 3, op, ": 'weight' must be [T, m, P], got ", weight.sizes());
  TORCH_CHECK(tile_h >= 1 && tile_w >= 1 && H >= 1 && W >= 1, op, ": sizes must be >= 1");
  const ImageTiling g(H, W, tile_h, tile_w, weight.size(1));
  TORCH_CHECK(weight.size(0) == B * g.tiles() && weight.size(2) == g.P, op, ": 'weight' ",
              weight.sizes(), " does not fit ", B, " images of ", H, " x ", W, " in tiles of ",
              tile_h, " x ", tile_w);
  TORCH_CHECK(candidates.dim() == 2 && candidates.scalar_type() == at::kLong &&
                  candidates.size(0) == weight.size(0) && candidates.size(1) == g.m,
              op, ": 'candidates' must be a LongTensor [T, m] like 'weight'");
  return g;
}

void check_groups(const char* op, const at::Tensor& candidates, int64_t num_groups) {
  TORCH_CHECK(candidates.numel() == 0 || (candidates.min().item<int64_t>() >= 0 &&
                                          candidates.max().item<int64_t>() < num_groups),
              op, ": 'candidates' must index groups in [0, ", num_groups, ")");
}

at::Tensor pool_channels_last(const at::Tensor& x_in, const at::Tensor& weight_in,
                              const at::Tensor& candidates_in, int64_t num_groups,
                              int64_t tile_h, int64_t tile_w, double eps) {
  TORCH_CHECK(x_in.dim() == 4, "pool_channels_last: 'x' must be [B, C, H, W]");
  const int64_t B = x_in.size(0), C = x_in.size(1);
  const ImageTiling g = check_pool("pool_channels_last", B, x_in.size(2), x_in.size(3),
                                   weight_in, candidates_in, tile_h, tile_w);
  TORCH_CHECK(weight_in.scalar_type() == x_in.scalar_type(),
              "pool_channels_last: 'weight' must have the dtype of 'x'");
  check_groups("pool_channels_last", candidates_in, num_groups);
  const at::Tensor x = x_in.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor weight = weight_in.contiguous();
  const at::Tensor candidates = candidates_in.contiguous();
  at::Tensor out =
      at::zeros({num_groups, C}, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (num_groups == 0 || C == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pool_channels_last", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* w = weight.data_ptr<scalar_t>();
    const int64_t* cand = candidates.data_ptr<int64_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const int64_t per_image = g.tiles() * g.m;
    std::vector<scalar_t> mass(num_groups, scalar_t(0));
    for (int64_t i = 0; i < B * per_image; ++i) {
      scalar_t sum = 0;
      for (int64_t p = 0; p < g.P; ++p) sum += w[i * g.P + p];
      mass[cand[i]] += sum;
    }
    // threads over blocks of channels: no two threads write one group row, whatever
    // groups the tiles index
    at::parallel_for(0, C, 16, [&](int64_t c0, int64_t c1) {
      PoolScratch<scalar_t> scratch;
      for (int64_t b = 0; b < B; ++b)
        pool_rows(g, xp + b * g.H * g.W * C, C, c0, c1, w + b * per_image * g.P,
                  cand + b * per_image, o, scratch);
      for (int64_t group = 0; group < num_groups; ++group) {
        const scalar_t inv = scalar_t(1) / std::max(mass[group], static_cast<scalar_t>(eps));
        scalar_t* row = o + group * C;
        for (int64_t c = c0; c < c1; ++c) row[c] *= inv;
      }
    });
  });
  return out;
}

at::Tensor unpool_channels_last(const at::Tensor& z_in, const at::Tensor& weight_in,
                                const at::Tensor& candidates_in, int64_t batch, int64_t height,
                                int64_t width, int64_t tile_h, int64_t tile_w, double eps) {
  TORCH_CHECK(z_in.dim() == 2, "unpool_channels_last: 'z' must be [N_grp, C]");
  const ImageTiling g = check_pool("unpool_channels_last", batch, height, width, weight_in,
                                   candidates_in, tile_h, tile_w);
  TORCH_CHECK(weight_in.scalar_type() == z_in.scalar_type(),
              "unpool_channels_last: 'weight' must have the dtype of 'z'");
  check_groups("unpool_channels_last", candidates_in, z_in.size(0));
  const at::Tensor z = z_in.contiguous();
  const at::Tensor weight = weight_in.contiguous();
  const at::Tensor candidates = candidates_in.contiguous();
  const int64_t C = z.size(1);
  at::Tensor out = at::empty({batch, C, height, width},
                             z.options().memory_format(at::MemoryFormat::ChannelsLast));
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "unpool_channels_last", [&] {
    const scalar_t* zp = z.data_ptr<scalar_t>();
    const scalar_t* w = weight.data_ptr<scalar_t>();
    const int64_t* cand = candidates.data_ptr<int64_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const int64_t per_image = g.tiles() * g.m;
    // tasks: (image, row of tiles)
    at::parallel_for(0, batch * g.tiles_y, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / g.tiles_y, ty = task % g.tiles_y;
        unpool_rows(g, zp, C, w + b * per_image * g.P, cand + b * per_image,
                    static_cast<scalar_t>(eps), ty, ty + 1, o + b * g.H * g.W * C);
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pyg_hgconv, m) {
  m.def("pool_channels_last(Tensor x, Tensor weight, Tensor candidates, int num_groups, "
        "int tile_h, int tile_w, float eps) -> Tensor");
  m.def("unpool_channels_last(Tensor z, Tensor weight, Tensor candidates, int batch, "
        "int height, int width, int tile_h, int tile_w, float eps) -> Tensor");
}

TORCH_LIBRARY_IMPL(pyg_hgconv, CPU, m) {
  m.impl("pool_channels_last", &pool_channels_last);
  m.impl("unpool_channels_last", &unpool_channels_last);
}
