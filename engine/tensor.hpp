// Tensor: a cheap shared handle to (storage, dtype, shape, strides, offset) plus autograd state.
//
// Copying a Tensor copies the handle, not the data (as in libtorch). Views share storage. Ops that
// need contiguous input call contiguous(), which is free when the tensor already is.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "engine/dtype.hpp"
#include "engine/error.hpp"
#include "engine/shape.hpp"

namespace quench {

namespace autograd {
class Node;
}

inline constexpr DType kFloat32 = DType::f32;
inline constexpr DType kInt32 = DType::i32;
inline constexpr DType kInt8 = DType::i8;
inline constexpr DType kUInt8 = DType::u8;

// 64-byte-aligned bytes shared by a tensor and its views. Not zero-initialized.
class Storage {
 public:
  explicit Storage(size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }

 private:
  void* data_;
  size_t nbytes_;
};

class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  DType dtype = DType::f32;
  Shape sizes, strides;
  int64_t offset = 0;  // in elements
  // autograd
  bool requires_grad = false;
  std::shared_ptr<autograd::Node> grad_fn;          // set on results of differentiable ops
  std::weak_ptr<autograd::Node> grad_accumulator;   // leaves: reused across uses in one graph
  std::shared_ptr<TensorImpl> grad;                 // leaves: accumulated by backward()
  // leaves: called once a backward has finished accumulating .grad (handle, hook)
  std::vector<std::pair<int64_t, std::function<void(const Tensor&)>>> post_accumulate_grad_hooks;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Uninitialized contiguous tensor.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);

  bool defined() const { return impl_ != nullptr; }
  DType dtype() const { return impl().dtype; }
  const Shape& sizes() const { return impl().sizes; }
  const Shape& shape() const { return impl().sizes; }
  const Shape& strides() const { return impl().strides; }
  int64_t size(int64_t dim) const;
  int64_t stride(int64_t dim) const;
  int64_t dim() const { return static_cast<int64_t>(impl().sizes.size()); }
  int64_t numel() const;
  int64_t storage_offset() const { return impl().offset; }
  bool is_contiguous() const;
  size_t nbytes() const { return numel() * element_size(dtype()); }

  // Pointer to the first element (offset applied). Throws when T does not match the dtype.
  template <class T> T* data_ptr() const;
  void* raw_data() const;
  // The single element of a one-element tensor, converted to T.
  template <class T> T item() const;
  // One element by index (any dtype, converted to double); for tests and printing, not hot loops.
  double at(std::initializer_list<int64_t> index) const;
  double at(const std::vector<int64_t>& index) const;
  // Copies the elements out in row-major order, converted to T.
  template <class T> std::vector<T> to_vector() const;

  // ---- autograd ----
  bool requires_grad() const { return impl().requires_grad; }
  // Marks a leaf as needing a gradient. Throws on a non-leaf or a non-float tensor.
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  // The accumulated gradient of a leaf (undefined until a backward reaches it).
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  // Calls hook(leaf) each time a backward has finished accumulating this leaf's .grad, once per
  // backward (PyTorch's register_post_accumulate_grad_hook): the gradient is final for that pass,
  // so work on it (e.g. an all-reduce) can start while backward goes on. Returns a handle for
  // remove_post_accumulate_grad_hook. Throws on a tensor that is not a leaf requiring grad.
  int64_t register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const;
  void remove_post_accumulate_grad_hook(int64_t handle) const;
  // Computes gradients of this tensor w.r.t. every leaf that requires grad. A non-scalar tensor
  // needs `gradient` of its shape. The graph's saved tensors are freed unless retain_graph.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;
  // Same data, no history.
  Tensor detach() const;

  // ---- views (share storage; differentiable) ----
  Tensor view(const Shape& shape) const;       // needs compatible strides; -1 infers one dim
  Tensor reshape(const Shape& shape) const;    // view when possible, else a copy
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;                            // 2-D transpose
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // drops `dim`
  Tensor expand(const Shape& shape) const;     // -1 keeps a dim; size-1 dims broadcast with stride 0
  Tensor expand_as(const Tensor& other) const { return expand(other.sizes()); }
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor contiguous() const;                   // itself when already contiguous
  Tensor clone() const;                        // always a contiguous copy (differentiable)
  Tensor to(DType dtype) const;                // conversion; float->int truncates like a C cast

  // ---- in-place, outside autograd (optimizers, initializers, loaders) ----
  Tensor& copy_(const Tensor& src);            // src broadcasts to this shape; dtypes convert
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }

  // ---- arithmetic sugar over the free functions in engine/ops ----
  Tensor operator-() const;
  Tensor matmul(const Tensor& other) const;
  Tensor sum() const;
  Tensor sum(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor pow(double exponent) const;
  Tensor sqrt() const;
  Tensor abs() const;
  Tensor softmax(int64_t dim) const;
  Tensor log_softmax(int64_t dim) const;
  Tensor argmax(int64_t dim, bool keepdim = false) const;

  std::string str() const;  // readable printing, PyTorch-like
  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double s);
Tensor operator-(const Tensor& a, double s);
Tensor operator*(const Tensor& a, double s);
Tensor operator/(const Tensor& a, double s);
Tensor operator+(double s, const Tensor& a);
Tensor operator-(double s, const Tensor& a);
Tensor operator*(double s, const Tensor& a);
Tensor operator/(double s, const Tensor& a);
std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Throws "<op>: expected <dtype>, got <dtype> for <what> of shape [..]" when t's dtype differs.
void check_dtype(const Tensor& t, DType expected, const char* op, const char* what);
// Throws "<op>: <what> is undefined" for a default-constructed tensor.
void check_defined(const Tensor& t, const char* op, const char* what);

}  // namespace quench
