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
// accumulate_half_blocks (dense blocks) and accumulate_contacts (per pair of groups,
// off the diagonal) add
//
//   A[d, g, h] += S[p, g] S[p + delta_d, h]                              (Eq. 4)
//
// over the pixels p whose neighbour p + delta_d lies in the image, for the four
// half directions delta = (0, 1), (1, -1), (1, 0), (1, 1) (types 5, 6, 7, 8),
// visiting only the non-zero entries: after the 1e-3 filter of Algorithm 1 a pixel
// keeps a few of its m candidates.
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

// The part of a tile inside the image: its index, top-left pixel and size.
struct TileView {
  int64_t tile, y0, x0, rows, cols;
};

// fn(TileView) for the tiles of the tile rows [ty_begin, ty_end) (default: all),
// row-major.
template <typename Fn>
void for_each_tile(const ImageTiling& g, Fn&& fn, int64_t ty_begin = 0, int64_t ty_end = -1) {
  if (ty_end < 0) ty_end = g.tiles_y;
  for (int64_t ty = ty_begin; ty < ty_end; ++ty) {
    const int64_t y0 = ty * g.th, rows = std::min(g.th, g.H - y0);
    for (int64_t tx = 0; tx < g.tiles_x; ++tx) {
      const int64_t x0 = tx * g.tw;
      fn(TileView{ty * g.tiles_x + tx, y0, x0, rows, std::min(g.tw, g.W - x0)});
    }
  }
}

// The non-zero entries of every pixel of one image: groups and weights, m slots per
// pixel (count[pixel] used), pixel-major, in slot order. One per thread, refilled
// per image.
template <typename T>
struct PixelEntries {
  std::vector<int32_t> group;
  std::vector<T> value;
  std::vector<int32_t> count;

  // weight: the image's [tiles][m][P] weights; slot_group: its [tiles][m] groups.
  // Pixel by pixel, its m slots in order; every slot's entry is written and kept
  // where its weight is non-zero (no branch on it), the count in a register.
  void gather(const ImageTiling& g, const T* weight, const int64_t* slot_group) {
    const int64_t pixels = g.H * g.W;
    if (static_cast<int64_t>(count.size()) < pixels) {
      count.resize(pixels);
      group.resize(pixels * g.m);
      value.resize(pixels * g.m);
    }
    for_each_tile(g, [&](const TileView& t) {  // the tiles cover every pixel once
      const T* tile_weight = weight + t.tile * g.m * g.P;
      const int64_t* groups = slot_group + t.tile * g.m;
      for (int64_t a = 0; a < t.rows; ++a) {
        for (int64_t c = 0; c < t.cols; ++c) {
          const int64_t pixel = (t.y0 + a) * g.W + t.x0 + c, position = a * g.tw + c;
          int32_t* pixel_group = group.data() + pixel * g.m;
          T* pixel_value = value.data() + pixel * g.m;
          int32_t k = 0;
          for (int64_t i = 0; i < g.m; ++i) {
            const T w = tile_weight[i * g.P + position];
            pixel_group[k] = static_cast<int32_t>(groups[i]);
            pixel_value[k] = w;
            k += (w != T(0));
          }
          count[pixel] = k;
        }
      }
    });
  }
};

// fn(p, q, d) for every pixel p of the image and its neighbour q = p + delta_d
// inside the image, d = 0..3 the half directions.
template <typename Fn>
void for_each_neighbour(const ImageTiling& g, Fn&& fn) {
  for (int64_t y = 0; y < g.H; ++y) {
    for (int64_t x = 0; x < g.W; ++x) {
      for (int d = 0; d < kHalf; ++d) {
        const int64_t ny = y + kHalfDy[d], nx = x + kHalfDx[d];
        if (ny >= g.H || nx < 0 || nx >= g.W) continue;
        fn(y * g.W + x, ny * g.W + nx, d);
      }
    }
  }
}

// Where A[d, g, h] lies in a direction-major [4][n][n] block (the layout of the
// half_direction_blocks op).
struct DirectionMajor {
  int64_t n;
  int64_t operator()(int d, int64_t g, int64_t h) const { return (d * n + g) * n + h; }
};

// Eq. 4 for the four half directions into 'block' [4][n][n] (entry [d, g, h] the
// weight of h -> g), which the caller zeroes.
template <typename T>
void accumulate_half_blocks(const ImageTiling& g, const PixelEntries<T>& entries, T* block,
                            int64_t n) {
  const int32_t* group = entries.group.data();
  const T* value = entries.value.data();
  const int32_t* count = entries.count.data();
  const DirectionMajor at{n};
  for_each_neighbour(g, [&](int64_t p, int64_t q, int d) {
    for (int32_t i = 0; i < count[p]; ++i) {
      const int64_t gi = group[p * g.m + i];
      const T wp = value[p * g.m + i];
      for (int32_t j = 0; j < count[q]; ++j)
        block[at(d, gi, group[q * g.m + j])] += wp * value[q * g.m + j];
    }
  });
}

// The ids of the unordered pairs {lo, hi} (lo <= hi) of groups of one image, for
// accumulate_contacts: 0 on the diagonal (lo == hi), else an id from 1 on; one per
// thread, emptied per image.
//
// DirectPairIds: an n x n table (only the slots an image used are emptied after it),
// one load per lookup and no branch on the diagonal, which the table holds; for
// images of up to kDirectPairGroups groups.
constexpr int64_t kDirectPairGroups = 1536;  // a table of 9 MB

class DirectPairIds {
 public:
  void reset(int64_t n) {
    for (const int64_t slot : used_) table_[slot] = -1;
    for (int64_t i = 0; i < n_; ++i) table_[i * n_ + i] = -1;
    used_.clear();
    n_ = n;
    if (static_cast<int64_t>(table_.size()) < n * n) table_.assign(n * n, -1);
    for (int64_t i = 0; i < n; ++i) table_[i * n + i] = 0;
  }
  // The id of {lo, hi}, -1 for none yet.
  int32_t find(int32_t lo, int32_t hi) const { return table_[int64_t(lo) * n_ + hi]; }
  // Gives {lo, hi}, which has none yet, the id 'id'.
  void insert(int32_t lo, int32_t hi, int32_t id) {
    const int64_t slot = int64_t(lo) * n_ + hi;
    table_[slot] = id;
    used_.push_back(slot);
  }

 private:
  std::vector<int32_t> table_;  // -1: no id
  std::vector<int64_t> used_;
  int64_t n_ = 0;
};

// HashedPairIds: open addressing (linear probing) on the key lo * n + hi, memory in
// proportion to the pairs, for images of any number of groups.
class HashedPairIds {
 public:
  // Empties the table for an image of n groups, with room for n pairs; it doubles
  // whenever it is half full (a group touches a few others: two or three doublings).
  void reset(int64_t n) {
    n_ = n;
    used_ = 0;
    const int64_t capacity = std::max<int64_t>(64, next_power_of_two(2 * n));
    keys_.assign(capacity, -1);
    ids_.resize(capacity);
    set_capacity(capacity);
  }

  // The id of {lo, hi}, -1 for none yet.
  int32_t find(int32_t lo, int32_t hi) const {
    if (lo == hi) return 0;
    const int64_t key = int64_t(lo) * n_ + hi;
    for (int64_t slot = home(key);; slot = (slot + 1) & mask_) {
      if (keys_[slot] == key) return ids_[slot];
      if (keys_[slot] < 0) return -1;
    }
  }
  // Gives {lo, hi}, which has none yet, the id 'id'.
  void insert(int32_t lo, int32_t hi, int32_t id) {
    const int64_t key = int64_t(lo) * n_ + hi;
    int64_t slot = home(key);
    while (keys_[slot] >= 0) slot = (slot + 1) & mask_;
    keys_[slot] = key;
    ids_[slot] = id;
    if (2 * ++used_ > static_cast<int64_t>(keys_.size())) rehash(2 * keys_.size());
  }

 private:
  static int64_t next_power_of_two(int64_t v) {
    int64_t p = 1;
    while (p < v) p <<= 1;
    return p;
  }
  int64_t home(int64_t key) const {  // Fibonacci hashing: the top bits of key * 2^64 / phi
    return static_cast<int64_t>((uint64_t(key) * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void set_capacity(int64_t capacity) {  // a power of two
    mask_ = capacity - 1;
    shift_ = 64;
    for (int64_t c = capacity; c > 1; c >>= 1) --shift_;
  }
  // The pairs stored so far in a table of 'capacity' slots.
  void rehash(int64_t capacity) {
    std::vector<int64_t> keys(capacity, -1);
    std::vector<int32_t> ids(capacity);
    keys.swap(keys_);
    ids.swap(ids_);
    set_capacity(capacity);
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] < 0) continue;
      int64_t slot = home(keys[i]);
      while (keys_[slot] >= 0) slot = (slot + 1) & mask_;
      keys_[slot] = keys[i];
      ids_[slot] = ids[i];
    }
  }

  std::vector<int64_t> keys_;  // -1: an empty slot
  std::vector<int32_t> ids_;
  int64_t n_ = 0, used_ = 0, mask_ = 0;
  int shift_ = 64;
};

// The off-diagonal part of Eq. 4 (g != h) of one image, compactly: every unordered
// pair {g, h} of groups in contact gets an id on its first product ('ids'; the
// diagonal's products go to id 0, unused), listed in 'pairs' (index id - 1), and its
// eight values A[d, min, max], A[d, max, min] in values[id][8] (the second four for
// the target max). Its values grow with the pairs in contact, not with n^2 (with
// HashedPairIds its ids too), so it serves images of many groups; every product
// waits on the lookup of its pair, so where a dense [4, n, n] block fits
// (accumulate_half_blocks) that is faster.
template <typename T, typename Ids>
void accumulate_contacts(const ImageTiling& g, const PixelEntries<T>& entries, int64_t n,
                         Ids& ids, std::vector<std::pair<int32_t, int32_t>>& pairs,
                         std::vector<T>& values) {
  const int32_t* group = entries.group.data();
  const T* value = entries.value.data();
  const int32_t* count = entries.count.data();
  const int64_t m = g.m;
  pairs.clear();
  values.assign(8, T(0));
  ids.reset(n);
  for_each_neighbour(g, [&](int64_t p, int64_t q, int d) {
    for (int32_t i = 0; i < count[p]; ++i) {
      const int32_t a = group[p * m + i];
      const T wa = value[p * m + i];
      for (int32_t j = 0; j < count[q]; ++j) {
        const int32_t b = group[q * m + j];
        const int32_t lo = a < b ? a : b, hi = a < b ? b : a;
        int32_t id = ids.find(lo, hi);
        if (id < 0) {
          pairs.emplace_back(lo, hi);
          id = static_cast<int32_t>(pairs.size());
          ids.insert(lo, hi, id);
          values.resize(values.size() + 8, T(0));
        }
        values[id * 8 + (a > b) * 4 + d] += wa * value[q * m + j];
      }
    }
  });
}

// Where A[d, u, v] of one pair {u, v} lies in its eight values (accumulate_contacts).
struct PairValues {
  int64_t operator()(int d, int64_t u, int64_t v) const { return (u > v) * kHalf + d; }
};

}  // namespace pyg_hgconv
