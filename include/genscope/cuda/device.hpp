// genscope/cuda/device.hpp — which device an op runs on, and moving tensors between devices.
//
// An op runs where its tensors are: all on the CPU → the CPU op, all CUDA → the GPU. Tensors on
// different devices in one call are an error that names the op and each tensor's device:
//   "linear: x is on cuda but weight is on cpu; move them to one device (genscope::cuda::to_device)"
// This header compiles with and without CUDA; without it, a CUDA tensor cannot exist (Storage
// refuses to allocate one) and to_device(t, Device::CUDA) throws DeviceError saying so.
#pragma once

#include <cstring>
#include <initializer_list>

#include "genscope/core/tensor.hpp"
#include "genscope/cuda/runtime.hpp"

namespace genscope::cuda {

struct NamedTensor {
  const char* name;
  const Tensor& tensor;
};

// The device every defined tensor is on (CPU when none is defined); DeviceError when they differ.
inline Device common_device(const char* op, std::initializer_list<NamedTensor> tensors) {
  const NamedTensor* first = nullptr;
  for (const NamedTensor& t : tensors) {
    if (!t.tensor.defined()) continue;
    if (!first) {
      first = &t;
    } else if (t.tensor.device() != first->tensor.device()) {
      fail<DeviceError>(op, ": ", first->name, " is on ", first->tensor.device(), " but ", t.name, " is on ", t.tensor.device(),
                        "; move them to one device (genscope::cuda::to_device)");
    }
  }
  return first ? first->tensor.device() : Device::CPU;
}

// A contiguous copy of t on `device` (t itself when it already is contiguous there). With CUDA,
// the copy is ordered on `stream` and complete when this returns.
#if defined(GENSCOPE_WITH_CUDA)
inline Tensor to_device(const Tensor& t, Device device, cudaStream_t stream = nullptr) {
  if (t.device() == device && t.is_contiguous()) return t;
  if (t.device() == Device::CPU && device == Device::CPU) return t.contiguous();
  if (t.device() == Device::CUDA && !t.is_contiguous())
    fail<DeviceError>("to_device: ", t.str(), " is a strided CUDA view; make it contiguous on the GPU first");
  const Tensor src = t.device() == Device::CPU ? t.contiguous() : t;
  Tensor dst = Tensor::empty(t.shape(), t.dtype(), device);
  const cudaMemcpyKind kind = src.device() == Device::CPU ? (device == Device::CPU ? cudaMemcpyHostToHost : cudaMemcpyHostToDevice)
                                                          : (device == Device::CPU ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice);
  GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), src.nbytes(), kind, stream));
  GENSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream));
  return dst;
}
#else
inline Tensor to_device(const Tensor& t, Device device, void* /*stream*/ = nullptr) {
  if (device == Device::CUDA || t.device() == Device::CUDA)
    fail<DeviceError>("to_device: ", t.str(), " to ", device, ": genscope was built without CUDA (GENSCOPE_CUDA=OFF)");
  return t.contiguous();
}
#endif

}  // namespace genscope::cuda
