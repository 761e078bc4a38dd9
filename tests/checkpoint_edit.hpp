// Edited copies of a safetensors checkpoint, for the tests that corrupt files on purpose:
//   const CheckpointEdits rewrite(good, dir);
//   std::string bad = rewrite("bad.safetensors", [&](nn::NamedTensors& t, nn::Metadata& md) { ... });
#pragma once
#include <stdexcept>
#include <string>

#include "nn/io/safetensors.hpp"
#include "tests/temp_dir.hpp"

namespace quench::testing {

// The tensor named k in t (throws when there is none).
inline Tensor& find_tensor(nn::NamedTensors& t, const std::string& k) {
  for (auto& [n, v] : t)
    if (n == k) return v;
  throw std::runtime_error("no " + k);
}

struct CheckpointEdits {
  CheckpointEdits(const std::string& path, const TempDir& dir) : file(nn::load_safetensors(path)), dir(dir) {}
  // Writes dir/name: the file's tensors and metadata after edit(tensors, metadata); returns its path.
  template <class Edit>
  std::string operator()(const std::string& name, Edit edit) const {
    nn::NamedTensors t = file.named_tensors();
    nn::Metadata md = file.metadata;
    edit(t, md);
    nn::save_safetensors(dir.file(name), t, md);
    return dir.file(name);
  }
  nn::SafeTensorsFile file;
  const TempDir& dir;
};

}  // namespace quench::testing
