// genscope/core/error.hpp — the one error hierarchy of genscope.
//
// Every error says what failed and where: the file, the tensor or the argument. Messages are
// built as "<where>: <what>", e.g. "model.safetensors: tensor 'w': offsets [0, 12) do not match
// f32[4, 4] (64 bytes)". The command line maps the classes to exit codes:
//   UsageError  -> 1 (the caller asked for something invalid: a flag, an argument)
//   InputError  -> 2 (a file or the data in it is bad, missing or unreadable)
//   everything else -> 2 as well, but these mean a bug or an environment problem.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace genscope {

// Concatenate anything streamable into a string: cat("tensor '", name, "': ", n, " bytes").
template <class... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

// Base of every exception genscope throws on purpose.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// A bad argument or option: the caller's mistake, fixable by calling differently (exit 1).
class UsageError : public Error {
 public:
  using Error::Error;
};

// A bad input: a file that cannot be opened or read, or data that is malformed (exit 2).
class InputError : public Error {
 public:
  using Error::Error;
};

// The file could not be opened, read, written or renamed; the message carries errno's text.
class IoError : public InputError {
 public:
  using InputError::InputError;
};

// The bytes were read but do not form a valid file of the expected format.
class FormatError : public InputError {
 public:
  using InputError::InputError;
};

// Shapes, dtypes or indices that do not fit the operation asked for.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// A device that is not available or tensors on different devices mixed in one call.
class DeviceError : public Error {
 public:
  using Error::Error;
};

// A checkpoint that tries to run code (pickle globals from os, subprocess, ...).
class SecurityError : public InputError {
 public:
  using InputError::InputError;
};

// Throw E with the pieces concatenated; the one-liner used at every check.
template <class E = Error, class... Args>
[[noreturn]] void fail(Args&&... args) {
  throw E(cat(std::forward<Args>(args)...));
}

}  // namespace genscope
