// genscope/ops/softmax.hpp — numerically stable softmax along one dim (CPU, f32 compute).
//
//   Tensor softmax(x, dim = -1)
//       torch.softmax(x, dim): exp(x − max) / Σ exp(x − max) along `dim`. x any strides,
//       f32/f16/bf16; result contiguous f32 of x's shape. A slice that is all −inf gives NaN, as
//       torch does (attention handles fully masked rows itself, see ops/attention.hpp).
//   void softmax_row(x, n, out)    one contiguous row, raw pointers (kernel tests' reference)
//
// Subtracting the max keeps every exp ≤ 1, so nothing overflows. row_max and exp_row_sum (also
// used by ops/attention.hpp) run on 16 AVX-512 lanes with exp512, else as plain loops.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/ops/elementwise.hpp"

namespace genscope::ops {

// max_j s[j] over one score row (−inf for n = 0).
inline float row_max(const float* s, int64_t n) {
#if defined(__AVX512F__)
  __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) m = _mm512_mask_max_ps(m, 0xFFFF, m, _mm512_loadu_ps(s + j));  // masked forms: GCC 12
  if (j < n) {
    const auto k = static_cast<__mmask16>((1u << (n - j)) - 1);
    m = _mm512_mask_max_ps(m, k, m, _mm512_maskz_loadu_ps(k, s + j));
  }
  alignas(64) float lanes[16];  // the 16-lane total once per row (GCC 12 warns on _mm512_reduce_*)
  _mm512_store_ps(lanes, m);
  return *std::max_element(lanes, lanes + 16);
#else
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, s[j]);
  return m;
#endif
}

// s[j] ← exp(s[j] − m) in place; returns Σ_j of the new s[j]. The reference is the scalar loop
// (exp_f32, the same function exp512 computes on 16 lanes). The sum is sum_blocked's scheme: f32
// lanes over blocks of 512, block totals in double.
inline float exp_row_sum(float* s, int64_t n, float m) {
#if defined(__AVX512F__)
  const __m512 vm = _mm512_set1_ps(m);
  double total = 0.0;
  for (int64_t j0 = 0; j0 < n; j0 += 512) {  // blocks of 512 in 16 f32 lanes, block totals in double
    const int64_t j1 = std::min(n, j0 + 512);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = j0; j < j1; j += 16) {
      const auto k = j1 - j >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (j1 - j)) - 1);
      const __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), vm));
      _mm512_mask_storeu_ps(s + j, k, e);
      acc = _mm512_mask_add_ps(acc, k, acc, e);
    }
    alignas(64) float lanes[16];  // GCC 12 warns on _mm512_reduce_add_ps
    _mm512_store_ps(lanes, acc);
    for (float v : lanes) total += v;
  }
  return static_cast<float>(total);
#else
  for (int64_t j = 0; j < n; ++j) s[j] = exp_f32(s[j] - m);
  return static_cast<float>(sum_blocked(s, n));
#endif
}

// out[i] = exp(x[i] − max) / Σ_j exp(x[j] − max). out may alias x. A NaN anywhere makes the
// row NaN (exp(NaN − max) is NaN, so is the sum). Reference: the definition in double
// (attention_reference, the kernel tests).
inline void softmax_row(const float* x, int64_t n, float* out) {
  const float max = row_max(x, n);
  if (out != x) std::copy(x, x + n, out);
  const float inv = 1.0f / exp_row_sum(out, n, max);
  for (int64_t i = 0; i < n; ++i) out[i] *= inv;
}

// Index of `dim` in a tensor of rank `rank`, negative counting from the end; UsageError otherwise.
inline int wrap_axis(int dim, int rank, const char* op) {
  if (dim < -rank || dim >= rank) fail<UsageError>(op, ": dim ", dim, " is out of range for a tensor of rank ", rank);
  return dim < 0 ? dim + rank : dim;
}

// The permutation that moves `dim` to the end, keeping the other dims in order.
inline Shape move_to_last(int dim, int rank) {
  Shape perm;
  for (int d = 0; d < rank; ++d)
    if (d != dim) perm.push_back(d);
  perm.push_back(dim);
  return perm;
}

inline Tensor softmax(const Tensor& x, int dim = -1) {
  require_float(x, "softmax", "x");
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  if (x.dim() == 0) {  // torch: softmax of a scalar is 1 (exp(x − x) / itself)
    out.data<float>()[0] = std::isnan(x.item()) ? NAN : 1.0f;
    return out;
  }
  if (out.numel() == 0) return out;
  dim = wrap_axis(dim, x.dim(), "softmax");
  const Shape perm = move_to_last(dim, x.dim());
  const Tensor xp = x.permute(perm), op = out.permute(perm);
  const int64_t n = x.size(dim), rows = out.numel() / n, sx = xp.stride(-1), so = op.stride(-1);
  float* o = out.data<float>();
  parallel_for(0, rows, std::max<int64_t>(1, 4096 / n), [&](int64_t r0, int64_t r1) {
    std::vector<float> in_buf, out_buf(static_cast<size_t>(so == 1 ? 0 : n));
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = to_float_row(xp, outer_offset(xp.shape(), xp.strides(), xp.dim() - 1, r), n, sx, in_buf);
      float* dst = o + outer_offset(op.shape(), op.strides(), op.dim() - 1, r);
      if (so == 1) {
        softmax_row(row, n, dst);
      } else {
        softmax_row(row, n, out_buf.data());
        for (int64_t i = 0; i < n; ++i) dst[i * so] = out_buf[static_cast<size_t>(i)];
      }
    }
  });
  return out;
}

}  // namespace genscope::ops
