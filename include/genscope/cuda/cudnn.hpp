// genscope/cuda/cudnn.hpp — 2-D convolution on the GPU through cuDNN:
//   y[n, k, p, q] = Σ_c Σ_r Σ_s x[n, c, p·stride − pad + r·dilation, q·stride − pad + s·dilation] · w[k, c, r, s] + bias[k]
// (torch.nn.functional.conv2d, NCHW, groups supported), f32/f16/bf16 tensors with f32
// accumulation (f32 math may use TF32 tensor cores only when allow_tf32 is set, as torch's
// allow_tf32 flag). The algorithm is cuDNN's heuristic first choice that fits the workspace,
// which comes from the stream-ordered pool; a cuDNN handle is cached per device and host thread.
// Only with GENSCOPE_WITH_CUDA.
#pragma once

#include <cstdint>

#include "genscope/core/dtype.hpp"
#include "genscope/cuda/memory_pool.hpp"
#include "genscope/cuda/runtime.hpp"

#if defined(GENSCOPE_WITH_CUDA)
#include <cudnn.h>

namespace genscope::cuda {

inline void check_cudnn(cudnnStatus_t rc, const char* call, const char* file, int line) {
  if (rc != CUDNN_STATUS_SUCCESS) throw_cuda_error(call, file, line, cudnnGetErrorString(rc));
}
#define GENSCOPE_CUDNN_CHECK(call) ::genscope::cuda::check_cudnn((call), #call, __FILE__, __LINE__)

inline cudnnHandle_t cudnn_handle() {
  struct Handle {
    cudnnHandle_t h = nullptr;
    ~Handle() {
      if (h) cudnnDestroy(h);
    }
  };
  const int device = current_device();
  thread_local Handle handles[64];
  if (device >= 64) fail<DeviceError>("cudnn_handle: device ", device, " out of range");
  if (!handles[device].h) GENSCOPE_CUDNN_CHECK(cudnnCreate(&handles[device].h));
  return handles[device].h;
}

struct Conv2dShape {
  int n, c, h, w;       // input
  int k, r, s;          // output channels, kernel height and width (w is [k, c / groups, r, s])
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1;
  int out_h() const { return (h + 2 * pad_h - dilation_h * (r - 1) - 1) / stride_h + 1; }
  int out_w() const { return (w + 2 * pad_w - dilation_w * (s - 1) - 1) / stride_w + 1; }
};

namespace detail {
template <class T, cudnnStatus_t (*Destroy)(T)>
struct DnnObject {
  T value = nullptr;
  DnnObject() = default;
  DnnObject(const DnnObject&) = delete;
  DnnObject& operator=(const DnnObject&) = delete;
  ~DnnObject() {
    if (value) Destroy(value);
  }
};
inline cudnnDataType_t cudnn_type(DType t) {
  switch (t) {
    case DType::F32: return CUDNN_DATA_FLOAT;
    case DType::F16: return CUDNN_DATA_HALF;
    case DType::BF16: return CUDNN_DATA_BFLOAT16;
    default: fail<ShapeError>("conv2d: dtype ", t, " is not f32, f16 or bf16");
  }
}
}  // namespace detail

// x [n, c, h, w], w [k, c/groups, r, s], bias [k] (same dtype, or null), y [n, k, out_h, out_w];
// device pointers, contiguous NCHW.
inline void conv2d(const Conv2dShape& s, DType dtype, const void* x, const void* w, const void* bias, void* y, cudaStream_t stream,
                   bool allow_tf32 = false) {
  if (s.groups < 1 || s.c % s.groups != 0 || s.k % s.groups != 0)
    fail<ShapeError>("conv2d: ", s.c, " input and ", s.k, " output channels do not divide into ", s.groups, " groups");
  if (s.out_h() < 1 || s.out_w() < 1) fail<ShapeError>("conv2d: a ", s.r, "x", s.s, " kernel does not fit a ", s.h, "x", s.w, " input");
  const cudnnDataType_t type = detail::cudnn_type(dtype);
  cudnnHandle_t handle = cudnn_handle();
  GENSCOPE_CUDNN_CHECK(cudnnSetStream(handle, stream));
  detail::DnnObject<cudnnTensorDescriptor_t, cudnnDestroyTensorDescriptor> x_desc, y_desc, b_desc;
  detail::DnnObject<cudnnFilterDescriptor_t, cudnnDestroyFilterDescriptor> w_desc;
  detail::DnnObject<cudnnConvolutionDescriptor_t, cudnnDestroyConvolutionDescriptor> conv;
  GENSCOPE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_desc.value));
  GENSCOPE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_desc.value, CUDNN_TENSOR_NCHW, type, s.n, s.c, s.h, s.w));
  GENSCOPE_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w_desc.value));
  GENSCOPE_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w_desc.value, type, CUDNN_TENSOR_NCHW, s.k, s.c / s.groups, s.r, s.s));
  GENSCOPE_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv.value));
  // Cross-correlation, as torch's conv2d; f32 accumulation for every input type.
  GENSCOPE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv.value, s.pad_h, s.pad_w, s.stride_h, s.stride_w, s.dilation_h,
                                                       s.dilation_w, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  GENSCOPE_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv.value, s.groups));
  const cudnnMathType_t math = dtype != DType::F32 ? CUDNN_TENSOR_OP_MATH : (allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH);
  GENSCOPE_CUDNN_CHECK(cudnnSetConvolutionMathType(conv.value, math));
  GENSCOPE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y_desc.value));
  GENSCOPE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y_desc.value, CUDNN_TENSOR_NCHW, type, s.n, s.k, s.out_h(), s.out_w()));

  cudnnConvolutionFwdAlgoPerf_t perf[8];
  int found = 0;
  GENSCOPE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, x_desc.value, w_desc.value, conv.value, y_desc.value, 8, &found, perf));
  int choice = -1;
  for (int i = 0; i < found && choice < 0; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) choice = i;
  if (choice < 0) fail<DeviceError>("conv2d: cuDNN found no forward algorithm for this shape");
  const size_t workspace_bytes = perf[choice].memory;
  DeviceBuffer workspace(workspace_bytes, stream);
  const float one = 1.0f, zero = 0.0f;  // alpha/beta are f32 for f32, f16 and bf16 data
  GENSCOPE_CUDNN_CHECK(cudnnConvolutionForward(handle, &one, x_desc.value, x, w_desc.value, w, conv.value, perf[choice].algo,
                                               workspace.data(), workspace_bytes, &zero, y_desc.value, y));
  if (bias) {
    GENSCOPE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&b_desc.value));
    GENSCOPE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(b_desc.value, CUDNN_TENSOR_NCHW, type, 1, s.k, 1, 1));
    GENSCOPE_CUDNN_CHECK(cudnnAddTensor(handle, &one, b_desc.value, bias, &one, y_desc.value, y));
  }
}

}  // namespace genscope::cuda

#endif  // GENSCOPE_WITH_CUDA
