// Reverse-mode autograd: graph nodes, the backward engine, grad mode, and Function<T> for ops
// defined outside engine/ (the libtorch torch::autograd::Function pattern).
//
//   struct Square : quench::autograd::Function<Square> {
//     static Tensor forward(AutogradContext* ctx, const Tensor& x) {
//       ctx->save_for_backward({x});
//       return x * x;
//     }
//     static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
//       Tensor x = ctx->get_saved_variables()[0];
//       return {grad_outputs[0] * 2.0 * x};
//     }
//   };
//   Tensor y = Square::apply(x);
//
// forward runs with grad mode off. backward returns one gradient per Tensor argument of forward, in
// order (a std::vector<Tensor> argument counts as its elements); an undefined Tensor means "no
// gradient". Extra trailing undefined entries are allowed. Saved tensors are stored detached, so a
// node never keeps its own output alive through a cycle; they are freed after backward unless the
// graph is retained.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <variant>
#include <vector>

#include "engine/tensor.hpp"

namespace quench {

using tensor_list = std::vector<Tensor>;

// Thread-local switch: when off, ops record no graph.
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

// RAII: disables gradient recording in scope (torch::NoGradGuard).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

namespace autograd {

// A backward step for one op: maps the gradient of the op's output to gradients of its inputs.
// next_edges[i] is the node that receives the gradient of input i (null when it needs none).
class Node {
 public:
  virtual ~Node() = default;
  virtual tensor_list apply(const Tensor& grad_output) = 0;
  virtual std::string name() const = 0;
  // Frees what forward saved; called after the node's backward unless the graph is retained.
  virtual void release() {}
  std::vector<std::shared_ptr<Node>> next_edges;
};

// Adds incoming gradients into a leaf's .grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}
  tensor_list apply(const Tensor& grad_output) override;
  std::string name() const override { return "AccumulateGrad"; }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// The node that receives the gradient of `t`: its grad_fn, its leaf accumulator, or null.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

// Makes `out` the result of `node`, whose inputs are `inputs` (edges are filled here).
void set_history(Tensor& out, const std::shared_ptr<Node>& node, const tensor_list& inputs);

// True when grad mode is on and some input requires grad.
bool any_requires_grad(const tensor_list& inputs);

// Runs the backward pass from `root` with gradient `grad` (iterative: no recursion on graph depth).
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

using IValue = std::variant<bool, int64_t, double, std::string, Shape, Tensor>;

class AutogradContext {
 public:
  // Stores detached copies of the handles (no data copy) for backward.
  void save_for_backward(const tensor_list& tensors);
  // Throws once the graph was freed by a previous backward.
  tensor_list get_saved_variables() const;
  // Whether the i-th Tensor input of forward requires a gradient.
  bool needs_input_grad(size_t i) const { return i < needs_grad_.size() && needs_grad_[i]; }
  std::map<std::string, IValue> saved_data;

  void release_variables();
  std::vector<bool> needs_grad_;

 private:
  tensor_list saved_;
  bool released_ = false;
};

namespace detail {
inline void collect(tensor_list& out, const Tensor& t) { out.push_back(t); }
inline void collect(tensor_list& out, const tensor_list& ts) { out.insert(out.end(), ts.begin(), ts.end()); }
template <class T>
void collect(tensor_list&, const T&) {}

std::string function_name(const char* mangled);
void check_backward_result(const std::string& op, const std::vector<Shape>& input_shapes,
                           tensor_list& grads);
// A fresh handle on the same data when forward returned one of its inputs unchanged, so that
// recording history on the result never rewrites the input's own history.
Tensor unalias(const Tensor& out, const tensor_list& inputs);
}  // namespace detail

template <class T>
class CppNode final : public Node {
 public:
  tensor_list apply(const Tensor& grad_output) override {
    tensor_list grads = T::backward(&ctx_, tensor_list{grad_output});
    detail::check_backward_result(name(), input_shapes_, grads);
    return grads;
  }
  std::string name() const override { return detail::function_name(typeid(T).name()); }
  void release() override { ctx_.release_variables(); }
  AutogradContext ctx_;
  std::vector<Shape> input_shapes_;  // to check the shapes backward returns
};

template <class T>
struct Function {
  template <class... Args>
  static Tensor apply(Args&&... args) {
    tensor_list inputs;
    (detail::collect(inputs, args), ...);
    const bool record = any_requires_grad(inputs);
    std::shared_ptr<CppNode<T>> node;
    AutogradContext local;
    AutogradContext* ctx = &local;
    if (record) {
      node = std::make_shared<CppNode<T>>();
      ctx = &node->ctx_;
      ctx->needs_grad_.reserve(inputs.size());
      for (const Tensor& t : inputs) ctx->needs_grad_.push_back(t.defined() && t.requires_grad());
    }
    Tensor out;
    {
      NoGradGuard no_grad;
      out = T::forward(ctx, std::forward<Args>(args)...);
    }
    if (record) {
      for (const Tensor& t : inputs) node->input_shapes_.push_back(t.defined() ? t.sizes() : Shape{});
      out = detail::unalias(out, inputs);
      set_history(out, node, inputs);
    }
    return out;
  }
};

}  // namespace autograd
}  // namespace quench
