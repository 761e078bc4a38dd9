#include "nn/module.hpp"

#include <algorithm>
#include <set>

namespace quench::nn {

// ---------------------------------------------------------------------------------------------
// StateDict

StateDict::StateDict(std::vector<Item> items) {
  for (auto& [k, v] : items) insert(k, v);
}

StateDict::StateDict(const std::map<std::string, Tensor>& m) {
  for (const auto& [k, v] : m) insert(k, v);
}

void StateDict::insert(const std::string& name, const Tensor& t) {
  auto it = index_.find(name);
  if (it != index_.end()) {
    items_[it->second].second = t;
    return;
  }
  index_[name] = items_.size();
  items_.emplace_back(name, t);
}

const Tensor* StateDict::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

const Tensor& StateDict::at(const std::string& name) const {
  const Tensor* t = find(name);
  if (!t) {
    auto near = nearest_names(name, keys());
    std::string list;
    for (const auto& n : near) list += (list.empty() ? "" : ", ") + n;
    throw Error("StateDict: no key '" + name + "'" + (list.empty() ? "" : "; nearest: " + list));
  }
  return *t;
}

std::vector<std::string> StateDict::keys() const {
  std::vector<std::string> k;
  k.reserve(items_.size());
  for (const auto& it : items_) k.push_back(it.first);
  return k;
}

// ---------------------------------------------------------------------------------------------
// Hooks

const Tensor& ForwardCall::extra(const std::string& name) const {
  auto it = extras.find(name);
  if (it != extras.end()) return it->second;
  std::string have;
  for (const auto& [k, v] : extras) have += (have.empty() ? "" : ", ") + k;
  throw Error("ForwardCall::extra: " + module.type_name() + " exposes no extra output '" + name +
              "'; available: " + (have.empty() ? "(none)" : have));
}

void HookHandle::remove() {
  auto t = table_.lock();
  if (!t) return;
  auto& h = t->hooks;
  h.erase(std::remove_if(h.begin(), h.end(), [&](const auto& e) { return e.first == id_; }), h.end());
  table_.reset();
}

bool HookHandle::active() const {
  auto t = table_.lock();
  if (!t) return false;
  return std::any_of(t->hooks.begin(), t->hooks.end(), [&](const auto& e) { return e.first == id_; });
}

ScopedHook& ScopedHook::operator=(ScopedHook&& o) noexcept {
  if (this != &o) {
    h_.remove();
    h_ = std::exchange(o.h_, HookHandle());
  }
  return *this;
}

bool Module::any_forward_hooks() {
  bool hooked = false;
  apply([&](Module& m) { hooked = hooked || m.num_forward_hooks() > 0; });
  return hooked;
}

bool Module::children_row_independent() const {
  for (const auto& [name, c] : children_)
    if (!c->row_independent()) return false;
  return true;
}

HookHandle Module::register_forward_hook(ForwardHook hook) {
  QUENCH_CHECK(static_cast<bool>(hook), "register_forward_hook: empty hook on ", type_name_);
  const int64_t id = hooks_->next_id++;
  hooks_->hooks.emplace_back(id, std::move(hook));
  return HookHandle(hooks_, id);
}

// ---------------------------------------------------------------------------------------------
// Calling

Tensor Module::forward(const Tensor&) {
  throw Error(type_name_ + ": forward(x) is not implemented for this module");
}

Tensor Module::forward_multi(const tensor_list& inputs) {
  QUENCH_CHECK(inputs.size() == 1, type_name_, ": expected 1 input, got ", inputs.size());
  return forward(inputs[0]);
}

void Module::emit(const std::string& name, const Tensor& t) {
  if (extras_) (*extras_)[name] = t;
}

Tensor Module::operator()(const Tensor& x) {
  if (hooks_->hooks.empty()) return forward(x);
  return (*this)(tensor_list{x});
}

Tensor Module::operator()(const tensor_list& inputs) {
  if (hooks_->hooks.empty()) return forward_multi(inputs);
  std::map<std::string, Tensor> extras;
  // Restores the outer call's extras even when forward throws (a module may be re-entered).
  struct Restore {
    std::map<std::string, Tensor>*& slot;
    std::map<std::string, Tensor>* prev;
    ~Restore() { slot = prev; }
  } restore{extras_, extras_};
  extras_ = &extras;
  Tensor out = forward_multi(inputs);
  extras_ = restore.prev;
  // A copy: a hook may remove itself (or others) while running.
  auto hooks = hooks_->hooks;
  ForwardCall call{*this, inputs, out, extras};
  for (auto& [id, h] : hooks) h(call);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Registration

void Module::check_new_name(const std::string& name, const char* what) const {
  QUENCH_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name_, ": ", what,
               " name '", name, "' must be non-empty and contain no '.'");
  auto has = [&](const auto& v) {
    return std::any_of(v.begin(), v.end(), [&](const auto& e) { return e.first == name; });
  };
  QUENCH_CHECK(!has(params_) && !has(buffers_) && !has(children_), type_name_, ": cannot register ",
               what, " '", name, "': the name is already taken");
}

Tensor& Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_new_name(name, "parameter");
  check_defined(t, "register_parameter", name.c_str());
  check_dtype(t, kFloat32, "register_parameter", name.c_str());
  if (!t.is_leaf()) t = t.detach();
  t.requires_grad_(requires_grad);
  params_.emplace_back(name, t);
  return params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  check_new_name(name, "buffer");
  check_defined(t, "register_buffer", name.c_str());
  buffers_.emplace_back(name, t.detach());
  return buffers_.back().second;
}

void Module::add_child(const std::string& name, ModulePtr m) {
  check_new_name(name, "module");
  QUENCH_CHECK(m != nullptr, type_name_, ": register_module('", name, "') got a null module");
  QUENCH_CHECK(m.get() != this, type_name_, ": a module cannot be its own child");
  children_.emplace_back(name, std::move(m));
}

void Module::replace_module(const std::string& name, ModulePtr m) {
  QUENCH_CHECK(m != nullptr, type_name_, ": replace_module('", name, "') got a null module");
  for (auto& [n, c] : children_)
    if (n == name) {
      c = std::move(m);
      return;
    }
  std::vector<std::string> names;
  for (const auto& c : children_) names.push_back(c.first);
  auto near = nearest_names(name, names);
  std::string list;
  for (const auto& n : near) list += (list.empty() ? "" : ", ") + n;
  throw Error(type_name_ + ": replace_module: no child '" + name + "'; children: " +
              (list.empty() ? "(none)" : list));
}

// ---------------------------------------------------------------------------------------------
// Traversal

namespace {
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using Members = const NamedTensors Module::*;

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}
}  // namespace

void Module::collect_modules(const std::string& prefix,
                             std::vector<std::pair<std::string, ModulePtr>>& out,
                             std::vector<const Module*>& seen, const ModulePtr& self) {
  if (std::find(seen.begin(), seen.end(), this) != seen.end()) return;
  seen.push_back(this);
  out.emplace_back(prefix, self);
  for (const auto& [name, c] : children_) c->collect_modules(join(prefix, name), out, seen, c);
}

std::vector<std::pair<std::string, ModulePtr>> Module::named_modules() {
  ModulePtr self = weak_from_this().lock();
  QUENCH_CHECK(self != nullptr, type_name_,
               ": named_modules needs the module to be owned by a std::shared_ptr (use std::make_shared)");
  std::vector<std::pair<std::string, ModulePtr>> out;
  std::vector<const Module*> seen;
  collect_modules("", out, seen, self);
  return out;
}

// Own members first, then children's, skipping tensors already listed (PyTorch's memo).
static void collect_tensors(const Module& m, const std::string& prefix, bool recurse,
                            const std::function<const NamedTensors&(const Module&)>& members,
                            NamedTensors& out, std::set<const TensorImpl*>& seen_t,
                            std::set<const Module*>& seen_m) {
  if (!seen_m.insert(&m).second) return;
  for (const auto& [name, t] : members(m))
    if (seen_t.insert(t.impl_ptr().get()).second) out.emplace_back(join(prefix, name), t);
  if (!recurse) return;
  for (const auto& [name, c] : m.named_children())
    collect_tensors(*c, join(prefix, name), true, members, out, seen_t, seen_m);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  NamedTensors out;
  std::set<const TensorImpl*> st;
  std::set<const Module*> sm;
  collect_tensors(*this, "", recurse, [](const Module& m) -> const NamedTensors& { return m.params_; },
                  out, st, sm);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  NamedTensors out;
  std::set<const TensorImpl*> st;
  std::set<const Module*> sm;
  collect_tensors(*this, "", recurse, [](const Module& m) -> const NamedTensors& { return m.buffers_; },
                  out, st, sm);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

std::vector<ModulePtr> Module::children() const {
  std::vector<ModulePtr> out;
  for (const auto& c : children_) out.push_back(c.second);
  return out;
}

ModulePtr Module::child(const std::string& name) const {
  for (const auto& [n, c] : children_)
    if (n == name) return c;
  return nullptr;
}

void Module::set_submodule(const std::string& path, ModulePtr m) {
  QUENCH_CHECK(!path.empty(), type_name_,
               ": set_submodule needs a descendant's path; the root cannot replace itself (wrap it in a parent "
               "module, e.g. nn::Sequential)");
  const size_t dot = path.rfind('.');
  ModulePtr parent = dot == std::string::npos ? get_submodule("") : get_submodule(path.substr(0, dot));
  parent->replace_module(dot == std::string::npos ? path : path.substr(dot + 1), std::move(m));
}

ModulePtr Module::get_submodule(const std::string& path) {
  ModulePtr self = weak_from_this().lock();
  QUENCH_CHECK(self != nullptr, type_name_,
               ": get_submodule needs the module to be owned by a std::shared_ptr");
  if (path.empty()) return self;
  ModulePtr cur = self;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    ModulePtr next = cur->child(part);
    if (!next) {
      std::vector<std::string> names;
      for (auto& [n, m] : named_modules())
        if (!n.empty()) names.push_back(n);
      auto near = nearest_names(path, names);
      std::string list;
      for (const auto& n : near) list += (list.empty() ? "" : ", ") + n;
      throw Error("get_submodule: " + type_name_ + " has no module '" + path + "' ('" +
                  path.substr(0, dot == std::string::npos ? path.size() : dot) +
                  "' not found); nearest valid names: " + (list.empty() ? "(none)" : list));
    }
    cur = next;
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return cur;
}

// ---------------------------------------------------------------------------------------------
// Modes

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::apply(const std::function<void(Module&)>& fn) {
  for (auto& [n, c] : children_) c->apply(fn);
  fn(*this);
}

void Module::zero_grad(bool set_to_none) {
  NoGradGuard ng;
  for (auto& [n, p] : named_parameters()) {
    if (!p.grad().defined()) continue;
    if (set_to_none)
      p.set_grad(Tensor());
    else
      p.grad().zero_();
  }
}

// ---------------------------------------------------------------------------------------------
// State

StateDict Module::state_dict() const {
  // PyTorch order: per module (pre-order) its parameters, then its buffers.
  StateDict sd;
  std::function<void(const Module&, const std::string&)> rec = [&](const Module& m,
                                                                  const std::string& prefix) {
    for (const auto& [n, t] : m.params_) sd.insert(join(prefix, n), t.detach());
    for (const auto& [n, t] : m.buffers_) sd.insert(join(prefix, n), t.detach());
    for (const auto& [n, c] : m.children_) rec(*c, join(prefix, n));
  };
  rec(*this, "");
  return sd;
}

LoadResult Module::load_state_dict(const StateDict& sd, bool strict) {
  StateDict own = state_dict();
  LoadResult res;
  std::vector<std::string> bad_shape;
  for (const auto& [name, t] : own) {
    const Tensor* src = sd.find(name);
    if (!src) {
      res.missing_keys.push_back(name);
      continue;
    }
    if (!src->defined() || src->sizes() != t.sizes())
      bad_shape.push_back(name + " (checkpoint " + (src->defined() ? shape_str(src->sizes()) : "undefined") +
                          ", model " + shape_str(t.sizes()) + ")");
  }
  for (const auto& [name, t] : sd)
    if (!own.contains(name)) res.unexpected_keys.push_back(name);
  const bool fail = !bad_shape.empty() ||
                    (strict && (!res.missing_keys.empty() || !res.unexpected_keys.empty()));
  if (fail) {
    std::string msg = "load_state_dict: cannot load into " + type_name_ + ":";
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      msg += std::string("\n  ") + what + " (" + std::to_string(v.size()) + "):";
      for (const auto& s : v) msg += " " + s + ";";
    };
    list("wrong shape", bad_shape);
    if (strict) {
      list("missing keys", res.missing_keys);
      list("unexpected keys", res.unexpected_keys);
    }
    throw Error(msg);
  }
  NoGradGuard ng;
  for (const auto& [name, t] : own)
    if (const Tensor* src = sd.find(name)) Tensor(t).copy_(*src);
  return res;
}

// ---------------------------------------------------------------------------------------------
// Printing and names

void Module::str_into(std::string& out, int indent) const {
  out += type_name_ + "(" + extra_repr();
  if (!children_.empty()) {
    out += "\n";
    for (const auto& [n, c] : children_) {
      out += std::string(indent + 2, ' ') + "(" + n + "): ";
      c->str_into(out, indent + 2);
      out += "\n";
    }
    out += std::string(indent, ' ');
  }
  out += ")";
}

std::string Module::str() const {
  std::string out;
  str_into(out, 0);
  return out;
}

std::vector<std::string> nearest_names(const std::string& name, const std::vector<std::string>& candidates,
                                       size_t k) {
  auto dist = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::vector<std::pair<size_t, std::string>> scored;
  for (const auto& c : candidates) scored.emplace_back(dist(name, c), c);
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && i < k; ++i) out.push_back(scored[i].second);
  return out;
}

}  // namespace quench::nn
