// Fused CPU kernel of the group adjacency of HG-Conv (paper, Eq. 4) for the
// four half directions delta in {(0, 1), (1, -1), (1, 0), (1, 1)}:
//
//   A[b, d, g, h] = sum_p S[p, g] * S[p + delta_d, h]
//
// over the pixels p of image b whose neighbour p + delta_d lies in the image,
// g and h the image's groups (local indices), S the tiled assignment
// ([T, m, P] weights of the m candidates of every tile, candidates [T, m]).
// Only the non-zero entries of S are visited: after the 1e-3 filter of
// Algorithm 1 a pixel keeps only a few of its m candidates, so a pixel pair
// costs a few products instead of the m x m of a dense tile block.
// Threaded over images with at::parallel_for (the images never touch).
//
// The backward gives the gradient of every stored weight, zeros included (the
// same as the dense formulation): dL/dS[p, g] = sum_d sum_h G[b, d, g, h] S[p + delta_d, h]
// + sum_d sum_g' G[b, d, g', g] S[p - delta_d, g'].
//
// Registered as pyg_hgconv::half_direction_blocks and
// pyg_hgconv::half_direction_blocks_backward; the Python side
// (pyg_hgconv/nn/pool/fused_adjacency.py) adds the fake kernels and the autograd formula.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

namespace {

constexpr int kHalf = 4;
constexpr int64_t kDy[kHalf] = {0, 1, 1, 1};
constexpr int64_t kDx[kHalf] = {1, -1, 0, 1};

struct Tiling {
  int64_t B, H, W, th, tw, tiles_y, tiles_x, m, P, n;
};

Tiling check(const at::Tensor& weight, const at::Tensor& local, int64_t batch, int64_t height,
             int64_t width, int64_t tile_h, int64_t tile_w, int64_t n) {
  TORCH_CHECK(weight.dim() == 3, "half_direction_blocks: 'weight' must be [T, m, P], got ",
              weight.sizes());
  TORCH_CHECK(local.dim() == 2 && local.scalar_type() == at::kLong,
              "half_direction_blocks: 'local' must be a LongTensor [T, m]");
  TORCH_CHECK(batch >= 1 && height >= 1 && width >= 1 && tile_h >= 1 && tile_w >= 1 && n >= 1,
              "half_direction_blocks: sizes must be >= 1");
  Tiling g{batch, height, width, tile_h, tile_w, (height + tile_h - 1) / tile_h,
           (width + tile_w - 1) / tile_w, weight.size(1), weight.size(2), n};
  TORCH_CHECK(weight.size(0) == batch * g.tiles_y * g.tiles_x && g.P == tile_h * tile_w,
              "half_direction_blocks: 'weight' ", weight.sizes(), " does not fit the tiling");
  TORCH_CHECK(local.size(0) == weight.size(0) && local.size(1) == g.m,
              "half_direction_blocks: 'local' must be [T, m] like 'weight'");
  TORCH_CHECK(local.numel() == 0 || (local.min().item<int64_t>() >= 0 &&
                                     local.max().item<int64_t>() < n),
              "half_direction_blocks: 'local' must index groups in [0, n = ", n, ")");
  return g;
}

// The non-zero entries of every pixel of one image: groups and weights, m slots
// per pixel (count[pixel] used), pixel-major. One per thread, refilled per image.
template <typename scalar_t>
struct ImageEntries {
  const Tiling& g;
  std::vector<int64_t> group;
  std::vector<scalar_t> value;
  std::vector<int> count;

  explicit ImageEntries(const Tiling& tiling)
      : g(tiling), group(tiling.H * tiling.W * tiling.m), value(tiling.H * tiling.W * tiling.m),
        count(tiling.H * tiling.W) {}

  void gather(int64_t b, const scalar_t* weight, const int64_t* local) {
    for (int64_t y = 0; y < g.H; ++y) {
      for (int64_t x = 0; x < g.W; ++x) {
        const int64_t tile = (b * g.tiles_y + y / g.th) * g.tiles_x + x / g.tw;
        const int64_t pos = (y % g.th) * g.tw + x % g.tw;
        const int64_t pixel = y * g.W + x;
        int c = 0;
        for (int64_t i = 0; i < g.m; ++i) {
          const scalar_t w = weight[(tile * g.m + i) * g.P + pos];
          if (w != scalar_t(0)) {
            group[pixel * g.m + c] = local[tile * g.m + i];
            value[pixel * g.m + c] = w;
            ++c;
          }
        }
        count[pixel] = c;
      }
    }
  }
};

// Calls fn(b, entries) for every image b with the image's non-zero entries gathered,
// threaded over the images (one gather buffer per thread).
template <typename scalar_t, typename Fn>
void for_each_image(const Tiling& g, const scalar_t* w, const int64_t* l, Fn&& fn) {
  at::parallel_for(0, g.B, 1, [&](int64_t begin, int64_t end) {
    ImageEntries<scalar_t> entries(g);
    for (int64_t b = begin; b < end; ++b) {
      entries.gather(b, w, l);
      fn(b, entries);
    }
  });
}

at::Tensor half_direction_blocks(const at::Tensor& weight_in, const at::Tensor& local_in,
                                 int64_t batch, int64_t height, int64_t width, int64_t tile_h,
                                 int64_t tile_w, int64_t n) {
  const Tiling g = check(weight_in, local_in, batch, height, width, tile_h, tile_w, n);
  const at::Tensor weight = weight_in.contiguous();
  const at::Tensor local = local_in.contiguous();
  at::Tensor out = at::zeros({g.B, kHalf, g.n, g.n}, weight.options());
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "half_direction_blocks", [&] {
    const scalar_t* w = weight.data_ptr<scalar_t>();
    const int64_t* l = local.data_ptr<int64_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    for_each_image(g, w, l, [&](int64_t b, const ImageEntries<scalar_t>& entries) {
      const auto& group = entries.group;
      const auto& value = entries.value;
      const auto& count = entries.count;
      scalar_t* block = o + b * kHalf * g.n * g.n;
      for (int64_t y = 0; y < g.H; ++y) {
        for (int64_t x = 0; x < g.W; ++x) {
          const int64_t p = y * g.W + x;
          for (int d = 0; d < kHalf; ++d) {
            const int64_t ny = y + kDy[d], nx = x + kDx[d];
            if (ny >= g.H || nx < 0 || nx >= g.W) continue;
            const int64_t q = ny * g.W + nx;
            scalar_t* plane = block + d * g.n * g.n;
            for (int i = 0; i < count[p]; ++i) {
              scalar_t* row = plane + group[p * g.m + i] * g.n;
              const scalar_t wp = value[p * g.m + i];
              for (int j = 0; j < count[q]; ++j) row[group[q * g.m + j]] += wp * value[q * g.m + j];
            }
          }
        }
      }
    });
  });
  return out;
}

at::Tensor half_direction_blocks_backward(const at::Tensor& grad_in, const at::Tensor& weight_in,
                                          const at::Tensor& local_in, int64_t batch,
                                          int64_t height, int64_t width, int64_t tile_h,
                                          int64_t tile_w, int64_t n) {
  const Tiling g = check(weight_in, local_in, batch, height, width, tile_h, tile_w, n);
  TORCH_CHECK(grad_in.dim() == 4 && grad_in.size(0) == g.B && grad_in.size(1) == kHalf &&
                  grad_in.size(2) == g.n && grad_in.size(3) == g.n,
              "half_direction_blocks_backward: 'grad' must be [B, 4, n, n]");
  const at::Tensor weight = weight_in.contiguous();
  const at::Tensor local = local_in.contiguous();
  const at::Tensor grad = grad_in.to(weight.scalar_type()).contiguous();
  at::Tensor out = at::zeros_like(weight);
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "half_direction_blocks_backward", [&] {
    const scalar_t* w = weight.data_ptr<scalar_t>();
    const int64_t* l = local.data_ptr<int64_t>();
    const scalar_t* gr = grad.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    for_each_image(g, w, l, [&](int64_t b, const ImageEntries<scalar_t>& entries) {
      const auto& group = entries.group;
      const auto& value = entries.value;
      const auto& count = entries.count;
      const scalar_t* block = gr + b * kHalf * g.n * g.n;
      for (int64_t y = 0; y < g.H; ++y) {
        for (int64_t x = 0; x < g.W; ++x) {
          const int64_t tile = (b * g.tiles_y + y / g.th) * g.tiles_x + x / g.tw;
          const int64_t pos = (y % g.th) * g.tw + x % g.tw;
          for (int64_t i = 0; i < g.m; ++i) {  // every stored weight, zeros included
            const int64_t gi = l[tile * g.m + i];
            scalar_t acc = 0;
            for (int d = 0; d < kHalf; ++d) {
              const scalar_t* plane = block + d * g.n * g.n;
              // p is the target: its neighbour q = p + delta is the source
              const int64_t ny = y + kDy[d], nx = x + kDx[d];
              if (ny < g.H && nx >= 0 && nx < g.W) {
                const int64_t q = ny * g.W + nx;
                const scalar_t* row = plane + gi * g.n;
                for (int j = 0; j < count[q]; ++j) acc += row[group[q * g.m + j]] * value[q * g.m + j];
              }
              // p is the source of the pixel r = p - delta
              const int64_t ry = y - kDy[d], rx = x - kDx[d];
              if (ry >= 0 && rx >= 0 && rx < g.W) {
                const int64_t r = ry * g.W + rx;
                for (int j = 0; j < count[r]; ++j)
                  acc += plane[group[r * g.m + j] * g.n + gi] * value[r * g.m + j];
              }
            }
            o[(tile * g.m + i) * g.P + pos] = acc;
          }
        }
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(pyg_hgconv, m) {
  m.def("half_direction_blocks(Tensor weight, Tensor local, int batch, int height, int width, "
        "int tile_h, int tile_w, int n) -> Tensor");
  m.def("half_direction_blocks_backward(Tensor grad, Tensor weight, Tensor local, int batch, "
        "int height, int width, int tile_h, int tile_w, int n) -> Tensor");
}

TORCH_LIBRARY_IMPL(pyg_hgconv, CPU, m) {
  m.impl("half_direction_blocks", &half_direction_blocks);
  m.impl("half_direction_blocks_backward", &half_direction_blocks_backward);
}
