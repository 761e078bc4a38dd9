#include "quant/fake_quantize.hpp"

#include <algorithm>
#include <cmath>

#include "engine/autograd.hpp"
#include "engine/ops/creation.hpp"
#include "kernels/fake_quant_rows.hpp"
#include "kernels/parallel.hpp"
#include "quant/observer.hpp"
#include "quant/qat_rows.hpp"

namespace quench::quant {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// x viewed as [outer, C, inner] with C the quantization channels (1 per tensor); each [inner] run
// cut into `groups` segments of `group` elements (the last one shorter), scale index c * groups + g.
struct ChannelLayout {
  int64_t outer = 1, channels = 1, inner = 1;
  int64_t group = 1, groups = 1;
  int64_t scales() const { return channels * groups; }
  int64_t group_len(int64_t g) const { return std::min(group, inner - g * group); }
};

ChannelLayout layout_of(const Tensor& x, const QuantSpec& spec) {
  ChannelLayout l;
  if (!spec.per_channel) {
    l.inner = l.group = x.numel();
    return l;
  }
  const int64_t axis = wrap_dim(spec.axis, x.dim(), "fake_quantize");
  for (int64_t d = 0; d < axis; ++d) l.outer *= x.size(d);
  l.channels = x.size(axis);
  for (int64_t d = axis + 1; d < x.dim(); ++d) l.inner *= x.size(d);
  if (spec.group_size > 0) {
    l.group = spec.group_size;
    l.groups = spec.groups_per_channel(l.inner);
  } else {
    l.group = l.inner;
  }
  return l;
}

void check_qparams(const Tensor& x, const Tensor& scale, const Tensor& zp, const QuantSpec& spec,
                   const char* op) {
  check_dtype(x, kFloat32, op, "input");
  check_dtype(scale, kFloat32, op, "scale");
  check_dtype(zp, kInt32, op, "zero_point");
  spec.validate();
  QUENCH_CHECK(!spec.per_token, op, ": per-token specs (", spec.str(), ") take no fixed scale; use "
               "fake_quantize_per_token");
  const int64_t c = layout_of(x, spec).scales();
  QUENCH_CHECK(scale.numel() == c && zp.numel() == c, op, ": input of shape ", shape_str(x.sizes()),
               " with ", spec.str(), " needs ", c, " scale(s) and zero point(s), got scale ",
               shape_str(scale.sizes()), " and zero_point ", shape_str(zp.sizes()));
}

// y = fake_quant(x); mask[i] = 1 when the unclamped q is inside [qmin, qmax]. Work items are
// pieces of at most kPiece elements of each group of each [inner] row, so a per-tensor x (one row)
// uses every thread.
void fq_forward(const Tensor& x, const float* scale, const int32_t* zp, const QuantSpec& spec,
                const ChannelLayout& l, float* y, uint8_t* mask) {
  constexpr int64_t kPiece = 16384;
  const float* px = x.data_ptr<float>();
  const int32_t qmin = static_cast<int32_t>(spec.quant_min), qmax = static_cast<int32_t>(spec.quant_max);
  const int64_t pieces = (l.group + kPiece - 1) / kPiece, rows = l.outer * l.channels;
  const int64_t per_row = l.groups * pieces;
  kernels::parallel_for(rows * per_row, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t r = t / per_row, g = (t % per_row) / pieces, sc = (r % l.channels) * l.groups + g;
      const int64_t g0 = r * l.inner + g * l.group, i0 = g0 + (t % pieces) * kPiece;
      const int64_t n = std::min(kPiece, g0 + l.group_len(g) - i0);
      if (n <= 0) continue;
      kernels::fake_quant_row(px + i0, n, scale[sc], zp[sc], qmin, qmax, nullptr, y + i0, mask ? mask + i0 : nullptr);
    }
  });
}

// x_hat = fake_quantize(x)   x:[...]  scale, zero_point: [] or [C]
struct FakeQuantizeFn : Function<FakeQuantizeFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x_in, const Tensor& scale, const Tensor& zp,
                        const QuantSpec& spec) {
    Tensor x = x_in.contiguous();
    Tensor s = scale.contiguous(), z = zp.contiguous();
    ChannelLayout l = layout_of(x, spec);
    Tensor y = Tensor::empty(x.sizes(), kFloat32);
    Tensor mask = ctx->needs_input_grad(0) ? Tensor::empty(x.sizes(), kUInt8) : Tensor();
    fq_forward(x, s.data_ptr<float>(), z.data_ptr<int32_t>(), spec, l, y.data_ptr<float>(),
               mask.defined() ? mask.data_ptr<uint8_t>() : nullptr);
    ctx->save_for_backward({mask});
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    Tensor mask = ctx->get_saved_variables()[0];
    Tensor gc = g[0].contiguous();
    Tensor dx = Tensor::empty(gc.sizes(), kFloat32);
    const float* pg = gc.data_ptr<float>();
    const uint8_t* pm = mask.data_ptr<uint8_t>();
    float* pd = dx.data_ptr<float>();
    kernels::parallel_for(dx.numel(), 32768, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) pd[i] = pm[i] ? pg[i] : 0.f;
    });
    return {dx, Tensor(), Tensor()};
  }
};

// x_hat = fake_quantize(x) with a learnable scale (LSQ)   x:[...]  scale: [] or [C]
struct LearnableFakeQuantizeFn : Function<LearnableFakeQuantizeFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x_in, const Tensor& scale, const Tensor& zp,
                        const QuantSpec& spec, double grad_factor) {
    Tensor x = x_in.contiguous();
    Tensor s = scale.contiguous(), z = zp.contiguous();
    ChannelLayout l = layout_of(x, spec);
    Tensor y = Tensor::empty(x.sizes(), kFloat32);
    fq_forward(x, s.data_ptr<float>(), z.data_ptr<int32_t>(), spec, l, y.data_ptr<float>(), nullptr);
    ctx->save_for_backward({x, s, z});
    ctx->saved_data["grad_factor"] = grad_factor;
    ctx->saved_data["qmin"] = spec.quant_min;
    ctx->saved_data["qmax"] = spec.quant_max;
    ctx->saved_data["outer"] = l.outer;
    ctx->saved_data["channels"] = l.channels;
    ctx->saved_data["inner"] = l.inner;
    ctx->saved_data["group"] = l.group;
    ctx->saved_data["groups"] = l.groups;
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    auto& sd = ctx->saved_data;
    const Tensor &x = v[0], &s = v[1], &z = v[2];
    ChannelLayout l;
    l.outer = std::get<int64_t>(sd["outer"]);
    l.channels = std::get<int64_t>(sd["channels"]);
    l.inner = std::get<int64_t>(sd["inner"]);
    l.group = std::get<int64_t>(sd["group"]);
    l.groups = std::get<int64_t>(sd["groups"]);
    const float qmin = static_cast<float>(std::get<int64_t>(sd["qmin"]));
    const float qmax = static_cast<float>(std::get<int64_t>(sd["qmax"]));
    const double gf = std::get<double>(sd["grad_factor"]);
    Tensor gc = g[0].contiguous();
    Tensor dx = Tensor::empty(x.sizes(), kFloat32);
    Tensor ds = Tensor::empty(s.sizes(), kFloat32);
    const float* px = x.data_ptr<float>();
    const float* pg = gc.data_ptr<float>();
    const float* ps = s.data_ptr<float>();
    const int32_t* pz = z.data_ptr<int32_t>();
    float* pdx = dx.data_ptr<float>();
    float* pds = ds.data_ptr<float>();
    // One thread per scale (channel, or group of one): its gradient sums in a fixed order.
    kernels::parallel_for(l.scales(), 1, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) {
        const float inv = 1.0f / ps[c], zf = static_cast<float>(pz[c]);
        const int64_t ch = c / l.groups, g = c % l.groups, len = l.group_len(g);
        double acc = 0.0;
        for (int64_t o = 0; o < l.outer; ++o) {
          const int64_t base = (o * l.channels + ch) * l.inner + g * l.group;
          for (int64_t i = 0; i < len; ++i) {
            const float xs = px[base + i] * inv, r = std::nearbyint(xs), u = r + zf;
            const float gi = pg[base + i];
            if (u < qmin) {
              pdx[base + i] = 0.f;
              acc += static_cast<double>(gi) * (qmin - zf);
            } else if (u > qmax) {
              pdx[base + i] = 0.f;
              acc += static_cast<double>(gi) * (qmax - zf);
            } else {
              pdx[base + i] = gi;
              acc += static_cast<double>(gi) * (r - xs);
            }
          }
        }
        pds[c] = static_cast<float>(acc * gf);
      }
    });
    return {dx, ds, Tensor()};
  }
};

// x_hat = fake_quantize(x) with each row's own qparams   x:[..., K]
struct PerTokenFakeQuantizeFn : Function<PerTokenFakeQuantizeFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x_in, const QuantSpec& spec) {
    Tensor x = x_in.contiguous();
    const int64_t K = x.sizes().back(), R = K ? x.numel() / K : 0;
    Tensor y = Tensor::empty(x.sizes(), kFloat32);
    Tensor mask = ctx->needs_input_grad(0) ? Tensor::empty(x.sizes(), kUInt8) : Tensor();
    const float* px = x.data_ptr<float>();
    float* py = y.data_ptr<float>();
    uint8_t* pm = mask.defined() ? mask.data_ptr<uint8_t>() : nullptr;
    const int32_t qmin = static_cast<int32_t>(spec.quant_min), qmax = static_cast<int32_t>(spec.quant_max);
    kernels::parallel_for(R, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, K)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        float s;
        int32_t z;
        row_qparams(px + r * K, K, spec, &s, &z);
        kernels::fake_quant_row(px + r * K, K, s, z, qmin, qmax, nullptr, py + r * K, pm ? pm + r * K : nullptr);
      }
    });
    ctx->save_for_backward({mask});
    return y;
  }
  // The straight-through estimator with the clamp mask; the row's scale is treated as a constant.
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    Tensor mask = ctx->get_saved_variables()[0];
    Tensor dx = g[0].contiguous().clone();
    apply_mask(dx, mask);
    return {dx};
  }
};

}  // namespace

Tensor fake_quantize(const Tensor& x, const Tensor& scale, const Tensor& zero_point, const QuantSpec& spec) {
  check_qparams(x, scale, zero_point, spec, "fake_quantize");
  return FakeQuantizeFn::apply(x, scale, zero_point, spec);
}

Tensor fake_quantize_learnable(const Tensor& x, const Tensor& scale, const Tensor& zero_point,
                               const QuantSpec& spec, double grad_factor) {
  check_qparams(x, scale, zero_point, spec, "fake_quantize_learnable");
  return LearnableFakeQuantizeFn::apply(x, scale, zero_point, spec, grad_factor);
}

Tensor lsq_init_scale(const Tensor& x_in, const QuantSpec& spec) {
  check_dtype(x_in, kFloat32, "lsq_init_scale", "input");
  Tensor x = x_in.detach().contiguous();
  ChannelLayout l = layout_of(x, spec);
  Shape shape = !spec.per_channel ? Shape{} : spec.group_size > 0 ? Shape{l.channels, l.groups} : Shape{l.channels};
  Tensor s = Tensor::empty(shape, kFloat32);
  const float* px = x.data_ptr<float>();
  float* ps = s.data_ptr<float>();
  const double sq = std::sqrt(static_cast<double>(spec.quant_max));
  for (int64_t c = 0; c < l.scales(); ++c) {
    const int64_t ch = c / l.groups, g = c % l.groups, len = l.group_len(g);
    double acc = 0.0;
    for (int64_t o = 0; o < l.outer; ++o)
      for (int64_t i = 0; i < len; ++i) acc += std::abs(px[(o * l.channels + ch) * l.inner + g * l.group + i]);
    const double mean_abs = acc / static_cast<double>(std::max<int64_t>(1, l.outer * len));
    ps[c] = static_cast<float>(std::max(2.0 * mean_abs / sq, 1e-8));
  }
  return s;
}

Tensor fake_quantize_per_token(const Tensor& x, const QuantSpec& spec) {
  check_dtype(x, kFloat32, "fake_quantize_per_token", "input");
  spec.validate();
  QUENCH_CHECK(spec.per_token && x.dim() >= 1, "fake_quantize_per_token: needs a per-token spec and an input "
               "with a last dim, got ", spec.str(), " and shape ", shape_str(x.sizes()));
  return PerTokenFakeQuantizeFn::apply(x, spec);
}

}  // namespace quench::quant
