// Tests of ops/conv2d.hpp: the implicit-GEMM convolution against PyTorch fixtures (F.conv2d;
// tools/reference/make_gemm_conv_fixtures.py) and against a direct loop over the definition
// (the formula at the top of conv2d.hpp) on random shapes.
//
// Tolerance: max|got − want| / max|want| ≤ 1e-5 over the whole output (issue 3's f32 parity).
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "genscope/core/tensor.hpp"
#include "genscope/io/safetensors.hpp"
#include "genscope/ops/conv2d.hpp"
#include "support.hpp"

using namespace genscope;

namespace {

const std::string kFixtures = std::string(GENSCOPE_TEST_DATA) + "/conv2d/conv2d.safetensors";
constexpr double kTolerance = 1e-5;

using test::relative_error;  // max|got − want| / max|want|

Tensor random_tensor(Shape shape, std::mt19937& rng) {
  Tensor t = Tensor::empty(shape, DType::F32);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

// The definition, one output element at a time, double accumulation, no activation.
Tensor conv2d_direct(const Tensor& x, const Tensor& w, const Tensor* bias, const ops::Conv2dParams& p) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t O = w.size(0), Cg = w.size(1), kh = w.size(2), kw = w.size(3), Og = O / p.groups;
  const int64_t Ho = (H + p.pad_top + p.pad_bottom - p.dilation_h * (kh - 1) - 1) / p.stride_h + 1;
  const int64_t Wo = (W + p.pad_left + p.pad_right - p.dilation_w * (kw - 1) - 1) / p.stride_w + 1;
  Tensor y = Tensor::empty({N, O, Ho, Wo}, DType::F32);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oy = 0; oy < Ho; ++oy)
        for (int64_t ox = 0; ox < Wo; ++ox) {
          double acc = bias ? bias->item({o}) : 0.0;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t iy = oy * p.stride_h - p.pad_top + i * p.dilation_h;
                const int64_t ix = ox * p.stride_w - p.pad_left + j * p.dilation_w;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += x.item({n, (o / Og) * Cg + c, iy, ix}) * w.item({o, c, i, j});
              }
          y.data<float>()[((n * O + o) * Ho + oy) * Wo + ox] = static_cast<float>(acc);
        }
  (void)C;
  return y;
}

ops::Conv2dParams params_from(const Tensor& t) {
  auto v = [&](int64_t i) { return static_cast<int64_t>(t.item({i})); };
  ops::Conv2dParams p;
  p.stride_h = v(0), p.stride_w = v(1);
  p.pad_top = v(2), p.pad_bottom = v(3), p.pad_left = v(4), p.pad_right = v(5);
  p.dilation_h = v(6), p.dilation_w = v(7), p.groups = v(8);
  p.act = v(9) == 1 ? ops::Activation::Silu : ops::Activation::None;
  return p;
}

void check_fixture(const SafetensorsFile& f, const std::string& name) {
  CAPTURE(name);
  const std::string p = "conv2d." + name;
  const Tensor b = f.contains(p + ".b") ? f.get(p + ".b") : Tensor();
  const Tensor y = ops::conv2d(f.get(p + ".x"), f.get(p + ".w"), b.defined() ? &b : nullptr, params_from(f.get(p + ".params")));
  CHECK(relative_error(y, f.get(p + ".y")) <= kTolerance);
}

}  // namespace

// ================================================================================================
TEST_SUITE("parity") {

TEST_CASE("conv2d matches torch F.conv2d at reduced SD VAE shapes, incl. the (0,1,0,1)-padded downsample") {
  const SafetensorsFile f(kFixtures);
  for (const char* name : {"vae_resnet_small", "vae_down", "vae_down_odd", "conv_in_batch2", "k_over_block", "silu"})
    check_fixture(f, name);
}

TEST_CASE("conv2d matches F.conv2d on edge shapes: 1x1x1, odd kernels, stride, dilation, groups, asymmetric pads") {
  const SafetensorsFile f(kFixtures);
  for (const char* name : {"one", "odd_kernel_3x5", "stride2", "dilation2", "groups2", "depthwise", "pointwise",
                           "pointwise_stride2", "wide_rows", "asymmetric_mixed"})
    check_fixture(f, name);
}

TEST_CASE("conv2d with f16 and bf16 weights matches F.conv2d on the widened weights") {
  const SafetensorsFile f(kFixtures);
  for (const char* name : {"weight_f16", "weight_bf16"}) check_fixture(f, name);
}

}  // TEST_SUITE("parity")

// ================================================================================================
TEST_SUITE("conv2d") {

TEST_CASE("random convolutions match a direct loop over the definition") {
  std::mt19937 rng(21);
  std::uniform_int_distribution<int64_t> small(0, 2), one_two(1, 2);
  for (int trial = 0; trial < 24; ++trial) {
    ops::Conv2dParams p;
    p.groups = one_two(rng);
    p.stride_h = one_two(rng), p.stride_w = one_two(rng);
    p.dilation_h = one_two(rng), p.dilation_w = one_two(rng);
    p.pad_top = small(rng), p.pad_bottom = small(rng), p.pad_left = small(rng), p.pad_right = small(rng);
    const int64_t Cg = 1 + small(rng) * 3, Og = 1 + small(rng) * 5, kh = 1 + small(rng), kw = 1 + small(rng);
    const int64_t H = 5 + small(rng) * 7, W = 5 + small(rng) * 19;
    CAPTURE(trial);
    const Tensor x = random_tensor({2, Cg * p.groups, H, W}, rng), w = random_tensor({Og * p.groups, Cg, kh, kw}, rng);
    const Tensor b = random_tensor({Og * p.groups}, rng);
    CHECK(relative_error(ops::conv2d(x, w, &b, p), conv2d_direct(x, w, &b, p)) <= kTolerance);
  }
}

TEST_CASE("a non-contiguous input view gives the definition's result") {
  std::mt19937 rng(23);
  const Tensor base = random_tensor({1, 6, 9, 11}, rng), w = random_tensor({5, 6, 3, 3}, rng);
  const Tensor x = base.transpose(2, 3);  // [1, 6, 11, 9]
  const auto p = ops::Conv2dParams::make(1, 1);
  CHECK(relative_error(ops::conv2d(x, w, nullptr, p), conv2d_direct(x, w, nullptr, p)) <= kTolerance);
}

TEST_CASE("the SD VAE downsample padding (0,1,0,1) with stride 2 halves an even size") {
  ops::Conv2dParams p = ops::Conv2dParams::make(2, 0);
  p.pad_bottom = p.pad_right = 1;
  const Tensor y = ops::conv2d(Tensor::zeros({1, 2, 64, 48}, DType::F32), Tensor::zeros({3, 2, 3, 3}, DType::F32), nullptr, p);
  CHECK(y.shape() == Shape{1, 3, 32, 24});
}

TEST_CASE("a 3x3 kernel with a single centre one copies its channel, and the bias is added per channel") {
  std::mt19937 rng(25);
  const Tensor x = random_tensor({1, 2, 7, 40}, rng);
  Tensor w = Tensor::zeros({2, 2, 3, 3}, DType::F32);
  w.data<float>()[0 * 18 + 1 * 9 + 4] = 1.0f;  // output 0 <- input channel 1
  w.data<float>()[1 * 18 + 0 * 9 + 4] = 1.0f;  // output 1 <- input channel 0
  Tensor b = Tensor::empty({2}, DType::F32);
  b.data<float>()[0] = 0.5f, b.data<float>()[1] = -2.0f;
  const Tensor y = ops::conv2d(x, w, &b, ops::Conv2dParams::make(1, 1));
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t j = 0; j < 40; ++j) {
      REQUIRE(y.item({0, 0, i, j}) == static_cast<float>(x.item({0, 1, i, j}) + 0.5));
      REQUIRE(y.item({0, 1, i, j}) == static_cast<float>(x.item({0, 0, i, j}) - 2.0));
    }
}

TEST_CASE("channels that groups does not divide are a ShapeError naming the tensors") {
  const Tensor x = Tensor::zeros({1, 6, 5, 5}, DType::F32), w = Tensor::zeros({4, 3, 3, 3}, DType::F32);
  CHECK_THROWS_WITH_AS(ops::conv2d(x, w, nullptr, ops::Conv2dParams::make(1, 1, 1, 4)), doctest::Contains("f32[1, 6, 5, 5]"), ShapeError);
  CHECK_THROWS_AS(ops::conv2d(x, Tensor::zeros({4, 4, 3, 3}, DType::F32), nullptr, ops::Conv2dParams::make(1, 1)), ShapeError);
}

TEST_CASE("a kernel larger than the padded input is a ShapeError, negative padding a UsageError") {
  const Tensor x = Tensor::zeros({1, 1, 2, 2}, DType::F32), w = Tensor::zeros({1, 1, 3, 3}, DType::F32);
  CHECK_THROWS_AS(ops::conv2d(x, w, nullptr, ops::Conv2dParams::make(1, 0)), ShapeError);
  ops::Conv2dParams p;
  p.pad_left = -1;
  CHECK_THROWS_WITH_AS(ops::conv2d(x, w, nullptr, p), doctest::Contains("negative padding"), UsageError);
}

}  // TEST_SUITE("conv2d")
