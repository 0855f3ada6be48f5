// Fused CPU kernel of HG-Conv's cluster-centre samplers (paper, Sec. 4.1,
// supplementary C, Table 4), given their random keys (pyg_hgconv/nn/pool/sampling.py
// draws them):
//
//   without importance: the K pixels with the largest keys ('random' on uniform
//     keys, 'importance' on Gumbel keys: weighted sampling without replacement);
//   with importance ('topk_random', PointRend): the num_candidates pixels with the
//     largest keys, of them the num_important most important, then the
//     K - num_important pixels with the largest rest_keys among the others.
//
// Every "largest" breaks ties towards the lower index (of the pixel, or of the
// position in the candidate list), as the stable sorts of the PyTorch path do, so
// both give the same pixels. Keys [1, N] are shared by the whole batch (evaluation:
// an image's centres do not depend on the batch): their orders are computed once.
// Returns [B, K] pixel indices, sorted per row. Threaded over images.
//
// Registered as pyg_hgconv::select_centers (forward only: integer output;
// pyg_hgconv/nn/pool/fused_sampling.py adds the fake kernel).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <numeric>
#include <optional>
#include <vector>

namespace {

// Whether pixel a comes before pixel b by key: the larger key, ties to the lower index.
struct ByKey {
  const float* keys;
  bool operator()(int64_t a, int64_t b) const {
    return keys[a] > keys[b] || (keys[a] == keys[b] && a < b);
  }
};

// The indices of the k largest keys (ties to the lower index), in no order.
std::vector<int64_t> largest_set(const float* keys, int64_t n, int64_t k) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (k < n) std::nth_element(order.begin(), order.begin() + k, order.end(), ByKey{keys});
  order.resize(k);
  return order;
}

// The same, largest first.
std::vector<int64_t> largest(const float* keys, int64_t n, int64_t k) {
  std::vector<int64_t> order = largest_set(keys, n, k);
  std::sort(order.begin(), order.end(), ByKey{keys});
  return order;
}

void check_keys(const at::Tensor& keys, const char* name, int64_t batch, int64_t n) {
  TORCH_CHECK(keys.dim() == 2 && keys.scalar_type() == at::kFloat && keys.size(1) == n &&
                  (keys.size(0) == 1 || keys.size(0) == batch),
              "select_centers: '", name, "' must be a float32 tensor [1 or B, N] with B = ",
              batch, ", N = ", n, ", got ", keys.sizes(), " ", keys.scalar_type());
}

at::Tensor select_centers(const at::Tensor& keys_in, const std::optional<at::Tensor>& importance_in,
                          const std::optional<at::Tensor>& rest_in, int64_t batch,
                          int64_t num_centers, int64_t num_important, int64_t num_candidates) {
  TORCH_CHECK(keys_in.dim() == 2, "select_centers: 'keys' must be [1 or B, N]");
  const int64_t n = keys_in.size(1), K = num_centers;
  check_keys(keys_in, "keys", batch, n);
  TORCH_CHECK(K >= 1 && K <= n, "select_centers: 'num_centers' must lie in [1, ", n, "], got ",
              K);
  const bool pointrend = importance_in.has_value();
  TORCH_CHECK(pointrend == rest_in.has_value(),
              "select_centers: 'importance' and 'rest_keys' come together");
  at::Tensor importance, rest;
  if (pointrend) {
    importance = importance_in->to(at::kFloat).contiguous();
    TORCH_CHECK(importance.dim() == 2 && importance.size(0) == batch && importance.size(1) == n,
                "select_centers: 'importance' must be [B, N] = [", batch, ", ", n, "], got ",
                importance.sizes());
    check_keys(*rest_in, "rest_keys", batch, n);
    rest = rest_in->contiguous();
    TORCH_CHECK(num_important >= 0 && num_important <= K && num_candidates >= num_important &&
                    num_candidates <= n,
                "select_centers: need 0 <= num_important <= num_centers and num_important <= "
                "num_candidates <= N");
  }
  const at::Tensor keys = keys_in.contiguous();
  at::Tensor out = at::empty({batch, K}, keys.options().dtype(at::kLong));
  int64_t* o = out.data_ptr<int64_t>();
  const float* kp = keys.data_ptr<float>();
  const bool shared = keys.size(0) == 1;
  const int64_t first_count = pointrend ? num_candidates : K;
  // orders shared by the batch: the candidates (a set: their order by key is the
  // tie rule of the importances), and the K pixels with the largest rest keys (at
  // most num_important of them are taken already)
  std::vector<int64_t> shared_first, shared_rest;
  if (shared) shared_first = largest_set(kp, n, first_count);
  const bool rest_shared = pointrend && rest.size(0) == 1;
  if (rest_shared) shared_rest = largest(rest.data_ptr<float>(), n, K);
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> own_first, own_rest, chosen;
    std::vector<char> taken(n);
    for (int64_t b = begin; b < end; ++b) {
      int64_t* row = o + b * K;
      const float* keys = shared ? kp : kp + b * n;
      const std::vector<int64_t>& first =
          shared ? shared_first : (own_first = largest_set(keys, n, first_count));
      if (!pointrend) {
        std::copy(first.begin(), first.end(), row);
      } else {
        // the num_important most important candidates; equal importances by the
        // candidates' order, the larger key first
        const float* imp = importance.data_ptr<float>() + b * n;
        chosen = first;
        if (num_important < num_candidates)
          std::nth_element(chosen.begin(), chosen.begin() + num_important, chosen.end(),
                           [&](int64_t a, int64_t c) {
                             return imp[a] > imp[c] || (imp[a] == imp[c] && ByKey{keys}(a, c));
                           });
        std::fill(taken.begin(), taken.end(), 0);
        for (int64_t i = 0; i < num_important; ++i) {
          row[i] = chosen[i];
          taken[row[i]] = 1;
        }
        const std::vector<int64_t>& by_rest =
            rest_shared ? shared_rest
                        : (own_rest = largest(rest.data_ptr<float>() + b * n, n, K));
        int64_t filled = num_important;
        for (int64_t i = 0; filled < K; ++i)
          if (!taken[by_rest[i]]) row[filled++] = by_rest[i];
      }
      std::sort(row, row + K);
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pyg_hgconv, m) {
  m.def("select_centers(Tensor keys, Tensor? importance, Tensor? rest_keys, int batch, "
        "int num_centers, int num_important, int num_candidates) -> Tensor");
}

TORCH_LIBRARY_IMPL(pyg_hgconv, CPU, m) { m.impl("select_centers", &select_centers); }
