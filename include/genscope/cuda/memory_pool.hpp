// genscope/cuda/memory_pool.hpp — stream-ordered device memory.
//
// Allocations come from the device's CUDA memory pool with cudaMallocFromPoolAsync and go back
// with cudaFreeAsync on the same stream: a free is ordered after the kernels queued before it,
// and memory freed on a stream is reused by later allocations on that stream without a device
// synchronisation. The pool keeps freed memory (release threshold = unlimited) instead of
// returning it to the driver at every synchronisation, so a steady-state forward pass allocates
// nothing from the driver. Only with GENSCOPE_WITH_CUDA.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>

#include "genscope/cuda/runtime.hpp"

#if defined(GENSCOPE_WITH_CUDA)

namespace genscope::cuda {

class MemoryPool {
 public:
  // The default pool of `device`, set to keep freed memory cached.
  explicit MemoryPool(int device) : device_(device) {
    GENSCOPE_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool_, device));
    uint64_t threshold = UINT64_MAX;
    GENSCOPE_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &threshold));
  }

  // One pool per device, created on first use.
  static MemoryPool& for_device(int device) {
    static MemoryPool* pools[64] = {};
    if (device < 0 || device >= 64) fail<DeviceError>("MemoryPool: device ", device, " out of range");
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    if (!pools[device]) pools[device] = new MemoryPool(device);  // lives as long as the process
    return *pools[device];
  }

  void* allocate(size_t bytes, cudaStream_t stream) {
    void* p = nullptr;
    const cudaError_t rc = cudaMallocFromPoolAsync(&p, bytes ? bytes : 1, pool_, stream);
    if (rc != cudaSuccess)
      fail<DeviceError>("cudaMallocFromPoolAsync of ", bytes, " bytes on device ", device_, " failed: ", cudaGetErrorString(rc));
    return p;
  }
  void deallocate(void* p, cudaStream_t stream) {
    if (p) GENSCOPE_CUDA_CHECK(cudaFreeAsync(p, stream));
  }

  // Bytes the pool holds from the driver, and bytes handed out now.
  uint64_t reserved_bytes() const { return attribute(cudaMemPoolAttrReservedMemCurrent); }
  uint64_t used_bytes() const { return attribute(cudaMemPoolAttrUsedMemCurrent); }
  // Returns cached memory above `keep` bytes to the driver (after the streams using it synchronise).
  void trim(size_t keep = 0) { GENSCOPE_CUDA_CHECK(cudaMemPoolTrimTo(pool_, keep)); }

  int device() const { return device_; }

 private:
  uint64_t attribute(cudaMemPoolAttr a) const {
    uint64_t v = 0;
    GENSCOPE_CUDA_CHECK(cudaMemPoolGetAttribute(pool_, a, &v));
    return v;
  }
  int device_;
  cudaMemPool_t pool_ = nullptr;
};

// An owned device allocation, freed on its stream when destroyed.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t bytes, cudaStream_t stream, int device = current_device())
      : pool_(&MemoryPool::for_device(device)), stream_(stream), bytes_(bytes) {
    data_ = pool_->allocate(bytes, stream);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~DeviceBuffer() {
    if (data_) cudaFreeAsync(data_, stream_);  // no throw from a destructor
  }

  void* data() const { return data_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  size_t bytes() const { return bytes_; }
  cudaStream_t stream() const { return stream_; }

 private:
  void swap(DeviceBuffer& o) noexcept {
    std::swap(pool_, o.pool_);
    std::swap(stream_, o.stream_);
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
  }
  MemoryPool* pool_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace genscope::cuda

#endif  // GENSCOPE_WITH_CUDA
