// genscope/io/npy.hpp — a small, strict reader of NumPy's .npy files.
//
// Format (numpy/lib/format.py, "NEP 1"): the magic "\x93NUMPY", a major and minor version byte,
// the header length (u16 little-endian for version 1, u32 for versions 2 and 3), then an ASCII
// (v3: UTF-8) Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, D), }
// padded with spaces and a newline, then the C-order array bytes. The seed repositories store
// one feature vector per file this way.
//
// Strict: only little-endian (or byte-sized) f2/f4/f8/i4/i8/u1 arrays in C order, the three keys
// exactly, a data size that matches the shape; anything else is a FormatError naming the file.
// The result is a f32 (floats) or i64 (integers) Tensor in genscope's own memory.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/half.hpp"
#include "genscope/core/tensor.hpp"

namespace genscope {

struct NpyHeader {
  std::string descr;           // e.g. "<f4"
  std::vector<int64_t> shape;  // () for a scalar
  size_t data_offset = 0;
};

namespace npy_detail {

// Parse the dict literal numpy writes: keys in any order, single-quoted strings, True/False,
// a tuple of non-negative integers (a 1-tuple keeps its trailing comma).
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& path) : s_(text), path_(path) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_order = false, have_shape = false;
    skip_space();
    expect('{');
    for (;;) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      skip_space();
      expect(':');
      skip_space();
      if (key == "descr") {
        h.descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order") {
        if (word("True")) fail<FormatError>(path_, ": fortran_order arrays are not supported; save with np.ascontiguousarray");
        if (!word("False")) bad("fortran_order must be True or False");
        have_order = true;
      } else if (key == "shape") {
        h.shape = tuple();
        have_shape = true;
      } else {
        bad(cat("unknown header key '", key, "'"));
      }
      skip_space();
      if (peek() == ',') ++pos_;
    }
    if (!have_descr || !have_order || !have_shape) bad("header lacks one of 'descr', 'fortran_order', 'shape'");
    return h;
  }

 private:
  [[noreturn]] void bad(const std::string& what) const { fail<FormatError>(path_, ": malformed .npy header: ", what); }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n')) ++pos_;
  }
  void expect(char c) {
    if (peek() != c) bad(cat("expected '", c, "' at byte ", pos_));
    ++pos_;
  }
  bool word(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  std::string string_literal() {
    const char q = peek();
    if (q != '\'' && q != '"') bad(cat("expected a string at byte ", pos_));
    const size_t end = s_.find(q, pos_ + 1);
    if (end == std::string_view::npos) bad("unterminated string");
    std::string out(s_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return out;
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> dims;
    expect('(');
    for (;;) {
      skip_space();
      if (peek() == ')') break;
      int64_t v = 0;
      size_t digits = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (v > (int64_t{1} << 48)) bad("dimension too large");
        v = v * 10 + (peek() - '0');
        ++pos_;
        ++digits;
      }
      if (digits == 0) bad(cat("expected a dimension at byte ", pos_));
      dims.push_back(v);
      skip_space();
      if (peek() == ',') ++pos_;
      else if (peek() != ')') bad(cat("expected ',' or ')' at byte ", pos_));
    }
    ++pos_;
    if (dims.size() > 8) bad("more than 8 dimensions");
    return dims;
  }

  std::string_view s_;
  const std::string& path_;
  size_t pos_ = 0;
};

inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path, ": cannot open: ", std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail<IoError>(path, ": read error");
  return bytes;
}

}  // namespace npy_detail

// Parse the preamble and header of a .npy file held in `bytes`.
inline NpyHeader parse_npy_header(std::string_view bytes, const std::string& path) {
  if (bytes.size() < 10 || bytes.substr(0, 6) != "\x93NUMPY") fail<FormatError>(path, ": not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t len = 0, start = 0;
  if (major == 1) {
    len = static_cast<unsigned char>(bytes[8]) | static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail<FormatError>(path, ": truncated .npy preamble");
    for (int i = 0; i < 4; ++i) len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    start = 12;
  } else {
    fail<FormatError>(path, ": unsupported .npy version ", major);
  }
  if (len > bytes.size() - start) fail<FormatError>(path, ": header length ", len, " runs past the end of the file");
  NpyHeader h = npy_detail::HeaderParser(bytes.substr(start, len), path).parse();
  h.data_offset = start + len;
  return h;
}

// Read a .npy file into a contiguous Tensor: f32 for f2/f4/f8 data, i64 for i4/i8/u1 data.
inline Tensor load_npy(const std::string& path) {
  const std::string bytes = npy_detail::read_all(path);
  const NpyHeader h = parse_npy_header(bytes, path);
  const std::string& d = h.descr;
  const bool little = d.size() == 3 && (d[0] == '<' || (d[0] == '|' && d.substr(1) == "u1"));
  if (!little || (d.substr(1) != "f2" && d.substr(1) != "f4" && d.substr(1) != "f8" && d.substr(1) != "i4" &&
                  d.substr(1) != "i8" && d.substr(1) != "u1"))
    fail<FormatError>(path, ": dtype '", d, "' is not supported (expected little-endian f2, f4, f8, i4, i8 or u1)");
  const size_t item = static_cast<size_t>(d[2] - '0');
  Shape shape(std::span<const int64_t>(h.shape.data(), h.shape.size()));
  const int64_t n = shape.numel();
  if (bytes.size() - h.data_offset != static_cast<size_t>(n) * item)
    fail<FormatError>(path, ": ", bytes.size() - h.data_offset, " data bytes do not match shape ", shape, " of '", d, "' (",
                      static_cast<size_t>(n) * item, " bytes)");
  const char* src = bytes.data() + h.data_offset;
  const bool is_float = d[1] == 'f';
  Tensor out = Tensor::empty(shape, is_float ? DType::F32 : DType::I64);
  for (int64_t i = 0; i < n; ++i) {
    const char* p = src + static_cast<size_t>(i) * item;
    if (d.substr(1) == "f4") std::memcpy(out.data<float>() + i, p, 4);
    else if (d.substr(1) == "f8") {
      double v;
      std::memcpy(&v, p, 8);
      out.data<float>()[i] = static_cast<float>(v);
    } else if (d.substr(1) == "f2") {
      uint16_t v;
      std::memcpy(&v, p, 2);
      out.data<float>()[i] = f16_to_f32(v);
    } else if (d.substr(1) == "i4") {
      int32_t v;
      std::memcpy(&v, p, 4);
      out.data<int64_t>()[i] = v;
    } else if (d.substr(1) == "i8") {
      std::memcpy(out.data<int64_t>() + i, p, 8);
    } else {
      out.data<int64_t>()[i] = static_cast<unsigned char>(*p);
    }
  }
  return out;
}

}  // namespace genscope
