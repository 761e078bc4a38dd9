#include "engine/autograd.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <unordered_map>

#include "engine/ops.hpp"
#include "kernels/parallel.hpp"

namespace quench {

namespace {
thread_local bool tl_grad_enabled = true;
}

bool GradMode::is_enabled() { return tl_grad_enabled; }
void GradMode::set_enabled(bool enabled) { tl_grad_enabled = enabled; }

namespace autograd {

tensor_list AccumulateGrad::apply(const Tensor& grad_output) {
  NoGradGuard no_grad;
  if (!leaf_->grad) {
    // Own the gradient: the incoming tensor may be shared with other nodes or be a view.
    leaf_->grad = grad_output.clone().impl_ptr();
  } else {
    Tensor g(leaf_->grad);
    QUENCH_CHECK(g.sizes() == grad_output.sizes(), "backward: gradient of shape ",
                 shape_str(grad_output.sizes()), " does not match the accumulated .grad of shape ",
                 shape_str(g.sizes()));
    leaf_->grad = (g + grad_output).impl_ptr();
  }
  if (!leaf_->post_accumulate_grad_hooks.empty()) {
    const Tensor leaf(leaf_);
    for (const auto& [handle, hook] : leaf_->post_accumulate_grad_hooks) hook(leaf);
  }
  return {};
}

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  TensorImpl& impl = t.impl();
  if (impl.grad_fn) return impl.grad_fn;
  std::shared_ptr<Node> acc = impl.grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    impl.grad_accumulator = acc;
  }
  return acc;
}

bool any_requires_grad(const tensor_list& inputs) {
  if (!GradMode::is_enabled()) return false;
  return std::any_of(inputs.begin(), inputs.end(),
                     [](const Tensor& t) { return t.defined() && t.requires_grad(); });
}

void set_history(Tensor& out, const std::shared_ptr<Node>& node, const tensor_list& inputs) {
  node->next_edges.clear();
  node->next_edges.reserve(inputs.size());
  for (const Tensor& t : inputs) node->next_edges.push_back(gradient_edge(t));
  out.impl().grad_fn = node;
  out.impl().requires_grad = true;
}

namespace {

// acc += g. In place when acc's buffer is private to the backward pass (no other handle, view or
// saved copy shares it): residual streams and shared inputs then cost no new buffer per use. The
// sum is the same either way (float addition commutes).
void accumulate(Tensor& acc, const Tensor& g) {
  if (!acc.defined()) {
    acc = g;
    return;
  }
  const bool private_acc = acc.impl_ptr().use_count() == 1 && acc.impl().storage.use_count() == 1;
  if (!private_acc || acc.dtype() != kFloat32 || g.dtype() != kFloat32 || acc.sizes() != g.sizes() ||
      !acc.is_contiguous() || !g.is_contiguous()) {
    acc = acc + g;
    return;
  }
  float* pa = acc.data_ptr<float>();
  const float* pg = g.data_ptr<float>();
  kernels::parallel_for(acc.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) pa[j] = pa[j] + pg[j];
  });
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  std::shared_ptr<Node> root_node = gradient_edge(root);
  QUENCH_CHECK(root_node != nullptr,
               "backward: the tensor does not require grad and has no grad_fn; call "
               "requires_grad_() on the leaves before computing it");
  NoGradGuard no_grad;

  // Count, for every node reachable from the root, how many edges point at it (iteratively).
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack{root_node.get()};
  deps[root_node.get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const auto& next : n->next_edges) {
      if (!next) continue;
      auto [it, inserted] = deps.try_emplace(next.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(next.get());
    }
  }

  // Process a node once all its consumers have contributed their gradient. A node whose gradient
  // stayed undefined (no consumer produced one) is passed through so its inputs are released too.
  std::unordered_map<Node*, Tensor> grads;
  grads[root_node.get()] = grad;
  std::vector<std::shared_ptr<Node>> ready{root_node};
  while (!ready.empty()) {
    std::shared_ptr<Node> node = std::move(ready.back());
    ready.pop_back();
    auto git = grads.find(node.get());
    Tensor g = git == grads.end() ? Tensor() : std::move(git->second);
    if (git != grads.end()) grads.erase(git);
    tensor_list in_grads;
    if (g.defined()) in_grads = node->apply(g);
    if (!retain_graph) node->release();
    for (size_t i = 0; i < node->next_edges.size(); ++i) {
      const std::shared_ptr<Node>& next = node->next_edges[i];
      if (!next) continue;
      if (i < in_grads.size() && in_grads[i].defined()) {
        auto [it, inserted] = grads.try_emplace(next.get(), in_grads[i]);
        if (!inserted) accumulate(it->second, in_grads[i]);
      }
      if (--deps[next.get()] == 0) ready.push_back(next);
    }
  }
}

void AutogradContext::save_for_backward(const tensor_list& tensors) {
  saved_.clear();
  saved_.reserve(tensors.size());
  for (const Tensor& t : tensors) saved_.push_back(t.defined() ? t.detach() : Tensor());
}

tensor_list AutogradContext::get_saved_variables() const {
  QUENCH_CHECK(!released_,
               "backward: trying to backward through the graph a second time; its saved tensors "
               "were freed by the first backward. Pass retain_graph=true to the first call.");
  return saved_;
}

void AutogradContext::release_variables() {
  saved_.clear();
  saved_.shrink_to_fit();
  for (auto& [k, v] : saved_data)
    if (std::holds_alternative<Tensor>(v)) v = Tensor();
  released_ = true;
}

namespace detail {

std::string function_name(const char* mangled) {
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = (status == 0 && d) ? d : mangled;
  std::free(d);
  return name;
}

void check_backward_result(const std::string& op, const std::vector<Shape>& input_shapes,
                           tensor_list& grads) {
  QUENCH_CHECK(grads.size() >= input_shapes.size(), op, ": backward returned ", grads.size(),
               " gradients, expected one per Tensor input of forward (", input_shapes.size(), ")");
  for (size_t i = input_shapes.size(); i < grads.size(); ++i)
    QUENCH_CHECK(!grads[i].defined(), op, ": backward returned a defined gradient at position ", i,
                 " but forward has only ", input_shapes.size(), " Tensor inputs");
  grads.resize(input_shapes.size());
  for (size_t i = 0; i < grads.size(); ++i)
    if (grads[i].defined())
      QUENCH_CHECK(grads[i].sizes() == input_shapes[i], op, ": backward returned a gradient of shape ",
                   shape_str(grads[i].sizes()), " for input ", i, " of shape ",
                   shape_str(input_shapes[i]));
}

Tensor unalias(const Tensor& out, const tensor_list& inputs) {
  for (const Tensor& t : inputs)
    if (t.is_same(out)) return out.detach();
  return out;
}

}  // namespace detail
}  // namespace autograd
}  // namespace quench
