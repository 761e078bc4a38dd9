// Module: the base of every layer, like torch.nn.Module.
//
// A module owns named parameters, buffers and child modules. Dotted names ("blocks.3.attn.qkv.weight")
// are built exactly as PyTorch builds state_dict keys: a module's own parameters, then its own buffers,
// then each child's entries in registration order, prefixed by the child's name. Modules are held by
// std::shared_ptr (make them with std::make_shared).
//
// Calling a module: `(*m)(x)` or `(*m)({x, mask})` runs forward and then the forward hooks. Layers
// call their children the same way, through the child registry, so replace_module() (used by
// quantization to swap Linear for a fake-quant Linear) takes effect in the parent's forward.
//
// Forward hooks and named extras (design choice): a hook receives a ForwardCall with the module, its
// inputs, its output and `extras`, a name -> Tensor map of secondary results the module chose to
// expose. Attention exposes its attention probabilities as extras "probs" [B, heads, N, N], so a hook
// on "blocks.3.attn" reads `call.extra("probs")`. Extras are collected only while the module has
// hooks, so they cost nothing otherwise.
//
// zero_grad() defaults to set_to_none = true (PyTorch 2.x default; 1.13 zeroed in place): a later
// backward allocates fresh gradients and optimizers skip parameters whose grad is undefined.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/tensor.hpp"

namespace quench::nn {

class Module;
using ModulePtr = std::shared_ptr<Module>;

// An insertion-ordered name -> Tensor map (state dicts, optimizer state, checkpoints).
class StateDict {
 public:
  using Item = std::pair<std::string, Tensor>;
  StateDict() = default;
  StateDict(std::vector<Item> items);
  StateDict(const std::map<std::string, Tensor>& m);

  // Inserts or overwrites (an overwrite keeps the original position).
  void insert(const std::string& name, const Tensor& t);
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  const Tensor* find(const std::string& name) const;
  // Throws naming the key when absent.
  const Tensor& at(const std::string& name) const;
  std::vector<std::string> keys() const;
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  std::vector<Item>::const_iterator begin() const { return items_.begin(); }
  std::vector<Item>::const_iterator end() const { return items_.end(); }

 private:
  std::vector<Item> items_;
  std::map<std::string, size_t> index_;
};

// What a forward hook sees for one call of a module.
struct ForwardCall {
  Module& module;
  const tensor_list& inputs;
  const Tensor& output;
  const std::map<std::string, Tensor>& extras;
  // The extra output `name`; throws listing the extras this module exposes when absent.
  const Tensor& extra(const std::string& name) const;
};
using ForwardHook = std::function<void(const ForwardCall&)>;

namespace detail {
struct HookTable {
  std::vector<std::pair<int64_t, ForwardHook>> hooks;
  int64_t next_id = 0;
};
}  // namespace detail

// Identifies one registered hook (like torch.utils.hooks.RemovableHandle): remove() unregisters it;
// dropping the handle does not. A handle outliving its module is harmless.
class HookHandle {
 public:
  HookHandle() = default;
  HookHandle(std::weak_ptr<detail::HookTable> table, int64_t id) : table_(std::move(table)), id_(id) {}
  void remove();
  bool active() const;

 private:
  std::weak_ptr<detail::HookTable> table_;
  int64_t id_ = -1;
};

// RAII owner of a hook: removes it when it goes out of scope.
class ScopedHook {
 public:
  ScopedHook() = default;
  explicit ScopedHook(HookHandle h) : h_(std::move(h)) {}
  ScopedHook(ScopedHook&& o) noexcept : h_(std::exchange(o.h_, HookHandle())) {}
  ScopedHook& operator=(ScopedHook&& o) noexcept;
  ScopedHook(const ScopedHook&) = delete;
  ScopedHook& operator=(const ScopedHook&) = delete;
  ~ScopedHook() { h_.remove(); }

 private:
  HookHandle h_;
};

// What load_state_dict(strict = false) skipped.
struct LoadResult {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
};

class Module : public std::enable_shared_from_this<Module> {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The class name as PyTorch prints it ("Linear", "LayerNorm", ...).
  const std::string& type_name() const { return type_name_; }

  // forward, then every forward hook in registration order.
  Tensor operator()(const Tensor& x);
  Tensor operator()(const tensor_list& inputs);

  // ---- registration (names may not contain '.'; each name is unique across the three kinds) ----
  // Makes t a leaf that requires grad (unless requires_grad = false) and returns the stored handle.
  Tensor& register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  Tensor& register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  // Replaces the child `name` (which must exist); the parent's forward uses the new one.
  void replace_module(const std::string& name, ModulePtr m);

  // ---- traversal (pre-order, own entries first, as PyTorch; shared tensors/modules once) ----
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  // ("", this) first, then every descendant. The module must be owned by a shared_ptr.
  std::vector<std::pair<std::string, ModulePtr>> named_modules();
  std::vector<std::pair<std::string, ModulePtr>> named_children() const { return children_; }
  std::vector<ModulePtr> children() const;
  // The direct child `name` or null.
  ModulePtr child(const std::string& name) const;
  // The descendant at a dotted path ("" is this module). Throws listing the nearest valid names.
  ModulePtr get_submodule(const std::string& path);
  // Replaces the descendant at a dotted path (torch.nn.Module.set_submodule): its parent's
  // replace_module. The path must name an existing descendant, not this module.
  void set_submodule(const std::string& path, ModulePtr m);

  // ---- modes ----
  // Sets the training flag on this module and every descendant.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // fn on every descendant, children first and this module last (torch.nn.Module.apply).
  void apply(const std::function<void(Module&)>& fn);
  // Drops (set_to_none) or zeroes every parameter's gradient.
  void zero_grad(bool set_to_none = true);

  // ---- state ----
  // Parameters and buffers by dotted name, detached handles sharing the module's storage.
  StateDict state_dict() const;
  // Copies values into the existing tensors (so optimizers keep their handles). Shape mismatches
  // always throw; with strict, missing and unexpected keys throw too. One error lists every problem.
  LoadResult load_state_dict(const StateDict& sd, bool strict = true);

  // ---- hooks ----
  HookHandle register_forward_hook(ForwardHook hook);
  size_t num_forward_hooks() const { return hooks_->hooks.size(); }
  // True when this module or any descendant has a forward hook (whose calls must then happen as written).
  bool any_forward_hooks();

  // True when forward treats every row of its input (all leading dims) on its own, so running it on
  // some rows gives exactly those rows of the full result: no statistics over the batch, no random
  // draws, children included. A ViT then computes only the CLS row of its last block (the other rows
  // never reach the head). Default false: layers that do not say so keep the full computation.
  virtual bool row_independent() const { return false; }
  // Every child row_independent (for containers that only compose their children).
  bool children_row_independent() const;

  // Multi-line tree like PyTorch's print(model).
  std::string str() const;
  virtual std::string extra_repr() const { return ""; }

 protected:
  // Single-input forward; default throws (a module overrides this or forward_multi).
  virtual Tensor forward(const Tensor& x);
  // Several inputs; default requires exactly one and calls forward(x).
  virtual Tensor forward_multi(const tensor_list& inputs);
  // Exposes a secondary result to this call's hooks (no-op without hooks).
  void emit(const std::string& name, const Tensor& t);

 private:
  void add_child(const std::string& name, ModulePtr m);
  void check_new_name(const std::string& name, const char* what) const;
  void collect_modules(const std::string& prefix, std::vector<std::pair<std::string, ModulePtr>>& out,
                       std::vector<const Module*>& seen, const ModulePtr& self);
  void str_into(std::string& out, int indent) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, ModulePtr>> children_;
  std::shared_ptr<detail::HookTable> hooks_ = std::make_shared<detail::HookTable>();
  std::map<std::string, Tensor>* extras_ = nullptr;  // set during a hooked call
};

// Runs `m` on x (m's operator(), for shared_ptr call sites).
inline Tensor call(const ModulePtr& m, const Tensor& x) { return (*m)(x); }

// Levenshtein-nearest candidates to `name` (at most `k`), for "did you mean" errors.
std::vector<std::string> nearest_names(const std::string& name, const std::vector<std::string>& candidates,
                                       size_t k = 5);

}  // namespace quench::nn
