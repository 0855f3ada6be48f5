// HG-Conv's differentiable SLIC on the tiles of one image (paper, Algorithm 1),
// the forward without gradient:
//
//   Z_jj = sum_i S_ij,  X^c = (S Z^-1)^T X                           (lines 3-4)
//   S_ij ~ exp(-||X_i - X^c_j||^2), j among the tile's m candidates   (line 5)
//   S_ij < 1e-3 -> 0, rows normalised                                (lines 7-8)
//
// on the tiled layout of pyg_hgconv/nn/pool/slic.py: the pixels of a tile share m
// candidate centres, features are relative to their tile (its origin added back
// for the centre sums), the weights are [tiles, m, positions]. 'softmax'
// normalises every pixel's weights over its candidates inside the loop (SSN);
// otherwise the paper's unnormalised exp(-d^2), and a pixel whose candidates all
// fall below the filter keeps its nearest candidates in feature space.
//
// Every row of positions is padded to a multiple of the vector width (zeros), so
// that all loops run on whole vectors:
//   - the centre sums of a tile are [m, P] x [P, D + 1] products, computed four
//     candidates by four features at a time in vector registers and added into
//     per-centre lane accumulators, which are summed over their lanes once per
//     iteration (not once per tile and candidate);
//   - the logits 2 x.c - ||c||^2 of four candidates at a time are accumulated in
//     registers over the features and stored once per block of positions;
//   - the softmax runs on the [m, lanes] block of logits while it is in L1.
// One call runs the whole loop of one image on buffers the size of the image; the
// ops that use it thread over images.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "vec.h"

namespace pyg_hgconv {

// One image's SLIC problem in the padded tile layout (rows of Pp positions, a
// multiple of Vec<T>::lanes; the positions beyond the tile's P repeat its last
// position's features, with valid zero: they weigh nothing, and they do not keep a
// block from recognising its far candidates).
template <typename T>
struct SlicImage {
  int64_t tiles, D, Pp, m, K;
  const T* features;          // [tiles][D][Pp]: clustering features, relative to the tile
  const T* valid;             // [tiles][Pp]: 1 on image pixels, 0 on padding
  const T* origins;           // [tiles][D]: what the tile subtracted from its features
  const int64_t* slot_centre;  // [tiles][m]: the image's centre (0..K-1) of every candidate
  const T* fallback;          // [K][D]: features of the centres' own pixels
};

// Buffers of one thread, reused from image to image.
template <typename T, int Bytes = 64>
struct SlicScratch {
  static constexpr int64_t kChunk = 4;  // candidates x features of a register block
  std::vector<T> with_mass;  // [tiles][D1p][Pp]: absolute features and 1, times valid
  std::vector<T> lanes;      // [K][D1p][L]: the centre sums before the sum over lanes
  std::vector<T> centre;     // [K][D]
  std::vector<T> twice;      // [m][D]: 2 (centre - tile origin)
  std::vector<T> norm;       // [m]: ||centre - tile origin||^2
  std::vector<T> block;      // [m][L]: logits, then weights, of one block of positions
  std::vector<T> expo;       // [m][L]: the paper's weights beside their logits
  std::vector<T> square;     // [L]: ||x||^2 of a block (the paper's weights)

  static int64_t rows_with_mass(int64_t D) { return (D + 1 + kChunk - 1) / kChunk * kChunk; }

  void fit(const SlicImage<T>& s) {
    constexpr int64_t L = Vec<T, Bytes>::lanes;
    const int64_t D1p = rows_with_mass(s.D);
    grow(with_mass, s.tiles * D1p * s.Pp);
    grow(lanes, s.K * D1p * L);
    grow(centre, s.K * s.D);
    grow(twice, s.m * s.D);
    grow(norm, s.m);
    grow(block, s.m * L);
    grow(expo, s.m * L);
    grow(square, L);
  }

 private:
  static void grow(std::vector<T>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(n);
  }
};

namespace slic_detail {

template <typename T, int Bytes>
using VT = typename Vec<T, Bytes>::type;

template <typename T, int Bytes>
inline VT<T, Bytes> vmax(VT<T, Bytes> a, VT<T, Bytes> b) {
  return a > b ? a : b;
}

// Lines 3-4: X^c_g = sum S x / sum S over the image's tiles, or the centre's own
// pixel where it has no mass.
template <typename T, int Bytes>
void update_centres(const SlicImage<T>& s, const T* w, SlicScratch<T, Bytes>& buf) {
  using V = Vec<T, Bytes>;
  using Scratch = SlicScratch<T, Bytes>;
  constexpr int64_t L = V::lanes, C = Scratch::kChunk;
  const int64_t D = s.D, D1p = Scratch::rows_with_mass(D), Pp = s.Pp, m = s.m;
  T* lanes = buf.lanes.data();
  std::fill(lanes, lanes + s.K * D1p * L, T(0));
  for (int64_t t = 0; t < s.tiles; ++t) {
    const T* wm = buf.with_mass.data() + t * D1p * Pp;
    const T* wt = w + t * m * Pp;
    const int64_t* centre_of = s.slot_centre + t * m;
    int64_t j = 0;
    for (; j + C <= m; j += C) {  // C candidates x C features per register block
      for (int64_t d0 = 0; d0 < D1p; d0 += C) {
        VT<T, Bytes> acc[C][C] = {};
        for (int64_t p = 0; p < Pp; p += L) {
          VT<T, Bytes> f[C], wv[C];
          for (int64_t d = 0; d < C; ++d) f[d] = V::load(wm + (d0 + d) * Pp + p);
          for (int64_t i = 0; i < C; ++i) wv[i] = V::load(wt + (j + i) * Pp + p);
          for (int64_t i = 0; i < C; ++i)
            for (int64_t d = 0; d < C; ++d) acc[i][d] += wv[i] * f[d];
        }
        for (int64_t i = 0; i < C; ++i) {
          T* out = lanes + (centre_of[j + i] * D1p + d0) * L;
          for (int64_t d = 0; d < C; ++d) V::store(out + d * L, V::load(out + d * L) + acc[i][d]);
        }
      }
    }
    for (; j < m; ++j) {
      for (int64_t d0 = 0; d0 < D1p; d0 += C) {
        VT<T, Bytes> acc[C] = {};
        for (int64_t p = 0; p < Pp; p += L) {
          const VT<T, Bytes> wv = V::load(wt + j * Pp + p);
          for (int64_t d = 0; d < C; ++d) acc[d] += wv * V::load(wm + (d0 + d) * Pp + p);
        }
        T* out = lanes + (centre_of[j] * D1p + d0) * L;
        for (int64_t d = 0; d < C; ++d) V::store(out + d * L, V::load(out + d * L) + acc[d]);
      }
    }
  }
  for (int64_t g = 0; g < s.K; ++g) {
    const T* acc = lanes + g * D1p * L;
    const T mass = V::sum(V::load(acc + D * L));
    T* c = buf.centre.data() + g * D;
    if (mass > T(1e-12)) {
      for (int64_t d = 0; d < D; ++d) c[d] = V::sum(V::load(acc + d * L)) / mass;
    } else {
      std::copy(s.fallback + g * D, s.fallback + (g + 1) * D, c);
    }
  }
}

// Lines 7-8 on the [m][L] weights of one block: the filter, (paper, where 'logits'
// is given) the nearest candidates of a pixel with nothing left, the
// normalisation and the padding mask.
template <typename T, int Bytes>
void finish_block(T* block, int64_t m, T threshold, const T* valid, const T* logits) {
  using V = Vec<T, Bytes>;
  constexpr int64_t L = V::lanes;
  VT<T, Bytes> total{};
  const VT<T, Bytes> thr = V::broadcast(threshold), zero{};
  for (int64_t j = 0; j < m; ++j) {
    VT<T, Bytes> v = V::load(block + j * L);
    v = v >= thr ? v : zero;
    V::store(block + j * L, v);
    total += v;
  }
  if (logits != nullptr) {
    for (int64_t p = 0; p < L; ++p) {
      if (total[p] != T(0)) continue;
      T best = logits[p];
      for (int64_t j = 1; j < m; ++j) best = std::max(best, logits[j * L + p]);
      for (int64_t j = 0; j < m; ++j) {
        if (logits[j * L + p] == best) {
          block[j * L + p] = 1;
          total[p] += 1;
        }
      }
    }
  }
  // divided, not multiplied by the inverse: a pixel's only weight becomes exactly 1
  const VT<T, Bytes> tiny = V::broadcast(std::numeric_limits<T>::min());
  const VT<T, Bytes> divisor = vmax<T, Bytes>(total, tiny), mask = V::load(valid);
  for (int64_t j = 0; j < m; ++j) V::store(block + j * L, V::load(block + j * L) / divisor * mask);
}

// Line 5 (and after the last iteration lines 7-8) on tile t: the new weights of
// its m candidates for every position.
template <typename T, int Bytes>
void assign_tile(const SlicImage<T>& s, int64_t t, bool last, T threshold, bool softmax, T* w,
                 SlicScratch<T, Bytes>& buf) {
  using V = Vec<T, Bytes>;
  constexpr int64_t L = V::lanes, C = SlicScratch<T, Bytes>::kChunk;
  const int64_t D = s.D, Pp = s.Pp, m = s.m;
  const T* f = s.features + t * D * Pp;
  const T* origin = s.origins + t * D;
  T* twice = buf.twice.data();
  T* norm = buf.norm.data();
  for (int64_t j = 0; j < m; ++j) {
    const T* c = buf.centre.data() + s.slot_centre[t * m + j] * D;
    T n = 0;
    for (int64_t d = 0; d < D; ++d) {
      const T r = c[d] - origin[d];
      twice[j * D + d] = 2 * r;
      n += r * r;
    }
    norm[j] = n;
  }
  T* block = buf.block.data();
  T* wt = w + t * m * Pp;
  for (int64_t p = 0; p < Pp; p += L) {
    // -||x - c||^2 up to ||x||^2: 2 x.c - ||c||^2, C candidates at a time
    int64_t j = 0;
    for (; j + C <= m; j += C) {
      VT<T, Bytes> acc[C];
      for (int64_t i = 0; i < C; ++i) acc[i] = V::broadcast(-norm[j + i]);
      for (int64_t d = 0; d < D; ++d) {
        const VT<T, Bytes> fv = V::load(f + d * Pp + p);
        for (int64_t i = 0; i < C; ++i) acc[i] += twice[(j + i) * D + d] * fv;
      }
      for (int64_t i = 0; i < C; ++i) V::store(block + (j + i) * L, acc[i]);
    }
    for (; j < m; ++j) {
      VT<T, Bytes> acc = V::broadcast(-norm[j]);
      for (int64_t d = 0; d < D; ++d) acc += twice[j * D + d] * V::load(f + d * Pp + p);
      V::store(block + j * L, acc);
    }
    if (softmax) {
      VT<T, Bytes> top = V::load(block);
      for (int64_t i = 1; i < m; ++i) top = vmax<T, Bytes>(top, V::load(block + i * L));
      VT<T, Bytes> total{};
      for (int64_t i = 0; i < m; ++i) {
        const VT<T, Bytes> e = exp_vec<Bytes>(V::load(block + i * L) - top);
        V::store(block + i * L, e);
        total += e;
      }
      const VT<T, Bytes> inverse = V::broadcast(1) / total;
      for (int64_t i = 0; i < m; ++i) V::store(block + i * L, V::load(block + i * L) * inverse);
      if (last) finish_block<T, Bytes>(block, m, threshold, s.valid + t * Pp + p, nullptr);
      for (int64_t i = 0; i < m; ++i) V::store(wt + i * Pp + p, V::load(block + i * L));
    } else {  // Algorithm 1, line 5: exp(-||x - c||^2), unnormalised
      VT<T, Bytes> sq{};
      for (int64_t d = 0; d < D; ++d) {
        const VT<T, Bytes> fv = V::load(f + d * Pp + p);
        sq += fv * fv;
      }
      T* expo = buf.expo.data();
      for (int64_t i = 0; i < m; ++i) {
        const VT<T, Bytes> logit = V::load(block + i * L) - sq;
        V::store(block + i * L, logit);
        V::store(expo + i * L, exp_vec<Bytes>(logit));
      }
      if (last) finish_block<T, Bytes>(expo, m, threshold, s.valid + t * Pp + p, block);
      for (int64_t i = 0; i < m; ++i) V::store(wt + i * Pp + p, V::load(expo + i * L));
    }
  }
}

}  // namespace slic_detail

// Runs Algorithm 1 on one image: 'w' [tiles][m][Pp] holds the initial (hard)
// assignment of line 1 on entry and S on return (zero on padding).
template <typename T, int Bytes>
void run_slic(const SlicImage<T>& s, int64_t num_iterations, T threshold, bool softmax, T* w,
              SlicScratch<T, Bytes>& buf) {
  using V = Vec<T, Bytes>;
  constexpr int64_t L = V::lanes;
  buf.fit(s);
  const int64_t D = s.D, D1p = SlicScratch<T, Bytes>::rows_with_mass(D), Pp = s.Pp;
  for (int64_t t = 0; t < s.tiles; ++t) {
    const T* v = s.valid + t * Pp;
    T* wm = buf.with_mass.data() + t * D1p * Pp;
    for (int64_t d = 0; d < D; ++d) {
      const T* f = s.features + (t * D + d) * Pp;
      const T o = s.origins[t * D + d];
#pragma omp simd
      for (int64_t p = 0; p < Pp; ++p) wm[d * Pp + p] = (f[p] + o) * v[p];
    }
    std::copy(v, v + Pp, wm + D * Pp);
    std::fill(wm + (D + 1) * Pp, wm + D1p * Pp, T(0));
  }
  for (int64_t it = 0; it < num_iterations; ++it) {
    slic_detail::update_centres(s, w, buf);
    for (int64_t t = 0; t < s.tiles; ++t)
      slic_detail::assign_tile(s, t, it + 1 == num_iterations, threshold, softmax, w, buf);
  }
  if (num_iterations == 0) {  // the hard assignment, filtered and normalised
    T* block = buf.block.data();
    for (int64_t t = 0; t < s.tiles; ++t) {
      T* wt = w + t * s.m * Pp;
      for (int64_t p = 0; p < Pp; p += L) {
        for (int64_t i = 0; i < s.m; ++i) V::store(block + i * L, V::load(wt + i * Pp + p));
        slic_detail::finish_block<T, Bytes>(block, s.m, threshold, s.valid + t * Pp + p, nullptr);
        for (int64_t i = 0; i < s.m; ++i) V::store(wt + i * Pp + p, V::load(block + i * L));
      }
    }
  }
}

}  // namespace pyg_hgconv
