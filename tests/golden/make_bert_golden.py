"""Golden forward/backward of a small random BERT (tests/golden/bert_reference.py, HF's names) on a
padded batch of token pairs, for tests/test_bert.cpp. Run from the repository root:
  /usr/bin/python3 tests/golden/make_bert_golden.py
Writes tests/golden/bert_golden.safetensors (fixed seed; a rerun reproduces it byte for byte):
  sd.<key>         the state_dict (HF init, seed 0), every key of BertForSequenceClassification
  input_ids, attention_mask, token_type_ids, labels   int32 [3, 10] (rows 2 and 3 padded), labels [3]
  logits, loss     eval-mode forward output and mean cross-entropy
  grad.<key>       d loss / d parameter for every parameter
  hidden.<i>       the output of encoder layer i [3, 10, H]; probs.<i> its attention probabilities
  config           the config.json text (metadata key "config")
"""
import json, os, sys
import torch, torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from bert_reference import BertConfig, BertForSequenceClassification  # noqa: E402
from safetensors_writer import save  # noqa: E402

CFG = dict(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
           max_position_embeddings=16, type_vocab_size=2, num_labels=3, pad_token_id=0, layer_norm_eps=1e-12)
torch.manual_seed(0)
cfg = BertConfig(**CFG)
m = BertForSequenceClassification(cfg).eval()
# Each row: [CLS]=2 a.. [SEP]=3 b.. [SEP] then [PAD]=0; types 0 for the first segment, 1 for the second.
lengths = [(4, 3), (3, 2), (2, 1)]
B, N = len(lengths), 10
ids = torch.zeros(B, N, dtype=torch.int32)
types = torch.zeros(B, N, dtype=torch.int32)
mask = torch.zeros(B, N, dtype=torch.int32)
g = torch.Generator().manual_seed(1)
for r, (a, b) in enumerate(lengths):
    toks = [2] + torch.randint(5, CFG["vocab_size"], (a,), generator=g).tolist() + [3]
    toks += torch.randint(5, CFG["vocab_size"], (b,), generator=g).tolist() + [3]
    ids[r, :len(toks)] = torch.tensor(toks, dtype=torch.int32)
    types[r, a + 2:len(toks)] = 1
    mask[r, :len(toks)] = 1
labels = torch.tensor([2, 0, 1], dtype=torch.int32)

hidden = {}
for i, layer in enumerate(m.bert.encoder.layer):
    layer.register_forward_hook(lambda mod, inp, out, i=i: hidden.__setitem__(i, out.detach()))
logits = m(ids.long(), mask.long(), types.long())
loss = F.cross_entropy(logits, labels.long())
loss.backward()

out = [(f"sd.{k}", v) for k, v in m.state_dict().items()]
out += [("input_ids", ids), ("attention_mask", mask), ("token_type_ids", types), ("labels", labels)]
out += [("logits", logits), ("loss", loss.reshape(1))]
out += [(f"grad.{k}", p.grad) for k, p in m.named_parameters()]
for i, layer in enumerate(m.bert.encoder.layer):
    out += [(f"hidden.{i}", hidden[i]), (f"probs.{i}", layer.attention.self.probs.detach())]
names = [k for k, _ in out]
assert len(set(names)) == len(names)
save(os.path.join(here, "bert_golden.safetensors"), dict(out),
     {"torch": torch.__version__, "script": "tests/golden/make_bert_golden.py", "config": json.dumps(CFG)})
