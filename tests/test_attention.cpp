// Tests of ops/attention.hpp.
//   suite "attention": the tiled online-softmax path against the naive definition
//                      (attention_reference: full score row, softmax in double), values worked
//                      out by hand, mask semantics and argument errors
//   suite "parity":    against torch.nn.functional.scaled_dot_product_attention, through
//                      tests/data/ops/attention.safetensors (tools/reference/make_ops_fixtures.py);
//                      ≤ 1e-5 relative to the largest expected magnitude
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>

#include "genscope/core/tensor.hpp"
#include "genscope/io/safetensors.hpp"
#include "genscope/ops/attention.hpp"
#include "support.hpp"

using namespace genscope;

namespace {

const SafetensorsFile& fixtures() { return test::fixture_file("ops/attention.safetensors"); }
Tensor fx(const std::string& name) { return fixtures().get(name); }

using test::random_normal;

// max |got − want| / max |want|; a NaN in either fails the test case.
double relative_error(const Tensor& got, const Tensor& want) {
  return test::relative_error(got, want, test::NanRule::forbidden);
}

constexpr double kTol = 1e-5;

}  // namespace

TEST_SUITE("attention") {

TEST_CASE("tiled attention equals the full-softmax definition across tile boundaries") {
  // 150 queries (64 + 64 + 22) over 260 keys (128 + 128 + 4), D = 20, Dv = 12, logits of size ~6.
  const Tensor q = random_normal({2, 3, 150, 20}, 1, 1.5f), k = random_normal({2, 3, 260, 20}, 2, 1.5f);
  const Tensor v = random_normal({2, 3, 260, 12}, 3);
  CHECK(relative_error(ops::attention(q, k, v), ops::attention_reference(q, k, v)) <= kTol);
}

TEST_CASE("identical keys give every query the mean of the values") {
  const Tensor q = random_normal({1, 1, 3, 4}, 4);
  Tensor k = Tensor::zeros({1, 1, 5, 4}, DType::F32);
  Tensor v = Tensor::empty({1, 1, 5, 1}, DType::F32);
  for (int j = 0; j < 5; ++j) v.data<float>()[j] = static_cast<float>(j);  // mean 2
  const Tensor out = ops::attention(q, k, v);
  for (int i = 0; i < 3; ++i) CHECK(out.item({0, 0, i, 0}) == doctest::Approx(2.0).epsilon(1e-6));
}

TEST_CASE("a query whose keys are all blocked gets a row of zeros") {
  const Tensor q = random_normal({1, 2, 3, 4}, 5), k = random_normal({1, 2, 200, 4}, 6), v = random_normal({1, 2, 200, 4}, 7);
  Tensor mask = Tensor::empty({3, 200}, DType::Bool);
  for (int64_t i = 0; i < mask.numel(); ++i) mask.data<bool>()[i] = i / 200 != 1;  // row 1 blocked
  const Tensor out = ops::attention(q, k, v, mask);
  for (int h = 0; h < 2; ++h)
    for (int c = 0; c < 4; ++c) CHECK(out.item({0, h, 1, c}) == 0.0);
  CHECK(relative_error(out, ops::attention_reference(q, k, v, mask)) <= kTol);
}

TEST_CASE("a key-padding mask of shape [Tk] broadcasts over batch, heads and queries") {
  const Tensor q = random_normal({2, 2, 5, 8}, 8), k = random_normal({2, 2, 9, 8}, 9), v = random_normal({2, 2, 9, 8}, 10);
  Tensor mask = Tensor::empty({9}, DType::Bool);
  for (int j = 0; j < 9; ++j) mask.data<bool>()[j] = j < 6;
  // Blocking keys 6..8 equals attending to the first 6 keys only.
  const Tensor out = ops::attention(q, k, v, mask);
  const Tensor want = ops::attention(q, k.slice(2, 0, 6), v.slice(2, 0, 6));
  CHECK(relative_error(out, want) <= kTol);
}

TEST_CASE("heads sliced out of a fused qkv projection give the same result as contiguous ones") {
  // qkv [B, T, 3, H, D] as a Linear writes it; q = qkv[:, :, 0].permute(0, 2, 1, 3) is strided.
  const Tensor qkv = random_normal({2, 70, 3, 2, 16}, 11);
  const Tensor q = qkv.select(2, 0).permute({0, 2, 1, 3}), k = qkv.select(2, 1).permute({0, 2, 1, 3});
  const Tensor v = qkv.select(2, 2).permute({0, 2, 1, 3});
  CHECK(relative_error(ops::attention(q, k, v), ops::attention(q.contiguous(), k.contiguous(), v.contiguous())) <= 1e-6);
}

TEST_CASE("attention reads f16 inputs") {
  const Tensor q = random_normal({1, 1, 10, 8}, 12).to(DType::F16), k = random_normal({1, 1, 10, 8}, 13).to(DType::F16);
  const Tensor v = random_normal({1, 1, 10, 8}, 14).to(DType::F16);
  CHECK(relative_error(ops::attention(q, k, v), ops::attention_reference(q, k, v)) <= kTol);
}

TEST_CASE("attention refuses keys whose head_dim differs from the queries'") {
  CHECK_THROWS_WITH_AS(ops::attention(Tensor::zeros({1, 1, 2, 4}, DType::F32), Tensor::zeros({1, 1, 2, 5}, DType::F32),
                                      Tensor::zeros({1, 1, 2, 4}, DType::F32)),
                       doctest::Contains("attention: k"), ShapeError);
}

TEST_CASE("attention refuses a mask that does not broadcast to the scores") {
  const Tensor x = Tensor::zeros({1, 1, 2, 4}, DType::F32);
  CHECK_THROWS_AS(ops::attention(x, x, x, Tensor::zeros({3}, DType::Bool)), ShapeError);
  CHECK_THROWS_AS(ops::attention(x, x, x, Tensor::zeros({2}, DType::I32)), ShapeError);
}

TEST_CASE("attention_into refuses an output of the wrong shape") {
  const Tensor x = Tensor::zeros({1, 1, 2, 4}, DType::F32);
  Tensor out = Tensor::zeros({1, 1, 2, 3}, DType::F32);
  CHECK_THROWS_AS(ops::attention_into(out, x, x, x), ShapeError);
}

}  // TEST_SUITE("attention")

TEST_SUITE("parity") {

TEST_CASE("attention matches torch SDPA for every fixture case") {
  for (const char* name : {"vit", "vae", "cross", "mask_bool", "mask_add", "scale", "single"}) {
    CAPTURE(name);
    const std::string n = name;
    const Tensor mask = fixtures().contains(n + ".mask") ? fx(n + ".mask") : Tensor();
    std::optional<float> scale;
    if (fixtures().contains(n + ".scale")) scale = static_cast<float>(fx(n + ".scale").item({0}));
    const Tensor out = ops::attention(fx(n + ".q"), fx(n + ".k"), fx(n + ".v"), mask, scale);
    CHECK(relative_error(out, fx(n + ".out")) <= kTol);
  }
}

TEST_CASE("the full-softmax reference also matches torch SDPA") {
  for (const char* name : {"vit", "mask_bool", "mask_add", "scale"}) {
    CAPTURE(name);
    const std::string n = name;
    const Tensor mask = fixtures().contains(n + ".mask") ? fx(n + ".mask") : Tensor();
    std::optional<float> scale;
    if (fixtures().contains(n + ".scale")) scale = static_cast<float>(fx(n + ".scale").item({0}));
    CHECK(relative_error(ops::attention_reference(fx(n + ".q"), fx(n + ".k"), fx(n + ".v"), mask, scale), fx(n + ".out")) <= kTol);
  }
}

}  // TEST_SUITE("parity")
