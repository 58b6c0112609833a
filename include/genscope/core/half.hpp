// genscope/core/half.hpp — IEEE binary16 (f16) and bfloat16 (bf16) <-> f32 conversion.
//
// Both directions round to nearest, ties to even, exactly as the hardware conversions (and
// PyTorch's c10::Half / c10::BFloat16) do; Inf stays Inf and NaN stays NaN (a quiet NaN with the
// sign kept). f16 subnormals are produced and read exactly. These are the functions every
// storage-dtype conversion in genscope goes through, so the CPU and CUDA paths agree bit-for-bit.
#pragma once

#include <bit>
#include <cstdint>

namespace genscope {

// Storage types: plain 16-bit patterns, so a tensor of them is just bytes.
struct f16 {
  uint16_t bits;
};
struct bf16 {
  uint16_t bits;
};

// f32 -> f16, round to nearest even. Works on the bit pattern: exponents below f16's range become
// subnormals (shifted mantissa with the implicit 1), above it become Inf.
constexpr uint16_t f32_to_f16(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) {                      // Inf or NaN
    return static_cast<uint16_t>(sign | 0x7C00u | (abs > 0x7F800000u ? 0x0200u | ((abs >> 13) & 0x3FFu) : 0u));
  }
  if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds to >= 65520: Inf
  if (abs < 0x38800000u) {                       // below 2^-14: f16 subnormal (or zero)
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // below 2^-25: rounds to zero
    const uint32_t exponent = abs >> 23;          // 102..112
    const uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126u - exponent;       // 14..24
    const uint32_t truncated = mantissa >> shift;
    const uint32_t remainder = mantissa & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1u);
    const uint32_t rounded = truncated + ((remainder > halfway || (remainder == halfway && (truncated & 1u))) ? 1u : 0u);
    return static_cast<uint16_t>(sign | rounded);
  }
  // Normal: rebias exponent (127 -> 15) and round the 13 dropped mantissa bits to nearest even.
  const uint32_t rebased = abs - 0x38000000u;
  const uint32_t rounded = rebased + 0x0FFFu + ((rebased >> 13) & 1u);
  return static_cast<uint16_t>(sign | (rounded >> 13));
}

constexpr float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1Fu) return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));  // Inf/NaN
  if (exponent != 0) return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  if (mantissa == 0) return std::bit_cast<float>(sign);  // signed zero
  // Subnormal: normalise the mantissa.
  uint32_t e = 113u;
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --e;
  }
  return std::bit_cast<float>(sign | (e << 23) | ((mantissa & 0x3FFu) << 13));
}

// f32 -> bf16: keep the top 16 bits, rounding the low 16 to nearest even. A NaN is kept quiet
// (rounding could otherwise carry a NaN's payload into the exponent and make it Inf).
constexpr uint16_t f32_to_bf16(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

constexpr float bf16_to_f32(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

}  // namespace genscope
