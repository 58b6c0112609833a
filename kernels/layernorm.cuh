// kernels/layernorm.cuh — LayerNorm over the last dim, with an optional fused activation:
//   y = act((x − mean) · rstd · γ + β),  mean = Σx/n,  rstd = 1/√(Σ(x − mean)²/n + eps)
// (torch.nn.functional.layer_norm; biased variance).
//
// One block per row. Two passes over the row for the statistics (mean first, then the squared
// deviations from it), which keeps full precision when |mean| ≫ std — the one-pass Σx² − n·mean²
// form loses it. The row is re-read from global memory (L2/L1 serve it: a ViT row is 1–5 KB).
#pragma once

#include "activation.cuh"

namespace genscope::kernels {

constexpr int kLayerNormThreads = 256;

template <StorageType T, Activation A>
__global__ void __launch_bounds__(kLayerNormThreads)
    layer_norm_kernel(const T* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ beta,
                      T* __restrict__ y, int64_t cols, float eps) {
  const T* xr = x + int64_t{blockIdx.x} * cols;
  T* yr = y + int64_t{blockIdx.x} * cols;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) sum += to_float(xr[i]);
  const float mean = block_sum(sum) / static_cast<float>(cols);
  float squares = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    const float d = to_float(xr[i]) - mean;
    squares += d * d;
  }
  const float rstd = rsqrtf(block_sum(squares) / static_cast<float>(cols) + eps);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    float v = (to_float(xr[i]) - mean) * rstd;
    if (gamma) v *= gamma[i];
    if (beta) v += beta[i];
    yr[i] = from_float<T>(activate<A>(v));
  }
}

// x, y [rows, cols] contiguous; gamma, beta [cols] f32 or null (no affine).
template <StorageType T>
void layer_norm(const T* x, const float* gamma, const float* beta, T* y, int64_t rows, int64_t cols, float eps,
                Activation act, cudaStream_t stream) {
  if (rows > 0x7fffffff) fail<ShapeError>("kernels::layer_norm: ", rows, " rows exceed the grid");
  dispatch_activation(act, [&]<Activation A>() {
    launch("layer_norm", layer_norm_kernel<T, A>, dim3(static_cast<unsigned>(rows)), dim3(kLayerNormThreads), 0, stream, x,
           gamma, beta, y, cols, eps);
  });
}

}  // namespace genscope::kernels
