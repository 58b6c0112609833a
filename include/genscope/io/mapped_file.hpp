// genscope/io/mapped_file.hpp — a whole file mapped into memory, read-only with respect to
// the file.
//
// Checkpoints are mapped rather than read so that opening one costs nothing until tensors are
// touched, and tensors can view the mapping directly (zero-copy). A MappedFile is held by
// shared_ptr: every Tensor viewing it keeps it alive through Storage's keepalive, so the
// mapping outlives the SafetensorsFile that opened it.
//
// The mapping is MAP_PRIVATE with write permission: genscope's Tensor has no read-only mode, so
// an in-place op on a loaded weight (say, folding a batch norm into a conv) must not SIGSEGV.
// Writes to a private mapping are copy-on-write: they cost a page each and never reach the file.
// Replacing the file on disk (save_safetensors renames a new file over it) does not disturb an
// existing mapping, which keeps the old inode.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>

#include "genscope/core/error.hpp"

namespace genscope {

class MappedFile {
 public:
  // Map `path`. IoError (with strerror) if it cannot be opened, is not a regular file, or cannot
  // be mapped. An empty file gives size() == 0 and data() == nullptr (mmap cannot map 0 bytes).
  static std::shared_ptr<MappedFile> open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail<IoError>(path, ": cannot open: ", std::strerror(errno));
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }  // the mapping stays valid after close (POSIX mmap)
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail<IoError>(path, ": cannot stat: ", std::strerror(errno));
    if (S_ISDIR(st.st_mode)) fail<IoError>(path, ": cannot map: ", std::strerror(EISDIR));
    if (!S_ISREG(st.st_mode)) fail<IoError>(path, ": cannot map: not a regular file");
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->path_ = path;
    if (st.st_size == 0) return file;
    if constexpr (sizeof(size_t) < sizeof(st.st_size)) {  // 32-bit: files over 4 GB cannot be mapped whole
      if (static_cast<uint64_t>(st.st_size) > SIZE_MAX) fail<IoError>(path, ": cannot map: ", std::strerror(EFBIG));
    }
    const size_t size = static_cast<size_t>(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) fail<IoError>(path, ": cannot map ", size, " bytes: ", std::strerror(errno));
    file->data_ = static_cast<uint8_t*>(p);
    file->size_ = size;
    return file;
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (data_) ::munmap(data_, size_);
  }

  // Copy-on-write memory of the whole file (see above); nullptr for an empty file.
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

  // Drop the pages of the mapping from this process's resident set (madvise MADV_DONTNEED). The
  // next read of a page maps it again from the page cache (a minor fault, no disk read while the
  // kernel keeps the file cached), so a model whose weights are read layer by layer holds only the
  // layers in use instead of the whole file (the SD VAE's 335 MB, models/vae.hpp). Pages this
  // process wrote (copy-on-write, see above) are discarded too and read the file's bytes again:
  // call it only on mappings whose tensors are never written in place.
  void release_resident_pages() const {
    if (data_) ::madvise(data_, size_, MADV_DONTNEED);
  }

 private:
  MappedFile() = default;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace genscope
