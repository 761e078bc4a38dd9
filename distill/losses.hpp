// Distillation losses: logit knowledge distillation and per-layer feature losses.
//
// Logit KD (Hinton; INC's KnowledgeDistillationLoss): L = T^2 * D(z_s / T, z_t / T) with D one of
//   CE   soft cross-entropy  mean_rows( -sum_c softmax(z_t/T)_c * log_softmax(z_s/T)_c )
//   KL   KL(p_t || p_s)      batchmean (the true KL, the default) or mean over rows*classes (INC's)
//   MSE  mean squared error between the scaled logits
// The teacher's side never receives a gradient (it is detached).
//
// Feature losses between a student and a teacher feature of the same shape [..., D]:
//   MSE, L1 (mean over elements), KL over the last dim (inputs declared as logits or as
//   probabilities; averaged over rows), Cosine (1 - cos along the last dim, averaged over rows).
// An optional mask of the leading shape [...] (nonzero = valid) restricts every loss to valid rows
// (padded tokens), averaging over valid rows only.
#pragma once
#include <string>

#include "engine/ops/nn_ops.hpp"
#include "engine/tensor.hpp"

namespace quench::distill {

enum class LossType { CE, KL, MSE, L1, Cosine };
inline constexpr const char* kLossTypeNames[] = {"CE", "KL", "MSE", "L1", "Cosine"};
const char* loss_type_name(LossType t);
// "CE", "KL", "MSE", "L1", "Cosine" (case-insensitive); throws listing the valid names.
LossType parse_loss_type(const std::string& name);

struct KDLossOptions {
  double temperature = 1.0;
  LossType type = LossType::CE;              // CE, KL or MSE
  Reduction kl_reduction = Reduction::batchmean;  // or Reduction::mean (INC's element mean)
};

// student_logits, teacher_logits: [N, C].
Tensor kd_loss(const Tensor& student_logits, const Tensor& teacher_logits, const KDLossOptions& opt = {});

enum class FeatureKind { values, logits, probabilities };

struct FeatureLossOptions {
  LossType type = LossType::MSE;             // MSE, L1, KL or Cosine
  FeatureKind kind = FeatureKind::values;    // for KL: logits or probabilities
  Tensor mask;                               // optional, the leading shape of the features
};

Tensor feature_loss(const Tensor& student, const Tensor& teacher, const FeatureLossOptions& opt = {});

}  // namespace quench::distill
