// kernels/groupnorm.cuh — GroupNorm on NCHW with a fused activation (SiLU in the SD VAE/UNet):
//   y[n,c,·] = act((x[n,c,·] − mean[n,g]) · rstd[n,g] · γ[c] + β[c]),  g = c / (C/G)
// (torch.nn.functional.group_norm; biased variance over the group's channels × spatial).
//
// One block per (sample, group): the group is (C/G)·HW consecutive elements, so every pass is a
// coalesced sweep. Two-pass statistics as in layernorm.cuh. An SD VAE group at 512² is 16·262144
// elements, read three times from L2/HBM; one block per group keeps N·G = 32 blocks busy, which
// is why the statistics use the whole 512-thread block.
#pragma once

#include "activation.cuh"

namespace genscope::kernels {

constexpr int kGroupNormThreads = 512;

template <StorageType T, Activation A>
__global__ void __launch_bounds__(kGroupNormThreads)
    group_norm_kernel(const T* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ beta,
                      T* __restrict__ y, int groups, int channels_per_group, int64_t spatial, float eps) {
  // blockIdx.x = n·G + g; the group's elements start at blockIdx.x · (C/G)·HW in NCHW.
  const int64_t n_elements = int64_t{channels_per_group} * spatial;
  const T* xg = x + int64_t{blockIdx.x} * n_elements;
  T* yg = y + int64_t{blockIdx.x} * n_elements;
  const int first_channel = (static_cast<int>(blockIdx.x) % groups) * channels_per_group;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < n_elements; i += blockDim.x) sum += to_float(xg[i]);
  const float mean = block_sum(sum) / static_cast<float>(n_elements);
  float squares = 0.0f;
  for (int64_t i = threadIdx.x; i < n_elements; i += blockDim.x) {
    const float d = to_float(xg[i]) - mean;
    squares += d * d;
  }
  const float rstd = rsqrtf(block_sum(squares) / static_cast<float>(n_elements) + eps);
  for (int64_t i = threadIdx.x; i < n_elements; i += blockDim.x) {
    const int c = first_channel + static_cast<int>(i / spatial);
    float v = (to_float(xg[i]) - mean) * rstd;
    if (gamma) v *= gamma[c];
    if (beta) v += beta[c];
    yg[i] = from_float<T>(activate<A>(v));
  }
}

// x, y [N, C, spatial] contiguous; gamma, beta [C] f32 or null; C divisible by groups.
template <StorageType T>
void group_norm(const T* x, const float* gamma, const float* beta, T* y, int64_t batch, int64_t channels,
                int64_t spatial, int64_t groups, float eps, Activation act, cudaStream_t stream) {
  if (groups <= 0 || channels % groups != 0)
    fail<ShapeError>("kernels::group_norm: ", channels, " channels are not divisible into ", groups, " groups");
  if (batch * groups > 0x7fffffff || groups > 65535) fail<ShapeError>("kernels::group_norm: too many groups (", batch, " x ", groups, ")");
  dispatch_activation(act, [&]<Activation A>() {
    launch("group_norm", group_norm_kernel<T, A>, dim3(static_cast<unsigned>(batch * groups)), dim3(kGroupNormThreads), 0,
           stream, x, gamma, beta, y, static_cast<int>(groups), static_cast<int>(channels / groups), spatial, eps);
  });
}

}  // namespace genscope::kernels
