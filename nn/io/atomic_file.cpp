#include "nn/io/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "engine/error.hpp"

namespace quench::nn {

namespace {

std::string errno_str() { return std::strerror(errno); }

void write_all(int fd, const void* data, size_t len, const std::string& what) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t w = ::write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw Error(what + ": write failed: " + (w < 0 ? errno_str() : "no progress"));
    p += w;
    len -= static_cast<size_t>(w);
  }
}

std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

void write_file_atomic(const std::string& path, const std::vector<std::string_view>& chunks, const std::string& what) {
  // Temporary file beside the target so rename() stays on one file system (and is atomic).
  static std::atomic<uint64_t> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) throw Error(what + ": cannot create a temporary file " + tmp + ": " + errno_str());
  try {
    for (std::string_view c : chunks) write_all(fd, c.data(), c.size(), what);
    if (::fsync(fd) != 0) throw Error(what + ": fsync failed: " + errno_str());
    int rc = ::close(fd);
    fd = -1;
    if (rc != 0) throw Error(what + ": close failed: " + errno_str());
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw Error(what + ": cannot rename the temporary file over it: " + errno_str());
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  // Make the rename itself durable; failing here leaves a complete file, so it is not an error.
  int dir = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace quench::nn
