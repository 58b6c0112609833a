// tools/genscope/cuda_vit.cu — `genscope features --device cuda` (declared in cuda_vit.hpp).
#include "cuda_vit.hpp"

#include <memory>

#include "genscope/models/vit_cuda.hpp"

namespace genscope::cli {

VitFeatureFn make_cuda_vit_features(const models::VitFeatureExtractor& model, const std::string& precision) {
  const auto p = models::parse_vit_precision(precision);
  if (!p) fail<UsageError>("features: option '--precision' must be one of f32, tf32, f16, bf16; got '", precision, "'");
  // Shared so the std::function stays copyable; the device model is freed with the last copy.
  auto gpu = std::make_shared<models::CudaVitFeatureExtractor>(model, *p);
  return [gpu](const Tensor& pixels) { return gpu->features(pixels); };
}

}  // namespace genscope::cli
