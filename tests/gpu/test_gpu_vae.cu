// GPU cases of the SD VAE's CUDA path (models/vae_cuda.hpp; part of test_gpu, needs a GPU, not run
// by ctest): the device model against the same diffusers fixtures as tests/test_vae.cpp
// (tests/data/vae/, tools/reference/make_vae_fixtures.py), small configurations with random weights.
// Tolerances, relative to the reference's largest magnitude:
//   f32  1e-4, as the CPU path (cuDNN's FMA-math algorithms and the attention kernel sum in other
//        orders than PyTorch's CPU kernels, with f32 accumulators)
//   f16  3e-2: every layer's output is stored in f16 (2^-11 ≈ 4.9e-4 relative each) through ~25
//        layers in sequence, with f32 accumulation inside each; to be tightened from the first GPU run
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>

#include "genscope/io/safetensors.hpp"
#include "genscope/models/vae.hpp"
#include "genscope/models/vae_cuda.hpp"
#include "genscope/models/vae_tiling.hpp"

using namespace genscope;
using namespace genscope::models;

namespace {

// test_gpu is not a genscope_test target, so the data folder is found from this file's path.
#if defined(GENSCOPE_TEST_DATA)
const std::string kData = std::string(GENSCOPE_TEST_DATA) + "/vae/";
#else
const std::string kData = (std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "vae").string() + "/";
#endif

constexpr double kF32Tolerance = 1e-4, kF16Tolerance = 3e-2;

const SafetensorsFile& io() {
  static const SafetensorsFile f(kData + "small_io.safetensors");
  return f;
}
Tensor ref(const std::string& name) { return io().get(name).contiguous().to(DType::F32); }

const AutoencoderKL& model_a() {
  static const AutoencoderKL m = AutoencoderKL::load(kData + "small_diffusers.safetensors");
  return m;
}
const AutoencoderKL& model_b() {
  static const AutoencoderKL m = AutoencoderKL::load(kData + "small_ldm.safetensors");
  return m;
}

// max |a − b| / max |b|, as tests/test_vae.cpp.
double rel_error(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const Tensor ac = a.contiguous().to(DType::F32), bc = b.contiguous().to(DType::F32);
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < ac.numel(); ++i) {
    const double d = std::abs(static_cast<double>(ac.data<float>()[i]) - bc.data<float>()[i]);
    if (!(d <= diff)) diff = d;  // NaN propagates and fails the bound
    scale = std::max(scale, std::abs(static_cast<double>(bc.data<float>()[i])));
  }
  return diff / scale;
}

}  // namespace

TEST_SUITE("gpu_vae") {

TEST_CASE("f32: the encoder's posterior mean and logvar match diffusers") {
  const CudaAutoencoderKL<float> m(model_a());
  const VaePosterior p = m.encode(ref("x_a"));
  CHECK(rel_error(p.mean, ref("mean_a")) <= kF32Tolerance);
  CHECK(rel_error(p.logvar, ref("logvar_a")) <= kF32Tolerance);
}

TEST_CASE("f32: decoding the mean matches diffusers") {
  const CudaAutoencoderKL<float> m(model_a());
  CHECK(rel_error(m.decode(ref("mean_a")), ref("decoded_a")) <= kF32Tolerance);
}

TEST_CASE("f32: the original single-file layout with three blocks matches diffusers") {
  const CudaAutoencoderKL<float> m(model_b());
  const VaePosterior p = m.encode(ref("x_b"));
  CHECK(rel_error(p.mean, ref("mean_b")) <= kF32Tolerance);
  CHECK(rel_error(p.logvar, ref("logvar_b")) <= kF32Tolerance);
  CHECK(rel_error(m.decode(ref("mean_b")), ref("decoded_b")) <= kF32Tolerance);
}

TEST_CASE("f32: a seeded posterior sample matches latent_dist.sample() after torch.manual_seed") {
  const CudaAutoencoderKL<float> m(model_a());
  CHECK(rel_error(m.encode(ref("x_a")).sample(7), ref("sample_a")) <= kF32Tolerance);
}

TEST_CASE("f32: an odd-sized round trip matches diffusers on the reflect-padded image, cropped") {
  const CudaAutoencoderKL<float> m(model_a());
  VaeRunOptions o;
  o.sample = false;
  const Tensor y = vae_roundtrip(m, ref("xodd_a"), o);
  CHECK(y.shape() == Shape{1, 3, 21, 35});
  CHECK(rel_error(y, ref("reconodd_a")) <= kF32Tolerance);
}

TEST_CASE("f32: a pixel decoded by one tile only is that tile's own decode") {
  // As tests/test_vae.cpp's case: latent 16x20, 16-pixel tiles; pixels [0, 12)² come from the first tile alone.
  const CudaAutoencoderKL<float> m(model_a());
  Tensor z = Tensor::empty({1, 4, 16, 20}, DType::F32);
  for (int64_t i = 0; i < z.numel(); ++i) z.data<float>()[i] = std::sin(0.13f * static_cast<float>(i));
  const Tensor tiled = decode_tiled(m, z, 16);
  REQUIRE(tiled.shape() == Shape{1, 3, 32, 40});
  const Tensor first = m.decode(z.slice(2, 0, 8).slice(3, 0, 8).contiguous());
  CHECK(rel_error(tiled.slice(2, 0, 12).slice(3, 0, 12), first.slice(2, 0, 12).slice(3, 0, 12)) <= 1e-6);
}

TEST_CASE("f16: encode and decode stay within the stated f16 tolerance of diffusers") {
  const CudaAutoencoderKL<f16> m(model_a());
  const VaePosterior p = m.encode(ref("x_a"));
  MESSAGE("f16 relative errors: mean ", rel_error(p.mean, ref("mean_a")), ", decode ", rel_error(m.decode(ref("mean_a")), ref("decoded_a")));
  CHECK(rel_error(p.mean, ref("mean_a")) <= kF16Tolerance);
  CHECK(rel_error(m.decode(ref("mean_a")), ref("decoded_a")) <= kF16Tolerance);
}

TEST_CASE("f16 weights take half the device memory of f32 weights") {
  const CudaAutoencoderKL<float> f32(model_a());
  const CudaAutoencoderKL<f16> half(model_a());
  CHECK(half.weight_bytes() < f32.weight_bytes());
  CHECK(half.weight_bytes() > f32.weight_bytes() / 2);  // norms and attention biases stay f32
}

TEST_CASE("an input that is not a multiple of the downsampling factor is refused naming the call") {
  const CudaAutoencoderKL<float> m(model_a());
  CHECK_THROWS_WITH_AS(m.encode(Tensor::zeros({1, 3, 7, 8}, DType::F32)), doctest::Contains("CudaAutoencoderKL::encode"), ShapeError);
}

}  // TEST_SUITE
