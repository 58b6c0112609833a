// genscope/io/rich_texture_crop.hpp — UAR's and RAID's "rich texture" crop (Jmh0527/UAR
// feature_extract.py, Patch.smash_recons and ImageFeatureDataset.__getitem__):
//
//   192 candidate windows of 224×224, each at (top, left) = (randint(0, H−224), randint(0, W−224));
//   each scored by get_pixel_flictuation: the sum over all channels of the absolute horizontal,
//   vertical, diagonal and anti-diagonal neighbour differences inside the window; the highest
//   scoring window is kept. An image with a side under 224 (randint raises, the except branch)
//   is instead resized to 224×224 with PIL's bilinear filter (transforms.Resize((224, 224))).
//
// The original draws from Python's unseeded global `random`; genscope's crop is seeded and
// deterministic. Its generator is CPython's: MT19937 seeded as random.seed(seed) does
// (init_by_array over the seed's 32-bit words) and randint's rejection sampling
// (_randbelow_with_getrandbits), so the candidates are exactly those UAR draws after
// random.seed(seed). Scores are exact integer sums (UAR sums float32, which rounds past 2^24);
// ties go to the later candidate, as a stable argsort's last element.
#pragma once

#include <array>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/ops/resize.hpp"

namespace genscope {

// CPython's random.Random for integer seeds (Modules/_randommodule.c): MT19937 (Matsumoto &
// Nishimura 1998) seeded by init_by_array, getrandbits(k ≤ 32) and randint(a, b).
class PyRandom {
 public:
  explicit PyRandom(uint64_t seed) {
    // random.seed(n): the 32-bit words of |n|, least significant first; at least one word.
    std::vector<uint32_t> key{static_cast<uint32_t>(seed)};
    if (seed >> 32) key.push_back(static_cast<uint32_t>(seed >> 32));
    init_by_array(key);
  }

  uint32_t next_u32() {
    if (index_ >= kN) twist();
    uint32_t y = mt_[index_++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
  }

  // random.randint(a, b): a + _randbelow(b − a + 1), rejection sampling on getrandbits(k),
  // k = bit_length(n). For ranges below 2^32.
  int64_t randint(int64_t a, int64_t b) {
    const uint64_t n = static_cast<uint64_t>(b - a) + 1;
    if (b < a || n > 0xFFFFFFFFull) fail<UsageError>("randint: bad range [", a, ", ", b, "]");
    int k = 0;
    while ((n >> k) != 0) ++k;
    uint64_t r;
    do r = next_u32() >> (32 - k);
    while (r >= n);
    return a + static_cast<int64_t>(r);
  }

 private:
  static constexpr int kN = 624, kM = 397;

  void init_genrand(uint32_t s) {
    mt_[0] = s;
    for (int i = 1; i < kN; ++i) mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
    index_ = kN;
  }

  void init_by_array(const std::vector<uint32_t>& key) {
    init_genrand(19650218u);
    int i = 1;
    size_t j = 0;
    for (size_t k = std::max<size_t>(kN, key.size()); k; --k) {
      mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525u)) + key[j] + static_cast<uint32_t>(j);
      ++i;
      ++j;
      if (i >= kN) {
        mt_[0] = mt_[kN - 1];
        i = 1;
      }
      if (j >= key.size()) j = 0;
    }
    for (int k = kN - 1; k; --k) {
      mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941u)) - static_cast<uint32_t>(i);
      if (++i >= kN) {
        mt_[0] = mt_[kN - 1];
        i = 1;
      }
    }
    mt_[0] = 0x80000000u;
  }

  void twist() {
    for (int i = 0; i < kN; ++i) {
      const uint32_t y = (mt_[i] & 0x80000000u) | (mt_[(i + 1) % kN] & 0x7fffffffu);
      mt_[i] = mt_[(i + kM) % kN] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    index_ = 0;
  }

  std::array<uint32_t, kN> mt_{};
  int index_ = kN;
};

struct TextureWindow {
  int64_t top = 0, left = 0;
  int64_t score = 0;
};

// get_pixel_flictuation of the size × size window at (top, left) of a u8 image [H, W, C]. Per
// window row y and channel-interleaved index i (pixel x = i / C):
//   horizontal     |row_y[i] − row_y[i + C]|          x[:, :-1] − x[:, 1:]
//   vertical       |row_y[i] − row_y+1[i]|            x[:-1, :] − x[1:, :]
//   diagonal       |row_y[i] − row_y+1[i + C]|        x[:-1, :-1] − x[1:, 1:]
//   anti-diagonal  |row_y+1[i] − row_y[i + C]|        x[1:, :-1] − x[:-1, 1:]
inline int64_t texture_score(const Tensor& hwc_u8, int64_t top, int64_t left, int64_t size) {
  const Tensor img = hwc_u8.contiguous();
  const int64_t W = img.size(1), C = img.dim() == 3 ? img.size(2) : 1;
  const uint8_t* p = img.data<uint8_t>();
  const int64_t n = (size - 1) * C;  // pairs along a row
  int64_t sum = 0;
  for (int64_t y = top; y < top + size; ++y) {
    const uint8_t* r0 = p + (y * W + left) * C;
    int32_t acc = 0;  // one row: at most 4 · 255 · size · C, far below 2^31
    for (int64_t i = 0; i < n; ++i) acc += std::abs(int32_t{r0[i]} - int32_t{r0[i + C]});
    if (y + 1 < top + size) {
      const uint8_t* r1 = r0 + W * C;
      for (int64_t i = 0; i < size * C; ++i) acc += std::abs(int32_t{r0[i]} - int32_t{r1[i]});
      for (int64_t i = 0; i < n; ++i) acc += std::abs(int32_t{r0[i]} - int32_t{r1[i + C]}) + std::abs(int32_t{r1[i]} - int32_t{r0[i + C]});
    }
    sum += acc;
  }
  return sum;
}

// The candidate windows in draw order (top, then left, per candidate, as smash_recons), scored.
// Requires both sides ≥ size.
inline std::vector<TextureWindow> texture_candidates(const Tensor& hwc_u8, int64_t size, int candidates, uint64_t seed) {
  const int64_t H = hwc_u8.size(0), W = hwc_u8.size(1);
  if (H < size || W < size) fail<UsageError>("rich texture crop: the image (", H, " x ", W, ") is smaller than the window ", size);
  PyRandom rng(seed);
  std::vector<TextureWindow> windows(static_cast<size_t>(candidates));
  for (auto& w : windows) {
    w.top = rng.randint(0, H - size);
    w.left = rng.randint(0, W - size);
  }
  const Tensor img = hwc_u8.contiguous();
  parallel_for(0, candidates, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      auto& w = windows[static_cast<size_t>(i)];
      w.score = texture_score(img, w.top, w.left, size);
    }
  });
  return windows;
}

// The rich-texture crop of a u8 RGB image [H, W, 3] → u8 [size, size, 3].
inline Tensor rich_texture_crop(const Tensor& hwc_u8, uint64_t seed = 0, int64_t size = 224, int candidates = 192) {
  if (hwc_u8.dtype() != DType::U8 || hwc_u8.dim() != 3)
    fail<UsageError>("rich texture crop: expected a u8 image [H, W, C], got ", hwc_u8.str());
  if (size < 1 || candidates < 1) fail<UsageError>("rich texture crop: size and candidates must be positive");
  if (hwc_u8.size(0) < size || hwc_u8.size(1) < size)
    return resize_pil(hwc_u8, static_cast<int>(size), static_cast<int>(size), Interp::Bilinear);
  const auto windows = texture_candidates(hwc_u8, size, candidates, seed);
  size_t best = 0;
  for (size_t i = 1; i < windows.size(); ++i)
    if (windows[i].score >= windows[best].score) best = i;
  const auto& w = windows[best];
  return hwc_u8.slice(0, w.top, w.top + size).slice(1, w.left, w.left + size).contiguous();
}

}  // namespace genscope
