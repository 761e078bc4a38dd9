#include "quant/prepare.hpp"

#include "engine/autograd.hpp"
#include "nn/layers/attention.hpp"
#include "nn/layers/bert.hpp"
#include "nn/layers/embedding.hpp"
#include "nn/layers/linear.hpp"
#include "quant/fake_quant_module.hpp"
#include "quant/qat_attention.hpp"
#include "quant/qat_embedding.hpp"
#include "quant/qat_linear.hpp"

namespace quench::quant {
namespace {


std::vector<FakeQuantize*> fake_quants(nn::Module& model) {
  std::vector<FakeQuantize*> out;
  model.apply([&](nn::Module& m) {
    if (auto* fq = dynamic_cast<FakeQuantize*>(&m)) out.push_back(fq);
  });
  return out;
}

}  // namespace

std::string PrepareSummary::str() const {
  std::string s;
  for (const auto& w : swapped) s += w.name + ": " + w.from + " -> " + w.to + " (" + w.qconfig + ")\n";
  for (const auto& k : kept_fp32) s += k + ": kept FP32\n";
  return s;
}

PrepareSummary prepare_qat(nn::Module& model, const QuantizationAwareTrainingConfig& cfg) {
  PrepareSummary sum;
  // A snapshot in pre-order: an Attention is swapped before its qkv / proj, which are then looked up
  // again through their (new) parent.
  for (const auto& [name, m] : model.named_modules()) {
    const bool lin = dynamic_cast<nn::Linear*>(m.get()) || dynamic_cast<nn::Embedding*>(m.get());
    const bool att = cfg.quantize_attention_matmuls && (dynamic_cast<nn::Attention*>(m.get()) ||
                                                        dynamic_cast<nn::BertSelfAttention*>(m.get()));
    if (!lin && !att) continue;
    std::optional<QConfig> qc = qconfig_for(cfg, name, m->type_name());
    if (!qc) {
      sum.kept_fp32.push_back(name.empty() ? "(root)" : name);
      continue;
    }
    QUENCH_CHECK(!name.empty(), "prepare_qat: the root module is a ", m->type_name(),
                 "; wrap it in a parent module (e.g. nn::Sequential) so it can be swapped");
    nn::ModulePtr current = model.get_submodule(name);
    nn::ModulePtr repl;
    if (auto* l = dynamic_cast<nn::Linear*>(current.get()))
      repl = std::make_shared<QATLinear>(*l, *qc);
    else if (auto* e = dynamic_cast<nn::Embedding*>(current.get()))
      repl = std::make_shared<QATEmbedding>(*e, *qc);
    else if (!(repl = make_qat_attention(*current, *qc)))
      continue;
    model.set_submodule(name, repl);
    sum.swapped.push_back({name, m->type_name(), repl->type_name(), qc->str()});
  }
  return sum;
}

QuantizationAwareTrainingConfig default_ptq_config() {
  QuantizationAwareTrainingConfig c;
  c.default_qconfig = QConfig::default_ptq();
  return c;
}

PrepareSummary prepare_ptq(nn::Module& model, const QuantizationAwareTrainingConfig& cfg) {
  PrepareSummary s = prepare_qat(model, cfg);
  enable_fake_quant(model, false);
  enable_observers(model, true);
  return s;
}

int64_t calibrate(nn::Module& model, int64_t n, const std::function<Tensor(int64_t)>& next) {
  return calibrate_multi(model, n, [&](int64_t i) { return tensor_list{next(i)}; });
}

int64_t calibrate_multi(nn::Module& model, int64_t n, const std::function<tensor_list(int64_t)>& next) {
  QUENCH_CHECK(n >= 1, "calibrate: need at least one batch, got ", n);
  std::vector<FakeQuantize*> fqs = fake_quants(model);
  QUENCH_CHECK(!fqs.empty(), "calibrate: ", model.type_name(),
               " has no FakeQuantize modules; run prepare_ptq (or prepare_qat) first");
  // Every module's training flag, restored afterwards (also when a batch throws). apply() lists
  // children before parents and train() recurses, so restore parents first (reverse order).
  struct Restore {
    std::vector<std::pair<nn::Module*, bool>> flags;
    ~Restore() {
      for (auto it = flags.rbegin(); it != flags.rend(); ++it) it->first->train(it->second);
    }
  } restore;
  model.apply([&](nn::Module& m) { restore.flags.emplace_back(&m, m.is_training()); });
  model.eval();
  for (FakeQuantize* fq : fqs) {
    fq->train(true);
    fq->enable_observer(true);
  }
  {
    NoGradGuard ng;
    for (int64_t i = 0; i < n; ++i) model(next(i));
  }
  for (FakeQuantize* fq : fqs) {
    fq->update_qparams();
    fq->disable_observer();
    fq->enable_fake_quant(true);
  }
  return n;
}

int64_t calibrate(nn::Module& model, const std::vector<Tensor>& batches) {
  return calibrate(model, static_cast<int64_t>(batches.size()), [&](int64_t i) { return batches[i]; });
}

int64_t enable_observers(nn::Module& model, bool on) {
  auto fqs = fake_quants(model);
  for (FakeQuantize* fq : fqs) fq->enable_observer(on);
  return static_cast<int64_t>(fqs.size());
}

int64_t freeze_observers(nn::Module& model) { return enable_observers(model, false); }

int64_t enable_fake_quant(nn::Module& model, bool on) {
  auto fqs = fake_quants(model);
  for (FakeQuantize* fq : fqs) fq->enable_fake_quant(on);
  return static_cast<int64_t>(fqs.size());
}

bool freeze_observers_on_epoch(nn::Module& model, const QuantizationAwareTrainingConfig& cfg, int epoch) {
  if (cfg.freeze_observer_epoch < 0 || epoch < cfg.freeze_observer_epoch) return false;
  freeze_observers(model);
  return true;
}

}  // namespace quench::quant
