"""BERT checkpoints between PyTorch and quench, both ways, through Hugging Face's folder layout
(config.json, model.safetensors, vocab.txt, tokenizer_config.json), on a padded test set:

  1. PyTorch -> quench: a random-weight BertForSequenceClassification (tests/golden/bert_reference.py,
     HF's names) saved by PyTorch as an HF folder, evaluated by `quench eval FOLDER --logits`; its logits
     must be PyTorch's.
  2. quench -> PyTorch: a BERT trained by `quench train --task text`, written by `quench export`, loaded
     into the PyTorch reference with load_state_dict(strict=True); PyTorch's logits must be quench's.

  /usr/bin/python3 tests/golden/bert_interop.py build/tools/quench

Prints one line per direction with the largest logit difference and exits non-zero when one exceeds
1e-4 relative to the largest logit, or when a prediction differs. Needs PyTorch (tools/setup.sh --torch).
The texts are lower-case words of the vocabulary separated by spaces, so tokenizing them is a lookup
and PyTorch gets exactly the ids quench's WordPiece tokenizer produces.
"""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bert_reference import BertConfig, BertForSequenceClassification  # noqa: E402
import safetensors_writer  # noqa: E402

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [["free", "cash", "prize", "offer", "winner", "click"], ["meeting", "report", "lunch", "team", "agenda", "notes"],
         ["the", "a", "to", "and", "of", "we", "you", "this"]]
MAX_LENGTH = 24


def corpus(n, seed):
    """n rows of (text, label): words of the label's topic mixed with filler, unequal lengths."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(WORDS[label] if rng.random() < 0.5 else WORDS[2]) for _ in range(rng.randint(3, 30))]
        rows.append((" ".join(words), ["spam", "ham"][label]))
    return rows


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write("text,label\n")
        for t, l in rows:
            f.write(f"{t},{l}\n")


def encode(rows, vocab):
    """[CLS] words [SEP], truncated to MAX_LENGTH, padded to the longest row: ids, mask, type ids."""
    ids = [[vocab.index("[CLS]")] + [vocab.index(w) for w in t.split()][: MAX_LENGTH - 2] + [vocab.index("[SEP]")]
           for t, _ in rows]
    n = max(len(r) for r in ids)
    input_ids = torch.tensor([r + [0] * (n - len(r)) for r in ids], dtype=torch.long)
    mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in ids], dtype=torch.long)
    return input_ids, mask, torch.zeros_like(input_ids)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", f"{path}: {name} is {e['dtype']}"
        a, b = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).reshape(e["shape"]).copy())
    return out


def read_npy(path):
    return torch.from_numpy(np.load(path))


def compare(what, ours, theirs):
    diff = (ours - theirs).abs().max().item()
    scale = max(theirs.abs().max().item(), 1e-6)
    same_class = bool((ours.argmax(1) == theirs.argmax(1)).all())
    ok = diff <= 1e-4 * scale and same_class
    print(f"{what}: {theirs.shape[0]} texts, largest logit difference {diff:.3g} (of {scale:.3g}), "
          f"predictions {'equal' if same_class else 'DIFFER'}: {'ok' if ok else 'FAILED'}")
    return ok


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bert_interop.py PATH/TO/quench")
    quench = os.path.abspath(sys.argv[1])
    torch.manual_seed(0)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        train, test = os.path.join(tmp, "train.csv"), os.path.join(tmp, "test.csv")
        train_rows, test_rows = corpus(160, 1), corpus(57, 2)
        write_csv(train, train_rows)
        write_csv(test, test_rows)
        data = ["--data", train, "--test-data", test]

        # 1. PyTorch -> quench.
        vocab = SPECIALS + sorted({w for ws in WORDS for w in ws})
        cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=MAX_LENGTH, id2label={0: "ham", 1: "spam"})
        model = BertForSequenceClassification(cfg).eval()
        with torch.no_grad():  # weights far from HF's small init, so the logits are large and varied
            for name, p in model.named_parameters():
                p.copy_(1 + 0.1 * torch.randn_like(p) if "LayerNorm.weight" in name else 0.3 * torch.randn_like(p))
        hf = os.path.join(tmp, "from_torch")
        os.makedirs(hf)
        config = {"architectures": ["BertForSequenceClassification"], "model_type": "bert",
                  **{k: getattr(cfg, k) for k in BertConfig.__dataclass_fields__ if k != "id2label"},
                  "hidden_act": "gelu", "id2label": {str(k): v for k, v in cfg.id2label.items()},
                  "label2id": {v: k for k, v in cfg.id2label.items()}}
        with open(os.path.join(hf, "config.json"), "w") as f:
            json.dump(config, f)
        safetensors_writer.save(os.path.join(hf, "model.safetensors"), dict(model.state_dict()), {"format": "pt"},
                                layout="hf")
        with open(os.path.join(hf, "vocab.txt"), "w") as f:
            f.write("\n".join(vocab) + "\n")
        with open(os.path.join(hf, "tokenizer_config.json"), "w") as f:
            json.dump({"do_lower_case": True, "model_max_length": MAX_LENGTH}, f)
        npy = os.path.join(tmp, "quench_logits.npy")
        subprocess.run([quench, "eval", hf, *data, "--logits", npy], check=True, stdout=subprocess.DEVNULL)
        # quench's classes are config.json's id2label; the test labels are the csv's
        with torch.no_grad():
            theirs = model(*encode(test_rows, vocab))
        ok &= compare("PyTorch -> quench (random BERT saved by PyTorch, run by quench eval)", read_npy(npy), theirs)

        # 2. quench -> PyTorch.
        run = os.path.join(tmp, "run")
        subprocess.run([quench, "train", *data, "--vocab", os.path.join(hf, "vocab.txt"), "--max-length",
                        str(MAX_LENGTH), "--depth", "2", "--dim", "32", "--heads", "4", "--hidden", "64", "--epochs", "6", "-b", "16",
                        "--lr", "3e-3", "-q", "--out", run], check=True, stdout=subprocess.DEVNULL)
        exported = os.path.join(tmp, "exported")
        subprocess.run([quench, "export", os.path.join(run, "best.safetensors"), "--out", exported], check=True,
                       stdout=subprocess.DEVNULL)
        with open(os.path.join(exported, "config.json")) as f:
            cfg2 = BertConfig.from_dict(json.load(f))
        with open(os.path.join(exported, "vocab.txt")) as f:
            vocab2 = f.read().split("\n")[:-1]
        model2 = BertForSequenceClassification(cfg2).eval()
        model2.load_state_dict(read_safetensors(os.path.join(exported, "model.safetensors")), strict=True)
        subprocess.run([quench, "eval", os.path.join(run, "best.safetensors"), *data, "--logits", npy], check=True,
                       stdout=subprocess.DEVNULL)
        with torch.no_grad():
            theirs = model2(*encode(test_rows, vocab2))
        ok &= compare("quench -> PyTorch (BERT trained by quench, exported, load_state_dict strict)", read_npy(npy),
                      theirs)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
