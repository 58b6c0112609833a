// kernels/detector_heads.cuh — the two non-neural detector heads:
//
// RBF kernel matrix (kernel SVM / MMD heads):   K[i][j] = exp(−γ · ‖x_i − y_j‖²),  X [n, d], Y [m, d]
//   16×16 outputs per block, X and Y rows staged 32 features at a time in shared memory. The
//   squared distance is summed directly as Σ(x − y)², not as ‖x‖² + ‖y‖² − 2x·y: the expansion
//   cancels catastrophically for nearby points, which are exactly the ones whose K ≈ 1 matters.
//
// SVM decision values (detect/svm_cuda.hpp; the CPU reference is detect/svm.hpp's
// Svm::score, written beside each kernel's formula below):
//   svm_prepare          x'[i, t] = (x[i, src_t] − mean_t) · inv_scale_t, src_t = idx[t] or t:
//                        the index selection and standardisation of Svm::transform, fused;
//   row_sq_norms         ‖x_i‖² summed in double (row_norms in svm.hpp), for rbf;
//   svm_decision         out_i = b + Σ_j coef_j · f32(K(dot_ij)), K in double from the GEMM's
//                        dot products as KernelFunction::apply; one block per row, the terms
//                        summed in double per thread, then over the block.
//
// Diagonal-covariance GMM log-likelihood (density heads on features):
//   log p(x) = logsumexp_k [ log w_k − ½ Σ_d ( log(2π σ²_kd) + (x_d − μ_kd)² / σ²_kd ) ]
//   One block per sample; each warp takes components k = warp, warp + 4, …, its lanes split d; a
//   running (max, sum) per warp keeps the logsumexp stable, and the block merges the 4 warps'.
#pragma once

#include <algorithm>

#include "common.cuh"

namespace genscope::kernels {

// These kernels are not templates, so they are `static`: several .cu files of one program include
// this header (test_gpu does), and a __global__ function with external linkage would be defined in each.

// ---- RBF kernel matrix -------------------------------------------------------------------------------
constexpr int kRbfTile = 16, kRbfFeatures = 32;

static __global__ void __launch_bounds__(kRbfTile * kRbfTile)
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

static __global__ void __launch_bounds__(kGmmWarps * 32)
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

// ---- SVM decision values ------------------------------------------------------------------------------
constexpr int kSvmThreads = 128;

__device__ __forceinline__ double warp_sum_f64(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

// x [n, d_in] → out [n, d_out]; idx [d_out] (null: identity, d_out = d_in); mean, inv_scale
// [d_out] (null: none). CPU: select_columns, then Standardizer::apply's (x − mean) / scale.
static __global__ void svm_prepare_kernel(const float* __restrict__ x, const int64_t* __restrict__ idx, const float* __restrict__ mean,
                                   const float* __restrict__ inv_scale, float* __restrict__ out, int64_t n, int d_in, int d_out) {
  const int64_t total = n * d_out;
  for (int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = e / d_out;
    const int t = static_cast<int>(e % d_out);
    float v = x[i * d_in + (idx ? idx[t] : t)];
    if (mean) v = (v - mean[t]) * inv_scale[t];
    out[e] = v;
  }
}

// ‖x_i‖² in double, one warp per row (CPU: row_norms).
static __global__ void __launch_bounds__(kSvmThreads) row_sq_norms_kernel(const float* __restrict__ x, double* __restrict__ out, int64_t n, int d) {
  const int lane = threadIdx.x & 31;
  const int64_t i = int64_t{blockIdx.x} * (kSvmThreads / 32) + (threadIdx.x >> 5);
  double s = 0;
  if (i < n)
    for (int f = lane; f < d; f += 32) {
      const double v = x[i * d + f];
      s += v * v;
    }
  s = warp_sum_f64(s);
  if (i < n && lane == 0) out[i] = s;
}

// The kernel function of svm.hpp's KernelFunction::apply: 0 linear, 1 rbf, 2 poly, 3 sigmoid.
struct SvmKernelParams {
  int kind;
  double gamma, coef0;
  int degree;
  double intercept;
};

__device__ __forceinline__ double svm_kernel_value(const SvmKernelParams& p, double dot, double na, double nb) {
  switch (p.kind) {
    case 0: return dot;
    case 1: return exp(-p.gamma * fmax(0.0, na + nb - 2 * dot));
    case 2: return pow(p.gamma * dot + p.coef0, static_cast<double>(p.degree));
    default: return tanh(p.gamma * dot + p.coef0);
  }
}

// dots [n, m] = x·svᵀ; norm_x [n], norm_sv [m] (rbf only, else null); coef [m] → out [n].
static __global__ void __launch_bounds__(kSvmThreads)
    svm_decision_kernel(const float* __restrict__ dots, const double* __restrict__ norm_x, const double* __restrict__ norm_sv,
                        const double* __restrict__ coef, double* __restrict__ out, int m, SvmKernelParams p) {
  __shared__ double partial[kSvmThreads / 32];
  const int64_t i = blockIdx.x;
  const float* row = dots + i * m;
  const double nx = norm_x ? norm_x[i] : 0.0;
  double s = 0;
  for (int j = threadIdx.x; j < m; j += kSvmThreads) {
    // Rounded to f32 as the CPU's kernel block stores it, then weighted in double.
    const float k = static_cast<float>(svm_kernel_value(p, row[j], nx, norm_sv ? norm_sv[j] : 0.0));
    s += coef[j] * static_cast<double>(k);
  }
  s = warp_sum_f64(s);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = p.intercept;
    for (int w = 0; w < kSvmThreads / 32; ++w) t += partial[w];
    out[i] = t;
  }
}

inline void svm_prepare(const float* x, const int64_t* idx, const float* mean, const float* inv_scale, float* out, int64_t n,
                        int d_in, int d_out, cudaStream_t stream) {
  if (n < 0 || d_in < 1 || d_out < 1 || (!idx && d_in != d_out))
    fail<ShapeError>("kernels::svm_prepare: bad sizes n=", n, " d_in=", d_in, " d_out=", d_out, idx ? "" : " (no index selection)");
  const int64_t blocks = std::min<int64_t>(ceil_div(n * d_out, 256), 65535);
  launch("svm_prepare", svm_prepare_kernel, dim3(static_cast<unsigned>(blocks)), dim3(256), 0, stream, x, idx, mean, inv_scale, out,
         n, d_in, d_out);
}

inline void row_sq_norms(const float* x, double* out, int64_t n, int d, cudaStream_t stream) {
  if (n < 0 || d < 1) fail<ShapeError>("kernels::row_sq_norms: bad sizes n=", n, " d=", d);
  launch("row_sq_norms", row_sq_norms_kernel, dim3(static_cast<unsigned>(ceil_div(n, kSvmThreads / 32))), dim3(kSvmThreads), 0,
         stream, x, out, n, d);
}

inline void svm_decision(const float* dots, const double* norm_x, const double* norm_sv, const double* coef, double* out, int64_t n,
                         int m, const SvmKernelParams& p, cudaStream_t stream) {
  if (n < 0 || m < 1 || p.kind < 0 || p.kind > 3)
    fail<ShapeError>("kernels::svm_decision: bad arguments n=", n, " m=", m, " kind=", p.kind);
  if (p.kind == 1 && (!norm_x || !norm_sv)) fail<UsageError>("kernels::svm_decision: rbf needs both norm vectors");
  launch("svm_decision", svm_decision_kernel, dim3(static_cast<unsigned>(n)), dim3(kSvmThreads), 0, stream, dots, norm_x, norm_sv,
         coef, out, m, p);
}

}  // namespace genscope::kernels
