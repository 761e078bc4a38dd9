#include "distill/taps.hpp"

#include <map>

#include "engine/error.hpp"

namespace quench::distill {

namespace {

// Extras published by module type (what each layer passes to Module::emit).
const std::map<std::string, std::vector<std::string>> kExtrasByType = {
    {"Attention", {"probs"}},
    {"QATAttention", {"probs"}},
    {"BertSelfAttention", {"probs"}},
    {"QATBertSelfAttention", {"probs"}},
};

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "(none)" : out;
}

}  // namespace

TapSpec TapSpec::parse(const std::string& name) {
  TapSpec s;
  size_t colon = name.find(':');
  if (colon == std::string::npos) {
    s.path = name;
  } else {
    s.path = name.substr(0, colon);
    s.selector = name.substr(colon + 1);
    QUENCH_CHECK(!s.selector.empty() && s.selector.find(':') == std::string::npos, "tap '", name,
                 "': expected 'path' or 'path:selector' with one non-empty selector");
  }
  return s;
}

std::string TapSpec::str() const { return selector == "output" ? path : path + ":" + selector; }

const std::vector<std::string>& module_extras(const nn::Module& m) {
  static const std::vector<std::string> none;
  auto it = kExtrasByType.find(m.type_name());
  return it == kExtrasByType.end() ? none : it->second;
}

std::vector<std::string> list_taps(nn::Module& model) {
  std::vector<std::string> out;
  for (auto& [name, m] : model.named_modules()) {
    if (name.empty()) continue;
    out.push_back(name);
    for (const auto& e : module_extras(*m)) out.push_back(name + ":" + e);
  }
  return out;
}

nn::ModulePtr resolve_tap(nn::Module& model, const TapSpec& spec) {
  nn::ModulePtr m;
  try {
    m = model.get_submodule(spec.path);
  } catch (const Error&) {
    throw Error("distill: unknown tap '" + spec.str() + "' in " + model.type_name() +
                "; nearest valid taps: " + join(nn::nearest_names(spec.str(), list_taps(model))) +
                " (list them all with list_taps / quench distill --list-taps)");
  }
  if (spec.selector == "output" || spec.selector == "input") return m;
  const auto& extras = module_extras(*m);
  bool known = false;
  for (const auto& e : extras) known = known || e == spec.selector;
  if (!known) {
    std::vector<std::string> valid = {spec.path, spec.path + ":input"};
    for (const auto& e : extras) valid.push_back(spec.path + ":" + e);
    throw Error("distill: tap '" + spec.str() + "': " + m->type_name() + " '" + spec.path +
                "' has no output '" + spec.selector + "'; valid taps of this module: " + join(valid) +
                "; nearest in the model: " + join(nn::nearest_names(spec.str(), list_taps(model))));
  }
  return m;
}

Tap::Tap(nn::Module& model, const TapSpec& spec, bool record_only_in_training)
    : spec_(spec), state_(std::make_shared<State>()) {
  state_->selector = spec.selector;
  state_->only_training = record_only_in_training;
  attach(resolve_tap(model, spec));
}

void Tap::attach(const nn::ModulePtr& m) {
  // The hook shares only the state (not the Tap), so a moved or destroyed Tap leaves nothing dangling.
  std::shared_ptr<State> st = state_;
  hook_ = nn::ScopedHook(m->register_forward_hook([st](const nn::ForwardCall& call) {
    if (st->only_training && !call.module.is_training()) return;
    if (st->selector == "output") {
      st->feature = call.output;
    } else if (st->selector == "input") {
      QUENCH_CHECK(!call.inputs.empty(), "tap ':input': ", call.module.type_name(),
                   " was called without inputs");
      st->feature = call.inputs[0];
    } else {
      st->feature = call.extra(st->selector);
    }
    ++st->calls;
  }));
  module_ = m;
}

const Tensor& Tap::feature() const {
  QUENCH_CHECK(state_->feature.defined(), "distill: tap '", name(),
               "' recorded nothing this step (was the model run after on_step_begin",
               state_->only_training ? ", in training mode" : "", "?)");
  return state_->feature;
}

void Tap::clear() {
  state_->feature = Tensor();
  state_->calls = 0;
}

bool Tap::refresh(nn::Module& model) {
  nn::ModulePtr m = resolve_tap(model, spec_);
  if (m == module_.lock() && attached()) return false;
  attach(m);
  return true;
}

void Tap::detach() {
  hook_ = nn::ScopedHook();
  module_.reset();
}

bool Tap::attached() const { return !module_.expired(); }

}  // namespace quench::distill
