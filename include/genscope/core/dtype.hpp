// genscope/core/dtype.hpp — the element types a Tensor can hold.
//
// f32 is the compute type; f16 and bf16 are storage types converted on the fly (core/half.hpp);
// the integer and bool types carry indices, masks, pixels and checkpoint bookkeeping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string_view>
#include <type_traits>

#include "genscope/core/half.hpp"

namespace genscope {

enum class DType : uint8_t { F32, F16, BF16, I32, I64, U8, Bool };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
    case DType::Bool: return 1;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::U8: return "u8";
    case DType::Bool: return "bool";
  }
  return "?";
}

constexpr bool is_floating(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

// The C++ type stored for each dtype, and back.
template <class T>
struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<f16> { static constexpr DType value = DType::F16; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::BF16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::U8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <class T>
constexpr DType dtype_of_v = dtype_of<std::remove_cv_t<T>>::value;

// Call f with a value-initialised T of the element type of `t`: visit_dtype(t, [&](auto tag) {
// using T = decltype(tag); ... }). One switch for every place that needs the concrete type.
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::F32: return f(float{});
    case DType::F16: return f(f16{});
    case DType::BF16: return f(bf16{});
    case DType::I32: return f(int32_t{});
    case DType::I64: return f(int64_t{});
    case DType::U8: return f(uint8_t{});
    case DType::Bool: return f(bool{});
  }
  return f(float{});
}

// Element conversions used by Tensor::to and copy_from. Float -> integer truncates toward zero as
// PyTorch's .to(int) does; anything -> bool is "!= 0".
template <class T>
constexpr double to_double(T v) {
  if constexpr (std::is_same_v<T, f16>) return f16_to_f32(v.bits);
  else if constexpr (std::is_same_v<T, bf16>) return bf16_to_f32(v.bits);
  else return static_cast<double>(v);
}

template <class To, class From>
constexpr To convert_element(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<To, f16>) {
    return f16{f32_to_f16(static_cast<float>(to_double(v)))};
  } else if constexpr (std::is_same_v<To, bf16>) {
    return bf16{f32_to_bf16(static_cast<float>(to_double(v)))};
  } else if constexpr (std::is_same_v<To, bool>) {
    return to_double(v) != 0.0;
  } else if constexpr (std::is_integral_v<To> && !std::is_integral_v<From>) {
    // Out-of-range float -> int is undefined in C++; saturate (NaN -> 0) instead.
    const double d = to_double(v);
    if (!(d == d)) return To{0};
    if (d <= static_cast<double>(std::numeric_limits<To>::min())) return std::numeric_limits<To>::min();
    if (d >= static_cast<double>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(d);
  } else {
    return static_cast<To>(to_double(v));
  }
}

}  // namespace genscope
