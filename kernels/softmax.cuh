// kernels/softmax.cuh — softmax over the last dim: y = exp(s·x − m) / Σ exp(s·x − m),
// m = max(s·x), s a scale (1 for torch.softmax; 1/√d folds attention's scaling in).
//
// One block per row, three sweeps: the max, the sum of exponentials (both block reductions),
// then the normalised write. Subtracting the max keeps every exp ≤ 1, so nothing overflows. A
// row that is all −inf gives NaN, as torch.softmax does.
#pragma once

#include "common.cuh"

namespace genscope::kernels {

constexpr int kSoftmaxThreads = 256;

template <StorageType T>
__global__ void __launch_bounds__(kSoftmaxThreads)
    softmax_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t cols, float scale) {
  const T* xr = x + int64_t{blockIdx.x} * cols;
  T* yr = y + int64_t{blockIdx.x} * cols;
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) m = fmaxf(m, scale * to_float(xr[i]));
  m = block_max(m);
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) sum += expf(scale * to_float(xr[i]) - m);
  const float inv = 1.0f / block_sum(sum);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = from_float<T>(expf(scale * to_float(xr[i]) - m) * inv);
}

// x, y [rows, cols] contiguous.
template <StorageType T>
void softmax(const T* x, T* y, int64_t rows, int64_t cols, float scale, cudaStream_t stream) {
  if (rows > 0x7fffffff) fail<ShapeError>("kernels::softmax: ", rows, " rows exceed the grid");
  launch("softmax", softmax_kernel<T>, dim3(static_cast<unsigned>(rows)), dim3(kSoftmaxThreads), 0, stream, x, y, cols, scale);
}

}  // namespace genscope::kernels
