// The tiled assignment S of one image, read pixel by pixel, and the group
// adjacency of Eq. 4 built from it.
//
// Tiling: the image's H x W pixels in tiles of th x tw (row-major; the last row
// and column of tiles padded), tile (ty, tx) = ty * tiles_x + tx, position
// (a, c) of a tile = a * tw + c; the weights of one image are [tiles][m][P]
// (P = th * tw positions, m candidates per tile), slot_group [tiles][m] the
// group (within the image) of every candidate.
//
// PixelEntries lists the non-zero entries of every pixel, in slot order;
// accumulate_half_blocks adds
//
//   A[d, g, h] += S[p, g] S[p + delta_d, h]                              (Eq. 4)
//
// over the pixels p whose neighbour p + delta_d lies in the image, for the four
// half directions delta = (0, 1), (1, -1), (1, 0), (1, 1) (types 5, 6, 7, 8),
// into a dense [4, n, n] block, visiting only the non-zero entries: after the
// 1e-3 filter of Algorithm 1 a pixel keeps a few of its m candidates.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace pyg_hgconv {

constexpr int kHalf = 4;
constexpr int64_t kHalfDy[kHalf] = {0, 1, 1, 1};
constexpr int64_t kHalfDx[kHalf] = {1, -1, 0, 1};

struct ImageTiling {
  int64_t H, W, th, tw, tiles_y, tiles_x, m, P;

  ImageTiling(int64_t height, int64_t width, int64_t tile_h, int64_t tile_w, int64_t m_)
      : H(height), W(width), th(tile_h), tw(tile_w), tiles_y((height + tile_h - 1) / tile_h),
        tiles_x((width + tile_w - 1) / tile_w), m(m_), P(tile_h * tile_w) {}

  int64_t tiles() const { return tiles_y * tiles_x; }
  int64_t tile(int64_t y, int64_t x) const { return (y / th) * tiles_x + x / tw; }
  int64_t position(int64_t y, int64_t x) const { return (y % th) * tw + x % tw; }
};

// The non-zero entries of every pixel of one image: groups and weights, m slots per
// pixel (count[pixel] used), pixel-major, in slot order. One per thread, refilled
// per image.
template <typename T>
struct PixelEntries {
  std::vector<int32_t> group;
  std::vector<T> value;
  std::vector<int32_t> count;

  // weight: the image's [tiles][m][P] weights; slot_group: its [tiles][m] groups.
  // Slot by slot, each slot's row of positions read in order; every position's
  // entry is written and kept where its weight is non-zero (no branch on it).
  void gather(const ImageTiling& g, const T* weight, const int64_t* slot_group) {
    const int64_t pixels = g.H * g.W;
    if (static_cast<int64_t>(count.size()) < pixels) {
      count.resize(pixels);
      group.resize(pixels * g.m);
      value.resize(pixels * g.m);
    }
    std::fill(count.begin(), count.begin() + pixels, 0);
    for (int64_t ty = 0; ty < g.tiles_y; ++ty) {
      const int64_t y0 = ty * g.th, rows = std::min(g.th, g.H - y0);
      for (int64_t tx = 0; tx < g.tiles_x; ++tx) {
        const int64_t x0 = tx * g.tw, cols = std::min(g.tw, g.W - x0);
        const int64_t tile = ty * g.tiles_x + tx;
        for (int64_t i = 0; i < g.m; ++i) {
          const T* row = weight + (tile * g.m + i) * g.P;
          const int32_t slot = static_cast<int32_t>(slot_group[tile * g.m + i]);
          for (int64_t a = 0; a < rows; ++a) {
            for (int64_t c = 0; c < cols; ++c) {
              const int64_t pixel = (y0 + a) * g.W + x0 + c;
              const T w = row[a * g.tw + c];
              const int32_t k = count[pixel];
              group[pixel * g.m + k] = slot;
              value[pixel * g.m + k] = w;
              count[pixel] = k + (w != T(0));
            }
          }
        }
      }
    }
  }
};

// Where A[d, g, h] lies in a block of n groups: direction-major [4][n][n] (the
// layout of the half_direction_blocks op), or pair-major [n][n][4] (the four
// directions of a pair in one 16- or 32-byte run: the pairs a pass touches stay in
// few cache lines).
struct DirectionMajor {
  int64_t n;
  int64_t operator()(int d, int64_t g, int64_t h) const { return (d * n + g) * n + h; }
};
struct PairMajor {
  int64_t n;
  int64_t operator()(int d, int64_t g, int64_t h) const { return (g * n + h) * kHalf + d; }
};

// Eq. 4 for the four half directions into 'block' (entry (d, g, h) the weight of
// h -> g, at layout(d, g, h)), which the caller zeroes. With Diagonal false the
// entries g == h (a group next to itself) are left out. touch(g, h) is called when
// an entry (., g, h) goes from zero to non-zero, before the addition.
template <bool Diagonal, typename T, typename Layout, typename Touch>
void accumulate_half_blocks(const ImageTiling& g, const PixelEntries<T>& entries, T* block,
                            const Layout& layout, Touch&& touch) {
  const int32_t* group = entries.group.data();
  const T* value = entries.value.data();
  const int32_t* count = entries.count.data();
  for (int64_t y = 0; y < g.H; ++y) {
    for (int64_t x = 0; x < g.W; ++x) {
      const int64_t p = y * g.W + x;
      for (int d = 0; d < kHalf; ++d) {
        const int64_t ny = y + kHalfDy[d], nx = x + kHalfDx[d];
        if (ny >= g.H || nx < 0 || nx >= g.W) continue;
        const int64_t q = ny * g.W + nx;
        for (int32_t i = 0; i < count[p]; ++i) {
          const int64_t gi = group[p * g.m + i];
          const T wp = value[p * g.m + i];
          for (int32_t j = 0; j < count[q]; ++j) {
            const int64_t h = group[q * g.m + j];
            if (!Diagonal && h == gi) continue;
            T& entry = block[layout(d, gi, h)];
            if (entry == T(0)) touch(gi, h);
            entry += wp * value[q * g.m + j];
          }
        }
      }
    }
  }
}

// The off-diagonal part of Eq. 4 (g != h) of one image, compactly: every unordered
// pair {g, h} of groups in contact gets an id on its first product (pair_id
// [n][n] at (min, max); -1 for none, 0 on the diagonal, which collects the
// diagonal's products unused), listed in 'pairs' (index id - 1), and its eight
// values A[d, min, max], A[d, max, min] in values[id][8] (the second four for
// the target max). A few cache lines hold what a dense [4, n, n] block spreads
// over its rows, and no product branches on the diagonal.
template <typename T>
void accumulate_contacts(const ImageTiling& g, const PixelEntries<T>& entries, int64_t n,
                         int32_t* pair_id, std::vector<std::pair<int32_t, int32_t>>& pairs,
                         std::vector<T>& values) {
  const int32_t* group = entries.group.data();
  const T* value = entries.value.data();
  const int32_t* count = entries.count.data();
  const int64_t m = g.m;
  pairs.clear();
  values.assign(8, T(0));
  for (int64_t i = 0; i < n; ++i) pair_id[i * n + i] = 0;
  for (int64_t y = 0; y < g.H; ++y) {
    for (int64_t x = 0; x < g.W; ++x) {
      const int64_t p = y * g.W + x;
      for (int d = 0; d < kHalf; ++d) {
        const int64_t ny = y + kHalfDy[d], nx = x + kHalfDx[d];
        if (ny >= g.H || nx < 0 || nx >= g.W) continue;
        const int64_t q = ny * g.W + nx;
        for (int32_t i = 0; i < count[p]; ++i) {
          const int32_t a = group[p * m + i];
          const T wa = value[p * m + i];
          for (int32_t j = 0; j < count[q]; ++j) {
            const int32_t b = group[q * m + j];
            const int32_t lo = a < b ? a : b, hi = a < b ? b : a;
            int32_t id = pair_id[lo * n + hi];
            if (id < 0) {
              pairs.emplace_back(lo, hi);
              id = pair_id[lo * n + hi] = static_cast<int32_t>(pairs.size());
              values.resize(values.size() + 8, T(0));
            }
            values[id * 8 + (a > b) * 4 + d] += wa * value[q * m + j];
          }
        }
      }
    }
  }
  for (const auto& [lo, hi] : pairs) pair_id[lo * n + hi] = -1;  // -1 again for the next image
  for (int64_t i = 0; i < n; ++i) pair_id[i * n + i] = -1;
}

// Where A[d, u, v] of one pair {u, v} lies in its eight values (accumulate_contacts).
struct PairValues {
  int64_t operator()(int d, int64_t u, int64_t v) const { return (u > v) * kHalf + d; }
};

}  // namespace pyg_hgconv
