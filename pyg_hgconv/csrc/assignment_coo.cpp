// The coordinate form of HG-Conv's tiled assignment S: every non-zero weight of
// the [T, m, P] tiles as (pixel, group, weight), sorted by pixel (row-major over
// the images of the batch), then by candidate slot -- what
// TiledAssignment.to_coo in pyg_hgconv/nn/pool/tiling.py computes with a
// permuting copy of the weights and of the candidates, a nonzero and two gathers.
//
// Two passes threaded over images: count every image's entries, then write them
// at the image's offset (the prefix sum of the counts), so the result is the same
// for any number of threads.
//
// Registered as pyg_hgconv::tiles_to_coo (forward only; the Python side,
// pyg_hgconv/nn/pool/fused_coo.py, adds the fake kernel and calls it only where
// no gradient is needed).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

namespace {

std::tuple<at::Tensor, at::Tensor> tiles_to_coo(const at::Tensor& weight_in,
                                                const at::Tensor& candidates_in, int64_t batch,
                                                int64_t height, int64_t width, int64_t tile_h,
                                                int64_t tile_w) {
  TORCH_CHECK(weight_in.dim() == 3, "tiles_to_coo: 'weight' must be [T, m, P], got ",
              weight_in.sizes());
  TORCH_CHECK(batch >= 1 && height >= 1 && width >= 1 && tile_h >= 1 && tile_w >= 1,
              "tiles_to_coo: sizes must be >= 1");
  const int64_t tiles_y = (height + tile_h - 1) / tile_h, tiles_x = (width + tile_w - 1) / tile_w;
  const int64_t m = weight_in.size(1), P = weight_in.size(2);
  TORCH_CHECK(weight_in.size(0) == batch * tiles_y * tiles_x && P == tile_h * tile_w,
              "tiles_to_coo: 'weight' ", weight_in.sizes(), " does not fit the tiling");
  TORCH_CHECK(candidates_in.dim() == 2 && candidates_in.scalar_type() == at::kLong &&
                  candidates_in.size(0) == weight_in.size(0) && candidates_in.size(1) == m,
              "tiles_to_coo: 'candidates' must be a LongTensor [T, m] like 'weight'");
  const at::Tensor weight = weight_in.contiguous();
  const at::Tensor candidates = candidates_in.contiguous();
  const int64_t pixels = height * width;
  std::vector<int64_t> offset(batch + 1, 0);
  at::Tensor index, value;
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "tiles_to_coo", [&] {
    const scalar_t* w = weight.data_ptr<scalar_t>();
    const int64_t* c = candidates.data_ptr<int64_t>();
    // visit(b, fn): fn(pixel, tile, slot) for every non-zero of image b in output order
    auto visit = [&](int64_t b, auto&& fn) {
      for (int64_t y = 0; y < height; ++y) {
        for (int64_t x = 0; x < width; ++x) {
          const int64_t tile = (b * tiles_y + y / tile_h) * tiles_x + x / tile_w;
          const int64_t pos = (y % tile_h) * tile_w + x % tile_w;
          const int64_t pixel = b * pixels + y * width + x;
          for (int64_t j = 0; j < m; ++j)
            if (w[(tile * m + j) * P + pos] > scalar_t(0)) fn(pixel, tile, j, pos);
        }
      }
    };
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        int64_t count = 0;
        visit(b, [&](int64_t, int64_t, int64_t, int64_t) { ++count; });
        offset[b + 1] = count;
      }
    });
    for (int64_t b = 0; b < batch; ++b) offset[b + 1] += offset[b];
    index = at::empty({2, offset[batch]}, candidates.options());
    value = at::empty({offset[batch]}, weight.options());
    int64_t* pixel_out = index.data_ptr<int64_t>();
    int64_t* group_out = pixel_out + offset[batch];
    scalar_t* value_out = value.data_ptr<scalar_t>();
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        int64_t k = offset[b];
        visit(b, [&](int64_t pixel, int64_t tile, int64_t j, int64_t pos) {
          pixel_out[k] = pixel;
          group_out[k] = c[tile * m + j];
          value_out[k] = w[(tile * m + j) * P + pos];
          ++k;
        });
      }
    });
  });
  return {index, value};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pyg_hgconv, m) {
  m.def("tiles_to_coo(Tensor weight, Tensor candidates, int batch, int height, int width, "
        "int tile_h, int tile_w) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(pyg_hgconv, CPU, m) { m.impl("tiles_to_coo", &tiles_to_coo); }
