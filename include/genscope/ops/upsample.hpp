// genscope/ops/upsample.hpp — nearest-neighbour upsampling by an integer factor (NCHW).
//
//   Tensor upsample_nearest(x, scale = 2)
//       torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest") on x [N, C, H, W]:
//       out[n, c, i, j] = x[n, c, i / scale, j / scale] (integer division), shape
//       [N, C, scale·H, scale·W]. The SD VAE decoder's Upsample2D uses scale 2. x any strides,
//       f32/f16/bf16; result contiguous f32.
//   void upsample_nearest_plane(x, h, w, scale, out)   one contiguous f32 plane, raw pointers
//
// For an integer factor torch's source index floor(i · (1/scale)) equals i / scale exactly.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/ops/elementwise.hpp"

namespace genscope::ops {

// One H×W plane → (scale·H)×(scale·W): widen each row once, then copy it `scale` times.
inline void upsample_nearest_plane(const float* x, int64_t h, int64_t w, int64_t scale, float* out) {
  const int64_t ow = w * scale;
  for (int64_t i = 0; i < h; ++i) {
    float* first = out + i * scale * ow;
    for (int64_t j = 0; j < w; ++j)
      for (int64_t s = 0; s < scale; ++s) first[j * scale + s] = x[i * w + j];
    for (int64_t s = 1; s < scale; ++s) std::copy(first, first + ow, first + s * ow);
  }
}

inline Tensor upsample_nearest(const Tensor& x, int64_t scale = 2) {
  require_float(x, "upsample_nearest", "x");
  if (x.dim() != 4) fail<ShapeError>("upsample_nearest: x is ", x.str(), "; expected [N, C, H, W]");
  if (scale < 1) fail<UsageError>("upsample_nearest: scale ", scale, " must be a positive integer");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  Tensor out = Tensor::empty({n, c, h * scale, w * scale}, DType::F32);
  if (out.numel() == 0) return out;
  const Tensor planes = x.reshape({n * c, h, w});  // a view unless the strides forbid it
  float* o = out.data<float>();
  parallel_for(0, n * c, 1, [&](int64_t p0, int64_t p1) {
    std::vector<float> plane, row_buf;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t base = p * planes.stride(0);  // elements from planes.data_ptr()
      const float* src;
      if (planes.dtype() == DType::F32 && planes.stride(2) == 1 && planes.stride(1) == w) {
        src = planes.data<float>() + base;
      } else {
        plane.resize(static_cast<size_t>(h * w));
        for (int64_t i = 0; i < h; ++i) {
          const float* row = to_float_row(planes, base + i * planes.stride(1), w, planes.stride(2), row_buf);
          std::copy(row, row + w, plane.data() + i * w);
        }
        src = plane.data();
      }
      upsample_nearest_plane(src, h, w, scale, o + p * h * w * scale * scale);
    }
  });
  return out;
}

}  // namespace genscope::ops
