// Files written all or nothing: the bytes go to a temporary file in the target's directory, which is
// fsynced and renamed over the target, so a crash or a full disk never leaves a torn file and never
// destroys the previous one. Checkpoints, vocabularies and exported configs all go through here.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace quench::nn {

// Writes `chunks` in order to `path`. On any error `path` is as it was, the temporary file is gone,
// and the Error starts with `what` (e.g. "save_safetensors: runs/x.safetensors").
void write_file_atomic(const std::string& path, const std::vector<std::string_view>& chunks, const std::string& what);

}  // namespace quench::nn
