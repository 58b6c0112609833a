// genscope/core/tensor.hpp — a strided view over reference-counted storage.
//
// A Tensor is (storage, dtype, shape, strides, offset), as in PyTorch: views (slice, select,
// view, permute, transpose) share the storage and only change the metadata; contiguous(),
// clone() and to() copy. Strides and offset count elements, not bytes. Storage is either owned
// (64-byte aligned, so SIMD loads of a fresh tensor never straddle a cache line) or wraps memory
// genscope does not own, such as a tensor inside a memory-mapped safetensors file; then a
// `keepalive` handle holds the mapping open as long as any view of it exists.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <ostream>
#include <span>
#include <string>
#include <utility>

#include <sys/mman.h>
#include <unistd.h>

#include "genscope/core/dtype.hpp"
#include "genscope/core/error.hpp"

#if defined(GENSCOPE_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace genscope {

constexpr int kMaxDims = 8;

// A shape or a stride list: at most kMaxDims int64 values, stored inline.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : Shape(std::span<const int64_t>(dims.begin(), dims.size())) {}
  explicit Shape(std::span<const int64_t> dims) {
    if (dims.size() > static_cast<size_t>(kMaxDims)) fail<ShapeError>("a tensor has at most ", kMaxDims, " dimensions, got ", dims.size());
    size_ = static_cast<int>(dims.size());
    std::copy(dims.begin(), dims.end(), dims_.begin());
  }

  int size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int64_t operator[](int i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t& operator[](int i) { return dims_[static_cast<size_t>(i)]; }
  const int64_t* begin() const { return dims_.data(); }
  const int64_t* end() const { return dims_.data() + size_; }
  const int64_t* data() const { return dims_.data(); }

  void push_back(int64_t d) {
    if (size_ == kMaxDims) fail<ShapeError>("a tensor has at most ", kMaxDims, " dimensions");
    dims_[static_cast<size_t>(size_++)] = d;
  }
  void erase(int i) {
    std::copy(begin() + i + 1, end(), dims_.begin() + i);
    --size_;
  }
  void insert(int i, int64_t d) {
    push_back(0);
    std::copy_backward(dims_.begin() + i, dims_.begin() + size_ - 1, dims_.begin() + size_);
    dims_[static_cast<size_t>(i)] = d;
  }

  // Number of elements; 1 for a scalar (no dims), 0 if any dim is 0.
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : *this) n *= d;
    return n;
  }

  bool operator==(const Shape& o) const { return std::equal(begin(), end(), o.begin(), o.end()); }

  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < size_; ++i) s += (i ? ", " : "") + std::to_string(dims_[static_cast<size_t>(i)]);
    return s + "]";
  }

 private:
  std::array<int64_t, kMaxDims> dims_{};
  int size_ = 0;
};

inline std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

enum class Device { CPU, CUDA };

inline std::string_view device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }
inline std::ostream& operator<<(std::ostream& os, Device d) { return os << device_name(d); }

// A block of bytes on one device, shared by every tensor that views it.
//
// CPU blocks of kMapThreshold bytes or more are anonymous mappings of their own (mmap), unmapped
// when the last view goes: their memory returns to the OS at once. Through malloc, glibc's dynamic
// mmap threshold (raised to the size of each freed block, up to 32 MB) and trim threshold keep
// tens of MB of freed activations and Winograd buffers resident, which showed as 30–80 MB of
// extra, run-to-run varying peak RSS in the SD VAE at 512².
class Storage {
 public:
  static constexpr size_t kAlignment = 64;
  // Under AddressSanitizer every block goes through operator new, so that reads past a large
  // tensor's end are still caught.
#if defined(__SANITIZE_ADDRESS__)
  static constexpr size_t kMapThreshold = SIZE_MAX;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  static constexpr size_t kMapThreshold = SIZE_MAX;
#else
  static constexpr size_t kMapThreshold = size_t{1} << 20;
#endif
#else
  static constexpr size_t kMapThreshold = size_t{1} << 20;
#endif

  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device = Device::CPU) {
    auto s = std::shared_ptr<Storage>(new Storage());
    s->nbytes_ = nbytes;
    s->device_ = device;
    s->owns_ = true;
    if (device == Device::CPU && nbytes >= kMapThreshold) {
      // Aligned to 2 MB and advised as huge pages (where transparent huge pages are set to
      // "madvise"): a fresh 134 MB activation then costs 67 page faults instead of 33 000, which
      // in the SD VAE at 256² was 10 % of the time.
      constexpr size_t kHuge = size_t{2} << 20;
      const size_t span = nbytes + kHuge;
      void* p = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) fail<Error>("out of memory allocating ", nbytes, " bytes");
      const uintptr_t base = reinterpret_cast<uintptr_t>(p), start = (base + kHuge - 1) / kHuge * kHuge;
      const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
      const uintptr_t end = (start + nbytes + page - 1) / page * page;  // keep whole pages
      if (start > base) ::munmap(p, start - base);
      if (base + span > end) ::munmap(reinterpret_cast<void*>(end), base + span - end);
      ::madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE);
      s->data_ = reinterpret_cast<void*>(start);
      s->mapped_ = true;
    } else if (device == Device::CPU) {
      const size_t rounded = (std::max<size_t>(nbytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
      s->data_ = ::operator new(rounded, std::align_val_t(kAlignment), std::nothrow);
      if (!s->data_) fail<Error>("out of memory allocating ", nbytes, " bytes");
    } else {
#if defined(GENSCOPE_WITH_CUDA)
      const cudaError_t rc = cudaMalloc(&s->data_, std::max<size_t>(nbytes, 1));
      if (rc != cudaSuccess) fail<DeviceError>("cudaMalloc of ", nbytes, " bytes failed: ", cudaGetErrorString(rc));
#else
      fail<DeviceError>("a CUDA tensor was requested but genscope was built without CUDA (GENSCOPE_CUDA=OFF)");
#endif
    }
    return s;
  }

  // Wrap memory genscope does not own; `keepalive` (for example the mmap of a file) is held
  // until the last tensor viewing this storage is gone.
  static std::shared_ptr<Storage> wrap(void* data, size_t nbytes, std::shared_ptr<const void> keepalive,
                                       Device device = Device::CPU) {
    auto s = std::shared_ptr<Storage>(new Storage());
    s->data_ = data;
    s->nbytes_ = nbytes;
    s->device_ = device;
    s->owns_ = false;
    s->keepalive_ = std::move(keepalive);
    return s;
  }

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (!owns_ || !data_) return;
    if (mapped_) {
      ::munmap(data_, nbytes_);
    } else if (device_ == Device::CPU) {
      ::operator delete(data_, std::align_val_t(kAlignment));
    } else {
#if defined(GENSCOPE_WITH_CUDA)
      cudaFree(data_);
#endif
    }
  }

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  bool owns_memory() const { return owns_; }

  // Bytes [offset, offset + n) of this owned CPU storage will not be read again before they are
  // written: the whole pages inside go back to the OS now (madvise MADV_DONTNEED; touched again
  // they read as zero), so a tensor that shrank in place (a 1×1 conv to fewer channels written
  // over its input, nn::ResnetBlock2D) stops holding the memory it no longer uses. Advisory: a
  // no-op for storage genscope does not own, on other devices, or where madvise refuses.
  void discard(size_t offset, size_t n) const {
    if (!owns_ || device_ != Device::CPU || offset >= nbytes_) return;
    n = std::min(n, nbytes_ - offset);
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t begin = reinterpret_cast<uintptr_t>(data_) + offset, end = begin + n;
    const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;  // whole pages inside only
    if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  }

 private:
  Storage() = default;
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_ = Device::CPU;
  bool owns_ = false;
  bool mapped_ = false;  // an mmap of its own (CPU, ≥ kMapThreshold bytes)
  std::shared_ptr<const void> keepalive_;
};

class Tensor {
 public:
  Tensor() = default;

  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype)
      : storage_(std::move(storage)), shape_(shape), strides_(strides), offset_(offset), dtype_(dtype) {
    if (shape_.size() != strides_.size()) fail<ShapeError>("shape ", shape_, " and strides ", strides_, " differ in rank");
    check_fits_storage();
  }

  static Tensor empty(Shape shape, DType dtype, Device device = Device::CPU) {
    for (int64_t d : shape)
      if (d < 0) fail<ShapeError>("negative dimension in shape ", shape);
    const size_t nbytes = checked_nbytes(shape, dtype);
    return Tensor(Storage::allocate(nbytes, device), shape, contiguous_strides(shape), 0, dtype);
  }

  static Tensor zeros(Shape shape, DType dtype, Device device = Device::CPU) {
    Tensor t = empty(shape, dtype, device);
    if (device == Device::CPU) {
      std::memset(t.storage_->data(), 0, t.nbytes());
    } else {
#if defined(GENSCOPE_WITH_CUDA)
      cudaMemset(t.storage_->data(), 0, t.nbytes());
#endif
    }
    return t;
  }

  // A contiguous CPU tensor over memory genscope does not own.
  static Tensor wrap(void* data, Shape shape, DType dtype, std::shared_ptr<const void> keepalive) {
    const size_t nbytes = checked_nbytes(shape, dtype);
    return Tensor(Storage::wrap(data, nbytes, std::move(keepalive)), shape, contiguous_strides(shape), 0, dtype);
  }

  // Row-major strides of a shape, in elements.
  static Shape contiguous_strides(const Shape& shape) {
    Shape strides = shape;
    int64_t s = 1;
    for (int i = shape.size() - 1; i >= 0; --i) {
      strides[i] = s;
      s *= std::max<int64_t>(shape[i], 1);
    }
    return strides;
  }

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::CPU; }
  int dim() const { return shape_.size(); }
  const Shape& shape() const { return shape_; }
  int64_t size(int d) const { return shape_[wrap_dim(d)]; }
  const Shape& strides() const { return strides_; }
  int64_t stride(int d) const { return strides_[wrap_dim(d)]; }
  int64_t offset() const { return offset_; }
  int64_t numel() const { return shape_.numel(); }
  size_t element_size() const { return dtype_size(dtype_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  bool is_contiguous() const {
    int64_t expected = 1;
    for (int i = dim() - 1; i >= 0; --i) {
      if (shape_[i] == 1) continue;  // a size-1 dim's stride never matters
      if (strides_[i] != expected) return false;
      expected *= shape_[i];
    }
    return true;
  }

  void* data_ptr() { return byte_ptr(); }
  const void* data_ptr() const { return byte_ptr(); }

  template <class T>
  T* data() {
    check_access<T>();
    return static_cast<T*>(byte_ptr());
  }
  template <class T>
  const T* data() const {
    check_access<T>();
    return static_cast<const T*>(byte_ptr());
  }

  std::string str() const { return cat(dtype_name(dtype_), shape_.str(), device() == Device::CUDA ? "@cuda" : ""); }

  // ---- views: share storage, change metadata -------------------------------------------------

  // Elements start, start+step, ... < stop along `dim`; Python's clamping and negative indices.
  Tensor slice(int d, int64_t start, int64_t stop, int64_t step = 1) const {
    d = wrap_dim(d);
    if (step <= 0) fail<ShapeError>("slice step must be positive, got ", step);
    const int64_t n = shape_[d];
    auto clamp_index = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
    start = clamp_index(start);
    stop = std::max(clamp_index(stop), start);
    Tensor t = *this;
    t.offset_ += start * strides_[d];
    t.shape_[d] = (stop - start + step - 1) / step;
    t.strides_[d] *= step;
    return t;
  }

  Tensor select(int d, int64_t index) const {
    d = wrap_dim(d);
    const int64_t n = shape_[d];
    if (index < -n || index >= n) fail<ShapeError>("index ", index, " out of range for dim ", d, " of ", str());
    if (index < 0) index += n;
    Tensor t = *this;
    t.offset_ += index * strides_[d];
    t.shape_.erase(d);
    t.strides_.erase(d);
    return t;
  }

  // A view with a new shape (one dim may be -1); fails if the strides cannot express it.
  Tensor view(Shape shape) const {
    shape = infer_shape(shape);
    Shape strides;
    if (!view_strides(shape, strides))
      fail<ShapeError>("cannot view ", str(), " with strides ", strides_, " as ", shape, "; call reshape() to copy");
    Tensor t = *this;
    t.shape_ = shape;
    t.strides_ = strides;
    return t;
  }

  // view() when the strides allow it, otherwise a contiguous copy.
  Tensor reshape(Shape shape) const {
    shape = infer_shape(shape);
    Shape strides;
    if (view_strides(shape, strides)) return view(shape);
    return contiguous().view(shape);
  }

  Tensor permute(Shape dims) const {
    if (dims.size() != dim()) fail<ShapeError>("permute of ", str(), " needs ", dim(), " dims, got ", dims);
    Tensor t = *this;
    std::array<bool, kMaxDims> seen{};
    for (int i = 0; i < dim(); ++i) {
      const int src = wrap_dim(static_cast<int>(dims[i]));
      if (seen[static_cast<size_t>(src)]) fail<ShapeError>("permute dims ", dims, " repeat dim ", src);
      seen[static_cast<size_t>(src)] = true;
      t.shape_[i] = shape_[src];
      t.strides_[i] = strides_[src];
    }
    return t;
  }

  Tensor transpose(int a, int b) const {
    a = wrap_dim(a);
    b = wrap_dim(b);
    Tensor t = *this;
    std::swap(t.shape_[a], t.shape_[b]);
    std::swap(t.strides_[a], t.strides_[b]);
    return t;
  }

  Tensor unsqueeze(int d) const {
    if (d < 0) d += dim() + 1;
    if (d < 0 || d > dim()) fail<ShapeError>("unsqueeze dim ", d, " out of range for ", str());
    Tensor t = *this;
    t.shape_.insert(d, 1);
    t.strides_.insert(d, d < dim() ? strides_[d] * shape_[d] : 1);
    return t;
  }

  Tensor squeeze(int d) const {
    d = wrap_dim(d);
    if (shape_[d] != 1) fail<ShapeError>("cannot squeeze dim ", d, " of size ", shape_[d], " in ", str());
    Tensor t = *this;
    t.shape_.erase(d);
    t.strides_.erase(d);
    return t;
  }

  // ---- copies ---------------------------------------------------------------------------------

  Tensor contiguous() const { return is_contiguous() ? *this : clone(); }

  Tensor clone() const {
    Tensor t = empty(shape_, dtype_, device());
    t.copy_from(*this);
    return t;
  }

  // A converting copy: f16/bf16 round to nearest even, float -> int truncates (saturating).
  Tensor to(DType dtype) const {
    Tensor t = empty(shape_, dtype, device());
    t.copy_from(*this);
    return t;
  }

  // Copy src into this tensor's elements (same shape; any strides; dtypes converted). CPU only
  // for now; the CUDA backend adds device copies.
  void copy_from(const Tensor& src) {
    if (!(src.shape_ == shape_)) fail<ShapeError>("copy_from: shape ", src.shape_, " into ", shape_);
    if (device() != Device::CPU || src.device() != Device::CPU)
      fail<DeviceError>("copy_from between ", src.str(), " and ", str(), ": only CPU tensors are supported here");
    if (numel() == 0) return;
    if (dtype_ == src.dtype_ && is_contiguous() && src.is_contiguous()) {
      std::memmove(byte_ptr(), src.byte_ptr(), nbytes());
      return;
    }
    visit_dtype(dtype_, [&](auto dst_tag) {
      visit_dtype(src.dtype_, [&](auto src_tag) {
        using To = decltype(dst_tag);
        using From = decltype(src_tag);
        copy_convert<To, From>(*this, src);
      });
    });
  }

  // One element, converted to double; for tests and small host-side reads.
  double item(std::initializer_list<int64_t> index = {}) const {
    if (static_cast<int>(index.size()) != dim()) fail<ShapeError>("item() needs ", dim(), " indices for ", str());
    if (device() != Device::CPU) fail<DeviceError>("item() of a CUDA tensor; copy it to the CPU first");
    int64_t off = 0;
    int d = 0;
    for (int64_t i : index) {
      if (i < 0 || i >= shape_[d]) fail<ShapeError>("index ", i, " out of range for dim ", d, " of ", str());
      off += i * strides_[d++];
    }
    return visit_dtype(dtype_, [&](auto tag) {
      using T = decltype(tag);
      return to_double(static_cast<const T*>(byte_ptr())[off]);
    });
  }

 private:
  static size_t checked_nbytes(const Shape& shape, DType dtype) {
    // Refuse shapes whose byte size overflows before anything is allocated.
    constexpr uint64_t kLimit = uint64_t{1} << 62;
    uint64_t n = dtype_size(dtype);
    for (int64_t d : shape) {
      if (d < 0) fail<ShapeError>("negative dimension in shape ", shape);
      if (d != 0 && n > kLimit / static_cast<uint64_t>(d)) fail<ShapeError>("shape ", shape, " of ", dtype, " is too large");
      n *= static_cast<uint64_t>(d);
    }
    return static_cast<size_t>(n);
  }

  int wrap_dim(int d) const {
    const int n = dim();
    if (d < -n || d >= n) fail<ShapeError>("dim ", d, " out of range for ", str());
    return d < 0 ? d + n : d;
  }

  void* byte_ptr() const {
    if (!storage_) fail<Error>("use of an undefined tensor");
    return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(element_size());
  }

  template <class T>
  void check_access() const {
    if (dtype_of_v<T> != dtype_) fail<ShapeError>("data<", dtype_name(dtype_of_v<T>), ">() on a tensor of ", str());
    if (device() != Device::CPU) fail<DeviceError>("host access to ", str());
  }

  void check_fits_storage() const {
    if (!storage_) return;
    if (offset_ < 0) fail<ShapeError>("negative offset ", offset_);
    int64_t lo = offset_, hi = offset_;
    for (int d = 0; d < dim(); ++d) {
      if (shape_[d] < 0) fail<ShapeError>("negative dimension in shape ", shape_);
      if (shape_[d] == 0) return;  // no elements: nothing to check
      const int64_t span = (shape_[d] - 1) * strides_[d];
      (span < 0 ? lo : hi) += span;
    }
    if (lo < 0 || static_cast<size_t>(hi + 1) * element_size() > storage_->nbytes())
      fail<ShapeError>(str(), " with strides ", strides_, " and offset ", offset_, " exceeds its storage of ",
                       storage_->nbytes(), " bytes");
  }

  Shape infer_shape(Shape shape) const {
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < shape.size(); ++i) {
      if (shape[i] == -1) {
        if (infer >= 0) fail<ShapeError>("only one dimension can be -1 in ", shape);
        infer = i;
      } else if (shape[i] < 0) {
        fail<ShapeError>("negative dimension in shape ", shape);
      } else {
        known *= shape[i];
      }
    }
    if (infer >= 0) {
      if (known == 0 || numel() % known != 0) fail<ShapeError>("cannot reshape ", str(), " to ", shape);
      shape[infer] = numel() / known;
    }
    if (shape.numel() != numel()) fail<ShapeError>("cannot reshape ", str(), " (", numel(), " elements) to ", shape);
    return shape;
  }

  // Strides for viewing this tensor as `shape` without a copy, if possible. Follows PyTorch's
  // computeStride: walk both shapes from the back, matching runs of old dims that are laid out
  // contiguously with respect to each other ("chunks") to runs of new dims of the same size.
  bool view_strides(const Shape& shape, Shape& out) const {
    out = shape;
    if (numel() == 0 || dim() == 0) {
      out = contiguous_strides(shape);
      return true;
    }
    int new_d = shape.size() - 1;
    int64_t chunk_base_stride = dim() ? strides_[dim() - 1] : 1;
    int64_t tensor_numel = 1, view_numel = 1;
    for (int d = dim() - 1; d >= 0; --d) {
      tensor_numel *= shape_[d];
      const bool chunk_ends = d == 0 || (shape_[d - 1] != 1 && strides_[d - 1] != tensor_numel * chunk_base_stride);
      if (chunk_ends) {
        while (new_d >= 0 && (view_numel < tensor_numel || shape[new_d] == 1)) {
          out[new_d] = view_numel * chunk_base_stride;
          view_numel *= shape[new_d];
          --new_d;
        }
        if (view_numel != tensor_numel) return false;
        if (d > 0) {
          chunk_base_stride = strides_[d - 1];
          tensor_numel = 1;
          view_numel = 1;
        }
      }
    }
    return new_d == -1;
  }

  // dst[i] = convert(src[i]) for every element. Contiguous pairs run as one flat loop; otherwise
  // the innermost dim is the inner loop and the outer index is decoded once per row. Serial on
  // purpose: core/tensor.hpp stays free of the thread pool, and ops parallelise at their level.
  template <class To, class From>
  static void copy_convert(Tensor& dst, const Tensor& src) {
    auto* out = static_cast<To*>(dst.byte_ptr());
    const auto* in = static_cast<const From*>(src.byte_ptr());
    const int64_t n = dst.numel();
    if (dst.is_contiguous() && src.is_contiguous()) {
      for (int64_t i = 0; i < n; ++i) out[i] = convert_element<To>(in[i]);
      return;
    }
    const int nd = dst.dim();
    const int64_t inner = nd ? dst.shape_[nd - 1] : 1;
    const int64_t so = nd ? dst.strides_[nd - 1] : 1, si = nd ? src.strides_[nd - 1] : 1;
    const int64_t rows = inner ? n / inner : 0;
    for (int64_t r = 0; r < rows; ++r) {
      int64_t o = 0, i = 0, rest = r;
      for (int d = nd - 2; d >= 0; --d) {
        const int64_t k = rest % dst.shape_[d];
        rest /= dst.shape_[d];
        o += k * dst.strides_[d];
        i += k * src.strides_[d];
      }
      for (int64_t j = 0; j < inner; ++j) out[o + j * so] = convert_element<To>(in[i + j * si]);
    }
  }

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::F32;
};

inline std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace genscope
