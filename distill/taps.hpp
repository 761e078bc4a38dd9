// Taps: features captured from a model by forward hooks, named by dotted module path.
//
// A tap name is "path" or "path:selector":
//   path      a module's dotted name as in state_dict keys ("blocks.3", "blocks.3.attn", "patch_embed",
//             "norm", "head"); for a ViT, "blocks.3" is block 3's output hidden state [B, N+1, D],
//             "patch_embed" the patch tokens [B, N, D], "norm" the final normalized tokens, "head" the
//             logits [B, classes].
//   selector  "output" (the default), "input" (the module's first input), or a named extra the module
//             publishes to hooks: nn::Attention publishes "probs", its attention probabilities
//             [B, heads, N, N] ("blocks.3.attn:probs").
// An unknown path or selector is a quench::Error listing the nearest valid tap names (edit distance).
//
// A Tap holds the feature of the latest call of its module. With record_only_in_training (the
// student's taps) nothing is recorded while the module is in eval mode, so evaluation passes leave no
// features behind. Features are cleared explicitly (the CompressionManager clears them every step).
// Hooks are removed when the Tap is destroyed or detached; refresh() re-attaches a tap whose module was
// swapped out (e.g. by quantization's replace_module), so hooks survive model rewriting.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace quench::distill {

struct TapSpec {
  std::string path;                 // "" = the model itself
  std::string selector = "output";  // "output", "input" or an extra's name

  // "blocks.3.attn:probs" -> {"blocks.3.attn", "probs"}; "head" -> {"head", "output"}.
  static TapSpec parse(const std::string& name);
  // The canonical name: "path" for the output, "path:selector" otherwise.
  std::string str() const;
};

// The extras a module type publishes to hooks (a table by type name: Attention -> {"probs"}).
const std::vector<std::string>& module_extras(const nn::Module& m);

// Every tap name of `model` in module order: each submodule's output, then "path:extra" for each extra
// it publishes. ("path:input" is valid too but not listed.)
std::vector<std::string> list_taps(nn::Module& model);

// The module a tap reads from; throws listing the nearest valid tap names when the path or the
// selector is unknown.
nn::ModulePtr resolve_tap(nn::Module& model, const TapSpec& spec);

class Tap {
 public:
  Tap(nn::Module& model, const TapSpec& spec, bool record_only_in_training);
  Tap(nn::Module& model, const std::string& name, bool record_only_in_training)
      : Tap(model, TapSpec::parse(name), record_only_in_training) {}

  const TapSpec& spec() const { return spec_; }
  std::string name() const { return spec_.str(); }
  // The feature of the latest recorded call; throws naming the tap when nothing was recorded.
  const Tensor& feature() const;
  bool has_feature() const { return state_->feature.defined(); }
  // Number of recorded calls since the last clear (a module called twice keeps the last feature).
  int64_t calls() const { return state_->calls; }
  void clear();
  // Re-resolves the path in `model` and re-attaches when the module there is not the hooked one.
  // Returns true when it re-attached.
  bool refresh(nn::Module& model);
  // Removes the hook; the tap records nothing until refresh().
  void detach();
  bool attached() const;

 private:
  struct State {
    std::string selector;
    bool only_training = false;
    Tensor feature;
    int64_t calls = 0;
  };
  void attach(const nn::ModulePtr& m);

  TapSpec spec_;
  std::shared_ptr<State> state_;
  std::weak_ptr<nn::Module> module_;
  nn::ScopedHook hook_;
};

}  // namespace quench::distill
