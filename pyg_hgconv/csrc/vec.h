// Vector helpers shared by the clustering's CPU kernels.
//
// Vec<T> is a 64-byte GCC/Clang vector (one AVX-512 register, two AVX2 ones):
// arithmetic on it compiles to packed instructions whatever the target, without
// intrinsics. exp_vec is the exponential the SLIC softmax needs: float by a
// branch-free polynomial (Cephes' expf: x = k ln2 + r, |r| <= ln2 / 2, a degree-6
// polynomial of r, then 2^k from the exponent bits; within 2 ulp; 0 below -87.3, the
// float range), double by std::exp lane by lane. k is rounded by adding and
// subtracting 1.5 * 2^23 (its low bits then hold k), with no float -> int
// conversion (libm's exp does not vectorise).
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace pyg_hgconv {

template <typename T, int Bytes = 64>
struct Vec {
  typedef T type __attribute__((vector_size(Bytes)));
  static constexpr int64_t lanes = Bytes / sizeof(T);
  static inline type load(const T* p) {
    type v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
  }
  static inline void store(T* p, type v) { __builtin_memcpy(p, &v, sizeof(v)); }
  static inline type broadcast(T value) { return type{} + value; }
  static inline T sum(type v) {
    T total = 0;
    for (int64_t i = 0; i < lanes; ++i) total += v[i];
    return total;
  }
};

// n rounded up to a multiple of Vec<T, Bytes>::lanes.
template <typename T, int Bytes = 64>
inline int64_t padded_length(int64_t n) {
  constexpr int64_t L = Vec<T, Bytes>::lanes;
  return (n + L - 1) / L * L;
}

namespace detail {

// One stage of the block-swap transpose of a square matrix held as L row vectors:
// rows i and i + S exchange their off-diagonal blocks of S lanes.
template <typename V, int S, int L, size_t... I>
inline void swap_blocks(V& a, V& b, std::index_sequence<I...>) {
  const V lo = __builtin_shufflevector(a, b, ((I & S) ? L + I - S : I)...);
  const V hi = __builtin_shufflevector(a, b, ((I & S) ? L + I : I + S)...);
  a = lo;
  b = hi;
}

template <typename V, int S, int L>
inline void transpose_stage(V* rows) {
  for (int i = 0; i < L; ++i)
    if ((i & S) == 0) swap_blocks<V, S, L>(rows[i], rows[i + S], std::make_index_sequence<L>{});
}

}  // namespace detail

// Transposes the L x L matrix held in rows[0..L) (rows[i][j] -> rows[j][i]), in
// registers: log2(L) stages of two-input shuffles.
template <typename T, int Bytes = 64>
inline void transpose_square(typename Vec<T, Bytes>::type* rows) {
  using VT = typename Vec<T, Bytes>::type;
  constexpr int L = static_cast<int>(Vec<T, Bytes>::lanes);
  if constexpr (L >= 16) detail::transpose_stage<VT, 8, L>(rows);
  if constexpr (L >= 8) detail::transpose_stage<VT, 4, L>(rows);
  if constexpr (L >= 4) detail::transpose_stage<VT, 2, L>(rows);
  if constexpr (L >= 2) detail::transpose_stage<VT, 1, L>(rows);
}

// exp of every lane of a vector (see the header).
template <int Bytes>
inline typename Vec<float, Bytes>::type exp_vec(typename Vec<float, Bytes>::type x) {
  using V = Vec<float, Bytes>;
  typedef int32_t itype __attribute__((vector_size(Bytes)));
  const typename V::type lo = V::broadcast(-87.33f), hi = V::broadcast(88.72f);
  const typename V::type round = V::broadcast(12582912.0f);  // 1.5 * 2^23
  typename V::type v = x < lo ? lo : x;
  v = v > hi ? hi : v;
  const typename V::type shifted = v * 1.44269504088896341f + round;
  const typename V::type k = shifted - round;
  const typename V::type r = (v - k * 0.693359375f) - k * -2.12194440e-4f;
  typename V::type p = V::broadcast(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const itype exponent = (reinterpret_cast<const itype&>(shifted) - 0x4B400000 + 127) << 23;
  const typename V::type scale = reinterpret_cast<const typename V::type&>(exponent);
  return x < lo ? typename V::type{} : p * scale;
}

template <int Bytes>
inline typename Vec<double, Bytes>::type exp_vec(typename Vec<double, Bytes>::type x) {
  for (int64_t i = 0; i < Vec<double, Bytes>::lanes; ++i) x[i] = std::exp(x[i]);
  return x;
}

}  // namespace pyg_hgconv
