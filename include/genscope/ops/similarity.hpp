// genscope/ops/similarity.hpp — cosine similarity along one dim.
//
//   Tensor cosine_similarity(x1, x2, dim = 1, eps = 1e-8)
//       torch.nn.functional.cosine_similarity: x1 and x2 broadcast against each other, then
//           Σ_dim (x1 / max(‖x1‖, eps)) · (x2 / max(‖x2‖, eps))
//       with each norm clamped on its own (ATen's Distance.cpp, cosine_similarity, since torch
//       1.12: "divide each tensor by its norm first, as it's more numerically stable"; so a zero
//       vector gives 0, and |x| < eps gives |x|/eps). The dim is removed from the result
//       (contiguous f32). Inputs any strides, f32/f16/bf16; accumulation in double.
//   float cosine_similarity_row(a, b, n, eps)   one pair of contiguous rows, raw pointers
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/ops/elementwise.hpp"
#include "genscope/ops/softmax.hpp"

namespace genscope::ops {

inline float cosine_similarity_row(const float* a, const float* b, int64_t n, float eps) {
  double aa = 0, bb = 0, ab = 0;
  for (int64_t i = 0; i < n; ++i) {
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
    ab += static_cast<double>(a[i]) * b[i];
  }
  const double na = std::max(std::sqrt(aa), static_cast<double>(eps)), nb = std::max(std::sqrt(bb), static_cast<double>(eps));
  return static_cast<float>(ab / (na * nb));
}

inline Tensor cosine_similarity(const Tensor& x1, const Tensor& x2, int dim = 1, float eps = 1e-8f) {
  require_float(x1, "cosine_similarity", "x1");
  require_float(x2, "cosine_similarity", "x2");
  const Shape shape = broadcast_shapes(x1.shape(), x2.shape());
  if (shape.empty()) fail<UsageError>("cosine_similarity: x1 and x2 are 0-dim; there is no dim to reduce");
  dim = wrap_axis(dim, shape.size(), "cosine_similarity");
  const Shape perm = move_to_last(dim, shape.size());
  const Tensor a = broadcast_to(x1, shape).permute(perm), b = broadcast_to(x2, shape).permute(perm);
  Shape out_shape = shape;
  out_shape.erase(dim);
  Tensor out = Tensor::empty(out_shape, DType::F32);
  const int64_t n = shape[dim], rows = out.numel();
  if (rows == 0) return out;
  float* o = out.data<float>();
  parallel_for(0, rows, std::max<int64_t>(1, 2048 / std::max<int64_t>(n, 1)), [&](int64_t r0, int64_t r1) {
    std::vector<float> ba, bb;
    for (int64_t r = r0; r < r1; ++r) {
      const float* ra = to_float_row(a, outer_offset(a.shape(), a.strides(), a.dim() - 1, r), n, a.stride(-1), ba);
      const float* rb = to_float_row(b, outer_offset(b.shape(), b.strides(), b.dim() - 1, r), n, b.stride(-1), bb);
      o[r] = cosine_similarity_row(ra, rb, n, eps);
    }
  });
  return out;
}

}  // namespace genscope::ops
