// Fused CPU kernels of the translation-variant depthwise convolution (TVConv, Eq. 2):
//
//   O[n, c, i, j] = bias[c, i, j] + sum_{a, b} W[c, a*k + b, i, j] * X[n, c, s*i + a - p, s*j + b - p]
//
// with zero padding p = (k - 1) / 2 and output size (H + 2p - k) / s + 1 per axis.
// One pass over the input per output row, accumulating the k*k taps in place,
// threaded with at::parallel_for and vectorised over the contiguous axis: channels for
// channels-last inputs (threaded over rows and images; 3x3 kernels whose taps all lie
// inside the image run with the taps unrolled, InteriorTaps3x3), the flattened (phase)
// planes for contiguous ones (forward_flat: one shift per tap, the row-wrapping inputs
// masked; threaded over channels and groups of images).
// The channels-last kernels read the per-pixel kernels in place (and write their
// gradient in the same layout) wherever the channels are innermost in memory:
// tap-major (k*k, Ho, Wo, C), as TVConv caches them, or pixel-major (Ho, Wo, k*k, C),
// as its weight generator produces them channels-last in training.
// The backward computes the gradients of the input and of the per-pixel kernels
// (the bias gradient, a sum over the batch, is left to the caller).
// float32 and float64 throughout; bfloat16 forward summed in float32 and rounded to
// nearest even once per output (as c10::BFloat16 rounds): the channels-last kernel
// widens what it reads, forward_flat widens the planes of each task into float
// buffers; the backward kernels widen what they read and sum each task's gradients
// in float buffers, rounded once as they are written.
//
// Registered as tvconv::per_pixel_conv and tvconv::per_pixel_conv_backward; the
// Python side (tvconv/fused.py) adds the fake (meta) kernels and the autograd formula.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

namespace {

int64_t output_size(int64_t n, int64_t k, int64_t s) { return (n + 2 * ((k - 1) / 2) - k) / s + 1; }

// Outputs o in [lo, hi) whose input s*o + d lies in [0, n_in).
inline void valid_range(int64_t n_in, int64_t n_out, int64_t d, int64_t s, int64_t& lo, int64_t& hi) {
  lo = d >= 0 ? 0 : (-d + s - 1) / s;
  const int64_t top = n_in - 1 - d;
  hi = top < 0 ? 0 : std::min(n_out, top / s + 1);
  if (hi < lo) hi = lo;
}

struct Geometry {
  int64_t N, C, H, W, Ho, Wo, k, s, p;
};

Geometry check_inputs(const at::Tensor& x, const at::Tensor& weight, int64_t stride) {
  TORCH_CHECK(x.dim() == 4, "per_pixel_conv: 'x' must be [B, C, H, W], got ", x.sizes());
  TORCH_CHECK(weight.dim() == 4, "per_pixel_conv: 'weight' must be [C, k*k, H_out, W_out], got ",
              weight.sizes());
  TORCH_CHECK(stride >= 1, "per_pixel_conv: 'stride' must be >= 1, got ", stride);
  TORCH_CHECK(x.scalar_type() == weight.scalar_type(), "per_pixel_conv: 'x' and 'weight' dtypes differ");
  Geometry g;
  g.N = x.size(0); g.C = x.size(1); g.H = x.size(2); g.W = x.size(3);
  const int64_t taps = weight.size(1);
  g.k = 1;
  while (g.k * g.k < taps) ++g.k;
  TORCH_CHECK(g.k * g.k == taps && g.k % 2 == 1, "per_pixel_conv: 'weight' must hold k*k taps, odd k");
  TORCH_CHECK(g.k <= 11, "per_pixel_conv: kernel sizes up to 11 are supported, got ", g.k);
  g.s = stride; g.p = (g.k - 1) / 2;
  g.Ho = output_size(g.H, g.k, g.s); g.Wo = output_size(g.W, g.k, g.s);
  TORCH_CHECK(weight.size(0) == g.C && weight.size(2) == g.Ho && weight.size(3) == g.Wo,
              "per_pixel_conv: 'weight' ", weight.sizes(), " does not fit 'x' ", x.sizes(),
              " with stride ", stride);
  return g;
}

bool use_channels_last(const at::Tensor& x) {
  return x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous();
}

// Strides (in elements) of the taps, output rows and output columns of per-pixel kernels
// [C, k*k, Ho, Wo] whose channels are innermost (stride 1): the channels-last kernels
// read and write them in place, whatever the order of the other three axes, e.g.
// tap-major (k*k, Ho, Wo, C) or pixel-major (Ho, Wo, k*k, C).
struct KernelStrides {
  int64_t t, i, j;
};

KernelStrides strides_of(const at::Tensor& w) { return {w.stride(1), w.stride(2), w.stride(3)}; }

bool has_channels_innermost(const at::Tensor& weight) {
  return weight.stride(0) == 1 && weight.is_non_overlapping_and_dense();
}

// `weight` itself where its channels are innermost and its storage is dense, else a
// tap-major (k*k, Ho, Wo, C) copy, viewed as [C, k*k, Ho, Wo].
at::Tensor channels_innermost(const at::Tensor& weight) {
  if (has_channels_innermost(weight)) return weight;
  return weight.permute({1, 2, 3, 0}).contiguous().permute({3, 0, 1, 2});
}

// An uninitialised tensor in the layout channels_innermost(weight) has.
at::Tensor empty_like_channels_innermost(const at::Tensor& weight) {
  if (has_channels_innermost(weight)) {
    return at::empty_strided(weight.sizes(), weight.strides(), weight.options());
  }
  return at::empty({weight.size(1), weight.size(2), weight.size(3), weight.size(0)},
                   weight.options()).permute({3, 0, 1, 2});
}

// ---------------------------------------------------------------- forward
// The backward of contiguous inputs narrower than this runs channels-last (rows of a
// few pixels are too short to vectorise); tvconv/fused.py mirrors the constant.
constexpr int64_t kMinContiguousWidth = 32;
// Images forward_flat accumulates side by side.
constexpr int64_t kFlatImages = 4;
// Contiguous inputs at stride 2 run forward_flat where their rows span at least these
// bytes (two vectors) or have an even width, else the channels-last kernel;
// tvconv/fused.py mirrors it.
constexpr int64_t kFlatMinStridedRowBytes = 128;
// Bytes of input planes forward_flat copies for one group of images of a channel.
constexpr int64_t kFlatBufferBytes = 512 * 1024;
// Bytes of per-pixel kernels a block of output rows should span (L2-sized).
constexpr int64_t kBlockBytes = 512 * 1024;

inline int64_t row_block(int64_t bytes_per_row, int64_t rows) {
  return std::max<int64_t>(1, std::min<int64_t>(rows, kBlockBytes / std::max<int64_t>(1, bytes_per_row)));
}

// One output pixel (i, j) of `Images` images: every valid tap accumulated in vector
// registers (GCC/Clang vector extensions, 64 bytes: one AVX-512 register, two AVX2 ones)
// before one store; each per-pixel kernel vector is loaded once for all the images.
constexpr int64_t kImages = 4;
constexpr int64_t MAX_TAPS = 121;  // k <= 11

template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(64)));
  static constexpr int64_t lanes = 64 / sizeof(T);
  static inline type load(const T* p) { type v; __builtin_memcpy(&v, p, sizeof(v)); return v; }
  static inline void store(T* p, type v) { __builtin_memcpy(p, &v, sizeof(v)); }
};

// How the forward kernels read and write values of type T, a vector of Io<T>::V at a
// time: float and double as they are; bfloat16 widened to float (exact) and
// written back rounded to nearest even, so that a bfloat16 output is its float sum
// rounded once. A NaN keeps its upper half: every NaN of the sum is one of the inputs'
// (widened, so its lower half is zero) or the default NaN (likewise), and rounding a
// zero lower half carries nothing into it.
template <typename T>
struct Io {
  using Compute = T;
  using V = Vec<T>;
  static constexpr bool kPairs = false;  // see Io<c10::BFloat16>::load_pairs
  static inline typename V::type load(const T* p) { return V::load(p); }
  static inline void store(T* p, typename V::type v) { V::store(p, v); }
};

template <>
struct Io<c10::BFloat16> {
  using Compute = float;
  using V = Vec<float>;
  typedef uint16_t Halves __attribute__((vector_size(V::lanes * 2)));
  typedef uint16_t Pairs __attribute__((vector_size(V::lanes * 4)));
  typedef uint32_t Words __attribute__((vector_size(V::lanes * 4)));
  // float i's low half from the zero vector, its high half the bfloat16 value: one shuffle
  template <size_t... I>
  static inline Pairs widen(Halves h, std::index_sequence<I...>) {
    return __builtin_shufflevector(Halves{}, h, ((I % 2) ? V::lanes + I / 2 : I / 2)...);
  }
  static inline V::type load(const c10::BFloat16* p) {
    Halves h;
    __builtin_memcpy(&h, p, sizeof(h));
    const Pairs w = widen(h, std::make_index_sequence<2 * V::lanes>{});
    V::type v;
    __builtin_memcpy(&v, &w, sizeof(v));
    return v;
  }
  static inline void store(c10::BFloat16* p, V::type v) {
    const Halves h = __builtin_convertvector(rounded_high(v) >> 16, Halves);
    __builtin_memcpy(p, &h, sizeof(h));
  }
  // Two vectors of bfloat16 at a time, without a shuffle: the even channels
  // (2i, the low halves of 32-bit words) shifted up, the odd ones (the high halves)
  // masked; the sums of both are rounded and packed back into the words.
  static constexpr bool kPairs = true;
  static inline void load_pairs(const c10::BFloat16* p, V::type& even, V::type& odd) {
    Words w;
    __builtin_memcpy(&w, p, sizeof(w));
    const Words e = w << 16, o = w & 0xFFFF0000u;
    __builtin_memcpy(&even, &e, sizeof(even));
    __builtin_memcpy(&odd, &o, sizeof(odd));
  }
  static inline void store_pairs(c10::BFloat16* p, V::type even, V::type odd) {
    const Words w = (rounded_high(even) >> 16) | (rounded_high(odd) & 0xFFFF0000u);
    __builtin_memcpy(p, &w, sizeof(w));
  }

 private:
  // v rounded to nearest even at bit 16: its bfloat16 in the high half of every word
  static inline Words rounded_high(V::type v) {
    Words w;
    __builtin_memcpy(&w, &v, sizeof(w));
    return w + 0x7FFFu + ((w >> 16) & 1u);
  }
};

// Whether values stored as S are computed in a wider type (bfloat16 in float), so that
// a kernel widens what it reads and sums in a buffer it rounds into the output.
template <typename S>
constexpr bool kWidens = !std::is_same_v<S, typename Io<S>::Compute>;

// The taps of one output pixel as pixel() reads them: their number, the per-pixel
// kernel of tap t (channels innermost) and its input's offset.
template <typename T>
struct ListedTaps {  // the taps inside the image, listed
  const T* const* w;
  const int64_t* x_off;
  int64_t n;
  int64_t count() const { return n; }
  const T* weight(int64_t t) const { return w[t]; }
  int64_t offset(int64_t t) const { return x_off[t]; }
};

template <typename T>
struct InteriorTaps3x3 {  // all nine taps of a 3x3 kernel inside the image
  int64_t x_centre, row_stride, channels;
  const T* w0;
  int64_t tap_stride;
  static constexpr int64_t count() { return 9; }
  const T* weight(int64_t t) const { return w0 + t * tap_stride; }
  int64_t offset(int64_t t) const {
    return x_centre + (t / 3 - 1) * row_stride + (t % 3 - 1) * channels;
  }
};

// One output pixel of `Images` images over the taps of `taps`; with a tap count
// known at compile time (InteriorTaps3x3) the loop over the taps unrolls and keeps
// its pointers and offsets in registers.
template <typename T, int64_t Images, typename Taps>
inline void pixel(T* const* o, const T* const* x, const Taps& taps, const T* __restrict bias,
                  int64_t channels) {
  using IO = Io<T>;
  using V = typename IO::V;
  using C = typename IO::Compute;
  int64_t c0 = 0;
  if constexpr (IO::kPairs) {  // bfloat16: two vectors of channels, even and odd apart
    for (; c0 + 2 * V::lanes <= channels; c0 += 2 * V::lanes) {
      typename V::type even[Images], odd[Images], even0{}, odd0{};
      if (bias) IO::load_pairs(bias + c0, even0, odd0);
      for (int64_t n = 0; n < Images; ++n) {
        even[n] = even0;
        odd[n] = odd0;
      }
#pragma GCC unroll 9
      for (int64_t t = 0; t < taps.count(); ++t) {
        typename V::type we, wo;
        IO::load_pairs(taps.weight(t) + c0, we, wo);
        const int64_t off = taps.offset(t) + c0;
        for (int64_t n = 0; n < Images; ++n) {
          typename V::type xe, xo;
          IO::load_pairs(x[n] + off, xe, xo);
          even[n] += we * xe;
          odd[n] += wo * xo;
        }
      }
      for (int64_t n = 0; n < Images; ++n) IO::store_pairs(o[n] + c0, even[n], odd[n]);
    }
  }
  for (; c0 + V::lanes <= channels; c0 += V::lanes) {
    typename V::type acc[Images];
    const typename V::type init = bias ? IO::load(bias + c0) : typename V::type{};
    for (int64_t n = 0; n < Images; ++n) acc[n] = init;
#pragma GCC unroll 9
    for (int64_t t = 0; t < taps.count(); ++t) {
      const typename V::type wv = IO::load(taps.weight(t) + c0);
      const int64_t off = taps.offset(t) + c0;
      for (int64_t n = 0; n < Images; ++n) acc[n] += wv * IO::load(x[n] + off);
    }
    for (int64_t n = 0; n < Images; ++n) IO::store(o[n] + c0, acc[n]);
  }
  for (; c0 < channels; ++c0) {
    for (int64_t n = 0; n < Images; ++n) {
      C acc = bias ? C(bias[c0]) : C(0);
      for (int64_t t = 0; t < taps.count(); ++t)
        acc += C(taps.weight(t)[c0]) * C(x[n][taps.offset(t) + c0]);
      o[n][c0] = T(acc);
    }
  }
}

// pixel() for every image of a group (whole groups at once).
template <typename T, typename Taps>
inline void pixel_of_images(T* const* o, const T* const* x, int64_t images, const Taps& taps,
                            const T* __restrict bias, int64_t channels) {
  if (images == kImages) {
    pixel<T, kImages>(o, x, taps, bias, channels);
  } else {
    for (int64_t n = 0; n < images; ++n) pixel<T, 1>(o + n, x + n, taps, bias, channels);
  }
}

template <typename T>
void forward_channels_last(const T* __restrict x, const T* __restrict w, const KernelStrides& ws,
                           const T* __restrict bias, T* __restrict out, const Geometry& g) {
  const int64_t row_len = g.Wo * g.C;
  // Tasks are (block of output rows, group of kImages images), block-major: the kernels
  // of a block (~L2-sized) are reused by every image group.
  const int64_t rows_per_block = row_block(g.k * g.k * row_len * int64_t(sizeof(T)), g.Ho);
  const int64_t blocks = (g.Ho + rows_per_block - 1) / rows_per_block;
  const int64_t groups = (g.N + kImages - 1) / kImages;
  at::parallel_for(0, blocks * groups, 1, [&](int64_t begin, int64_t end) {
    const T* wt[MAX_TAPS];
    int64_t x_off[MAX_TAPS];
    T* o[kImages];
    const T* xi[kImages];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n0 = (task % groups) * kImages, i0 = (task / groups) * rows_per_block;
      const int64_t images = std::min(kImages, g.N - n0);
      for (int64_t i = i0; i < std::min(g.Ho, i0 + rows_per_block); ++i) {
        for (int64_t n = 0; n < images; ++n) {
          o[n] = out + ((n0 + n) * g.Ho + i) * row_len;
          xi[n] = x + (n0 + n) * g.H * g.W * g.C;
        }
        const bool rows_inside = g.s * i - g.p >= 0 && g.s * i + g.k - 1 - g.p < g.H;
        for (int64_t j = 0; j < g.Wo; ++j) {
          T* oj[kImages];
          for (int64_t n = 0; n < images; ++n) oj[n] = o[n] + j * g.C;
          const T* bj = bias ? bias + i * row_len + j * g.C : nullptr;
          if (g.k == 3 && rows_inside && g.s * j - 1 >= 0 && g.s * j + 1 < g.W) {
            const InteriorTaps3x3<T> taps{(g.s * i * g.W + g.s * j) * g.C, g.W * g.C, g.C,
                                          w + i * ws.i + j * ws.j, ws.t};
            pixel_of_images(oj, xi, images, taps, bj, g.C);
            continue;
          }
          int64_t taps = 0;
          for (int64_t a = 0; a < g.k; ++a) {
            const int64_t row = g.s * i + a - g.p;
            if (row < 0 || row >= g.H) continue;
            for (int64_t b = 0; b < g.k; ++b) {
              const int64_t col = g.s * j + b - g.p;
              if (col < 0 || col >= g.W) continue;
              wt[taps] = w + (a * g.k + b) * ws.t + i * ws.i + j * ws.j;
              x_off[taps] = (row * g.W + col) * g.C;
              ++taps;
            }
          }
          pixel_of_images(oj, xi, images, ListedTaps<T>{wt, x_off, taps}, bj, g.C);
        }
      }
    }
  });
}

// Contiguous (NCHW) layout: calls fn(t, xs, lo, hi) for every tap t = a * k + b whose
// input row s * i + a - p of output row i lies inside the plane x_plane [H, W]; xs
// points at input column b - p of that row and [lo, hi) are the output columns whose
// input column lies inside the row.
template <typename T, typename Fn>
inline void for_each_tap_of_row(const T* x_plane, int64_t i, const Geometry& g, Fn&& fn) {
  for (int64_t a = 0; a < g.k; ++a) {
    const int64_t row = g.s * i + a - g.p;
    if (row < 0 || row >= g.H) continue;
    const T* xr = x_plane + row * g.W;
    for (int64_t b = 0; b < g.k; ++b) {
      int64_t lo, hi;
      valid_range(g.W, g.Wo, b - g.p, g.s, lo, hi);
      fn(a * g.k + b, xr + b - g.p, lo, hi);
    }
  }
}

// dst[j] += a[j] * xs[s * j] for j in [lo, hi), in dst's (compute) type
template <typename T, typename S>
inline void strided_madd(T* __restrict dst, const S* __restrict a, const S* __restrict xs,
                         int64_t s, int64_t lo, int64_t hi) {
  if (s == 1) {
    for (int64_t j = lo; j < hi; ++j) dst[j] += T(a[j]) * T(xs[j]);
  } else {
    for (int64_t j = lo; j < hi; ++j) dst[j] += T(a[j]) * T(xs[s * j]);
  }
}

// floor(a / b) for b > 0.
constexpr int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// The flattened-plane forward of contiguous maps (forward_flat). At stride s the input
// plane is split into its s*s phase planes P[ry, rx][u, v] = X[s*u + ry, s*v + rx]
// (u < Ho, v < Wo; zero where that lies outside X), so that tap (a, b) of output
// (i, j) reads P[ry, rx] at (i + du, j + dv) with a - p = s*du + ry, b - p = s*dv + rx:
// one shift du * Wo + dv per tap over the whole flattened output plane (the taps'
// arithmetic holds at any stride; forward_flat runs at strides 1 and 2, see runs_flat).
// At stride 1 the one phase plane is X itself.
struct FlatTaps {
  int64_t offset[MAX_TAPS];  // the tap's phase plane and shift, from an image's buffer
  int64_t dcol[MAX_TAPS];    // its column shift dv: inputs at j + dv outside [0, Wo) are zeros
};

// The column shift dv of kernel column b at stride S, padding (KS - 1) / 2.
template <int KS, int64_t S>
constexpr int64_t column_shift(int64_t b) { return floor_div(b - (KS - 1) / 2, S); }

// The chunk of L output positions from q of one channel for `images` images: KS > 0
// fixes the kernel size and the stride S (the taps' kernels, masks and column shifts
// then stay in registers or are known at compile time), 0 reads them from g and taps.
template <typename T, int KS, int64_t S>
inline void flat_chunk(const T* __restrict buf, int64_t image_stride, int64_t images,
                       const FlatTaps& taps, const T* __restrict wc, const T* __restrict bias_c,
                       bool last_channel, const T* column, int64_t q, T* __restrict out_c,
                       int64_t plane_stride, const Geometry& g) {
  using V = Vec<T>;
  using VT = typename V::type;
  constexpr int64_t L = V::lanes;
  const int64_t k = KS > 0 ? KS : g.k, K = k * k, p = (k - 1) / 2, HWo = g.Ho * g.Wo;
  const int64_t valid = std::min(L, HWo - q);
  const VT col = V::load(column + q);
  using Mask = decltype(col < col);
  Mask inside[2 * 5 + 1];  // inside[d + p]: the output columns j with j + d in [0, Wo)
  for (int64_t d = -p; d <= p; ++d) {
    const VT read = col + static_cast<T>(d);
    inside[d + p] = (read >= T(0)) & (read < static_cast<T>(g.Wo));
  }
  // The chunk's per-pixel kernels and bias. In a chunk that ends past the plane the
  // lanes beyond it read the next plane of the [C, K, Ho, Wo] kernels (or [C, Ho, Wo]
  // bias): their products only reach output lanes that are never stored. Only the
  // tensors' last plane is read through a copy.
  auto chunk_of = [&](const T* plane, bool last_plane) {
    if (valid == L || !last_plane) return V::load(plane + q);
    T lanes[L] = {};
    std::copy(plane + q, plane + q + valid, lanes);
    return V::load(lanes);
  };
  VT wv[KS > 0 ? KS * KS : MAX_TAPS];
  for (int64_t t = 0; t < K; ++t) wv[t] = chunk_of(wc + t * HWo, last_channel && t == K - 1);
  const VT start = bias_c ? chunk_of(bias_c, last_channel) : VT{};
  // Images in blocks of kFlatImages: independent accumulators, so that the taps' chains
  // of multiply-adds overlap instead of waiting on each other.
  auto block = [&](int64_t n0, auto images_const) {
    constexpr int64_t B = decltype(images_const)::value;
    VT acc[B];
    for (int64_t m = 0; m < B; ++m) acc[m] = start;
    for (int64_t a = 0; a < k; ++a) {
      for (int64_t b = 0; b < k; ++b) {
        const int64_t t = a * k + b;
        const int64_t d = KS > 0 ? column_shift<KS, S>(b) : taps.dcol[t];
        const T* xt = buf + n0 * image_stride + q + taps.offset[t];
        for (int64_t m = 0; m < B; ++m) {
          VT xv = V::load(xt + m * image_stride);
          if (d != 0) xv = inside[d + p] ? xv : VT{};  // a wrapped input adds nothing
          acc[m] += wv[t] * xv;
        }
      }
    }
    for (int64_t m = 0; m < B; ++m) {
      T* o = out_c + (n0 + m) * plane_stride + q;
      if (valid == L) {
        V::store(o, acc[m]);
      } else {
        T lanes[L];
        V::store(lanes, acc[m]);
        for (int64_t l = 0; l < valid; ++l) o[l] = lanes[l];
      }
    }
  };
  int64_t n = 0;
  for (; n + kFlatImages <= images; n += kFlatImages)
    block(n, std::integral_constant<int64_t, kFlatImages>{});
  for (; n < images; ++n) block(n, std::integral_constant<int64_t, 1>{});
}

// dst[0, n) = src[0, n): whole vectors, the last one overlapping the one before it
// (planes of a few vectors would spend more on a call to memmove than on the copy).
template <typename T>
inline void copy_plane(const T* __restrict src, int64_t n, T* __restrict dst) {
  using V = Vec<T>;
  constexpr int64_t L = V::lanes;
  if (n < L) {
    std::copy(src, src + n, dst);
    return;
  }
  for (int64_t i = 0; i + L <= n; i += L) V::store(dst + i, V::load(src + i));
  V::store(dst + n - L, V::load(src + n - L));
}

// Integer lanes of the width of Vec<T>, for __builtin_shuffle.
template <typename T> struct Lanes;
template <> struct Lanes<float> {
  typedef int32_t element;
  typedef element type __attribute__((vector_size(64)));
};
template <> struct Lanes<double> {
  typedef int64_t element;
  typedef element type __attribute__((vector_size(64)));
};

// Row `src` of W inputs split into its two column phases at stride 2:
// even[v] = src[2 v], odd[v] = src[2 v + 1], by whole-vector shuffles (the rest of
// the row through a vector's worth of lanes).
template <typename T>
inline void split_row_s2(const T* __restrict src, int64_t W, T* __restrict even_out,
                         T* __restrict odd_out) {
  using V = Vec<T>;
  using M = typename Lanes<T>::type;
  constexpr int64_t L = V::lanes;
  M even, odd;
  for (int64_t l = 0; l < L; ++l) { even[l] = 2 * l; odd[l] = 2 * l + 1; }
  int64_t v = 0;
  for (; 2 * v + 2 * L <= W; v += L) {
    const typename V::type lo = V::load(src + 2 * v), hi = V::load(src + 2 * v + L);
    V::store(even_out + v, __builtin_shuffle(lo, hi, even));
    V::store(odd_out + v, __builtin_shuffle(lo, hi, odd));
  }
  if (2 * v < W) {
    T in[2 * L], ev[L], od[L];
    const int64_t rest = W - 2 * v;
    std::copy(src + 2 * v, src + W, in);
    V::store(ev, __builtin_shuffle(V::load(in), V::load(in + L), even));
    V::store(od, __builtin_shuffle(V::load(in), V::load(in + L), odd));
    std::copy(ev, ev + (rest + 1) / 2, even_out + v);
    std::copy(od, od + rest / 2, odd_out + v);
  }
}

// A plane of even width W < 2 vectors at stride 2 split into its four phase planes
// (image + (ry * 2 + rx) * phase_stride, rows of Wo = W / 2): every input row is
// loaded as two whole vectors (reading on into the next rows; the last rows from the
// plane's last two vectors, with shifted lanes) and stored as two whole vectors, whose lanes beyond Wo land where
// the phase plane's next row is stored afterwards; what lies past a phase plane's
// last row is zeroed again (the rows and margin below the image read zeros).
template <typename T>
inline void split_narrow_plane_s2(const T* __restrict plane, const Geometry& g, T* image,
                                  int64_t phase_stride) {
  using V = Vec<T>;
  using M = typename Lanes<T>::type;
  constexpr int64_t L = V::lanes;
  M even, odd;
  for (int64_t l = 0; l < L; ++l) { even[l] = 2 * l; odd[l] = 2 * l + 1; }
  const int64_t HW = g.H * g.W;
  for (int64_t row = 0; row < g.H; ++row) {
    const T* src = plane + row * g.W;
    typename V::type lo, hi;
    M from_even = even, from_odd = odd;
    if (row * g.W + 2 * L <= HW) {
      lo = V::load(src);
      hi = V::load(src + L);
    } else if (HW >= 2 * L) {  // the plane's last 2 L values, the row r0 into them
      const auto r0 = static_cast<typename Lanes<T>::element>(row * g.W - (HW - 2 * L));
      lo = V::load(plane + HW - 2 * L);
      hi = V::load(plane + HW - L);
      from_even += r0;  // indices past 2 L wrap round: lanes beyond Wo, not kept
      from_odd += r0;
    } else {  // a plane of fewer than 2 L values
      T in[2 * L] = {};
      std::copy(src, src + g.W, in);
      lo = V::load(in);
      hi = V::load(in + L);
    }
    T* dst = image + (row % 2) * 2 * phase_stride + (row / 2) * g.Wo;
    V::store(dst, __builtin_shuffle(lo, hi, from_even));
    V::store(dst + phase_stride, __builtin_shuffle(lo, hi, from_odd));
  }
  for (int64_t ry = 0; ry < 2; ++ry) {
    const int64_t rows = (g.H - ry + 1) / 2;  // the input rows of this row phase
    for (int64_t rx = 0; rx < 2; ++rx) {
      // zeros on [rows * Wo, Ho * Wo + L), at most Wo + L < 2 L positions: two
      // (overlapping) vector stores
      T* phase = image + (ry * 2 + rx) * phase_stride;
      V::store(phase + rows * g.Wo, typename V::type{});
      V::store(phase + g.Ho * g.Wo, typename V::type{});
    }
  }
}

// Whether split_narrow_plane_s2 splits the planes of g (stride 2, even width narrower
// than two vectors).
template <typename T>
bool splits_narrow_plane_s2(const Geometry& g) {
  return g.s == 2 && g.W % 2 == 0 && g.W < 2 * Vec<T>::lanes;
}

// The n values at src as Compute values: src itself where the storage is the compute
// type, else (bfloat16) widened into scratch, padded by a vector of zeros.
template <typename S>
inline const typename Io<S>::Compute* widened(const S* src, int64_t n,
                                              std::vector<typename Io<S>::Compute>& scratch) {
  using C = typename Io<S>::Compute;
  if constexpr (!kWidens<S>) {
    return src;
  } else {
    using V = typename Io<S>::V;
    if (static_cast<int64_t>(scratch.size()) < n + V::lanes) scratch.assign(n + V::lanes, C(0));
    int64_t i = 0;
    for (; i + V::lanes <= n; i += V::lanes) V::store(scratch.data() + i, Io<S>::load(src + i));
    for (; i < n; ++i) scratch[i] = C(src[i]);
    return scratch.data();
  }
}

// dst[0, n) = src[0, n) rounded to the storage type S (bfloat16).
template <typename S>
inline void narrow_into(const typename Io<S>::Compute* src, int64_t n, S* dst) {
  using V = typename Io<S>::V;
  int64_t i = 0;
  for (; i + V::lanes <= n; i += V::lanes) Io<S>::store(dst + i, V::load(src + i));
  for (; i < n; ++i) dst[i] = S(src[i]);
}

// Contiguous maps on their flattened (phase) planes, see FlatTaps: the planes of a
// group of images of one channel are copied into a buffer where each phase plane lies
// between margins of zeros (p rows and p + a vector), so that every shifted load stays
// inside and the rows beyond the image read zeros; the inputs of a tap that wrap to the
// neighbouring row (column j + dv outside [0, Wo)) are masked to zero. Threaded over
// (channel, group of images); every per-pixel kernel vector is loaded once for a group.
// S: the storage type of x, w, bias and out; the planes are computed in Io<S>::Compute
// (bfloat16: every task widens its input planes, and the kernels and bias of its
// channel, into float buffers, and rounds its outputs once as it writes them).
template <typename S>
void forward_flat(const S* __restrict x_s, const S* __restrict w_s, const S* __restrict bias_s,
                  S* __restrict out_s, const Geometry& g) {
  using T = typename Io<S>::Compute;
  if (g.N == 0 || g.C == 0) return;
  constexpr int64_t L = Vec<T>::lanes;
  const int64_t K = g.k * g.k, HW = g.H * g.W, HWo = g.Ho * g.Wo, p = g.p, s = g.s;
  const int64_t margin = p * g.Wo + p + L;  // zeros before and after a phase plane
  const int64_t phase_stride = HWo + 2 * margin;
  const int64_t image_stride = s * s * phase_stride;
  const int64_t group = std::clamp<int64_t>(
      kFlatBufferBytes / (image_stride * int64_t(sizeof(T))), 1, g.N);
  const int64_t groups = (g.N + group - 1) / group;
  const int64_t chunks = (HWo + L - 1) / L;
  std::vector<T> column(chunks * L);  // the output column of every position, for the masks
  for (int64_t q = 0; q < chunks * L; ++q) column[q] = static_cast<T>(q % g.Wo);
  FlatTaps taps;
  for (int64_t a = 0; a < g.k; ++a) {
    for (int64_t b = 0; b < g.k; ++b) {
      const int64_t du = floor_div(a - p, s), dv = floor_div(b - p, s);
      const int64_t ry = a - p - s * du, rx = b - p - s * dv;
      taps.offset[a * g.k + b] = (ry * s + rx) * phase_stride + margin + du * g.Wo + dv;
      taps.dcol[a * g.k + b] = dv;
    }
  }
  at::parallel_for(0, g.C * groups, 1, [&](int64_t begin, int64_t end) {
    // zeroed once: the margins and the phase positions outside the input stay zero
    std::vector<T> buf(group * image_stride, T(0));
    std::vector<T> wide_plane, wide_w, wide_bias, wide_out;  // bfloat16 only
    if (kWidens<S>) wide_out.assign(group * HWo + L, T(0));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t c = task / groups, n0 = (task % groups) * group;
      const int64_t images = std::min(group, g.N - n0);
      for (int64_t n = 0; n < images; ++n) {
        const T* plane = widened(x_s + ((n0 + n) * g.C + c) * HW, HW, wide_plane);
        T* image = buf.data() + n * image_stride + margin;
        if (s == 1) {  // the one phase plane is the plane
          copy_plane(plane, HW, image);
          continue;
        }
        if (splits_narrow_plane_s2<T>(g)) {
          split_narrow_plane_s2(plane, g, image, phase_stride);
          continue;
        }
        for (int64_t row = 0; row < g.H; ++row) {  // stride 2: row phase row % 2
          T* even = image + (row % 2) * 2 * phase_stride + (row / 2) * g.Wo;
          split_row_s2(plane + row * g.W, g.W, even, even + phase_stride);
        }
      }
      // a widened channel's planes are followed by a vector of zeros: never its last
      const bool last_channel = !kWidens<S> && c == g.C - 1;
      const T* wc = widened(w_s + c * K * HWo, K * HWo, wide_w);
      const T* bc = bias_s ? widened(bias_s + c * HWo, HWo, wide_bias) : nullptr;
      S* oc_s = out_s + (n0 * g.C + c) * HWo;
      T* oc;
      int64_t plane_stride;
      if constexpr (kWidens<S>) {
        oc = wide_out.data();
        plane_stride = HWo;
      } else {
        oc = oc_s;
        plane_stride = g.C * HWo;
      }
      for (int64_t q = 0; q < HWo; q += L) {
        if (g.k == 3 && s == 1)
          flat_chunk<T, 3, 1>(buf.data(), image_stride, images, taps, wc, bc, last_channel,
                              column.data(), q, oc, plane_stride, g);
        else if (g.k == 3 && s == 2)
          flat_chunk<T, 3, 2>(buf.data(), image_stride, images, taps, wc, bc, last_channel,
                              column.data(), q, oc, plane_stride, g);
        else
          flat_chunk<T, 0, 1>(buf.data(), image_stride, images, taps, wc, bc, last_channel,
                              column.data(), q, oc, plane_stride, g);
      }
      if constexpr (kWidens<S>) {
        for (int64_t n = 0; n < images; ++n)
          narrow_into(wide_out.data() + n * HWo, HWo, oc_s + n * g.C * HWo);
      }
    }
  });
}

// Whether the forward runs forward_flat: contiguous maps at stride 1, and at stride 2
// those whose input rows span two vectors or more or have an even width (narrow rows of
// odd width, split into phases one by one, cost more than the transposes to the
// channels-last kernel).
bool runs_flat(const at::Tensor& x, const Geometry& g) {
  return !use_channels_last(x) &&
         (g.s == 1 || (g.s == 2 && (g.W * int64_t(x.element_size()) >= kFlatMinStridedRowBytes ||
                                    g.W % 2 == 0)));
}

at::Tensor per_pixel_conv(const at::Tensor& x, const at::Tensor& weight,
                          const c10::optional<at::Tensor>& bias, int64_t stride) {
  const Geometry g = check_inputs(x, weight, stride);
  const bool last = !runs_flat(x, g);
  if (bias.has_value()) {
    TORCH_CHECK(bias->sizes() == at::IntArrayRef({g.C, g.Ho, g.Wo}),
                "per_pixel_conv: 'bias' must be [C, H_out, W_out], got ", bias->sizes());
  }
  at::Tensor out;
  if (last) {
    auto xl = x.permute({0, 2, 3, 1}).contiguous();
    auto wl = channels_innermost(weight);
    at::Tensor bl;
    if (bias.has_value()) bl = bias->permute({1, 2, 0}).contiguous();
    auto outl = at::empty({g.N, g.Ho, g.Wo, g.C}, x.options());
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "per_pixel_conv", [&] {
      forward_channels_last<scalar_t>(xl.data_ptr<scalar_t>(), wl.data_ptr<scalar_t>(),
                                      strides_of(wl),
                                      bias.has_value() ? bl.data_ptr<scalar_t>() : nullptr,
                                      outl.data_ptr<scalar_t>(), g);
    });
    out = outl.permute({0, 3, 1, 2});
    if (!use_channels_last(x)) out = out.contiguous();  // the caller's memory format
  } else {
    auto xc = x.contiguous();
    auto wc = weight.contiguous();
    at::Tensor bc;
    if (bias.has_value()) bc = bias->contiguous();
    out = at::empty({g.N, g.C, g.Ho, g.Wo}, x.options());
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "per_pixel_conv", [&] {
      const scalar_t* b = bias.has_value() ? bc.data_ptr<scalar_t>() : nullptr;
      forward_flat<scalar_t>(xc.data_ptr<scalar_t>(), wc.data_ptr<scalar_t>(), b,
                             out.data_ptr<scalar_t>(), g);
    });
  }
  return out;
}

// --------------------------------------------------------------- backward
// The kernels below take values of the storage type S and sum in Io<S>::Compute: float
// and double in the gradient itself, bfloat16 widened exactly as it is read and summed
// in float32 in a buffer of the task, which is rounded once into the gradient, so that
// each bfloat16 gradient is the float32 kernel's on the widened inputs, rounded.

// Where a task sums the n values it writes at out: out itself where the storage is the
// compute type, else the task's scratch buffer (zeroed here either way).
template <typename S>
inline typename Io<S>::Compute* zeroed_sums(S* out, int64_t n,
                                            std::vector<typename Io<S>::Compute>& scratch) {
  using C = typename Io<S>::Compute;
  C* sums;
  if constexpr (!kWidens<S>) {
    sums = out;
  } else {
    if (static_cast<int64_t>(scratch.size()) < n) scratch.resize(n);
    sums = scratch.data();
  }
  std::fill(sums, sums + n, C(0));
  return sums;
}

// grad_x[n, c, h, col] = sum over taps (a, b) and outputs (i, j) with s*i + a - p = h and
// s*j + b - p = col of grad[n, c, i, j] * W[c, t, i, j]: gathered per input row h, so
// every thread owns the rows it writes.
template <typename S>
void grad_input_channels_last(const S* __restrict grad, const S* __restrict w,
                              const KernelStrides& ws, S* __restrict gx, const Geometry& g) {
  using T = typename Io<S>::Compute;
  const int64_t row_len = g.Wo * g.C;
  at::parallel_for(0, g.N * g.H, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch;
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / g.H, h = r % g.H;
      S* out_row = gx + r * g.W * g.C;
      T* __restrict xrow = zeroed_sums(out_row, g.W * g.C, scratch);
      for (int64_t a = 0; a < g.k; ++a) {
        const int64_t num = h + g.p - a;
        if (num < 0 || num % g.s) continue;
        const int64_t i = num / g.s;
        if (i >= g.Ho) continue;
        const S* __restrict gr = grad + (n * g.Ho + i) * row_len;
        for (int64_t b = 0; b < g.k; ++b) {
          int64_t lo, hi;
          valid_range(g.W, g.Wo, b - g.p, g.s, lo, hi);
          const S* __restrict wr = w + (a * g.k + b) * ws.t + i * ws.i;
          if (g.s == 1 && ws.j == g.C) {  // the row is one run of (hi - lo) * C values
            T* __restrict xp = xrow + (lo + b - g.p) * g.C;
            const S* __restrict gp = gr + lo * g.C;
            const S* __restrict wp = wr + lo * g.C;
            const int64_t len = (hi - lo) * g.C;
            for (int64_t m = 0; m < len; ++m) xp[m] += T(gp[m]) * T(wp[m]);
          } else {
            for (int64_t j = lo; j < hi; ++j) {
              T* __restrict xp = xrow + (g.s * j + b - g.p) * g.C;
              const S* __restrict gp = gr + j * g.C;
              const S* __restrict wp = wr + j * ws.j;
              for (int64_t c = 0; c < g.C; ++c) xp[c] += T(gp[c]) * T(wp[c]);
            }
          }
        }
      }
      if constexpr (kWidens<S>) narrow_into(xrow, g.W * g.C, out_row);
    }
  });
}

template <typename S>
void grad_input_contiguous(const S* __restrict grad, const S* __restrict w, S* __restrict gx,
                           const Geometry& g) {
  using T = typename Io<S>::Compute;
  const int64_t K = g.k * g.k;
  const int64_t grain = std::max<int64_t>(1, 2048 / std::max<int64_t>(1, g.W * g.k));
  at::parallel_for(0, g.N * g.C * g.H, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch;
    for (int64_t r = begin; r < end; ++r) {
      const int64_t h = r % g.H, nc = r / g.H, c = nc % g.C;
      S* out_row = gx + r * g.W;
      T* __restrict xrow = zeroed_sums(out_row, g.W, scratch);
      for (int64_t a = 0; a < g.k; ++a) {
        const int64_t num = h + g.p - a;
        if (num < 0 || num % g.s) continue;
        const int64_t i = num / g.s;
        if (i >= g.Ho) continue;
        const S* __restrict gr = grad + (nc * g.Ho + i) * g.Wo;
        for (int64_t b = 0; b < g.k; ++b) {
          int64_t lo, hi;
          valid_range(g.W, g.Wo, b - g.p, g.s, lo, hi);
          const S* __restrict wr = w + ((c * K + a * g.k + b) * g.Ho + i) * g.Wo;
          T* __restrict xs = xrow + b - g.p;
          if (g.s == 1) {
            for (int64_t j = lo; j < hi; ++j) xs[j] += T(gr[j]) * T(wr[j]);
          } else {
            for (int64_t j = lo; j < hi; ++j) xs[g.s * j] += T(gr[j]) * T(wr[j]);
          }
        }
      }
      if constexpr (kWidens<S>) narrow_into(xrow, g.W, out_row);
    }
  });
}

// grad_W[c, t, i, j] = sum_n grad[n, c, i, j] * X[n, c, s*i + a - p, s*j + b - p]: each
// thread owns output rows (i, or (c, i)) and sums over the batch itself.
template <typename S>
void grad_weight_channels_last(const S* __restrict grad, const S* __restrict x, S* __restrict gw,
                               const KernelStrides& ws, const Geometry& g) {
  using T = typename Io<S>::Compute;
  const int64_t row_len = g.Wo * g.C, K = g.k * g.k;
  at::parallel_for(0, g.Ho, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch;
    for (int64_t i = begin; i < end; ++i) {
      // the sums of row i: in gw where T is the storage type, else (k*k, Wo, C) in scratch
      T* base;
      KernelStrides sums;
      if constexpr (kWidens<S>) {
        base = zeroed_sums(gw, K * row_len, scratch);
        sums = {row_len, 0, g.C};
      } else {
        base = gw;
        sums = ws;
        for (int64_t t = 0; t < K; ++t) {
          for (int64_t j = 0; j < g.Wo; ++j) {
            T* wp = gw + t * ws.t + i * ws.i + j * ws.j;
            std::fill(wp, wp + g.C, T(0));
          }
        }
      }
      for (int64_t n = 0; n < g.N; ++n) {
        const S* __restrict gr = grad + (n * g.Ho + i) * row_len;
        for (int64_t a = 0; a < g.k; ++a) {
          const int64_t row = g.s * i + a - g.p;
          if (row < 0 || row >= g.H) continue;
          const S* __restrict xr = x + (n * g.H + row) * g.W * g.C;
          for (int64_t b = 0; b < g.k; ++b) {
            int64_t lo, hi;
            valid_range(g.W, g.Wo, b - g.p, g.s, lo, hi);
            T* __restrict wr = base + (a * g.k + b) * sums.t + i * sums.i;
            if (g.s == 1 && sums.j == g.C) {  // the row is one run of (hi - lo) * C values
              const S* __restrict xp = xr + (lo + b - g.p) * g.C;
              const S* __restrict gp = gr + lo * g.C;
              T* __restrict wp = wr + lo * g.C;
              const int64_t len = (hi - lo) * g.C;
              for (int64_t m = 0; m < len; ++m) wp[m] += T(gp[m]) * T(xp[m]);
            } else {
              for (int64_t j = lo; j < hi; ++j) {
                const S* __restrict xp = xr + (g.s * j + b - g.p) * g.C;
                const S* __restrict gp = gr + j * g.C;
                T* __restrict wp = wr + j * sums.j;
                for (int64_t c = 0; c < g.C; ++c) wp[c] += T(gp[c]) * T(xp[c]);
              }
            }
          }
        }
      }
      if constexpr (kWidens<S>) {
        for (int64_t t = 0; t < K; ++t)
          for (int64_t j = 0; j < g.Wo; ++j)
            narrow_into(base + t * row_len + j * g.C, g.C, gw + t * ws.t + i * ws.i + j * ws.j);
      }
    }
  });
}

template <typename S>
void grad_weight_contiguous(const S* __restrict grad, const S* __restrict x, S* __restrict gw,
                            const Geometry& g) {
  using T = typename Io<S>::Compute;
  const int64_t K = g.k * g.k;
  const int64_t grain = std::max<int64_t>(1, 2048 / std::max<int64_t>(1, g.N * g.Wo * K));
  at::parallel_for(0, g.C * g.Ho, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch;
    for (int64_t ci = begin; ci < end; ++ci) {
      const int64_t c = ci / g.Ho, i = ci % g.Ho;
      // the sums of (c, i): in gw where T is the storage type, else (k*k, Wo) in scratch
      T* base;
      int64_t tap_stride;
      if constexpr (kWidens<S>) {
        base = zeroed_sums(gw, K * g.Wo, scratch);
        tap_stride = g.Wo;
      } else {
        base = gw + (c * K * g.Ho + i) * g.Wo;
        tap_stride = g.Ho * g.Wo;
        for (int64_t t = 0; t < K; ++t)
          std::fill(base + t * tap_stride, base + t * tap_stride + g.Wo, T(0));
      }
      for (int64_t n = 0; n < g.N; ++n) {
        const S* __restrict gr = grad + ((n * g.C + c) * g.Ho + i) * g.Wo;
        for_each_tap_of_row(x + (n * g.C + c) * g.H * g.W, i, g,
                            [&](int64_t t, const S* xs, int64_t lo, int64_t hi) {
          strided_madd(base + t * tap_stride, gr, xs, g.s, lo, hi);
        });
      }
      if constexpr (kWidens<S>) {
        for (int64_t t = 0; t < K; ++t)
          narrow_into(base + t * g.Wo, g.Wo, gw + ((c * K + t) * g.Ho + i) * g.Wo);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> per_pixel_conv_backward(const at::Tensor& grad, const at::Tensor& x,
                                                            const at::Tensor& weight, int64_t stride,
                                                            bool input_grad, bool weight_grad) {
  const Geometry g = check_inputs(x, weight, stride);
  TORCH_CHECK(grad.sizes() == at::IntArrayRef({g.N, g.C, g.Ho, g.Wo}),
              "per_pixel_conv_backward: 'grad' must be ", at::IntArrayRef({g.N, g.C, g.Ho, g.Wo}),
              ", got ", grad.sizes());
  const bool last = use_channels_last(x) || g.Wo < kMinContiguousWidth;
  at::Tensor gx, gw;
  if (last) {
    auto gl = grad.permute({0, 2, 3, 1}).contiguous();
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "per_pixel_conv_backward", [&] {
      if (input_grad) {
        auto wl = channels_innermost(weight);  // in place where the channels are innermost
        auto gxl = at::empty({g.N, g.H, g.W, g.C}, x.options());
        grad_input_channels_last<scalar_t>(gl.data_ptr<scalar_t>(), wl.data_ptr<scalar_t>(),
                                           strides_of(wl), gxl.data_ptr<scalar_t>(), g);
        gx = gxl.permute({0, 3, 1, 2});
        if (!use_channels_last(x)) gx = gx.contiguous();
      }
      if (weight_grad) {
        auto xl = x.permute({0, 2, 3, 1}).contiguous();
        gw = empty_like_channels_innermost(weight);  // the kernels' own layout where it can
        grad_weight_channels_last<scalar_t>(gl.data_ptr<scalar_t>(), xl.data_ptr<scalar_t>(),
                                            gw.data_ptr<scalar_t>(), strides_of(gw), g);
      }
    });
  } else {
    auto gc = grad.contiguous();
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "per_pixel_conv_backward", [&] {
      if (input_grad) {
        auto wc = weight.contiguous();
        gx = at::empty({g.N, g.C, g.H, g.W}, x.options());
        grad_input_contiguous<scalar_t>(gc.data_ptr<scalar_t>(), wc.data_ptr<scalar_t>(),
                                        gx.data_ptr<scalar_t>(), g);
      }
      if (weight_grad) {
        auto xc = x.contiguous();
        gw = at::empty({g.C, g.k * g.k, g.Ho, g.Wo}, x.options());
        grad_weight_contiguous<scalar_t>(gc.data_ptr<scalar_t>(), xc.data_ptr<scalar_t>(),
                                         gw.data_ptr<scalar_t>(), g);
      }
    });
  }
  if (!gx.defined()) gx = at::zeros({0}, x.options());
  if (!gw.defined()) gw = at::zeros({0}, x.options());
  return {gx, gw};
}

}  // namespace

TORCH_LIBRARY(tvconv, m) {
  m.def("per_pixel_conv(Tensor x, Tensor weight, Tensor? bias, int stride) -> Tensor");
  m.def("per_pixel_conv_backward(Tensor grad, Tensor x, Tensor weight, int stride, "
        "bool input_grad, bool weight_grad) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(tvconv, CPU, m) {
  m.impl("per_pixel_conv", &per_pixel_conv);
  m.impl("per_pixel_conv_backward", &per_pixel_conv_backward);
}
