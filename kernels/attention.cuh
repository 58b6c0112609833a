// kernels/attention.cuh — scaled-dot-product attention, FlashAttention-style (Dao et al. 2022,
// Algorithm 1, with the online softmax of Milakov & Gimelshein 2018), f32 accumulation:
//   O = softmax(scale · Q·Kᵀ) · V      Q [BH, Sq, D], K, V [BH, Sk, D], O [BH, Sq, D], contiguous
// for head dims D up to 512 (SD UNet 40/80/160, SD VAE 512, ViTs 64).
//
// A block is kWarps warps, one query row per warp; the block walks the keys 32 at a time, staging
// the K and V tiles in shared memory (shared by its kWarps rows). Per tile, lane j scores key j
// (a dot product over D from shared memory: K rows padded to D + 1 floats, so the 32 lanes hit
// 32 different banks), then the warp updates its running max m, sum l and output o:
//     m' = max(m, max_j s_j),  p_j = exp(s_j − m'),  l' = l·e^(m−m') + Σ_j p_j,
//     o' = o·e^(m−m') + Σ_j p_j·V_j               (lane ℓ owns dims ℓ, ℓ+32, …: kDimsPerLane of them)
// and at the end O = o / l. No Sq × Sk score matrix is ever stored. The scores and P·V run on
// CUDA cores (no tensor cores here); the data layout is the one an mma-based helper would use.
#pragma once

#include "common.cuh"

namespace genscope::kernels {

constexpr int kAttentionWarps = 4;
constexpr int kAttentionKeys = 32;  // keys per tile = lanes per warp

// Shared memory of one block: the K tile (padded rows), the V tile, one scaled query per warp.
__host__ __device__ constexpr size_t attention_smem_bytes(int head_dim) {
  return sizeof(float) * (size_t{kAttentionKeys} * (head_dim + 1) + size_t{kAttentionKeys} * head_dim + size_t{kAttentionWarps} * head_dim);
}

template <StorageType T, int kDimsPerLane>
__global__ void __launch_bounds__(kAttentionWarps * 32)
    attention_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, T* __restrict__ o,
                     int64_t q_len, int64_t kv_len, int head_dim, float scale) {
  GENSCOPE_DYNAMIC_SMEM(float, smem);
  float* k_tile = smem;                                            // [32][D + 1]
  float* v_tile = k_tile + kAttentionKeys * (head_dim + 1);        // [32][D]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* q_row = v_tile + kAttentionKeys * head_dim + warp * head_dim;  // [D], this warp's query
  const int64_t head = blockIdx.y;
  const int64_t row = int64_t{blockIdx.x} * kAttentionWarps + warp;
  const bool has_row = row < q_len;  // uniform across the warp: shuffles below stay full-mask
  const T* kh = k + head * kv_len * head_dim;
  const T* vh = v + head * kv_len * head_dim;

  if (has_row)
    for (int d = lane; d < head_dim; d += 32) q_row[d] = scale * to_float(q[(head * q_len + row) * head_dim + d]);

  float m = -INFINITY, l = 0.0f, acc[kDimsPerLane];
#pragma unroll
  for (int i = 0; i < kDimsPerLane; ++i) acc[i] = 0.0f;

  for (int64_t key0 = 0; key0 < kv_len; key0 += kAttentionKeys) {
    const int keys = static_cast<int>(kv_len - key0 < kAttentionKeys ? kv_len - key0 : kAttentionKeys);
    __syncthreads();  // the previous tile is consumed (and the queries are written, first time)
    for (int idx = threadIdx.x; idx < kAttentionKeys * head_dim; idx += blockDim.x) {
      const int j = idx / head_dim, d = idx % head_dim;
      const bool in = j < keys;
      k_tile[j * (head_dim + 1) + d] = in ? to_float(kh[(key0 + j) * head_dim + d]) : 0.0f;
      v_tile[j * head_dim + d] = in ? to_float(vh[(key0 + j) * head_dim + d]) : 0.0f;
    }
    __syncthreads();
    if (!has_row) continue;

    float s = -INFINITY;
    if (lane < keys) {
      s = 0.0f;
      const float* kj = k_tile + lane * (head_dim + 1);
      for (int d = 0; d < head_dim; ++d) s = fmaf(q_row[d], kj[d], s);
    }
    const float m_new = fmaxf(m, warp_max(s));
    const float p = lane < keys ? expf(s - m_new) : 0.0f;
    const float rescale = expf(m - m_new);  // 0 on the first tile (m = −inf)
    l = l * rescale + warp_sum(p);
#pragma unroll
    for (int i = 0; i < kDimsPerLane; ++i) acc[i] *= rescale;
    for (int j = 0; j < keys; ++j) {
      const float pj = __shfl_sync(kFullMask, p, j);
#pragma unroll
      for (int i = 0; i < kDimsPerLane; ++i) {
        const int d = lane + 32 * i;
        if (d < head_dim) acc[i] = fmaf(pj, v_tile[j * head_dim + d], acc[i]);
      }
    }
    m = m_new;
  }
  if (has_row) {
    const float inv = 1.0f / l;
#pragma unroll
    for (int i = 0; i < kDimsPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < head_dim) o[(head * q_len + row) * head_dim + d] = from_float<T>(acc[i] * inv);
    }
  }
}

// q [batch_heads, q_len, D], k, v [batch_heads, kv_len, D], o like q; D in [1, 512], kv_len ≥ 1.
template <StorageType T>
void attention(const T* q, const T* k, const T* v, T* o, int64_t batch_heads, int64_t q_len, int64_t kv_len,
               int head_dim, float scale, cudaStream_t stream) {
  if (head_dim < 1 || head_dim > 512) fail<ShapeError>("kernels::attention: head dim ", head_dim, " is outside [1, 512]");
  if (kv_len < 1) fail<ShapeError>("kernels::attention: no keys (kv_len = ", kv_len, ")");
  if (batch_heads > 65535) fail<ShapeError>("kernels::attention: ", batch_heads, " batch·heads exceed the grid's y extent");
  const dim3 grid(static_cast<unsigned>(ceil_div(q_len, kAttentionWarps)), static_cast<unsigned>(batch_heads));
  const dim3 block(kAttentionWarps * 32);
  const size_t smem = attention_smem_bytes(head_dim);
  auto run = [&](auto kernel) { launch("attention", kernel, grid, block, smem, stream, q, k, v, o, q_len, kv_len, head_dim, scale); };
  if (head_dim <= 32) run(attention_kernel<T, 1>);
  else if (head_dim <= 64) run(attention_kernel<T, 2>);
  else if (head_dim <= 128) run(attention_kernel<T, 4>);
  else if (head_dim <= 256) run(attention_kernel<T, 8>);
  else run(attention_kernel<T, 16>);
}

}  // namespace genscope::kernels
