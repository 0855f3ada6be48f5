// The 'centroid' direction rule of HG-Conv's group adjacency for one ordered pair
// of groups (pyg_hgconv/nn/pool/adjacency.py, _centroid_edges): from the dense
// half-direction blocks A[d, t, s] of Eq. 4 of one image (target t, source s,
// half direction d of types 5, 6, 7, 8),
//
//   Eq. 7 (noise_cancel):  A^delta <- max(A^delta - (A^delta)^T, 0)
//   contact:               w_ts = sum_d A[d, t, s] + A[d, s, t]
//   the edge s -> t exists when w_ts >= threshold (> 0 for threshold 0); its type
//   is the 45-degree sector of pos[s] - pos[t] (the strongest of the nine weights
//   where the centroids coincide, ties to the smallest type when t < s, else to
//   the largest).
#pragma once

#include <cmath>
#include <cstdint>

namespace pyg_hgconv {

constexpr int kTypes = 9;
constexpr int kSelf = 4;

// The type of displacement (dx, dy): the 45-degree sector it lies in
// (pyg_hgconv.utils.directions.displacement_direction).
template <typename T>
int sector(T dx, T dy, T tan_sector) {
  const T ax = std::abs(dx), ay = std::abs(dy);
  const int sx = ax > tan_sector * ay ? (dx > 0 ? 1 : -1) : 0;
  const int sy = ay > tan_sector * ax ? (dy > 0 ? 1 : -1) : 0;
  return (sy + 1) * 3 + (sx + 1);
}

// The edge s -> t (s != t) of one image: false when its contact is below the
// threshold, else its type and weight. block: A before Eq. 7, entry (d, u, v) at
// layout(d, u, v) (entries.h); pos: [n][2] centroids (x, y) of the image's groups.
template <typename T, typename Layout>
bool centroid_edge(const T* block, const Layout& layout, int64_t t, int64_t s, const T* pos,
                   bool noise_cancel, T threshold, T tan_sector, int& type, T& weight) {
  auto a = [&](int d, int64_t u, int64_t v) {  // A^delta_uv after Eq. 7
    const T value = block[layout(d, u, v)];
    if (!noise_cancel) return value;
    const T c = value - block[layout(d, v, u)];
    return c > T(0) ? c : T(0);
  };
  T total = 0;
  for (int d = 0; d < 4; ++d) total += a(d, t, s);
  T total_t = 0;
  for (int d = 0; d < 4; ++d) total_t += a(d, s, t);
  total = total + total_t;
  if (!(threshold > T(0) ? total >= threshold : total > T(0))) return false;
  int k = sector(pos[s * 2] - pos[t * 2], pos[s * 2 + 1] - pos[t * 2 + 1], tan_sector);
  if (k == kSelf) {  // coinciding centroids: the strongest of the nine types
    T score[kTypes];
    for (int d = 0; d < 4; ++d) {
      score[5 + d] = a(d, t, s);
      score[3 - d] = a(d, s, t);
    }
    score[kSelf] = 0;
    T best = score[0];
    for (int i = 1; i < kTypes; ++i) best = score[i] > best ? score[i] : best;
    for (int i = 0; i < kTypes; ++i) {
      const int candidate = t < s ? i : kTypes - 1 - i;
      if (score[candidate] == best) {
        k = candidate;
        break;
      }
    }
  }
  type = k;
  weight = total;
  return true;
}

}  // namespace pyg_hgconv
