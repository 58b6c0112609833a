// genscope/io/image.hpp — decode an image file to RGB pixels the way the reference pipelines
// get them: PIL's `Image.open(path).convert("RGB")`.
//
// The result is a U8 tensor [H, W, 3] (HWC, RGB), what `np.asarray(img.convert("RGB"))` gives.
// Formats: JPEG (baseline, progressive, grey, CMYK), PNG (1/2/4/8/16-bit, grey, palette, alpha,
// Adam7), BMP (1/4/8/16/24/32-bit, uncompressed), TGA (incl. RLE), GIF (first frame) and binary
// PNM (P5/P6, any maxval). Decoding is stb_image's (Debian's libstb), plus what it takes to get
// PIL's pixels where the two disagree:
//
//   * convert("RGB") drops alpha without compositing (RGBA, LA, palette transparency), as PIL does;
//   * 16-bit grey PNG: PIL opens it as mode "I;16" and convert("RGB") clips to 0..255 (it does
//     not scale); 16-bit RGB(A)/grey+alpha keep the high byte — both match Pillow 13;
//   * GIF: PIL's first frame keeps the colour of the transparent index (stb would write black),
//     and pixels outside the first frame's rectangle take palette[transparency or 0];
//   * BMP 5-5-5 / 5-6-5: PIL expands with v * 255 / max (truncating), stb by bit replication;
//   * TGA stored right-to-left: PIL mirrors it, stb does not;
//   * PNM is parsed here: stb 2.27 leaves 16-bit samples byte-swapped and ignores maxval, while
//     PIL scales by maxval (round-half-even) and clips mode "I" (P5 with maxval > 255) to 255.
//
// JPEG is where exact parity is impossible with stb: libjpeg-turbo (which Pillow bundles) and
// stb_image differ in the IDCT and in chroma upsampling rounding, typically by at most 1-3 levels.
// stb 2.27 also weights the last-but-one chroma column of 4:2:2 (h2v1) JPEGs the wrong way
// round (stbi__resample_row_h_2), so one pixel column of such images can differ a lot more.
// tests/test_image.cpp measures both against Pillow.
//
// EXIF orientation is NOT applied: PIL's Image.open does not rotate, and neither do the
// reference pipelines (they would need ImageOps.exif_transpose), so neither does genscope.
//
// Safety: before anything large is allocated, the header's size is checked against a pixel
// limit (PIL's Image.MAX_IMAGE_PIXELS by default; PIL warns above it and refuses above twice
// it — genscope refuses above it), and the file is checked to hold all the pixel data the header
// promises: stb_image silently decodes truncated BMP, TGA, GIF and PNM files into garbage (or,
// for PNM, uninitialised memory). Corrupt, truncated and unsupported files give a FormatError
// that names the file; files that cannot be read give an IoError.
//
// Thread safety: decoding is reentrant. stb's failure reason is thread-local in Debian's build
// (STBI_THREAD_LOCAL). genscope assumes stb's process-wide switches are at their defaults: a
// program that calls stbi_set_flip_vertically_on_load(1) gets flipped images here too.
#pragma once

#include <stb_image.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/io/mapped_file.hpp"

namespace genscope {

enum class ImageFormat : uint8_t { Unknown, JPEG, PNG, BMP, TGA, GIF, PNM };

inline std::string_view image_format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::JPEG: return "JPEG";
    case ImageFormat::PNG: return "PNG";
    case ImageFormat::BMP: return "BMP";
    case ImageFormat::TGA: return "TGA";
    case ImageFormat::GIF: return "GIF";
    case ImageFormat::PNM: return "PNM";
    case ImageFormat::Unknown: break;
  }
  return "unknown";
}

// PIL.Image.MAX_IMAGE_PIXELS: 1024 * 1024 * 1024 // 4 // 3.
inline constexpr uint64_t kPilMaxImagePixels = 178956970;

struct ImageLoadOptions {
  // Refuse images whose header claims more pixels than this (width * height), before decoding.
  uint64_t max_pixels = kPilMaxImagePixels;
};

struct ImageInfo {
  int width = 0;
  int height = 0;
  int channels = 0;  // as stored: 1 grey, 2 grey + alpha, 3 RGB (also palette), 4 RGBA
  ImageFormat format = ImageFormat::Unknown;
};

namespace detail::image {

using Bytes = std::span<const uint8_t>;

inline uint32_t le16(Bytes b, size_t at) { return b[at] | (uint32_t{b[at + 1]} << 8); }
inline uint32_t le32(Bytes b, size_t at) { return le16(b, at) | (le16(b, at + 2) << 16); }
inline uint32_t be32(Bytes b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
}
inline bool starts_with(Bytes b, std::string_view magic) {
  return b.size() >= magic.size() && std::memcmp(b.data(), magic.data(), magic.size()) == 0;
}

[[noreturn]] inline void corrupt(const std::string& name, ImageFormat f, const std::string& why) {
  fail<FormatError>(name, ": corrupt ", image_format_name(f), " file: ", why);
}
[[noreturn]] inline void truncated(const std::string& name, ImageFormat f, const std::string& why) {
  fail<FormatError>(name, ": truncated ", image_format_name(f), " file: ", why);
}

// stb_image's own test for TGA, which has no magic bytes (stbi__tga_test in stb_image 2.27).
inline bool looks_like_tga(Bytes b) {
  if (b.size() < 18) return false;
  const int color_map = b[1], type = b[2];
  if (color_map > 1) return false;
  if (color_map == 1) {
    if (type != 1 && type != 9) return false;
    const int map_bits = b[7];
    if (map_bits != 8 && map_bits != 15 && map_bits != 16 && map_bits != 24 && map_bits != 32) return false;
  } else if (type != 2 && type != 3 && type != 10 && type != 11) {
    return false;
  }
  if (le16(b, 12) < 1 || le16(b, 14) < 1) return false;
  const int bits = b[16];
  if (color_map == 1 && bits != 8 && bits != 16) return false;
  return bits == 8 || bits == 15 || bits == 16 || bits == 24 || bits == 32;
}

inline bool is_pnm_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

// Formats stb_image (or a user) might hand us that genscope deliberately does not read: named, so
// the error says what the file is rather than "not an image".
inline std::string_view unsupported_format(Bytes b) {
  if (starts_with(b, "8BPS")) return "a Photoshop (PSD) image";
  if (starts_with(b, "#?RADIANCE") || starts_with(b, "#?RGBE")) return "a Radiance HDR image";
  if (starts_with(b, "\x53\x80\xF6\x34")) return "a Softimage PIC image";
  if (b.size() >= 12 && starts_with(b, "RIFF") && std::memcmp(b.data() + 8, "WEBP", 4) == 0) return "a WebP image";
  if (starts_with(b, "II*\0") || starts_with(b, std::string_view("MM\0*", 4))) return "a TIFF image";
  if (b.size() >= 12 && std::memcmp(b.data() + 4, "ftyp", 4) == 0) return "an ISO-BMFF file (HEIF/AVIF image or MP4 video)";
  if (b.size() >= 3 && b[0] == 'P' && (b[1] == '1' || b[1] == '2' || b[1] == '3') && is_pnm_space(b[2]))
    return "a plain (ASCII) PNM image";
  if (b.size() >= 3 && b[0] == 'P' && b[1] == '4' && is_pnm_space(b[2])) return "a PBM (1-bit PNM) image";
  if (b.size() >= 3 && b[0] == 'P' && b[1] == '7' && is_pnm_space(b[2])) return "a PAM image";
  return {};
}

// ---- PNM: parsed here (see the header comment) ------------------------------------------------

struct PnmHeader {
  int width = 0, height = 0, channels = 0, maxval = 0;
  size_t data_offset = 0;
};

// "P5"/"P6", then width, height and maxval as decimal tokens separated by whitespace and '#'
// comments, then exactly one whitespace byte before the samples (netpbm; PIL's PpmImageFile).
inline PnmHeader parse_pnm_header(Bytes b, const std::string& name) {
  PnmHeader h;
  h.channels = b[1] == '5' ? 1 : 3;
  size_t p = 2;
  int values[3] = {0, 0, 0};
  for (int& v : values) {
    for (;;) {
      while (p < b.size() && is_pnm_space(b[p])) ++p;
      if (p < b.size() && b[p] == '#') {
        while (p < b.size() && b[p] != '\n' && b[p] != '\r') ++p;
        continue;
      }
      break;
    }
    if (p >= b.size()) truncated(name, ImageFormat::PNM, "the header ends early");
    if (b[p] < '0' || b[p] > '9') corrupt(name, ImageFormat::PNM, cat("expected a number in the header at byte ", p));
    int64_t n = 0;
    while (p < b.size() && b[p] >= '0' && b[p] <= '9') {
      n = n * 10 + (b[p++] - '0');
      if (n > INT_MAX) corrupt(name, ImageFormat::PNM, "a number in the header is too large");
    }
    v = static_cast<int>(n);
  }
  h.width = values[0];
  h.height = values[1];
  h.maxval = values[2];
  if (h.width < 1 || h.height < 1) corrupt(name, ImageFormat::PNM, cat("size ", h.width, " x ", h.height));
  if (h.maxval < 1 || h.maxval > 65535) corrupt(name, ImageFormat::PNM, cat("maxval ", h.maxval, " is not in 1..65535"));
  if (p >= b.size()) truncated(name, ImageFormat::PNM, "no pixel data");
  if (!is_pnm_space(b[p])) corrupt(name, ImageFormat::PNM, "no whitespace after maxval");
  h.data_offset = p + 1;
  return h;
}

// Python's round(): to nearest, ties to even (independent of the FPU's rounding mode).
inline double round_half_even(double x) {
  const double f = std::floor(x);
  const double d = x - f;
  if (d > 0.5 || (d == 0.5 && std::fmod(f, 2.0) != 0.0)) return f + 1.0;
  return f;
}

// PIL's PNM pixels after convert("RGB"), for every sample value v (PpmImagePlugin, PpmDecoder):
//   maxval 255                  -> v
//   P5 with maxval 65535        -> mode "I" via rawmode I;16B: v, then convert("RGB") clips
//   P5 with another maxval > 255 -> mode "I": min(65535, round(v / maxval * 65535)), clipped
//   otherwise                   -> min(255, round(v / maxval * 255))
inline std::vector<uint8_t> pnm_value_table(const PnmHeader& h) {
  const int n = h.maxval > 255 ? 65536 : 256;
  const bool mode_i = h.channels == 1 && h.maxval > 255;
  const double out_max = mode_i ? 65535.0 : 255.0;
  std::vector<uint8_t> table(static_cast<size_t>(n));
  for (int v = 0; v < n; ++v) {
    double x;
    if (h.maxval == 255 || (mode_i && h.maxval == 65535)) {
      x = v;
    } else {
      x = std::min(out_max, round_half_even(static_cast<double>(v) / h.maxval * out_max));
    }
    table[static_cast<size_t>(v)] = static_cast<uint8_t>(std::min(x, 255.0));
  }
  return table;
}

inline Tensor decode_pnm(Bytes b, const std::string& name, const PnmHeader& h) {
  const uint64_t bytes_per_sample = h.maxval > 255 ? 2 : 1;
  const uint64_t pixels = static_cast<uint64_t>(h.width) * static_cast<uint64_t>(h.height);
  const uint64_t need = pixels * static_cast<uint64_t>(h.channels) * bytes_per_sample;
  if (b.size() - h.data_offset < need)
    truncated(name, ImageFormat::PNM, cat("the pixel data needs ", need, " bytes, the file has ", b.size() - h.data_offset));
  const std::vector<uint8_t> table = pnm_value_table(h);
  Tensor out = Tensor::empty(Shape{h.height, h.width, 3}, DType::U8);
  uint8_t* o = out.data<uint8_t>();
  const uint8_t* in = b.data() + h.data_offset;
  for (uint64_t i = 0; i < pixels; ++i) {
    for (int c = 0; c < 3; ++c) {
      const uint64_t s = i * static_cast<uint64_t>(h.channels) + static_cast<uint64_t>(h.channels == 1 ? 0 : c);
      const uint32_t v = bytes_per_sample == 2 ? (uint32_t{in[2 * s]} << 8 | in[2 * s + 1]) : in[s];
      o[3 * i + static_cast<uint64_t>(c)] = table[v];
    }
  }
  return out;
}

// ---- completeness checks: the pixel data the header promises is in the file -------------------

// Every chunk up to IEND is whole (stb stops at IEND and does not check CRCs).
inline void check_png_complete(Bytes b, const std::string& name) {
  size_t p = 8;
  for (;;) {
    if (b.size() - p < 8) truncated(name, ImageFormat::PNG, cat("the file ends at byte ", b.size(), " before the IEND chunk"));
    const uint64_t length = be32(b, p);
    if (length > 0x7FFFFFFF) corrupt(name, ImageFormat::PNG, cat("chunk length ", length, " at byte ", p));
    if (std::memcmp(b.data() + p + 4, "IEND", 4) == 0) return;
    if (b.size() - p < 12 + length)
      truncated(name, ImageFormat::PNG, cat("chunk '", std::string(reinterpret_cast<const char*>(b.data() + p + 4), 4), "' at byte ", p,
                                            " needs ", 12 + length, " bytes, ", b.size() - p, " are left"));
    p += 12 + static_cast<size_t>(length);
  }
}

struct BmpLayout {
  int bits = 0;
  bool rgb555 = false, rgb565 = false;  // 16-bit layouts PIL expands as v * 255 / max
};

inline BmpLayout check_bmp_complete(Bytes b, const std::string& name) {
  BmpLayout layout;
  if (b.size() < 30) truncated(name, ImageFormat::BMP, "the header ends early");
  const uint32_t header_size = le32(b, 14);
  int64_t width, height;
  uint32_t compression = 0;
  if (header_size == 12) {  // OS/2 BITMAPCOREHEADER
    width = le16(b, 18);
    height = le16(b, 20);
    layout.bits = static_cast<int>(le16(b, 24));
  } else {
    if (b.size() < 34) truncated(name, ImageFormat::BMP, "the header ends early");
    width = static_cast<int32_t>(le32(b, 18));
    height = static_cast<int32_t>(le32(b, 22));
    layout.bits = static_cast<int>(le16(b, 28));
    compression = le32(b, 30);
  }
  if (compression != 0 && compression != 3) return layout;  // RLE, JPEG, PNG: stb refuses them itself
  if (layout.bits == 16) {
    uint32_t r = 0x7C00, g = 0x03E0, bl = 0x001F;  // BI_RGB's 16-bit layout
    if (compression == 3) {
      if (b.size() < 66) truncated(name, ImageFormat::BMP, "the colour masks are missing");
      r = le32(b, 54), g = le32(b, 58), bl = le32(b, 62);
    }
    layout.rgb555 = r == 0x7C00 && g == 0x03E0 && bl == 0x001F;
    layout.rgb565 = r == 0xF800 && g == 0x07E0 && bl == 0x001F;
  }
  const uint64_t offset = le32(b, 10);
  const uint64_t row_bits = static_cast<uint64_t>(layout.bits) * static_cast<uint64_t>(std::max<int64_t>(width, 0));
  const uint64_t stride = (row_bits + 31) / 32 * 4;
  const uint64_t rows = static_cast<uint64_t>(height < 0 ? -height : height);
  // The last row's padding may be missing (PIL accepts that too); its pixels may not.
  const uint64_t need = rows == 0 ? offset : offset + stride * (rows - 1) + (row_bits + 7) / 8;
  if (b.size() < need) truncated(name, ImageFormat::BMP, cat("the pixel data ends at byte ", need, ", the file has ", b.size()));
  return layout;
}

inline void check_tga_complete(Bytes b, const std::string& name) {
  const int type = b[2], bits = b[16];
  const uint64_t map_bytes = b[1] ? uint64_t{le16(b, 5)} * ((b[7] + 7u) / 8u) : 0;
  const uint64_t pixels = uint64_t{le16(b, 12)} * le16(b, 14);
  const uint64_t bytes_per_pixel = (bits + 7u) / 8u;
  uint64_t p = 18 + uint64_t{b[0]} + map_bytes;
  if (type < 8) {
    const uint64_t need = p + pixels * bytes_per_pixel;
    if (b.size() < need) truncated(name, ImageFormat::TGA, cat("the pixel data ends at byte ", need, ", the file has ", b.size()));
    return;
  }
  for (uint64_t done = 0; done < pixels;) {  // RLE packets: a count byte, then 1 or count pixels
    if (p >= b.size()) truncated(name, ImageFormat::TGA, cat("the RLE data ends after ", done, " of ", pixels, " pixels"));
    const uint8_t packet = b[p++];
    const uint64_t count = (packet & 0x7Fu) + 1u;
    p += (packet & 0x80 ? 1 : count) * bytes_per_pixel;
    done += count;
    if (p > b.size()) truncated(name, ImageFormat::TGA, cat("the RLE data ends after ", done - count, " of ", pixels, " pixels"));
  }
}

// stb_image 2.27 trusts a DHT segment's 16 code counts: a sum over 256 makes stbi__build_huffman
// and the value loop write past the table's arrays (memory corruption inside the decoder; 2.28
// added the check). So the markers are walked here first, the way stb walks them (it skips
// bytes between segments to the next 0xFF, reads a DHT's tables while its length allows, and
// reads zeros past the end), and such tables are refused. Where the walk visits a position stb
// would not, stb fails on the file anyway.
inline void check_jpeg_huffman_tables(Bytes b, const std::string& name) {
  const size_t n = b.size();
  auto at = [&](size_t i) -> size_t { return i < n ? b[i] : 0; };
  auto restart = [](size_t m) { return m >= 0xD0 && m <= 0xD7; };
  size_t p = 2;  // after SOI
  while (p < n) {
    while (p < n && b[p] != 0xFF) ++p;  // stbi__get_marker, and stb's scan over padding
    while (p < n && b[p] == 0xFF) ++p;
    if (p >= n) return;
    const size_t marker = b[p++];
    if (marker == 0xD9) return;                                      // EOI
    if (marker == 0x00 || marker == 0x01 || restart(marker) || marker == 0xD8) continue;  // no length
    const size_t length = at(p) << 8 | at(p + 1);
    if (marker == 0xC4) {  // DHT: tables of (class/id, 16 counts, values) while the length lasts
      int64_t left = static_cast<int64_t>(length) - 2;
      for (size_t q = p + 2; left > 0 && q < n;) {
        size_t codes = 0;
        for (size_t i = 1; i <= 16; ++i) codes += at(q + i);
        if (codes > 256) corrupt(name, ImageFormat::JPEG, cat("a Huffman table at byte ", q, " has ", codes, " codes (at most 256)"));
        q += 17 + codes;
        left -= static_cast<int64_t>(17 + codes);
      }
    }
    if (length < 2) return;  // stb refuses the file
    p += length;
    if (marker == 0xDA)  // SOS: entropy-coded data up to the next marker (0xFF 0x00 is a stuffed byte)
      while (p + 1 < n && !(b[p] == 0xFF && b[p + 1] != 0x00 && !restart(b[p + 1]))) ++p;
  }
}

// What genscope needs to know about a GIF's first frame, from walking its blocks.
struct GifFrame {
  int x = 0, y = 0, width = 0, height = 0;
  size_t gce_flags_at = 0;  // offset of the flags byte of the Graphic Control Extension, 0 if none
  int transparent = -1;     // transparent colour index, -1 if none
  const uint8_t* palette = nullptr;  // the frame's colour table (local, else global)
  int palette_entries = 0;
};

// Walks header, extensions and the first image (whose LZW data must be complete). The GCE that
// applies is the last one before the image, as in stb_image and PIL.
inline GifFrame walk_gif(Bytes b, const std::string& name) {
  GifFrame f;
  const size_t n = b.size();
  auto need = [&](size_t p, size_t k, const char* what) {
    if (p > n || n - p < k) truncated(name, ImageFormat::GIF, cat(what, " is cut short at byte ", n));
  };
  auto skip_sub_blocks = [&](size_t& p, const char* what) {
    for (;;) {
      need(p, 1, what);
      const size_t len = b[p++];
      if (len == 0) return;
      need(p, len, what);
      p += len;
    }
  };
  need(0, 13, "the header");
  size_t p = 13;
  const uint8_t* global_palette = nullptr;
  int global_entries = 0;
  if (b[10] & 0x80) {
    global_entries = 2 << (b[10] & 7);
    need(p, 3 * static_cast<size_t>(global_entries), "the global colour table");
    global_palette = b.data() + p;
    p += 3 * static_cast<size_t>(global_entries);
  }
  for (;;) {
    need(p, 1, "the block list");
    const uint8_t tag = b[p++];
    if (tag == 0x21) {  // extension
      need(p, 1, "an extension");
      const uint8_t label = b[p++];
      if (label == 0xF9 && p < n && b[p] == 4) {
        need(p, 6, "the graphic control extension");
        f.gce_flags_at = p + 1;
        f.transparent = (b[p + 1] & 1) ? b[p + 4] : -1;
      }
      skip_sub_blocks(p, "an extension");
    } else if (tag == 0x2C) {  // image descriptor
      need(p, 9, "the image descriptor");
      f.x = static_cast<int>(le16(b, p));
      f.y = static_cast<int>(le16(b, p + 2));
      f.width = static_cast<int>(le16(b, p + 4));
      f.height = static_cast<int>(le16(b, p + 6));
      const uint8_t flags = b[p + 8];
      p += 9;
      f.palette = global_palette;
      f.palette_entries = global_entries;
      if (flags & 0x80) {
        f.palette_entries = 2 << (flags & 7);
        need(p, 3 * static_cast<size_t>(f.palette_entries), "the local colour table");
        f.palette = b.data() + p;
        p += 3 * static_cast<size_t>(f.palette_entries);
      }
      need(p, 1, "the first frame's image data");
      ++p;  // LZW minimum code size
      skip_sub_blocks(p, "the first frame's image data");
      return f;
    } else if (tag == 0x3B) {
      corrupt(name, ImageFormat::GIF, "the file has no image");
    } else {
      corrupt(name, ImageFormat::GIF, cat("unknown block type 0x", std::hex, int{tag}, std::dec, " at byte ", p - 1));
    }
  }
}

// ---- stb_image --------------------------------------------------------------------------------

[[noreturn]] inline void stb_failed(const std::string& name, ImageFormat f) {
  const char* why = stbi_failure_reason();
  std::string reason = why ? why : "unknown error";
  // stbi_load tries PNG first, and some of stb's decoders fail without setting a reason of their
  // own, leaving the PNG test's: that one says nothing about a file of another format.
  if (reason == "bad png sig" && f != ImageFormat::PNG) reason = "the data is invalid or cut short";
  if (reason == "outofmem") fail<Error>(name, ": out of memory decoding the ", image_format_name(f), " image");
  corrupt(name, f, reason);
}

// stb's pixels as a tensor without a copy: the storage frees them with stbi_image_free.
inline Tensor wrap_stb(void* pixels, int height, int width, int channels) {
  std::shared_ptr<const void> keepalive(pixels, [](const void* p) { stbi_image_free(const_cast<void*>(p)); });
  return Tensor::wrap(pixels, Shape{height, width, channels}, DType::U8, std::move(keepalive));
}

inline Tensor stb_decode_rgb(Bytes b, const std::string& name, const ImageInfo& info) {
  int w = 0, h = 0, c = 0;
  stbi_uc* pixels = stbi_load_from_memory(b.data(), static_cast<int>(b.size()), &w, &h, &c, 3);
  if (!pixels) stb_failed(name, info.format);
  Tensor t = wrap_stb(pixels, h, w, 3);
  if (w != info.width || h != info.height)
    corrupt(name, info.format, cat("decoded ", w, " x ", h, " pixels, the header says ", info.width, " x ", info.height));
  return t;
}

// 16-bit grey PNG: PIL's mode "I;16"; convert("RGB") clips each value to 255.
inline Tensor decode_png_grey16(Bytes b, const std::string& name, const ImageInfo& info) {
  int w = 0, h = 0, c = 0;
  stbi_us* v = stbi_load_16_from_memory(b.data(), static_cast<int>(b.size()), &w, &h, &c, 1);
  if (!v) stb_failed(name, info.format);
  std::unique_ptr<stbi_us, void (*)(void*)> owner(v, stbi_image_free);
  if (w != info.width || h != info.height)
    corrupt(name, info.format, cat("decoded ", w, " x ", h, " pixels, the header says ", info.width, " x ", info.height));
  Tensor out = Tensor::empty(Shape{h, w, 3}, DType::U8);
  uint8_t* o = out.data<uint8_t>();
  const size_t n = static_cast<size_t>(w) * static_cast<size_t>(h);
  for (size_t i = 0; i < n; ++i) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = static_cast<uint8_t>(std::min<int>(v[i], 255));
  return out;
}

// PIL's 16-bit BMP unpackers (Unpack.c, BGR;15 / BGR;16) expand a k-bit field as v * 255 / max;
// stb replicates bits, (v << 3) | (v >> 2) for 5 bits and (v << 2) | (v >> 4) for 6, which keeps
// v in the top bits, so stb's byte is mapped back to v and expanded PIL's way.
inline void bmp16_as_pil(Tensor& rgb, bool six_bit_green) {
  uint8_t five[256], six[256];
  for (int x = 0; x < 256; ++x) {
    five[x] = static_cast<uint8_t>((x >> 3) * 255 / 31);
    six[x] = static_cast<uint8_t>((x >> 2) * 255 / 63);
  }
  uint8_t* p = rgb.data<uint8_t>();
  const int64_t n = rgb.numel() / 3;
  for (int64_t i = 0; i < n; ++i) {
    p[3 * i] = five[p[3 * i]];
    p[3 * i + 1] = six_bit_green ? six[p[3 * i + 1]] : five[p[3 * i + 1]];
    p[3 * i + 2] = five[p[3 * i + 2]];
  }
}

inline void mirror_rows(Tensor& rgb) {
  uint8_t* p = rgb.data<uint8_t>();
  const int64_t h = rgb.size(0), w = rgb.size(1);
  for (int64_t y = 0; y < h; ++y) {
    uint8_t* row = p + y * w * 3;
    for (int64_t a = 0, z = w - 1; a < z; ++a, --z) std::swap_ranges(row + 3 * a, row + 3 * a + 3, row + 3 * z);
  }
}

inline Tensor decode_gif(Bytes b, const std::string& name, const ImageInfo& info) {
  const GifFrame frame = walk_gif(b, name);
  Tensor rgb;
  if (frame.transparent >= 0) {
    // PIL's convert("RGB") shows the transparent index's palette colour; stb would leave those
    // pixels black. Decoding a copy with the GCE's transparency flag cleared gives PIL's pixels.
    std::vector<uint8_t> copy(b.begin(), b.end());
    copy[frame.gce_flags_at] &= 0xFE;
    rgb = stb_decode_rgb(copy, name, info);
  } else {
    rgb = stb_decode_rgb(b, name, info);
  }
  const bool covers = frame.x == 0 && frame.y == 0 && frame.width >= info.width && frame.height >= info.height;
  if (!covers) {
    // PIL's first frame starts as a canvas of index `transparency` (or 0) (GifImageFile.load_prepare);
    // stb's starts black or with the background colour. Repaint what the frame does not cover.
    const int index = frame.transparent >= 0 ? frame.transparent : 0;
    uint8_t colour[3] = {0, 0, 0};
    if (frame.palette && index < frame.palette_entries) std::memcpy(colour, frame.palette + 3 * index, 3);
    uint8_t* p = rgb.data<uint8_t>();
    for (int y = 0; y < info.height; ++y) {
      for (int x = 0; x < info.width; ++x) {
        const bool inside = x >= frame.x && x < frame.x + frame.width && y >= frame.y && y < frame.y + frame.height;
        if (!inside) std::memcpy(p + 3 * (static_cast<size_t>(y) * static_cast<size_t>(info.width) + static_cast<size_t>(x)), colour, 3);
      }
    }
  }
  return rgb;
}

}  // namespace detail::image

// The format, by magic bytes (TGA, which has none, by stb_image's header test). Unknown if none.
inline ImageFormat detect_image_format(std::span<const uint8_t> b) {
  using detail::image::starts_with;
  if (b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return ImageFormat::JPEG;
  if (starts_with(b, "\x89PNG\r\n\x1a\n")) return ImageFormat::PNG;
  if (starts_with(b, "GIF87a") || starts_with(b, "GIF89a")) return ImageFormat::GIF;
  if (starts_with(b, "BM")) return ImageFormat::BMP;
  if (b.size() >= 3 && b[0] == 'P' && (b[1] == '5' || b[1] == '6') && detail::image::is_pnm_space(b[2])) return ImageFormat::PNM;
  if (detail::image::unsupported_format(b).empty() && detail::image::looks_like_tga(b)) return ImageFormat::TGA;
  return ImageFormat::Unknown;
}

// Format, size and stored channels from the header alone (nothing is decoded). FormatError for
// an empty, unknown, unsupported or corrupt header; `name` is used in messages.
inline ImageInfo probe_image(std::span<const uint8_t> bytes, const std::string& name) {
  namespace d = detail::image;
  if (bytes.empty()) fail<FormatError>(name, ": empty file (0 bytes), not an image");
  ImageInfo info;
  info.format = detect_image_format(bytes);
  if (info.format == ImageFormat::Unknown) {
    if (const std::string_view what = d::unsupported_format(bytes); !what.empty())
      fail<FormatError>(name, ": ", what, ", which is not supported (genscope reads JPEG, PNG, BMP, TGA, GIF and binary PNM)");
    std::string head;
    for (size_t i = 0; i < std::min<size_t>(bytes.size(), 8); ++i) head += cat(i ? " " : "", "0123456789abcdef"[bytes[i] >> 4], "0123456789abcdef"[bytes[i] & 15]);
    fail<FormatError>(name, ": not a JPEG, PNG, BMP, TGA, GIF or PNM image (it starts with bytes ", head, ")");
  }
  if (info.format == ImageFormat::PNM) {
    const d::PnmHeader h = d::parse_pnm_header(bytes, name);
    info.width = h.width;
    info.height = h.height;
    info.channels = h.channels;
    return info;
  }
  if (info.format == ImageFormat::JPEG) d::check_jpeg_huffman_tables(bytes, name);  // stbi_info reads them too
  // stb_image takes the size as an int.
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    fail<FormatError>(name, ": ", bytes.size(), " bytes is more than stb_image can read (2 GiB)");
  // stbi_info tries every format it knows, so its failure reason is the last format's, not this
  // one's: it is not repeated here.
  if (!stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &info.width, &info.height, &info.channels))
    d::corrupt(name, info.format, "its header is invalid or cut short");
  if (info.format == ImageFormat::BMP && info.height < 0 && info.height != INT_MIN) info.height = -info.height;  // top-down
  if (info.width < 1 || info.height < 1) d::corrupt(name, info.format, cat("size ", info.width, " x ", info.height));
  return info;
}

// Decode to RGB as PIL's Image.open(...).convert("RGB") does: U8 [H, W, 3]. See the file comment.
inline Tensor decode_image_rgb(std::span<const uint8_t> bytes, const std::string& name, const ImageLoadOptions& options = {}) {
  namespace d = detail::image;
  const ImageInfo info = probe_image(bytes, name);
  const uint64_t pixels = static_cast<uint64_t>(info.width) * static_cast<uint64_t>(info.height);
  if (pixels > options.max_pixels)
    fail<FormatError>(name, ": ", info.width, " x ", info.height, " = ", pixels, " pixels is more than the limit of ", options.max_pixels,
                      options.max_pixels == kPilMaxImagePixels ? " (PIL's MAX_IMAGE_PIXELS)" : "",
                      "; a decompression bomb? Raise ImageLoadOptions::max_pixels (genscope preprocess --max-pixels) to read it");
  switch (info.format) {
    case ImageFormat::PNM:
      return d::decode_pnm(bytes, name, d::parse_pnm_header(bytes, name));
    case ImageFormat::GIF:
      return d::decode_gif(bytes, name, info);
    case ImageFormat::PNG: {
      d::check_png_complete(bytes, name);
      // IHDR is the first chunk (stbi_info checked): bit depth at byte 24, colour type at 25.
      if (bytes[24] == 16 && bytes[25] == 0) return d::decode_png_grey16(bytes, name, info);
      return d::stb_decode_rgb(bytes, name, info);
    }
    case ImageFormat::BMP: {
      const d::BmpLayout layout = d::check_bmp_complete(bytes, name);
      Tensor rgb = d::stb_decode_rgb(bytes, name, info);
      if (layout.rgb555 || layout.rgb565) d::bmp16_as_pil(rgb, layout.rgb565);
      return rgb;
    }
    case ImageFormat::TGA: {
      d::check_tga_complete(bytes, name);
      Tensor rgb = d::stb_decode_rgb(bytes, name, info);
      if (bytes[17] & 0x10) d::mirror_rows(rgb);  // stored right-to-left; PIL flips, stb does not
      return rgb;
    }
    case ImageFormat::JPEG:  // stb refuses truncated JPEGs itself (it needs the EOI marker)
    case ImageFormat::Unknown:
      break;
  }
  return d::stb_decode_rgb(bytes, name, info);
}

// probe_image for a file. IoError if it cannot be read.
inline ImageInfo probe_image_file(const std::string& path) {
  const auto file = MappedFile::open(path);
  return probe_image(file->bytes(), path);
}

// decode_image_rgb for a file, which is memory-mapped. IoError if it cannot be read.
inline Tensor load_image_rgb(const std::string& path, const ImageLoadOptions& options = {}) {
  const auto file = MappedFile::open(path);
  return decode_image_rgb(file->bytes(), path, options);
}

}  // namespace genscope
