// genscope/models/vae_tiling.hpp — the VAE at any image size and in bounded memory.
//
// Sizes: the encoder needs H and W to be multiples of f = 2^(blocks−1) (8 for SD). Other sizes are
// padded at the bottom and right by reflection (torch.nn.functional.pad mode="reflect": the edge
// pixel is not repeated) and the decoded image is cropped back, so every output pixel corresponds
// to its input pixel. Images smaller than the pad reflect repeatedly (torch refuses those).
//
// Tiles: the decoder's activations at full resolution are 128–512 channels × H × W floats (over
// 8 GB for a 4096² image), so large images run in overlapping tiles. The image is covered by tiles
// of T×T pixels (T a multiple of f) whose starts step by T − overlap, the last one flush with the
// edge so every tile is full-size; encode runs per pixel tile and blends the moments (mean ‖ logvar)
// in latent space, decode runs per latent tile of T/f and blends in pixel space. Blending weights
// ramp linearly across each overlap, (k+1)/(overlap+1) from a tile's inner edge, and are 1 at the
// image border, so overlapping tiles cross-fade and a pixel covered once keeps its tile's value.
// This is diffusers' tiled_encode/tiled_decode idea (autoencoder_kl.py: blend_v / blend_h), made
// symmetric; GroupNorm statistics are per tile, so tiled and untiled results differ slightly
// (tests/test_vae.cpp bounds it; the note gives the figures).
//
// Choosing: tile == 0 picks untiled when the estimated peak of the whole image fits the memory
// budget, else the largest tile (multiple of 64 px) that fits.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/models/vae.hpp"

namespace genscope::models {

// Reflect index into [0, n): …, 2, 1, 0, 1, 2, …, n−1, n−2, … (period 2n − 2).
inline int64_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * n - 2;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

// x [N, C, H, W] → [N, C, ⌈H/m⌉·m, ⌈W/m⌉·m], the new rows and columns mirrored from the
// bottom and right edges. Returns x itself when nothing is to be added.
inline Tensor reflect_pad_to_multiple(const Tensor& x_in, int64_t multiple) {
  if (x_in.dim() != 4) fail<ShapeError>("reflect_pad_to_multiple: x is ", x_in.str(), "; expected [N, C, H, W]");
  const int64_t h = x_in.size(2), w = x_in.size(3);
  const int64_t ph = (h + multiple - 1) / multiple * multiple, pw = (w + multiple - 1) / multiple * multiple;
  if (ph == h && pw == w) return x_in;
  const Tensor x = x_in.contiguous().to(DType::F32);
  Tensor out = Tensor::empty({x.size(0), x.size(1), ph, pw}, DType::F32);
  const float* src = x.data<float>();
  float* dst = out.data<float>();
  for (int64_t p = 0; p < x.size(0) * x.size(1); ++p)
    for (int64_t i = 0; i < ph; ++i) {
      const float* row = src + (p * h + reflect_index(i, h)) * w;
      float* o = dst + (p * ph + i) * pw;
      for (int64_t j = 0; j < pw; ++j) o[j] = row[reflect_index(j, w)];
    }
  return out;
}

// Starts of tiles of length `tile` covering [0, size): step tile − overlap, the last flush with the end.
inline std::vector<int64_t> tile_starts(int64_t size, int64_t tile, int64_t overlap) {
  if (tile >= size) return {0};
  if (overlap < 0 || overlap >= tile) fail<UsageError>("tile_starts: overlap ", overlap, " must be in [0, tile ", tile, ")");
  std::vector<int64_t> starts;
  for (int64_t s = 0; s + tile < size; s += tile - overlap) starts.push_back(s);
  starts.push_back(size - tile);
  return starts;
}

// Blending weight of position k in a tile [start, start + len) of a dimension of `size`.
inline float tile_weight(int64_t k, int64_t start, int64_t len, int64_t size, int64_t overlap) {
  float w = 1.0f;
  const float ramp = static_cast<float>(overlap + 1);
  if (start > 0) w = std::min(w, static_cast<float>(k + 1) / ramp);
  if (start + len < size) w = std::min(w, static_cast<float>(len - k) / ramp);
  return w;
}

// Run `fn` on overlapping tiles of `x` [N, C, H, W] and blend the results. A tile of `tile` input
// pixels gives `scale_num/scale_den` times as many output pixels (encode 1/f, decode f).
inline Tensor run_tiled(const Tensor& x, int64_t tile, int64_t overlap, int64_t scale_num, int64_t scale_den,
                        const std::function<Tensor(const Tensor&)>& fn) {
  const int64_t H = x.size(2), W = x.size(3);
  const auto rows = tile_starts(H, tile, overlap), cols = tile_starts(W, tile, overlap);
  const int64_t oh = H * scale_num / scale_den, ow = W * scale_num / scale_den;
  const int64_t o_overlap = overlap * scale_num / scale_den;
  Tensor acc, weight = Tensor::zeros({oh, ow}, DType::F32);
  for (int64_t r : rows)
    for (int64_t c : cols) {
      const int64_t th = std::min(tile, H), tw = std::min(tile, W);
      const Tensor y = fn(x.slice(2, r, r + th).slice(3, c, c + tw).contiguous());
      if (!acc.defined()) acc = Tensor::zeros({y.size(0), y.size(1), oh, ow}, DType::F32);
      const int64_t orow = r * scale_num / scale_den, ocol = c * scale_num / scale_den;
      const int64_t yh = y.size(2), yw = y.size(3);
      std::vector<float> wr(static_cast<size_t>(yh)), wc(static_cast<size_t>(yw));
      for (int64_t i = 0; i < yh; ++i) wr[static_cast<size_t>(i)] = tile_weight(i, orow, yh, oh, o_overlap);
      for (int64_t j = 0; j < yw; ++j) wc[static_cast<size_t>(j)] = tile_weight(j, ocol, yw, ow, o_overlap);
      const float* py = y.data<float>();
      float* pa = acc.data<float>();
      float* pw = weight.data<float>();
      const int64_t planes = y.size(0) * y.size(1);
      parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p)
          for (int64_t i = 0; i < yh; ++i)
            for (int64_t j = 0; j < yw; ++j)
              pa[(p * oh + orow + i) * ow + ocol + j] += wr[static_cast<size_t>(i)] * wc[static_cast<size_t>(j)] * py[(p * yh + i) * yw + j];
      });
      for (int64_t i = 0; i < yh; ++i)
        for (int64_t j = 0; j < yw; ++j) pw[(orow + i) * ow + ocol + j] += wr[static_cast<size_t>(i)] * wc[static_cast<size_t>(j)];
    }
  const float* pw = weight.data<float>();
  float* pa = acc.data<float>();
  const int64_t plane = oh * ow;
  parallel_for(0, acc.size(0) * acc.size(1), 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t k = 0; k < plane; ++k) pa[p * plane + k] /= pw[k];
  });
  return acc;
}

struct VaeRunOptions {
  bool sample = true;              // posterior sample (UAR/RAID's reconstruct.py) or its mean
  uint64_t seed = 0;               // torch.manual_seed(seed) before each image's sample
  int64_t tile = 0;                // tile size in pixels (a multiple of f); 0: automatic
  int64_t memory_budget = int64_t{1} << 31;  // bytes of activations one encode/decode may use
};

// Estimated peak bytes of activations for an encode or decode of h×w pixels: 4 full-resolution
// tensors of block_out_channels[0] floats. The largest moment is the decoder's first
// 128-channel ResNet block at full size, which holds its 256-channel input (the shortcut is then
// written over it) and conv1's 128-channel output: 3 such tensors, plus the Winograd band buffers
// (≈ 32 MB) and the current block's weights. bench/bench_vae.cpp measured SD v1.4 f32 round trips
// at a peak RSS of 191 MB (256²) and 428 MB (512²) with the weights' pages released between
// blocks; this estimate says 0.13 and 0.54 GB of activations, on the safe side.
inline int64_t vae_peak_bytes(const VaeConfig& c, int64_t h, int64_t w) {
  return 4 * c.block_out_channels.front() * h * w * static_cast<int64_t>(sizeof(float));
}

// The tile size (pixels) for an image of h×w: 0 (untiled) when it fits the budget.
inline int64_t choose_tile(const VaeConfig& c, int64_t h, int64_t w, const VaeRunOptions& o) {
  const int64_t f = c.downsample_factor();
  if (o.tile > 0) {
    if (o.tile % f != 0 || o.tile < 2 * f) fail<UsageError>("tile size ", o.tile, " must be a multiple of ", f, " and at least ", 2 * f);
    return o.tile >= std::max(h, w) ? 0 : o.tile;
  }
  if (vae_peak_bytes(c, h, w) <= o.memory_budget) return 0;
  int64_t t = 64;
  while (vae_peak_bytes(c, t + 64, t + 64) <= o.memory_budget) t += 64;
  return std::max<int64_t>(t, 64) / f * f;
}

// Overlap between tiles: a quarter of the tile (diffusers' tile_overlap_factor 0.25), a multiple of f.
inline int64_t tile_overlap(int64_t tile, int64_t f) { return std::max(f, tile / 4 / f * f); }

// encode_tiled, decode_tiled and vae_roundtrip take any VAE with `config`, `encode`,
// `encode_moments` and `decode` on host f32 tensors: AutoencoderKL here, CudaAutoencoderKL<T>
// (models/vae_cuda.hpp) on a GPU, so both devices cut the same tiles and blend them the same way.

// Encode x [N, C, H, W] (multiples of f) to the posterior, tiled when tile > 0.
template <class Vae>
VaePosterior encode_tiled(const Vae& m, const Tensor& x, int64_t tile) {
  const int64_t f = m.config.downsample_factor();
  if (tile <= 0 || (tile >= x.size(2) && tile >= x.size(3))) return m.encode(x);
  return VaePosterior::from_moments(
      run_tiled(x, tile, tile_overlap(tile, f), 1, f, [&](const Tensor& t) { return m.encode_moments(t); }));
}

// Decode z [N, latent, h, w], tiled with tiles of tile/f latents when tile > 0.
template <class Vae>
Tensor decode_tiled(const Vae& m, const Tensor& z, int64_t tile) {
  const int64_t f = m.config.downsample_factor();
  if (tile <= 0 || (tile / f >= z.size(2) && tile / f >= z.size(3))) return m.decode(z);
  const int64_t lt = tile / f;
  return run_tiled(z, lt, std::max<int64_t>(1, tile_overlap(tile, f) / f), f, 1, [&](const Tensor& t) { return m.decode(t); });
}

// The UAR/RAID round trip on x [N, 3, H, W] in [−1, 1], any H and W: reflect-pad to f, encode,
// sample (seeded) or take the mean, decode, crop back. Not clamped.
template <class Vae>
Tensor vae_roundtrip(const Vae& m, const Tensor& x, const VaeRunOptions& o) {
  const int64_t h = x.size(2), w = x.size(3), f = m.config.downsample_factor();
  const Tensor padded = reflect_pad_to_multiple(x, f);
  const int64_t tile = choose_tile(m.config, padded.size(2), padded.size(3), o);
  const VaePosterior post = encode_tiled(m, padded, tile);
  const Tensor z = o.sample ? post.sample(o.seed) : post.mean;
  const Tensor y = decode_tiled(m, z, tile);
  return (y.size(2) == h && y.size(3) == w) ? y : y.slice(2, 0, h).slice(3, 0, w).contiguous();
}

}  // namespace genscope::models
