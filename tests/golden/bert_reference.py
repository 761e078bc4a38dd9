"""A plain-PyTorch BERT for sequence classification with Hugging Face's module names and numerics
(transformers' modeling_bert.py, absolute positions, no cache, no cross-attention), so its state_dict
has the keys of BertForSequenceClassification and an HF checkpoint loads into it, and back.

  cfg = BertConfig(vocab_size=..., hidden_size=..., ...)   # config.json's field names
  model = BertForSequenceClassification(cfg)
  logits = model(input_ids, attention_mask, token_type_ids)  # [B, num_labels]

Used by tests/golden/make_bert_golden.py. Run as a script it is the PyTorch anchor of bench/bench_bert
(bench/model_rounds.py --model bert runs both in alternating rounds): BERT-small (4 layers, hidden 256,
4 heads, intermediate 1024, vocabulary 8000), batch 32 of 128 tokens, one AdamW training step, FP32
inference and int8 dynamic quantization (torch.ao quantize_dynamic, Linear layers) on oneDNN (and FBGEMM
where this PyTorch build has it):

  /usr/bin/python3 tests/golden/bert_reference.py --threads 2
"""
import argparse, math, time
from dataclasses import dataclass, field

import torch
import torch.nn as nn


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    num_labels: int = 2
    pad_token_id: int = 0
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    id2label: dict = field(default_factory=dict)

    @staticmethod
    def from_dict(d):
        keys = BertConfig.__dataclass_fields__.keys()
        c = BertConfig(**{k: v for k, v in d.items() if k in keys and k != "id2label"})
        if "id2label" in d:
            c.id2label = {int(k): v for k, v in d["id2label"].items()}
            c.num_labels = len(c.id2label)
        return c


class BertEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)
        self.register_buffer("position_ids", torch.arange(c.max_position_embeddings).expand((1, -1)),
                             persistent=False)

    def forward(self, input_ids, token_type_ids):
        n = input_ids.shape[1]
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(self.position_ids[:, :n])
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(c.attention_probs_dropout_prob)
        self.probs = None  # the last call's probabilities (before dropout), for the golden files

    def split(self, x):  # [B, N, H] -> [B, heads, N, hd]
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, h, extended_mask):
        q, k, v = self.split(self.query(h)), self.split(self.key(h)), self.split(self.value(h))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        if extended_mask is not None:
            scores = scores + extended_mask
        probs = nn.functional.softmax(scores, dim=-1)
        self.probs = probs
        ctx = torch.matmul(self.dropout(probs), v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(h.shape)


class BertResidualOutput(nn.Module):  # BertSelfOutput and BertOutput
    def __init__(self, c, d_in):
        super().__init__()
        self.dense = nn.Linear(d_in, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, x, residual):
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertResidualOutput(c, c.hidden_size)

    def forward(self, x, extended_mask):
        return self.output(self.self(x, extended_mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.intermediate_act_fn = nn.GELU()

    def forward(self, x):
        return self.intermediate_act_fn(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertResidualOutput(c, c.intermediate_size)

    def forward(self, x, extended_mask):
        h = self.attention(x, extended_mask)
        return self.output(self.intermediate(h), h)


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c.num_hidden_layers)])

    def forward(self, x, extended_mask):
        for layer in self.layer:
            x = layer(x, extended_mask)
        return x


class BertPooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden):
        return self.activation(self.dense(hidden[:, 0]))


class BertModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        extended = None
        if attention_mask is not None:
            # HF's get_extended_attention_mask: (1 - mask) * finfo.min, broadcast over heads and queries.
            m = attention_mask[:, None, None, :].to(torch.float32)
            extended = (1.0 - m) * torch.finfo(torch.float32).min
        hidden = self.encoder(self.embeddings(input_ids, token_type_ids), extended)
        return hidden, self.pooler(hidden)


class BertForSequenceClassification(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.bert = BertModel(c)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)
        self.classifier = nn.Linear(c.hidden_size, c.num_labels)
        self.apply(self._init_weights)

    def _init_weights(self, m):  # HF's BertPreTrainedModel._init_weights
        std = self.config.initializer_range
        if isinstance(m, nn.Linear):
            m.weight.data.normal_(mean=0.0, std=std)
            if m.bias is not None:
                m.bias.data.zero_()
        elif isinstance(m, nn.Embedding):
            m.weight.data.normal_(mean=0.0, std=std)
            if m.padding_idx is not None:
                m.weight.data[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            m.bias.data.zero_()
            m.weight.data.fill_(1.0)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        _, pooled = self.bert(input_ids, attention_mask, token_type_ids)
        return self.classifier(self.dropout(pooled))


def _bench(f, warm=3, secs=3.0):
    for _ in range(warm):
        f()
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < secs:
        f()
        n += 1
    return (time.perf_counter() - t0) / n


def main():
    import torch.nn.functional as F
    ap = argparse.ArgumentParser(description="BERT-small step and inference times (the bench_bert anchor)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = BertConfig(vocab_size=8000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                   intermediate_size=1024, max_position_embeddings=a.seq, num_labels=2)
    m = BertForSequenceClassification(c)
    ids = torch.randint(1, c.vocab_size, (a.batch, a.seq))
    mask, types = torch.ones_like(ids), torch.zeros_like(ids)
    y = torch.randint(0, 2, (a.batch,))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        F.cross_entropy(m(ids, mask, types), y).backward()
        opt.step()

    m.train()
    print(f"torch threads={a.threads} batch={a.batch} seq={a.seq} params={sum(p.numel() for p in m.parameters())}")
    print(f"train_step_ms={_bench(step) * 1e3:.1f}")
    m.eval()
    with torch.no_grad():
        print(f"fp32_infer_ms={_bench(lambda: m(ids, mask, types)) * 1e3:.2f}")
        for engine in [e for e in ("onednn", "fbgemm") if e in torch.backends.quantized.supported_engines]:
            torch.backends.quantized.engine = engine
            q = torch.ao.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)
            print(f"int8_dynamic_{engine}_infer_ms={_bench(lambda: q(ids, mask, types)) * 1e3:.2f}")


if __name__ == "__main__":
    main()
