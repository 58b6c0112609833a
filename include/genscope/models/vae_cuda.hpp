// genscope/models/vae_cuda.hpp — the SD VAE (models/vae.hpp, diffusers' AutoencoderKL) on one GPU.
//
//   models::AutoencoderKL cpu = models::AutoencoderKL::load("sd14.safetensors");
//   models::CudaAutoencoderKL<float> gpu(cpu);          // weights uploaded once; `cpu` may go
//   Tensor y = models::vae_roundtrip(gpu, x, {.seed = 0});   // host f32 in and out, as the CPU path
//
// The device model is built from a loaded CPU model (its module tree, models/vae.hpp), so every
// checkpoint layout the CPU path reads runs here too. Storage is T = float, f16 or bf16 for
// weights and activations, with f32 accumulation everywhere; norm parameters and the attention's
// biases stay f32 (the kernels read them so). Per op:
//   convolutions      cuDNN (cuda/cudnn.hpp), NCHW, FMA math for f32 (no TF32: the CPU path's numerics)
//   (0, 1, 0, 1) pad  diffusers Downsample2D pads only bottom and right, which cuDNN's symmetric
//                     descriptor cannot say: an explicit kernels::pad_bottom_right, then pad 0
//   GroupNorm(+SiLU)  kernels::group_norm_split (kernels/vae.cuh), SiLU fused: each group spread
//                     over many blocks, where groupnorm.cuh's block per group would keep 32 SMs busy
//   mid attention     GroupNorm, q/k/v = tokens·Wᵀ + b by cuBLASLt reading the [C, H·W] map as
//                     tokens [H·W, C] (transposed operand, no copy), kernels/attention.cuh with one
//                     head of D = C (512 for SD: 136 KiB of shared memory, which kernels::launch opts
//                     into with cudaFuncSetAttribute), then W_out·Oᵀ straight back to [C, H·W] and
//                     kernels::add_bias_residual for + b + x
//   upsampling        kernels::upsample_nearest2x, then the 3×3 conv (the 4× map exists whole here)
//   residual adds     kernels::add_bias_residual
// Activations come from the stream-ordered pool (cuda/memory_pool.hpp) and go back as soon as
// the next one exists, as the CPU path releases them (nn/resnet_block.hpp), so a steady state
// allocates nothing from the driver.
//
// What stays on the host, exactly as the CPU path does it, so both devices give the same image:
// the reflect pad to a multiple of f and the crop (models/vae_tiling.hpp), the tile plan and the
// blending (run_tiled: tiles go through the device model one by one), the posterior's clamp and
// its seeded sample (VaePosterior::sample: torch_randn on the host, the latents are small).
//
// Only for translation units nvcc compiles (.cu) in a GENSCOPE_CUDA build: it launches kernels.
// Such a .cu must not call genscope's CPU ops (ops/*.hpp): nvcc builds them without the -march
// of g++ files, and one program holding both builds of an inline function keeps only one of them.
#pragma once

#if !defined(__CUDACC__)
#error "genscope/models/vae_cuda.hpp launches CUDA kernels: include it only from a .cu file compiled by nvcc (GENSCOPE_CUDA=ON)"
#endif
#if !defined(GENSCOPE_WITH_CUDA)
#error "genscope/models/vae_cuda.hpp needs genscope built with its CUDA backend (GENSCOPE_CUDA=ON)"
#endif

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/cuda/blas.hpp"
#include "genscope/cuda/cudnn.hpp"
#include "genscope/cuda/memory_pool.hpp"
#include "genscope/cuda/runtime.hpp"
#include "genscope/models/vae.hpp"
#include "genscope/models/vae_tiling.hpp"
#include "kernels/attention.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/vae.cuh"

namespace genscope::models {

namespace vae_cuda_detail {

template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::F32;
  else if constexpr (std::is_same_v<T, f16>) return DType::F16;
  else return DType::BF16;
}
template <class T>
constexpr cuda::GemmPrecision gemm_precision_of() {
  if constexpr (std::is_same_v<T, float>) return cuda::GemmPrecision::F32;
  else if constexpr (std::is_same_v<T, f16>) return cuda::GemmPrecision::F16;
  else return cuda::GemmPrecision::BF16;
}

// A copy of host tensor `t` in `dtype` on the device; undefined tensor → empty buffer.
inline cuda::DeviceBuffer upload(const Tensor& t, DType dtype, cudaStream_t stream) {
  if (!t.defined()) return {};
  if (t.device() != Device::CPU) fail<DeviceError>("CudaAutoencoderKL: weight ", t.str(), " is not a host tensor");
  const Tensor host = t.contiguous().to(dtype);
  cuda::DeviceBuffer d(host.nbytes(), stream);
  GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(d.data(), host.data_ptr(), host.nbytes(), cudaMemcpyHostToDevice, stream));
  GENSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream));  // `host` is freed on return
  return d;
}

struct Conv {
  cuda::DeviceBuffer weight, bias;  // T [out, in/groups, r, s], T [out] or empty
  int out = 0, in = 0, r = 0, s = 0, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1;
  int extra_bottom = 0, extra_right = 0;  // padded explicitly beyond cuDNN's symmetric pad_h/pad_w
};

struct Norm {
  cuda::DeviceBuffer gamma, beta;  // f32 [C]
  int64_t groups = 32;
  float eps = 1e-6f;
};

struct Resnet {
  Norm norm1, norm2;
  Conv conv1, conv2;
  std::optional<Conv> conv_shortcut;
};

struct Attention {
  Norm group_norm;
  cuda::DeviceBuffer to_q_w, to_k_w, to_v_w, to_out_w;  // T [C, C]
  cuda::DeviceBuffer to_q_b, to_k_b, to_v_b, to_out_b;  // f32 [C]
  int64_t channels = 0;
};

struct MidBlock {
  Resnet resnet0, resnet1;
  Attention attention;
};

struct Block {  // a down block (resample = the stride-2 conv) or an up block (resample = the conv after 2× upsampling)
  std::vector<Resnet> resnets;
  std::optional<Conv> resample;
};

}  // namespace vae_cuda_detail

// The current CUDA device; when none is usable, a DeviceError from `who` naming the reason
// (no driver, no GPU, ...), so callers can refuse `--device cuda` before loading anything.
inline int require_cuda_device(const char* who) {
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    cudaGetLastError();  // clear the error so later calls report their own
    fail<DeviceError>(who, ": no usable CUDA device: ", cudaGetErrorString(rc));
  }
  if (count == 0) fail<DeviceError>(who, ": no CUDA device in this machine");
  return cuda::current_device();
}

// The VAE on the current CUDA device (at construction) with storage type T (float, f16, bf16).
// encode_moments/encode/decode take and return host f32 tensors, as AutoencoderKL's do, and are
// synchronous; one instance serves one host thread at a time.
template <kernels::StorageType T>
class CudaAutoencoderKL {
 public:
  VaeConfig config;

  explicit CudaAutoencoderKL(const AutoencoderKL& m) : config(m.config) {
    using namespace vae_cuda_detail;
    encoder_conv_in_ = conv(m.encoder.conv_in, "encoder.conv_in");
    // Down and up blocks alike: their resnets, then the resampling conv (`resampler`) if present.
    const auto blocks = [&](const auto& cpu_blocks, const char* scope, auto resampler, const char* resample_key) {
      std::vector<Block> out;
      for (size_t i = 0; i < cpu_blocks.size(); ++i) {
        const auto& b = cpu_blocks[i];
        Block block;
        for (size_t j = 0; j < b.resnets.size(); ++j) block.resnets.push_back(resnet(b.resnets[j], cat(scope, ".", i, ".resnets.", j)));
        if (b.*resampler) block.resample = conv(*(b.*resampler), cat(scope, ".", i, ".", resample_key));
        out.push_back(std::move(block));
      }
      return out;
    };
    down_blocks_ = blocks(m.encoder.down_blocks, "encoder.down_blocks", &DownEncoderBlock2D::downsampler, "downsamplers.0.conv");
    encoder_mid_ = mid(m.encoder.mid_block, "encoder.mid_block");
    encoder_norm_out_ = norm(m.encoder.conv_norm_out);
    encoder_conv_out_ = conv(m.encoder.conv_out, "encoder.conv_out");
    if (m.quant_conv) quant_conv_ = conv(*m.quant_conv, "quant_conv");
    if (m.post_quant_conv) post_quant_conv_ = conv(*m.post_quant_conv, "post_quant_conv");
    decoder_conv_in_ = conv(m.decoder.conv_in, "decoder.conv_in");
    decoder_mid_ = mid(m.decoder.mid_block, "decoder.mid_block");
    up_blocks_ = blocks(m.decoder.up_blocks, "decoder.up_blocks", &UpDecoderBlock2D::upsampler, "upsamplers.0.conv");
    decoder_norm_out_ = norm(m.decoder.conv_norm_out);
    decoder_conv_out_ = conv(m.decoder.conv_out, "decoder.conv_out");
    stream_.synchronize();
  }
  CudaAutoencoderKL(const CudaAutoencoderKL&) = delete;
  CudaAutoencoderKL& operator=(const CudaAutoencoderKL&) = delete;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_.get(); }
  // Device bytes of the uploaded weights.
  size_t weight_bytes() const { return weight_bytes_; }

  // x [N, in, H, W] host f32 in [−1, 1], H and W multiples of downsample_factor(). Returns the
  // moments mean ‖ logvar, unclamped, [N, 2·latent, H/f, W/f] on the host (AutoencoderKL::encode_moments).
  Tensor encode_moments(const Tensor& x) const {
    check_input(x, config.in_channels, config.downsample_factor(), "encode");
    const cuda::DeviceGuard guard(device_);
    FeatureMap h = conv(encoder_conv_in_, to_device(x));
    for (const auto& b : down_blocks_) {
      for (const auto& r : b.resnets) h = resnet(r, h);
      if (b.resample) h = conv(*b.resample, h);
    }
    h = mid(encoder_mid_, h);
    h = conv(encoder_conv_out_, group_norm(encoder_norm_out_, h, true));
    if (quant_conv_) h = conv(*quant_conv_, h);
    return to_host(h);
  }

  VaePosterior encode(const Tensor& x) const { return VaePosterior::from_moments(encode_moments(x)); }

  // z [N, latent, h, w] host f32 → image [N, out, f·h, f·w] host f32, not clamped (AutoencoderKL::decode).
  Tensor decode(const Tensor& z) const {
    check_input(z, config.latent_channels, 1, "decode");
    const cuda::DeviceGuard guard(device_);
    FeatureMap h = to_device(z);
    if (post_quant_conv_) h = conv(*post_quant_conv_, h);
    h = conv(decoder_conv_in_, h);
    h = mid(decoder_mid_, h);
    for (const auto& b : up_blocks_) {
      for (const auto& r : b.resnets) h = resnet(r, h);
      if (b.resample) {
        FeatureMap up = alloc(h.n, h.c, 2 * h.h, 2 * h.w);
        kernels::upsample_nearest2x(h.data(), up.data(), h.n * h.c, h.h, h.w, stream());
        h = FeatureMap{};
        h = conv(*b.resample, up);
      }
    }
    h = conv(decoder_conv_out_, group_norm(decoder_norm_out_, h, true));
    return to_host(h);
  }

 private:
  // An activation [n, c, h, w] of T on the device, from the pool.
  struct FeatureMap {
    cuda::DeviceBuffer buffer;
    int64_t n = 0, c = 0, h = 0, w = 0;
    int64_t numel() const { return n * c * h * w; }
    T* data() const { return buffer.as<T>(); }
  };

  // ---- upload (constructor) -----------------------------------------------------------------
  vae_cuda_detail::Conv conv(const nn::Conv2d& c, const std::string& name) {
    vae_cuda_detail::Conv d;
    const ops::Conv2dParams& p = c.params;
    if (c.weight.dim() != 4) fail<ShapeError>("CudaAutoencoderKL: ", name, ".weight is ", c.weight.str(), "; expected [out, in, kh, kw]");
    // cuDNN pads symmetrically; a larger bottom/right pad (Downsample2D's (0, 1, 0, 1)) is made up explicitly.
    if (p.pad_bottom < p.pad_top || p.pad_right < p.pad_left)
      fail<ShapeError>("CudaAutoencoderKL: ", name, " pads more at the top or left than at the bottom or right; not supported");
    d.out = static_cast<int>(c.weight.size(0));
    d.in = static_cast<int>(c.weight.size(1) * p.groups);
    d.r = static_cast<int>(c.weight.size(2));
    d.s = static_cast<int>(c.weight.size(3));
    d.stride_h = static_cast<int>(p.stride_h);
    d.stride_w = static_cast<int>(p.stride_w);
    d.pad_h = static_cast<int>(p.pad_top);
    d.pad_w = static_cast<int>(p.pad_left);
    d.extra_bottom = static_cast<int>(p.pad_bottom - p.pad_top);
    d.extra_right = static_cast<int>(p.pad_right - p.pad_left);
    d.dilation_h = static_cast<int>(p.dilation_h);
    d.dilation_w = static_cast<int>(p.dilation_w);
    d.groups = static_cast<int>(p.groups);
    d.weight = upload(c.weight, kDType);
    d.bias = upload(c.bias, kDType);  // cuDNN adds a bias of the data's type
    return d;
  }
  vae_cuda_detail::Norm norm(const nn::GroupNorm& n) {
    vae_cuda_detail::Norm d;
    d.gamma = upload(n.weight, DType::F32);
    d.beta = upload(n.bias, DType::F32);
    d.groups = n.groups;
    d.eps = n.eps;
    return d;
  }
  vae_cuda_detail::Resnet resnet(const nn::ResnetBlock2D& r, const std::string& name) {
    vae_cuda_detail::Resnet d;
    d.norm1 = norm(r.norm1);
    d.conv1 = conv(r.conv1, name + ".conv1");
    d.norm2 = norm(r.norm2);
    d.conv2 = conv(r.conv2, name + ".conv2");
    if (r.conv_shortcut.weight.defined()) d.conv_shortcut = conv(r.conv_shortcut, name + ".conv_shortcut");
    return d;
  }
  vae_cuda_detail::MidBlock mid(const VaeMidBlock& m, const std::string& name) {
    if (m.resnets.size() != 2) fail<ShapeError>("CudaAutoencoderKL: ", name, " has ", m.resnets.size(), " resnets; expected 2");
    vae_cuda_detail::MidBlock d;
    d.resnet0 = resnet(m.resnets[0], name + ".resnets.0");
    d.resnet1 = resnet(m.resnets[1], name + ".resnets.1");
    const nn::VaeAttention& a = m.attention;
    d.attention.group_norm = norm(a.group_norm);
    d.attention.channels = a.to_q_w.size(0);
    if (d.attention.channels > 512)
      fail<ShapeError>("CudaAutoencoderKL: ", name, ".attentions.0 attends over ", d.attention.channels,
                       " channels; kernels/attention.cuh takes head dims up to 512");
    d.attention.to_q_w = upload(a.to_q_w, kDType);
    d.attention.to_k_w = upload(a.to_k_w, kDType);
    d.attention.to_v_w = upload(a.to_v_w, kDType);
    d.attention.to_out_w = upload(a.to_out_w, kDType);
    d.attention.to_q_b = upload(a.to_q_b, DType::F32);
    d.attention.to_k_b = upload(a.to_k_b, DType::F32);
    d.attention.to_v_b = upload(a.to_v_b, DType::F32);
    d.attention.to_out_b = upload(a.to_out_b, DType::F32);
    return d;
  }
  cuda::DeviceBuffer upload(const Tensor& t, DType dtype) {
    cuda::DeviceBuffer d = vae_cuda_detail::upload(t, dtype, stream());
    weight_bytes_ += d.bytes();
    return d;
  }

  // ---- forward pieces ------------------------------------------------------------------------
  FeatureMap alloc(int64_t n, int64_t c, int64_t h, int64_t w) const {
    FeatureMap f;
    f.buffer = cuda::DeviceBuffer(static_cast<size_t>(n * c * h * w) * sizeof(T), stream(), device_);
    f.n = n;
    f.c = c;
    f.h = h;
    f.w = w;
    return f;
  }

  FeatureMap conv(const vae_cuda_detail::Conv& c, const FeatureMap& x) const {
    if (x.c != c.in) fail<ShapeError>("CudaAutoencoderKL: a conv of ", c.in, " input channels got ", x.c);
    const T* src = x.data();
    FeatureMap padded;
    if (c.extra_bottom > 0 || c.extra_right > 0) {
      padded = alloc(x.n, x.c, x.h + c.extra_bottom, x.w + c.extra_right);
      kernels::pad_bottom_right(x.data(), padded.data(), x.n * x.c, x.h, x.w, c.extra_bottom, c.extra_right, stream());
      src = padded.data();
    }
    cuda::Conv2dShape s{static_cast<int>(x.n), c.in, static_cast<int>(x.h + c.extra_bottom), static_cast<int>(x.w + c.extra_right),
                        c.out, c.r, c.s};
    s.stride_h = c.stride_h;
    s.stride_w = c.stride_w;
    s.pad_h = c.pad_h;
    s.pad_w = c.pad_w;
    s.dilation_h = c.dilation_h;
    s.dilation_w = c.dilation_w;
    s.groups = c.groups;
    FeatureMap y = alloc(x.n, c.out, s.out_h(), s.out_w());
    cuda::conv2d(s, kDType, src, c.weight.data(), c.bias.data(), y.data(), stream(), /*allow_tf32=*/false);
    return y;
  }

  FeatureMap group_norm(const vae_cuda_detail::Norm& g, const FeatureMap& x, bool silu) const {
    FeatureMap y = alloc(x.n, x.c, x.h, x.w);
    const int64_t spatial = x.h * x.w;
    const int64_t workspace_floats = kernels::group_norm_split_workspace(x.n, x.c, spatial, g.groups);
    const cuda::DeviceBuffer workspace(sizeof(float) * static_cast<size_t>(workspace_floats), stream(), device_);
    kernels::group_norm_split<T>(x.data(), g.gamma.template as<float>(), g.beta.template as<float>(), y.data(), x.n, x.c, spatial,
                                 g.groups, g.eps, silu ? kernels::Activation::Silu : kernels::Activation::None, workspace.as<float>(),
                                 stream());
    return y;
  }

  // diffusers ResnetBlock2D (nn/resnet_block.hpp): shortcut(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x)))))).
  FeatureMap resnet(const vae_cuda_detail::Resnet& r, const FeatureMap& x) const {
    FeatureMap t = group_norm(r.norm1, x, true);
    FeatureMap h = conv(r.conv1, t);
    t = group_norm(r.norm2, h, true);
    h = FeatureMap{};
    h = conv(r.conv2, t);
    t = FeatureMap{};
    if (r.conv_shortcut) {
      const FeatureMap s = conv(*r.conv_shortcut, x);
      kernels::add_bias_residual(h.data(), nullptr, s.data(), h.n, h.c, h.h * h.w, stream());
    } else {
      kernels::add_bias_residual(h.data(), nullptr, x.data(), h.n, h.c, h.h * h.w, stream());
    }
    return h;
  }

  // diffusers Attention, one head of C channels (nn/vae_attention.hpp): x + to_out(softmax(q·kᵀ/√C)·v).
  FeatureMap attention(const vae_cuda_detail::Attention& a, const FeatureMap& x) const {
    const int64_t c = x.c, hw = x.h * x.w;
    if (c != a.channels) fail<ShapeError>("CudaAutoencoderKL: attention over ", a.channels, " channels got ", c);
    const FeatureMap t = group_norm(a.group_norm, x, false);
    FeatureMap out = alloc(x.n, x.c, x.h, x.w);
    const size_t token_bytes = static_cast<size_t>(hw * c) * sizeof(T);
    const cuda::DeviceBuffer q(token_bytes, stream(), device_), k(token_bytes, stream(), device_), v(token_bytes, stream(), device_),
        o(token_bytes, stream(), device_);
    constexpr cuda::GemmPrecision precision = vae_cuda_detail::gemm_precision_of<T>();
    for (int64_t b = 0; b < x.n; ++b) {
      // tokens [HW, C] = the normalised map [C, HW] transposed: op(A) = Aᵀ with lda = HW.
      const T* tokens = t.data() + b * c * hw;
      auto project = [&](const cuda::DeviceBuffer& w, const cuda::DeviceBuffer& bias, const cuda::DeviceBuffer& dst) {
        cuda::gemm(ops::Trans::Yes, ops::Trans::Yes, hw, c, c, 1.0f, tokens, hw, w.data(), c, 0.0f, dst.data(), c, precision, stream(),
                   bias.template as<float>());
      };
      project(a.to_q_w, a.to_q_b, q);
      project(a.to_k_w, a.to_k_b, k);
      project(a.to_v_w, a.to_v_b, v);
      kernels::attention<T>(q.as<T>(), k.as<T>(), v.as<T>(), o.as<T>(), 1, hw, hw, static_cast<int>(c),
                            1.0f / std::sqrt(static_cast<float>(c)), stream());
      // out[b] [C, HW] = W_out [C, C] · Oᵀ, then + b_out[c] + x[b]: channel-major without a transpose.
      T* ob = out.data() + b * c * hw;
      cuda::gemm(ops::Trans::No, ops::Trans::Yes, c, hw, c, 1.0f, a.to_out_w.data(), c, o.data(), c, 0.0f, ob, hw, precision, stream());
      kernels::add_bias_residual(ob, a.to_out_b.template as<float>(), x.data() + b * c * hw, 1, c, hw, stream());
    }
    return out;
  }

  FeatureMap mid(const vae_cuda_detail::MidBlock& m, const FeatureMap& x) const {
    FeatureMap h = resnet(m.resnet0, x);
    h = attention(m.attention, h);
    return resnet(m.resnet1, h);
  }

  // ---- host transfers --------------------------------------------------------------------------
  FeatureMap to_device(const Tensor& x_host) const {
    const Tensor x = x_host.contiguous();
    FeatureMap f = alloc(x.size(0), x.size(1), x.size(2), x.size(3));
    const size_t bytes = static_cast<size_t>(x.numel()) * sizeof(float);
    if constexpr (std::is_same_v<T, float>) {
      GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(f.data(), x.data_ptr(), bytes, cudaMemcpyHostToDevice, stream()));
    } else {
      const cuda::DeviceBuffer staging(bytes, stream(), device_);
      GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(staging.data(), x.data_ptr(), bytes, cudaMemcpyHostToDevice, stream()));
      kernels::cast<float, T>(staging.as<float>(), f.data(), x.numel(), stream());
    }
    stream_.synchronize();  // `x` may be a temporary contiguous copy
    return f;
  }

  Tensor to_host(const FeatureMap& f) const {
    Tensor y = Tensor::empty(Shape{f.n, f.c, f.h, f.w}, DType::F32);
    const size_t bytes = static_cast<size_t>(f.numel()) * sizeof(float);
    if constexpr (std::is_same_v<T, float>) {
      GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(y.data_ptr(), f.data(), bytes, cudaMemcpyDeviceToHost, stream()));
      stream_.synchronize();
    } else {
      const cuda::DeviceBuffer staging(bytes, stream(), device_);
      kernels::cast<T, float>(f.data(), staging.as<float>(), f.numel(), stream());
      GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(y.data_ptr(), staging.data(), bytes, cudaMemcpyDeviceToHost, stream()));
      stream_.synchronize();
    }
    return y;
  }

  // The CPU model's input rules (AutoencoderKL::check_input), with the same messages.
  void check_input(const Tensor& x, int64_t channels, int64_t multiple, const char* what) const {
    if (x.dim() != 4 || x.size(1) != channels || x.dtype() != DType::F32 || x.device() != Device::CPU)
      fail<ShapeError>("CudaAutoencoderKL::", what, ": input is ", x.str(), "; expected host f32[N, ", channels, ", H, W]");
    if (x.size(2) % multiple != 0 || x.size(3) % multiple != 0 || x.size(2) == 0 || x.size(3) == 0)
      fail<ShapeError>("CudaAutoencoderKL::", what, ": input ", x.str(), " is not a positive multiple of ", multiple,
                       " in height and width; pad it (models/vae_tiling.hpp) first");
  }

  static constexpr DType kDType = vae_cuda_detail::dtype_of<T>();

  int device_ = require_cuda_device("CudaAutoencoderKL");  // first: no stream is created without a GPU
  // Declared before the buffers, so destroyed after them: each buffer is freed on this stream.
  cuda::Stream stream_;
  size_t weight_bytes_ = 0;
  vae_cuda_detail::Conv encoder_conv_in_, encoder_conv_out_, decoder_conv_in_, decoder_conv_out_;
  std::optional<vae_cuda_detail::Conv> quant_conv_, post_quant_conv_;
  std::vector<vae_cuda_detail::Block> down_blocks_, up_blocks_;
  vae_cuda_detail::MidBlock encoder_mid_, decoder_mid_;
  vae_cuda_detail::Norm encoder_norm_out_, decoder_norm_out_;
};

// Any size, in tiles: models/vae_tiling.hpp's encode_tiled, decode_tiled and vae_roundtrip take
// a CudaAutoencoderKL as they take the CPU model (the same padding, tiles, blending, seeded
// host-side sample and crop).

}  // namespace genscope::models
