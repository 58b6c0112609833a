// genscope/io/preprocess.hpp — what a model sees for an image: torchvision's transforms on a PIL
// image, reproduced on genscope tensors.
//
//   Resize(N, interpolation)  -> resize_shorter_side() + resize_pil() (PIL's Image.resize, bit-exact)
//   CenterCrop(N)             -> center_crop() (zero padding when the image is smaller)
//   ToTensor()                -> to_chw_float(): [H, W, C] u8 -> [C, H, W] f32, x / 255
//   Normalize(mean, std)      -> normalize(): (x - mean) / std per channel, in float32
//
// Preprocess chains them; clip_preprocess() and imagenet_preprocess() are the usual settings.
// The float steps use the same float32 operations in the same order as torch, so the result is
// identical to torchvision's, not merely close.
//
// Order of conversion: genscope converts to RGB when decoding (io/image.hpp), before resizing,
// as Hugging Face's image processors do. OpenAI's CLIP `_transform` converts after Resize and
// CenterCrop; that gives the same pixels for RGB, grey and palette images, and differs only for
// images with alpha, which PIL resizes with premultiplied alpha.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/ops/resize.hpp"

namespace genscope {

inline constexpr std::array<float, 3> kClipMean = {0.48145466f, 0.4578275f, 0.40821073f};
inline constexpr std::array<float, 3> kClipStd = {0.26862954f, 0.26130258f, 0.27577711f};
inline constexpr std::array<float, 3> kImageNetMean = {0.485f, 0.456f, 0.406f};
inline constexpr std::array<float, 3> kImageNetStd = {0.229f, 0.224f, 0.225f};

// torchvision's Resize(size) with an int: the shorter side becomes `size`, the longer one
// int(size * long / short) (transforms.functional._compute_resized_output_size). Returns
// {height, width}. UsageError if size or a side is not positive.
inline std::pair<int, int> resize_shorter_side(int height, int width, int size) {
  if (size < 1) fail<UsageError>("resize: the size must be positive, got ", size);
  if (height < 1 || width < 1) fail<UsageError>("resize: cannot resize an empty image (", height, " x ", width, ")");
  const bool portrait = width <= height;
  const int64_t shorter = portrait ? width : height, longer = portrait ? height : width;
  // Python's size * long / short: an exact integer product, then a correctly rounded division,
  // which double arithmetic reproduces for any sizes below 2^53; int() truncates.
  const double ratio = static_cast<double>(int64_t{size} * longer) / static_cast<double>(shorter);
  if (ratio >= 2147483647.0) fail<UsageError>("resize: resizing ", height, " x ", width, " to ", size, " gives a side over 2^31");
  const int new_long = static_cast<int>(ratio);
  return portrait ? std::pair{new_long, size} : std::pair{size, new_long};
}

// torchvision's CenterCrop((crop_h, crop_w)) on an image [H, W, C] or [H, W] of any dtype: if the
// crop is larger than the image, first pad with zeros, (crop - size) // 2 before and the rest
// after; then top = int(round((H - crop_h) / 2.0)), left likewise, with Python's round (half to
// even). Returns a contiguous tensor. UsageError for a non-positive crop size.
inline Tensor center_crop(const Tensor& image, int crop_h, int crop_w) {
  if (crop_h < 1 || crop_w < 1) fail<UsageError>("center_crop: the crop size must be positive, got ", crop_h, " x ", crop_w);
  if (image.dim() != 3 && image.dim() != 2) fail<UsageError>("center_crop: expected an image [H, W, C] or [H, W], got ", image.str());
  Tensor img = image;
  int64_t h = img.size(0), w = img.size(1);
  if (crop_h > h || crop_w > w) {
    const int64_t top = crop_h > h ? (crop_h - h) / 2 : 0;
    const int64_t left = crop_w > w ? (crop_w - w) / 2 : 0;
    Shape padded_shape = img.shape();
    padded_shape[0] = std::max<int64_t>(h, crop_h);
    padded_shape[1] = std::max<int64_t>(w, crop_w);
    Tensor padded = Tensor::zeros(padded_shape, img.dtype());
    padded.slice(0, top, top + h).slice(1, left, left + w).copy_from(img);
    img = padded;
    h = img.size(0);
    w = img.size(1);
  }
  // round((h - crop_h) / 2.0) in Python: the halves are exact in double; ties go to even.
  auto round_half_even_half = [](int64_t twice) { return twice / 2 + ((twice % 2) && ((twice / 2) % 2) ? 1 : 0); };
  const int64_t top = round_half_even_half(h - crop_h), left = round_half_even_half(w - crop_w);
  return img.slice(0, top, top + crop_h).slice(1, left, left + crop_w).contiguous();
}

// torch.nn.functional.pad(x, (left, right, top, bottom), mode="reflect") — numpy's "reflect",
// OpenCV's BORDER_REFLECT_101: the edge pixel is not repeated (..., 2, 1 | 0, 1, 2, ...). Pads the
// last two dims, so pass [C, H, W] (or [N, C, H, W], or [H, W]); for an HWC image use
// pad_reflect101(img.permute({2, 0, 1}), ...). Any dtype. Like torch, each pad must be less than
// the size of its dim; UsageError otherwise, or if a pad is negative.
inline Tensor pad_reflect101(const Tensor& x, int top, int bottom, int left, int right) {
  if (x.dim() < 2) fail<UsageError>("pad_reflect101: expected at least 2 dims (..., H, W), got ", x.str());
  if (top < 0 || bottom < 0 || left < 0 || right < 0)
    fail<UsageError>("pad_reflect101: pads must not be negative, got top ", top, " bottom ", bottom, " left ", left, " right ", right);
  const int64_t h = x.size(-2), w = x.size(-1);
  if (top >= h || bottom >= h || left >= w || right >= w)
    fail<UsageError>("pad_reflect101: reflect padding must be less than the size it pads: top ", top, ", bottom ", bottom,
                     " for height ", h, "; left ", left, ", right ", right, " for width ", w);
  const Tensor in = x.contiguous();
  Shape shape = in.shape();
  shape[shape.size() - 2] = h + top + bottom;
  shape[shape.size() - 1] = w + left + right;
  Tensor out = Tensor::empty(shape, in.dtype());
  const int64_t oh = h + top + bottom, ow = w + left + right;
  const int64_t planes = h * w == 0 ? 0 : in.numel() / (h * w);
  const size_t es = in.element_size();
  auto reflect = [](int64_t i, int64_t n) { return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i); };
  const auto* src = static_cast<const uint8_t*>(in.data_ptr());
  auto* dst = static_cast<uint8_t*>(out.data_ptr());
  for (int64_t p = 0; p < planes; ++p) {
    const uint8_t* s = src + static_cast<size_t>(p * h * w) * es;
    uint8_t* d = dst + static_cast<size_t>(p * oh * ow) * es;
    for (int64_t y = 0; y < oh; ++y) {
      const uint8_t* srow = s + static_cast<size_t>(reflect(y - top, h) * w) * es;
      uint8_t* drow = d + static_cast<size_t>(y * ow) * es;
      for (int64_t xo = 0; xo < left; ++xo) std::memcpy(drow + static_cast<size_t>(xo) * es, srow + static_cast<size_t>(reflect(xo - left, w)) * es, es);
      std::memcpy(drow + static_cast<size_t>(left) * es, srow, static_cast<size_t>(w) * es);
      for (int64_t xo = left + w; xo < ow; ++xo) std::memcpy(drow + static_cast<size_t>(xo) * es, srow + static_cast<size_t>(reflect(xo - left, w)) * es, es);
    }
  }
  return out;
}

// ToTensor: a u8 image [H, W, C] (or [H, W]) to float32 [C, H, W] (or [1, H, W]) in [0, 1],
// computed as float(x) / 255.0f like torch's img.float().div(255).
inline Tensor to_chw_float(const Tensor& image) {
  if (image.dtype() != DType::U8 || (image.dim() != 3 && image.dim() != 2))
    fail<UsageError>("to_chw_float: expected a u8 image [H, W, C] or [H, W], got ", image.str());
  const Tensor hwc = (image.dim() == 2 ? image.unsqueeze(2) : image).contiguous();
  const int64_t h = hwc.size(0), w = hwc.size(1), c = hwc.size(2);
  Tensor out = Tensor::empty(Shape{c, h, w}, DType::F32);
  const uint8_t* in = hwc.data<uint8_t>();
  float* o = out.data<float>();
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t i = 0; i < h * w; ++i) o[ch * h * w + i] = static_cast<float>(in[i * c + ch]) / 255.0f;
  return out;
}

// Normalize in place: x = (x - mean[c]) / std[c] in float32 (torch: tensor.sub_(mean).div_(std)).
// `chw` is float32 [C, H, W] (or [N, C, H, W]); mean and std need C values each, std non-zero.
inline void normalize(Tensor& chw, std::span<const float> mean, std::span<const float> std) {
  if (chw.dtype() != DType::F32 || chw.dim() < 3 || !chw.is_contiguous())
    fail<UsageError>("normalize: expected a contiguous float32 tensor [C, H, W] or [N, C, H, W], got ", chw.str());
  const int64_t c = chw.size(-3), plane = chw.size(-2) * chw.size(-1);
  if (static_cast<int64_t>(mean.size()) != c || static_cast<int64_t>(std.size()) != c)
    fail<UsageError>("normalize: ", c, " channels need ", c, " mean and std values, got ", mean.size(), " and ", std.size());
  for (float s : std)
    if (s == 0.0f || !std::isfinite(s)) fail<UsageError>("normalize: std values must be finite and non-zero, got ", s);
  float* p = chw.data<float>();
  const int64_t images = plane * c == 0 ? 0 : chw.numel() / (plane * c);
  for (int64_t n = 0; n < images; ++n)
    for (int64_t ch = 0; ch < c; ++ch) {
      float* q = p + (n * c + ch) * plane;
      const float m = mean[static_cast<size_t>(ch)], s = std[static_cast<size_t>(ch)];
      for (int64_t i = 0; i < plane; ++i) q[i] = (q[i] - m) / s;
    }
}

// The reference pipeline: [Resize(resize, interp)] -> [CenterCrop(crop)] -> ToTensor ->
// [Normalize(mean, std)]. Empty mean/std mean no normalisation (mean 0, std 1).
struct Preprocess {
  std::optional<int> resize;  // shorter side, as torchvision's Resize(int)
  Interp interp = Interp::Bicubic;
  std::optional<int> crop;    // square center crop
  std::vector<float> mean, std;

  // u8 [H, W, 3] (from load_image_rgb) -> float32 [3, H', W'].
  Tensor run(const Tensor& hwc_u8) const {
    if (hwc_u8.dtype() != DType::U8 || hwc_u8.dim() != 3)
      fail<UsageError>("preprocess: expected a u8 image [H, W, C], got ", hwc_u8.str());
    if (resize && *resize < 1) fail<UsageError>("preprocess: the resize size must be positive, got ", *resize);
    if (crop && *crop < 1) fail<UsageError>("preprocess: the crop size must be positive, got ", *crop);
    Tensor img = hwc_u8;
    if (resize) {
      const auto [h, w] = resize_shorter_side(static_cast<int>(img.size(0)), static_cast<int>(img.size(1)), *resize);
      if (h != img.size(0) || w != img.size(1)) img = resize_pil(img, h, w, interp);  // as torchvision: same size, no-op
    }
    if (crop) img = center_crop(img, *crop, *crop);
    Tensor chw = to_chw_float(img);
    if (!mean.empty() || !std.empty()) {
      const std::vector<float> m = mean.empty() ? std::vector<float>(static_cast<size_t>(chw.size(0)), 0.0f) : mean;
      const std::vector<float> s = std.empty() ? std::vector<float>(static_cast<size_t>(chw.size(0)), 1.0f) : std;
      normalize(chw, m, s);
    }
    return chw;
  }
};

// OpenAI CLIP's preprocessing (clip.load's _transform, also transformers' CLIPImageProcessor):
// Resize(size, BICUBIC), CenterCrop(size), ToTensor, Normalize(CLIP mean, CLIP std).
inline Preprocess clip_preprocess(int size = 224) {
  return Preprocess{size, Interp::Bicubic, size, {kClipMean.begin(), kClipMean.end()}, {kClipStd.begin(), kClipStd.end()}};
}

// The classic ImageNet evaluation transform: Resize(256, BILINEAR), CenterCrop(224), ToTensor,
// Normalize(ImageNet mean, std).
inline Preprocess imagenet_preprocess(int resize = 256, int crop = 224) {
  return Preprocess{resize, Interp::Bilinear, crop, {kImageNetMean.begin(), kImageNetMean.end()},
                    {kImageNetStd.begin(), kImageNetStd.end()}};
}

}  // namespace genscope
