// Fused CPU kernel of HG-Conv's whole clustering after the centre sampling, the
// forward without gradient (pyg_hgconv/nn/pool/image_to_group_graph.py, steps 3-5
// of ImageToGroupGraph), one image per thread:
//
//   1. the clustering features: the embedding standardised per image (divided by
//      its largest magnitude, centred per channel, divided by its RMS), times the
//      feature scale, plus the pixel coordinates times the position scale;
//   2. the candidates of every tile: the m sampled centres nearest to the tile's
//      centre (squared distances on doubled integer coordinates, exact; ties to the
//      lower centre index; the centres by row, the rows visited outwards until no
//      farther row can hold a nearer one), and line 1 of Algorithm 1, every pixel
//      to its nearest candidate (ties to the first slot);
//   3. Algorithm 1 (slic.h) on the tiles;
//   4. the soft pixel count of every centre; centres without pixels are dropped and
//      the kept ones numbered in order (a dropped candidate slot points to the
//      image's first group);
//   5. the centroids (Eq. 5 on the pixel coordinates), and with 'x' the pooled
//      features (Eq. 5): maps of fewer channels than a vector holds entry by entry
//      of S's coordinate form (step 6), wider ones slot by slot (pooling.h),
//      channels-last maps row by row, contiguous ones tile by tile, transposed in
//      registers first;
//   6. the coordinate form of S, sorted by pixel, then slot;
//   7. with 'edges': Eq. 4 on the non-zero entries (entries.h), into a dense
//      [4][n][n] block for up to kDenseContactGroups groups, else compactly per
//      pair of groups in contact; then per pair in contact the 'centroid' rule
//      (edges.h: Eq. 7, the pair's contact, the sector of its centroid
//      displacement), the identity self loops, sorted by target, then type, then
//      source.
//
// The same arithmetic as the PyTorch path, step by step (sums in other orders, so
// equal to float tolerance); the outputs are those of the union graph of the batch,
// with global node and pixel indices. Two passes threaded over images: the first
// clusters every image and keeps what sizes its outputs, the second writes them at
// the images' offsets (prefix sums), so the result does not depend on the threads.
//
// Registered as pyg_hgconv::cluster_images (forward only; the Python side,
// pyg_hgconv/nn/pool/fused_clustering.py, adds the fake kernel and calls it only
// where no gradient is needed).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <tuple>
#include <vector>

#include "edges.h"
#include "entries.h"
#include "layout.h"
#include "pooling.h"
#include "slic.h"

namespace {

using namespace pyg_hgconv;

// bits of a centre index in the (distance, centre) keys of the candidate search,
// and the largest image side whose squared doubled distances leave them room
constexpr int kCentreBits = 24;
constexpr int64_t kCentreMask = (int64_t(1) << kCentreBits) - 1;
constexpr int64_t kMaxSide = int64_t(1) << 17;

// The m smallest (distance, centre) keys of a tile's search, ascending, in whole
// vectors; the places past m and those not yet filled hold kNoKey.
using KeyVec = Vec<int64_t>;
static_assert(KeyVec::lanes == 8, "insert_key shifts by eight lanes");
constexpr int64_t kNoKey = std::numeric_limits<int64_t>::max();

// Inserts 'key' into the sorted keys 'best' (dropping the largest) without a branch
// on it: place j becomes min(best[j], max(best[j - 1], key)), best[-1] = -inf.
inline void insert_key(KeyVec::type* best, int64_t vectors, int64_t key) {
  const KeyVec::type k = KeyVec::broadcast(key);
  for (int64_t v = vectors - 1; v >= 0; --v) {
    const KeyVec::type before =
        v > 0 ? best[v - 1] : KeyVec::broadcast(std::numeric_limits<int64_t>::min());
    const KeyVec::type shifted =
        __builtin_shufflevector(before, best[v], 7, 8, 9, 10, 11, 12, 13, 14);
    const KeyVec::type raised = shifted > k ? shifted : k;
    best[v] = best[v] < raised ? best[v] : raised;
  }
}

struct Sizes {
  int64_t B, D, H, W, N, K, m, C;
  ImageTiling tiling;
  int64_t tiles, P, Pp, Dc;  // Dc: clustering features (D + 2 coordinates)
};

// What the first pass keeps of one image for the second (local indices).
template <typename T>
struct ImageResult {
  std::vector<int64_t> slot_group;    // [tiles][m] group within the image of every slot
  std::vector<int64_t> kept;          // [n] the kept centres (indices among the K)
  std::vector<T> mass;                // [n]
  std::vector<T> pos;                 // [n][2] centroids (x, y)
  std::vector<int32_t> entry_pixel;   // [nnz] the non-zero entries of S, by pixel, then slot
  std::vector<int32_t> entry_group;   // [nnz]
  std::vector<T> entry_value;         // [nnz]
  std::vector<int64_t> edge_source;   // [E] by target, then type, then source
  std::vector<int64_t> edge_target;   // [E]
  std::vector<int64_t> edge_type;     // [E]
  std::vector<T> edge_weight;         // [E]
};

// One thread's buffers, reused from image to image.
template <typename T>
struct Workspace {
  std::vector<T> standard;            // [D][N]
  std::vector<T> features;            // [tiles][Dc][Pp]
  std::vector<T> valid;               // [tiles][Pp]
  std::vector<T> origins;             // [tiles][Dc]
  std::vector<T> fallback;            // [K][Dc]
  std::vector<T> weight;              // [tiles][m][Pp]
  std::vector<int64_t> slot_centre;   // [tiles][m]
  std::vector<int64_t> local_y;       // [Pp]: the position's row within its tile
  std::vector<int64_t> local_x;       // [Pp]
  std::vector<T> coordinate_rows;     // [2][Pp]: the coordinate features of a tile
  std::vector<int64_t> nearest;       // [Pp]: line 1, every position's nearest slot
  std::vector<int64_t> nearest_dist;  // [Pp]
  std::vector<int64_t> centre_y;      // [K]
  std::vector<int64_t> centre_x;      // [K]
  std::vector<int64_t> row_fill;      // [H]: the next free place of every row
  std::vector<KeyVec::type> best_keys;  // [ceil(m / 8)]: the best (distance, centre) keys
  std::vector<int64_t> row_start;     // [H + 1]: the centres of every row
  std::vector<int64_t> by_row;        // [K]
  std::vector<T> centre_mass;         // [K]
  std::vector<int64_t> new_id;        // [K]
  std::vector<T> sums;                // [K][3]
  SlicScratch<T, 64> slic;
  PixelEntries<T> entries;
  std::vector<T> block;               // [4][n][n]: Eq. 4 of a small image (dense)
  std::vector<T> contact;             // [n][n]: its sum over the four directions
  DirectPairIds direct_pair_ids;      // the compact pairs' ids (accumulate_contacts),
  HashedPairIds hashed_pair_ids;      // up to kDirectPairGroups groups, and beyond
  std::vector<std::pair<int32_t, int32_t>> pairs;
  std::vector<T> pair_values;         // [1 + pairs][8]
  std::vector<int64_t> pair_order;    // [pairs]: the compact pairs by (u, v)
  std::vector<int64_t> first_edge;    // [n * kTypes + 1]: the edges of every (target, type)
  std::vector<std::tuple<int64_t, int64_t, int64_t, T>> edges;  // (target, type, source, w)

  explicit Workspace(const Sizes& s)
      : standard(s.D * s.N), features(s.tiles * s.Dc * s.Pp), valid(s.tiles * s.Pp),
        origins(s.tiles * s.Dc), fallback(s.K * s.Dc), weight(s.tiles * s.m * s.Pp),
        slot_centre(s.tiles * s.m), local_y(s.Pp), local_x(s.Pp), coordinate_rows(2 * s.Pp),
        nearest(s.Pp), nearest_dist(s.Pp), centre_y(s.K), centre_x(s.K),
        row_fill(s.H), best_keys((s.m + KeyVec::lanes - 1) / KeyVec::lanes), row_start(s.H + 1),
        by_row(s.K), centre_mass(s.K), new_id(s.K), sums(s.K * 3) {}
};

// Step 1: the standardised embedding of one image times the feature scale, into
// out [D][N]; e holds feature d of pixel i at d * channel_stride + i * pixel_stride
// (contiguous planes or channels-last rows).
template <typename T>
void standardize(const T* e, int64_t D, int64_t N, int64_t channel_stride,
                 int64_t pixel_stride, T scale, T* out) {
  const int64_t size = D * N;
  T peak = 0;
#pragma omp simd reduction(max : peak)
  for (int64_t i = 0; i < size; ++i) {
    const T a = std::abs(e[i]);
    peak = a > peak ? a : peak;
  }
  peak = std::max(peak, std::numeric_limits<T>::min());
  for (int64_t d = 0; d < D; ++d) {
    T* row = out + d * N;
    const T* in = e + d * channel_stride;
    double total = 0;
#pragma omp simd reduction(+ : total)
    for (int64_t i = 0; i < N; ++i) {
      row[i] = in[i * pixel_stride] / peak;
      total += row[i];
    }
    const T mean = static_cast<T>(total / N);
#pragma omp simd
    for (int64_t i = 0; i < N; ++i) row[i] -= mean;
  }
  double square = 0;
#pragma omp simd reduction(+ : square)
  for (int64_t i = 0; i < size; ++i) square += double(out[i]) * out[i];
  const T rms = std::max(static_cast<T>(std::sqrt(static_cast<T>(square / size))), T(1e-6));
#pragma omp simd
  for (int64_t i = 0; i < size; ++i) out[i] = out[i] / rms * scale;
}

// Steps 1-3 and 4: S of one image into 'w_out' ([tiles][m][P]), and the kept centres.
template <typename T>
void cluster_image(const Sizes& s, const T* embedding, bool embedding_channels_last,
                   const int64_t* centre_pixel,
                   T feature_scale, T position_scale, int64_t num_iterations, T threshold,
                   bool softmax, T* w_out, ImageResult<T>& result, Workspace<T>& ws) {
  const ImageTiling& g = s.tiling;
  const int64_t D = s.D, Dc = s.Dc, N = s.N, K = s.K, m = s.m, P = s.P, Pp = s.Pp;
  T* es = ws.standard.data();
  standardize(embedding, D, N, embedding_channels_last ? 1 : N, embedding_channels_last ? D : 1,
              feature_scale, es);

  // step 2: the m nearest centres of every tile, on doubled coordinates, as
  // (distance, centre) keys whose order is the rule; the centres by row, and the
  // rows visited outwards from the tile's centre until no farther row can hold a
  // nearer key
  int64_t* cy = ws.centre_y.data();
  int64_t* cx = ws.centre_x.data();
  int64_t* row_start = ws.row_start.data();
  int64_t* by_row = ws.by_row.data();
  std::fill(row_start, row_start + g.H + 1, 0);
  for (int64_t k = 0; k < K; ++k) {
    cy[k] = centre_pixel[k] / g.W;
    cx[k] = centre_pixel[k] - cy[k] * g.W;
    ++row_start[cy[k] + 1];
  }
  for (int64_t r = 0; r < g.H; ++r) row_start[r + 1] += row_start[r];
  {
    int64_t* fill = ws.row_fill.data();  // next free place of every row
    std::copy(row_start, row_start + g.H, fill);
    for (int64_t k = 0; k < K; ++k) by_row[fill[cy[k]]++] = k;
  }
  const int64_t key_vectors = (m + KeyVec::lanes - 1) / KeyVec::lanes;
  KeyVec::type* best = ws.best_keys.data();
  const auto worst = [&] { return best[(m - 1) / KeyVec::lanes][(m - 1) % KeyVec::lanes]; };
  for (int64_t t = 0; t < s.tiles; ++t) {
    const int64_t oy = (t / g.tiles_x) * g.th, ox = (t % g.tiles_x) * g.tw;
    const int64_t qy = oy + std::min(oy + g.th, g.H) - 1, qx = ox + std::min(ox + g.tw, g.W) - 1;
    std::fill(best, best + key_vectors, KeyVec::broadcast(kNoKey));
    int64_t up = qy / 2, down = qy / 2 + 1;
    while (up >= 0 || down < g.H) {
      const int64_t du = up >= 0 ? std::abs(qy - 2 * up) : std::numeric_limits<int64_t>::max();
      const int64_t dd = down < g.H ? std::abs(qy - 2 * down) : std::numeric_limits<int64_t>::max();
      const int64_t row = du <= dd ? up-- : down++, dy = std::min(du, dd);
      if (((dy * dy) << kCentreBits) > worst()) break;
      for (int64_t i = row_start[row]; i < row_start[row + 1]; ++i) {
        const int64_t k = by_row[i], dx = qx - 2 * cx[k];
        insert_key(best, key_vectors, ((dy * dy + dx * dx) << kCentreBits) | k);
      }
    }
    for (int64_t j = 0; j < m; ++j)
      ws.slot_centre[t * m + j] = best[j / KeyVec::lanes][j % KeyVec::lanes] & kCentreMask;
  }

  // the tile layout: features relative to the tile, padded to Pp positions (the
  // positions beyond P repeat the last one, see SlicImage); the local coordinates
  // and their feature rows are the same for every tile
  int64_t* ly = ws.local_y.data();
  int64_t* lx = ws.local_x.data();
  T* coordinate_rows = ws.coordinate_rows.data();  // [2][Pp]
  for (int64_t p = 0; p < Pp; ++p) {
    const int64_t q = std::min(p, P - 1);
    ly[p] = q / g.tw;
    lx[p] = q % g.tw;
    coordinate_rows[p] = T(ly[p]) * position_scale;
    coordinate_rows[Pp + p] = T(lx[p]) * position_scale;
  }
  std::fill(ws.weight.begin(), ws.weight.end(), T(0));
  int64_t* nearest = ws.nearest.data();
  int64_t* nearest_dist = ws.nearest_dist.data();
  for (int64_t t = 0; t < s.tiles; ++t) {
    const int64_t oy = (t / g.tiles_x) * g.th, ox = (t % g.tiles_x) * g.tw;
    const int64_t rows = std::min(g.th, g.H - oy), cols = std::min(g.tw, g.W - ox);
    T* f = ws.features.data() + t * Dc * Pp;
    T* v = ws.valid.data() + t * Pp;
    T* o = ws.origins.data() + t * Dc;
    std::fill(o, o + D, T(0));
    o[D] = T(oy) * position_scale;
    o[D + 1] = T(ox) * position_scale;
#pragma omp simd
    for (int64_t p = 0; p < Pp; ++p) v[p] = (p < P) & (ly[p] < rows) & (lx[p] < cols) ? T(1) : T(0);
    for (int64_t d = 0; d < D; ++d) {
      T* row = f + d * Pp;
      std::fill(row, row + Pp, T(0));
      for (int64_t a = 0; a < rows; ++a)
        std::copy(es + d * N + (oy + a) * g.W + ox, es + d * N + (oy + a) * g.W + ox + cols,
                  row + a * g.tw);
      std::fill(row + P, row + Pp, row[P - 1]);
    }
    std::copy(coordinate_rows, coordinate_rows + 2 * Pp, f + D * Pp);
    // line 1: every position to its spatially nearest candidate (the first slot on ties)
    const int64_t* slots = ws.slot_centre.data() + t * m;
    std::fill(nearest, nearest + P, 0);
    std::fill(nearest_dist, nearest_dist + P, std::numeric_limits<int64_t>::max());
    for (int64_t j = 0; j < m; ++j) {
      const int64_t ry = cy[slots[j]] - oy, rx = cx[slots[j]] - ox;
#pragma omp simd
      for (int64_t p = 0; p < P; ++p) {
        const int64_t dy = ly[p] - ry, dx = lx[p] - rx;
        const int64_t d2 = dy * dy + dx * dx;
        const bool nearer = d2 < nearest_dist[p];
        nearest[p] = nearer ? j : nearest[p];
        nearest_dist[p] = nearer ? d2 : nearest_dist[p];
      }
    }
    T* w = ws.weight.data() + t * m * Pp;
    for (int64_t p = 0; p < P; ++p) w[nearest[p] * Pp + p] = 1;
  }
  for (int64_t k = 0; k < K; ++k) {
    T* fb = ws.fallback.data() + k * Dc;
    for (int64_t d = 0; d < D; ++d) fb[d] = es[d * N + centre_pixel[k]];
    fb[D] = T(cy[k]) * position_scale;
    fb[D + 1] = T(cx[k]) * position_scale;
  }

  // step 3: Algorithm 1
  const SlicImage<T> image{s.tiles, Dc, Pp, m, K, ws.features.data(), ws.valid.data(),
                           ws.origins.data(), ws.slot_centre.data(), ws.fallback.data()};
  run_slic(image, num_iterations, threshold, softmax, ws.weight.data(), ws.slic);
  for (int64_t t = 0; t < s.tiles; ++t)
    for (int64_t j = 0; j < m; ++j)
      std::copy(ws.weight.data() + (t * m + j) * Pp, ws.weight.data() + (t * m + j) * Pp + P,
                w_out + (t * m + j) * P);

  // step 4: soft pixel counts; the kept centres, numbered in order
  T* mass = ws.centre_mass.data();
  std::fill(mass, mass + K, T(0));
  for (int64_t i = 0; i < s.tiles * m; ++i) {
    T total = 0;
    for (int64_t p = 0; p < P; ++p) total += w_out[i * P + p];
    mass[ws.slot_centre[i]] += total;
  }
  result.kept.clear();
  result.mass.clear();
  for (int64_t k = 0; k < K; ++k) {
    ws.new_id[k] = static_cast<int64_t>(result.kept.size());
    if (mass[k] > T(0)) {
      result.kept.push_back(k);
      result.mass.push_back(mass[k]);
    }
  }
  result.slot_group.resize(s.tiles * m);
  for (int64_t i = 0; i < s.tiles * m; ++i) {
    const int64_t k = ws.slot_centre[i];
    result.slot_group[i] = mass[k] > T(0) ? ws.new_id[k] : 0;
  }

  // step 6: the non-zero entries of every pixel, and S in coordinate form
  PixelEntries<T>& entries = ws.entries;
  entries.gather(g, w_out, result.slot_group.data());
  int64_t nnz = 0;
  for (int64_t p = 0; p < N; ++p) nnz += entries.count[p];
  result.entry_pixel.resize(nnz);
  result.entry_group.resize(nnz);
  result.entry_value.resize(nnz);
  int64_t k = 0;
  for (int64_t p = 0; p < N; ++p) {
    for (int32_t i = 0; i < entries.count[p]; ++i, ++k) {
      result.entry_pixel[k] = static_cast<int32_t>(p);
      result.entry_group[k] = static_cast<int32_t>(entries.group[p * m + i]);
      result.entry_value[k] = entries.value[p * m + i];
    }
  }
}

// Step 5: the centroids (x, y) of one image's groups, Eq. 5 on the pixel
// coordinates.
template <typename T>
void centroids(const Sizes& s, ImageResult<T>& result, Workspace<T>& ws, T eps) {
  const int64_t n = static_cast<int64_t>(result.kept.size()), W = s.W;
  T* sums = ws.sums.data();
  std::fill(sums, sums + n * 3, T(0));
  const size_t nnz = result.entry_value.size();
  for (size_t i = 0; i < nnz; ++i) {
    const int64_t p = result.entry_pixel[i];
    const T v = result.entry_value[i];
    T* acc = sums + result.entry_group[i] * 3;
    acc[0] += v * T(p / W);
    acc[1] += v * T(p % W);
    acc[2] += v;
  }
  result.pos.resize(n * 2);
  for (int64_t i = 0; i < n; ++i) {
    const T total = std::max(sums[i * 3 + 2], eps);
    result.pos[i * 2] = sums[i * 3 + 1] / total;
    result.pos[i * 2 + 1] = sums[i * 3] / total;
  }
}

// Up to this many groups per image, Eq. 4 goes into a dense [4][n][n] block (at
// most 1 MiB of float32 per thread): its products add at addresses computed from
// the two groups alone, several times faster than the compact pairs, whose every
// product waits on a lookup of its pair; larger images use the compact pairs.
constexpr int64_t kDenseContactGroups = 256;

// Step 7: the typed, weighted edges of one image (local indices, output order).
template <typename T>
void image_edges(const Sizes& s, ImageResult<T>& result, Workspace<T>& ws, bool noise_cancel,
                 T threshold, T tan_sector) {
  const int64_t n = static_cast<int64_t>(result.kept.size());
  // the edges of every pair in both directions and the identity self loops
  // (supplementary B), generated by source-ordered pairs (u < v, by u, then v; the
  // self loop of u before u's pairs), so that every target receives its sources in
  // ascending order; then placed by (target, type) by counting, which keeps that order
  auto& edges = ws.edges;
  edges.clear();
  const T* pos = result.pos.data();
  auto pair_edges = [&](const T* values, const auto& layout, int64_t u, int64_t v) {
    int type;
    T weight;
    if (centroid_edge(values, layout, u, v, pos, noise_cancel, threshold, tan_sector, type,
                      weight))
      edges.emplace_back(u, type, v, weight);
    if (centroid_edge(values, layout, v, u, pos, noise_cancel, threshold, tan_sector, type,
                      weight))
      edges.emplace_back(v, type, u, weight);
  };
  if (n <= kDenseContactGroups) {
    ws.block.assign(kHalf * n * n, T(0));
    accumulate_half_blocks(s.tiling, ws.entries, ws.block.data(), n);
    // the pairs in contact: a product in either direction (the weights are >= 0)
    const T* block = ws.block.data();
    ws.contact.assign(block, block + n * n);
    T* contact = ws.contact.data();
    for (int d = 1; d < kHalf; ++d) {
      const T* plane = block + d * n * n;
#pragma omp simd
      for (int64_t i = 0; i < n * n; ++i) contact[i] += plane[i];
    }
    const DirectionMajor at{n};
    for (int64_t u = 0; u < n; ++u) {
      edges.emplace_back(u, kSelf, u, T(1));
      for (int64_t v = u + 1; v < n; ++v)
        if (contact[u * n + v] + contact[v * n + u] > T(0)) pair_edges(block, at, u, v);
    }
  } else {
    auto& pairs = ws.pairs;
    if (n <= kDirectPairGroups)
      accumulate_contacts(s.tiling, ws.entries, n, ws.direct_pair_ids, pairs, ws.pair_values);
    else
      accumulate_contacts(s.tiling, ws.entries, n, ws.hashed_pair_ids, pairs, ws.pair_values);
    // the pairs listed by first product, visited by (u, v)
    std::vector<int64_t>& by_pair = ws.pair_order;
    by_pair.resize(pairs.size());
    for (size_t i = 0; i < pairs.size(); ++i) by_pair[i] = static_cast<int64_t>(i);
    std::sort(by_pair.begin(), by_pair.end(),
              [&](int64_t i, int64_t j) { return pairs[i] < pairs[j]; });
    size_t next = 0;
    for (int64_t u = 0; u < n; ++u) {
      edges.emplace_back(u, kSelf, u, T(1));
      for (; next < by_pair.size() && pairs[by_pair[next]].first == u; ++next) {
        const int64_t i = by_pair[next];
        pair_edges(ws.pair_values.data() + (i + 1) * 8, PairValues{}, pairs[i].first,
                   pairs[i].second);
      }
    }
  }
  std::vector<int64_t>& first = ws.first_edge;  // [n * kTypes + 1]
  first.assign(n * kTypes + 1, 0);
  for (const auto& [t, type, source, weight] : edges) ++first[t * kTypes + type + 1];
  for (int64_t i = 0; i < n * kTypes; ++i) first[i + 1] += first[i];
  const size_t E = edges.size();
  result.edge_source.resize(E);
  result.edge_target.resize(E);
  result.edge_type.resize(E);
  result.edge_weight.resize(E);
  for (const auto& [t, type, source, weight] : edges) {
    const int64_t i = first[t * kTypes + type]++;
    result.edge_target[i] = t;
    result.edge_type[i] = type;
    result.edge_source[i] = source;
    result.edge_weight[i] = weight;
  }
}

// Step 5 (features): Eq. 5 of 'x' into the image's rows 'out' [n][C]: maps narrower
// than a vector entry by entry of S's coordinate form, wider ones slot by slot
// (pooling.h).
template <typename T>
void pool_image(const Sizes& s, const T* x, bool channels_last, const T* weight,
                const ImageResult<T>& result, T eps, T* out, PoolScratch<T>& scratch) {
  const int64_t n = static_cast<int64_t>(result.kept.size()), C = s.C;
  std::fill(out, out + n * C, T(0));
  if (C < Vec<T>::lanes) {  // narrower than a vector: entry by entry, from S's coordinate form
    const int64_t N = s.N, pixel_stride = channels_last ? C : 1, channel_stride = channels_last ? 1 : N;
    const size_t nnz = result.entry_value.size();
    for (size_t i = 0; i < nnz; ++i) {
      const T v = result.entry_value[i];
      const T* xp = x + result.entry_pixel[i] * pixel_stride;
      T* o = out + result.entry_group[i] * C;
      for (int64_t c = 0; c < C; ++c) o[c] += v * xp[c * channel_stride];
    }
  } else if (channels_last) {
    pool_rows(s.tiling, x, C, 0, C, weight, result.slot_group.data(), out, scratch);
  } else {
    pool_planes(s.tiling, x, C, weight, result.slot_group.data(), out, scratch);
  }
  for (int64_t gi = 0; gi < n; ++gi) {
    const T inverse = T(1) / std::max(result.mass[gi], eps);
    T* o = out + gi * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) o[c] *= inverse;
  }
}

using Outputs = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                           at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                           at::Tensor, at::Tensor>;

Outputs cluster_images(const at::Tensor& embedding_in, const at::Tensor& centers_in,
                       const std::optional<at::Tensor>& x_in, int64_t tile_h, int64_t tile_w,
                       int64_t num_candidates, double feature_scale, double position_scale,
                       int64_t num_iterations, double threshold, bool softmax, bool edges,
                       bool noise_cancel, double edge_threshold, double tan_sector,
                       double eps) {
  TORCH_CHECK(embedding_in.dim() == 4, "cluster_images: 'embedding' must be [B, D, H, W], got ",
              embedding_in.sizes());
  TORCH_CHECK(embedding_in.scalar_type() == at::kFloat || embedding_in.scalar_type() == at::kDouble,
              "cluster_images: 'embedding' must be float32 or float64");
  const int64_t B = embedding_in.size(0), D = embedding_in.size(1), H = embedding_in.size(2),
                W = embedding_in.size(3);
  TORCH_CHECK(B >= 1 && D >= 1 && H >= 1 && W >= 1, "cluster_images: empty 'embedding' ",
              embedding_in.sizes());
  TORCH_CHECK(centers_in.dim() == 2 && centers_in.size(0) == B &&
                  centers_in.scalar_type() == at::kLong,
              "cluster_images: 'centers' must be a LongTensor [B, K] with B = ", B);
  const int64_t N = H * W, K = centers_in.size(1);
  TORCH_CHECK(K >= 1 && K <= N && K <= kCentreMask, "cluster_images: 'centers' must hold 1 to ",
              std::min(N, kCentreMask), " centres per image, got ", K);
  TORCH_CHECK(H <= kMaxSide && W <= kMaxSide, "cluster_images: images of up to ", kMaxSide,
              " pixels a side, got ", H, " x ", W);
  TORCH_CHECK(num_candidates >= 1 && num_candidates <= K,
              "cluster_images: 'num_candidates' must lie in [1, ", K, "], got ", num_candidates);
  TORCH_CHECK(tile_h >= 1 && tile_h <= H && tile_w >= 1 && tile_w <= W,
              "cluster_images: tiles of ", tile_h, " x ", tile_w, " do not fit ", H, " x ", W);
  TORCH_CHECK(num_iterations >= 0, "cluster_images: 'num_iterations' must be >= 0");
  // channels-last embeddings (of channels-last maps) are read as they are
  const bool embedding_channels_last = reads_channels_last(embedding_in);
  const at::Tensor embedding = embedding_channels_last ? embedding_in : embedding_in.contiguous();
  const at::Tensor centers = centers_in.contiguous();
  TORCH_CHECK(centers.numel() == 0 || (centers.min().item<int64_t>() >= 0 &&
                                       centers.max().item<int64_t>() < N),
              "cluster_images: 'centers' must index pixels in [0, ", N, ")");
  at::Tensor x;
  int64_t C = 0;
  bool channels_last = false;
  if (x_in.has_value()) {
    TORCH_CHECK(x_in->dim() == 4 && x_in->size(0) == B && x_in->size(2) == H &&
                    x_in->size(3) == W && x_in->scalar_type() == embedding.scalar_type(),
                "cluster_images: 'x' must be [B, C, H, W] = [", B, ", C, ", H, ", ", W,
                "] with the dtype of 'embedding', got ", x_in->sizes());
    channels_last = reads_channels_last(*x_in);
    x = channels_last ? *x_in : x_in->contiguous();
    C = x.size(1);
  }
  const ImageTiling tiling(H, W, tile_h, tile_w, num_candidates);
  const at::ScalarType dtype = embedding.scalar_type();
  const int64_t Pp = dtype == at::kFloat ? padded_length<float, 64>(tiling.P)
                                         : padded_length<double, 64>(tiling.P);
  const Sizes s{B, D, H, W, N, K, num_candidates, C, tiling, tiling.tiles(), tiling.P, Pp, D + 2};
  const at::TensorOptions longs = centers.options();
  at::Tensor tile_weight = at::empty({B * s.tiles, s.m, s.P}, embedding.options());
  at::Tensor tile_candidates = at::empty({B * s.tiles, s.m}, longs);
  at::Tensor groups_per_image = at::empty({B}, longs);
  at::Tensor mass, center_pixel, pos, pooled, assign_index, assign_weight, edge_index, edge_type,
      edge_weight;
  AT_DISPATCH_FLOATING_TYPES(dtype, "cluster_images", [&] {
    using T = scalar_t;
    const T* emb = embedding.data_ptr<T>();
    const int64_t* cen = centers.data_ptr<int64_t>();
    T* tw = tile_weight.data_ptr<T>();
    std::vector<ImageResult<T>> results(B);
    // pass 1: cluster every image
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      Workspace<T> ws(s);
      for (int64_t b = begin; b < end; ++b) {
        ImageResult<T>& r = results[b];
        T* w = tw + b * s.tiles * s.m * s.P;
        cluster_image<T>(s, emb + b * D * N, embedding_channels_last, cen + b * K, static_cast<T>(feature_scale),
                         static_cast<T>(position_scale), num_iterations,
                         static_cast<T>(threshold), softmax, w, r, ws);
        centroids<T>(s, r, ws, static_cast<T>(eps));
        if (edges) {
          image_edges<T>(s, r, ws, noise_cancel, static_cast<T>(edge_threshold),
                         static_cast<T>(tan_sector));
        }
      }
    });
    // the images' offsets
    std::vector<int64_t> first_group(B + 1, 0), first_entry(B + 1, 0), first_edge(B + 1, 0);
    for (int64_t b = 0; b < B; ++b) {
      first_group[b + 1] = first_group[b] + static_cast<int64_t>(results[b].kept.size());
      first_entry[b + 1] = first_entry[b] + static_cast<int64_t>(results[b].entry_value.size());
      first_edge[b + 1] = first_edge[b] + static_cast<int64_t>(results[b].edge_type.size());
    }
    const int64_t num_groups = first_group[B], nnz = first_entry[B], E = first_edge[B];
    mass = at::empty({num_groups}, embedding.options());
    center_pixel = at::empty({num_groups}, longs);
    pos = at::empty({num_groups, 2}, embedding.options());
    pooled = at::empty({num_groups, C}, embedding.options());
    assign_index = at::empty({2, nnz}, longs);
    assign_weight = at::empty({nnz}, embedding.options());
    edge_index = at::empty({2, E}, longs);
    edge_type = at::empty({E}, longs);
    edge_weight = at::empty({E}, embedding.options());
    // pass 2: write every image's part
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      PoolScratch<T> scratch;
      for (int64_t b = begin; b < end; ++b) {
        const ImageResult<T>& r = results[b];
        const int64_t g0 = first_group[b], n = static_cast<int64_t>(r.kept.size());
        const T* w = tw + b * s.tiles * s.m * s.P;
        int64_t* cand = tile_candidates.data_ptr<int64_t>() + b * s.tiles * s.m;
        for (int64_t i = 0; i < s.tiles * s.m; ++i) cand[i] = g0 + r.slot_group[i];
        groups_per_image.data_ptr<int64_t>()[b] = n;
        for (int64_t i = 0; i < n; ++i) {
          mass.data_ptr<T>()[g0 + i] = r.mass[i];
          center_pixel.data_ptr<int64_t>()[g0 + i] = cen[b * K + r.kept[i]];
          pos.data_ptr<T>()[(g0 + i) * 2] = r.pos[i * 2];
          pos.data_ptr<T>()[(g0 + i) * 2 + 1] = r.pos[i * 2 + 1];
        }
        // step 6: (pixel, group, weight), by pixel, then slot
        const int64_t nnz_b = static_cast<int64_t>(r.entry_value.size());
        int64_t* pixel_out = assign_index.data_ptr<int64_t>() + first_entry[b];
        int64_t* group_out = pixel_out + nnz;
        T* value_out = assign_weight.data_ptr<T>() + first_entry[b];
        for (int64_t i = 0; i < nnz_b; ++i) {
          pixel_out[i] = b * N + r.entry_pixel[i];
          group_out[i] = g0 + r.entry_group[i];
        }
        std::copy(r.entry_value.begin(), r.entry_value.end(), value_out);
        if (C > 0) {
          const T* xb = x.data_ptr<T>() + b * x.stride(0);
          pool_image<T>(s, xb, channels_last, w, r, static_cast<T>(eps),
                        pooled.data_ptr<T>() + g0 * C, scratch);
        }
        const int64_t E_b = static_cast<int64_t>(r.edge_type.size());
        int64_t* src = edge_index.data_ptr<int64_t>() + first_edge[b];
        int64_t* dst = src + E;
        for (int64_t i = 0; i < E_b; ++i) {
          src[i] = g0 + r.edge_source[i];
          dst[i] = g0 + r.edge_target[i];
        }
        std::copy(r.edge_type.begin(), r.edge_type.end(),
                  edge_type.data_ptr<int64_t>() + first_edge[b]);
        std::copy(r.edge_weight.begin(), r.edge_weight.end(),
                  edge_weight.data_ptr<T>() + first_edge[b]);
      }
    });
  });
  return {tile_weight, tile_candidates, groups_per_image, mass, center_pixel, pos, pooled,
          assign_index, assign_weight, edge_index, edge_type, edge_weight};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pyg_hgconv, m) {
  m.def("cluster_images(Tensor embedding, Tensor centers, Tensor? x, int tile_h, int tile_w, "
        "int num_candidates, float feature_scale, float position_scale, int num_iterations, "
        "float threshold, bool softmax, bool edges, bool noise_cancel, float edge_threshold, "
        "float tan_sector, float eps) -> (Tensor tile_weight, Tensor tile_candidates, "
        "Tensor groups_per_image, Tensor mass, Tensor center_pixel, Tensor pos, Tensor x, "
        "Tensor assign_index, Tensor assign_weight, Tensor edge_index, Tensor edge_type, "
        "Tensor edge_weight)");
}

TORCH_LIBRARY_IMPL(pyg_hgconv, CPU, m) { m.impl("cluster_images", &cluster_images); }
