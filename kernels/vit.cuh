// kernels/vit.cuh — the data-movement kernels of the Vision Transformer's GPU forward
// (include/genscope/models/vit_cuda.hpp); the GEMMs are cuBLASLt's, LayerNorm, attention and the
// GELU epilogues are layernorm.cuh, attention.cuh and gemm.cuh. Each kernel has its CPU reference
// right after it (the same loops, written plainly), which tests/test_kernels_vit.cpp holds it to.
//
//   patchify         pixels f32 [B, C, H, W] → patch rows [B·gh·gw, C·p·p] in T: the im2col of a
//                    stride-p, kernel-p conv (nn/patch_embed.hpp's loop, read in (c, i, j) order)
//   assemble_tokens  [cls | patches] + pos → tokens [B, T, D] (models/vit.hpp, embed())
//   split_heads      a fused projection [B, S, parts, H, hd] → parts × [B, H, S, hd], the
//                    contiguous head-major layout kernels::attention reads (parts = 3: q|k|v)
//   merge_heads      attention's output [B, H, S, hd] → [B, S, H, hd] = [B·S, D] for the proj GEMM
//   layer_average    the AIM probe's AverageLayers and its BatchNorm1d (models/aim_head.hpp), in place
//   mean_tokens      the mean of the patch tokens [B, T, D] → [B, D] (models/vit_features.hpp),
//                    accumulated in double as the CPU does
//
// All are memory-bound permutations or reductions: grid-stride loops with consecutive threads on
// consecutive output elements (coalesced stores; the loads are contiguous runs of hd, p or D).
#pragma once

#include "common.cuh"

namespace genscope::kernels {

constexpr int kVitThreads = 256;

inline unsigned vit_blocks(int64_t n) {
  const int64_t blocks = ceil_div(n, kVitThreads);
  return static_cast<unsigned>(blocks < 4096 ? blocks : 4096);  // grid-stride covers the rest
}

// ---- patchify ----------------------------------------------------------------------------------
// cols[r][k], r = (b·gh + py)·gw + px, k = (c·p + i)·p + j  ←  x[b][c][py·p + i][px·p + j].
template <StorageType T>
__global__ void __launch_bounds__(kVitThreads)
    patchify_kernel(const float* __restrict__ x, T* __restrict__ cols, int64_t batch, int64_t channels, int64_t height,
                    int64_t width, int64_t patch) {
  const int64_t gh = height / patch, gw = width / patch, K = channels * patch * patch, n = batch * gh * gw * K;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t r = idx / K, k = idx % K;
    const int64_t b = r / (gh * gw), py = (r / gw) % gh, px = r % gw;
    const int64_t c = k / (patch * patch), i = (k / patch) % patch, j = k % patch;
    cols[idx] = from_float<T>(x[((b * channels + c) * height + py * patch + i) * width + px * patch + j]);
  }
}

template <StorageType T>
void patchify(const float* x, T* cols, int64_t batch, int64_t channels, int64_t height, int64_t width, int64_t patch,
              cudaStream_t stream) {
  if (patch < 1 || height % patch || width % patch)
    fail<ShapeError>("kernels::patchify: the input size ", height, " x ", width, " is not a multiple of the patch size ", patch);
  const int64_t n = batch * (height / patch) * (width / patch) * channels * patch * patch;
  launch("patchify", patchify_kernel<T>, dim3(vit_blocks(n)), dim3(kVitThreads), 0, stream, x, cols, batch, channels, height,
         width, patch);
}

inline void patchify_reference(const float* x, float* cols, int64_t batch, int64_t channels, int64_t height, int64_t width,
                               int64_t patch) {
  const int64_t gh = height / patch, gw = width / patch;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t py = 0; py < gh; ++py)
      for (int64_t px = 0; px < gw; ++px)
        for (int64_t c = 0; c < channels; ++c)
          for (int64_t i = 0; i < patch; ++i)
            for (int64_t j = 0; j < patch; ++j)
              *cols++ = x[((b * channels + c) * height + py * patch + i) * width + px * patch + j];
}

// ---- assemble_tokens ---------------------------------------------------------------------------
// tokens[b][t][d] = (t < prefix ? cls[d] : patches[b][t − prefix][d]) + pos[t][d], T = prefix + N.
template <StorageType T>
__global__ void __launch_bounds__(kVitThreads)
    assemble_tokens_kernel(const T* __restrict__ patches, const float* __restrict__ cls, const float* __restrict__ pos,
                           T* __restrict__ tokens, int64_t batch, int64_t n_patches, int64_t prefix, int64_t dim) {
  const int64_t tokens_per_image = prefix + n_patches, n = batch * tokens_per_image * dim;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t d = idx % dim, t = (idx / dim) % tokens_per_image, b = idx / (dim * tokens_per_image);
    const float v = t < prefix ? cls[d] : to_float(patches[(b * n_patches + t - prefix) * dim + d]);
    tokens[idx] = from_float<T>(v + pos[t * dim + d]);
  }
}

// patches [B, N, D]; cls [D] (read when prefix = 1); pos [prefix + N, D] f32.
template <StorageType T>
void assemble_tokens(const T* patches, const float* cls, const float* pos, T* tokens, int64_t batch, int64_t n_patches,
                     int64_t prefix, int64_t dim, cudaStream_t stream) {
  if (prefix != 0 && prefix != 1) fail<ShapeError>("kernels::assemble_tokens: prefix ", prefix, " is not 0 or 1");
  if (prefix && !cls) fail<ShapeError>("kernels::assemble_tokens: a class-token prefix without the class token");
  const int64_t n = batch * (prefix + n_patches) * dim;
  launch("assemble_tokens", assemble_tokens_kernel<T>, dim3(vit_blocks(n)), dim3(kVitThreads), 0, stream, patches, cls, pos,
         tokens, batch, n_patches, prefix, dim);
}

inline void assemble_tokens_reference(const float* patches, const float* cls, const float* pos, float* tokens, int64_t batch,
                                      int64_t n_patches, int64_t prefix, int64_t dim) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < prefix + n_patches; ++t)
      for (int64_t d = 0; d < dim; ++d)
        *tokens++ = (t < prefix ? cls[d] : patches[(b * n_patches + t - prefix) * dim + d]) + pos[t * dim + d];
}

// ---- split_heads -------------------------------------------------------------------------------
// out[part][b][h][s][e] = fused[b][s][part][h][e]: parts contiguous [B, H, S, hd] tensors.
template <StorageType T>
__global__ void __launch_bounds__(kVitThreads)
    split_heads_kernel(const T* __restrict__ fused, T* __restrict__ out, int64_t batch, int64_t seq, int64_t parts, int64_t heads,
                       int64_t head_dim) {
  const int64_t n = parts * batch * heads * seq * head_dim, stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t e = idx % head_dim, s = (idx / head_dim) % seq, h = (idx / (head_dim * seq)) % heads;
    const int64_t b = (idx / (head_dim * seq * heads)) % batch, part = idx / (head_dim * seq * heads * batch);
    out[idx] = fused[(((b * seq + s) * parts + part) * heads + h) * head_dim + e];
  }
}

template <StorageType T>
void split_heads(const T* fused, T* out, int64_t batch, int64_t seq, int64_t parts, int64_t heads, int64_t head_dim,
                 cudaStream_t stream) {
  const int64_t n = parts * batch * heads * seq * head_dim;
  launch("split_heads", split_heads_kernel<T>, dim3(vit_blocks(n)), dim3(kVitThreads), 0, stream, fused, out, batch, seq, parts,
         heads, head_dim);
}

inline void split_heads_reference(const float* fused, float* out, int64_t batch, int64_t seq, int64_t parts, int64_t heads,
                                  int64_t head_dim) {
  for (int64_t part = 0; part < parts; ++part)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t s = 0; s < seq; ++s)
          for (int64_t e = 0; e < head_dim; ++e) *out++ = fused[(((b * seq + s) * parts + part) * heads + h) * head_dim + e];
}

// ---- merge_heads -------------------------------------------------------------------------------
// out[b][s][h][e] = o[b][h][s][e].
template <StorageType T>
__global__ void __launch_bounds__(kVitThreads)
    merge_heads_kernel(const T* __restrict__ o, T* __restrict__ out, int64_t batch, int64_t heads, int64_t seq, int64_t head_dim) {
  const int64_t n = batch * seq * heads * head_dim, stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t e = idx % head_dim, h = (idx / head_dim) % heads, s = (idx / (head_dim * heads)) % seq;
    const int64_t b = idx / (head_dim * heads * seq);
    out[idx] = o[((b * heads + h) * seq + s) * head_dim + e];
  }
}

template <StorageType T>
void merge_heads(const T* o, T* out, int64_t batch, int64_t heads, int64_t seq, int64_t head_dim, cudaStream_t stream) {
  const int64_t n = batch * seq * heads * head_dim;
  launch("merge_heads", merge_heads_kernel<T>, dim3(vit_blocks(n)), dim3(kVitThreads), 0, stream, o, out, batch, heads, seq,
         head_dim);
}

inline void merge_heads_reference(const float* o, float* out, int64_t batch, int64_t heads, int64_t seq, int64_t head_dim) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seq; ++s)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t e = 0; e < head_dim; ++e) *out++ = o[((b * heads + h) * seq + s) * head_dim + e];
}

// ---- layer_average -----------------------------------------------------------------------------
// AIM's AverageLayers then BatchNorm1d (eval), one step per probe layer, in place on acc [rows, cols]:
//   v = (acc + x) / divisor          (x null: v = acc / divisor)
//   v = (v − mean[c]) · inv_std[c]   (when mean is given: the last step)
// Called with divisor 1 for the middle layers and n on the last, this is the CPU's order of
// operations (models/aim_head.hpp: sum, then one division, then the normalisation).
template <StorageType T>
__global__ void __launch_bounds__(kVitThreads)
    layer_average_kernel(T* __restrict__ acc, const T* __restrict__ x, int64_t rows, int64_t cols, float divisor,
                         const float* __restrict__ mean, const float* __restrict__ inv_std) {
  const int64_t n = rows * cols, stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    float v = to_float(acc[idx]);
    if (x) v += to_float(x[idx]);
    if (divisor != 1.0f) v /= divisor;
    if (mean) {
      const int64_t c = idx % cols;
      v = (v - mean[c]) * inv_std[c];
    }
    acc[idx] = from_float<T>(v);
  }
}

template <StorageType T>
void layer_average(T* acc, const T* x, int64_t rows, int64_t cols, float divisor, const float* mean, const float* inv_std,
                   cudaStream_t stream) {
  if (mean && !inv_std) fail<ShapeError>("kernels::layer_average: a mean without the inverse standard deviations");
  launch("layer_average", layer_average_kernel<T>, dim3(vit_blocks(rows * cols)), dim3(kVitThreads), 0, stream, acc, x, rows,
         cols, divisor, mean, inv_std);
}

inline void layer_average_reference(float* acc, const float* x, int64_t rows, int64_t cols, float divisor, const float* mean,
                                    const float* inv_std) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      float& v = acc[r * cols + c];
      if (x) v += x[r * cols + c];
      if (divisor != 1.0f) v /= divisor;
      if (mean) v = (v - mean[c]) * inv_std[c];
    }
}

// ---- mean_tokens -------------------------------------------------------------------------------
// out[b·ld_out + d] = Σ_{t ≥ prefix} x[b][t][d] / (T − prefix), one thread per (b, d): the loads of
// a warp are 32 consecutive d of one token (coalesced); double accumulation as the CPU's.
template <StorageType T>
__global__ void __launch_bounds__(kVitThreads)
    mean_tokens_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t batch, int64_t seq, int64_t dim, int64_t prefix,
                       int64_t ld_out) {
  const int64_t n = batch * dim, stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t b = idx / dim, d = idx % dim;
    double acc = 0.0;
    for (int64_t t = prefix; t < seq; ++t) acc += to_float(x[(b * seq + t) * dim + d]);
    out[b * ld_out + d] = from_float<T>(static_cast<float>(acc / static_cast<double>(seq - prefix)));
  }
}

// x [B, T, D] → out rows of D values at stride ld_out (ld_out > D writes a column slice).
template <StorageType T>
void mean_tokens(const T* x, T* out, int64_t batch, int64_t seq, int64_t dim, int64_t prefix, int64_t ld_out, cudaStream_t stream) {
  if (prefix < 0 || prefix >= seq) fail<ShapeError>("kernels::mean_tokens: prefix ", prefix, " leaves no tokens of ", seq);
  if (ld_out < dim) fail<ShapeError>("kernels::mean_tokens: output stride ", ld_out, " is below the width ", dim);
  launch("mean_tokens", mean_tokens_kernel<T>, dim3(vit_blocks(batch * dim)), dim3(kVitThreads), 0, stream, x, out, batch, seq,
         dim, prefix, ld_out);
}

inline void mean_tokens_reference(const float* x, float* out, int64_t batch, int64_t seq, int64_t dim, int64_t prefix,
                                  int64_t ld_out) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t d = 0; d < dim; ++d) {
      double acc = 0.0;
      for (int64_t t = prefix; t < seq; ++t) acc += x[(b * seq + t) * dim + d];
      out[b * ld_out + d] = static_cast<float>(acc / static_cast<double>(seq - prefix));
    }
}

}  // namespace genscope::kernels
