// The nvcc check (ctest nvcc.kernels, label nvcc): every kernel family in kernels/ and every
// header of the CUDA host layer, compiled and linked by nvcc for each architecture in
// CMAKE_CUDA_ARCHITECTURES (genscope's default: 80 and 90), with every launcher instantiated for
// every storage dtype, so every kernel template is compiled to SASS for each architecture.
//
// Why this fails when compilation fails: the test runs this program, so if nvcc (or ptxas, or
// the link) fails, the executable does not exist and ctest reports the test as failed ("Not
// Run"). When it does run, it reads its own executable's .nv_fatbin section and checks that it
// holds a cubin for each required architecture (given as arguments, e.g. 80 90) containing
// genscope's kernels — so a build that silently dropped an architecture fails too. Nothing here
// needs a GPU.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <elf.h>

#include "genscope/cuda/blas.hpp"
#include "genscope/cuda/cudnn.hpp"
#include "genscope/cuda/device.hpp"
#include "genscope/cuda/fft.hpp"
#include "genscope/cuda/memory_pool.hpp"
#include "genscope/cuda/ops.hpp"
#include "genscope/cuda/runtime.hpp"
#include "kernels/attention.cuh"
#include "kernels/detector_heads.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/fft.cuh"
#include "kernels/gemm.cuh"
#include "kernels/groupnorm.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/softmax.cuh"
#include "kernels/vae.cuh"
#include "kernels/vit.cuh"

namespace genscope::kernels {
// Every launcher for every storage dtype (each instantiates its kernels for every activation).
#define GENSCOPE_FOR_STORAGE_TYPES(X) X(float) X(f16) X(bf16)
#define GENSCOPE_INSTANTIATE(T)                                                                                      \
  template void activation<T>(Activation, const T*, T*, int64_t, cudaStream_t);                                      \
  template void binary<T>(BinaryOp, const T*, const T*, T*, int64_t, int64_t, cudaStream_t);                         \
  template void layer_norm<T>(const T*, const float*, const float*, T*, int64_t, int64_t, float, Activation, cudaStream_t); \
  template void group_norm<T>(const T*, const float*, const float*, T*, int64_t, int64_t, int64_t, int64_t, float, Activation, \
                              cudaStream_t);                                                                         \
  template void softmax<T>(const T*, T*, int64_t, int64_t, float, cudaStream_t);                                     \
  template void attention<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int, float, cudaStream_t); \
  template void gemm_epilogue<T>(T*, int64_t, const float*, Activation, const T*, int64_t, int64_t, int64_t, cudaStream_t); \
  template void pad_bottom_right<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, cudaStream_t);         \
  template void upsample_nearest2x<T>(const T*, T*, int64_t, int64_t, int64_t, cudaStream_t);                        \
  template void add_bias_residual<T>(T*, const float*, const T*, int64_t, int64_t, int64_t, cudaStream_t);           \
  template void group_norm_split<T>(const T*, const float*, const float*, T*, int64_t, int64_t, int64_t, int64_t, float, Activation, \
                                    float*, cudaStream_t, int64_t);                                                  \
  template void patchify<T>(const float*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, cudaStream_t);            \
  template void assemble_tokens<T>(const T*, const float*, const float*, T*, int64_t, int64_t, int64_t, int64_t, cudaStream_t); \
  template void split_heads<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, cudaStream_t);             \
  template void merge_heads<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, cudaStream_t);                      \
  template void layer_average<T>(T*, const T*, int64_t, int64_t, float, const float*, const float*, cudaStream_t);   \
  template void mean_tokens<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, cudaStream_t);
GENSCOPE_FOR_STORAGE_TYPES(GENSCOPE_INSTANTIATE)
#undef GENSCOPE_INSTANTIATE
template void cast<float, f16>(const float*, f16*, int64_t, cudaStream_t);
template void cast<float, bf16>(const float*, bf16*, int64_t, cudaStream_t);
template void cast<f16, float>(const f16*, float*, int64_t, cudaStream_t);
template void cast<bf16, float>(const bf16*, float*, int64_t, cudaStream_t);
template void gemm_f32<false>(const GemmArgs&, Activation, cudaStream_t);
template void gemm_f32<true>(const GemmArgs&, Activation, cudaStream_t);
template void fftshift2d<float>(const float*, float*, int64_t, int, int, bool, cudaStream_t);
template void fftshift2d<float2>(const float2*, float2*, int64_t, int, int, bool, cudaStream_t);
}  // namespace genscope::kernels

// The host layer's entry points, referenced so they are compiled and linked against cudart,
// cuBLASLt, cuDNN and cuFFT.
[[maybe_unused]] static void* const host_layer[] = {
    reinterpret_cast<void*>(&genscope::cuda::gemm),        reinterpret_cast<void*>(&genscope::cuda::conv2d),
    reinterpret_cast<void*>(&genscope::cuda::fft2),        reinterpret_cast<void*>(&genscope::cuda::rfft2),
    reinterpret_cast<void*>(&genscope::cuda::softmax),     reinterpret_cast<void*>(&genscope::cuda::layer_norm),
    reinterpret_cast<void*>(&genscope::cuda::linear),      reinterpret_cast<void*>(&genscope::cuda::attention),
    reinterpret_cast<void*>(&genscope::kernels::radial_mask), reinterpret_cast<void*>(&genscope::kernels::rbf_kernel_matrix),
    reinterpret_cast<void*>(&genscope::kernels::gmm_log_likelihood), reinterpret_cast<void*>(&genscope::kernels::svm_prepare),
    reinterpret_cast<void*>(&genscope::kernels::row_sq_norms),       reinterpret_cast<void*>(&genscope::kernels::svm_decision)};

// Kernels (".text.<mangled name>" sections) per architecture in the fatbins of an ELF executable.
static std::map<int, int> kernels_per_arch(const std::vector<char>& exe, int& cubins, int& compressed) {
  std::map<int, int> found;
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(exe.data());
  const auto* sh = reinterpret_cast<const Elf64_Shdr*>(exe.data() + eh->e_shoff);
  const char* names = exe.data() + sh[eh->e_shstrndx].sh_offset;
  for (int s = 0; s < eh->e_shnum; ++s) {
    if (std::strcmp(names + sh[s].sh_name, ".nv_fatbin") != 0) continue;
    size_t p = sh[s].sh_offset;
    const size_t end = p + sh[s].sh_size;
    while (p + 16 <= end) {  // fatbins, one per translation unit, back to back (8-byte aligned)
      uint32_t magic;
      std::memcpy(&magic, exe.data() + p, 4);
      if (magic != 0xBA55ED50u) {
        p += 8;
        continue;
      }
      uint16_t header;
      uint64_t size;
      std::memcpy(&header, exe.data() + p + 6, 2);
      std::memcpy(&size, exe.data() + p + 8, 8);
      size_t e = p + header;
      while (e + 32 <= p + header + size) {  // entries: kind (1 PTX, 2 cubin), header size, payload size, arch
        uint16_t kind;
        uint32_t entry_header, arch, compressed_size;
        uint64_t payload;
        std::memcpy(&kind, exe.data() + e, 2);
        std::memcpy(&entry_header, exe.data() + e + 4, 4);
        std::memcpy(&payload, exe.data() + e + 8, 8);
        std::memcpy(&compressed_size, exe.data() + e + 16, 4);
        std::memcpy(&arch, exe.data() + e + 28, 4);
        if (kind == 2) {
          ++cubins;
          found[static_cast<int>(arch)] += 0;
          if (compressed_size != 0) {
            ++compressed;
          } else {
            const std::string body(exe.data() + e + entry_header, payload);
            for (size_t at = body.find(".text._ZN8genscope7kernels"); at != std::string::npos;
                 at = body.find(".text._ZN8genscope7kernels", at + 1))
              ++found[static_cast<int>(arch)];
          }
        }
        e += entry_header + payload;
      }
      p += header + size;
    }
  }
  return found;
}

int main(int argc, char** argv) {
  std::ifstream in("/proc/self/exe", std::ios::binary);
  const std::vector<char> exe((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int cubins = 0, compressed = 0;
  const std::map<int, int> found = kernels_per_arch(exe, cubins, compressed);
  std::printf("nvcc kernels: %d cubins (%d compressed)\n", cubins, compressed);
  for (const auto& [arch, n] : found) std::printf("  sm_%d: %d genscope kernel sections\n", arch, n);
  int failures = 0;
  for (int i = 1; i < argc; ++i) {
    const int arch = std::atoi(argv[i]);
    const auto it = found.find(arch);
    if (it == found.end()) {
      std::printf("FAILED: no sm_%d cubin in the executable\n", arch);
      ++failures;
    } else if (compressed == 0 && it->second == 0) {
      std::printf("FAILED: the sm_%d cubin holds no genscope kernels\n", arch);
      ++failures;
    }
  }
  std::printf("nvcc kernels: %s (GPUs visible: %d)\n", failures ? "FAILED" : "ok", genscope::cuda::device_count());
  return failures ? 1 : 0;
}
