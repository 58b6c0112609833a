// kernels/vae.cuh — the data-movement kernels of the SD VAE's CUDA path (models/vae_cuda.hpp)
// that cuDNN, cuBLASLt and the norm/attention kernels do not cover, each beside its CPU reference:
//
//   pad_bottom_right   diffusers Downsample2D(padding=0): F.pad(x, (0, 1, 0, 1)) before the 3×3
//                      stride-2 conv; cuDNN's descriptor pads symmetrically, so the pad is explicit
//   upsample_nearest2x diffusers Upsample2D: F.interpolate(x, scale_factor=2, mode="nearest")
//   add_bias_residual  y += bias[c] + r: ResnetBlock2D's `shortcut + h` and the attention's
//                      `x + to_out(o)` (bias per channel because the projection is computed
//                      channel-major, [C, H·W], where cuBLASLt's epilogue bias is per column)
//   group_norm_split   GroupNorm(+SiLU) with each group spread over many blocks (below)
//
// The first three are grid-stride loops over the output (memory-bound: consecutive threads write
// consecutive elements, as elementwise.cuh), f32/f16/bf16 storage, f32 arithmetic rounded once on
// store.
#pragma once

#include "activation.cuh"
#include "common.cuh"
#include "elementwise.cuh"

namespace genscope::kernels {

// ---- y [planes, h + pad_bottom, w + pad_right] = x [planes, h, w] with zeros below and right ----
template <StorageType T>
__global__ void __launch_bounds__(kElementwiseThreads)
    pad_bottom_right_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  const int64_t n = planes * oh * ow, stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t col = i % ow, row = i / ow % oh, p = i / (ow * oh);
    y[i] = row < h && col < w ? x[(p * h + row) * w + col] : from_float<T>(0.0f);
  }
}

template <StorageType T>
void pad_bottom_right(const T* x, T* y, int64_t planes, int64_t h, int64_t w, int64_t pad_bottom, int64_t pad_right, cudaStream_t stream) {
  if (pad_bottom < 0 || pad_right < 0) fail<ShapeError>("kernels::pad_bottom_right: negative padding (", pad_bottom, ", ", pad_right, ")");
  const int64_t oh = h + pad_bottom, ow = w + pad_right;
  launch("pad_bottom_right", pad_bottom_right_kernel<T>, dim3(elementwise_blocks(planes * oh * ow)), dim3(kElementwiseThreads), 0, stream,
         x, y, planes, h, w, oh, ow);
}

// CPU reference: the definition, plane by plane.
template <class T>
void pad_bottom_right_reference(const T* x, T* y, int64_t planes, int64_t h, int64_t w, int64_t pad_bottom, int64_t pad_right) {
  const int64_t oh = h + pad_bottom, ow = w + pad_right;
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t r = 0; r < oh; ++r)
      for (int64_t c = 0; c < ow; ++c) y[(p * oh + r) * ow + c] = r < h && c < w ? x[(p * h + r) * w + c] : T{};
}

// ---- y [planes, 2h, 2w]: y[p, i, j] = x[p, ⌊i/2⌋, ⌊j/2⌋] ------------------------------------------
template <StorageType T>
__global__ void __launch_bounds__(kElementwiseThreads)
    upsample_nearest2x_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes, int64_t h, int64_t w) {
  const int64_t oh = 2 * h, ow = 2 * w, n = planes * oh * ow, stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t col = i % ow, row = i / ow % oh, p = i / (ow * oh);
    y[i] = x[(p * h + row / 2) * w + col / 2];
  }
}

template <StorageType T>
void upsample_nearest2x(const T* x, T* y, int64_t planes, int64_t h, int64_t w, cudaStream_t stream) {
  launch("upsample_nearest2x", upsample_nearest2x_kernel<T>, dim3(elementwise_blocks(planes * 4 * h * w)), dim3(kElementwiseThreads), 0,
         stream, x, y, planes, h, w);
}

// CPU reference: torch's nearest rule for scale 2, src = ⌊dst · (in / out)⌋ = ⌊dst / 2⌋
// (ops/upsample.hpp computes the same; the emulated test checks both).
template <class T>
void upsample_nearest2x_reference(const T* x, T* y, int64_t planes, int64_t h, int64_t w) {
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t r = 0; r < 2 * h; ++r)
      for (int64_t c = 0; c < 2 * w; ++c) y[(p * 2 * h + r) * 2 * w + c] = x[(p * h + r / 2) * w + c / 2];
}

// ---- y[n, c, s] += bias[c] + r[n, c, s]   (bias f32 [C] or null, r like y or null) ---------------
template <StorageType T>
__global__ void __launch_bounds__(kElementwiseThreads)
    add_bias_residual_kernel(T* __restrict__ y, const float* __restrict__ bias, const T* __restrict__ r, int64_t n, int64_t channels,
                             int64_t spatial) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) {
    float v = to_float(y[i]);
    if (bias) v += bias[i / spatial % channels];
    if (r) v += to_float(r[i]);
    y[i] = from_float<T>(v);
  }
}

// y, r [batch, channels, spatial] contiguous; y may not alias r.
template <StorageType T>
void add_bias_residual(T* y, const float* bias, const T* r, int64_t batch, int64_t channels, int64_t spatial, cudaStream_t stream) {
  if (channels <= 0 || spatial <= 0) fail<ShapeError>("kernels::add_bias_residual: ", channels, " channels × ", spatial, " positions");
  const int64_t n = batch * channels * spatial;
  launch("add_bias_residual", add_bias_residual_kernel<T>, dim3(elementwise_blocks(n)), dim3(kElementwiseThreads), 0, stream, y, bias, r,
         n, channels, spatial);
}

// CPU reference in f32, as the kernel computes before its one rounding to T.
inline void add_bias_residual_reference(float* y, const float* bias, const float* r, int64_t batch, int64_t channels, int64_t spatial) {
  for (int64_t i = 0; i < batch * channels * spatial; ++i) {
    if (bias) y[i] += bias[i / spatial % channels];
    if (r) y[i] += r[i];
  }
}

// ---- GroupNorm(+act), each group split over many blocks -----------------------------------------
// groupnorm.cuh gives a (sample, group) one block: 32 blocks for SD at batch 1, a quarter of an
// H100's SMs, each sweeping up to 4·1024² elements three times. Here a group of E = (C/G)·HW
// consecutive elements is cut into chunks of `chunk` elements and normalised in three launches:
//   1. group_stats_kernel, one block per (chunk, group): the chunk's mean and M2 = Σ(x − mean)²
//      (two passes over the chunk, which is small enough for the second to come from L2);
//   2. group_stats_merge_kernel, one thread per group: the chunks merged in double with Chan,
//      Golub & LeVeque's pairwise update (n = nₐ + n_b, δ = mean_b − meanₐ,
//      mean = meanₐ + δ·n_b/n, M2 = M2ₐ + M2_b + δ²·nₐ·n_b/n) → mean, 1/√(M2/E + eps);
//   3. group_norm_apply_kernel: y = act((x − mean)·rstd·γ[c] + β[c]), one block row per channel
//      plane, so the channel and group come from blockIdx.y with no per-element division.
// The statistics are the biased ones of torch.nn.functional.group_norm, as groupnorm.cuh's.
constexpr int kGroupStatsThreads = 256;
constexpr int64_t kGroupNormChunk = 32768;

// Floats of workspace group_norm_split needs: (mean, M2) per chunk and (mean, rstd) per group.
inline int64_t group_norm_split_workspace(int64_t batch, int64_t channels, int64_t spatial, int64_t groups,
                                          int64_t chunk = kGroupNormChunk) {
  const int64_t group_elements = channels / groups * spatial;
  return batch * groups * (2 * ceil_div(group_elements, chunk) + 2);
}

template <StorageType T>
__global__ void __launch_bounds__(kGroupStatsThreads)
    group_stats_kernel(const T* __restrict__ x, float* __restrict__ partial, int64_t group_elements, int64_t chunk) {
  const int64_t begin = int64_t{blockIdx.x} * chunk;
  const int64_t end = begin + chunk < group_elements ? begin + chunk : group_elements;
  const T* xg = x + int64_t{blockIdx.y} * group_elements;
  float sum = 0.0f;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) sum += to_float(xg[i]);
  const float mean = block_sum(sum) / static_cast<float>(end - begin);
  float squares = 0.0f;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const float d = to_float(xg[i]) - mean;
    squares += d * d;
  }
  const float m2 = block_sum(squares);
  if (threadIdx.x == 0) {
    float* out = partial + 2 * (int64_t{blockIdx.y} * gridDim.x + blockIdx.x);
    out[0] = mean;
    out[1] = m2;
  }
}

// A template (Acc = double) so that several .cu files of one program may include this header.
template <class Acc>
__global__ void group_stats_merge_kernel(const float* __restrict__ partial, float* __restrict__ stats, int64_t n_groups, int64_t chunks,
                                         int64_t group_elements, int64_t chunk, float eps) {
  const int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (g >= n_groups) return;
  Acc n = 0, mean = 0, m2 = 0;
  for (int64_t k = 0; k < chunks; ++k) {
    const Acc nb = static_cast<Acc>(group_elements - k * chunk < chunk ? group_elements - k * chunk : chunk);
    const Acc mb = partial[2 * (g * chunks + k)], m2b = partial[2 * (g * chunks + k) + 1];
    const Acc total = n + nb, delta = mb - mean;
    mean += delta * nb / total;
    m2 += m2b + delta * delta * n * nb / total;
    n = total;
  }
  stats[2 * g] = static_cast<float>(mean);
  stats[2 * g + 1] = static_cast<float>(Acc{1} / sqrt(m2 / n + static_cast<Acc>(eps)));
}

template <StorageType T, Activation A>
__global__ void __launch_bounds__(kElementwiseThreads)
    group_norm_apply_kernel(const T* __restrict__ x, const float* __restrict__ stats, const float* __restrict__ gamma,
                            const float* __restrict__ beta, T* __restrict__ y, int64_t channels, int64_t channels_per_group,
                            int64_t spatial) {
  const int64_t plane = blockIdx.y, c = plane % channels, g = plane / channels_per_group;  // g = n·G + group
  const float mean = stats[2 * g], rstd = stats[2 * g + 1];
  // (x − mean)·scale + β, not x·scale + (β − mean·scale): no cancellation when |mean| ≫ std.
  const float scale = gamma ? gamma[c] * rstd : rstd, shift = beta ? beta[c] : 0.0f;
  const T* xp = x + plane * spatial;
  T* yp = y + plane * spatial;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < spatial; i += int64_t{gridDim.x} * blockDim.x)
    yp[i] = from_float<T>(activate<A>((to_float(xp[i]) - mean) * scale + shift));
}

// x, y [batch, channels, spatial] contiguous (y may not alias x); gamma, beta f32 [channels] or
// null; workspace: group_norm_split_workspace(...) floats of device memory.
template <StorageType T>
void group_norm_split(const T* x, const float* gamma, const float* beta, T* y, int64_t batch, int64_t channels, int64_t spatial,
                      int64_t groups, float eps, Activation act, float* workspace, cudaStream_t stream, int64_t chunk = kGroupNormChunk) {
  if (groups <= 0 || channels % groups != 0)
    fail<ShapeError>("kernels::group_norm_split: ", channels, " channels are not divisible into ", groups, " groups");
  if (chunk <= 0) fail<ShapeError>("kernels::group_norm_split: chunk ", chunk, " must be positive");
  if (batch * groups > 65535 || batch * channels > 65535)
    fail<ShapeError>("kernels::group_norm_split: ", batch, " x ", channels, " channel planes exceed the grid's y extent");
  if (batch <= 0 || spatial <= 0) return;
  const int64_t cpg = channels / groups, group_elements = cpg * spatial, chunks = ceil_div(group_elements, chunk), n_groups = batch * groups;
  float* partial = workspace;
  float* stats = workspace + 2 * n_groups * chunks;
  launch("group_stats", group_stats_kernel<T>, dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(n_groups)), dim3(kGroupStatsThreads), 0,
         stream, x, partial, group_elements, chunk);
  launch("group_stats_merge", group_stats_merge_kernel<double>, dim3(static_cast<unsigned>(ceil_div(n_groups, 128))), dim3(128), 0, stream,
         static_cast<const float*>(partial), stats, n_groups, chunks, group_elements, chunk, eps);
  const int64_t blocks_x = ceil_div(spatial, kElementwiseThreads);
  const dim3 grid(static_cast<unsigned>(blocks_x < 64 ? blocks_x : 64), static_cast<unsigned>(batch * channels));
  dispatch_activation(act, [&]<Activation A>() {
    launch("group_norm_apply", group_norm_apply_kernel<T, A>, grid, dim3(kElementwiseThreads), 0, stream, x,
           static_cast<const float*>(stats), gamma, beta, y, channels, cpg, spatial);
  });
}

// CPU reference: ops::group_norm (genscope/ops/norm.hpp, torch's definition), which the emulated
// test holds this against; the chunked statistics change only the summation order.

}  // namespace genscope::kernels
