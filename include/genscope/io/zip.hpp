// genscope/io/zip.hpp — a minimal, strict ZIP reader with its own inflate (no zlib).
//
// It reads what torch.save writes (PyTorchStreamWriter on miniz): members stored uncompressed,
// their data 64-byte aligned by padding in the local header's extra field, and ZIP64 records
// once the archive or a member passes 4 GiB. It also reads archives re-packed by other tools
// with deflated members. Nothing else of ZIP is supported: encryption, multi-disk archives and
// methods other than 0 (stored) and 8 (deflate) are refused with a FormatError.
//
// Format: PKWARE APPNOTE.TXT 6.3.x — 4.3.16 end of central directory (EOCD), 4.3.14/4.3.15
// ZIP64 EOCD record and locator, 4.3.12 central directory header, 4.3.7 local file header,
// 4.5.3 ZIP64 extended information extra field (id 0x0001). Deflate: RFC 1951.
//
// Everything is bounds-checked against the byte span the archive lives in: every offset and
// size read from the file is checked before use, with overflow-safe arithmetic, so a hostile
// archive can only produce a FormatError naming the archive (and the member). A stored member
// is served zero-copy as a sub-span of the archive bytes (for a memory-mapped checkpoint this is
// what lets a 10 GB conversion stream); read() copies or inflates. CRC-32 is verified whenever a
// member is copied or inflated, and by verify_crc() on request for zero-copy members (the caller
// decides: hashing 10 GB of tensor data is not free).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "genscope/core/error.hpp"

namespace genscope {

namespace zip_detail {

inline uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
inline uint64_t rd64(const uint8_t* p) { return rd32(p) | (static_cast<uint64_t>(rd32(p + 4)) << 32); }

// CRC-32 (ISO 3309, reflected polynomial 0xEDB88320), slicing-by-8 so that checking a few
// hundred megabytes costs well under a second.
inline const std::array<std::array<uint32_t, 256>, 8>& crc_tables() {
  static const auto tables = [] {
    std::array<std::array<uint32_t, 256>, 8> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    return t;
  }();
  return tables;
}

inline uint32_t crc32(std::span<const uint8_t> data, uint32_t crc = 0) {
  const auto& t = crc_tables();
  crc = ~crc;
  const uint8_t* p = data.data();
  size_t n = data.size();
  while (n >= 8) {
    const uint32_t lo = rd32(p) ^ crc, hi = rd32(p + 4);
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][hi & 0xFF] ^
          t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) crc = t[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

// ---- inflate (RFC 1951) -----------------------------------------------------------------------
//
// A canonical-Huffman decoder in the style of zlib's "puff": each code is decoded by walking the
// code lengths one bit at a time, using the count of codes of each length (3.2.2). It is short
// and obviously bounded; a 9-bit lookup table in front of it makes the common short codes a
// single step. Output is bounded by `limit` (the member's declared size): a deflate bomb stops
// at the first byte past it.

class Inflater {
 public:
  Inflater(std::span<const uint8_t> in, size_t limit, const std::string& where) : in_(in), limit_(limit), where_(where) {}

  std::vector<uint8_t> run() {
    // Deflate expands at most ~1032:1 (a 258-byte match per 2 bits); never reserve more.
    out_.reserve(static_cast<size_t>(std::min<uint64_t>(limit_, uint64_t{in_.size()} * 1032 + 1024)));
    bool last = false;
    while (!last) {
      last = bits(1) != 0;
      const uint32_t type = bits(2);  // 3.2.3: 00 stored, 01 fixed Huffman, 10 dynamic, 11 error
      if (type == 0) stored();
      else if (type == 1) fixed();
      else if (type == 2) dynamic();
      else bad("invalid block type 3");
    }
    return std::move(out_);
  }

 private:
  static constexpr int kMaxBits = 15;
  static constexpr int kFastBits = 9;

  struct Huffman {
    std::array<uint16_t, kMaxBits + 1> count{};  // number of codes of each length
    std::array<uint16_t, 288> symbol{};          // symbols ordered by code
    // fast[code reversed, kFastBits wide] = (length << 9) | symbol, or 0 when the code is longer.
    std::array<uint16_t, 1u << kFastBits> fast{};
  };

  [[noreturn]] void bad(std::string_view what) const { fail<FormatError>(where_, ": corrupt deflate data: ", what); }

  uint32_t bits(int need) {
    while (bitcnt_ < need) {
      if (pos_ >= in_.size()) bad("unexpected end of compressed data");
      bitbuf_ |= static_cast<uint64_t>(in_[pos_++]) << bitcnt_;
      bitcnt_ += 8;
    }
    const uint32_t v = static_cast<uint32_t>(bitbuf_ & ((uint64_t{1} << need) - 1));
    bitbuf_ >>= need;
    bitcnt_ -= need;
    return v;
  }

  void put(uint8_t b) {
    if (out_.size() >= limit_) bad("more data than the declared size");
    out_.push_back(b);
  }

  void stored() {  // 3.2.4: align to a byte, LEN, NLEN, LEN raw bytes
    // decode() reads ahead whole bytes into the bit buffer: drop the partial byte, give the
    // whole ones back to the input.
    pos_ -= static_cast<size_t>(bitcnt_ / 8);
    bitbuf_ = 0;
    bitcnt_ = 0;
    if (in_.size() - pos_ < 4) bad("truncated stored block header");
    const uint16_t len = rd16(&in_[pos_]), nlen = rd16(&in_[pos_ + 2]);
    pos_ += 4;
    if (static_cast<uint16_t>(~nlen) != len) bad("stored block length does not match its complement");
    if (in_.size() - pos_ < len) bad("truncated stored block");
    if (limit_ - out_.size() < len) bad("more data than the declared size");
    out_.insert(out_.end(), in_.begin() + static_cast<ptrdiff_t>(pos_), in_.begin() + static_cast<ptrdiff_t>(pos_ + len));
    pos_ += len;
  }

  // Build the decoding tables from code lengths; incomplete codes are allowed only where RFC
  // 1951 allows them in practice (a single distance code), over-subscribed ones never.
  void build(Huffman& h, const uint16_t* lengths, int n) {
    h.count.fill(0);
    h.fast.fill(0);
    for (int i = 0; i < n; ++i) h.count[lengths[i]]++;
    if (h.count[0] == n) return;  // no codes: any use of this table is an error
    int left = 1;
    for (int len = 1; len <= kMaxBits; ++len) {
      left = left * 2 - h.count[len];
      if (left < 0) bad("over-subscribed Huffman code");
    }
    std::array<uint16_t, kMaxBits + 2> offs{};
    for (int len = 1; len < kMaxBits; ++len) offs[len + 1] = static_cast<uint16_t>(offs[len] + h.count[len]);
    for (int i = 0; i < n; ++i)
      if (lengths[i]) h.symbol[offs[lengths[i]]++] = static_cast<uint16_t>(i);
    // Fast table: assign canonical codes (3.2.2) and index the short ones bit-reversed, as they
    // arrive LSB first.
    std::array<uint32_t, kMaxBits + 1> next{};
    uint32_t code = 0;
    for (int len = 1; len <= kMaxBits; ++len) {
      code = (code + (len == 1 ? 0u : h.count[len - 1])) << 1;
      next[len] = code;
    }
    for (int i = 0; i < n; ++i) {
      const int len = lengths[i];
      if (!len) continue;
      const uint32_t c = next[len]++;
      if (len > kFastBits) continue;
      uint32_t rev = 0;
      for (int b = 0; b < len; ++b) rev |= ((c >> b) & 1u) << (len - 1 - b);
      for (uint32_t fill = rev; fill < (1u << kFastBits); fill += 1u << len)
        h.fast[fill] = static_cast<uint16_t>((len << 9) | i);
    }
  }

  int decode(const Huffman& h) {
    // Top up the bit buffer if possible (end of input is fine here: the slow path reports it).
    while (bitcnt_ <= 56 && pos_ < in_.size()) {
      bitbuf_ |= static_cast<uint64_t>(in_[pos_++]) << bitcnt_;
      bitcnt_ += 8;
    }
    const uint16_t f = h.fast[bitbuf_ & ((1u << kFastBits) - 1)];
    if (f && (f >> 9) <= bitcnt_) {
      bitbuf_ >>= (f >> 9);
      bitcnt_ -= f >> 9;
      return f & 0x1FF;
    }
    int code = 0, first = 0, index = 0;
    for (int len = 1; len <= kMaxBits; ++len) {
      code |= static_cast<int>(bits(1));
      const int count = h.count[len];
      if (code - count < first) return h.symbol[static_cast<size_t>(index + (code - first))];
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
    bad("invalid Huffman code");
  }

  void codes(const Huffman& lit, const Huffman& dist) {  // 3.2.5
    static constexpr uint16_t kLenBase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27,
                                              31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static constexpr uint8_t kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    static constexpr uint16_t kDistBase[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                               193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
    static constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
    for (;;) {
      int sym = decode(lit);
      if (sym < 256) {
        put(static_cast<uint8_t>(sym));
        continue;
      }
      if (sym == 256) return;
      sym -= 257;
      if (sym >= 29) bad("invalid length symbol");
      const size_t len = kLenBase[sym] + bits(kLenExtra[sym]);
      const int ds = decode(dist);
      if (ds >= 30) bad("invalid distance symbol");
      const size_t d = kDistBase[ds] + bits(kDistExtra[ds]);
      if (d > out_.size()) bad("distance too far back");
      if (limit_ - out_.size() < len) bad("more data than the declared size");
      const size_t from = out_.size() - d;
      for (size_t i = 0; i < len; ++i) out_.push_back(out_[from + i]);  // may overlap: byte by byte
    }
  }

  void fixed() {  // 3.2.6
    if (!fixed_built_) {
      uint16_t l[288];
      for (int i = 0; i < 144; ++i) l[i] = 8;
      for (int i = 144; i < 256; ++i) l[i] = 9;
      for (int i = 256; i < 280; ++i) l[i] = 7;
      for (int i = 280; i < 288; ++i) l[i] = 8;
      build(fixed_lit_, l, 288);
      uint16_t d[30];
      for (auto& x : d) x = 5;
      build(fixed_dist_, d, 30);
      fixed_built_ = true;
    }
    codes(fixed_lit_, fixed_dist_);
  }

  void dynamic() {  // 3.2.7
    static constexpr uint8_t kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    const int nlen = static_cast<int>(bits(5)) + 257, ndist = static_cast<int>(bits(5)) + 1, ncode = static_cast<int>(bits(4)) + 4;
    if (nlen > 286 || ndist > 30) bad("too many length or distance codes");
    uint16_t lengths[320] = {};
    for (int i = 0; i < ncode; ++i) lengths[kOrder[i]] = static_cast<uint16_t>(bits(3));
    Huffman lencode;
    build(lencode, lengths, 19);
    int index = 0;
    while (index < nlen + ndist) {
      int sym = decode(lencode);
      if (sym < 16) {
        lengths[index++] = static_cast<uint16_t>(sym);
        continue;
      }
      uint16_t len = 0;
      int repeat;
      if (sym == 16) {
        if (index == 0) bad("repeat with no previous length");
        len = lengths[index - 1];
        repeat = 3 + static_cast<int>(bits(2));
      } else if (sym == 17) {
        repeat = 3 + static_cast<int>(bits(3));
      } else {
        repeat = 11 + static_cast<int>(bits(7));
      }
      if (index + repeat > nlen + ndist) bad("too many code lengths");
      while (repeat--) lengths[index++] = len;
    }
    if (lengths[256] == 0) bad("no end-of-block code");
    Huffman lit, dist;
    build(lit, lengths, nlen);
    build(dist, lengths + nlen, ndist);
    codes(lit, dist);
  }

  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  uint64_t bitbuf_ = 0;
  int bitcnt_ = 0;
  size_t limit_;
  const std::string& where_;
  std::vector<uint8_t> out_;
  Huffman fixed_lit_, fixed_dist_;
  bool fixed_built_ = false;
};

}  // namespace zip_detail

// Inflate a raw deflate stream (no zlib/gzip header) whose output is exactly `size` bytes.
inline std::vector<uint8_t> inflate_raw(std::span<const uint8_t> in, size_t size, const std::string& where) {
  auto out = zip_detail::Inflater(in, size, where).run();
  if (out.size() != size) fail<FormatError>(where, ": inflated to ", out.size(), " bytes, the archive says ", size);
  return out;
}

struct ZipEntry {
  std::string name;
  uint16_t method = 0;           // 0 stored, 8 deflate
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;             // uncompressed
  uint64_t local_header_offset = 0;
  uint64_t data_offset = 0;      // of the (compressed) data, resolved from the local header
};

class ZipArchive {
 public:
  static constexpr size_t kMaxEntries = 1u << 20;

  // Parse the central directory of the archive in `bytes`; `name` (the file) is used in every
  // message. The bytes must outlive the archive and every span it hands out.
  ZipArchive(std::span<const uint8_t> bytes, std::string name) : bytes_(bytes), name_(std::move(name)) { parse(); }

  const std::string& name() const { return name_; }
  const std::vector<ZipEntry>& entries() const { return entries_; }

  const ZipEntry* find(std::string_view member) const {
    auto it = index_.find(std::string(member));
    return it == index_.end() ? nullptr : &entries_[it->second];
  }

  const ZipEntry& at(std::string_view member) const {
    const ZipEntry* e = find(member);
    if (!e) fail<FormatError>(name_, ": archive member '", member, "' is missing");
    return *e;
  }

  // The data of a stored member, zero-copy. FormatError for a compressed member.
  std::span<const uint8_t> stored_span(const ZipEntry& e) const {
    if (e.method != 0) fail<FormatError>(name_, ": member '", e.name, "' is compressed; it cannot be viewed in place");
    return bytes_.subspan(e.data_offset, e.size);
  }

  // The data of any member, copied (stored) or inflated (deflate), CRC-checked. `max_size`
  // guards against members too large to hold in memory.
  std::vector<uint8_t> read(const ZipEntry& e, uint64_t max_size = uint64_t{1} << 40) const {
    if (e.size > max_size)
      fail<FormatError>(name_, ": member '", e.name, "' is ", e.size, " bytes, over the limit of ", max_size);
    std::vector<uint8_t> out;
    const std::string where = cat(name_, ": member '", e.name, "'");
    const auto raw = bytes_.subspan(e.data_offset, e.compressed_size);
    if (e.method == 0) out.assign(raw.begin(), raw.end());
    else out = inflate_raw(raw, static_cast<size_t>(e.size), where);
    check_crc(e, out);
    return out;
  }

  // Verify the CRC-32 of a stored member (read() always does).
  void verify_crc(const ZipEntry& e) const { check_crc(e, e.method == 0 ? stored_span(e) : std::span<const uint8_t>(read(e))); }

 private:
  void check_crc(const ZipEntry& e, std::span<const uint8_t> data) const {
    // torch >= 2.5 can skip computing CRCs (torch.serialization.set_crc32_options(False)) and then
    // records 0; a non-empty member with CRC 0 is therefore taken as "not recorded".
    if (e.crc32 == 0) return;
    const uint32_t got = zip_detail::crc32(data);
    if (got != e.crc32) fail<FormatError>(name_, ": member '", e.name, "' fails its CRC-32 check (corrupt archive)");
  }

  [[noreturn]] void bad(std::string_view what) const { fail<FormatError>(name_, ": not a valid zip archive: ", what); }

  // [off, off+len) inside the archive, without overflow.
  bool fits(uint64_t off, uint64_t len) const { return off <= bytes_.size() && len <= bytes_.size() - off; }

  void parse() {
    using namespace zip_detail;
    const uint8_t* b = bytes_.data();
    const size_t n = bytes_.size();
    if (n < 22) bad("too short for an end of central directory record");
    // 4.3.16: the EOCD is the last 22 bytes plus a comment of at most 65535 bytes; search back.
    size_t eocd = SIZE_MAX;
    const size_t lowest = n > 22 + 65535 ? n - 22 - 65535 : 0;
    for (size_t p = n - 22 + 1; p-- > lowest;) {
      if (rd32(b + p) == 0x06054b50 && p + 22 + rd16(b + p + 20) == n) {
        eocd = p;
        break;
      }
    }
    if (eocd == SIZE_MAX) bad("no end of central directory record");
    if (rd16(b + eocd + 4) != 0 || rd16(b + eocd + 6) != 0) bad("multi-disk archives are not supported");
    uint64_t count = rd16(b + eocd + 10);
    uint64_t cd_size = rd32(b + eocd + 12);
    uint64_t cd_offset = rd32(b + eocd + 16);
    // 4.3.15 ZIP64 locator sits right before the EOCD; it points at the ZIP64 EOCD record.
    if (eocd >= 20 && rd32(b + eocd - 20) == 0x07064b50) {
      const uint64_t z = rd64(b + eocd - 20 + 8);
      if (!fits(z, 56) || z > eocd - 20) bad("ZIP64 end of central directory record out of bounds");
      if (rd32(b + z) != 0x06064b50) bad("bad ZIP64 end of central directory signature");
      if (rd32(b + z + 16) != 0 || rd32(b + z + 20) != 0) bad("multi-disk archives are not supported");
      count = rd64(b + z + 32);
      cd_size = rd64(b + z + 40);
      cd_offset = rd64(b + z + 48);
    }
    if (!fits(cd_offset, cd_size)) bad("central directory out of bounds");
    if (count > kMaxEntries || count > cd_size / 46) bad(cat("implausible entry count ", count));
    entries_.reserve(static_cast<size_t>(count));
    uint64_t p = cd_offset;
    const uint64_t cd_end = cd_offset + cd_size;
    for (uint64_t i = 0; i < count; ++i) {
      if (p > cd_end || cd_end - p < 46) bad("truncated central directory");
      const uint8_t* h = b + p;
      if (rd32(h) != 0x02014b50) bad("bad central directory header signature");
      ZipEntry e;
      const uint16_t flags = rd16(h + 8);
      e.method = rd16(h + 10);
      e.crc32 = rd32(h + 16);
      e.compressed_size = rd32(h + 20);
      e.size = rd32(h + 24);
      const uint16_t name_len = rd16(h + 28), extra_len = rd16(h + 30), comment_len = rd16(h + 32);
      const uint16_t disk = rd16(h + 34);
      e.local_header_offset = rd32(h + 42);
      if (cd_end - p - 46 < uint64_t{name_len} + extra_len + comment_len) bad("truncated central directory entry");
      e.name.assign(reinterpret_cast<const char*>(h + 46), name_len);
      // 4.5.3: ZIP64 extra field, holding (in this order) only the values whose 32-bit field
      // is 0xFFFFFFFF.
      const uint8_t* x = h + 46 + name_len;
      for (size_t q = 0; q + 4 <= extra_len;) {
        const uint16_t id = rd16(x + q), len = rd16(x + q + 2);
        if (q + 4 + len > extra_len) bad(cat("member '", e.name, "': truncated extra field"));
        if (id == 0x0001) {
          size_t r = q + 4;
          auto take = [&](uint64_t& field) {
            if (r + 8 > q + 4 + len) bad(cat("member '", e.name, "': truncated ZIP64 extra field"));
            field = rd64(x + r);
            r += 8;
          };
          if (e.size == 0xFFFFFFFFu) take(e.size);
          if (e.compressed_size == 0xFFFFFFFFu) take(e.compressed_size);
          if (e.local_header_offset == 0xFFFFFFFFu) take(e.local_header_offset);
        }
        q += 4 + len;
      }
      if (flags & 0x0001) bad(cat("member '", e.name, "' is encrypted"));
      if (disk != 0 && disk != 0xFFFF) bad("multi-disk archives are not supported");
      if (e.method != 0 && e.method != 8) bad(cat("member '", e.name, "' uses compression method ", e.method, " (only stored and deflate are supported)"));
      if (e.method == 0 && e.compressed_size != e.size) bad(cat("member '", e.name, "' is stored but its sizes differ"));
      // 4.3.7 local header: its own name/extra lengths decide where the data starts.
      if (!fits(e.local_header_offset, 30)) bad(cat("member '", e.name, "': local header out of bounds"));
      const uint8_t* l = b + e.local_header_offset;
      if (rd32(l) != 0x04034b50) bad(cat("member '", e.name, "': bad local header signature"));
      if (rd16(l + 8) != e.method) bad(cat("member '", e.name, "': local and central headers disagree on the method"));
      const uint64_t lname = rd16(l + 26), lextra = rd16(l + 28);
      if (lname != name_len || !fits(e.local_header_offset + 30, lname) ||
          std::memcmp(l + 30, e.name.data(), name_len) != 0)
        bad(cat("member '", e.name, "': local and central headers disagree on the name"));
      e.data_offset = e.local_header_offset + 30 + lname + lextra;
      if (!fits(e.data_offset, e.compressed_size)) bad(cat("member '", e.name, "': data out of bounds"));
      if (e.method == 8 && e.size > 0 && e.compressed_size == 0) bad(cat("member '", e.name, "': empty deflate stream"));
      if (e.method == 8 && e.size / 1032 > e.compressed_size + 1)
        bad(cat("member '", e.name, "': ", e.size, " bytes cannot come from ", e.compressed_size, " deflated bytes"));
      if (!index_.emplace(e.name, entries_.size()).second) bad(cat("member '", e.name, "' appears twice"));
      entries_.push_back(std::move(e));
      p += 46 + uint64_t{name_len} + extra_len + comment_len;
    }
  }

  std::span<const uint8_t> bytes_;
  std::string name_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace genscope
