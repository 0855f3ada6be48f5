// Fused CPU kernel of the clustering embedding of ImageToGroupGraph: a 1x1
// convolution of every pixel,
//
//   e[b, :, y, x] = bias + W x[b, :, y, x]        (W [D, C], bias [D] or none)
//
// for x [B, C, H, W], contiguous or channels-last; e comes in the memory format of
// x. Every output starts from its bias (or 0) and adds the C products one by one
// in channel order, whatever the layout: an output depends only on its
// own pixel, so an image gives the same bits alone or in any batch, on any number
// of threads (the property the evaluation-mode clustering keeps; a GEMM library
// may block the sum differently for other batch sizes).
//
//   channels-last: blocks of pixels (several at once, for the reuse of every
//     weight row), the outputs of a pixel in whole vectors of the padded W^T;
//   contiguous: vectors of consecutive pixels of one plane, several outputs at
//     once, every weight broadcast.
//
// Threaded over blocks of pixels. Registered as pyg_hgconv::pixel_embedding
// (forward only; pyg_hgconv/nn/pool/fused_embedding.py adds the fake kernel).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "layout.h"
#include "vec.h"

namespace {

using namespace pyg_hgconv;

// Channels-last: outputs [d0, d0 + CH * lanes) of pixels [begin, end). x [N][C],
// wt [C][Dp] (W^T padded with zero columns to Dp), out [N][D].
template <typename T, int CH>
void pixel_rows(const T* x, int64_t C, const T* wt, int64_t Dp, const T* bias_padded,
                int64_t d0, int64_t D, int64_t begin, int64_t end, T* out) {
  using V = Vec<T>;
  using VT = typename V::type;
  constexpr int64_t L = V::lanes;
  constexpr int P = CH == 1 ? 8 : (CH == 2 ? 4 : 2);  // pixels per block: P * CH registers
  const int64_t width = std::min<int64_t>(CH * L, D - d0);  // outputs written per pixel
  VT start[CH];
  for (int k = 0; k < CH; ++k) start[k] = V::load(bias_padded + d0 + k * L);
  T spill[CH * L];
  auto write = [&](int64_t p, const VT* acc) {
    if (width == CH * L) {
      for (int k = 0; k < CH; ++k) V::store(out + p * D + d0 + k * L, acc[k]);
    } else {
      for (int k = 0; k < CH; ++k) V::store(spill + k * L, acc[k]);
      std::copy(spill, spill + width, out + p * D + d0);
    }
  };
  int64_t p = begin;
  for (; p + P <= end; p += P) {
    VT acc[P][CH];
    for (int i = 0; i < P; ++i)
      for (int k = 0; k < CH; ++k) acc[i][k] = start[k];
    const T* xp = x + p * C;
    for (int64_t c = 0; c < C; ++c) {
      VT w[CH];
      for (int k = 0; k < CH; ++k) w[k] = V::load(wt + c * Dp + d0 + k * L);
      for (int i = 0; i < P; ++i)
        for (int k = 0; k < CH; ++k) acc[i][k] += xp[i * C + c] * w[k];
    }
    for (int i = 0; i < P; ++i) write(p + i, acc[i]);
  }
  for (; p < end; ++p) {
    VT acc[CH];
    for (int k = 0; k < CH; ++k) acc[k] = start[k];
    for (int64_t c = 0; c < C; ++c)
      for (int k = 0; k < CH; ++k) acc[k] += x[p * C + c] * V::load(wt + c * Dp + d0 + k * L);
    write(p, acc);
  }
}

// Contiguous: outputs [d0, d0 + G) of the pixels [begin, end) of one image's
// planes. x [C][N], w [D][C], out [D][N].
template <typename T, int G>
void pixel_planes(const T* x, int64_t C, int64_t N, const T* w, const T* bias, int64_t d0,
                  int64_t begin, int64_t end, T* out) {
  using V = Vec<T>;
  using VT = typename V::type;
  constexpr int64_t L = V::lanes;
  auto block = [&](const T* xs, int64_t stride, VT* acc) {  // L pixels, stride between planes
    for (int g = 0; g < G; ++g) acc[g] = V::broadcast(bias ? bias[d0 + g] : T(0));
    for (int64_t c = 0; c < C; ++c) {
      const VT xv = V::load(xs + c * stride);
      for (int g = 0; g < G; ++g) acc[g] += w[(d0 + g) * C + c] * xv;
    }
  };
  int64_t p = begin;
  for (; p + L <= end; p += L) {
    VT acc[G];
    block(x + p, N, acc);
    for (int g = 0; g < G; ++g) V::store(out + (d0 + g) * N + p, acc[g]);
  }
  if (p < end) {  // the last pixels, padded to a whole vector: the same arithmetic
    const int64_t rest = end - p;
    std::vector<T> padded(C * L, T(0));
    for (int64_t c = 0; c < C; ++c) std::copy(x + c * N + p, x + c * N + end, padded.data() + c * L);
    VT acc[G];
    block(padded.data(), L, acc);
    T lanes[L];
    for (int g = 0; g < G; ++g) {
      V::store(lanes, acc[g]);
      std::copy(lanes, lanes + rest, out + (d0 + g) * N + p);
    }
  }
}

template <typename T>
void planes_of_block(const T* x, int64_t C, int64_t N, const T* w, const T* bias, int64_t D,
                     int64_t begin, int64_t end, T* out) {
  int64_t d = 0;
  for (; d + 16 <= D; d += 16) pixel_planes<T, 16>(x, C, N, w, bias, d, begin, end, out);
  if (d + 8 <= D) pixel_planes<T, 8>(x, C, N, w, bias, d, begin, end, out), d += 8;
  if (d + 4 <= D) pixel_planes<T, 4>(x, C, N, w, bias, d, begin, end, out), d += 4;
  if (d + 2 <= D) pixel_planes<T, 2>(x, C, N, w, bias, d, begin, end, out), d += 2;
  if (d + 1 <= D) pixel_planes<T, 1>(x, C, N, w, bias, d, begin, end, out);
}

template <typename T>
void rows_of_block(const T* x, int64_t C, const T* wt, int64_t Dp, const T* bias_padded,
                   int64_t D, int64_t begin, int64_t end, T* out) {
  constexpr int64_t L = Vec<T>::lanes;
  int64_t d = 0;
  for (; Dp - d >= 4 * L; d += 4 * L)
    pixel_rows<T, 4>(x, C, wt, Dp, bias_padded, d, D, begin, end, out);
  if (Dp - d >= 2 * L) pixel_rows<T, 2>(x, C, wt, Dp, bias_padded, d, D, begin, end, out), d += 2 * L;
  if (Dp - d >= L) pixel_rows<T, 1>(x, C, wt, Dp, bias_padded, d, D, begin, end, out);
}

constexpr int64_t kBlockPixels = 256;  // pixels per task

at::Tensor pixel_embedding(const at::Tensor& x_in, const at::Tensor& weight_in,
                           const std::optional<at::Tensor>& bias_in) {
  TORCH_CHECK(x_in.dim() == 4, "pixel_embedding: 'x' must be [B, C, H, W], got ", x_in.sizes());
  TORCH_CHECK(x_in.scalar_type() == at::kFloat || x_in.scalar_type() == at::kDouble,
              "pixel_embedding: 'x' must be float32 or float64, got ", x_in.scalar_type());
  TORCH_CHECK(weight_in.dim() == 2 && weight_in.size(1) == x_in.size(1) &&
                  weight_in.scalar_type() == x_in.scalar_type(),
              "pixel_embedding: 'weight' must be [D, C] = [D, ", x_in.size(1),
              "] with the dtype of 'x', got ", weight_in.sizes(), " ", weight_in.scalar_type());
  const int64_t B = x_in.size(0), C = x_in.size(1), H = x_in.size(2), W = x_in.size(3);
  const int64_t D = weight_in.size(0), N = H * W;
  if (bias_in.has_value())
    TORCH_CHECK(bias_in->dim() == 1 && bias_in->size(0) == D &&
                    bias_in->scalar_type() == x_in.scalar_type(),
                "pixel_embedding: 'bias' must be [D] = [", D, "] with the dtype of 'x', got ",
                bias_in->sizes());
  const bool channels_last = reads_channels_last(x_in);
  const at::Tensor x = channels_last ? x_in : x_in.contiguous();
  const at::MemoryFormat format =
      channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  at::Tensor out = at::empty({B, D, H, W}, x.options().memory_format(format));
  if (out.numel() == 0) return out;
  if (C == 0) {
    if (bias_in.has_value()) out.copy_(bias_in->view({1, D, 1, 1}).expand_as(out));
    else out.zero_();
    return out;
  }
  const at::Tensor weight = weight_in.contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pixel_embedding", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    T* o = out.data_ptr<T>();
    const T* w = weight.data_ptr<T>();
    const T* bias = bias_in.has_value() ? bias_in->contiguous().data_ptr<T>() : nullptr;
    if (channels_last) {
      // W^T [C][Dp] and the bias, padded with zeros to whole vectors
      const int64_t Dp = padded_length<T>(D);
      std::vector<T> wt(C * Dp, T(0)), bias_padded(Dp, T(0));
      for (int64_t d = 0; d < D; ++d)
        for (int64_t c = 0; c < C; ++c) wt[c * Dp + d] = w[d * C + c];
      if (bias) std::copy(bias, bias + D, bias_padded.begin());
      const int64_t total = B * N;  // channels-last pixels of all images, one after another
      const int64_t blocks = (total + kBlockPixels - 1) / kBlockPixels;
      at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t k = begin; k < end; ++k)
          rows_of_block<T>(xp, C, wt.data(), Dp, bias_padded.data(), D, k * kBlockPixels,
                           std::min(total, (k + 1) * kBlockPixels), o);
      });
    } else {
      const int64_t per_image = (N + kBlockPixels - 1) / kBlockPixels;
      at::parallel_for(0, B * per_image, 1, [&](int64_t begin, int64_t end) {
        for (int64_t k = begin; k < end; ++k) {
          const int64_t b = k / per_image, first = (k % per_image) * kBlockPixels;
          planes_of_block<T>(xp + b * C * N, C, N, w, bias, D, first,
                             std::min(N, first + kBlockPixels), o + b * D * N);
        }
      });
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pyg_hgconv, m) {
  m.def("pixel_embedding(Tensor x, Tensor weight, Tensor? bias) -> Tensor");
}

TORCH_LIBRARY_IMPL(pyg_hgconv, CPU, m) { m.impl("pixel_embedding", &pixel_embedding); }
