// Emulated tests of kernels/vit.cuh (label simt): each kernel against the CPU reference written
// beside it. The permutations (patchify, split/merge heads) must be exact, in every dtype; the
// arithmetic ones (assemble_tokens, layer_average, mean_tokens) do the reference's f32 operations
// in the same order, so f32 must be exact too; in f16/bf16 they follow tests/simt/check.hpp's rule.
#include "simt/check.hpp"  // first: the SIMT emulator (or, under nvcc, the CUDA runtime)

#include "kernels/vit.cuh"

using namespace genscope;
using namespace simt_test;

namespace {

template <class T>
Vec<float> patchify_in(const Vec<float>& x, int64_t b, int64_t c, int64_t h, int64_t w, int64_t p) {
  Vec<T> cols(x.size());
  kernels::patchify(x.data(), cols.data(), b, c, h, w, p, nullptr);
  return to_floats(cols);
}

}  // namespace

TEST_SUITE("kernels_vit") {

TEST_CASE("patchify lays each patch out in the conv weight's (channel, row, column) order") {
  const int64_t B = 2, C = 3, H = 8, W = 12, p = 4;
  const auto x = random_normal(B * C * H * W, 1);
  Vec<float> ref(x.size());
  kernels::patchify_reference(x.data(), ref.data(), B, C, H, W, p);
  CHECK(patchify_in<float>(x, B, C, H, W, p) == ref);
}

TEST_CASE("patchify rounds each pixel once into f16 and bf16") {
  const int64_t B = 1, C = 3, H = 6, W = 4, p = 2;
  const auto x = random_normal(B * C * H * W, 2);
  Vec<float> ref(x.size());
  kernels::patchify_reference(x.data(), ref.data(), B, C, H, W, p);
  CHECK(patchify_in<f16>(x, B, C, H, W, p) == rounded<f16>(ref));
  CHECK(patchify_in<bf16>(x, B, C, H, W, p) == rounded<bf16>(ref));
}

TEST_CASE("patchify refuses an input that is not a multiple of the patch") {
  Vec<float> x(30), cols(30);
  CHECK_THROWS_AS(kernels::patchify(x.data(), cols.data(), 1, 1, 5, 6, 2, nullptr), ShapeError);
}

TEST_CASE("assemble_tokens adds the position table to the class token and the patches") {
  const int64_t B = 2, N = 5, D = 7;
  const auto patches = random_normal(B * N * D, 3), cls = random_normal(D, 4), pos = random_normal((N + 1) * D, 5);
  for (int64_t prefix : {0, 1}) {
    CAPTURE(prefix);
    Vec<float> got(B * (N + prefix) * D), ref(got.size());
    kernels::assemble_tokens(patches.data(), cls.data(), pos.data(), got.data(), B, N, prefix, D, nullptr);
    kernels::assemble_tokens_reference(patches.data(), cls.data(), pos.data(), ref.data(), B, N, prefix, D);
    CHECK(got == ref);
  }
}

TEST_CASE("bf16 assemble_tokens is within twice the error of the bf16-rounded sum") {
  const int64_t B = 2, N = 9, D = 33;
  const auto patches = rounded<bf16>(random_normal(B * N * D, 6)), cls = random_normal(D, 7), pos = random_normal((N + 1) * D, 8);
  const auto ps = to_storage<bf16>(patches);
  Vec<bf16> got(B * (N + 1) * D);
  kernels::assemble_tokens(ps.data(), cls.data(), pos.data(), got.data(), B, N, 1, D, nullptr);
  Vec<float> ref(got.size());
  kernels::assemble_tokens_reference(patches.data(), cls.data(), pos.data(), ref.data(), B, N, 1, D);
  Vec<double> ref_rounded(ref.size());
  for (size_t i = 0; i < ref.size(); ++i) ref_rounded[i] = round_to<bf16>(ref[i]);
  check_dtype_rule(max_abs_error(to_floats(got), ref), max_abs_error(ref_rounded, ref), max_abs(ref));
}

TEST_CASE("split_heads gives q, k and v as contiguous [B, H, S, hd] tensors") {
  const int64_t B = 2, S = 5, H = 3, hd = 4;
  for (int64_t parts : {2, 3}) {
    CAPTURE(parts);
    const auto fused = random_normal(B * S * parts * H * hd, 9);
    Vec<float> got(fused.size()), ref(fused.size());
    kernels::split_heads(fused.data(), got.data(), B, S, parts, H, hd, nullptr);
    kernels::split_heads_reference(fused.data(), ref.data(), B, S, parts, H, hd);
    CHECK(got == ref);
  }
}

TEST_CASE("merge_heads undoes the head-major layout of split_heads") {
  const int64_t B = 2, S = 7, H = 3, hd = 5;
  const auto fused = to_storage<f16>(random_normal(B * S * H * hd, 10));
  Vec<f16> heads(fused.size()), merged(fused.size());
  kernels::split_heads(fused.data(), heads.data(), B, S, 1, H, hd, nullptr);
  kernels::merge_heads(heads.data(), merged.data(), B, H, S, hd, nullptr);
  CHECK(to_floats(merged) == to_floats(fused));
  Vec<float> ref(fused.size());
  kernels::merge_heads_reference(to_floats(heads).data(), ref.data(), B, H, S, hd);
  CHECK(ref == to_floats(fused));
}

TEST_CASE("layer_average sums the layers, divides once and normalises per channel as the AIM head does") {
  const int64_t rows = 6, cols = 9;
  const auto a = random_normal(rows * cols, 11), b = random_normal(rows * cols, 12), c = random_normal(rows * cols, 13);
  const auto mean = random_normal(cols, 14), inv = random_uniform(cols, 15, 0.5f, 2.0f);
  Vec<float> got = a, ref = a;
  kernels::layer_average(got.data(), b.data(), rows, cols, 1.0f, nullptr, nullptr, nullptr);
  kernels::layer_average(got.data(), c.data(), rows, cols, 3.0f, mean.data(), inv.data(), nullptr);
  kernels::layer_average_reference(ref.data(), b.data(), rows, cols, 1.0f, nullptr, nullptr);
  kernels::layer_average_reference(ref.data(), c.data(), rows, cols, 3.0f, mean.data(), inv.data());
  CHECK(got == ref);
}

TEST_CASE("layer_average of a single layer only normalises it") {
  const int64_t rows = 3, cols = 4;
  const auto a = random_normal(rows * cols, 16), mean = random_normal(cols, 17), inv = random_uniform(cols, 18, 0.5f, 2.0f);
  Vec<float> got = a;
  kernels::layer_average(got.data(), static_cast<const float*>(nullptr), rows, cols, 1.0f, mean.data(), inv.data(), nullptr);
  for (int64_t i = 0; i < rows * cols; ++i) CHECK(got[i] == (a[i] - mean[i % cols]) * inv[i % cols]);
}

TEST_CASE("mean_tokens averages the patch tokens into a column slice of the output") {
  const int64_t B = 3, S = 10, D = 37, ld = 3 * D;
  const auto x = random_normal(B * S * D, 19);
  for (int64_t prefix : {0, 1}) {
    CAPTURE(prefix);
    Vec<float> got(B * ld, -7.0f), ref(B * ld, -7.0f);
    kernels::mean_tokens(x.data(), got.data() + D, B, S, D, prefix, ld, nullptr);
    kernels::mean_tokens_reference(x.data(), ref.data() + D, B, S, D, prefix, ld);
    CHECK(got == ref);
  }
}

TEST_CASE("mean_tokens refuses a class-token prefix that leaves no patch tokens") {
  Vec<float> x(4), out(4);
  CHECK_THROWS_AS(kernels::mean_tokens(x.data(), out.data(), 1, 1, 4, 1, 4, nullptr), ShapeError);
}

}  // TEST_SUITE
