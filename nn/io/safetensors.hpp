// safetensors checkpoints: named tensors plus string metadata in one file (the Hugging Face format).
//
// Layout: u64 little-endian header length N, N bytes of JSON, then the raw little-endian data. The JSON
// maps each name to {"dtype", "shape", "data_offsets": [begin, end)} relative to the data section, plus
// an optional "__metadata__" object of string -> string. Offsets tile the data section exactly.
//
// Native dtypes F32, I32, I8, U8 round-trip exactly. On load, F16 / BF16 / F64 become f32, I64 / I16 /
// U16 / U32 become i32 (values outside int32 are an error) and BOOL becomes u8, so PyTorch checkpoints
// with int64 buffers or half weights load; anything else is rejected naming the dtype.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.hpp"

namespace quench::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using Metadata = std::map<std::string, std::string>;

// What a loaded file holds. `names` is in file order (ascending data offset).
struct SafeTensorsFile {
  std::string path;
  std::vector<std::string> names;
  std::map<std::string, Tensor> tensors;
  Metadata metadata;

  bool contains(const std::string& name) const { return tensors.count(name) != 0; }
  // The tensor called `name`; throws naming the file when there is none.
  const Tensor& at(const std::string& name) const;
  // (name, tensor) pairs in file order.
  NamedTensors named_tensors() const;
};

// Writes `tensors` (any shapes, dtypes f32/i32/i8/u8, any strides) and `metadata` to `path`. Keys are
// sorted, data follows key order, the header is space-padded to a multiple of 8. The write is atomic:
// a temporary file in the same directory is written, fsynced and renamed over `path`, so on any error
// the previous file is untouched and the temporary removed. Names must be unique, non-empty and not
// "__metadata__".
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const Metadata& metadata = {});
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const Metadata& metadata = {});

// Reads and validates a whole file. Every malformed or hostile input (short file, header length past
// the file or over 100 MB, bad JSON, wrong entry types, unknown dtype, shape disagreeing with the byte
// count, offsets out of range / overlapping / leaving gaps, duplicate names, negative dims, non-string
// metadata) throws quench::Error naming the file and the reason.
SafeTensorsFile load_safetensors(const std::string& path);
// The same from bytes in memory; `source` names them in error messages.
SafeTensorsFile parse_safetensors(const void* data, size_t size, const std::string& source);

// Expected shape and dtype of one entry of a state dict.
struct TensorSpec {
  Shape shape;
  DType dtype = kFloat32;
};

// Strict loading check: compares `found` with `expected` and throws one quench::Error listing, by name,
// every missing key, every unexpected key and every shape or dtype mismatch (with both shapes). `source`
// (e.g. the file path) starts the message. Returns normally when everything matches.
void check_state_dict(const std::map<std::string, TensorSpec>& expected,
                      const std::map<std::string, Tensor>& found, const std::string& source);
// The same with the expected shapes and dtypes taken from tensors (e.g. a model's own state dict).
void check_state_dict(const std::map<std::string, Tensor>& expected,
                      const std::map<std::string, Tensor>& found, const std::string& source);

}  // namespace quench::nn
