// The Vision Transformers on the GPU (models/vit_cuda.hpp) against their CPU forward (part of
// test_gpu; needs a GPU, not run by ctest). The models are the committed parity fixtures of
// tests/test_vit.cpp (tests/data/vit/: width 64, 2 heads, 3 blocks, one per layout), which the
// CPU forward matches to 1e-4 against the reference implementations.
// Tolerances, normwise relative (max |gpu − cpu| / max |cpu|):
//   f32   1e-4, the fixtures' own bound: the same f32 arithmetic in another order (cuBLASLt's
//         FMA GEMMs, the flash-attention kernel's online softmax).
//   tf32  1e-2: 10-bit-mantissa GEMM inputs (2^-11 relative per product) through 3 blocks.
//   f16   1e-2: activations and weights stored in f16 (2^-11 per rounding), the residual stream
//         included, through 3 blocks and 7 roundings each.
//   bf16  5e-2: the same with bf16's 8-bit mantissa (2^-8 per rounding).
// First, the emulated kernel cases of kernels/vit.cuh run natively (suite kernels_vit; its
// tests/simt/check.hpp makes launches synchronous, as in every test_gpu source).
#include "../test_kernels_vit.cpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "genscope/io/safetensors.hpp"
#include "genscope/models/vit.hpp"
#include "genscope/models/vit_cuda.hpp"
#include "genscope/models/vit_features.hpp"
#include "genscope/nn/weights.hpp"

using namespace genscope;
using models::VitArch;
using models::VitPrecision;

namespace {

// test_gpu is not given GENSCOPE_TEST_DATA; the fixtures sit beside this file's folder.
#if defined(GENSCOPE_TEST_DATA)
const std::string kVitDir = std::string(GENSCOPE_TEST_DATA) + "/vit/";
#else
const std::string kVitDir = (std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "vit").string() + "/";
#endif

double vit_relative_error(const Tensor& actual, const Tensor& expected) {
  REQUIRE(actual.shape() == expected.shape());
  const Tensor a = actual.to(DType::F32), e = expected.to(DType::F32);
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = std::abs(static_cast<double>(a.data<float>()[i]) - e.data<float>()[i]);
    if (!(d <= diff)) diff = d;  // NaN propagates and fails
    scale = std::max(scale, std::abs(static_cast<double>(e.data<float>()[i])));
  }
  REQUIRE(scale > 0);
  return diff / scale;
}

struct Layout {
  const char* name;
  VitArch arch;
};
constexpr Layout kLayouts[] = {{"aim", VitArch::Aim}, {"clip", VitArch::Clip}, {"spai-vit", VitArch::SpaiVit}, {"timm-vit", VitArch::TimmVit}};

struct VitFixture {
  nn::Weights weights;
  SafetensorsFile expected;
  explicit VitFixture(const std::string& name)
      : weights(nn::Weights::open(kVitDir + name + ".safetensors")), expected(kVitDir + name + "_expected.safetensors") {}
  Tensor pixels(const std::string& prefix = "") const { return expected.get(prefix + "pixels"); }
};

models::VisionTransformer load_fixture_vit(const VitFixture& f, VitArch arch) {
  models::VitLoadOptions opt;
  opt.heads = 2;  // the fixtures' head dim is 32, not the layouts' default
  return models::VisionTransformer::load(f.weights, arch, opt);
}

// The embeddings, every block and the last output of the GPU forward against the CPU's.
void check_forward(VitPrecision precision, double tolerance, const std::string& prefix = "") {
  for (const Layout& l : kLayouts) {
    INFO(l.name << " " << models::vit_precision_name(precision) << " " << prefix);
    const VitFixture f(l.name);
    if (!f.expected.contains(prefix + "pixels")) continue;  // other input sizes: aim (alt.) and timm (alt., small.)
    const models::VisionTransformer cpu = load_fixture_vit(f, l.arch);
    models::CudaVit gpu(cpu, precision);
    const Tensor x = f.pixels(prefix);
    const models::VitTrace want = cpu.forward(x, {0, 1, 2}), got = gpu.forward(x, {0, 1, 2});
    CHECK(vit_relative_error(got.embeddings, want.embeddings) <= tolerance);
    for (size_t i = 0; i < 3; ++i) {
      CAPTURE(i);
      CHECK(vit_relative_error(got.kept[i], want.kept[i]) <= tolerance);
    }
    CHECK(vit_relative_error(got.last, want.last) <= tolerance);
  }
}

// features() of the GPU extractor against the CPU extractor's, for one layout and options.
void check_features(const char* name, VitArch arch, models::VitFeatureOptions opt, VitPrecision precision, double tolerance,
                    const std::string& prefix = "") {
  INFO(name << " " << models::vit_precision_name(precision) << " " << prefix);
  const VitFixture f(name);
  opt.heads = 2;
  const auto cpu = models::VitFeatureExtractor::load(f.weights, arch, opt);
  models::CudaVitFeatureExtractor gpu(cpu, precision);
  const Tensor x = f.pixels(prefix);
  const Tensor want = cpu.features(x), got = gpu.features(x);
  CHECK(got.shape() == Shape{x.size(0), cpu.feature_dim()});
  CHECK(vit_relative_error(got, want) <= tolerance);
}

void check_all_features(VitPrecision precision, double tolerance) {
  using models::VitPool;
  models::VitFeatureOptions probe;  // AIM's default pooling; the fixture has 3 blocks, so layers are given
  probe.layers = std::pair<int64_t, int64_t>{1, 2};
  check_features("aim", VitArch::Aim, probe, precision, tolerance);
  check_features("aim", VitArch::Aim, probe, precision, tolerance, "alt.");
  models::VitFeatureOptions single = probe;
  single.layers = std::pair<int64_t, int64_t>{2, 2};
  check_features("aim", VitArch::Aim, single, precision, tolerance);
  models::VitFeatureOptions mean;
  mean.pool = VitPool::Mean;
  check_features("aim", VitArch::Aim, mean, precision, tolerance);  // post-trunk norm, then the patch mean
  check_features("clip", VitArch::Clip, {}, precision, tolerance);  // pooler_output: post-LN of the class token
  models::VitFeatureOptions projected;
  projected.project = true;
  check_features("clip", VitArch::Clip, projected, precision, tolerance);
  check_features("clip", VitArch::Clip, mean, precision, tolerance);
  check_features("spai-vit", VitArch::SpaiVit, {}, precision, tolerance);  // every block's patch mean
  check_features("timm-vit", VitArch::TimmVit, {}, precision, tolerance);  // pre-logits
  models::VitFeatureOptions cls_layers;
  cls_layers.pool = VitPool::Cls;
  cls_layers.layers = std::pair<int64_t, int64_t>{0, 2};
  check_features("timm-vit", VitArch::TimmVit, cls_layers, precision, tolerance);
  check_features("timm-vit", VitArch::TimmVit, {}, precision, tolerance, "small.");
}

}  // namespace

TEST_SUITE("gpu_vit") {

TEST_CASE("the f32 GPU forward matches the CPU forward on every layout to 1e-4") { check_forward(VitPrecision::F32, 1e-4); }

TEST_CASE("the f32 GPU forward resamples the position table for other input sizes as the CPU does") {
  check_forward(VitPrecision::F32, 1e-4, "alt.");
  check_forward(VitPrecision::F32, 1e-4, "small.");
}

TEST_CASE("the tf32 GPU forward is within 1e-2 of the CPU forward") { check_forward(VitPrecision::TF32, 1e-2); }

TEST_CASE("the f16 GPU forward is within 1e-2 of the CPU forward") { check_forward(VitPrecision::F16, 1e-2); }

TEST_CASE("the bf16 GPU forward is within 5e-2 of the CPU forward") { check_forward(VitPrecision::BF16, 5e-2); }

TEST_CASE("the f32 GPU features match the CPU features for every pooling to 1e-4") { check_all_features(VitPrecision::F32, 1e-4); }

TEST_CASE("the f16 GPU features are within 1e-2 of the CPU features") { check_all_features(VitPrecision::F16, 1e-2); }

TEST_CASE("asking the GPU forward for a block beyond those loaded is a usage error") {
  const VitFixture f("timm-vit");
  models::CudaVit gpu(load_fixture_vit(f, VitArch::TimmVit));
  CHECK_THROWS_AS(gpu.forward(f.pixels(), {3}), UsageError);
}

TEST_CASE("an input that is not a multiple of the patch is refused on the GPU as on the CPU") {
  const VitFixture f("timm-vit");
  models::CudaVit gpu(load_fixture_vit(f, VitArch::TimmVit));
  CHECK_THROWS_AS(gpu.forward(Tensor::zeros({1, 3, 30, 32}, DType::F32)), ShapeError);
}

}  // TEST_SUITE
