#include "nn/io/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "nn/io/atomic_file.hpp"

namespace quench::nn {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader copies it as is");

namespace {

using json = nlohmann::json;
constexpr uint64_t kMaxHeader = 100'000'000;  // same limit as the reference implementation

// ---- dtypes a file may hold, and what each becomes in memory ----
// convert(src, n, dst) turns n file elements into n elements of `to`; false when a value does not fit.
using ConvertFn = bool (*)(const uint8_t* src, int64_t n, void* dst);

template <class From, class To>
bool convert_cast(const uint8_t* src, int64_t n, void* dst) {
  To* out = static_cast<To*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    From v;
    std::memcpy(&v, src + i * sizeof(From), sizeof(From));
    if constexpr (std::is_integral_v<From> && std::is_integral_v<To>) {
      if (v < static_cast<From>(std::numeric_limits<To>::min()) ||
          v > static_cast<From>(std::numeric_limits<To>::max()))
        return false;
    }
    out[i] = static_cast<To>(v);
  }
  return true;
}

template <>
bool convert_cast<uint32_t, int32_t>(const uint8_t* src, int64_t n, void* dst) {
  int32_t* out = static_cast<int32_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t v;
    std::memcpy(&v, src + i * 4, 4);
    if (v > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) return false;
    out[i] = static_cast<int32_t>(v);
  }
  return true;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: man * 2^-24
    float v = std::ldexp(static_cast<float>(man), -24);
    return sign ? -v : v;
  }
  uint32_t bits = exp == 31 ? (sign | 0x7f800000u | (man << 13))
                            : (sign | ((exp + 112u) << 23) | (man << 13));
  return std::bit_cast<float>(bits);
}

bool convert_f16(const uint8_t* src, int64_t n, void* dst) {
  float* out = static_cast<float*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + i * 2, 2);
    out[i] = half_to_float(h);
  }
  return true;
}

bool convert_bf16(const uint8_t* src, int64_t n, void* dst) {
  float* out = static_cast<float*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + i * 2, 2);
    out[i] = std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
  }
  return true;
}

struct FileDType {
  const char* name;
  size_t size;
  DType to;
  ConvertFn convert;  // nullptr: the bytes are copied as they are
};

constexpr FileDType kFileDTypes[] = {
    {"F32", 4, kFloat32, nullptr},
    {"I32", 4, kInt32, nullptr},
    {"I8", 1, kInt8, nullptr},
    {"U8", 1, kUInt8, nullptr},
    {"BOOL", 1, kUInt8, nullptr},
    {"F16", 2, kFloat32, convert_f16},
    {"BF16", 2, kFloat32, convert_bf16},
    {"F64", 8, kFloat32, convert_cast<double, float>},
    {"I64", 8, kInt32, convert_cast<int64_t, int32_t>},
    {"I16", 2, kInt32, convert_cast<int16_t, int32_t>},
    {"U16", 2, kInt32, convert_cast<uint16_t, int32_t>},
    {"U32", 4, kInt32, convert_cast<uint32_t, int32_t>},
};

const FileDType* find_file_dtype(const std::string& name) {
  for (const FileDType& d : kFileDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

struct Entry {
  std::string name;
  const FileDType* dtype;
  Shape shape;
  uint64_t begin, end;
};

struct Header {
  std::vector<Entry> entries;  // sorted by data offset
  Metadata metadata;
};

[[noreturn]] void fail(const std::string& source, const std::string& reason) {
  throw Error("load_safetensors: " + source + ": " + reason);
}

// A short description of a JSON value for messages; containers are not printed (they may be huge or
// deeply nested, and dump() recurses).
std::string describe(const json& v) {
  if (v.is_structured()) return std::string("a JSON ") + v.type_name();
  std::string s = v.dump();
  return s.size() > 64 ? s.substr(0, 64) + "..." : s;
}

// A JSON value as a u64, or a failure naming `what`.
uint64_t as_u64(const json& v, const std::string& source, const std::string& what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) fail(source, what + " is negative (" + describe(v) + ")");
  fail(source, what + " is not an integer (" + describe(v) + ")");
}

Entry parse_entry(const std::string& name, const json& v, uint64_t data_size,
                  const std::string& source) {
  const std::string what = "tensor '" + name + "'";
  if (!v.is_object()) fail(source, what + " is not an object but " + describe(v));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!v.contains(field)) fail(source, what + " has no \"" + field + "\"");
  Entry e;
  e.name = name;
  const json& dt = v["dtype"];
  if (!dt.is_string()) fail(source, what + " has a non-string dtype " + describe(dt));
  e.dtype = find_file_dtype(dt.get<std::string>());
  if (!e.dtype)
    fail(source, what + " has unsupported dtype " + describe(dt) +
                     " (readable: F32 I32 I8 U8 BOOL F16 BF16 F64 I64 I16 U16 U32)");
  const json& shape = v["shape"];
  if (!shape.is_array()) fail(source, what + " has a non-array shape " + describe(shape));
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : shape) {
    uint64_t n = as_u64(d, source, what + " dimension");
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
    overflow |= __builtin_mul_overflow(numel, n, &numel);
    e.shape.push_back(static_cast<int64_t>(n));
  }
  const json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    fail(source, what + " has data_offsets " + describe(off) + ", expected [begin, end]");
  e.begin = as_u64(off[0], source, what + " data_offsets[0]");
  e.end = as_u64(off[1], source, what + " data_offsets[1]");
  if (e.begin > e.end || e.end > data_size)
    fail(source, what + " has data_offsets [" + std::to_string(e.begin) + ", " +
                     std::to_string(e.end) + "] outside the data section of " +
                     std::to_string(data_size) + " bytes");
  uint64_t nbytes = 0;
  overflow |= __builtin_mul_overflow(numel, e.dtype->size, &nbytes);
  if (overflow || nbytes != e.end - e.begin)
    fail(source, what + " of shape " + shape_str(e.shape) + " and dtype " + e.dtype->name +
                     " needs " + (overflow ? std::string("more than 2^64") : std::to_string(nbytes)) +
                     " bytes but its data_offsets span " + std::to_string(e.end - e.begin));
  return e;
}

Header parse_header(const char* text, size_t n, uint64_t data_size, const std::string& source) {
  // nlohmann keeps the last of duplicate keys silently; the callback sees every top-level key.
  std::set<std::string> keys;
  std::string duplicate;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      if (!keys.insert(parsed.get<std::string>()).second && duplicate.empty())
        duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, text + n, callback);
  } catch (const json::exception& e) {
    fail(source, std::string("header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(source, "header is not a JSON object");
  if (!duplicate.empty()) fail(source, "header names '" + duplicate + "' more than once");

  Header h;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail(source, "__metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          fail(source, "__metadata__ entry '" + m.key() + "' is not a string but " + describe(*m));
        h.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    h.entries.push_back(parse_entry(it.key(), *it, data_size, source));
  }
  // The data section must be tiled: sorted by offset, each tensor starts where the previous ended.
  std::stable_sort(h.entries.begin(), h.entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  std::string previous = "the start of the data section";
  for (const Entry& e : h.entries) {
    if (e.begin < cursor)
      fail(source, "tensor '" + e.name + "' at bytes [" + std::to_string(e.begin) + ", " +
                       std::to_string(e.end) + ") overlaps " + previous + " ending at " +
                       std::to_string(cursor));
    if (e.begin > cursor)
      fail(source, "gap of " + std::to_string(e.begin - cursor) + " bytes between " + previous +
                       " and tensor '" + e.name + "' (offsets must tile the data section)");
    cursor = e.end;
    previous = "tensor '" + e.name + "'";
  }
  if (cursor != data_size)
    fail(source, std::to_string(data_size - cursor) +
                     " bytes at the end of the data section belong to no tensor");
  return h;
}

using ReadAt = std::function<void(uint64_t offset, size_t len, void* dst)>;

// Parses the 8-byte length and the header, then reads each tensor through `read_at` (offsets from
// the start of the file).
SafeTensorsFile load_with(uint64_t file_size, const ReadAt& read_at, const std::string& source) {
  if (file_size < 8)
    fail(source, "file is " + std::to_string(file_size) +
                     " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  read_at(0, 8, &n);
  if (n > kMaxHeader)
    fail(source, "header length " + std::to_string(n) + " is over the 100 MB limit");
  if (n > file_size - 8)
    fail(source, "header length " + std::to_string(n) + " runs past the end of the file (" +
                     std::to_string(file_size) + " bytes)");
  std::string text(n, '\0');
  read_at(8, n, text.data());
  Header h = parse_header(text.data(), n, file_size - 8 - n, source);

  SafeTensorsFile out;
  out.path = source;
  out.metadata = std::move(h.metadata);
  std::vector<uint8_t> buffer;
  for (const Entry& e : h.entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype->to);
    const size_t len = e.end - e.begin;
    if (!e.dtype->convert) {
      if (len) read_at(8 + n + e.begin, len, t.raw_data());
    } else {
      buffer.resize(len);
      if (len) read_at(8 + n + e.begin, len, buffer.data());
      if (!e.dtype->convert(buffer.data(), t.numel(), t.raw_data()))
        fail(source, "tensor '" + e.name + "' of dtype " + e.dtype->name + " holds values outside " +
                         std::string(dtype_name(e.dtype->to)));
    }
    out.names.push_back(e.name);
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

std::string errno_str() { return std::strerror(errno); }

}  // namespace

const Tensor& SafeTensorsFile::at(const std::string& name) const {
  auto it = tensors.find(name);
  QUENCH_CHECK(it != tensors.end(), "safetensors: ", path, " has no tensor '", name, "'");
  return it->second;
}

NamedTensors SafeTensorsFile::named_tensors() const {
  NamedTensors out;
  for (const std::string& n : names) out.emplace_back(n, tensors.at(n));
  return out;
}

SafeTensorsFile parse_safetensors(const void* data, size_t size, const std::string& source) {
  const uint8_t* bytes = static_cast<const uint8_t*>(data);
  // load_with only reads inside [0, size); the checks above every read guarantee it.
  return load_with(size, [&](uint64_t off, size_t len, void* dst) {
    std::memcpy(dst, bytes + off, len);
  }, source);
}

SafeTensorsFile load_safetensors(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open: " + errno_str());
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) fail(path, "cannot stat: " + errno_str());
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  return load_with(size, [&](uint64_t off, size_t len, void* dst) {
    char* p = static_cast<char*>(dst);
    while (len > 0) {
      ssize_t r = ::pread(fd, p, len, static_cast<off_t>(off));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail(path, "read failed at byte " + std::to_string(off) + ": " + errno_str());
      if (r == 0) fail(path, "file shrank while reading (at byte " + std::to_string(off) + ")");
      p += r;
      off += static_cast<uint64_t>(r);
      len -= static_cast<size_t>(r);
    }
  }, path);
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const Metadata& metadata) {
  const std::string what = "save_safetensors: " + path;
  // Validate everything before touching the disk; order the data by name like the keys.
  std::map<std::string, Tensor> sorted;
  for (const auto& [name, t] : tensors) {
    QUENCH_CHECK(!name.empty(), what, ": a tensor has an empty name");
    QUENCH_CHECK(name != "__metadata__", what, ": '__metadata__' is reserved and cannot name a tensor");
    QUENCH_CHECK(t.defined(), what, ": tensor '", name, "' is undefined");
    QUENCH_CHECK(sorted.emplace(name, t.contiguous()).second, what, ": tensor name '", name,
                 "' appears more than once");
  }
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : sorted) {
    json shape = json::array();
    for (int64_t d : t.sizes()) shape.push_back(d);
    header[name] = {{"dtype", std::string(info(t.dtype()).safetensors_name)},
                    {"shape", shape},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();

  std::vector<std::string_view> chunks{std::string_view(reinterpret_cast<const char*>(&n), 8), text};
  for (const auto& [name, t] : sorted)
    if (t.nbytes()) chunks.emplace_back(static_cast<const char*>(t.raw_data()), t.nbytes());
  write_file_atomic(path, chunks, what);
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const Metadata& metadata) {
  save_safetensors(path, NamedTensors(tensors.begin(), tensors.end()), metadata);
}

void check_state_dict(const std::map<std::string, TensorSpec>& expected,
                      const std::map<std::string, Tensor>& found, const std::string& source) {
  std::vector<std::string> missing, unexpected, wrong;
  for (const auto& [name, spec] : expected) {
    auto it = found.find(name);
    if (it == found.end()) {
      missing.push_back(name);
    } else if (it->second.sizes() != spec.shape || it->second.dtype() != spec.dtype) {
      wrong.push_back(name + " (expected " + shape_str(spec.shape) + " " +
                      std::string(dtype_name(spec.dtype)) + ", got " +
                      shape_str(it->second.sizes()) + " " +
                      std::string(dtype_name(it->second.dtype())) + ")");
    }
  }
  for (const auto& [name, t] : found)
    if (!expected.count(name)) unexpected.push_back(name);
  if (missing.empty() && unexpected.empty() && wrong.empty()) return;
  auto list = [](const char* title, const std::vector<std::string>& names) {
    std::string s;
    if (names.empty()) return s;
    s = std::string("\n  ") + title + " (" + std::to_string(names.size()) + "): ";
    for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
    return s;
  };
  throw Error(source + ": state dict does not match the model:" + list("missing keys", missing) +
              list("unexpected keys", unexpected) + list("wrong shape or dtype", wrong));
}

void check_state_dict(const std::map<std::string, Tensor>& expected,
                      const std::map<std::string, Tensor>& found, const std::string& source) {
  std::map<std::string, TensorSpec> specs;
  for (const auto& [name, t] : expected) specs.emplace(name, TensorSpec{t.sizes(), t.dtype()});
  check_state_dict(specs, found, source);
}

}  // namespace quench::nn
