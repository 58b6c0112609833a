// genscope/io/image_write.hpp — write RGB images as PNG, atomically.
//
//   void save_png(path, image)   image U8 [H, W, 3] (HWC, RGB; any strides) → PNG file
//   Tensor to_u8_image(x)        f32 [3, H, W] (or [1, 3, H, W]) in [0, 1] → U8 [H, W, 3]
//
// Encoding is stb_image_write's (Debian's libstb ships its implementation, as it does
// stb_image's); the bytes are built in memory and written through AtomicFile (io/safetensors.hpp):
// a temporary file in the target's directory, fsync, rename. An interrupted writer never leaves a
// half-written PNG under the target name, which is what `genscope reconstruct --resume` relies on.
//
// to_u8_image rounds as torchvision.utils.save_image does — x·255 + 0.5, clamped to [0, 255],
// truncated — the conversion UAR/RAID's reconstruct scripts use when they save PNGs.
#pragma once

#include <stb_image_write.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/io/safetensors.hpp"

namespace genscope {

inline void save_png(const std::string& path, const Tensor& image) {
  if (image.dim() != 3 || image.size(2) != 3 || image.dtype() != DType::U8)
    fail<ShapeError>(path, ": save_png needs a U8 [H, W, 3] image, got ", image.str());
  const int64_t h = image.size(0), w = image.size(1);
  if (h < 1 || w < 1 || h > INT_MAX / 3 || w > INT_MAX / 3)
    fail<ShapeError>(path, ": cannot write a PNG of ", w, "x", h, " pixels");
  const Tensor pixels = image.contiguous();
  std::string bytes;
  const auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  if (!stbi_write_png_to_func(append, &bytes, static_cast<int>(w), static_cast<int>(h), 3, pixels.data<uint8_t>(),
                              static_cast<int>(w * 3)))
    fail<IoError>(path, ": PNG encoding failed (stb_image_write)");
  AtomicFile out(path);
  out.write(bytes.data(), bytes.size());
  out.commit();
}

inline Tensor to_u8_image(const Tensor& x_in) {
  const Tensor x = (x_in.dim() == 4 && x_in.size(0) == 1) ? x_in.select(0, 0) : x_in;
  if (x.dim() != 3 || x.size(0) != 3) fail<ShapeError>("to_u8_image: expected [3, H, W] or [1, 3, H, W], got ", x_in.str());
  const Tensor chw = x.contiguous().to(DType::F32);
  const int64_t h = chw.size(1), w = chw.size(2);
  Tensor out = Tensor::empty({h, w, 3}, DType::U8);
  const float* src = chw.data<float>();
  uint8_t* dst = out.data<uint8_t>();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < h * w; ++i) {
      const float v = std::clamp(src[c * h * w + i] * 255.0f + 0.5f, 0.0f, 255.0f);  // NaN → 0 below
      dst[i * 3 + c] = v == v ? static_cast<uint8_t>(v) : 0;
    }
  return out;
}

}  // namespace genscope
