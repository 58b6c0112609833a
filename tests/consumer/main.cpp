// Builds against genscope as a user would and checks a result the library must get right.
#include <genscope/core/tensor.hpp>

#include <cstdio>

int main() {
  genscope::Tensor t = genscope::Tensor::zeros({2, 3}, genscope::DType::F32);
  t.data<float>()[5] = 1.0f + 1.0f / 2048;  // rounds to 1.0 in f16 (tie to even)
  const genscope::Tensor h = t.transpose(0, 1).to(genscope::DType::F16);
  const bool ok = h.item({2, 1}) == 1.0 && h.shape() == genscope::Shape{3, 2};
  std::printf("consumer: genscope %s\n", ok ? "works" : "FAILED");
  return ok ? 0 : 1;
}
