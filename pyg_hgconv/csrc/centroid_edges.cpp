// Fused CPU kernel of the last steps of HG-Conv's group adjacency with the
// 'centroid' direction rule (pyg_hgconv/nn/pool/adjacency.py, _centroid_edges):
// from the dense half-direction blocks A[b, d, t, s] of Eq. 4 (target t, source
// s, half direction d of (5, 6, 7, 8)) of every image, one edge s -> t per pair
// by the rule of edges.h (Eq. 7, the pair's contact, its centroid sector), plus
// the identity self loops (supplementary B),
//
// sorted by target, then type, then source, with global node ids first[b] + t.
// Threaded over images; each image's edges are collected per target in nine
// buckets by type (the sources of a bucket come in increasing order) and copied
// to the image's offset.
//
// Registered as pyg_hgconv::centroid_edges (forward only; the Python side,
// pyg_hgconv/nn/pool/fused_adjacency.py, adds the fake kernel and calls it only
// where no gradient is needed).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "edges.h"
#include "entries.h"

namespace {

using namespace pyg_hgconv;

template <typename scalar_t>
struct Edge {
  int64_t source;
  scalar_t weight;
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> centroid_edges(
    const at::Tensor& half_in, const at::Tensor& pos_in, const at::Tensor& counts_in,
    bool noise_cancel, double threshold, double tan_sector) {
  TORCH_CHECK(half_in.dim() == 4 && half_in.size(1) == 4 && half_in.size(2) == half_in.size(3),
              "centroid_edges: 'half' must be [B, 4, n, n], got ", half_in.sizes());
  TORCH_CHECK(pos_in.dim() == 2 && pos_in.size(1) == 2 &&
                  pos_in.scalar_type() == half_in.scalar_type(),
              "centroid_edges: 'pos' must be [N, 2] with the dtype of 'half'");
  TORCH_CHECK(counts_in.dim() == 1 && counts_in.scalar_type() == at::kLong &&
                  counts_in.size(0) == half_in.size(0),
              "centroid_edges: 'counts' must be a LongTensor [B]");
  const at::Tensor half = half_in.contiguous(), pos = pos_in.contiguous();
  const at::Tensor counts = counts_in.contiguous();
  const int64_t B = half.size(0), n = half.size(2);
  const int64_t* count = counts.data_ptr<int64_t>();
  std::vector<int64_t> first(B + 1, 0);
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK(count[b] >= 0 && count[b] <= n, "centroid_edges: 'counts' must lie in [0, ", n,
                "]");
    first[b + 1] = first[b] + count[b];
  }
  TORCH_CHECK(pos.size(0) == first[B], "centroid_edges: 'pos' must have one row per group (",
              first[B], ")");
  at::Tensor index, type, weight;
  AT_DISPATCH_FLOATING_TYPES(half.scalar_type(), "centroid_edges", [&] {
    const scalar_t* h = half.data_ptr<scalar_t>();
    const scalar_t* p = pos.data_ptr<scalar_t>();
    const scalar_t thr = static_cast<scalar_t>(threshold);
    const scalar_t tan = static_cast<scalar_t>(tan_sector);
    // per image: (target, type, source, weight) in output order
    std::vector<std::vector<std::tuple<int64_t, int, int64_t, scalar_t>>> edges(B);
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<std::vector<Edge<scalar_t>>> bucket(kTypes);
      for (int64_t b = begin; b < end; ++b) {
        const scalar_t* blk = h + b * 4 * n * n;
        const scalar_t* pb = p + first[b] * 2;
        auto& out = edges[b];
        for (int64_t t = 0; t < count[b]; ++t) {
          for (auto& v : bucket) v.clear();
          for (int64_t s = 0; s < count[b]; ++s) {
            if (s == t) {
              bucket[kSelf].push_back({s, scalar_t(1)});
              continue;
            }
            int k;
            scalar_t total;
            if (!centroid_edge(blk, DirectionMajor{n}, t, s, pb, noise_cancel, thr, tan, k,
                               total))
              continue;
            bucket[k].push_back({s, total});
          }
          for (int k = 0; k < kTypes; ++k)
            for (const auto& e : bucket[k]) out.emplace_back(t, k, e.source, e.weight);
        }
      }
    });
    std::vector<int64_t> offset(B + 1, 0);
    for (int64_t b = 0; b < B; ++b) offset[b + 1] = offset[b] + edges[b].size();
    const int64_t E = offset[B];
    index = at::empty({2, E}, counts.options());
    type = at::empty({E}, counts.options());
    weight = at::empty({E}, half.options());
    int64_t* src = index.data_ptr<int64_t>();
    int64_t* dst = src + E;
    int64_t* ty = type.data_ptr<int64_t>();
    scalar_t* w = weight.data_ptr<scalar_t>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        int64_t i = offset[b];
        for (const auto& [t, k, s, v] : edges[b]) {
          src[i] = first[b] + s;
          dst[i] = first[b] + t;
          ty[i] = k;
          w[i] = v;
          ++i;
        }
      }
    });
  });
  return {index, type, weight};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pyg_hgconv, m) {
  m.def("centroid_edges(Tensor half, Tensor pos, Tensor counts, bool noise_cancel, "
        "float threshold, float tan_sector) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(pyg_hgconv, CPU, m) { m.impl("centroid_edges", &centroid_edges); }
