// GPU benchmark of the SD VAE's CUDA path (models/vae_cuda.hpp; build: GENSCOPE_CUDA; run on a
// machine with a GPU):
//   bench_gpu_vae [SIZE ...]          default sizes 256 512 1024
// SD v1.x's configuration (block_out_channels 128/256/512/512, 2 resnets per down block, 4 latent
// channels) with seeded random weights built in memory (no checkpoint needed: the cost does not
// depend on the values), then for each size and storage type (f32, f16): encode to the posterior
// and decode its mean, untiled, one 3×SIZE×SIZE image — the UAR/RAID round trip's GPU work.
// Printed per case: milliseconds per encode+decode (median of 5 after a warm-up, host-timed since
// each call ends in a synchronous copy back), the memory pool's high-water mark of bytes in use
// during the calls (activations and cuDNN workspaces; cudaMemPoolAttrUsedMemHigh, reset per case),
// the weights' bytes, and the device memory in use by the process (cudaMemGetInfo: + context,
// cuBLASLt/cuDNN handles, pool caching).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "genscope/io/safetensors.hpp"
#include "genscope/models/vae.hpp"
#include "genscope/models/vae_cuda.hpp"

using namespace genscope;

namespace {

// Diffusers' AutoencoderKL keys for SD v1.x, with shapes (models/vae.hpp's module tree) and
// random values: conv/linear weights N(0, 1/fan_in) so activations keep their scale through the
// network (f16 does not overflow), biases N(0, 0.01²), norms γ = 1, β = 0.
std::vector<std::pair<std::string, Tensor>> sd_vae_random_weights(uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::pair<std::string, Tensor>> w;
  auto normal = [&](const std::string& name, Shape shape, float stddev) {
    Tensor t = Tensor::empty(shape, DType::F32);
    std::normal_distribution<float> dist(0.0f, stddev);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
    w.emplace_back(name, t);
  };
  auto constant = [&](const std::string& name, int64_t n, float v) {
    Tensor t = Tensor::empty({n}, DType::F32);
    std::fill(t.data<float>(), t.data<float>() + n, v);
    w.emplace_back(name, t);
  };
  auto conv = [&](const std::string& name, int64_t in, int64_t out, int64_t k) {
    normal(name + ".weight", {out, in, k, k}, 1.0f / std::sqrt(static_cast<float>(in * k * k)));
    normal(name + ".bias", {out}, 0.01f);
  };
  auto norm = [&](const std::string& name, int64_t c) {
    constant(name + ".weight", c, 1.0f);
    constant(name + ".bias", c, 0.0f);
  };
  auto resnet = [&](const std::string& name, int64_t in, int64_t out) {
    norm(name + ".norm1", in);
    conv(name + ".conv1", in, out, 3);
    norm(name + ".norm2", out);
    conv(name + ".conv2", out, out, 3);
    if (in != out) conv(name + ".conv_shortcut", in, out, 1);
  };
  auto mid = [&](const std::string& name, int64_t c) {
    resnet(name + ".resnets.0", c, c);
    norm(name + ".attentions.0.group_norm", c);
    for (const char* p : {"to_q", "to_k", "to_v", "to_out.0"}) {
      normal(name + ".attentions.0." + p + ".weight", {c, c}, 1.0f / std::sqrt(static_cast<float>(c)));
      normal(name + ".attentions.0." + p + ".bias", {c}, 0.01f);
    }
    resnet(name + ".resnets.1", c, c);
  };
  const std::vector<int64_t> ch{128, 256, 512, 512};
  const int64_t layers = 2, latent = 4, blocks = static_cast<int64_t>(ch.size());
  conv("encoder.conv_in", 3, ch[0], 3);
  for (int64_t i = 0, out = ch[0]; i < blocks; ++i) {
    const int64_t in = out;
    out = ch[i];
    for (int64_t j = 0; j < layers; ++j) resnet(cat("encoder.down_blocks.", i, ".resnets.", j), j == 0 ? in : out, out);
    if (i + 1 < blocks) conv(cat("encoder.down_blocks.", i, ".downsamplers.0.conv"), out, out, 3);
  }
  mid("encoder.mid_block", ch.back());
  norm("encoder.conv_norm_out", ch.back());
  conv("encoder.conv_out", ch.back(), 2 * latent, 3);
  conv("quant_conv", 2 * latent, 2 * latent, 1);
  conv("post_quant_conv", latent, latent, 1);
  conv("decoder.conv_in", latent, ch.back(), 3);
  mid("decoder.mid_block", ch.back());
  for (int64_t i = 0, out = ch.back(); i < blocks; ++i) {
    const int64_t in = out;
    out = ch[blocks - 1 - i];
    for (int64_t j = 0; j <= layers; ++j) resnet(cat("decoder.up_blocks.", i, ".resnets.", j), j == 0 ? in : out, out);
    if (i + 1 < blocks) conv(cat("decoder.up_blocks.", i, ".upsamplers.0.conv"), out, out, 3);
  }
  norm("decoder.conv_norm_out", ch[0]);
  conv("decoder.conv_out", ch[0], 3, 3);
  return w;
}

// SD v1.x with random weights: written to a scratch safetensors file and loaded as any checkpoint.
models::AutoencoderKL sd_vae() {
  const std::string path = (std::filesystem::temp_directory_path() / cat("genscope-bench-vae-", ::getpid(), ".safetensors")).string();
  save_safetensors(path, sd_vae_random_weights(0));
  models::AutoencoderKL m = models::AutoencoderKL::load(path);
  // The load keeps the file mapped or copies it; either way the name can go now.
  std::filesystem::remove(path);
  return m;
}

Tensor smooth_image(int64_t size) {  // as bench/bench_vae.cpp
  Tensor x = Tensor::empty({1, 3, size, size}, DType::F32);
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i)
    p[i] = std::sin(0.01f * static_cast<float>(i % size)) * std::cos(0.013f * static_cast<float>(i / size % size));
  return x;
}

uint64_t pool_attribute(cudaMemPoolAttr a) {
  cudaMemPool_t pool;
  GENSCOPE_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, cuda::current_device()));
  uint64_t v = 0;
  GENSCOPE_CUDA_CHECK(cudaMemPoolGetAttribute(pool, a, &v));
  return v;
}
void reset_pool_high_water() {
  cudaMemPool_t pool;
  GENSCOPE_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, cuda::current_device()));
  uint64_t zero = 0;  // resets the high-water mark to the current use
  GENSCOPE_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero));
}

template <class T>
void bench(const char* dtype, const models::AutoencoderKL& cpu, const std::vector<int64_t>& sizes) {
  const models::CudaAutoencoderKL<T> gpu(cpu);
  const double mib = 1.0 / (1 << 20);
  for (int64_t size : sizes) {
    const Tensor x = smooth_image(size);
    auto round_trip = [&] { return gpu.decode(gpu.encode(x).mean); };
    try {
      const uint64_t weights_in_pool = pool_attribute(cudaMemPoolAttrUsedMemCurrent);
      reset_pool_high_water();
      const Tensor warm = round_trip();
      bool finite = true;
      for (int64_t i = 0; i < warm.numel() && finite; ++i) finite = std::isfinite(warm.data<float>()[i]);
      std::vector<double> ms;
      for (int i = 0; i < 5; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        (void)round_trip();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(ms.begin(), ms.end());
      const uint64_t high = pool_attribute(cudaMemPoolAttrUsedMemHigh);
      size_t free_bytes = 0, total_bytes = 0;
      GENSCOPE_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
      std::printf("%-4s %5lldx%-5lld %10.2f ms  %8.1f MP/s  activations peak %8.1f MiB  weights %6.1f MiB  device in use %8.1f MiB%s\n",
                  dtype, static_cast<long long>(size), static_cast<long long>(size), ms[2], size * size * 1e-3 / ms[2],
                  (high - weights_in_pool) * mib, gpu.weight_bytes() * mib, (total_bytes - free_bytes) * mib,
                  finite ? "" : "  (non-finite output)");
    } catch (const DeviceError& e) {
      std::printf("%-4s %5lldx%-5lld failed: %s\n", dtype, static_cast<long long>(size), static_cast<long long>(size), e.what());
    }
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<int64_t> sizes;
    for (int i = 1; i < argc; ++i) sizes.push_back(std::atoll(argv[i]));
    if (sizes.empty()) sizes = {256, 512, 1024};
    for (int64_t s : sizes)
      if (s <= 0 || s % 8 != 0) {
        std::fprintf(stderr, "bench_gpu_vae: size %s is not a positive multiple of 8\n", std::to_string(s).c_str());
        return 1;
      }
    models::require_cuda_device("bench_gpu_vae");
    cudaDeviceProp prop{};
    GENSCOPE_CUDA_CHECK(cudaGetDeviceProperties(&prop, cuda::current_device()));
    std::printf("SD v1.x VAE (random weights), encode + decode of the mean, one image, on %s\n", prop.name);
    const models::AutoencoderKL cpu = sd_vae();
    bench<float>("f32", cpu, sizes);
    bench<f16>("f16", cpu, sizes);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu_vae: %s\n", e.what());
    return 2;
  }
}
