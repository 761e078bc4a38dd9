#include "tools/cli/npy.hpp"

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "engine/error.hpp"
#include "nn/io/atomic_file.hpp"

namespace quench::cli {

std::string npy_header_f32(const Shape& shape) {
  static_assert(std::endian::native == std::endian::little, "npy writer assumes a little-endian host");
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i)
    dims += std::to_string(shape[i]) + (i + 1 < shape.size() ? ", " : "");
  if (shape.size() == 1) dims += ",";  // Python's one-element tuple
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t prefix = 10;  // magic 6 + version 2 + length 2
  size_t total = prefix + dict.size() + 1;
  total = (total + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  QUENCH_CHECK(dict.size() <= 65535, "write_npy: header of ", dict.size(), " bytes exceeds format 1.0");
  std::string h = "\x93NUMPY";
  h += static_cast<char>(1);
  h += static_cast<char>(0);
  h += static_cast<char>(dict.size() & 0xff);
  h += static_cast<char>(dict.size() >> 8);
  return h + dict;
}

void write_npy(const std::string& path, const Tensor& t) {
  QUENCH_CHECK(t.defined() && t.dtype() == kFloat32, "write_npy: ", path, ": expected a float32 tensor");
  Tensor c = t.contiguous();
  const std::string header = npy_header_f32(c.sizes());
  nn::write_file_atomic(path,
                        {header, std::string_view(reinterpret_cast<const char*>(c.data_ptr<float>()), c.nbytes())},
                        "write_npy: " + path);
}

}  // namespace quench::cli
