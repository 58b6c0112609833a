// genscope/cuda/blas.hpp — GEMM on the GPU through cuBLASLt, row-major like ops/gemm.hpp:
//   C[M,N] = act(alpha · op(A)[M,K] · op(B)[K,N] + beta · C + bias[N])
// in four precisions, all accumulating in f32:
//   F32   f32 in/out, f32 FMA (bit-for-bit IEEE products; the reference-grade path)
//   TF32  f32 in/out, tensor cores with 10-bit-mantissa inputs (CUBLAS_COMPUTE_32F_FAST_TF32)
//   F16   f16 in/out, tensor cores, f32 accumulate
//   BF16  bf16 in/out, tensor cores, f32 accumulate
// cuBLAS is column-major; a row-major C = A·B is the column-major Cᵀ = Bᵀ·Aᵀ, so the operands are
// passed swapped (B first) with their own transpose flags and M, N exchanged.
// The bias and activation run in cuBLASLt's epilogue when it has them (none, ReLU, tanh-GELU);
// the other activations and residual adds are kernels/gemm.cuh's gemm_epilogue, from a .cu file.
// A handle and a 32 MiB workspace are cached per device and host thread. Only with GENSCOPE_WITH_CUDA.
#pragma once

#include <cstdint>

#include "genscope/cuda/memory_pool.hpp"
#include "genscope/cuda/runtime.hpp"
#include "genscope/ops/activation.hpp"
#include "genscope/ops/gemm.hpp"

#if defined(GENSCOPE_WITH_CUDA)
#include <cublasLt.h>

namespace genscope::cuda {

inline void check_cublas(cublasStatus_t rc, const char* call, const char* file, int line) {
  if (rc != CUBLAS_STATUS_SUCCESS) throw_cuda_error(call, file, line, cublasGetStatusString(rc));
}
#define GENSCOPE_CUBLAS_CHECK(call) ::genscope::cuda::check_cublas((call), #call, __FILE__, __LINE__)

enum class GemmPrecision { F32, TF32, F16, BF16 };

// The cuBLASLt handle and workspace of the current device, for this host thread.
struct BlasContext {
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;

  static BlasContext& current() {
    const int device = current_device();
    thread_local BlasContext contexts[64];
    if (device >= 64) fail<DeviceError>("BlasContext: device ", device, " out of range");
    BlasContext& c = contexts[device];
    if (!c.handle) {
      GENSCOPE_CUBLAS_CHECK(cublasLtCreate(&c.handle));
      GENSCOPE_CUDA_CHECK(cudaMalloc(&c.workspace, kWorkspaceBytes));
    }
    return c;
  }
  BlasContext() = default;
  BlasContext(const BlasContext&) = delete;
  BlasContext& operator=(const BlasContext&) = delete;
  ~BlasContext() {
    if (handle) cublasLtDestroy(handle);
    if (workspace) cudaFree(workspace);
  }
};

namespace detail {
// RAII for the cuBLASLt descriptor objects.
template <class T, cublasStatus_t (*Destroy)(T)>
struct LtObject {
  T value = nullptr;
  LtObject() = default;
  LtObject(const LtObject&) = delete;
  LtObject& operator=(const LtObject&) = delete;
  ~LtObject() {
    if (value) Destroy(value);
  }
};
}  // namespace detail

// Row-major GEMM with leading dimensions in elements; A, B, C are device pointers of the
// precision's storage type (f32, f32, f16, bf16); bias is f32 [N] or null.
inline void gemm(ops::Trans ta, ops::Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const void* a, int64_t lda,
                 const void* b, int64_t ldb, float beta, void* c, int64_t ldc, GemmPrecision precision, cudaStream_t stream,
                 const float* bias = nullptr, ops::Activation act = ops::Activation::None) {
  if (m < 0 || n < 0 || k < 0) fail<ShapeError>("cuda::gemm: negative size M=", m, " N=", n, " K=", k);
  if (m == 0 || n == 0) return;
  cublasLtEpilogue_t epilogue;
  switch (act) {
    case ops::Activation::None: epilogue = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT; break;
    case ops::Activation::Relu: epilogue = bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU; break;
    case ops::Activation::GeluTanh: epilogue = bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU; break;
    default:
      fail<UsageError>("cuda::gemm: cuBLASLt has no ", ops::activation_name(act),
                       " epilogue; run the GEMM without it and then kernels::gemm_epilogue");
  }
  cudaDataType_t type = CUDA_R_32F;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  switch (precision) {
    case GemmPrecision::F32: break;
    case GemmPrecision::TF32: compute = CUBLAS_COMPUTE_32F_FAST_TF32; break;
    case GemmPrecision::F16: type = CUDA_R_16F; break;
    case GemmPrecision::BF16: type = CUDA_R_16BF; break;
  }
  BlasContext& ctx = BlasContext::current();
  detail::LtObject<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy> desc;
  GENSCOPE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc.value, compute, CUDA_R_32F));
  // Column-major view: D(n×m) = op(B)ᵀ(n×k) · op(A)ᵀ(k×m).
  const cublasOperation_t op_first = tb == ops::Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = ta == ops::Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N;
  GENSCOPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.value, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)));
  GENSCOPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.value, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)));
  GENSCOPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.value, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  if (bias) {
    const cudaDataType_t bias_type = CUDA_R_32F;
    GENSCOPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.value, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
    GENSCOPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.value, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  }
  // Layouts of the column-major operands: rows × cols before the op, leading dimension as given.
  detail::LtObject<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy> first, second, out;
  const bool first_t = op_first == CUBLAS_OP_T, second_t = op_second == CUBLAS_OP_T;
  GENSCOPE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&first.value, type, first_t ? k : n, first_t ? n : k, ldb));
  GENSCOPE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&second.value, type, second_t ? m : k, second_t ? k : m, lda));
  GENSCOPE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&out.value, type, n, m, ldc));

  detail::LtObject<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy> preference;
  GENSCOPE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference.value));
  const size_t workspace = BlasContext::kWorkspaceBytes;
  GENSCOPE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference.value, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                             sizeof(workspace)));
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  GENSCOPE_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(ctx.handle, desc.value, first.value, second.value, out.value, out.value,
                                                       preference.value, 1, &heuristic, &found));
  if (found == 0) fail<DeviceError>("cuda::gemm: cuBLASLt has no algorithm for M=", m, " N=", n, " K=", k);
  GENSCOPE_CUBLAS_CHECK(cublasLtMatmul(ctx.handle, desc.value, &alpha, b, first.value, a, second.value, &beta, c, out.value, c,
                                       out.value, &heuristic.algo, ctx.workspace, workspace, stream));
}

}  // namespace genscope::cuda

#endif  // GENSCOPE_WITH_CUDA
