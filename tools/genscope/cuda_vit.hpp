// tools/genscope/cuda_vit.hpp — the command line's way to the Vision Transformers' GPU path
// (models/vit_cuda.hpp). That header launches CUDA kernels, so only nvcc may compile it: it is
// included by cuda_vit.cu, which joins the program when genscope is built with CUDA
// (tools/CMakeLists.txt defines GENSCOPE_CLI_CUDA then). This header is plain C++ for g++.
#pragma once

#include <functional>
#include <string>

#include "genscope/core/tensor.hpp"
#include "genscope/models/vit_features.hpp"

namespace genscope::cli {

// pixels f32 [B, C, H, W] (CPU) → features f32 [B, F] (CPU), the rows model.features() gives.
using VitFeatureFn = std::function<Tensor(const Tensor&)>;

// Uploads `model` to the current GPU at `precision` (f32, tf32, f16 or bf16; see
// models/vit_cuda.hpp). DeviceError naming the reason when no GPU can be used; UsageError for an
// unknown precision.
VitFeatureFn make_cuda_vit_features(const models::VitFeatureExtractor& model, const std::string& precision);

}  // namespace genscope::cli
