#include "quant/int8_io.hpp"

#include <cstdio>
#include <sstream>

#include "nn/layers/attention.hpp"
#include "nn/layers/embedding.hpp"
#include "nn/layers/linear.hpp"
#include "quant/int4_linear.hpp"
#include "quant/int8_block.hpp"
#include "quant/int8_linear.hpp"
#include "quant/int8_mlp.hpp"
#include "quant/prepare.hpp"
#include "quant/int8_bert_layer.hpp"
#include "quant/qat_attention.hpp"
#include "quant/quantized_embedding.hpp"

namespace quench::quant {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep))
    if (!cur.empty()) out.push_back(cur);
  return out;
}

int64_t to_int(const std::string& s, const std::string& what, const std::string& path) {
  try {
    size_t used = 0;
    int64_t v = std::stoll(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error("load_int8: " + path + ": metadata field " + what + " is not an integer: '" + s + "'");
}


const char* kScheme =
    "weights int8 symmetric per output channel (weight I8 [out,in], weight_scale F32 [out], zero point 0); "
    "activations uint8 affine per tensor (input_scale F32 [1], input_zero_point I32 [1]); "
    "y = float(sum_k (q_x - z_x) * q_w) * (input_scale * weight_scale) + bias";

const char* kScheme4 =
    "; int4 layers: weight U8 [out, ceil(in/2)] two signed 4-bit codes per byte (W[n,2j] low nibble, W[n,2j+1] "
    "high nibble, two's complement, padding nibble 0), weight_scale F32 [out, groups] (groups of group_size "
    "along in, 1 per channel), input_scale / input_zero_point only for per-tensor activations; "
    "y = sum_g float(acc_g) * (s_x * weight_scale[n,g]) + bias";

const char* kSchemeEmbedding =
    "; quantized embeddings: weight I8 [num, dim] (bits 5..8) or U8 [num, ceil(dim/2)] (bits 2..4, packed as int4 "
    "layers), weight_scale F32 [num, groups] (groups of group_size along dim, 1 per row), zero point 0; "
    "row[d] = float(code[d]) * weight_scale[row, d / group_size]";

}  // namespace

void save_int8(const std::string& path, nn::Module& model, const nn::Metadata& extra) {
  std::string lin, lin4, att, emb;
  for (const auto& [name, m] : model.named_modules()) {
    if (auto* e = dynamic_cast<QuantizedEmbedding*>(m.get())) {
      e->validate("save_int8: '" + name + "'");
      emb += name + ":" + std::to_string(e->num_embeddings) + ":" + std::to_string(e->embedding_dim) + ":" +
             std::to_string(e->padding_idx) + ":" + std::to_string(e->bits) + ":" + std::to_string(e->group_size) + ";";
    } else if (auto* l4 = dynamic_cast<Int4Linear*>(m.get())) {
      l4->validate("save_int8: '" + name + "'");
      lin4 += name + ":" + std::to_string(l4->in_features) + ":" + std::to_string(l4->out_features) + ":" +
              (l4->bias.defined() ? "1" : "0") + ":" + std::to_string(l4->bits) + ":" +
              std::to_string(l4->group_size) + ":" + (l4->per_token ? "1" : "0") + ";";
    } else if (auto* l = dynamic_cast<Int8Linear*>(m.get())) {
      l->validate("save_int8: '" + name + "'");
      lin += name + ":" + std::to_string(l->in_features) + ":" + std::to_string(l->out_features) + ":" +
             (l->bias.defined() ? "1" : "0") + ":" + std::to_string(l->input_qmin) + ":" +
             std::to_string(l->input_qmax) + ";";
    } else if (is_qat_attention(*m)) {
      auto fq = std::dynamic_pointer_cast<FakeQuantize>(m->child("q_fake_quant"));
      auto om = std::dynamic_pointer_cast<ObserverModule>(fq->child("activation_post_process"));
      const QuantSpec& s = fq->spec();
      att += name + ":" + std::to_string(static_cast<int>(om->kind())) + ":" + std::to_string(s.bits) + ":" +
             std::to_string(s.is_signed) + ":" + std::to_string(s.symmetric) + ":" + std::to_string(s.quant_min) +
             ":" + std::to_string(s.quant_max) + ":" + std::to_string(fq->learnable()) + ";";
    } else if (m->type_name() == "QATLinear" || m->type_name() == "QATEmbedding") {
      throw Error("save_int8: '" + name + "' is still a " + m->type_name() +
                  "; run quant::convert before saving an int8 model");
    }
  }
  QUENCH_CHECK(!lin.empty() || !lin4.empty() || !emb.empty(), "save_int8: ", model.type_name(),
               " has no Int8Linear, Int4Linear or QuantizedEmbedding layers; convert it first");
  nn::Metadata md = extra;
  md["format"] = "quench-int8";
  // The oldest version that knows every layer kind present: 1 Int8Linear, 2 Int4Linear, 3 QuantizedEmbedding.
  md["version"] = !emb.empty() ? "3" : !lin4.empty() ? "2" : "1";
  md["scheme"] = std::string(kScheme) + (lin4.empty() ? "" : kScheme4) + (emb.empty() ? "" : kSchemeEmbedding);
  md["int8_linear"] = lin;
  if (md["version"] != "1") md["int4_linear"] = lin4;  // listed (maybe empty) from version 2 on
  if (!emb.empty()) md["quantized_embedding"] = emb;
  md["qat_attention"] = att;
  nn::NamedTensors tensors;
  for (const auto& [k, t] : model.state_dict()) tensors.emplace_back(k, t);
  nn::save_safetensors(path, tensors, md);
}

nn::Metadata load_int8(const std::string& path, nn::Module& skeleton) {
  nn::SafeTensorsFile f = nn::load_safetensors(path);
  auto meta = [&](const std::string& k) -> const std::string& {
    auto it = f.metadata.find(k);
    if (it == f.metadata.end())
      throw Error("load_int8: " + path + ": metadata has no '" + k + "'; not a quench int8 checkpoint");
    return it->second;
  };
  QUENCH_CHECK(meta("format") == "quench-int8", "load_int8: ", path, ": format is '", meta("format"),
               "', expected 'quench-int8' (an FP32 checkpoint loads with load_state_dict instead)");
  const std::string version = meta("version");
  QUENCH_CHECK(version == "1" || version == "2" || version == "3", "load_int8: ", path, ": unsupported version '",
               version, "' (this build reads 1 to 3)");
  for (const std::string& e : split(meta("qat_attention"), ';')) {
    auto p = split(e, ':');
    QUENCH_CHECK(p.size() == 8, "load_int8: ", path, ": malformed qat_attention entry '", e, "'");
    nn::ModulePtr a = skeleton.get_submodule(p[0]);
    const int64_t kind = to_int(p[1], "observer of " + p[0], path);
    QUENCH_CHECK(kind >= 0 && kind <= 2, "load_int8: ", path, ": unknown observer kind ", kind, " for ", p[0]);
    QConfig qc;
    qc.activation_observer = static_cast<ObserverKind>(kind);
    qc.activation.bits = static_cast<int>(to_int(p[2], "bits", path));
    qc.activation.is_signed = to_int(p[3], "signed", path) != 0;
    qc.activation.symmetric = to_int(p[4], "symmetric", path) != 0;
    qc.activation.quant_min = to_int(p[5], "qmin", path);
    qc.activation.quant_max = to_int(p[6], "qmax", path);
    qc.learnable_scale = to_int(p[7], "learnable", path) != 0;
    nn::ModulePtr qa = make_qat_attention(*a, qc);
    QUENCH_CHECK(qa != nullptr, "load_int8: ", path, ": '", p[0], "' is a ", a->type_name(),
                 ", not an attention module (Attention, BertSelfAttention) in the model");
    skeleton.set_submodule(p[0], qa);
  }
  std::vector<std::pair<std::string, std::shared_ptr<Int8Linear>>> lins;
  for (const std::string& e : split(meta("int8_linear"), ';')) {
    auto p = split(e, ':');
    QUENCH_CHECK(p.size() == 6, "load_int8: ", path, ": malformed int8_linear entry '", e, "'");
    const int64_t in = to_int(p[1], "in of " + p[0], path), out = to_int(p[2], "out of " + p[0], path);
    auto l = std::dynamic_pointer_cast<nn::Linear>(skeleton.get_submodule(p[0]));
    QUENCH_CHECK(l != nullptr, "load_int8: ", path, ": '", p[0], "' is not a Linear in the model");
    QUENCH_CHECK(l->in_features == in && l->out_features == out && l->bias.defined() == (p[3] == "1"),
                 "load_int8: ", path, ": '", p[0], "' is Linear(", l->in_features, ", ", l->out_features,
                 ") in the model but Linear(", in, ", ", out, ") in the file");
    auto q = std::make_shared<Int8Linear>(in, out, p[3] == "1", static_cast<int32_t>(to_int(p[4], "qmin", path)),
                                          static_cast<int32_t>(to_int(p[5], "qmax", path)));
    skeleton.set_submodule(p[0], q);
    lins.emplace_back(p[0], q);
  }
  std::vector<std::pair<std::string, std::shared_ptr<Int4Linear>>> lins4;
  if (version != "1") {
    for (const std::string& e : split(meta("int4_linear"), ';')) {
      auto p = split(e, ':');
      QUENCH_CHECK(p.size() == 7, "load_int8: ", path, ": malformed int4_linear entry '", e,
                   "' (expected name:in:out:bias:bits:group_size:per_token)");
      const int64_t in = to_int(p[1], "in of " + p[0], path), out = to_int(p[2], "out of " + p[0], path);
      auto l = std::dynamic_pointer_cast<nn::Linear>(skeleton.get_submodule(p[0]));
      QUENCH_CHECK(l != nullptr, "load_int8: ", path, ": '", p[0], "' is not a Linear in the model");
      QUENCH_CHECK(l->in_features == in && l->out_features == out && l->bias.defined() == (p[3] == "1"),
                   "load_int8: ", path, ": '", p[0], "' is Linear(", l->in_features, ", ", l->out_features,
                   ") in the model but Linear(", in, ", ", out, ") in the file");
      std::shared_ptr<Int4Linear> q;
      try {
        q = std::make_shared<Int4Linear>(in, out, p[3] == "1", to_int(p[5], "group_size of " + p[0], path),
                                         to_int(p[6], "per_token of " + p[0], path) != 0,
                                         static_cast<int>(to_int(p[4], "bits of " + p[0], path)));
      } catch (const Error& err) {
        throw Error("load_int8: " + path + ": '" + p[0] + "': " + err.what());
      }
      skeleton.set_submodule(p[0], q);
      lins4.emplace_back(p[0], q);
    }
  }
  std::vector<std::pair<std::string, std::shared_ptr<QuantizedEmbedding>>> embs;
  if (version == "3") {
    for (const std::string& e : split(meta("quantized_embedding"), ';')) {
      auto p = split(e, ':');
      QUENCH_CHECK(p.size() == 6, "load_int8: ", path, ": malformed quantized_embedding entry '", e,
                   "' (expected name:num:dim:padding_idx:bits:group_size)");
      const int64_t num = to_int(p[1], "num of " + p[0], path), dim = to_int(p[2], "dim of " + p[0], path);
      const int64_t pad = to_int(p[3], "padding_idx of " + p[0], path);
      const int64_t bits = to_int(p[4], "bits of " + p[0], path);
      QUENCH_CHECK(bits >= 2 && bits <= 8, "load_int8: ", path, ": '", p[0], "': codes of 2..8 bits, got ", bits);
      nn::ModulePtr m;
      try {
        m = skeleton.get_submodule(p[0]);
      } catch (const Error& err) {
        throw Error("load_int8: " + path + ": quantized_embedding entry '" + p[0] + "': " + err.what());
      }
      auto fp = std::dynamic_pointer_cast<nn::Embedding>(m);
      QUENCH_CHECK(fp != nullptr, "load_int8: ", path, ": '", p[0], "' is not an Embedding in the model");
      QUENCH_CHECK(fp->num_embeddings == num && fp->embedding_dim == dim && fp->padding_idx == pad, "load_int8: ",
                   path, ": '", p[0], "' is Embedding(", fp->num_embeddings, ", ", fp->embedding_dim, ", padding_idx=",
                   fp->padding_idx, ") in the model but Embedding(", num, ", ", dim, ", padding_idx=", pad,
                   ") in the file");
      std::shared_ptr<QuantizedEmbedding> q;
      try {
        q = std::make_shared<QuantizedEmbedding>(num, dim, static_cast<int>(bits),
                                                 to_int(p[5], "group_size of " + p[0], path), pad);
      } catch (const Error& err) {
        throw Error("load_int8: " + path + ": '" + p[0] + "': " + err.what());
      }
      skeleton.set_submodule(p[0], q);
      embs.emplace_back(p[0], q);
    }
  }
  QUENCH_CHECK(!lins.empty() || !lins4.empty() || !embs.empty(), "load_int8: ", path,
               ": no int8_linear, int4_linear or quantized_embedding layers listed");
  std::map<std::string, Tensor> expected;
  for (const auto& [k, t] : skeleton.state_dict()) expected[k] = t;
  nn::check_state_dict(expected, f.tensors, "load_int8: " + path);
  skeleton.load_state_dict(nn::StateDict(f.tensors));
  for (auto& [name, l] : lins) l->validate("load_int8: " + path + ": '" + name + "'");
  for (auto& [name, l] : lins4) l->validate("load_int8: " + path + ": '" + name + "'");
  for (auto& [name, e] : embs) e->validate("load_int8: " + path + ": '" + name + "'");
  freeze_observers(skeleton);
  enable_fake_quant(skeleton, true);
  fuse_int8_mlps(skeleton);  // the fast paths quant::convert installs
  fuse_int8_blocks(skeleton);
  fuse_int8_bert_layers(skeleton);
  skeleton.eval();
  return f.metadata;
}

std::string vit_config_str(const nn::ViTConfig& c) {
  char eps[64];
  std::snprintf(eps, sizeof eps, "%.17g", c.eps);
  return "img=" + std::to_string(c.img) + " patch=" + std::to_string(c.patch) + " chans=" + std::to_string(c.chans) +
         " dim=" + std::to_string(c.dim) + " depth=" + std::to_string(c.depth) + " heads=" + std::to_string(c.heads) +
         " hidden=" + std::to_string(c.hidden) + " classes=" + std::to_string(c.classes) + " eps=" + eps;
}

nn::ViTConfig parse_vit_config(const std::string& s) {
  std::map<std::string, std::string> kv;
  for (const std::string& item : split(s, ' ')) {
    const size_t eq = item.find('=');
    QUENCH_CHECK(eq != std::string::npos, "parse_vit_config: expected key=value, got '", item, "' in '", s, "'");
    kv[item.substr(0, eq)] = item.substr(eq + 1);
  }
  nn::ViTConfig c;
  auto get = [&](const char* k) -> const std::string& {
    auto it = kv.find(k);
    QUENCH_CHECK(it != kv.end(), "parse_vit_config: missing '", k, "' in '", s, "'");
    return it->second;
  };
  for (auto [k, dst] : {std::pair{"img", &c.img}, {"patch", &c.patch}, {"chans", &c.chans}, {"dim", &c.dim},
                        {"depth", &c.depth}, {"heads", &c.heads}, {"hidden", &c.hidden}, {"classes", &c.classes}})
    *dst = to_int(get(k), k, "vit_config");
  try {
    c.eps = std::stod(get("eps"));
  } catch (const std::invalid_argument&) {
    throw Error("parse_vit_config: eps is not a number: '" + get("eps") + "'");
  }
  return c;
}

void save_int8_vit(const std::string& path, nn::ViT& model, const nn::Metadata& extra) {
  nn::Metadata md = extra;
  md["model"] = "vit";
  md["vit_config"] = vit_config_str(model.cfg);
  save_int8(path, model, md);
}

std::shared_ptr<nn::ViT> load_int8_vit(const std::string& path) {
  nn::SafeTensorsFile f = nn::load_safetensors(path);
  auto it = f.metadata.find("vit_config");
  QUENCH_CHECK(f.metadata.count("model") && f.metadata.at("model") == "vit" && it != f.metadata.end(),
               "load_int8_vit: ", path, ": metadata does not describe a ViT (model / vit_config missing)");
  auto vit = std::make_shared<nn::ViT>(parse_vit_config(it->second));
  load_int8(path, *vit);
  return vit;
}

void save_int8_bert(const std::string& path, nn::BertForSequenceClassification& model, const nn::Metadata& extra) {
  nn::Metadata md = extra;
  md["model"] = "bert";
  md["config"] = model.cfg.to_json().dump();
  save_int8(path, model, md);
}

std::shared_ptr<nn::BertForSequenceClassification> load_int8_bert(const std::string& path) {
  nn::SafeTensorsFile f = nn::load_safetensors(path);
  auto it = f.metadata.find("config");
  QUENCH_CHECK(f.metadata.count("model") && f.metadata.at("model") == "bert" && it != f.metadata.end(),
               "load_int8_bert: ", path, ": metadata does not describe a BERT (model / config missing)");
  nlohmann::json j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  QUENCH_CHECK(!j.is_discarded(), "load_int8_bert: ", path, ": the config metadata is not valid JSON");
  nn::BertConfig cfg;
  try {
    cfg = nn::BertConfig::from_json(j);
  } catch (const Error& e) {
    QUENCH_CHECK(false, "load_int8_bert: ", path, ": ", e.what());
  }
  auto bert = std::make_shared<nn::BertForSequenceClassification>(cfg);
  load_int8(path, *bert);
  return bert;
}

}  // namespace quench::quant
