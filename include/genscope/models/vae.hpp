// genscope/models/vae.hpp — the Stable Diffusion v1.x/2.x VAE: diffusers' AutoencoderKL.
//
// The structs mirror diffusers' module tree (models/autoencoders/autoencoder_kl.py, vae.py,
// unets/unet_2d_blocks.py), so `encoder.down_blocks[1].resnets[0].conv_shortcut` is the weight
// `encoder.down_blocks.1.resnets.0.conv_shortcut.*`:
//
//   encode: x [N, 3, H, W] in [−1, 1]
//     Encoder: conv_in → down_blocks[i] (resnets, then — except the last — zero pad (0,1,0,1) and a
//              3×3 stride-2 conv) → mid_block (resnet, attention, resnet) → GroupNorm+SiLU → conv_out
//     quant_conv (1×1) → moments [N, 2·latent, H/f, W/f] = mean ‖ logvar;  logvar clamped to [−30, 20]
//   decode: z [N, latent, H/f, W/f]
//     post_quant_conv (1×1) → Decoder: conv_in → mid_block → up_blocks[i] (resnets, then — except the
//     last — nearest 2× upsampling and a 3×3 conv) → GroupNorm+SiLU → conv_out → [N, 3, H, W]
//
// f = 2^(number of blocks − 1) = 8 for SD. SD v1.4: block_out_channels [128, 256, 512, 512],
// 2 resnets per down block, 3 per up block, GroupNorm(32, eps 1e-6), 4 latent channels; the
// diffusion model sees latents × 0.18215 (scaling_factor, not applied by encode/decode here, as in
// diffusers). The configuration is read from the weight shapes (VaeConfig::from_weights), so other
// channel counts load too; groups, eps and the scaling factor are not in the shapes and keep SD's values.
//
// Sampling: DiagonalGaussianDistribution.sample() is mean + exp(logvar/2)·ε with ε from
// torch.randn; VaePosterior::sample(seed) draws ε exactly as torch.manual_seed(seed) followed by
// torch.randn would on the CPU (torch_randn below), so a seeded genscope run reproduces a seeded
// diffusers run.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/models/vae_layouts.hpp"
#include "genscope/nn/conv2d.hpp"
#include "genscope/nn/group_norm.hpp"
#include "genscope/nn/resnet_block.hpp"
#include "genscope/nn/vae_attention.hpp"

namespace genscope::models {

struct VaeConfig {
  int64_t in_channels = 3, out_channels = 3, latent_channels = 4;
  std::vector<int64_t> block_out_channels{128, 256, 512, 512};
  int64_t layers_per_block = 2;  // resnets per down block; up blocks have one more
  int64_t norm_num_groups = 32;
  float norm_eps = 1e-6f;
  float scaling_factor = 0.18215f;  // SD v1.x and v2.x
  bool use_quant_conv = true, use_post_quant_conv = true;

  // Spatial reduction of the encoder: 2 per downsampling block.
  int64_t downsample_factor() const { return int64_t{1} << (block_out_channels.size() - 1); }

  // Everything the shapes say: channel counts, number of blocks and of resnets per block.
  static VaeConfig from_weights(const VaeWeights& w) {
    VaeConfig c;
    const Tensor conv_in = w.get("encoder.conv_in.weight");
    if (conv_in.dim() != 4) fail<FormatError>(w.path(), ": '", w.key("encoder.conv_in.weight"), "' is ", conv_in.str(), "; expected a conv weight");
    c.in_channels = conv_in.size(1);
    c.block_out_channels.clear();
    while (w.has(cat("encoder.down_blocks.", c.block_out_channels.size(), ".resnets.0.conv1.weight")))
      c.block_out_channels.push_back(w.get(cat("encoder.down_blocks.", c.block_out_channels.size(), ".resnets.0.conv1.weight")).size(0));
    if (c.block_out_channels.empty()) fail<FormatError>(w.path(), ": no encoder down blocks ('", w.key("encoder.down_blocks.0.resnets.0.conv1.weight"), "')");
    c.layers_per_block = 0;
    while (w.has(cat("encoder.down_blocks.0.resnets.", c.layers_per_block, ".conv1.weight"))) ++c.layers_per_block;
    if (w.num_up_blocks() != static_cast<int64_t>(c.block_out_channels.size()))
      fail<FormatError>(w.path(), ": ", c.block_out_channels.size(), " encoder down blocks but ", w.num_up_blocks(), " decoder up blocks");
    c.out_channels = w.get("decoder.conv_out.weight").size(0);
    c.latent_channels = w.get("decoder.conv_in.weight").size(1);
    c.use_quant_conv = w.has("quant_conv.weight");
    c.use_post_quant_conv = w.has("post_quant_conv.weight");
    return c;
  }
};

// torch.randn(shape) after torch.manual_seed(seed), on the CPU, f32. PyTorch's CPU generator is
// mt19937 (at::mt19937, std::mt19937's algorithm); a float uniform takes the low 24 bits of one
// 32-bit draw × 2⁻²⁴; randn of ≥ 16 contiguous floats fills all uniforms first, then Box–Muller
// on each block of 16 (u1 = 1 − d[j], u2 = d[j+8] for j < 8), redoing the last 16 with fresh
// uniforms when the size is not a multiple of 16 (aten/src/ATen/native/cpu/DistributionTemplates.h,
// normal_fill / normal_fill_16). Below 16 elements torch takes another path; genscope pads to 16
// draws there, so tiny latents (images under 16×16 pixels) are seeded but not torch's.
inline Tensor torch_randn(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::F32);
  const int64_t n = t.numel();
  std::mt19937 engine(static_cast<std::mt19937::result_type>(seed & 0xffffffffu));
  auto uniform = [&] { return static_cast<float>((engine() & ((1u << 24) - 1)) * (1.0 / (1u << 24))); };
  auto box_muller16 = [](float* d) {
    for (int j = 0; j < 8; ++j) {
      const float u1 = 1.0f - d[j], u2 = d[j + 8];
      const float radius = std::sqrt(-2.0f * std::log(u1));
      const float theta = static_cast<float>(2.0 * 3.14159265358979323846 * u2);
      d[j] = radius * std::cos(theta);
      d[j + 8] = radius * std::sin(theta);
    }
  };
  if (n < 16) {
    float buf[16];
    for (float& v : buf) v = uniform();
    box_muller16(buf);
    std::copy(buf, buf + n, t.data<float>());
    return t;
  }
  float* d = t.data<float>();
  for (int64_t i = 0; i < n; ++i) d[i] = uniform();
  for (int64_t i = 0; i + 16 <= n; i += 16) box_muller16(d + i);
  if (n % 16 != 0) {
    float* tail = d + n - 16;
    for (int j = 0; j < 16; ++j) tail[j] = uniform();
    box_muller16(tail);
  }
  return t;
}

// DiagonalGaussianDistribution: the encoder's posterior over latents.
struct VaePosterior {
  Tensor mean;    // [N, latent, h, w]
  Tensor logvar;  // same, clamped to [−30, 20]

  // The posterior mean, diffusers' latent_dist.mode().
  const Tensor& mode() const { return mean; }

  // mean + exp(logvar / 2) · ε, ε = torch_randn(mean's shape, seed).
  Tensor sample(uint64_t seed) const {
    Tensor eps = torch_randn(mean.shape(), seed);
    const float* m = mean.data<float>();
    const float* lv = logvar.data<float>();
    float* e = eps.data<float>();
    for (int64_t i = 0; i < eps.numel(); ++i) e[i] = m[i] + std::exp(0.5f * lv[i]) * e[i];
    return eps;
  }

  // Split quant_conv's moments [N, 2L, h, w] into mean and clamped logvar (contiguous copies).
  static VaePosterior from_moments(const Tensor& moments) {
    const int64_t l = moments.size(1) / 2;
    VaePosterior p;
    p.mean = moments.slice(1, 0, l).clone();
    p.logvar = moments.slice(1, l, 2 * l).clone();
    float* lv = p.logvar.data<float>();
    for (int64_t i = 0; i < p.logvar.numel(); ++i) lv[i] = std::clamp(lv[i], -30.0f, 20.0f);
    return p;
  }
};

// UNetMidBlock2D as the VAE uses it: resnet, attention (one head), resnet.
struct VaeMidBlock {
  std::vector<nn::ResnetBlock2D> resnets;  // 2
  nn::VaeAttention attention;              // attentions.0

  static VaeMidBlock load(const VaeWeights& w, int64_t channels, const VaeConfig& c) {
    VaeMidBlock m;
    m.resnets.push_back(nn::ResnetBlock2D::load(w.scope("resnets.0"), channels, channels, c.norm_num_groups, c.norm_eps));
    m.attention = nn::VaeAttention::load(w.scope("attentions.0"), channels, c.norm_num_groups, c.norm_eps);
    m.resnets.push_back(nn::ResnetBlock2D::load(w.scope("resnets.1"), channels, channels, c.norm_num_groups, c.norm_eps));
    return m;
  }
  Tensor operator()(Tensor x) const {
    x = resnets[0](std::move(x));
    x = attention(std::move(x));
    return resnets[1](std::move(x));
  }
};

// DownEncoderBlock2D: resnets, then Downsample2D (zero pad right/bottom by 1, 3×3 stride-2 conv).
struct DownEncoderBlock2D {
  std::vector<nn::ResnetBlock2D> resnets;
  std::optional<nn::Conv2d> downsampler;  // downsamplers.0.conv

  Tensor operator()(Tensor x) const {
    for (const auto& r : resnets) x = r(std::move(x));
    if (downsampler) x = (*downsampler)(x);
    return x;
  }
};

// Upsample2D (diffusers resnet.py): F.interpolate(x, scale_factor=2, mode="nearest"), then a 3×3
// conv with padding 1. The conv reads x through the upsampling (ops::ConvFusion::upsample), so the
// 4× larger upsampled tensor (268 MB for SD at 512²) is never built.
inline Tensor upsample2x_conv3x3(const nn::Conv2d& conv, const Tensor& x) { return conv(x, ops::ConvFusion{.upsample = 2}); }

// UpDecoderBlock2D: resnets, then Upsample2D (nearest 2×, 3×3 conv).
struct UpDecoderBlock2D {
  std::vector<nn::ResnetBlock2D> resnets;
  std::optional<nn::Conv2d> upsampler;  // upsamplers.0.conv

  Tensor operator()(Tensor x) const {
    for (const auto& r : resnets) x = r(std::move(x));
    if (upsampler) x = upsample2x_conv3x3(*upsampler, x);
    return x;
  }
};

struct VaeEncoder {
  nn::Conv2d conv_in;
  std::vector<DownEncoderBlock2D> down_blocks;
  VaeMidBlock mid_block;
  nn::GroupNorm conv_norm_out;
  nn::Conv2d conv_out;

  static VaeEncoder load(const VaeWeights& w, const VaeConfig& c) {
    VaeEncoder e;
    const auto& ch = c.block_out_channels;
    const auto same = ops::Conv2dParams::make(1, 1);
    e.conv_in = nn::Conv2d::load(w, "conv_in", c.in_channels, ch[0], 3, same);
    int64_t out = ch[0];
    for (size_t i = 0; i < ch.size(); ++i) {
      const int64_t in = out;
      out = ch[i];
      const VaeWeights b = w.scope(cat("down_blocks.", i));
      DownEncoderBlock2D block;
      for (int64_t j = 0; j < c.layers_per_block; ++j)
        block.resnets.push_back(nn::ResnetBlock2D::load(b.scope(cat("resnets.", j)), j == 0 ? in : out, out, c.norm_num_groups, c.norm_eps));
      if (i + 1 < ch.size()) {
        // diffusers Downsample2D with padding=0: F.pad(x, (0, 1, 0, 1)) then a stride-2 conv.
        ops::Conv2dParams down;
        down.stride_h = down.stride_w = 2;
        down.pad_bottom = down.pad_right = 1;
        block.downsampler = nn::Conv2d::load(b, "downsamplers.0.conv", out, out, 3, down);
      }
      e.down_blocks.push_back(std::move(block));
    }
    e.mid_block = VaeMidBlock::load(w.scope("mid_block"), ch.back(), c);
    e.conv_norm_out = nn::GroupNorm::load(w, "conv_norm_out", ch.back(), c.norm_num_groups, c.norm_eps);
    e.conv_out = nn::Conv2d::load(w, "conv_out", ch.back(), 2 * c.latent_channels, 3, same);
    return e;
  }

  // after_block (if set) runs after each down block and the mid block (AutoencoderKL releases the
  // weight pages there).
  Tensor operator()(const Tensor& x, const std::function<void()>& after_block = {}) const {
    Tensor h = conv_in(x);
    for (const auto& b : down_blocks) {
      h = b(std::move(h));
      if (after_block) after_block();
    }
    h = mid_block(std::move(h));
    if (after_block) after_block();
    return conv_out(conv_norm_out.apply(std::move(h), /*silu=*/true));
  }
};

struct VaeDecoder {
  nn::Conv2d conv_in;
  VaeMidBlock mid_block;
  std::vector<UpDecoderBlock2D> up_blocks;
  nn::GroupNorm conv_norm_out;
  nn::Conv2d conv_out;

  static VaeDecoder load(const VaeWeights& w, const VaeConfig& c) {
    VaeDecoder d;
    const auto& ch = c.block_out_channels;
    const auto same = ops::Conv2dParams::make(1, 1);
    d.conv_in = nn::Conv2d::load(w, "conv_in", c.latent_channels, ch.back(), 3, same);
    d.mid_block = VaeMidBlock::load(w.scope("mid_block"), ch.back(), c);
    int64_t out = ch.back();
    for (size_t i = 0; i < ch.size(); ++i) {
      const int64_t in = out;
      out = ch[ch.size() - 1 - i];
      const VaeWeights b = w.scope(cat("up_blocks.", i));
      UpDecoderBlock2D block;
      for (int64_t j = 0; j <= c.layers_per_block; ++j)
        block.resnets.push_back(nn::ResnetBlock2D::load(b.scope(cat("resnets.", j)), j == 0 ? in : out, out, c.norm_num_groups, c.norm_eps));
      if (i + 1 < ch.size()) block.upsampler = nn::Conv2d::load(b, "upsamplers.0.conv", out, out, 3, same);
      d.up_blocks.push_back(std::move(block));
    }
    d.conv_norm_out = nn::GroupNorm::load(w, "conv_norm_out", ch[0], c.norm_num_groups, c.norm_eps);
    d.conv_out = nn::Conv2d::load(w, "conv_out", ch[0], c.out_channels, 3, same);
    return d;
  }

  // after_block as VaeEncoder's: after the mid block and each up block.
  Tensor operator()(const Tensor& z, const std::function<void()>& after_block = {}) const {
    Tensor h = conv_in(z);
    h = mid_block(std::move(h));
    if (after_block) after_block();
    for (const auto& b : up_blocks) {
      h = b(std::move(h));
      if (after_block) after_block();
    }
    return conv_out(conv_norm_out.apply(std::move(h), /*silu=*/true));
  }
};

class AutoencoderKL {
 public:
  VaeConfig config;
  VaeEncoder encoder;
  VaeDecoder decoder;
  std::optional<nn::Conv2d> quant_conv, post_quant_conv;  // 1×1

  // Drop the weight file's pages from the resident set after each block of the encoder and the
  // decoder (MappedFile::release_resident_pages): the next block's weights are mapped again from
  // the page cache as it reads them (minor faults), so a pass holds one block's weights (≤ 42 MB,
  // the mid block) rather than all 335 MB of SD's f32 file — most of genscope's peak RSS at 256².
  // The VAE never writes its weights; turn this off before editing them in place.
  bool release_weight_pages = true;

  // Loads any supported layout (diffusers, legacy attention names, original single-file).
  static AutoencoderKL load(const std::string& path) { return load(VaeWeights::open(path)); }

  static AutoencoderKL load(const VaeWeights& w) {
    AutoencoderKL m;
    m.layout_ = w.layout();
    m.weights_.emplace(w);
    m.config = VaeConfig::from_weights(w);
    const VaeConfig& c = m.config;
    m.encoder = VaeEncoder::load(w.scope("encoder"), c);
    m.decoder = VaeDecoder::load(w.scope("decoder"), c);
    const auto point = ops::Conv2dParams::make(1, 0);
    if (c.use_quant_conv) m.quant_conv = nn::Conv2d::load(w, "quant_conv", 2 * c.latent_channels, 2 * c.latent_channels, 1, point);
    if (c.use_post_quant_conv) m.post_quant_conv = nn::Conv2d::load(w, "post_quant_conv", c.latent_channels, c.latent_channels, 1, point);
    return m;
  }

  VaeLayout layout() const { return layout_; }

  // x [N, in, H, W] f32 in [−1, 1], H and W multiples of downsample_factor() (models/vae_tiling.hpp
  // pads other sizes). Returns mean ‖ logvar, unclamped: [N, 2·latent, H/f, W/f].
  Tensor encode_moments(const Tensor& x) const {
    check_input(x, config.in_channels, config.downsample_factor(), "encode");
    Tensor h = encoder(x, block_done());
    return quant_conv ? (*quant_conv)(h) : h;
  }

  VaePosterior encode(const Tensor& x) const { return VaePosterior::from_moments(encode_moments(x)); }

  // z [N, latent, h, w] → image [N, out, f·h, f·w], roughly in [−1, 1] (not clamped).
  Tensor decode(const Tensor& z) const {
    check_input(z, config.latent_channels, 1, "decode");
    return decoder(post_quant_conv ? (*post_quant_conv)(z) : z.contiguous(), block_done());
  }

 private:
  std::function<void()> block_done() const {
    if (!release_weight_pages || !weights_) return {};
    return [this] { weights_->release_resident_pages(); };
  }

  void check_input(const Tensor& x, int64_t channels, int64_t multiple, const char* what) const {
    if (x.dim() != 4 || x.size(1) != channels || x.dtype() != DType::F32)
      fail<ShapeError>("AutoencoderKL::", what, ": input is ", x.str(), "; expected f32[N, ", channels, ", H, W]");
    if (x.size(2) % multiple != 0 || x.size(3) % multiple != 0 || x.size(2) == 0 || x.size(3) == 0)
      fail<ShapeError>("AutoencoderKL::", what, ": input ", x.str(), " is not a positive multiple of ", multiple,
                       " in height and width; pad it (models/vae_tiling.hpp) first");
  }

  VaeLayout layout_ = VaeLayout::Diffusers;
  std::optional<VaeWeights> weights_;  // the checkpoint the tensors view, for release_weight_pages
};

}  // namespace genscope::models
