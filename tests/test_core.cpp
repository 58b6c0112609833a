// Tests of core/: f16/bf16 conversion, Tensor views and copies, the thread pool.
// Expected values are worked out by hand from the IEEE formats or from the index arithmetic.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <vector>

#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"

using namespace genscope;

namespace {

// A contiguous f32 tensor holding 0, 1, 2, ... so every view's elements name their position.
Tensor arange(Shape shape) {
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(i);
  return t;
}

// The value an f16 bit pattern denotes, from the definition (no bit tricks).
double f16_value(uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 31, mantissa = h & 1023;
  const double s = sign ? -1.0 : 1.0;
  if (exponent == 0) return s * std::ldexp(mantissa, -24);
  if (exponent == 31) return mantissa ? std::numeric_limits<double>::quiet_NaN() : s * INFINITY;
  return s * std::ldexp(1024 + mantissa, exponent - 25);
}

}  // namespace

TEST_SUITE("core") {

TEST_CASE("every f16 bit pattern widens to the value IEEE binary16 defines") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const double expected = f16_value(static_cast<uint16_t>(h));
    const float got = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(expected)) {
      REQUIRE(std::isnan(got));
    } else {
      REQUIRE(static_cast<double>(got) == expected);
      REQUIRE(std::signbit(got) == ((h >> 15) != 0));
    }
  }
}

TEST_CASE("every finite f16 survives a round trip through f32") {
  for (uint32_t h = 0; h < 65536; ++h) {
    if (((h >> 10) & 31) == 31) continue;
    REQUIRE(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))) == h);
  }
}

TEST_CASE("f32 to f16 rounds to nearest with ties to even") {
  CHECK(f32_to_f16(1.0f) == 0x3C00);
  CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);      // tie, 0x3C00 is even
  CHECK(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);  // tie, rounds up to even
  CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3C01);  // above the tie
  CHECK(f32_to_f16(65504.0f) == 0x7BFF);   // largest finite
  CHECK(f32_to_f16(65519.0f) == 0x7BFF);   // below the midpoint to 65536
  CHECK(f32_to_f16(65520.0f) == 0x7C00);   // the midpoint rounds to even: Inf
  CHECK(f32_to_f16(-1e9f) == 0xFC00);
  CHECK(f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);          // smallest subnormal
  CHECK(f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);          // half of it: tie to even zero
  CHECK(f32_to_f16(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(f32_to_f16(std::ldexp(3.0f, -25)) == 0x0002);          // 1.5 units: tie to even 2
  CHECK(f32_to_f16(std::ldexp(1023.0f, -24)) == 0x03FF);       // largest subnormal
  CHECK(f32_to_f16(std::ldexp(2047.0f, -25)) == 0x0400);       // rounds up into the normals
  CHECK(f32_to_f16(-0.0f) == 0x8000);
}

TEST_CASE("f16 conversion keeps infinities and NaNs") {
  CHECK(f32_to_f16(INFINITY) == 0x7C00);
  CHECK(f32_to_f16(-INFINITY) == 0xFC00);
  const uint16_t nan = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7C00) == 0x7C00);
  CHECK((nan & 0x03FF) != 0);
  CHECK(std::isnan(f16_to_f32(nan)));
  // A signalling NaN whose payload sits only in the low bits must not become Inf.
  CHECK(std::isnan(f16_to_f32(f32_to_f16(std::bit_cast<float>(0x7F800001u)))));
}

TEST_CASE("f32 to bf16 rounds to nearest with ties to even and keeps NaN") {
  CHECK(f32_to_bf16(1.0f) == 0x3F80);
  CHECK(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);      // tie to even
  CHECK(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3F82);  // tie to even, upward
  CHECK(f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3F81);
  CHECK(f32_to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // rounds up to Inf
  CHECK(f32_to_bf16(-INFINITY) == 0xFF80);
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0x7FFFFFFFu)))));
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0x7F800001u)))));
  CHECK(bf16_to_f32(0x4049) == 3.140625f);
}

TEST_CASE("a new tensor is contiguous with row-major strides") {
  Tensor t = Tensor::empty({2, 3, 4}, DType::F32);
  CHECK(t.strides() == Shape{12, 4, 1});
  CHECK(t.is_contiguous());
  CHECK(t.numel() == 24);
  CHECK(t.nbytes() == 96);
  CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % 64 == 0);
  CHECK(t.str() == "f32[2, 3, 4]");
}

TEST_CASE("discarding the tail of a storage keeps the bytes before it") {
  // nn::ResnetBlock2D shrinks a tensor in place and gives back the pages of the planes beyond.
  Tensor t = Tensor::empty({4, 1 << 18}, DType::F32);  // 4 MB: whole pages to discard
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(i % 1000);
  t.storage()->discard(t.nbytes() / 4 + 123, t.nbytes());  // from inside a page to past the end
  bool kept = true;
  for (int64_t i = 0; i < t.numel() / 4 + 123 / 4; ++i) kept = kept && t.data<float>()[i] == static_cast<float>(i % 1000);
  CHECK(kept);
}

TEST_CASE("a slice views every step-th element along one dim") {
  Tensor t = arange({4, 5});
  Tensor s = t.slice(1, 1, 5, 2);  // columns 1 and 3
  CHECK(s.shape() == Shape{4, 2});
  CHECK(s.item({0, 0}) == 1);
  CHECK(s.item({0, 1}) == 3);
  CHECK(s.item({3, 1}) == 18);
  CHECK_FALSE(s.is_contiguous());
  CHECK(s.storage() == t.storage());
}

TEST_CASE("slices clamp like Python and accept negative bounds") {
  Tensor t = arange({10});
  CHECK(t.slice(0, -3, 100).shape() == Shape{3});
  CHECK(t.slice(0, -3, 100).item({0}) == 7);
  CHECK(t.slice(0, 8, 2).numel() == 0);
  CHECK_THROWS_AS(t.slice(0, 0, 5, 0), ShapeError);
}

TEST_CASE("select drops a dimension and checks its index") {
  Tensor t = arange({3, 4});
  Tensor row = t.select(0, -1);
  CHECK(row.shape() == Shape{4});
  CHECK(row.item({2}) == 10);
  CHECK(t.select(1, 1).item({2}) == 9);
  CHECK_THROWS_AS(t.select(0, 3), ShapeError);
}

TEST_CASE("transpose and permute swap strides without copying") {
  Tensor t = arange({2, 3, 4});
  Tensor p = t.permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Shape{1, 12, 4});
  CHECK(p.item({3, 1, 2}) == 1 * 12 + 2 * 4 + 3);
  Tensor tt = t.transpose(0, 2);
  CHECK(tt.shape() == Shape{4, 3, 2});
  CHECK(tt.item({1, 2, 1}) == 12 + 8 + 1);
  CHECK_THROWS_AS(t.permute({0, 0, 1}), ShapeError);
}

TEST_CASE("contiguous copies a permuted tensor into row-major order") {
  Tensor t = arange({2, 3}).transpose(0, 1);  // [[0,3],[1,4],[2,5]]
  Tensor c = t.contiguous();
  CHECK(c.is_contiguous());
  const std::vector<float> expected{0, 3, 1, 4, 2, 5};
  CHECK(std::equal(expected.begin(), expected.end(), c.data<float>()));
  CHECK(c.storage() != t.storage());
}

TEST_CASE("view reshapes compatible strides and infers one dimension") {
  Tensor t = arange({2, 3, 4});
  Tensor v = t.view({6, -1});
  CHECK(v.shape() == Shape{6, 4});
  CHECK(v.storage() == t.storage());
  CHECK(v.item({5, 3}) == 23);
  // Splitting and merging dims of a slice whose inner dims are still contiguous works.
  Tensor s = t.slice(0, 1, 2).view({3, 2, 2});
  CHECK(s.item({0, 0, 0}) == 12);
  CHECK(s.item({2, 1, 1}) == 23);
  CHECK(arange({}).view({1, 1}).shape() == Shape{1, 1});
}

TEST_CASE("view refuses strides it cannot express and reshape copies instead") {
  Tensor t = arange({3, 4}).transpose(0, 1);
  CHECK_THROWS_AS(t.view({12}), ShapeError);
  Tensor r = t.reshape({12});
  CHECK(r.item({1}) == 4);
  CHECK(r.item({3}) == 1);
  CHECK_THROWS_AS(t.reshape({5, -1}), ShapeError);
  CHECK_THROWS_AS(t.reshape({-1, -1}), ShapeError);
}

TEST_CASE("unsqueeze and squeeze add and remove size-one dims") {
  Tensor t = arange({3, 4});
  CHECK(t.unsqueeze(0).shape() == Shape{1, 3, 4});
  CHECK(t.unsqueeze(-1).shape() == Shape{3, 4, 1});
  CHECK(t.unsqueeze(1).squeeze(1).shape() == Shape{3, 4});
  CHECK_THROWS_AS(t.squeeze(0), ShapeError);
}

TEST_CASE("to converts through f16 and bf16 with rounding and truncates to integers") {
  Tensor t = Tensor::empty({4}, DType::F32);
  float* p = t.data<float>();
  p[0] = 1.0f + std::ldexp(1.0f, -11);
  p[1] = -2.75f;
  p[2] = 70000.0f;
  p[3] = 1e-8f;
  Tensor h = t.to(DType::F16);
  CHECK(h.data<f16>()[0].bits == 0x3C00);
  CHECK(h.item({1}) == -2.75);
  CHECK(std::isinf(h.item({2})));
  CHECK(h.item({3}) == 0.0);
  Tensor b = t.to(DType::BF16);
  CHECK(b.item({1}) == -2.75);
  Tensor i = t.to(DType::I32);
  CHECK(i.data<int32_t>()[1] == -2);
  CHECK(i.data<int32_t>()[2] == 70000);
  Tensor flag = t.to(DType::Bool);
  CHECK(flag.data<bool>()[3]);
}

TEST_CASE("data refuses a type that is not the tensor's dtype") {
  Tensor t = Tensor::zeros({2}, DType::I64);
  CHECK(t.data<int64_t>()[1] == 0);
  CHECK_THROWS_AS(t.data<float>(), ShapeError);
}

TEST_CASE("a wrapped tensor keeps the memory it does not own alive") {
  auto owner = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4, 5, 6});
  std::weak_ptr<std::vector<float>> watch = owner;
  Tensor t = Tensor::wrap(owner->data(), {2, 3}, DType::F32, owner);
  owner.reset();
  CHECK_FALSE(watch.expired());
  CHECK(t.item({1, 2}) == 6);
  CHECK_FALSE(t.storage()->owns_memory());
  Tensor view = t.select(0, 1);
  t = Tensor();
  CHECK_FALSE(watch.expired());
  view = Tensor();
  CHECK(watch.expired());
}

TEST_CASE("a view outside its storage is refused") {
  auto storage = Storage::allocate(16);
  CHECK_THROWS_AS(Tensor(storage, {5}, {1}, 0, DType::F32), ShapeError);
  CHECK_THROWS_AS(Tensor(storage, {2}, {1}, 3, DType::F32), ShapeError);
  CHECK_NOTHROW(Tensor(storage, {2, 2}, {1, 2}, 0, DType::F32));
}

TEST_CASE("shapes beyond eight dims, negative or overflowing are refused") {
  CHECK_THROWS_AS(Tensor::empty({1, 1, 1, 1, 1, 1, 1, 1, 1}, DType::F32), ShapeError);
  CHECK_THROWS_AS(Tensor::empty({-1}, DType::F32), ShapeError);
  CHECK_THROWS_AS(Tensor::empty({1LL << 40, 1LL << 40}, DType::F32), ShapeError);
}

TEST_CASE("a CUDA tensor without the CUDA backend is a device error") {
#if !defined(GENSCOPE_WITH_CUDA)
  CHECK_THROWS_AS(Tensor::empty({2}, DType::F32, Device::CUDA), DeviceError);
#endif
}

TEST_CASE("parallel_for visits every index exactly once") {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> hits(10007);
  pool.parallel_for(0, 10007, 13, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) hits[static_cast<size_t>(i)]++;
  });
  for (auto& h : hits) REQUIRE(h.load() == 1);
}

TEST_CASE("a nested parallel_for runs serially instead of deadlocking") {
  ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  pool.parallel_for(0, 8, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      pool.parallel_for(0, 100, 1, [&](int64_t a, int64_t b) { sum += b - a; });
  });
  CHECK(sum == 800);
}

TEST_CASE("an exception in a chunk reaches the caller and the pool stays usable") {
  ThreadPool pool(3);
  CHECK_THROWS_AS(pool.parallel_for(0, 1000, 1, [](int64_t lo, int64_t) {
    if (lo >= 500) throw InputError("chunk failed");
  }), InputError);
  std::atomic<int> n{0};
  pool.parallel_for(0, 100, 1, [&](int64_t lo, int64_t hi) { n += static_cast<int>(hi - lo); });
  CHECK(n == 100);
}

TEST_CASE("GENSCOPE_NUM_THREADS sets the pool size and rejects garbage") {
  ::setenv("GENSCOPE_NUM_THREADS", "3", 1);
  CHECK(configured_num_threads() == 3);
  ::setenv("GENSCOPE_NUM_THREADS", "three", 1);
  CHECK_THROWS_AS(configured_num_threads(), UsageError);
  ::setenv("GENSCOPE_NUM_THREADS", "0", 1);
  CHECK_THROWS_AS(configured_num_threads(), UsageError);
  ::unsetenv("GENSCOPE_NUM_THREADS");
  CHECK(configured_num_threads() >= 1);
}

TEST_CASE("errors carry their message and sit in one hierarchy") {
  try {
    fail<FormatError>("model.safetensors", ": tensor '", "w", "': bad offsets");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()) == "model.safetensors: tensor 'w': bad offsets");
  }
  CHECK(std::is_base_of_v<Error, UsageError>);
  CHECK(std::is_base_of_v<InputError, IoError>);
  CHECK(std::is_base_of_v<InputError, SecurityError>);
}

}  // TEST_SUITE
