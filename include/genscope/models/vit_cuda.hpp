// genscope/models/vit_cuda.hpp — the Vision Transformers of models/vit.hpp on one GPU, and the
// feature pooling of models/vit_features.hpp after them. Only for translation units nvcc compiles
// (.cu): it launches genscope's kernels. g++ code reaches it through an interface compiled by nvcc
// (the CLI: tools/genscope/cuda_vit.hpp).
//
//   CudaVit v(cpu_vit, VitPrecision::F16);          weights uploaded once, from the loaded CPU model
//   VitTrace t = v.forward(pixels, {2, 5});         the CPU forward's outputs, as CPU f32 tensors
//   CudaVitFeatureExtractor f(cpu_extractor, p);    VitFeatureExtractor::features on the GPU
//
// Precisions (VitPrecision): the storage type of weights and activations, and the GEMM mode;
// every GEMM, LayerNorm, softmax and mean accumulates in f32 (the mean in double, as the CPU):
//   f32   f32 storage, f32 FMA GEMMs: the CPU forward's arithmetic (the parity tests: ≤ 1e-4)
//   tf32  f32 storage, tensor-core GEMMs on 10-bit-mantissa inputs
//   f16   f16 storage, tensor cores; the residual stream is f16 too (no f32 master copy), so the
//         error grows with depth: tests/gpu/test_gpu_vit.cu states the tolerance
//   bf16  bf16 storage, tensor cores; as f16 with 3 fewer mantissa bits
// LayerNorm's γ, β, the biases, the class token and the position table stay f32.
//
// One block, x [B·T, D] in place (the same steps as nn/attention_block.hpp):
//   h = LN₁(x)                            kernels::layer_norm
//   qkv = h·W_qkvᵀ + b                    cuBLASLt, bias in its epilogue
//   q, k, v = split_heads(qkv)            kernels/vit.cuh: [B, H, T, hd] each, contiguous
//   o = SDPA(q, k, v)                     kernels::attention (flash attention, f32 online softmax)
//   x += merge_heads(o)·W_projᵀ + b       cuBLASLt with beta = 1 on C = D = x: the residual add is
//                                         the GEMM's own accumulate, the bias its epilogue
//   h = LN₂(x)
//   u = act(h·W₁ᵀ + b₁)                   cuBLASLt (+ kernels::gemm_epilogue for GELU-erf and
//                                         quick-GELU, which cuBLASLt's epilogues lack)
//   x += u·W₂ᵀ + b₂                       cuBLASLt, beta = 1
// The patch embedding is kernels::patchify (im2col by patch) and one GEMM, as nn/patch_embed.hpp;
// the position table is computed on the CPU (VisionTransformer::position_table: sin-cos or the
// antialiased resampling) once per grid size and cached on the device.
//
// Pooling runs on the device too, so only the feature rows come back: the class token (a strided
// copy), the patch-token mean (kernels::mean_tokens), the final norm, CLIP's projection (a GEMM),
// and AIM's attention probe: AverageLayers + BatchNorm1d (kernels::layer_average, accumulated
// as the probe layers go by), k|v as one GEMM, the learned query against them (kernels::attention
// with one query row). Device memory comes from the stream-ordered pool (cuda/memory_pool.hpp),
// so a steady stream of batches allocates nothing from the driver.
#pragma once

#if !defined(__CUDACC__)
#error "genscope/models/vit_cuda.hpp launches genscope's CUDA kernels: include it from a .cu file compiled by nvcc"
#elif !defined(GENSCOPE_WITH_CUDA)
#error "genscope/models/vit_cuda.hpp needs the CUDA backend: build with GENSCOPE_CUDA=ON (defines GENSCOPE_WITH_CUDA)"
#else  // the rest only under nvcc with CUDA, so a wrong include stops at the one message above

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/cuda/blas.hpp"
#include "genscope/cuda/memory_pool.hpp"
#include "genscope/cuda/runtime.hpp"
#include "genscope/models/aim_head.hpp"
#include "genscope/models/vit.hpp"
#include "genscope/models/vit_features.hpp"
#include "kernels/attention.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/gemm.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/vit.cuh"

namespace genscope::models {

enum class VitPrecision { F32, TF32, F16, BF16 };

inline std::string_view vit_precision_name(VitPrecision p) {
  switch (p) {
    case VitPrecision::F32: return "f32";
    case VitPrecision::TF32: return "tf32";
    case VitPrecision::F16: return "f16";
    case VitPrecision::BF16: return "bf16";
  }
  return "?";
}

inline std::optional<VitPrecision> parse_vit_precision(std::string_view name) {
  for (VitPrecision p : {VitPrecision::F32, VitPrecision::TF32, VitPrecision::F16, VitPrecision::BF16})
    if (name == vit_precision_name(p)) return p;
  return std::nullopt;
}

namespace vit_cuda_detail {

using cuda::DeviceBuffer;

// DeviceError naming why no GPU can be used, before anything touches one; true otherwise.
inline bool require_gpu(const char* what) {
  int n = 0;
  const cudaError_t rc = cudaGetDeviceCount(&n);
  if (rc != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so the next CUDA call reports its own
    fail<DeviceError>(what, ": no usable CUDA device: ", cudaGetErrorString(rc));
  }
  if (n == 0) fail<DeviceError>(what, ": no CUDA device is visible to this process");
  return true;
}

inline DType storage_dtype(VitPrecision p) {
  return p == VitPrecision::F16 ? DType::F16 : p == VitPrecision::BF16 ? DType::BF16 : DType::F32;
}

inline cuda::GemmPrecision gemm_precision(VitPrecision p) {
  switch (p) {
    case VitPrecision::F32: return cuda::GemmPrecision::F32;
    case VitPrecision::TF32: return cuda::GemmPrecision::TF32;
    case VitPrecision::F16: return cuda::GemmPrecision::F16;
    case VitPrecision::BF16: return cuda::GemmPrecision::BF16;
  }
  return cuda::GemmPrecision::F32;
}

// Calls f(tag) with the storage type of the precision (float, f16, bf16).
template <class F>
decltype(auto) visit_storage(VitPrecision p, F&& f) {
  if (p == VitPrecision::F16) return f(f16{});
  if (p == VitPrecision::BF16) return f(bf16{});
  return f(float{});
}

// A CPU tensor as contiguous `dtype` values in a new device buffer, complete on return (so the
// converted host copy can go).
inline DeviceBuffer upload(const Tensor& t, DType dtype, cudaStream_t stream) {
  if (t.device() != Device::CPU) fail<DeviceError>("vit (cuda): uploading ", t.str(), ", which is not a CPU tensor");
  const Tensor host = t.dtype() == dtype ? t.contiguous() : t.to(dtype);
  DeviceBuffer buffer(host.nbytes(), stream);
  GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(buffer.data(), host.data_ptr(), host.nbytes(), cudaMemcpyHostToDevice, stream));
  GENSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream));
  return buffer;
}

// Device values of type T → a CPU f32 tensor of `shape` (f16/bf16 widened on the device first).
template <class T>
Tensor download(const T* p, const Shape& shape, cudaStream_t stream) {
  Tensor out = Tensor::empty(shape, DType::F32);
  const int64_t n = out.numel();
  if (n == 0) return out;
  const float* src = nullptr;
  DeviceBuffer widened;
  if constexpr (std::is_same_v<T, float>) {
    src = p;
  } else {
    widened = DeviceBuffer(sizeof(float) * static_cast<size_t>(n), stream);
    kernels::cast(p, widened.as<float>(), n, stream);
    src = widened.as<float>();
  }
  GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(out.data_ptr(), src, out.nbytes(), cudaMemcpyDeviceToHost, stream));
  GENSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream));
  return out;
}

// A Linear on the device: weight [out, in] in the storage type, bias f32 [out] or none.
struct DeviceLinear {
  DeviceBuffer weight, bias;
  int64_t in = 0, out = 0;

  static DeviceLinear upload(const nn::Linear& l, DType dtype, cudaStream_t stream) {
    DeviceLinear d;
    d.in = l.in_features;
    d.out = l.out_features;
    d.weight = vit_cuda_detail::upload(l.weight, dtype, stream);
    if (l.bias.defined()) d.bias = vit_cuda_detail::upload(l.bias, DType::F32, stream);
    return d;
  }
  bool loaded() const { return weight.data() != nullptr; }
  const float* bias_ptr() const { return bias.as<float>(); }
};

struct DeviceNorm {
  DeviceBuffer weight, bias;
  float eps = 1e-5f;

  static DeviceNorm upload(const nn::LayerNorm& n, cudaStream_t stream) {
    DeviceNorm d;
    if (!n.loaded()) return d;
    d.weight = vit_cuda_detail::upload(n.weight, DType::F32, stream);
    d.bias = vit_cuda_detail::upload(n.bias, DType::F32, stream);
    d.eps = n.eps;
    return d;
  }
  bool loaded() const { return weight.data() != nullptr; }
  template <class T>
  void forward(const T* x, T* y, int64_t rows, int64_t cols, cudaStream_t stream) const {
    kernels::layer_norm(x, weight.as<float>(), bias.as<float>(), y, rows, cols, eps, kernels::Activation::None, stream);
  }
};

struct DeviceBlock {
  DeviceNorm norm1, norm2;
  DeviceLinear qkv, proj, fc1, fc2;
};

// The sizes of one forward pass.
struct VitDims {
  int64_t batch = 0, grid_h = 0, grid_w = 0, patches = 0, prefix = 0, tokens = 0, width = 0, heads = 0, head_dim = 0;
  int64_t rows() const { return batch * tokens; }  // token rows of the residual stream
};

}  // namespace vit_cuda_detail

// A VisionTransformer's weights on the current GPU and its forward pass there.
struct CudaVit {
  // Checked before the stream is created, so a machine without a GPU gets this message rather
  // than cudaStreamCreate's.
  bool gpu_ready = vit_cuda_detail::require_gpu("vit (cuda)");
  // Declared before the buffers so it is destroyed after them: they are freed on it.
  cuda::Stream stream;
  VitPrecision precision = VitPrecision::F32;
  // The CPU model without its blocks: the configuration, the layout and the learned position
  // table, which position_table() resamples for other grids on the CPU.
  VisionTransformer meta;
  vit_cuda_detail::DeviceLinear patch_embed;  // [D, C·p·p]
  vit_cuda_detail::DeviceNorm patch_norm, pre_norm, final_norm;
  vit_cuda_detail::DeviceBuffer cls_token;    // f32 [D], or empty
  std::vector<vit_cuda_detail::DeviceBlock> blocks;
  vit_cuda_detail::DeviceLinear projection;   // CLIP's visual_projection, or empty

  CudaVit(const VisionTransformer& vit, VitPrecision p = VitPrecision::F32) : precision(p) {
    using namespace vit_cuda_detail;
    const DType dtype = storage_dtype(p);
    meta.layout = vit.layout;
    meta.config = vit.config;
    meta.pos_embed = vit.pos_embed;
    meta.cls_token = vit.cls_token;
    const nn::PatchEmbed& pe = vit.patch_embed;
    patch_embed = DeviceLinear::upload(nn::Linear{pe.weight, pe.bias, pe.channels * pe.patch * pe.patch, pe.dim}, dtype, stream);
    patch_norm = DeviceNorm::upload(vit.patch_norm, stream);
    pre_norm = DeviceNorm::upload(vit.pre_norm, stream);
    final_norm = DeviceNorm::upload(vit.final_norm, stream);
    if (vit.cls_token.defined()) cls_token = upload(vit.cls_token, DType::F32, stream);
    for (const nn::AttentionBlock& b : vit.blocks) {
      DeviceBlock d;
      d.norm1 = DeviceNorm::upload(b.norm1, stream);
      d.norm2 = DeviceNorm::upload(b.norm2, stream);
      d.qkv = DeviceLinear::upload(b.attn.qkv, dtype, stream);
      d.proj = DeviceLinear::upload(b.attn.proj, dtype, stream);
      d.fc1 = DeviceLinear::upload(b.mlp.fc1, dtype, stream);
      d.fc2 = DeviceLinear::upload(b.mlp.fc2, dtype, stream);
      if (b.attn.heads != vit.config.heads)
        fail<ShapeError>("vit (cuda): a block has ", b.attn.heads, " heads, the model ", vit.config.heads);
      blocks.push_back(std::move(d));
    }
    if (vit.projection.weight.defined()) projection = DeviceLinear::upload(vit.projection, dtype, stream);
  }

  const VitConfig& config() const { return meta.config; }

  // The CPU forward's outputs (VisionTransformer::forward), as CPU f32 tensors.
  VitTrace forward(const Tensor& pixels, const std::vector<int64_t>& keep = {}) {
    const int64_t last = check_keep(keep);
    VitTrace t;
    t.kept.resize(keep.size());
    vit_cuda_detail::visit_storage(precision, [&](auto tag) {
      using T = decltype(tag);
      vit_cuda_detail::VitDims dims;
      auto visit = [&](int64_t block, const T* x) {
        const Shape shape{dims.batch, dims.tokens, dims.width};
        if (block < 0) t.embeddings = vit_cuda_detail::download(x, shape, stream);
        for (size_t j = 0; j < keep.size(); ++j)
          if (keep[j] == block) t.kept[j] = vit_cuda_detail::download(x, shape, stream);
      };
      const vit_cuda_detail::DeviceBuffer x = run<T>(pixels, last, dims, visit);
      t.last = vit_cuda_detail::download(x.as<T>(), Shape{dims.batch, dims.tokens, dims.width}, stream);
    });
    return t;
  }

  // The deepest block to run for `keep` (all loaded blocks when empty); UsageError as the CPU's.
  int64_t check_keep(const std::vector<int64_t>& keep) const {
    const auto n = static_cast<int64_t>(blocks.size());
    for (int64_t k : keep)
      if (k < 0 || k >= n) fail<UsageError>("vit (cuda): block ", k, " requested; ", n, " blocks are loaded (0-", n - 1, ")");
    return keep.empty() ? n - 1 : *std::max_element(keep.begin(), keep.end());
  }

  // Embeds `pixels` (f32 [B, C, H, W], CPU or CUDA) and runs blocks 0..last, calling
  // visit(-1, tokens) after the embedding and visit(i, x) after block i (x [B·T, D] on the
  // device, valid during the call, in stream order). Returns the last block's output; fills dims.
  template <class T, class Visit>
  vit_cuda_detail::DeviceBuffer run(const Tensor& pixels, int64_t last, vit_cuda_detail::VitDims& dims, Visit&& visit) {
    using vit_cuda_detail::DeviceBuffer;
    const VitConfig& c = meta.config;
    if (pixels.dim() != 4 || pixels.dtype() != DType::F32 || pixels.size(1) != c.channels)
      fail<ShapeError>("vit (cuda): input is ", pixels.str(), "; expected f32[B, ", c.channels, ", H, W]");
    const int64_t B = pixels.size(0), H = pixels.size(2), W = pixels.size(3), p = c.patch;
    if (H % p || W % p || H == 0 || W == 0)
      fail<ShapeError>("vit (cuda): the input size ", H, " x ", W, " is not a positive multiple of the patch size ", p);
    dims.batch = B;
    dims.grid_h = H / p;
    dims.grid_w = W / p;
    dims.patches = dims.grid_h * dims.grid_w;
    dims.prefix = c.class_token ? 1 : 0;
    dims.tokens = dims.prefix + dims.patches;
    dims.width = c.width;
    dims.heads = c.heads;
    dims.head_dim = c.width / c.heads;
    const int64_t D = c.width, K = c.channels * p * p, rows = dims.rows(), N = B * dims.patches;
    const cuda::GemmPrecision gp = vit_cuda_detail::gemm_precision(precision);
    auto buffer = [&](int64_t elements) { return DeviceBuffer(sizeof(T) * static_cast<size_t>(elements), stream); };

    // Pixels on the device (a CUDA tensor is read in place).
    const Tensor host = pixels.device() == Device::CPU ? pixels.contiguous() : Tensor();
    DeviceBuffer staged;
    const float* px = nullptr;
    if (pixels.device() == Device::CUDA) {
      if (!pixels.is_contiguous()) fail<ShapeError>("vit (cuda): the CUDA input ", pixels.str(), " must be contiguous");
      px = static_cast<const float*>(pixels.data_ptr());
    } else {
      staged = DeviceBuffer(host.nbytes(), stream);
      GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(staged.data(), host.data_ptr(), host.nbytes(), cudaMemcpyHostToDevice, stream));
      px = staged.as<float>();
    }

    // Embedding: im2col by patch, the conv as a GEMM (bias in the epilogue), [AIM: LayerNorm],
    // [cls | patches] + pos, [CLIP: pre-LayerNorm].
    DeviceBuffer x = buffer(rows * D), h = buffer(rows * D);
    {
      DeviceBuffer cols = buffer(N * K), patches = buffer(N * D);
      kernels::patchify(px, cols.as<T>(), B, c.channels, H, W, p, stream);
      cuda::gemm(ops::Trans::No, ops::Trans::Yes, N, D, K, 1.0f, cols.as<T>(), K, patch_embed.weight.data(), K, 0.0f, patches.data(), D,
                 gp, stream, patch_embed.bias_ptr());
      const T* embedded = patches.as<T>();
      if (patch_norm.loaded()) {
        patch_norm.forward(patches.as<T>(), h.as<T>(), N, D, stream);
        embedded = h.as<T>();
      }
      kernels::assemble_tokens(embedded, cls_token.as<float>(), position_table(dims.grid_h, dims.grid_w), x.as<T>(), B, dims.patches,
                               dims.prefix, D, stream);
      if (pre_norm.loaded()) {
        pre_norm.forward(x.as<T>(), h.as<T>(), rows, D, stream);
        std::swap(x, h);
      }
    }
    visit(int64_t{-1}, static_cast<const T*>(x.as<T>()));

    if (last >= 0) {
      const int64_t hidden = c.mlp_hidden, hd = dims.head_dim;
      DeviceBuffer fused = buffer(rows * std::max(3 * D, hidden)), heads = buffer(3 * rows * D), o = buffer(rows * D);
      const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));  // ops::attention's default
      const ops::Activation act = meta.layout.act;
      const bool act_in_cublas = act == ops::Activation::None || act == ops::Activation::Relu || act == ops::Activation::GeluTanh;
      for (int64_t i = 0; i <= last; ++i) {
        const vit_cuda_detail::DeviceBlock& b = blocks[static_cast<size_t>(i)];
        T* xs = x.as<T>();
        T* hs = h.as<T>();
        T* fs = fused.as<T>();
        T* q = heads.as<T>();
        b.norm1.forward(xs, hs, rows, D, stream);
        cuda::gemm(ops::Trans::No, ops::Trans::Yes, rows, 3 * D, D, 1.0f, hs, D, b.qkv.weight.data(), D, 0.0f, fs, 3 * D, gp, stream,
                   b.qkv.bias_ptr());
        kernels::split_heads(static_cast<const T*>(fs), q, B, dims.tokens, int64_t{3}, dims.heads, hd, stream);
        kernels::attention(static_cast<const T*>(q), static_cast<const T*>(q + rows * D), static_cast<const T*>(q + 2 * rows * D),
                           o.as<T>(), B * dims.heads, dims.tokens, dims.tokens, static_cast<int>(hd), scale, stream);
        kernels::merge_heads(static_cast<const T*>(o.as<T>()), hs, B, dims.heads, dims.tokens, hd, stream);
        cuda::gemm(ops::Trans::No, ops::Trans::Yes, rows, D, D, 1.0f, hs, D, b.proj.weight.data(), D, 1.0f, xs, D, gp, stream,
                   b.proj.bias_ptr());
        b.norm2.forward(xs, hs, rows, D, stream);
        cuda::gemm(ops::Trans::No, ops::Trans::Yes, rows, hidden, D, 1.0f, hs, D, b.fc1.weight.data(), D, 0.0f, fs, hidden, gp, stream,
                   b.fc1.bias_ptr(), act_in_cublas ? act : ops::Activation::None);
        if (!act_in_cublas) kernels::gemm_epilogue(fs, hidden, nullptr, act, static_cast<const T*>(nullptr), 0, rows, hidden, stream);
        cuda::gemm(ops::Trans::No, ops::Trans::Yes, rows, D, hidden, 1.0f, fs, hidden, b.fc2.weight.data(), hidden, 1.0f, xs, D, gp,
                   stream, b.fc2.bias_ptr());
        visit(i, static_cast<const T*>(xs));
      }
    }
    return x;
  }

  // The f32 position table [prefix + gh·gw, D] on the device; computed on the CPU for a new grid.
  const float* position_table(int64_t gh, int64_t gw) {
    if (!pos_table_.data() || pos_grid_ != std::pair{gh, gw}) {
      pos_table_ = vit_cuda_detail::upload(meta.position_table(gh, gw), DType::F32, stream);
      pos_grid_ = {gh, gw};
    }
    return pos_table_.as<float>();
  }

 private:
  vit_cuda_detail::DeviceBuffer pos_table_;
  std::pair<int64_t, int64_t> pos_grid_{-1, -1};
};

// VitFeatureExtractor::features on the GPU: the same rows (models/vit_features.hpp explains the
// pooling), only they come back to the CPU.
struct CudaVitFeatureExtractor {
  CudaVit vit;
  VitPool pool = VitPool::Cls;
  std::vector<int64_t> layers;
  bool project = false;
  int64_t feature_dim = 0;
  // AIM's probe: k|v fused [2D, D] (no bias), BatchNorm1d's mean and 1/√(var + eps) (f32 [D], the
  // CPU's expression), the learned query f32 [D].
  vit_cuda_detail::DeviceLinear probe_kv;
  vit_cuda_detail::DeviceBuffer probe_mean, probe_inv_std;
  Tensor probe_query;
  int64_t probe_heads = 0;

  CudaVitFeatureExtractor(const VitFeatureExtractor& f, VitPrecision p = VitPrecision::F32)
      : vit(f.vit, p), pool(f.pool), layers(f.layers), project(f.project), feature_dim(f.feature_dim()) {
    if (project && !vit.projection.loaded()) fail<UsageError>("features (cuda): --project needs the model's visual_projection");
    if (pool == VitPool::Probe) {
      if (!f.probe) fail<UsageError>("features (cuda): --pool probe needs the AIM head");
      const AttentionPoolingClassifier& head = *f.probe;
      const int64_t D = head.dim;
      nn::Linear kv{Tensor::empty({2 * D, D}, DType::F32), Tensor(), D, 2 * D};
      kv.weight.slice(0, 0, D).copy_from(head.k.weight);
      kv.weight.slice(0, D, 2 * D).copy_from(head.v.weight);
      probe_kv = vit_cuda_detail::DeviceLinear::upload(kv, vit_cuda_detail::storage_dtype(p), vit.stream);
      Tensor inv = Tensor::empty({D}, DType::F32);
      for (int64_t c = 0; c < D; ++c) inv.data<float>()[c] = 1.0f / std::sqrt(head.bn_var.data<float>()[c] + head.bn_eps);
      probe_mean = vit_cuda_detail::upload(head.bn_mean, DType::F32, vit.stream);
      probe_inv_std = vit_cuda_detail::upload(inv, DType::F32, vit.stream);
      probe_query = head.cls_token;
      probe_heads = head.heads;
    }
  }

  // pixels [B, C, H, W] f32 → features [B, feature_dim] f32 on the CPU.
  Tensor features(const Tensor& pixels) {
    const int64_t last = vit.check_keep(layers);
    Tensor out;
    vit_cuda_detail::visit_storage(vit.precision, [&](auto tag) {
      using T = decltype(tag);
      if (pool == VitPool::Probe) out = probe_features<T>(pixels, last);
      else if (!layers.empty()) out = layer_features<T>(pixels, last);
      else out = final_features<T>(pixels, last);
    });
    return out;
  }

 private:
  using DeviceBuffer = vit_cuda_detail::DeviceBuffer;

  template <class T>
  DeviceBuffer buffer(int64_t elements) {
    return DeviceBuffer(sizeof(T) * static_cast<size_t>(elements), vit.stream);
  }

  // Token 0 of each image of x [B, T, D] → rows of D at stride ld_out.
  template <class T>
  void class_tokens(const T* x, T* out, const vit_cuda_detail::VitDims& d, int64_t ld_out) {
    GENSCOPE_CUDA_CHECK(cudaMemcpy2DAsync(out, sizeof(T) * ld_out, x, sizeof(T) * d.tokens * d.width, sizeof(T) * d.width, d.batch,
                                          cudaMemcpyDeviceToDevice, vit.stream));
  }

  // AIM: the probe layers averaged and normalised as they go by, then k|v and the query's attention.
  template <class T>
  Tensor probe_features(const Tensor& pixels, int64_t last) {
    vit_cuda_detail::VitDims d;
    DeviceBuffer acc;
    size_t seen = 0;
    const auto n = static_cast<float>(layers.size());
    auto visit = [&](int64_t block, const T* x) {
      if (std::find(layers.begin(), layers.end(), block) == layers.end()) return;
      const int64_t rows = d.rows(), D = d.width;
      const bool final_layer = ++seen == layers.size();
      const float* mean = final_layer ? probe_mean.as<float>() : nullptr;
      const float* inv = final_layer ? probe_inv_std.as<float>() : nullptr;
      if (seen == 1) {
        acc = buffer<T>(rows * D);
        GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(acc.data(), x, sizeof(T) * rows * D, cudaMemcpyDeviceToDevice, vit.stream));
        if (final_layer) kernels::layer_average(acc.as<T>(), static_cast<const T*>(nullptr), rows, D, 1.0f, mean, inv, vit.stream);
      } else {
        kernels::layer_average(acc.as<T>(), x, rows, D, final_layer ? n : 1.0f, mean, inv, vit.stream);
      }
    };
    vit.run<T>(pixels, last, d, visit);
    const int64_t B = d.batch, S = d.tokens, D = d.width, H = probe_heads, hd = D / H;
    DeviceBuffer kv = buffer<T>(B * S * 2 * D), heads = buffer<T>(2 * B * S * D), o = buffer<T>(B * D);
    cuda::gemm(ops::Trans::No, ops::Trans::Yes, B * S, 2 * D, D, 1.0f, acc.data(), D, probe_kv.weight.data(), D, 0.0f, kv.data(), 2 * D,
               vit_cuda_detail::gemm_precision(vit.precision), vit.stream);
    kernels::split_heads(static_cast<const T*>(kv.as<T>()), heads.as<T>(), B, S, int64_t{2}, H, hd, vit.stream);
    // The query is the same learned token for every image: [B, H, 1, hd] is the token repeated.
    Tensor q = Tensor::empty({B, D}, DType::F32);
    for (int64_t b = 0; b < B; ++b) q.select(0, b).copy_from(probe_query);
    const DeviceBuffer q_dev = vit_cuda_detail::upload(q, vit_cuda_detail::storage_dtype(vit.precision), vit.stream);
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
    kernels::attention(q_dev.as<T>(), static_cast<const T*>(heads.as<T>()), static_cast<const T*>(heads.as<T>() + B * S * D), o.as<T>(),
                       B * H, 1, S, static_cast<int>(hd), scale, vit.stream);
    return vit_cuda_detail::download(o.as<T>(), Shape{B, D}, vit.stream);  // [B, H, 1, hd] is [B, D] in head order
  }

  // Explicit layers: each block's raw output pooled (class token or patch mean), concatenated.
  template <class T>
  Tensor layer_features(const Tensor& pixels, int64_t last) {
    vit_cuda_detail::VitDims d;
    DeviceBuffer out;
    const auto L = static_cast<int64_t>(layers.size());
    auto visit = [&](int64_t block, const T* x) {
      if (!out.data()) out = buffer<T>(d.batch * L * d.width);
      for (int64_t j = 0; j < L; ++j) {
        if (layers[static_cast<size_t>(j)] != block) continue;
        T* dst = out.as<T>() + j * d.width;
        if (pool == VitPool::Mean) kernels::mean_tokens(x, dst, d.batch, d.tokens, d.width, d.prefix, L * d.width, vit.stream);
        else class_tokens(x, dst, d, L * d.width);
      }
    };
    vit.run<T>(pixels, last, d, visit);
    return vit_cuda_detail::download(out.as<T>(), Shape{d.batch, L * d.width}, vit.stream);
  }

  // No layers: the final output, [final norm], pooled, [post-norm of the pooled token], [projection].
  template <class T>
  Tensor final_features(const Tensor& pixels, int64_t last) {
    vit_cuda_detail::VitDims d;
    DeviceBuffer x = vit.run<T>(pixels, last, d, [](int64_t, const T*) {});
    const int64_t B = d.batch, D = d.width;
    const VitLayout& L = vit.meta.layout;
    const bool norm_all = vit.final_norm.loaded() && !L.final_norm_pooled_only;
    if (norm_all) {
      DeviceBuffer y = buffer<T>(d.rows() * D);
      vit.final_norm.forward(x.as<T>(), y.as<T>(), d.rows(), D, vit.stream);
      std::swap(x, y);
    }
    DeviceBuffer pooled = buffer<T>(B * D);
    if (pool == VitPool::Mean) kernels::mean_tokens(static_cast<const T*>(x.as<T>()), pooled.as<T>(), B, d.tokens, D, d.prefix, D, vit.stream);
    else class_tokens(x.as<T>(), pooled.as<T>(), d, D);
    if (pool == VitPool::Cls && vit.final_norm.loaded() && L.final_norm_pooled_only) {
      DeviceBuffer y = buffer<T>(B * D);
      vit.final_norm.forward(pooled.as<T>(), y.as<T>(), B, D, vit.stream);
      std::swap(pooled, y);
    }
    if (!project) return vit_cuda_detail::download(pooled.as<T>(), Shape{B, D}, vit.stream);
    const int64_t P = vit.projection.out;
    DeviceBuffer projected = buffer<T>(B * P);
    cuda::gemm(ops::Trans::No, ops::Trans::Yes, B, P, D, 1.0f, pooled.data(), D, vit.projection.weight.data(), D, 0.0f, projected.data(), P,
               vit_cuda_detail::gemm_precision(vit.precision), vit.stream, vit.projection.bias_ptr());
    return vit_cuda_detail::download(projected.as<T>(), Shape{B, P}, vit.stream);
  }
};

}  // namespace genscope::models

#endif  // __CUDACC__ && GENSCOPE_WITH_CUDA
