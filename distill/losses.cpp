#include "distill/losses.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "engine/ops.hpp"

namespace quench::distill {

const char* loss_type_name(LossType t) { return kLossTypeNames[static_cast<int>(t)]; }

LossType parse_loss_type(const std::string& name) {
  std::string up = name;
  std::transform(up.begin(), up.end(), up.begin(), [](unsigned char c) { return std::toupper(c); });
  for (int i = 0; i < 5; ++i) {
    std::string n = kLossTypeNames[i];
    std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::toupper(c); });
    if (n == up) return static_cast<LossType>(i);
  }
  throw Error("distill: unknown loss type '" + name + "'; expected one of CE, KL, MSE, L1, Cosine");
}

Tensor kd_loss(const Tensor& zs, const Tensor& zt_in, const KDLossOptions& opt) {
  QUENCH_CHECK(zs.dim() == 2 && zs.sizes() == zt_in.sizes(), "kd_loss: student logits ",
               shape_str(zs.sizes()), " and teacher logits ", shape_str(zt_in.sizes()),
               " must both be [N, C] of the same shape");
  QUENCH_CHECK(opt.temperature > 0, "kd_loss: temperature must be positive, got ", opt.temperature);
  const double T = opt.temperature, T2 = T * T;
  Tensor zt = zt_in.detach();
  Tensor s = T == 1.0 ? zs : zs / T;
  Tensor t = T == 1.0 ? zt : zt / T;
  switch (opt.type) {
    case LossType::CE: {
      Tensor pt = softmax(t, 1);
      Tensor ce = neg(sum(pt * log_softmax(s, 1), {1}));
      return mean(ce) * T2;
    }
    case LossType::KL:
      return kl_div(log_softmax(s, 1), log_softmax(t, 1), opt.kl_reduction, /*log_target=*/true) * T2;
    case LossType::MSE:
      return mse_loss(s, t) * T2;
    default:
      throw Error(std::string("kd_loss: loss type ") + loss_type_name(opt.type) +
                  " is not a logit loss; use CE, KL or MSE");
  }
}

namespace {

// Per-row loss [...] (rows = all dims but the last) for KL and Cosine.
Tensor row_loss(const Tensor& s, const Tensor& t, const FeatureLossOptions& opt) {
  if (opt.type == LossType::KL) {
    QUENCH_CHECK(opt.kind != FeatureKind::values, "feature_loss: KL needs the features declared as "
                                                  "logits or probabilities (FeatureLossOptions::kind)");
    Tensor log_s, log_t, p_t;
    if (opt.kind == FeatureKind::logits) {
      log_s = log_softmax(s, -1);
      log_t = log_softmax(t, -1);
    } else {
      // Probabilities (e.g. attention maps): clamp before the log so exact zeros stay finite.
      log_s = log(clamp(s, 1e-12, NAN));
      log_t = log(clamp(t, 1e-12, NAN));
    }
    p_t = exp(log_t);
    return sum(p_t * (log_t - log_s), {-1});
  }
  // Cosine
  Tensor dot = sum(s * t, {-1});
  Tensor ns = sqrt(clamp(sum(s * s, {-1}), 1e-16, NAN));
  Tensor nt = sqrt(clamp(sum(t * t, {-1}), 1e-16, NAN));
  return rsub(dot / (ns * nt), 1.0);
}

}  // namespace

Tensor feature_loss(const Tensor& student, const Tensor& teacher_in, const FeatureLossOptions& opt) {
  QUENCH_CHECK(student.sizes() == teacher_in.sizes(), "feature_loss: student feature ",
               shape_str(student.sizes()), " and teacher feature ", shape_str(teacher_in.sizes()),
               " differ; map the student through a projection to the teacher's width first");
  QUENCH_CHECK(student.dim() >= 1, "feature_loss: features need at least 1 dim");
  Tensor t = teacher_in.detach();
  const Tensor& s = student;
  if (!opt.mask.defined()) {
    switch (opt.type) {
      case LossType::MSE: return mse_loss(s, t);
      case LossType::L1: return l1_loss(s, t);
      case LossType::KL:
      case LossType::Cosine: return mean(row_loss(s, t, opt));
      default: throw Error("feature_loss: CE is a logit loss; use MSE, L1, KL or Cosine for features");
    }
  }
  Shape lead(s.sizes().begin(), s.sizes().end() - 1);
  QUENCH_CHECK(opt.mask.sizes() == lead, "feature_loss: mask of shape ", shape_str(opt.mask.sizes()),
               " does not match the features' leading shape ", shape_str(lead));
  Tensor m = opt.mask.to(kFloat32).detach();
  Tensor valid = sum(m);
  Tensor per_row;
  switch (opt.type) {
    case LossType::MSE: { Tensor d = s - t; per_row = mean(d * d, {-1}); break; }
    case LossType::L1: per_row = mean(abs(s - t), {-1}); break;
    case LossType::KL:
    case LossType::Cosine: per_row = row_loss(s, t, opt); break;
    default: throw Error("feature_loss: CE is a logit loss; use MSE, L1, KL or Cosine for features");
  }
  return sum(per_row * m) / clamp(valid, 1.0, NAN);
}

}  // namespace quench::distill
