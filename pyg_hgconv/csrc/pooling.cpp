// Fused CPU kernels of HG-Conv's pooling (Eq. 5) and unpooling (Eq. 6) on
// channels-last feature maps, straight from the tiled assignment S ([T, m, P]
// weights of the m candidates of every tile, candidates [T, m] global group ids):
//
//   pool:   X^_g = sum_p S_pg X_p / max(sum_p S_pg, eps)               (Eq. 5)
//   unpool: X_p  = sum_g S_pg X'_g / max(sum_g S_pg, eps)              (Eq. 6)
//
// A channels-last map holds every pixel's channels contiguously, so both are
// row operations over the few non-zero entries of each pixel, vectorised over
// the channels, without the copies into and out of the tile layout that the
// batched products of the PyTorch path need. The pooling is threaded over blocks
// of channels (no two threads write one group row, whatever groups the tiles
// index), the unpooling over pixels (each writes its own row).
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

namespace {

struct PoolTiling {
  int64_t B, C, H, W, th, tw, tiles_y, tiles_x, m, P;
  int64_t tile(int64_t b, int64_t y, int64_t x) const {
    return (b * tiles_y + y / th) * tiles_x + x / tw;
  }
  int64_t pos(int64_t y, int64_t x) const { return (y % th) * tw + x % tw; }
};

PoolTiling check_pool(const char* op, int64_t B, int64_t C, int64_t H, int64_t W,
                      const at::Tensor& weight, const at::Tensor& candidates, int64_t tile_h,
                      int64_t tile_w) {
  TORCH_CHECK(weight.dim() == 3, op, ": 'weight' must be [T, m, P], got ", weight.sizes());
  TORCH_CHECK(tile_h >= 1 && tile_w >= 1, op, ": tile sizes must be >= 1");
  PoolTiling g{B, C, H, W, tile_h, tile_w, (H + tile_h - 1) / tile_h, (W + tile_w - 1) / tile_w,
               weight.size(1), weight.size(2)};
  TORCH_CHECK(weight.size(0) == B * g.tiles_y * g.tiles_x && g.P == tile_h * tile_w, op,
              ": 'weight' ", weight.sizes(), " does not fit ", B, " images of ", H, " x ", W,
              " in tiles of ", tile_h, " x ", tile_w);
  TORCH_CHECK(candidates.dim() == 2 && candidates.scalar_type() == at::kLong &&
                  candidates.size(0) == weight.size(0) && candidates.size(1) == g.m,
              op, ": 'candidates' must be a LongTensor [T, m] like 'weight'");
  return g;
}

at::Tensor pool_channels_last(const at::Tensor& x_in, const at::Tensor& weight_in,
                              const at::Tensor& candidates_in, int64_t num_groups,
                              int64_t tile_h, int64_t tile_w, double eps) {
  TORCH_CHECK(x_in.dim() == 4, "pool_channels_last: 'x' must be [B, C, H, W]");
  const PoolTiling g = check_pool("pool_channels_last", x_in.size(0), x_in.size(1),
                                  x_in.size(2), x_in.size(3), weight_in, candidates_in, tile_h,
                                  tile_w);
  TORCH_CHECK(weight_in.scalar_type() == x_in.scalar_type(),
              "pool_channels_last: 'weight' must have the dtype of 'x'");
  const at::Tensor x = x_in.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor weight = weight_in.contiguous();
  const at::Tensor candidates = candidates_in.contiguous();
  at::Tensor out =
      at::zeros({num_groups, g.C}, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (num_groups == 0 || g.C == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pool_channels_last", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* w = weight.data_ptr<scalar_t>();
    const int64_t* cand = candidates.data_ptr<int64_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    std::vector<scalar_t> mass(num_groups, scalar_t(0));
    for (int64_t t = 0; t < weight.size(0); ++t) {
      for (int64_t j = 0; j < g.m; ++j) {
        const int64_t group = cand[t * g.m + j];
        TORCH_CHECK(group >= 0 && group < num_groups,
                    "pool_channels_last: 'candidates' must index groups in [0, ", num_groups,
                    ")");
        const scalar_t* row = w + (t * g.m + j) * g.P;
        scalar_t sum = 0;
        for (int64_t p = 0; p < g.P; ++p) sum += row[p];
        mass[group] += sum;
      }
    }
    // channel blocks of at least 16 (a cache line of floats) per task
    at::parallel_for(0, g.C, 16, [&](int64_t c0, int64_t c1) {
      for (int64_t b = 0; b < g.B; ++b) {
        for (int64_t y = 0; y < g.H; ++y) {
          for (int64_t x = 0; x < g.W; ++x) {
            const int64_t tile = g.tile(b, y, x), pos = g.pos(y, x);
            const scalar_t* pixel = xp + ((b * g.H + y) * g.W + x) * g.C;
            for (int64_t j = 0; j < g.m; ++j) {
              const scalar_t v = w[(tile * g.m + j) * g.P + pos];
              if (v == scalar_t(0)) continue;
              scalar_t* row = o + cand[tile * g.m + j] * g.C;
              _Pragma("omp simd")
              for (int64_t c = c0; c < c1; ++c) row[c] += v * pixel[c];
            }
          }
        }
      }
      for (int64_t group = 0; group < num_groups; ++group) {
        const scalar_t inv = scalar_t(1) / std::max(mass[group], static_cast<scalar_t>(eps));
        scalar_t* row = o + group * g.C;
        _Pragma("omp simd")
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
  const PoolTiling g = check_pool("unpool_channels_last", batch, z_in.size(1), height, width,
                                  weight_in, candidates_in, tile_h, tile_w);
  TORCH_CHECK(weight_in.scalar_type() == z_in.scalar_type(),
              "unpool_channels_last: 'weight' must have the dtype of 'z'");
  const at::Tensor z = z_in.contiguous();
  const at::Tensor weight = weight_in.contiguous();
  const at::Tensor candidates = candidates_in.contiguous();
  at::Tensor out = at::empty({batch, g.C, height, width},
                             z.options().memory_format(at::MemoryFormat::ChannelsLast));
  const int64_t num_groups = z.size(0);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "unpool_channels_last", [&] {
    const scalar_t* zp = z.data_ptr<scalar_t>();
    const scalar_t* w = weight.data_ptr<scalar_t>();
    const int64_t* cand = candidates.data_ptr<int64_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const int64_t pixels = batch * height * width;
    at::parallel_for(0, pixels, 64, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t b = i / (height * width), y = (i / width) % height, x = i % width;
        const int64_t tile = g.tile(b, y, x), pos = g.pos(y, x);
        scalar_t total = 0;
        for (int64_t j = 0; j < g.m; ++j) total += w[(tile * g.m + j) * g.P + pos];
        const scalar_t inv = scalar_t(1) / std::max(total, static_cast<scalar_t>(eps));
        scalar_t* row = o + i * g.C;
        std::fill(row, row + g.C, scalar_t(0));
        for (int64_t j = 0; j < g.m; ++j) {
          const scalar_t v = w[(tile * g.m + j) * g.P + pos];
          if (v == scalar_t(0)) continue;
          const int64_t group = cand[tile * g.m + j];
          TORCH_CHECK(group >= 0 && group < num_groups,
                      "unpool_channels_last: 'candidates' must index the rows of 'z'");
          const scalar_t* src = zp + group * g.C;
          const scalar_t a = v * inv;
          _Pragma("omp simd")
          for (int64_t c = 0; c < g.C; ++c) row[c] += a * src[c];
        }
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
