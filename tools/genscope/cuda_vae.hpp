// tools/genscope/cuda_vae.hpp — `genscope reconstruct --device cuda`: the VAE round trip on the
// GPU (models/vae_cuda.hpp), defined in cuda_vae.cu, which nvcc compiles into the program when
// genscope is built with CUDA (GENSCOPE_CLI_CUDA). Declared here so the g++-compiled command
// (cmd_reconstruct.hpp) can call it without seeing any CUDA code.
#pragma once

#include <functional>

#include "genscope/core/tensor.hpp"

namespace genscope::models {
class AutoencoderKL;
struct VaeRunOptions;
}  // namespace genscope::models

namespace genscope::cli {

// Uploads `vae`'s weights (f32) to the current GPU once and returns x → models::vae_roundtrip on
// it: host f32 [1, 3, H, W] in [−1, 1] → host f32 [1, 3, H, W], the CPU path's padding, tiles,
// seeded sample and crop. `vae` may be destroyed afterwards. DeviceError, naming the reason, when
// no GPU is usable.
// Throws DeviceError naming why no GPU is usable (no driver, no device); checked before the
// weights are loaded.
void require_cuda_vae_device();

std::function<Tensor(const Tensor&)> make_cuda_vae_roundtrip(const models::AutoencoderKL& vae, const models::VaeRunOptions& options);

}  // namespace genscope::cli
