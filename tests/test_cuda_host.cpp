// Tests of the CUDA host layer's device rules that need no GPU (include/genscope/cuda/): ops run
// where their tensors are, mixing devices is an error naming the op and the tensors, and a build
// or machine without CUDA says so. A "CUDA tensor" here wraps host memory marked Device::CUDA:
// only its device tag is read, never its data. CPU results are checked against ops/*.hpp.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "genscope/core/tensor.hpp"
#include "genscope/cuda/device.hpp"
#include "genscope/cuda/ops.hpp"
#include "genscope/cuda/runtime.hpp"
#include "genscope/ops/softmax.hpp"
#include "support.hpp"

using namespace genscope;

namespace {

std::vector<float> backing(4096);

Tensor fake_cuda(Shape shape) {
  return Tensor(Storage::wrap(backing.data(), backing.size() * sizeof(float), nullptr, Device::CUDA), shape,
                Tensor::contiguous_strides(shape), 0, DType::F32);
}

Tensor ramp(Shape shape) {
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(i % 7) - 3.0f;
  return t;
}

std::string error_of(auto&& call) { return test::message_of<DeviceError>(call, "(no DeviceError)"); }

}  // namespace

TEST_SUITE("cuda_host") {

TEST_CASE("common_device names the op and both tensors when devices differ") {
  const Tensor x = ramp({2, 3}), w = fake_cuda({3, 3});
  const std::string e = error_of([&] { cuda::common_device("linear", {{"x", x}, {"weight", w}}); });
  CHECK(e == "linear: x is on cpu but weight is on cuda; move them to one device (genscope::cuda::to_device)");
}

TEST_CASE("common_device skips undefined tensors and defaults to the CPU") {
  const Tensor none;
  CHECK(cuda::common_device("op", {{"a", none}}) == Device::CPU);
  CHECK(cuda::common_device("op", {{"a", none}, {"b", fake_cuda({1})}}) == Device::CUDA);
}

TEST_CASE("an op with CPU tensors runs genscope's CPU op") {
  const Tensor x = ramp({3, 5});
  const Tensor got = cuda::softmax(x), expected = ops::softmax(x, -1);
  for (int64_t i = 0; i < x.numel(); ++i) CHECK(got.data<float>()[i] == expected.data<float>()[i]);
}

TEST_CASE("an op with tensors on two devices is refused before any work") {
  const Tensor x = ramp({2, 4}), w = fake_cuda({4, 4});
  CHECK(error_of([&] { cuda::linear(x, w); }).find("linear: x is on cpu but weight is on cuda") == 0);
  CHECK(error_of([&] { cuda::layer_norm(x, fake_cuda({4})); }).find("layer_norm: x is on cpu but weight is on cuda") == 0);
  CHECK(error_of([&] { cuda::attention(fake_cuda({1, 1, 2, 4}), x.view({1, 1, 2, 4}), x.view({1, 1, 2, 4})); })
            .find("attention: q is on cuda but k is on cpu") == 0);
}

TEST_CASE("a kernel op on CUDA tensors from a g++ translation unit says where its kernels are") {
  const std::string e = error_of([&] { cuda::softmax(fake_cuda({2, 2})); });
  CHECK(e.find("softmax on CUDA tensors runs genscope's kernels") == 0);
}

TEST_CASE("moving a tensor to the GPU without one is a DeviceError") {
  if (cuda::available()) return;  // a machine with a GPU: nothing to refuse
  CHECK_THROWS_AS(cuda::to_device(ramp({2}), Device::CUDA), DeviceError);
  CHECK(cuda::device_count() == 0);
}

TEST_CASE("moving a CPU tensor to the CPU gives a contiguous copy of it") {
  const Tensor x = ramp({3, 4}).transpose(0, 1);
  const Tensor y = cuda::to_device(x, Device::CPU);
  CHECK(y.is_contiguous());
  CHECK(y.item({2, 1}) == x.item({2, 1}));
}

}  // TEST_SUITE
