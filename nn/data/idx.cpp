#include "nn/data/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

namespace quench::nn {

namespace {

constexpr uint64_t kMaxIdxBytes = uint64_t{4} << 30;  // far above any real IDX file; stops hostile sizes

[[noreturn]] void fail(const std::string& path, const std::string& reason) {
  throw Error("read_idx: " + path + ": " + reason);
}

// gzFile reader that turns every zlib failure into an Error naming the file.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    errno = 0;
    f_ = gzopen(path.c_str(), "rb");
    if (!f_) fail(path, std::string("cannot open: ") + (errno ? std::strerror(errno) : "out of memory"));
    gzbuffer(f_, 1 << 17);
  }
  ~GzReader() { gzclose(f_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads up to n bytes; returns how many were read (short only at the end of the data).
  uint64_t read(void* dst, uint64_t n) {
    char* p = static_cast<char*>(dst);
    uint64_t done = 0;
    while (done < n) {
      unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(n - done, 1u << 30));
      int r = gzread(f_, p + done, chunk);
      if (r < 0) {
        int code = 0;
        const char* msg = gzerror(f_, &code);
        std::string m = msg ? msg : "unknown zlib error";
        if (m.rfind(path_ + ": ", 0) == 0) m = m.substr(path_.size() + 2);  // zlib prefixes the path
        fail(path_, "bad gzip data: " + m);
      }
      if (r == 0) break;
      done += static_cast<uint64_t>(r);
    }
    return done;
  }
  bool stream_cut_short() {
    int code = Z_OK;
    gzerror(f_, &code);
    return code == Z_BUF_ERROR;
  }
  // zlib reports a stream cut short as Z_BUF_ERROR after a short read.
  std::string truncation_detail() {
    int code = 0;
    const char* msg = gzerror(f_, &code);
    if (code == Z_OK || !msg || !*msg) return std::string();
    std::string m = msg;
    if (m.rfind(path_ + ": ", 0) == 0) m = m.substr(path_.size() + 2);
    return " (" + m + ")";
  }

 private:
  std::string path_;
  gzFile f_ = nullptr;
};

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string join(const std::string& root, const std::string& name) {
  if (root.empty()) return name;
  return root.back() == '/' ? root + name : root + "/" + name;
}

const char* magic_name(uint32_t magic) {
  return magic == kIdxImagesMagic ? " (images)" : magic == kIdxLabelsMagic ? " (labels)" : "";
}

}  // namespace

Tensor read_idx(const std::string& path, uint32_t expected_magic) {
  GzReader in(path);
  uint8_t head[4];
  if (in.read(head, 4) != 4) fail(path, "truncated: shorter than the 4-byte magic" + in.truncation_detail());
  const uint32_t magic = big_endian_u32(head);
  if (expected_magic != 0 && magic != expected_magic)
    fail(path, "bad magic " + std::to_string(magic) + ", expected " + std::to_string(expected_magic) +
                   magic_name(expected_magic));
  if (head[0] != 0 || head[1] != 0)
    fail(path, "bad magic " + std::to_string(magic) + ": not an IDX file");
  if (head[2] != 0x08) {
    char type[8];
    std::snprintf(type, sizeof type, "0x%02x", head[2]);
    fail(path, std::string("unsupported IDX element type ") + type + " (only 0x08, unsigned byte, is read)");
  }
  const int ndim = head[3];
  if (ndim == 0) fail(path, "IDX header declares 0 dimensions");

  std::vector<uint8_t> dims_raw(4 * static_cast<size_t>(ndim));
  if (in.read(dims_raw.data(), dims_raw.size()) != dims_raw.size())
    fail(path, "truncated: the header declares " + std::to_string(ndim) +
                   " dimensions but the file ends inside them" + in.truncation_detail());
  Shape shape;
  uint64_t numel = 1;
  for (int d = 0; d < ndim; ++d) {
    uint64_t n = big_endian_u32(&dims_raw[4 * d]);
    shape.push_back(static_cast<int64_t>(n));
    if (__builtin_mul_overflow(numel, n, &numel) || numel > kMaxIdxBytes)
      fail(path, "header declares dimensions " + shape_str(shape) + "..., over the 4 GiB limit");
  }

  Tensor t = Tensor::empty(shape, kUInt8);
  const uint64_t got = numel ? in.read(t.raw_data(), numel) : 0;
  if (got != numel)
    fail(path, "truncated: shape " + shape_str(shape) + " needs " + std::to_string(numel) +
                   " data bytes but the file holds " + std::to_string(got) + in.truncation_detail());
  // Reading past the end also makes zlib check the gzip trailer (CRC and length).
  uint8_t extra[1];
  if (in.read(extra, 1) != 0)
    fail(path, "extra bytes after the " + std::to_string(numel) + " data bytes of shape " +
                   shape_str(shape));
  if (in.stream_cut_short()) fail(path, "truncated gzip stream (the trailer is missing)");
  return t;
}

LabeledImages load_mnist_layout(const std::string& root, bool train,
                                const std::vector<std::string>& classes) {
  const std::string split = train ? "train" : "t10k";
  const std::string images_path = join(root, split + "-images-idx3-ubyte.gz");
  const std::string labels_path = join(root, split + "-labels-idx1-ubyte.gz");
  Tensor images = read_idx(images_path, kIdxImagesMagic);
  Tensor labels = read_idx(labels_path, kIdxLabelsMagic);
  QUENCH_CHECK(images.dim() == 3, "read_idx: ", images_path, ": images must have 3 dimensions, got ",
               shape_str(images.sizes()));
  QUENCH_CHECK(labels.dim() == 1, "read_idx: ", labels_path, ": labels must have 1 dimension, got ",
               shape_str(labels.sizes()));
  QUENCH_CHECK(images.size(0) == labels.size(0), "read_idx: counts disagree: ", images_path, " has ",
               images.size(0), " images but ", labels_path, " has ", labels.size(0), " labels");
  const uint8_t* l = labels.data_ptr<uint8_t>();
  for (int64_t i = 0; i < labels.numel(); ++i)
    QUENCH_CHECK(l[i] < classes.size(), "read_idx: ", labels_path, ": label ", int{l[i]}, " at index ",
                 i, " is outside the ", classes.size(), " classes");
  return LabeledImages{images, labels.to(kInt32), classes};
}

LabeledImages FashionMNIST(const std::string& root, bool train) {
  return load_mnist_layout(root, train,
                           {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                            "Sneaker", "Bag", "Ankle boot"});
}

LabeledImages MNIST(const std::string& root, bool train) {
  return load_mnist_layout(root, train, {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
}

}  // namespace quench::nn
