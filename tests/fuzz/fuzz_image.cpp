// libFuzzer target for the image reader (io/image.hpp) and the resampler behind preprocessing.
//
// The input is decoded from memory with a 1-megapixel limit (so a header claiming a huge image is
// refused rather than exhausting the fuzzer's memory); a decoded image must have the size
// probe_image reported, and is then resized with PIL's bicubic filter and converted to float, so
// that every decoded byte is read. stb_image's implementation is compiled into this file (not
// linked from libstb) so that the sanitizers and the fuzzer's coverage see inside it.
// genscope::Error is the only acceptable failure.
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I include -I /usr/include/stb \
//     tests/fuzz/fuzz_image.cpp -o fuzz_image
//   ./fuzz_image -max_total_time=60 -rss_limit_mb=2048 NEW_DIR tests/fuzz/corpus/image
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#undef STB_IMAGE_IMPLEMENTATION

#include <cstddef>
#include <cstdint>
#include <span>

#include "genscope/core/tensor.hpp"
#include "genscope/io/image.hpp"
#include "genscope/io/preprocess.hpp"
#include "genscope/ops/resize.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace genscope;
  const std::span<const uint8_t> bytes(data, size);
  try {
    const ImageInfo info = probe_image(bytes, "fuzz.img");
    ImageLoadOptions options;
    options.max_pixels = 1u << 20;
    const Tensor rgb = decode_image_rgb(bytes, "fuzz.img", options);
    if (rgb.dtype() != DType::U8 || !(rgb.shape() == Shape{info.height, info.width, 3})) __builtin_trap();
    const Tensor small = resize_pil(rgb, 7, 9, Interp::Bicubic);
    const Tensor chw = to_chw_float(small);
    volatile float sink = 0;
    for (int64_t i = 0; i < chw.numel(); ++i) sink = sink + chw.data<float>()[i];
  } catch (const Error&) {
  }
  return 0;
}
