// genscope/io/json.hpp — a small strict JSON (RFC 8259) parser and writer.
//
// Used for safetensors headers, sharded-checkpoint indexes and model configs: inputs that come
// from untrusted files, so the parser is strict and bounded rather than forgiving.
//   * Exactly RFC 8259: no comments, no trailing commas, no NaN/Infinity, no leading zeros, no
//     single quotes, no byte order mark (RFC 8259 §8.1: parsers MAY ignore one; serde_json,
//     which defines safetensors' JSON, rejects it, and so do we).
//   * Strings must be valid UTF-8 (§8.1) without raw control characters (§7); \uXXXX escapes
//     must pair surrogates correctly (a lone surrogate cannot be written as UTF-8).
//   * Duplicate keys in an object are an error: RFC 8259 §4 leaves their meaning undefined, and
//     two readers disagreeing on which value wins is how polyglot files are made.
//   * Nesting is limited (default 64) so a hostile file cannot exhaust the stack, and the
//     number of values (default 4M) so it cannot exhaust memory.
// Objects keep their keys in file order (a vector of pairs), so tools can print what they read
// in the order it was written. Numbers keep their source text: integers beyond 2^53 (byte
// offsets of large checkpoints) stay exact, and as_double() parses the text when asked.
// Every error is a FormatError "<source>: invalid JSON at byte <offset>: <reason>".
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "genscope/core/error.hpp"

namespace genscope::json {

class Value {
 public:
  enum class Type : uint8_t { Null, Bool, Number, String, Array, Object };
  using Array = std::vector<Value>;
  using Object = std::vector<std::pair<std::string, Value>>;

  Value() = default;  // null
  static Value null() { return Value(); }
  static Value boolean(bool b) {
    Value v(Type::Bool);
    v.bool_ = b;
    return v;
  }
  // `text` must be a valid JSON number; see number() below for building one from a C++ value.
  static Value number_text(std::string text) {
    Value v(Type::Number);
    v.text_ = std::move(text);
    return v;
  }
  static Value number(int64_t n) { return number_text(std::to_string(n)); }
  static Value number(uint64_t n) { return number_text(std::to_string(n)); }
  static Value string(std::string s) {
    Value v(Type::String);
    v.text_ = std::move(s);
    return v;
  }
  static Value array(Array a = {}) {
    Value v(Type::Array);
    v.array_ = std::move(a);
    return v;
  }
  static Value object(Object o = {}) {
    Value v(Type::Object);
    v.object_ = std::move(o);
    return v;
  }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // "null", "a boolean", "a number", "a string", "an array", "an object": for error messages
  // such as cat("shape is ", v.type_name(), ", expected ", Value::name_of(Type::Array)).
  std::string_view type_name() const { return name_of(type_); }
  static std::string_view name_of(Type t) {
    switch (t) {
      case Type::Null: return "null";
      case Type::Bool: return "a boolean";
      case Type::Number: return "a number";
      case Type::String: return "a string";
      case Type::Array: return "an array";
      case Type::Object: return "an object";
    }
    return "?";
  }

  // Typed access; a wrong type is a FormatError (the caller usually wants a better message and
  // checks is_xxx() first, but misuse must never be undefined behaviour).
  bool as_bool() const { return expect(Type::Bool).bool_; }
  const std::string& as_string() const { return expect(Type::String).text_; }
  const Array& as_array() const { return expect(Type::Array).array_; }
  const Object& as_object() const { return expect(Type::Object).object_; }
  Array& as_array() { return const_cast<Array&>(std::as_const(*this).as_array()); }
  Object& as_object() { return const_cast<Object&>(std::as_const(*this).as_object()); }

  // The number exactly as written in the file, e.g. "1e3" or "-0.5".
  const std::string& number_text() const { return expect(Type::Number).text_; }
  // True for numbers written without fraction or exponent ("12", "-3"; not "12.0", "1e2").
  bool is_integer() const {
    return type_ == Type::Number && text_.find_first_of(".eE") == std::string::npos;
  }
  // The value if it is an integer that fits the type; nullopt otherwise (also for "1.0").
  std::optional<int64_t> to_int64() const { return to_integer<int64_t>(); }
  std::optional<uint64_t> to_uint64() const { return to_integer<uint64_t>(); }
  // Nearest double (overflow gives +-inf, as strtod would).
  double as_double() const {
    const std::string& t = number_text();
    double d = 0;
    const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
    if (ec == std::errc::result_out_of_range) {
      // from_chars leaves d untouched on overflow/underflow; tell the two apart by the exponent.
      const auto e = t.find_first_of("eE");
      const bool tiny = e != std::string::npos && t[e + 1] == '-';
      return tiny ? 0.0 : (t[0] == '-' ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity());
    }
    (void)ptr;
    return d;
  }

  // Object member lookup (first match; parsed objects have unique keys). nullptr if absent or
  // if this is not an object.
  const Value* find(std::string_view key) const {
    if (type_ != Type::Object) return nullptr;
    for (const auto& [k, v] : object_)
      if (k == key) return &v;
    return nullptr;
  }

  bool operator==(const Value& o) const {
    if (type_ != o.type_) return false;
    switch (type_) {
      case Type::Null: return true;
      case Type::Bool: return bool_ == o.bool_;
      case Type::Number: return text_ == o.text_ || as_double() == o.as_double();
      case Type::String: return text_ == o.text_;
      case Type::Array: return array_ == o.array_;
      case Type::Object: return object_ == o.object_;
    }
    return false;
  }

 private:
  explicit Value(Type t) : type_(t) {}

  const Value& expect(Type t) const {
    if (type_ != t) fail<FormatError>("JSON value is ", type_name(), ", expected ", name_of(t));
    return *this;
  }

  template <class I>
  std::optional<I> to_integer() const {
    if (!is_integer()) return std::nullopt;
    I n{};
    const char* end = text_.data() + text_.size();
    const auto [ptr, ec] = std::from_chars(text_.data(), end, n);
    if (ec != std::errc() || ptr != end) return std::nullopt;  // out of range, or "-1" as unsigned
    return n;
  }

  Type type_ = Type::Null;
  bool bool_ = false;
  std::string text_;  // string contents, or the number's source text
  Array array_;
  Object object_;
};

struct ParseOptions {
  int max_depth = 64;  // arrays and objects nested deeper than this are an error
  // A parsed value takes ~90 bytes, so "[0,0,0,..." would grow a 100 MB input ~45 times in
  // memory; more values than this are an error instead. 4M is ~15 values for each of 280k
  // tensors, far beyond real safetensors headers and configs.
  size_t max_values = size_t{1} << 22;
};

namespace detail {

class Parser {
 public:
  Parser(std::string_view text, std::string_view source, ParseOptions options)
      : s_(text), source_(source), options_(options) {}

  Value parse_document() {
    if (s_.size() >= 3 && std::memcmp(s_.data(), "\xEF\xBB\xBF", 3) == 0)
      error(0, "starts with a byte order mark (U+FEFF), which JSON does not allow");
    skip_ws();
    Value v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) error(pos_, cat("unexpected ", describe(pos_), " after the JSON value"));
    return v;
  }

 private:
  [[noreturn]] void error(size_t at, const std::string& what) const {
    fail<FormatError>(source_, ": invalid JSON at byte ", at, ": ", what);
  }

  // A short description of the byte at `at` for error messages: 'x', byte 0xff, end of input.
  std::string describe(size_t at) const {
    if (at >= s_.size()) return "end of input";
    const unsigned char c = static_cast<unsigned char>(s_[at]);
    if (c >= 0x21 && c < 0x7F) return cat("'", static_cast<char>(c), "'");
    static const char* hex = "0123456789abcdef";
    return cat("byte 0x", hex[c >> 4], hex[c & 15]);
  }

  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  bool consume(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void expect_literal(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) error(pos_, cat("expected '", lit, "'"));
    pos_ += lit.size();
  }

  Value parse_value(int depth) {
    if (pos_ >= s_.size()) error(pos_, "expected a value, got end of input");
    if (++values_ > options_.max_values) error(pos_, cat("more than ", options_.max_values, " values"));
    switch (s_[pos_]) {
      case '{': return parse_object(depth + 1);
      case '[': return parse_array(depth + 1);
      case '"': return Value::string(parse_string());
      case 't': expect_literal("true"); return Value::boolean(true);
      case 'f': expect_literal("false"); return Value::boolean(false);
      case 'n': expect_literal("null"); return Value::null();
      default:
        if (s_[pos_] == '-' || (s_[pos_] >= '0' && s_[pos_] <= '9')) return parse_number();
        error(pos_, cat("expected a value, got ", describe(pos_)));
    }
  }

  void check_depth(int depth) const {
    if (depth > options_.max_depth) error(pos_, cat("nested deeper than ", options_.max_depth, " levels"));
  }

  Value parse_object(int depth) {
    check_depth(depth);
    ++pos_;  // '{'
    Value::Object members;
    std::vector<size_t> key_offsets;
    skip_ws();
    if (!consume('}')) {
      for (;;) {
        skip_ws();
        if (pos_ >= s_.size() || s_[pos_] != '"') error(pos_, cat("expected a string key, got ", describe(pos_)));
        key_offsets.push_back(pos_);
        std::string key = parse_string();
        skip_ws();
        if (!consume(':')) error(pos_, cat("expected ':' after a key, got ", describe(pos_)));
        skip_ws();
        Value v = parse_value(depth);
        members.emplace_back(std::move(key), std::move(v));
        skip_ws();
        if (consume(',')) continue;
        if (consume('}')) break;
        error(pos_, cat("expected ',' or '}' in an object, got ", describe(pos_)));
      }
    }
    check_duplicates(members, key_offsets);
    return Value::object(std::move(members));
  }

  // Sorting indices by key finds duplicates in O(n log n): headers of large checkpoints have
  // tens of thousands of keys. The later occurrence (in file order) is reported.
  void check_duplicates(const Value::Object& members, const std::vector<size_t>& offsets) const {
    if (members.size() < 2) return;
    std::vector<size_t> order(members.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return members[a].first != members[b].first ? members[a].first < members[b].first : a < b;
    });
    for (size_t i = 1; i < order.size(); ++i) {
      if (members[order[i]].first == members[order[i - 1]].first)
        error(offsets[order[i]], cat("duplicate key \"", printable(members[order[i]].first), "\""));
    }
  }

  // A key as it can be shown in a message: at most 80 bytes, control characters escaped.
  static std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 80)) {
      if (static_cast<unsigned char>(c) < 0x20) out += cat("\\x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
      else out += c;
    }
    if (s.size() > 80) out += "...";
    return out;
  }

  Value parse_array(int depth) {
    check_depth(depth);
    ++pos_;  // '['
    Value::Array items;
    skip_ws();
    if (!consume(']')) {
      for (;;) {
        skip_ws();
        items.push_back(parse_value(depth));
        skip_ws();
        if (consume(',')) continue;
        if (consume(']')) break;
        error(pos_, cat("expected ',' or ']' in an array, got ", describe(pos_)));
      }
    }
    return Value::array(std::move(items));
  }

  // RFC 8259 §6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
  Value parse_number() {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    consume('-');
    if (consume('0')) {
      if (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') error(start, "numbers cannot have leading zeros");
    } else if (digits() == 0) {
      error(pos_, cat("expected a digit, got ", describe(pos_)));
    }
    if (consume('.') && digits() == 0) error(pos_, cat("expected a digit after '.', got ", describe(pos_)));
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (!consume('+')) consume('-');
      if (digits() == 0) error(pos_, cat("expected a digit in the exponent, got ", describe(pos_)));
    }
    return Value::number_text(std::string(s_.substr(start, pos_ - start)));
  }

  unsigned hex4(size_t at) const {
    if (at + 4 > s_.size()) error(at, "truncated \\u escape");
    unsigned v = 0;
    for (size_t i = at; i < at + 4; ++i) {
      const char c = s_[i];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else error(i, cat("expected a hex digit in a \\u escape, got ", describe(i)));
    }
    return v;
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string parse_string() {
    const size_t start = pos_;
    ++pos_;  // '"'
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) error(start, "unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) error(pos_, cat("control character ", describe(pos_), " in a string must be escaped"));
      if (c == '\\') {
        parse_escape(out);
        continue;
      }
      if (c < 0x80) {
        out += static_cast<char>(c);
        ++pos_;
        continue;
      }
      const size_t n = utf8_sequence_length(pos_);
      if (n == 0) error(pos_, cat("invalid UTF-8 (", describe(pos_), ") in a string"));
      out.append(s_.data() + pos_, n);
      pos_ += n;
    }
  }

  void parse_escape(std::string& out) {
    const size_t at = pos_;
    if (pos_ + 1 >= s_.size()) error(at, "truncated escape");
    const char e = s_[pos_ + 1];
    pos_ += 2;
    switch (e) {
      case '"': out += '"'; return;
      case '\\': out += '\\'; return;
      case '/': out += '/'; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'u': break;
      default: error(at, cat("invalid escape: ", describe(at + 1), " after a backslash"));
    }
    uint32_t cp = hex4(pos_);
    pos_ += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) error(at, "lone low surrogate in a \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      // A high surrogate must be followed by an escaped low surrogate (RFC 8259 §7).
      if (pos_ + 1 >= s_.size() || s_[pos_] != '\\' || s_[pos_ + 1] != 'u')
        error(at, "high surrogate in a \\u escape without a following low surrogate");
      const uint32_t lo = hex4(pos_ + 2);
      if (lo < 0xDC00 || lo > 0xDFFF) error(pos_, "high surrogate in a \\u escape without a following low surrogate");
      pos_ += 6;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    append_utf8(out, cp);
  }

  // Length of the well-formed UTF-8 sequence at `at` (Unicode Table 3-7), 0 if ill-formed:
  // rejects overlong forms, surrogates (ED A0..BF) and code points above U+10FFFF.
  size_t utf8_sequence_length(size_t at) const {
    const auto byte = [&](size_t i) -> unsigned { return i < s_.size() ? static_cast<unsigned char>(s_[i]) : 0u; };
    const unsigned c = byte(at);
    const auto cont = [&](size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) { return byte(i) >= lo && byte(i) <= hi; };
    if (c >= 0xC2 && c <= 0xDF) return cont(at + 1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
      const unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
      return cont(at + 1, lo, hi) && cont(at + 2) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
      const unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
      return cont(at + 1, lo, hi) && cont(at + 2) && cont(at + 3) ? 4 : 0;
    }
    return 0;
  }

  std::string_view s_;
  std::string_view source_;
  ParseOptions options_;
  size_t pos_ = 0;
  size_t values_ = 0;
};

}  // namespace detail

// Parse a whole JSON document. `source` names the input in error messages ("model.json",
// "model.safetensors: header"). Whitespace around the value is allowed, anything else is not.
inline Value parse(std::string_view text, std::string_view source = "JSON", ParseOptions options = {}) {
  return detail::Parser(text, source, options).parse_document();
}

// True if `s` is well-formed UTF-8 (what a writer must check before putting bytes in JSON).
inline bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  const auto byte = [&](size_t k) -> unsigned { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  const auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) { return byte(k) >= lo && byte(k) <= hi; };
  while (i < s.size()) {
    const unsigned c = byte(i);
    if (c < 0x80) {
      i += 1;
    } else if (c >= 0xC2 && c <= 0xDF && cont(i + 1)) {
      i += 2;
    } else if (c >= 0xE0 && c <= 0xEF && cont(i + 1, c == 0xE0 ? 0xA0 : 0x80, c == 0xED ? 0x9F : 0xBF) && cont(i + 2)) {
      i += 3;
    } else if (c >= 0xF0 && c <= 0xF4 && cont(i + 1, c == 0xF0 ? 0x90 : 0x80, c == 0xF4 ? 0x8F : 0xBF) &&
               cont(i + 2) && cont(i + 3)) {
      i += 4;
    } else {
      return false;
    }
  }
  return true;
}

// `s` as a JSON string literal with quotes. '"', '\\' and control characters are escaped
// (\n, \t, ... or \u00XX); other bytes, UTF-8 included, are copied (RFC 8259 §7). The caller
// guarantees valid UTF-8 (see is_valid_utf8).
inline std::string quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          static const char* hex = "0123456789abcdef";
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

// Compact serialisation (no spaces), keys in stored order; parse(dump(v)) == v.
inline void dump_to(std::string& out, const Value& v) {
  switch (v.type()) {
    case Value::Type::Null: out += "null"; return;
    case Value::Type::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Type::Number: out += v.number_text(); return;
    case Value::Type::String: out += quote(v.as_string()); return;
    case Value::Type::Array: {
      out += '[';
      bool first = true;
      for (const Value& item : v.as_array()) {
        if (!first) out += ',';
        first = false;
        dump_to(out, item);
      }
      out += ']';
      return;
    }
    case Value::Type::Object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.as_object()) {
        if (!first) out += ',';
        first = false;
        out += quote(key);
        out += ':';
        dump_to(out, item);
      }
      out += '}';
      return;
    }
  }
}

inline std::string dump(const Value& v) {
  std::string out;
  dump_to(out, v);
  return out;
}

}  // namespace genscope::json
