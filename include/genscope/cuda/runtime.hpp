// genscope/cuda/runtime.hpp — CUDA error checks, devices, streams and events.
//
// Everything here exists only when genscope is built with CUDA (GENSCOPE_WITH_CUDA, set by the
// GENSCOPE_CUDA CMake option); without it the header declares just cuda::available() == false, so
// code can include it unconditionally. Every failing CUDA call throws DeviceError naming the call,
// the file:line it was made from and the runtime's message:
//   GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, kind, stream));
//   -> "cudaMemcpyAsync(dst, src, n, kind, stream) failed at model.cu:42: invalid argument"
#pragma once

#include <utility>

#include "genscope/core/error.hpp"

#if defined(GENSCOPE_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace genscope::cuda {

#if !defined(GENSCOPE_WITH_CUDA)

inline bool available() { return false; }
inline int device_count() { return 0; }

#else

[[noreturn]] inline void throw_cuda_error(const char* call, const char* file, int line, const char* message) {
  fail<DeviceError>(call, " failed at ", file, ":", line, ": ", message);
}

inline void check_cuda(cudaError_t rc, const char* call, const char* file, int line) {
  if (rc != cudaSuccess) throw_cuda_error(call, file, line, cudaGetErrorString(rc));
}

#define GENSCOPE_CUDA_CHECK(call) ::genscope::cuda::check_cuda((call), #call, __FILE__, __LINE__)

// Devices visible to this process; 0 (not an error) when there is no driver or no GPU.
inline int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" so later checks see their own errors
    return 0;
  }
  return n;
}
inline bool available() { return device_count() > 0; }

inline int current_device() {
  int d = 0;
  GENSCOPE_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

// Makes `device` current for a scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) : previous_(current_device()) {
    if (device != previous_) GENSCOPE_CUDA_CHECK(cudaSetDevice(device));
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  ~DeviceGuard() { cudaSetDevice(previous_); }

 private:
  int previous_;
};

// An owned, non-blocking stream (it does not synchronise with the legacy default stream).
class Stream {
 public:
  Stream() { GENSCOPE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  Stream(Stream&& o) noexcept : stream_(o.stream_) { o.stream_ = nullptr; }
  Stream& operator=(Stream&& o) noexcept {
    std::swap(stream_, o.stream_);
    return *this;
  }
  ~Stream() {
    if (stream_) cudaStreamDestroy(stream_);
  }
  cudaStream_t get() const { return stream_; }
  operator cudaStream_t() const { return stream_; }
  void synchronize() const { GENSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

// An event, for ordering work across streams and for timing (timing = true).
class Event {
 public:
  explicit Event(bool timing = false) {
    GENSCOPE_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() {
    if (event_) cudaEventDestroy(event_);
  }
  cudaEvent_t get() const { return event_; }
  void record(cudaStream_t stream) { GENSCOPE_CUDA_CHECK(cudaEventRecord(event_, stream)); }
  // Work submitted to `stream` after this call waits for the work this event recorded.
  void wait_on(cudaStream_t stream) const { GENSCOPE_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0)); }
  void synchronize() const { GENSCOPE_CUDA_CHECK(cudaEventSynchronize(event_)); }
  // Milliseconds from `start` to this event (both recorded with timing = true).
  float elapsed_ms_since(const Event& start) const {
    float ms = 0;
    GENSCOPE_CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_));
    return ms;
  }

 private:
  cudaEvent_t event_ = nullptr;
};

#endif  // GENSCOPE_WITH_CUDA

}  // namespace genscope::cuda
