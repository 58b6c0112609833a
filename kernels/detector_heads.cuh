// kernels/detector_heads.cuh — the two non-neural detector heads:
//
// RBF kernel matrix (kernel SVM / MMD heads):   K[i][j] = exp(−γ · ‖x_i − y_j‖²),  X [n, d], Y [m, d]
//   16×16 outputs per block, X and Y rows staged 32 features at a time in shared memory. The
//   squared distance is summed directly as Σ(x − y)², not as ‖x‖² + ‖y‖² − 2x·y: the expansion
//   cancels catastrophically for nearby points, which are exactly the ones whose K ≈ 1 matters.
//
// Diagonal-covariance GMM log-likelihood (density heads on features):
//   log p(x) = logsumexp_k [ log w_k − ½ Σ_d ( log(2π σ²_kd) + (x_d − μ_kd)² / σ²_kd ) ]
//   One block per sample; each warp takes components k = warp, warp + 4, …, its lanes split d; a
//   running (max, sum) per warp keeps the logsumexp stable, and the block merges the 4 warps'.
#pragma once

#include "common.cuh"

namespace genscope::kernels {

// ---- RBF kernel matrix -------------------------------------------------------------------------------
constexpr int kRbfTile = 16, kRbfFeatures = 32;

__global__ void __launch_bounds__(kRbfTile * kRbfTile)
    rbf_kernel_matrix_kernel(const float* __restrict__ x, const float* __restrict__ y, float* __restrict__ k, int n, int m,
                             int d, float gamma) {
  __shared__ float x_tile[kRbfTile][kRbfFeatures + 1];  // +1: rows start in different banks
  __shared__ float y_tile[kRbfTile][kRbfFeatures + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kRbfTile + tx;
  const int i = blockIdx.y * kRbfTile + ty, j = blockIdx.x * kRbfTile + tx;
  float dist2 = 0.0f;
  for (int f0 = 0; f0 < d; f0 += kRbfFeatures) {
    for (int idx = tid; idx < kRbfTile * kRbfFeatures; idx += kRbfTile * kRbfTile) {
      const int r = idx / kRbfFeatures, f = idx % kRbfFeatures;
      const int xi = blockIdx.y * kRbfTile + r, yj = blockIdx.x * kRbfTile + r;
      x_tile[r][f] = xi < n && f0 + f < d ? x[int64_t{xi} * d + f0 + f] : 0.0f;
      y_tile[r][f] = yj < m && f0 + f < d ? y[int64_t{yj} * d + f0 + f] : 0.0f;
    }
    __syncthreads();
#pragma unroll 8
    for (int f = 0; f < kRbfFeatures; ++f) {
      const float diff = x_tile[ty][f] - y_tile[tx][f];
      dist2 = fmaf(diff, diff, dist2);
    }
    __syncthreads();
  }
  if (i < n && j < m) k[int64_t{i} * m + j] = expf(-gamma * dist2);
}

// x [n, d], y [m, d] → k [n, m], all f32 contiguous.
inline void rbf_kernel_matrix(const float* x, const float* y, float* k, int n, int m, int d, float gamma, cudaStream_t stream) {
  if (n < 0 || m < 0 || d < 1) fail<ShapeError>("kernels::rbf_kernel_matrix: bad sizes n=", n, " m=", m, " d=", d);
  const dim3 grid(static_cast<unsigned>(ceil_div(m, kRbfTile)), static_cast<unsigned>(ceil_div(n, kRbfTile)));
  launch("rbf_kernel_matrix", rbf_kernel_matrix_kernel, grid, dim3(kRbfTile, kRbfTile), 0, stream, x, y, k, n, m, d, gamma);
}

// ---- GMM (diagonal) log-likelihood ----------------------------------------------------------------------
constexpr int kGmmWarps = 4;

// Merge (m2, s2) into the running logsumexp state (m, s), where the state means m + log s.
__device__ __forceinline__ void logsumexp_merge(float& m, float& s, float m2, float s2) {
  if (m2 == -INFINITY) return;
  if (m2 > m) {
    s = s * expf(m - m2) + s2;
    m = m2;
  } else {
    s += s2 * expf(m2 - m);
  }
}

__global__ void __launch_bounds__(kGmmWarps * 32)
    gmm_log_likelihood_kernel(const float* __restrict__ x, const float* __restrict__ means, const float* __restrict__ variances,
                              const float* __restrict__ log_weights, float* __restrict__ out, int d, int components) {
  __shared__ float warp_m[kGmmWarps], warp_s[kGmmWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float* xs = x + int64_t{blockIdx.x} * d;
  constexpr float kLog2Pi = 1.8378770664093453f;
  float m = -INFINITY, s = 0.0f;
  for (int c = warp; c < components; c += kGmmWarps) {
    const float* mu = means + int64_t{c} * d;
    const float* var = variances + int64_t{c} * d;
    float partial = 0.0f;
    for (int f = lane; f < d; f += 32) {
      const float diff = xs[f] - mu[f];
      partial += logf(var[f]) + diff * diff / var[f];
    }
    const float log_component = log_weights[c] - 0.5f * (static_cast<float>(d) * kLog2Pi + warp_sum(partial));
    logsumexp_merge(m, s, log_component, 1.0f);
  }
  if (lane == 0) {
    warp_m[warp] = m;
    warp_s[warp] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float bm = -INFINITY, bs = 0.0f;
    for (int w = 0; w < kGmmWarps; ++w) logsumexp_merge(bm, bs, warp_m[w], warp_s[w]);
    out[blockIdx.x] = bm + logf(bs);
  }
}

// x [n, d]; means, variances [components, d]; log_weights [components] → out [n]. All f32.
inline void gmm_log_likelihood(const float* x, const float* means, const float* variances, const float* log_weights, float* out,
                               int n, int d, int components, cudaStream_t stream) {
  if (n < 0 || d < 1 || components < 1)
    fail<ShapeError>("kernels::gmm_log_likelihood: bad sizes n=", n, " d=", d, " components=", components);
  launch("gmm_log_likelihood", gmm_log_likelihood_kernel, dim3(static_cast<unsigned>(n)), dim3(kGmmWarps * 32), 0, stream, x,
         means, variances, log_weights, out, d, components);
}

}  // namespace genscope::kernels
