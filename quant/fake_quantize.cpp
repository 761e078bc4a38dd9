#include "quant/fake_quantize.hpp"

#include <algorithm>
#include <cmath>

#include "engine/autograd.hpp"
#include "engine/ops/creation.hpp"
#include "kernels/fake_quant_rows.hpp"
#include "kernels/parallel.hpp"

namespace quench::quant {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// x viewed as [outer, C, inner] with C the quantization channels (1 per tensor).
struct ChannelLayout {
  int64_t outer = 1, channels = 1, inner = 1;
};

ChannelLayout layout_of(const Tensor& x, const QuantSpec& spec) {
  ChannelLayout l;
  if (!spec.per_channel) {
    l.inner = x.numel();
    return l;
  }
  const int64_t axis = wrap_dim(spec.axis, x.dim(), "fake_quantize");
  for (int64_t d = 0; d < axis; ++d) l.outer *= x.size(d);
  l.channels = x.size(axis);
  for (int64_t d = axis + 1; d < x.dim(); ++d) l.inner *= x.size(d);
  return l;
}

void check_qparams(const Tensor& x, const Tensor& scale, const Tensor& zp, const QuantSpec& spec,
                   const char* op) {
  check_dtype(x, kFloat32, op, "input");
  check_dtype(scale, kFloat32, op, "scale");
  check_dtype(zp, kInt32, op, "zero_point");
  spec.validate();
  const int64_t c = spec.per_channel ? x.size(wrap_dim(spec.axis, x.dim(), op)) : 1;
  QUENCH_CHECK(scale.numel() == c && zp.numel() == c, op, ": input of shape ", shape_str(x.sizes()),
               " with ", spec.str(), " needs ", c, " scale(s) and zero point(s), got scale ",
               shape_str(scale.sizes()), " and zero_point ", shape_str(zp.sizes()));
}

// y = fake_quant(x); mask[i] = 1 when the unclamped q is inside [qmin, qmax]. Work items are
// pieces of at most kPiece elements of each [inner] row, so a per-tensor x (one row) uses every thread.
void fq_forward(const Tensor& x, const float* scale, const int32_t* zp, const QuantSpec& spec,
                const ChannelLayout& l, float* y, uint8_t* mask) {
  constexpr int64_t kPiece = 16384;
  const float* px = x.data_ptr<float>();
  const int32_t qmin = static_cast<int32_t>(spec.quant_min), qmax = static_cast<int32_t>(spec.quant_max);
  const int64_t pieces = (l.inner + kPiece - 1) / kPiece, rows = l.outer * l.channels;
  kernels::parallel_for(rows * pieces, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t r = t / pieces, c = r % l.channels, i0 = r * l.inner + (t % pieces) * kPiece;
      const int64_t n = std::min(kPiece, (r + 1) * l.inner - i0);
      kernels::fake_quant_row(px + i0, n, scale[c], zp[c], qmin, qmax, nullptr, y + i0, mask ? mask + i0 : nullptr);
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
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    auto& sd = ctx->saved_data;
    const Tensor &x = v[0], &s = v[1], &z = v[2];
    const int64_t outer = std::get<int64_t>(sd["outer"]), channels = std::get<int64_t>(sd["channels"]),
                  inner = std::get<int64_t>(sd["inner"]);
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
    // One thread per channel: the scale gradient sums in a fixed order.
    kernels::parallel_for(channels, 1, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) {
        const float inv = 1.0f / ps[c], zf = static_cast<float>(pz[c]);
        double acc = 0.0;
        for (int64_t o = 0; o < outer; ++o) {
          const int64_t base = (o * channels + c) * inner;
          for (int64_t i = 0; i < inner; ++i) {
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
  Tensor s = Tensor::empty(spec.per_channel ? Shape{l.channels} : Shape{}, kFloat32);
  const float* px = x.data_ptr<float>();
  float* ps = s.data_ptr<float>();
  const double sq = std::sqrt(static_cast<double>(spec.quant_max));
  for (int64_t c = 0; c < l.channels; ++c) {
    double acc = 0.0;
    for (int64_t o = 0; o < l.outer; ++o)
      for (int64_t i = 0; i < l.inner; ++i) acc += std::abs(px[(o * l.channels + c) * l.inner + i]);
    const double mean_abs = acc / static_cast<double>(std::max<int64_t>(1, l.outer * l.inner));
    ps[c] = static_cast<float>(std::max(2.0 * mean_abs / sq, 1e-8));
  }
  return s;
}

}  // namespace quench::quant
