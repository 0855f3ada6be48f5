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
// thread (slic.h, on a copy of its tiles padded to whole vectors), threaded over
// images with at::parallel_for: one call replaces the ~10 batched products,
// gathers and scatters per iteration of the PyTorch path. Every stored entry is
// computed, zeros and padding included (the PyTorch path's arithmetic, so the
// FLOP rule of the clustering holds for both).
//
// Registered as pyg_hgconv::slic_tiles (forward only; the Python side,
// pyg_hgconv/nn/pool/fused_slic.py, adds the fake kernel and calls it only where
// no gradient is needed).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "slic.h"

namespace {

using namespace pyg_hgconv;

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

// One thread's padded copy of one image's tiles (rows of Pp positions).
template <typename scalar_t>
struct PaddedImage {
  std::vector<scalar_t> features, valid, weight;
  std::vector<int64_t> local;
  SlicScratch<scalar_t, 64> scratch;
};

template <typename scalar_t>
void slic_image(const SlicSizes& s, int64_t b, const scalar_t* feat, const scalar_t* valid,
                const scalar_t* origins, const int64_t* cand, const scalar_t* fallback,
                int64_t num_iterations, scalar_t threshold, bool softmax, scalar_t* w,
                PaddedImage<scalar_t>& buf) {
  const int64_t tiles = s.tiles_per_image, D = s.D, P = s.P, m = s.m, K = s.K;
  const int64_t Pp = padded_length<scalar_t>(P);
  const int64_t t0 = b * tiles, c0 = b * K;
  buf.features.assign(tiles * D * Pp, scalar_t(0));
  buf.valid.assign(tiles * Pp, scalar_t(0));
  buf.weight.assign(tiles * m * Pp, scalar_t(0));
  buf.local.resize(tiles * m);
  for (int64_t lt = 0; lt < tiles; ++lt) {
    const int64_t t = t0 + lt;
    for (int64_t j = 0; j < m; ++j) {
      const int64_t g = cand[t * m + j] - c0;
      TORCH_CHECK(g >= 0 && g < K, "slic_tiles: the candidates of image ", b,
                  " must index its own centres [", c0, ", ", c0 + K, ")");
      buf.local[lt * m + j] = g;
      std::copy(w + (t * m + j) * P, w + (t * m + j + 1) * P,
                buf.weight.data() + (lt * m + j) * Pp);
    }
    for (int64_t d = 0; d < D; ++d) {
      scalar_t* row = buf.features.data() + (lt * D + d) * Pp;
      std::copy(feat + (t * D + d) * P, feat + (t * D + d + 1) * P, row);
      std::fill(row + P, row + Pp, row[P - 1]);  // see SlicImage
    }
    std::copy(valid + t * P, valid + (t + 1) * P, buf.valid.data() + lt * Pp);
  }
  const SlicImage<scalar_t> image{tiles, D, Pp, m, K, buf.features.data(), buf.valid.data(),
                                  origins + t0 * D, buf.local.data(), fallback + c0 * D};
  run_slic(image, num_iterations, threshold, softmax, buf.weight.data(), buf.scratch);
  for (int64_t lt = 0; lt < tiles; ++lt)
    for (int64_t j = 0; j < m; ++j)
      std::copy(buf.weight.data() + (lt * m + j) * Pp, buf.weight.data() + (lt * m + j) * Pp + P,
                w + ((t0 + lt) * m + j) * P);
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
      PaddedImage<scalar_t> buf;
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
