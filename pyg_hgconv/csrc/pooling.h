// HG-Conv's pooling (Eq. 5) and unpooling (Eq. 6) of one image on a channels-last
// map, straight from its tiled assignment S ([tiles][m][P] weights of the m
// candidates of every tile, slot_group [tiles][m] the group of every slot):
//
//   pool:   X^_g = sum_p S_pg X_p / max(sum_p S_pg, eps)               (Eq. 5)
//   unpool: X_p  = sum_g S_pg X'_g / max(sum_g S_pg, eps)              (Eq. 6)
//
// A channels-last map holds every pixel's channels contiguously, so both are row
// operations over the few non-zero entries of each pixel, vectorised over the
// channels. Pooling runs slot by slot: the non-zero positions of a slot are listed
// once (no branch per position), then their rows are summed chunk by chunk of
// channels in registers and added to the group's row once per slot, not once per
// pixel. Unpooling writes every pixel's row once, from the group rows of its
// non-zero entries.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "entries.h"
#include "vec.h"

namespace pyg_hgconv {

// One thread's buffers.
template <typename T>
struct PoolScratch {
  std::vector<int32_t> pixel;  // [P]: the non-zero positions of a slot, as pixels
  std::vector<T> weight;       // [P]
  std::vector<T> tile;         // [P][C]: a tile of a contiguous map, channels-last
};

namespace pool_detail {

// out += sum_i w[i] rows[pixel[i]] for the channels [c_begin, c_end) of rows with
// stride C, in register chunks of channels.
template <typename T>
void add_weighted_rows(const T* rows, int64_t C, int64_t c_begin, int64_t c_end,
                       const int32_t* pixel, const T* w, int64_t count, T* out) {
  using V = Vec<T>;
  using VT = typename V::type;
  constexpr int64_t L = V::lanes, kChunk = 8;  // vectors of a register block
  int64_t c0 = c_begin;
  for (; c0 + kChunk * L <= c_end; c0 += kChunk * L) {
    VT acc[kChunk] = {};
    for (int64_t i = 0; i < count; ++i) {
      const T* src = rows + pixel[i] * C + c0;
      for (int64_t k = 0; k < kChunk; ++k) acc[k] += w[i] * V::load(src + k * L);
    }
    for (int64_t k = 0; k < kChunk; ++k)
      V::store(out + c0 + k * L, V::load(out + c0 + k * L) + acc[k]);
  }
  for (; c0 + L <= c_end; c0 += L) {
    VT acc{};
    for (int64_t i = 0; i < count; ++i) acc += w[i] * V::load(rows + pixel[i] * C + c0);
    V::store(out + c0, V::load(out + c0) + acc);
  }
  for (; c0 < c_end; ++c0) {
    T acc = 0;
    for (int64_t i = 0; i < count; ++i) acc += w[i] * rows[pixel[i] * C + c0];
    out[c0] += acc;
  }
}

// Lists the non-zero weights of one slot's row of positions of tile t (branch-free):
// the pixel (or, with 'positions', the position within the tile) and the weight.
template <typename T>
int64_t list_entries(const ImageTiling& g, const T* row, const TileView& t, bool positions,
                     int32_t* pixel, T* w) {
  int64_t count = 0;
  for (int64_t a = 0; a < t.rows; ++a) {
    for (int64_t c = 0; c < t.cols; ++c) {
      const T v = row[a * g.tw + c];
      pixel[count] = static_cast<int32_t>(positions ? a * g.tw + c
                                                    : (t.y0 + a) * g.W + t.x0 + c);
      w[count] = v;
      count += v != T(0);
    }
  }
  return count;
}

}  // namespace pool_detail

// Eq. 5 without the division, for the channels [c_begin, c_end): adds
// sum_p S_pg X_p to out[g] ([n][C], row stride C) for every slot; x: the image's
// channels-last rows [H W][C] (row stride C).
template <typename T>
void pool_rows(const ImageTiling& g, const T* x, int64_t C, int64_t c_begin, int64_t c_end,
               const T* weight, const int64_t* slot_group, T* out, PoolScratch<T>& scratch) {
  scratch.pixel.resize(g.P);
  scratch.weight.resize(g.P);
  for_each_tile(g, [&](const TileView& t) {
    for (int64_t j = 0; j < g.m; ++j) {
      const int64_t count =
          pool_detail::list_entries(g, weight + (t.tile * g.m + j) * g.P, t, false,
                                    scratch.pixel.data(), scratch.weight.data());
      pool_detail::add_weighted_rows(x, C, c_begin, c_end, scratch.pixel.data(),
                                     scratch.weight.data(), count,
                                     out + slot_group[t.tile * g.m + j] * C);
    }
  });
}

// The same on a contiguous map x [C][H W] (planes): every tile's block of the C
// planes is first transposed into channels-last rows (in registers, square blocks
// of lanes x lanes where the tile is a whole number of vectors wide).
template <typename T>
void pool_planes(const ImageTiling& g, const T* x, int64_t C, const T* weight,
                 const int64_t* slot_group, T* out, PoolScratch<T>& scratch) {
  using V = Vec<T>;
  using VT = typename V::type;
  constexpr int64_t L = V::lanes;
  const int64_t N = g.H * g.W;
  scratch.pixel.resize(g.P);
  scratch.weight.resize(g.P);
  scratch.tile.resize(g.P * C);
  T* tile_rows = scratch.tile.data();
  for_each_tile(g, [&](const TileView& t) {
    for (int64_t a = 0; a < t.rows; ++a) {
      const T* src = x + (t.y0 + a) * g.W + t.x0;
      T* dst = tile_rows + a * g.tw * C;
      int64_t c0 = 0;
      for (; c0 + L <= C; c0 += L) {
        int64_t col = 0;
        for (; col + L <= t.cols; col += L) {  // an L x L block in registers
          VT block[L];
          for (int64_t i = 0; i < L; ++i) block[i] = V::load(src + (c0 + i) * N + col);
          transpose_square<T>(block);
          for (int64_t i = 0; i < L; ++i) V::store(dst + (col + i) * C + c0, block[i]);
        }
        for (; col < t.cols; ++col)
          for (int64_t i = 0; i < L; ++i) dst[col * C + c0 + i] = src[(c0 + i) * N + col];
      }
      for (; c0 < C; ++c0)
        for (int64_t col = 0; col < t.cols; ++col) dst[col * C + c0] = src[c0 * N + col];
    }
    for (int64_t j = 0; j < g.m; ++j) {
      const int64_t count =
          pool_detail::list_entries(g, weight + (t.tile * g.m + j) * g.P, t, true,
                                    scratch.pixel.data(), scratch.weight.data());
      pool_detail::add_weighted_rows(tile_rows, C, 0, C, scratch.pixel.data(),
                                     scratch.weight.data(), count,
                                     out + slot_group[t.tile * g.m + j] * C);
    }
  });
}

// Eq. 6 for the pixels of tile rows [ty_begin, ty_end): out: the image's
// channels-last rows [H W][C]; z: the group rows [n][C]; slot_group: the slots'
// rows of z. Every pixel's row is summed chunk by chunk of channels in registers
// from its non-zero entries and stored once.
template <typename T>
void unpool_rows(const ImageTiling& g, const T* z, int64_t C, const T* weight,
                 const int64_t* slot_group, T eps, int64_t ty_begin, int64_t ty_end, T* out) {
  using V = Vec<T>;
  using VT = typename V::type;
  constexpr int64_t L = V::lanes, kChunk = 8;
  std::vector<const T*> source(g.m);
  std::vector<T> share(g.m);
  for_each_tile(g, [&](const TileView& t) {
    const T* wt = weight + t.tile * g.m * g.P;
    const int64_t* groups = slot_group + t.tile * g.m;
    for (int64_t a = 0; a < t.rows; ++a) {
      for (int64_t c = 0; c < t.cols; ++c) {
        const int64_t pos = a * g.tw + c;
        T total = 0;
        int64_t count = 0;  // the non-zero entries, without a branch on them
        for (int64_t j = 0; j < g.m; ++j) {
          const T v = wt[j * g.P + pos];
          total += v;
          source[count] = z + groups[j] * C;
          share[count] = v;
          count += v != T(0);
        }
        const T inverse = T(1) / std::max(total, eps);
        for (int64_t i = 0; i < count; ++i) share[i] *= inverse;
        T* row = out + ((t.y0 + a) * g.W + t.x0 + c) * C;
        int64_t c0 = 0;
        for (; c0 + kChunk * L <= C; c0 += kChunk * L) {
          VT acc[kChunk] = {};
          for (int64_t i = 0; i < count; ++i)
            for (int64_t k = 0; k < kChunk; ++k)
              acc[k] += share[i] * V::load(source[i] + c0 + k * L);
          for (int64_t k = 0; k < kChunk; ++k) V::store(row + c0 + k * L, acc[k]);
        }
        for (; c0 + L <= C; c0 += L) {
          VT acc{};
          for (int64_t i = 0; i < count; ++i) acc += share[i] * V::load(source[i] + c0);
          V::store(row + c0, acc);
        }
        for (; c0 < C; ++c0) {
          T acc = 0;
          for (int64_t i = 0; i < count; ++i) acc += share[i] * source[i][c0];
          row[c0] = acc;
        }
      }
    }
  }, ty_begin, ty_end);
}

}  // namespace pyg_hgconv
