#include "tools/cli/evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "dist/process_group.hpp"
#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/ops.hpp"
#include "nn/data/loader.hpp"

namespace quench::cli {

std::vector<double> EvalResult::per_class_accuracy() const {
  std::vector<double> acc(classes, 0.0);
  for (int64_t t = 0; t < classes; ++t) {
    int64_t total = 0;
    for (int64_t p = 0; p < classes; ++p) total += at(t, p);
    acc[t] = total ? static_cast<double>(at(t, t)) / static_cast<double>(total) : 0.0;
  }
  return acc;
}

std::vector<double> EvalResult::per_class_f1() const {
  std::vector<double> f1(classes, 0.0);
  for (int64_t c = 0; c < classes; ++c) {
    int64_t fp = 0, fn = 0;
    for (int64_t o = 0; o < classes; ++o)
      if (o != c) {
        fp += at(o, c);
        fn += at(c, o);
      }
    const int64_t tp = at(c, c), denom = 2 * tp + fp + fn;
    f1[c] = denom ? 2.0 * static_cast<double>(tp) / static_cast<double>(denom) : 0.0;
  }
  return f1;
}

double EvalResult::f1() const {
  const std::vector<double> f = per_class_f1();
  if (classes == 2) return f[1];
  double sum = 0.0;
  for (double v : f) sum += v;
  return classes ? sum / static_cast<double>(classes) : 0.0;
}

namespace {

int64_t argmax_row(const float* row, int64_t C) {
  int64_t best = 0;
  for (int64_t c = 1; c < C; ++c)
    if (row[c] > row[best]) best = c;
  return best;
}

}  // namespace

Agreement prediction_agreement(const Tensor& a, const Tensor& b) {
  QUENCH_CHECK(a.dim() == 2 && a.sizes() == b.sizes() && a.size(0) > 0,
               "prediction_agreement: expected two logit tensors [n, classes] of one shape with n > 0, got ",
               shape_str(a.sizes()), " and ", shape_str(b.sizes()));
  Tensor ac = a.contiguous(), bc = b.contiguous();
  const float *A = ac.data_ptr<float>(), *B = bc.data_ptr<float>();
  const int64_t n = ac.size(0), C = ac.size(1);
  Agreement r;
  int64_t same = 0;
  for (int64_t i = 0; i < n; ++i) {
    same += argmax_row(A + i * C, C) == argmax_row(B + i * C, C);
    for (int64_t c = 0; c < C; ++c)
      r.max_abs_diff = std::max(r.max_abs_diff, static_cast<double>(std::abs(A[i * C + c] - B[i * C + c])));
  }
  r.fraction = static_cast<double>(same) / static_cast<double>(n);
  return r;
}

void accumulate_predictions(EvalResult& r, const Tensor& logits, const Tensor& labels) {
  QUENCH_CHECK(logits.dim() == 2 && logits.size(1) == r.classes && labels.dim() == 1 &&
                   labels.size(0) == logits.size(0),
               "evaluate: expected logits [B, ", r.classes, "] and labels [B], got ",
               shape_str(logits.sizes()), " and ", shape_str(labels.sizes()));
  Tensor lg = logits.contiguous();
  Tensor lb = labels.to(kInt32).contiguous();
  const float* L = lg.data_ptr<float>();
  const int32_t* y = lb.data_ptr<int32_t>();
  const int64_t B = lg.size(0), C = r.classes;
  for (int64_t i = 0; i < B; ++i) {
    QUENCH_CHECK(y[i] >= 0 && y[i] < C, "evaluate: label ", y[i], " of row ", r.n + i, " is outside [0, ", C,
                 ")");
    const int64_t best = argmax_row(L + i * C, C);
    r.confusion[y[i] * C + best] += 1;
    r.correct += best == y[i];
  }
  r.n += B;
}

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  EvalResult r;
  r.classes = logits.size(1);
  r.confusion.assign(r.classes * r.classes, 0);
  accumulate_predictions(r, logits, labels);
  return r.correct;
}

EvalResult evaluate(nn::Module& model, const nn::LabeledImages& data, const Preprocess& pp, int64_t classes,
                    int64_t batch_size, bool keep_logits) {
  EvalResult r;
  r.classes = classes;
  r.confusion.assign(classes * classes, 0);
  if (keep_logits) r.logits = Tensor::empty({data.size(), classes}, kFloat32);
  nn::DataLoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = false;
  o.mean = pp.mean;
  o.std = pp.std;
  nn::DataLoader loader(data, o);
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  double loss_sum = 0.0;
  for (auto& batch : loader) {
    Tensor logits = model(batch.images);
    const int64_t B = batch.labels.size(0);
    loss_sum += cross_entropy(logits, batch.labels).item<float>() * static_cast<double>(B);
    if (keep_logits) {
      Tensor lg = logits.contiguous();
      std::memcpy(r.logits.data_ptr<float>() + r.n * classes, lg.data_ptr<float>(), lg.nbytes());
    }
    accumulate_predictions(r, logits, batch.labels);
  }
  model.train(was_training);
  r.loss = r.n ? loss_sum / static_cast<double>(r.n) : 0.0;
  return r;
}

std::string format_report(const EvalResult& r, const std::vector<std::string>& names) {
  auto name = [&](int64_t c) {
    return c < static_cast<int64_t>(names.size()) ? names[c] : std::to_string(c);
  };
  char buf[256];
  std::string out;
  std::snprintf(buf, sizeof buf, "accuracy %.2f%% (%lld / %lld), loss %.4f\n", 100.0 * r.accuracy(),
                static_cast<long long>(r.correct), static_cast<long long>(r.n), r.loss);
  out += buf;
  std::snprintf(buf, sizeof buf, "F1 %.4f (%s)\n", r.f1(), r.classes == 2 ? "of class 1" : "macro");
  out += buf;
  out += "per-class accuracy:\n";
  const auto acc = r.per_class_accuracy();
  size_t w = 5;
  for (int64_t c = 0; c < r.classes; ++c) w = std::max(w, name(c).size());
  for (int64_t c = 0; c < r.classes; ++c) {
    std::snprintf(buf, sizeof buf, "  %2lld %-*s %6.2f%%\n", static_cast<long long>(c), static_cast<int>(w),
                  name(c).c_str(), 100.0 * acc[c]);
    out += buf;
  }
  out += "confusion matrix (rows: true class, columns: predicted):\n     ";
  for (int64_t p = 0; p < r.classes; ++p) {
    std::snprintf(buf, sizeof buf, " %6lld", static_cast<long long>(p));
    out += buf;
  }
  out += "\n";
  for (int64_t t = 0; t < r.classes; ++t) {
    std::snprintf(buf, sizeof buf, "  %2lld ", static_cast<long long>(t));
    out += buf;
    for (int64_t p = 0; p < r.classes; ++p) {
      std::snprintf(buf, sizeof buf, " %6lld", static_cast<long long>(r.at(t, p)));
      out += buf;
    }
    out += "\n";
  }
  return out;
}

void all_reduce(EvalResult& r, dist::ProcessGroup& pg) {
  if (pg.size() == 1) return;
  std::vector<double> sums{static_cast<double>(r.n), static_cast<double>(r.correct), r.loss * static_cast<double>(r.n)};
  for (int64_t c : r.confusion) sums.push_back(static_cast<double>(c));
  pg.all_reduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
  r.n = static_cast<int64_t>(sums[0]);
  r.correct = static_cast<int64_t>(sums[1]);
  r.loss = r.n ? sums[2] / static_cast<double>(r.n) : 0.0;
  for (size_t i = 0; i < r.confusion.size(); ++i) r.confusion[i] = static_cast<int64_t>(sums[3 + i]);
}

}  // namespace quench::cli
