// Fused CPU kernel of HG-Conv's differentiable SLIC on tiles (paper,
// Algorithm 1), the forward without gradient:
//
//   Z_jj = sum_i S_ij,  X^c = (S Z^-1)^T X                     (lines 3-4)
//   S_ij ~ exp(-||X_i - X^c_j||^2), j among the tile's m candidates  (line 5)
//   S_ij < 1e-3 -> 0, rows normalised                          (lines 7-8)
//
// on the tiled layout of pyg_hgconv/nn/pool/slic.py: features [T, D, P]
// relative to their tile (origins [T, D] added back for the centre sums),
// valid [T, 1, P], candidates [T, m] indexing the centres, init [T, m, P] the
// hard assignment of line 1, fallback [B K, D] the features of the centres' own
// pixels (a centre without mass keeps them). 'softmax' normalises every pixel's
// weights over its candidates inside the loop (SSN); otherwise the paper's
// unnormalised exp(-d^2), and a pixel whose candidates all fall below the filter
// keeps its nearest candidates in feature space.
//
// The images never share a centre (the candidates of image b's tiles index
// centres b K .. b K + K - 1), so the whole loop of one image runs in one
// thread on buffers the size of the image, threaded over images with
// at::parallel_for: one call replaces the ~10 batched products, gathers and
// scatters per iteration of the PyTorch path. Every stored entry is computed,
// zeros and padding included (the PyTorch path's arithmetic, so the FLOP rule of
// the clustering holds for both).
//
// Registered as pyg_hgconv::slic_tiles (forward only; the Python side,
// pyg_hgconv/nn/pool/fused_slic.py, adds the fake kernel and calls it only where
// no gradient is needed).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

struct SlicSizes {
  int64_t T, D, P, m, tiles_per_image, images, K;
};

SlicSizes check_slic(const at::Tensor& features, const at::Tensor& valid,
                     const at::Tensor& origins, const at::Tensor& candidates,
                     const at::Tensor& init, const at::Tensor& fallback,
                     int64_t tiles_per_image, int64_t num_iterations) {
  TORCH_CHECK(features.dim() == 3, "slic_tiles: 'features' must be [T, D, P], got ",
              features.sizes());
  const int64_t T = features.size(0), D = features.size(1), P = features.size(2);
  TORCH_CHECK(valid.dim() == 3 && valid.size(0) == T && valid.size(1) == 1 && valid.size(2) == P,
              "slic_tiles: 'valid' must be [T, 1, P] = [", T, ", 1, ", P, "], got ",
              valid.sizes());
  TORCH_CHECK(origins.dim() == 2 && origins.size(0) == T && origins.size(1) == D,
              "slic_tiles: 'origins' must be [T, D] = [", T, ", ", D, "], got ", origins.sizes());
  TORCH_CHECK(candidates.dim() == 2 && candidates.size(0) == T &&
                  candidates.scalar_type() == at::kLong,
              "slic_tiles: 'candidates' must be a LongTensor [T, m] with T = ", T);
  const int64_t m = candidates.size(1);
  TORCH_CHECK(init.dim() == 3 && init.size(0) == T && init.size(1) == m && init.size(2) == P,
              "slic_tiles: 'init' must be [T, m, P] = [", T, ", ", m, ", ", P, "], got ",
              init.sizes());
  TORCH_CHECK(fallback.dim() == 2 && fallback.size(1) == D,
              "slic_tiles: 'fallback' must be [B K, D] with D = ", D, ", got ", fallback.sizes());
  TORCH_CHECK(tiles_per_image >= 1 && T % tiles_per_image == 0,
              "slic_tiles: 'tiles_per_image' (", tiles_per_image, ") must divide T = ", T);
  TORCH_CHECK(num_iterations >= 0, "slic_tiles: 'num_iterations' must be >= 0");
  const int64_t images = T / tiles_per_image;
  TORCH_CHECK(images == 0 || fallback.size(0) % images == 0,
              "slic_tiles: 'fallback' rows (", fallback.size(0), ") must be a multiple of the ",
              images, " images");
  for (const at::Tensor* t : {&valid, &origins, &init, &fallback})
    TORCH_CHECK(t->scalar_type() == features.scalar_type(),
                "slic_tiles: every float input must have the dtype of 'features'");
  return {T, D, P, m, tiles_per_image, images, images ? fallback.size(0) / images : 0};
}

// exp over an array: float by a branch-free polynomial the compiler
// vectorises (Cephes' expf: x = k ln2 + r, |r| <= ln2 / 2, a degree-6 polynomial
// of r, then 2^k from the exponent bits; within 2 ulp; 0 below -87.3, the
// float range), double by std::exp. k is rounded by adding and subtracting
// 1.5 * 2^23 (its low bits then hold k), as floor and float -> int conversions
// do not vectorise under strict IEEE semantics (libm's exp does not vectorise
// either).
inline void exp_array(const float* x, float* out, int64_t n) {
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  constexpr int32_t kRoundBits = 0x4B400000;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float xi = x[i];
    const float v = xi < -87.33f ? -87.33f : (xi > 88.72f ? 88.72f : xi);
    const float shifted = v * 1.44269504088896341f + kRound;
    const float k = shifted - kRound;
    const float r = (v - k * 0.693359375f) - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t exponent = std::bit_cast<int32_t>(shifted) - kRoundBits + 127;
    const float scale = std::bit_cast<float>(exponent << 23);
    out[i] = xi < -87.33f ? 0.0f : p * scale;
  }
}

inline void exp_array(const double* x, double* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::exp(x[i]);
}

// One thread's buffers for one image.
template <typename scalar_t>
struct SlicBuffers {
  std::vector<scalar_t> with_mass;  // [tiles, D + 1, P]: absolute features and 1, x valid
  std::vector<scalar_t> sums;       // [K, D + 1]
  std::vector<scalar_t> centre;     // [K, D]
  std::vector<scalar_t> relative;   // [m, D]: centre - tile origin
  std::vector<scalar_t> logits;     // [m, P]
  std::vector<scalar_t> column;     // [P]
  std::vector<scalar_t> square;     // [P]: ||x_p||^2 (the paper's weights)
  std::vector<int64_t> local;       // [tiles, m]: centre within the image

  explicit SlicBuffers(const SlicSizes& s)
      : with_mass(s.tiles_per_image * (s.D + 1) * s.P), sums(s.K * (s.D + 1)), centre(s.K * s.D),
        relative(s.m * s.D), logits(s.m * s.P), column(s.P), square(s.P),
        local(s.tiles_per_image * s.m) {}
};

// Lines 7-8 on the [m, P] weights of one tile: the filter, (paper, where
// 'logits' is given) the nearest candidates of a pixel with nothing left, the
// normalisation, the padding mask. 'total' is a [P] buffer.
template <typename scalar_t>
void finish_tile(scalar_t* w, int64_t m, int64_t P, scalar_t threshold, const scalar_t* valid,
                 const scalar_t* logits, scalar_t* total) {
  std::fill(total, total + P, scalar_t(0));
  for (int64_t j = 0; j < m; ++j) {
    scalar_t* row = w + j * P;
#pragma omp simd
    for (int64_t p = 0; p < P; ++p) {
      const scalar_t v = row[p] >= threshold ? row[p] : scalar_t(0);
      row[p] = v;
      total[p] += v;
    }
  }
  if (logits != nullptr) {
    for (int64_t p = 0; p < P; ++p) {
      if (total[p] != scalar_t(0)) continue;
      scalar_t best = logits[p];
      for (int64_t j = 1; j < m; ++j) best = std::max(best, logits[j * P + p]);
      for (int64_t j = 0; j < m; ++j) {
        if (logits[j * P + p] == best) {
          w[j * P + p] = 1;
          total[p] += 1;
        }
      }
    }
  }
  const scalar_t tiny = std::numeric_limits<scalar_t>::min();
#pragma omp simd
  for (int64_t p = 0; p < P; ++p) total[p] = valid[p] / std::max(total[p], tiny);
  for (int64_t j = 0; j < m; ++j) {
    scalar_t* row = w + j * P;
#pragma omp simd
    for (int64_t p = 0; p < P; ++p) row[p] *= total[p];
  }
}

template <typename scalar_t>
void slic_image(const SlicSizes& s, int64_t b, const scalar_t* feat, const scalar_t* valid,
                const scalar_t* origins, const int64_t* cand, const scalar_t* fallback,
                int64_t num_iterations, scalar_t threshold, bool softmax, scalar_t* w,
                SlicBuffers<scalar_t>& buf) {
  const int64_t D = s.D, D1 = s.D + 1, P = s.P, m = s.m, K = s.K;
  const int64_t t0 = b * s.tiles_per_image, c0 = b * K;
  for (int64_t lt = 0; lt < s.tiles_per_image; ++lt) {
    const int64_t t = t0 + lt;
    for (int64_t j = 0; j < m; ++j) {
      const int64_t g = cand[t * m + j] - c0;
      TORCH_CHECK(g >= 0 && g < K, "slic_tiles: the candidates of image ", b,
                  " must index its own centres [", c0, ", ", c0 + K, ")");
      buf.local[lt * m + j] = g;
    }
    const scalar_t* v = valid + t * P;
    scalar_t* wm = buf.with_mass.data() + lt * D1 * P;
    for (int64_t d = 0; d < D; ++d) {
      const scalar_t* f = feat + (t * D + d) * P;
      const scalar_t o = origins[t * D + d];
#pragma omp simd
      for (int64_t p = 0; p < P; ++p) wm[d * P + p] = (f[p] + o) * v[p];
    }
    std::copy(v, v + P, wm + D * P);
  }

  for (int64_t it = 0; it < num_iterations; ++it) {
    const bool last = it + 1 == num_iterations;
    // lines 3-4: weighted sums and masses of the centres, then their means
    std::fill(buf.sums.begin(), buf.sums.end(), scalar_t(0));
    for (int64_t lt = 0; lt < s.tiles_per_image; ++lt) {
      const scalar_t* wm = buf.with_mass.data() + lt * D1 * P;
      const scalar_t* wt = w + (t0 + lt) * m * P;
      for (int64_t j = 0; j < m; ++j) {
        scalar_t* sum = buf.sums.data() + buf.local[lt * m + j] * D1;
        const scalar_t* wr = wt + j * P;
        for (int64_t d = 0; d < D1; ++d) {
          const scalar_t* row = wm + d * P;
          scalar_t acc = 0;
#pragma omp simd reduction(+ : acc)
          for (int64_t p = 0; p < P; ++p) acc += wr[p] * row[p];
          sum[d] += acc;
        }
      }
    }
    for (int64_t g = 0; g < K; ++g) {
      const scalar_t mass = buf.sums[g * D1 + D];
      for (int64_t d = 0; d < D; ++d) {
        buf.centre[g * D + d] = mass > scalar_t(1e-12) ? buf.sums[g * D1 + d] / mass
                                                         : fallback[(c0 + g) * D + d];
      }
    }
    // line 5: -||x - c||^2 up to ||x||^2, 2 x.c - ||c||^2, for the tile's candidates
    for (int64_t lt = 0; lt < s.tiles_per_image; ++lt) {
      const int64_t t = t0 + lt;
      const scalar_t* f = feat + t * D * P;
      scalar_t* lg = buf.logits.data();
      for (int64_t j = 0; j < m; ++j) {
        const scalar_t* c = buf.centre.data() + buf.local[lt * m + j] * D;
        scalar_t* r = buf.relative.data() + j * D;
        scalar_t norm = 0;
        for (int64_t d = 0; d < D; ++d) {
          r[d] = c[d] - origins[t * D + d];
          norm += r[d] * r[d];
        }
        scalar_t* row = lg + j * P;
        std::fill(row, row + P, -norm);
        for (int64_t d = 0; d < D; ++d) {
          const scalar_t a = 2 * r[d];
          const scalar_t* fd = f + d * P;
#pragma omp simd
          for (int64_t p = 0; p < P; ++p) row[p] += a * fd[p];
        }
      }
      scalar_t* wt = w + t * m * P;
      if (softmax) {
        scalar_t* top = buf.column.data();
        std::copy(lg, lg + P, top);
        for (int64_t j = 1; j < m; ++j)
#pragma omp simd
          for (int64_t p = 0; p < P; ++p) top[p] = std::max(top[p], lg[j * P + p]);
        scalar_t* total = buf.square.data();
        std::fill(total, total + P, scalar_t(0));
        for (int64_t j = 0; j < m; ++j)
#pragma omp simd
          for (int64_t p = 0; p < P; ++p) wt[j * P + p] = lg[j * P + p] - top[p];
        exp_array(wt, wt, m * P);
        for (int64_t j = 0; j < m; ++j)
#pragma omp simd
          for (int64_t p = 0; p < P; ++p) total[p] += wt[j * P + p];
        for (int64_t j = 0; j < m; ++j)
#pragma omp simd
          for (int64_t p = 0; p < P; ++p) wt[j * P + p] /= total[p];
      } else {
        scalar_t* sq = buf.square.data();
        std::fill(sq, sq + P, scalar_t(0));
        for (int64_t d = 0; d < D; ++d)
#pragma omp simd
          for (int64_t p = 0; p < P; ++p) sq[p] += f[d * P + p] * f[d * P + p];
        for (int64_t j = 0; j < m; ++j)
#pragma omp simd
          for (int64_t p = 0; p < P; ++p) lg[j * P + p] -= sq[p];
        exp_array(lg, wt, m * P);
      }
      if (last) finish_tile(wt, m, P, threshold, valid + t * P, softmax ? nullptr : lg,
                            buf.column.data());
    }
  }
  if (num_iterations == 0) {
    for (int64_t t = t0; t < t0 + s.tiles_per_image; ++t)
      finish_tile(w + t * m * P, m, P, threshold, valid + t * P,
                  static_cast<const scalar_t*>(nullptr), buf.column.data());
  }
}

at::Tensor slic_tiles(const at::Tensor& features_in, const at::Tensor& valid_in,
                      const at::Tensor& origins_in, const at::Tensor& candidates_in,
                      const at::Tensor& init_in, const at::Tensor& fallback_in,
                      int64_t tiles_per_image, int64_t num_iterations, double threshold,
                      bool softmax) {
  const SlicSizes s = check_slic(features_in, valid_in, origins_in, candidates_in, init_in,
                                 fallback_in, tiles_per_image, num_iterations);
  const at::Tensor features = features_in.contiguous(), valid = valid_in.contiguous(),
                   origins = origins_in.contiguous(), candidates = candidates_in.contiguous(),
                   fallback = fallback_in.contiguous();
  at::Tensor out = init_in.contiguous().clone();
  if (s.T == 0 || s.m == 0 || s.P == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "slic_tiles", [&] {
    const scalar_t* f = features.data_ptr<scalar_t>();
    const scalar_t* v = valid.data_ptr<scalar_t>();
    const scalar_t* o = origins.data_ptr<scalar_t>();
    const int64_t* c = candidates.data_ptr<int64_t>();
    const scalar_t* fb = fallback.data_ptr<scalar_t>();
    scalar_t* w = out.data_ptr<scalar_t>();
    at::parallel_for(0, s.images, 1, [&](int64_t begin, int64_t end) {
      SlicBuffers<scalar_t> buf(s);
      for (int64_t b = begin; b < end; ++b)
        slic_image<scalar_t>(s, b, f, v, o, c, fb, num_iterations,
                             static_cast<scalar_t>(threshold), softmax, w, buf);
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pyg_hgconv, m) {
  m.def("slic_tiles(Tensor features, Tensor valid, Tensor origins, Tensor candidates, "
        "Tensor init, Tensor fallback, int tiles_per_image, int num_iterations, "
        "float threshold, bool softmax) -> Tensor");
}

TORCH_LIBRARY_IMPL(pyg_hgconv, CPU, m) { m.impl("slic_tiles", &slic_tiles); }
