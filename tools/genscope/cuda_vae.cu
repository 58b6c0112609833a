// tools/genscope/cuda_vae.cu — the GPU round trip of `genscope reconstruct --device cuda`
// (declared in cuda_vae.hpp). Only the device model's code lives here: this file must not call
// genscope's CPU ops (see models/vae_cuda.hpp), the command itself stays in cmd_reconstruct.hpp.
#include "cuda_vae.hpp"

#include <memory>

#include "genscope/models/vae_cuda.hpp"

namespace genscope::cli {

// main() prefixes the command's name: "genscope reconstruct: --device cuda: no usable CUDA device: …".
void require_cuda_vae_device() { models::require_cuda_device("--device cuda"); }

std::function<Tensor(const Tensor&)> make_cuda_vae_roundtrip(const models::AutoencoderKL& vae, const models::VaeRunOptions& options) {
  // f32 storage and FMA convolutions: the CPU path's numerics, so both devices write the same PNGs
  // (up to float rounding). shared_ptr: std::function must be copyable.
  auto gpu = std::make_shared<const models::CudaAutoencoderKL<float>>(vae);
  return [gpu, options](const Tensor& x) { return models::vae_roundtrip(*gpu, x, options); };
}

}  // namespace genscope::cli
