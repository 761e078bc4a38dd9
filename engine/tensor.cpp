#include "engine/tensor.hpp"

#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <iomanip>
#include <numeric>
#include <sstream>

#include "engine/allocator.hpp"
#include "engine/autograd.hpp"
#include "engine/ops/reduce.hpp"
#include "engine/strided.hpp"

namespace quench {

// ---------------------------------------------------------------------------------------------
// Storage

Storage::Storage(size_t nbytes) : data_(alloc::allocate(nbytes)), nbytes_(nbytes) {}

Storage::~Storage() { alloc::deallocate(data_, nbytes_); }

// ---------------------------------------------------------------------------------------------
// Metadata and element access

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (int64_t d : shape)
    QUENCH_CHECK(d >= 0, "empty: negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * element_size(dtype));
  impl->dtype = dtype;
  impl->sizes = shape;
  impl->strides = contiguous_strides(shape);
  return Tensor(std::move(impl));
}

TensorImpl& Tensor::impl() const {
  if (!impl_) throw Error("Tensor: operation on an undefined tensor (default-constructed Tensor)");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const { return sizes()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }
int64_t Tensor::numel() const { return shape_numel(sizes()); }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (sizes()[d] == 1) continue;
    if (strides()[d] != expected) return false;
    expected *= sizes()[d];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + impl().offset * element_size(dtype());
}

template <class T>
T* Tensor::data_ptr() const {
  QUENCH_CHECK(dtype() == dtype_v<T>, "data_ptr: tensor of shape ", shape_str(sizes()), " has dtype ",
               dtype_name(dtype()), ", not the requested ", dtype_name(dtype_v<T>));
  return static_cast<T*>(raw_data());
}
template float* Tensor::data_ptr<float>() const;
template int32_t* Tensor::data_ptr<int32_t>() const;
template int8_t* Tensor::data_ptr<int8_t>() const;
template uint8_t* Tensor::data_ptr<uint8_t>() const;

namespace {
double load_as_double(const Tensor& t, int64_t elem_offset) {
  return dispatch_dtype(t.dtype(), [&](auto tag) -> double {
    using T = decltype(tag);
    return static_cast<double>(static_cast<const T*>(t.raw_data())[elem_offset]);
  });
}
}  // namespace

template <class T>
T Tensor::item() const {
  QUENCH_CHECK(numel() == 1, "item: expected a tensor with one element, got shape ",
               shape_str(sizes()));
  return static_cast<T>(load_as_double(*this, 0));
}
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int32_t Tensor::item<int32_t>() const;
template int64_t Tensor::item<int64_t>() const;
template int8_t Tensor::item<int8_t>() const;
template uint8_t Tensor::item<uint8_t>() const;

double Tensor::at(const std::vector<int64_t>& index) const {
  QUENCH_CHECK(static_cast<int64_t>(index.size()) == dim(), "at: got ", index.size(),
               " indices for a tensor of shape ", shape_str(sizes()));
  int64_t off = 0;
  for (int64_t d = 0; d < dim(); ++d) {
    int64_t i = index[d] < 0 ? index[d] + sizes()[d] : index[d];
    QUENCH_CHECK(i >= 0 && i < sizes()[d], "at: index ", index[d], " is out of range for dim ", d,
                 " of size ", sizes()[d]);
    off += i * strides()[d];
  }
  return load_as_double(*this, off);
}
double Tensor::at(std::initializer_list<int64_t> index) const {
  return at(std::vector<int64_t>(index));
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = contiguous();
  std::vector<T> out(c.numel());
  dispatch_dtype(c.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* p = static_cast<const S*>(c.raw_data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(p[i]);
  });
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<int8_t> Tensor::to_vector<int8_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

void check_dtype(const Tensor& t, DType expected, const char* op, const char* what) {
  check_defined(t, op, what);
  QUENCH_CHECK(t.dtype() == expected, op, ": expected ", dtype_name(expected), " for ", what,
               ", got ", dtype_name(t.dtype()), " (shape ", shape_str(t.sizes()), ")");
}

void check_defined(const Tensor& t, const char* op, const char* what) {
  QUENCH_CHECK(t.defined(), op, ": ", what, " is undefined");
}

// ---------------------------------------------------------------------------------------------
// Autograd entry points

Tensor& Tensor::requires_grad_(bool on) {
  QUENCH_CHECK(is_leaf(), "requires_grad_: only leaf tensors can change requires_grad; call "
                          "detach() first to make a leaf");
  QUENCH_CHECK(!on || dtype() == kFloat32, "requires_grad_: only float32 tensors can require "
                                           "gradients, got ", dtype_name(dtype()));
  impl().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }

void Tensor::set_grad(const Tensor& g) const {
  QUENCH_CHECK(!g.defined() || g.sizes() == sizes(), "set_grad: gradient of shape ",
               shape_str(g.defined() ? g.sizes() : Shape{}), " for a tensor of shape ",
               shape_str(sizes()));
  impl().grad = g.defined() ? g.impl_ptr() : nullptr;
}

int64_t Tensor::register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const {
  QUENCH_CHECK(is_leaf() && requires_grad(), "register_post_accumulate_grad_hook: the tensor of shape ",
               shape_str(sizes()), " is not a leaf that requires grad; hooks go on parameters (leaves "
               "with requires_grad_())");
  static std::atomic<int64_t> next_handle{1};
  const int64_t handle = next_handle++;
  impl().post_accumulate_grad_hooks.emplace_back(handle, std::move(hook));
  return handle;
}

void Tensor::remove_post_accumulate_grad_hook(int64_t handle) const {
  auto& hooks = impl().post_accumulate_grad_hooks;
  std::erase_if(hooks, [handle](const auto& h) { return h.first == handle; });
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  Tensor g = gradient;
  if (!g.defined()) {
    QUENCH_CHECK(numel() == 1, "backward: grad can be implicitly created only for scalar outputs; "
                               "this tensor has shape ", shape_str(sizes()),
                 ", so pass a gradient of that shape");
    g = Tensor::empty(sizes(), kFloat32);
    g.fill_(1.0);
  }
  QUENCH_CHECK(g.sizes() == sizes(), "backward: gradient of shape ", shape_str(g.sizes()),
               " for a tensor of shape ", shape_str(sizes()));
  autograd::run_backward(*this, g, retain_graph);
}

Tensor Tensor::detach() const {
  auto impl2 = std::make_shared<TensorImpl>();
  impl2->storage = impl().storage;
  impl2->dtype = impl().dtype;
  impl2->sizes = impl().sizes;
  impl2->strides = impl().strides;
  impl2->offset = impl().offset;
  return Tensor(std::move(impl2));
}

// ---------------------------------------------------------------------------------------------
// Copies

namespace {

// dst[...] = src[...] broadcast and converted. Both defined; shapes already checked.
void strided_copy(const Tensor& dst, const Tensor& src_in) {
  Tensor src = src_in.expand(dst.sizes());
  const Shape& ds = dst.strides();
  const Shape& ss = src.strides();
  char* dbase = static_cast<char*>(dst.raw_data());
  const char* sbase = static_cast<const char*>(src.raw_data());
  dispatch_dtype(dst.dtype(), [&](auto dtag) {
    using D = decltype(dtag);
    dispatch_dtype(src.dtype(), [&](auto stag) {
      using S = decltype(stag);
      D* d0 = reinterpret_cast<D*>(dbase);
      const S* s0 = reinterpret_cast<const S*>(sbase);
      detail::for_each_row<2>(dst.sizes(), {&ds, &ss},
                              [&](const std::array<int64_t, 2>& off, int64_t n,
                                  const std::array<int64_t, 2>& st) {
                                D* d = d0 + off[0];
                                const S* s = s0 + off[1];
                                if (st[0] == 1 && st[1] == 1) {
                                  if constexpr (std::is_same_v<D, S>) {
                                    std::memcpy(d, s, n * sizeof(D));
                                  } else {
                                    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<D>(s[i]);
                                  }
                                } else {
                                  for (int64_t i = 0; i < n; ++i)
                                    d[i * st[0]] = static_cast<D>(s[i * st[1]]);
                                }
                              });
    });
  });
}

}  // namespace

Tensor& Tensor::copy_(const Tensor& src) {
  check_defined(src, "copy_", "source");
  QUENCH_CHECK(src.dim() <= dim(), "copy_: source of shape ", shape_str(src.sizes()),
               " does not broadcast to destination shape ", shape_str(sizes()));
  QUENCH_CHECK(broadcast_shapes(sizes(), src.sizes(), "copy_") == sizes(), "copy_: source of shape ",
               shape_str(src.sizes()), " does not broadcast to destination shape ",
               shape_str(sizes()));
  strided_copy(*this, src);
  return *this;
}

Tensor& Tensor::fill_(double value) {
  const Shape& st = strides();
  dispatch_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v = static_cast<T>(value);
    T* base = static_cast<T*>(raw_data());
    detail::for_each_row<1>(sizes(), {&st},
                            [&](const std::array<int64_t, 1>& off, int64_t n,
                                const std::array<int64_t, 1>& s) {
                              T* p = base + off[0];
                              for (int64_t i = 0; i < n; ++i) p[i * s[0]] = v;
                            });
  });
  return *this;
}

// ---------------------------------------------------------------------------------------------
// Views. Each is a Function whose forward makes a new handle on the same storage.

namespace {

using autograd::AutogradContext;
using autograd::Function;

Tensor make_view(const Tensor& base, Shape sizes, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->dtype = base.dtype();
  impl->sizes = std::move(sizes);
  impl->strides = std::move(strides);
  impl->offset = offset;
  return Tensor(std::move(impl));
}

Shape infer_shape(const Shape& shape, int64_t numel, const char* op, const Shape& from) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      QUENCH_CHECK(infer < 0, op, ": only one dimension can be -1, got ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      QUENCH_CHECK(out[i] >= 0, op, ": invalid size ", out[i], " in ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    QUENCH_CHECK(known != 0 && numel % known == 0, op, ": shape ", shape_str(shape),
                 " is invalid for input of shape ", shape_str(from), " (", numel, " elements)");
    out[infer] = numel / known;
  }
  QUENCH_CHECK(shape_numel(out) == numel, op, ": shape ", shape_str(shape),
               " is invalid for input of shape ", shape_str(from), " (", numel,
               " elements); expected the sizes to multiply to ", numel);
  return out;
}

// Strides for viewing (sizes, strides) as `shape` without a copy, or empty when impossible
// (the algorithm of PyTorch's computeStride).
bool view_strides(const Shape& sizes, const Shape& strides, const Shape& shape, Shape& out) {
  out.assign(shape.size(), 0);
  if (shape_numel(sizes) == 0 || sizes.empty()) {
    out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) {
    tensor_numel *= sizes[d];
    if (d == 0 || (sizes[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

struct ViewFn : Function<ViewFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Shape& shape) {
    Shape target = infer_shape(shape, x.numel(), "view", x.sizes());
    Shape st;
    QUENCH_CHECK(view_strides(x.sizes(), x.strides(), target, st), "view: cannot view a tensor of shape ",
                 shape_str(x.sizes()), " and strides ", shape_str(x.strides()), " as ",
                 shape_str(target), " without a copy; use reshape() instead");
    ctx->saved_data["shape"] = x.sizes();
    return make_view(x, target, st, x.storage_offset());
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    return {g[0].reshape(std::get<Shape>(ctx->saved_data["shape"]))};
  }
};

struct PermuteFn : Function<PermuteFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const std::vector<int64_t>& dims) {
    const int64_t n = x.dim();
    QUENCH_CHECK(static_cast<int64_t>(dims.size()) == n, "permute: got ", dims.size(),
                 " dims for a tensor of shape ", shape_str(x.sizes()), "; expected ", n);
    Shape sizes(n), strides(n), inverse(n, -1);
    for (int64_t i = 0; i < n; ++i) {
      int64_t d = wrap_dim(dims[i], n, "permute");
      QUENCH_CHECK(inverse[d] < 0, "permute: dim ", d, " repeats in ", shape_str(dims));
      inverse[d] = i;
      sizes[i] = x.sizes()[d];
      strides[i] = x.strides()[d];
    }
    ctx->saved_data["inverse"] = inverse;
    return make_view(x, sizes, strides, x.storage_offset());
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    return {g[0].permute(std::get<Shape>(ctx->saved_data["inverse"]))};
  }
};

// narrow / slice / select: a strided window into one dim.
struct SliceFn : Function<SliceFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, int64_t dim, int64_t start,
                        int64_t end, int64_t step, bool drop_dim) {
    Shape sizes = x.sizes(), strides = x.strides();
    int64_t len = end > start ? (end - start + step - 1) / step : 0;
    int64_t offset = x.storage_offset() + (len > 0 ? start * strides[dim] : 0);
    ctx->saved_data["shape"] = x.sizes();
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["start"] = start;
    ctx->saved_data["end"] = end;
    ctx->saved_data["step"] = step;
    ctx->saved_data["drop"] = drop_dim;
    if (drop_dim) {
      sizes.erase(sizes.begin() + dim);
      strides.erase(strides.begin() + dim);
    } else {
      sizes[dim] = len;
      strides[dim] *= step;
    }
    return make_view(x, sizes, strides, offset);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto& s = ctx->saved_data;
    Tensor gx = Tensor::empty(std::get<Shape>(s["shape"]), kFloat32);
    gx.zero_();
    int64_t dim = std::get<int64_t>(s["dim"]);
    Tensor window = gx.slice(dim, std::get<int64_t>(s["start"]), std::get<int64_t>(s["end"]),
                             std::get<int64_t>(s["step"]));
    window.copy_(std::get<bool>(s["drop"]) ? g[0].unsqueeze(dim) : g[0]);
    return {gx};
  }
};

struct ExpandFn : Function<ExpandFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Shape& shape);
  static tensor_list backward(AutogradContext* ctx, tensor_list g);
};

struct CloneFn : Function<CloneFn> {
  static Tensor forward(AutogradContext*, const Tensor& x) {
    Tensor out = Tensor::empty(x.sizes(), x.dtype());
    strided_copy(out, x);
    return out;
  }
  static tensor_list backward(AutogradContext*, tensor_list g) { return {g[0]}; }
};

struct ToFn : Function<ToFn> {
  static Tensor forward(AutogradContext*, const Tensor& x, DType dtype) {
    Tensor out = Tensor::empty(x.sizes(), dtype);
    strided_copy(out, x);
    return out;
  }
  static tensor_list backward(AutogradContext*, tensor_list g) { return {g[0]}; }
};

}  // namespace

Tensor ExpandFn::forward(AutogradContext* ctx, const Tensor& x, const Shape& shape) {
  const int64_t n = static_cast<int64_t>(shape.size()), xd = x.dim();
  QUENCH_CHECK(n >= xd, "expand: the target ", shape_str(shape), " has fewer dims than the input ",
               shape_str(x.sizes()));
  Shape sizes(n), strides(n);
  for (int64_t i = n - 1; i >= 0; --i) {
    int64_t j = i - (n - xd);
    int64_t xs = j >= 0 ? x.sizes()[j] : 1, xst = j >= 0 ? x.strides()[j] : 0;
    int64_t want = shape[i] == -1 ? xs : shape[i];
    QUENCH_CHECK(j >= 0 || shape[i] != -1, "expand: -1 is not allowed for the new leading dim ", i,
                 " in ", shape_str(shape));
    QUENCH_CHECK(xs == want || xs == 1, "expand: cannot expand shape ", shape_str(x.sizes()), " to ",
                 shape_str(shape), "; dim ", i, " has size ", xs, ", expected it to equal ", want,
                 " or be 1");
    sizes[i] = want;
    strides[i] = xs == want ? xst : 0;
  }
  ctx->saved_data["shape"] = x.sizes();
  return make_view(x, sizes, strides, x.storage_offset());
}

tensor_list ExpandFn::backward(AutogradContext* ctx, tensor_list g) {
  return {sum_to(g[0], std::get<Shape>(ctx->saved_data["shape"]))};
}

Tensor Tensor::view(const Shape& shape) const { return ViewFn::apply(*this, shape); }

Tensor Tensor::reshape(const Shape& shape) const {
  Shape target = infer_shape(shape, numel(), "reshape", sizes());
  Shape st;
  if (view_strides(sizes(), strides(), target, st)) return ViewFn::apply(*this, target);
  return clone().view(target);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const { return PermuteFn::apply(*this, dims); }

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  const int64_t n = dim();
  d0 = wrap_dim(d0, n, "transpose");
  d1 = wrap_dim(d1, n, "transpose");
  std::vector<int64_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[d0], p[d1]);
  return permute(p);
}

Tensor Tensor::t() const {
  QUENCH_CHECK(dim() == 2, "t: expected a 2-D tensor, got shape ", shape_str(sizes()),
               "; use transpose(d0, d1) for other ranks");
  return transpose(0, 1);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim(), "slice");
  QUENCH_CHECK(step >= 1, "slice: step must be positive, got ", step);
  const int64_t n = sizes()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  return SliceFn::apply(*this, d, start, end, step, false);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  const int64_t n = sizes()[d];
  if (start < 0) start += n;
  QUENCH_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: start ", start,
               " and length ", length, " are out of range for dim ", d, " of shape ",
               shape_str(sizes()));
  return SliceFn::apply(*this, d, start, start + length, int64_t{1}, false);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  const int64_t n = sizes()[d];
  if (index < 0) index += n;
  QUENCH_CHECK(index >= 0 && index < n, "select: index ", index, " is out of range for dim ", d,
               " of shape ", shape_str(sizes()));
  return SliceFn::apply(*this, d, index, index + 1, int64_t{1}, true);
}

Tensor Tensor::expand(const Shape& shape) const {
  if (shape == sizes()) return *this;
  return ExpandFn::apply(*this, shape);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (sizes()[d] != 1) return *this;
  Shape s = sizes();
  s.erase(s.begin() + d);
  return view(s);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = sizes(), st = strides();
  s.insert(s.begin() + d, 1);
  // A view never fails when only a size-1 dim is added.
  return view(s);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  start_dim = wrap_dim(start_dim, dim(), "flatten");
  end_dim = wrap_dim(end_dim, dim(), "flatten");
  QUENCH_CHECK(start_dim <= end_dim, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim);
  Shape s(sizes().begin(), sizes().begin() + start_dim);
  int64_t m = 1;
  for (int64_t i = start_dim; i <= end_dim; ++i) m *= sizes()[i];
  s.push_back(m);
  s.insert(s.end(), sizes().begin() + end_dim + 1, sizes().end());
  return reshape(s);
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }
Tensor Tensor::clone() const { return CloneFn::apply(*this); }
Tensor Tensor::to(DType dtype) const {
  if (dtype == this->dtype()) return *this;
  QUENCH_CHECK(!requires_grad() || dtype == kFloat32 || !GradMode::is_enabled(),
               "to: converting a tensor that requires grad to ", dtype_name(dtype),
               " would drop its gradient; detach() it first");
  return ToFn::apply(*this, dtype);
}

// ---------------------------------------------------------------------------------------------
// Printing

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  const int64_t n = dim();
  Tensor c = contiguous();
  std::vector<double> v = c.to_vector<double>();
  const bool is_float = dtype() == kFloat32;
  std::function<void(int64_t, int64_t, int)> rec = [&](int64_t d, int64_t base, int indent) {
    if (d == n) {
      if (is_float) os << std::setprecision(4) << std::fixed << v[base];
      else os << static_cast<int64_t>(v[base]);
      return;
    }
    const int64_t sz = sizes()[d];
    int64_t stride = 1;
    for (int64_t k = d + 1; k < n; ++k) stride *= sizes()[k];
    os << "[";
    const int64_t edge = 3;
    for (int64_t i = 0; i < sz; ++i) {
      if (sz > 2 * edge + 1 && i == edge) {
        os << (d + 1 == n ? "..., " : "...,\n" + std::string(indent + 1, ' '));
        i = sz - edge - 1;
        continue;
      }
      rec(d + 1, base + i * stride, indent + 1);
      if (i + 1 < sz) os << (d + 1 == n ? ", " : ",\n" + std::string(indent + 1, ' '));
    }
    os << "]";
  };
  os << "tensor(";
  rec(0, 0, 7);
  os << ", shape=" << shape_str(sizes()) << ", dtype=" << dtype_name(dtype());
  if (requires_grad()) os << (is_leaf() ? ", requires_grad=True" : ", grad_fn=<" + grad_fn()->name() + ">");
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace quench
