// Fused CPU kernel of HG-Conv's importance map (paper, Sec. 4.1):
//
//   C_imp[p] = 1 / |N(p)| sum_{q in N(p)} ||x_p - x_q||_2
//
// with N(p) the up to eight neighbours of p inside the image, for features x
// [B, C, H, W] (contiguous or channels-last). Every unordered pair is computed
// once, for the four half directions (0, 1), (1, -1), (1, 0), (1, 1), and added
// to both of its pixels in the order of the PyTorch path
// (pyg_hgconv/nn/pool/importance.py: direction by direction, the pixel with the
// later neighbour first), so a one-channel map gives the same bits. Threaded over
// images; a contiguous map sums its squared differences plane by plane, a
// channels-last one pixel by pixel.
//
// Registered as pyg_hgconv::importance_map (forward only: the map is detached;
// pyg_hgconv/nn/pool/fused_importance.py adds the fake kernel).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "entries.h"
#include "layout.h"

namespace {

using namespace pyg_hgconv;

template <typename scalar_t>
void importance_image(const scalar_t* x, int64_t C, int64_t H, int64_t W, int64_t channel_stride,
                      int64_t pixel_stride, scalar_t* out, std::vector<scalar_t>& squared) {
  const int64_t N = H * W;
  squared.resize(N);
  std::fill(out, out + N, scalar_t(0));
  for (int d = 0; d < kHalf; ++d) {
    const int64_t dy = kHalfDy[d], dx = kHalfDx[d];
    const int64_t x0 = std::max<int64_t>(0, -dx), x1 = W - std::max<int64_t>(0, dx);
    const int64_t rows = H - dy;
    const int64_t shift = dy * W + dx;  // q = p + shift
    // squared distance of every pixel p whose neighbour p + delta lies in the image
    std::fill(squared.begin(), squared.end(), scalar_t(0));
    if (pixel_stride == 1) {  // contiguous planes: plane by plane, vectorised over x
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* plane = x + c * channel_stride;
        for (int64_t y = 0; y < rows; ++y) {
          scalar_t* sq = squared.data() + y * W;
          const scalar_t* a = plane + y * W;
#pragma omp simd
          for (int64_t i = x0; i < x1; ++i) {
            const scalar_t diff = a[i] - a[i + shift];
            sq[i] += diff * diff;
          }
        }
      }
    } else {  // channels-last: the channels of a pixel are contiguous
      for (int64_t y = 0; y < rows; ++y) {
        for (int64_t i = x0; i < x1; ++i) {
          const scalar_t* a = x + (y * W + i) * pixel_stride;
          const scalar_t* b = a + shift * pixel_stride;
          scalar_t acc = 0;
          for (int64_t c = 0; c < C; ++c) {
            const scalar_t diff = a[c * channel_stride] - b[c * channel_stride];
            acc += diff * diff;
          }
          squared[y * W + i] = acc;
        }
      }
    }
    for (int64_t y = 0; y < rows; ++y) {
      scalar_t* sq = squared.data() + y * W;
      scalar_t* o = out + y * W;
#pragma omp simd
      for (int64_t i = x0; i < x1; ++i) {
        sq[i] = std::sqrt(sq[i]);
        o[i] += sq[i];
      }
    }
    for (int64_t y = 0; y < rows; ++y)
      for (int64_t i = x0; i < x1; ++i) out[y * W + i + shift] += squared[y * W + i];
  }
  // the mean over the 8-neighbours inside the image: (rows * columns of the 3x3
  // window inside the image) - 1 of them
  for (int64_t y = 0; y < H; ++y) {
    const int64_t rows_in = std::min<int64_t>(y + 1, H - 1) - std::max<int64_t>(y - 1, 0) + 1;
    scalar_t* o = out + y * W;
    for (int64_t i = 0; i < W; ++i) {
      const int64_t cols_in = std::min<int64_t>(i + 1, W - 1) - std::max<int64_t>(i - 1, 0) + 1;
      o[i] /= std::max<scalar_t>(scalar_t(rows_in * cols_in - 1), scalar_t(1));
    }
  }
}

at::Tensor importance_map(const at::Tensor& x_in) {
  TORCH_CHECK(x_in.dim() == 4, "importance_map: 'x' must be [B, C, H, W], got ", x_in.sizes());
  TORCH_CHECK(at::isFloatingType(x_in.scalar_type()),
              "importance_map: 'x' must be a floating-point tensor");
  const bool channels_last = reads_channels_last(x_in);
  const at::Tensor x = channels_last ? x_in : x_in.contiguous();
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor out = at::empty({B, H, W}, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "importance_map", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const int64_t image_stride = x.stride(0), channel_stride = x.stride(1);
    const int64_t pixel_stride = channels_last ? C : 1;
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> squared;
      for (int64_t b = begin; b < end; ++b)
        importance_image(xp + b * image_stride, C, H, W, channel_stride, pixel_stride,
                         o + b * H * W, squared);
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pyg_hgconv, m) { m.def("importance_map(Tensor x) -> Tensor"); }

TORCH_LIBRARY_IMPL(pyg_hgconv, CPU, m) { m.impl("importance_map", &importance_map); }
