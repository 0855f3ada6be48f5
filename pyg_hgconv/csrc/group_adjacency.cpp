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
// costs a few products instead of the m x m of a dense tile block (entries.h,
// shared with the whole clustering op of clustering.cpp). Threaded over images
// with at::parallel_for (the images never touch).
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

#include "entries.h"

namespace {

using namespace pyg_hgconv;

struct Tiling {
  int64_t B, n;
  ImageTiling image;
};

Tiling check(const at::Tensor& weight, const at::Tensor& local, int64_t batch, int64_t height,
             int64_t width, int64_t tile_h, int64_t tile_w, int64_t n) {
  TORCH_CHECK(weight.dim() == 3, "half_direction_blocks: 'weight' must be [T, m, P], got ",
              weight.sizes());
  TORCH_CHECK(local.dim() == 2 && local.scalar_type() == at::kLong,
              "half_direction_blocks: 'local' must be a LongTensor [T, m]");
  TORCH_CHECK(batch >= 1 && height >= 1 && width >= 1 && tile_h >= 1 && tile_w >= 1 && n >= 1,
              "half_direction_blocks: sizes must be >= 1");
  const Tiling g{batch, n, ImageTiling(height, width, tile_h, tile_w, weight.size(1))};
  TORCH_CHECK(weight.size(0) == batch * g.image.tiles() && weight.size(2) == g.image.P,
              "half_direction_blocks: 'weight' ", weight.sizes(), " does not fit the tiling");
  TORCH_CHECK(local.size(0) == weight.size(0) && local.size(1) == g.image.m,
              "half_direction_blocks: 'local' must be [T, m] like 'weight'");
  TORCH_CHECK(local.numel() == 0 || (local.min().item<int64_t>() >= 0 &&
                                     local.max().item<int64_t>() < n),
              "half_direction_blocks: 'local' must index groups in [0, n = ", n, ")");
  return g;
}

// Calls fn(b, entries) for every image b with the image's non-zero entries gathered
// (PixelEntries, entries.h), threaded over the images (one gather buffer per thread).
template <typename scalar_t, typename Fn>
void for_each_image(const Tiling& g, const scalar_t* w, const int64_t* l, Fn&& fn) {
  const int64_t per_image = g.image.tiles() * g.image.m;
  at::parallel_for(0, g.B, 1, [&](int64_t begin, int64_t end) {
    PixelEntries<scalar_t> entries;
    for (int64_t b = begin; b < end; ++b) {
      entries.gather(g.image, w + b * per_image * g.image.P, l + b * per_image);
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
    for_each_image(g, w, l, [&](int64_t b, const PixelEntries<scalar_t>& entries) {
      accumulate_half_blocks(g.image, entries, o + b * kHalf * g.n * g.n, g.n);
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
    const ImageTiling& im = g.image;
    for_each_image(g, w, l, [&](int64_t b, const PixelEntries<scalar_t>& entries) {
      const auto& group = entries.group;
      const auto& value = entries.value;
      const auto& count = entries.count;
      const scalar_t* block = gr + b * kHalf * g.n * g.n;
      for (int64_t y = 0; y < im.H; ++y) {
        for (int64_t x = 0; x < im.W; ++x) {
          const int64_t tile = b * im.tiles() + im.tile(y, x), pos = im.position(y, x);
          for (int64_t i = 0; i < im.m; ++i) {  // every stored weight, zeros included
            const int64_t gi = l[tile * im.m + i];
            scalar_t acc = 0;
            for (int d = 0; d < kHalf; ++d) {
              const scalar_t* plane = block + d * g.n * g.n;
              // p is the target: its neighbour q = p + delta is the source
              const int64_t ny = y + kHalfDy[d], nx = x + kHalfDx[d];
              if (ny < im.H && nx >= 0 && nx < im.W) {
                const int64_t q = ny * im.W + nx;
                const scalar_t* row = plane + gi * g.n;
                for (int j = 0; j < count[q]; ++j)
                  acc += row[group[q * im.m + j]] * value[q * im.m + j];
              }
              // p is the source of the pixel r = p - delta
              const int64_t ry = y - kHalfDy[d], rx = x - kHalfDx[d];
              if (ry >= 0 && rx >= 0 && rx < im.W) {
                const int64_t r = ry * im.W + rx;
                for (int j = 0; j < count[r]; ++j)
                  acc += plane[group[r * im.m + j] * g.n + gi] * value[r * im.m + j];
              }
            }
            o[(tile * im.m + i) * im.P + pos] = acc;
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
