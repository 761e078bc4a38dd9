#!/usr/bin/python3
"""Whole-model speed against PyTorch, in alternating rounds, as docs/performance.md reports it.

Each round runs, in turn:
  1. the PyTorch anchor (tests/golden/vit_reference.py) with OpenBLAS as shipped;
  2. the same with OPENBLAS_CORETYPE=SkylakeX (OpenBLAS's AVX-512 kernels, the stronger anchor on a CPU
     OpenBLAS 0.3.21 does not know, such as Zen 5);
  3. build/bench/bench_model: the training, QAT and distillation steps and FP32 inference;
  4. build/bench/bench_qat: int8 inference (fused and unfused conversion) and FP32 inference.
With --model bert the anchor is tests/golden/bert_reference.py and the engine side build/bench/bench_bert
(BERT-small: training step, FP32 and int8 inference; int8 against PyTorch's dynamic int8 on oneDNN).
Then it prints, per quantity, the median over the rounds, the ratio of medians and the median of the
per-round ratios (each round's quench time over the same round's PyTorch time, which cancels most of a
virtual machine's drift). Run from the repository root after building:

  /usr/bin/python3 bench/model_rounds.py --rounds 10
  /usr/bin/python3 bench/model_rounds.py --model bert --rounds 5
"""
import argparse, json, os, platform, statistics, subprocess, sys

ANCHOR = "tests/golden/vit_reference.py"
MODEL_FILTER = "^vit_(train_step|qat_train_step|distill_train_step|infer_fp32)/engine/min"
QAT_FILTER = "^vit_infer_(int8|int8_unfused|fp32)/engine/(128|1)$"


def run(cmd, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"model_rounds: {' '.join(cmd)} failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
    return r.stdout


def torch_round(python, threads, coretype, anchor=ANCHOR):
    env = {"OPENBLAS_CORETYPE": coretype} if coretype else {}
    out = run([python, anchor, "--threads", str(threads)], env)
    vals = {}
    for line in out.splitlines():
        if "=" in line and line.split("=")[0].endswith("_ms"):
            k, v = line.split("=")
            vals[k] = float(v)
    return vals


def bench_round(binary, flt, threads):
    out = run([binary, f"--benchmark_filter={flt}", "--benchmark_format=json"],
              {"QUENCH_NUM_THREADS": str(threads)})
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    vals = {}
    for b in json.loads(out)["benchmarks"]:
        name = b["name"].split("/min_time")[0]
        vals[name] = b["real_time"] * scale[b["time_unit"]]
    return vals


# (row, quench key, PyTorch key or None)
ROWS = [
    ("training step", "vit_train_step/engine", "train_step_ms"),
    ("FP32 inference", "vit_infer_fp32/engine", "fp32_infer_ms"),
    ("int8 inference (fused blocks)", "vit_infer_int8/engine/128", "int8_dynamic_onednn_infer_ms"),
    ("int8 inference (unfused)", "vit_infer_int8_unfused/engine/128", None),
    ("int8 batch 1", "vit_infer_int8/engine/1", None),
    ("FP32 batch 1", "vit_infer_fp32/engine/1", None),
    ("QAT training step", "vit_qat_train_step/engine", None),
    ("QAT + distillation step", "vit_distill_train_step/engine", None),
]


BERT_ANCHOR = "tests/golden/bert_reference.py"
BERT_FILTER = "^bert_(train_step|infer_fp32|infer_int8)/engine/min"
BERT_ROWS = [
    ("BERT training step", "bert_train_step/engine", "train_step_ms"),
    ("BERT FP32 inference", "bert_infer_fp32/engine", "fp32_infer_ms"),
    ("BERT int8 inference", "bert_infer_int8/engine", "int8_dynamic_onednn_infer_ms"),
]


def table(rows, rounds):
    med = statistics.median
    print("| quench | median | PyTorch SkylakeX | ratio | per-round ratio | PyTorch as shipped | ratio |")
    print("|---|---|---|---|---|---|---|")
    for label, qk, tk in rows:
        qs = [r["quench"][qk] for r in rounds]
        line = f"| {label} | {med(qs):.2f} ms |"
        if tk:
            for side in ("skylakex", "shipped"):
                ts = [r[side][tk] for r in rounds]
                line += f" {med(ts):.2f} ms | {med(qs) / med(ts):.3f}x |"
                if side == "skylakex":
                    line += f" {med([q / t for q, t in zip(qs, ts)]):.3f}x |"
        else:
            line += " | | | | |"
        print(line)


def header(a):
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    print(f"commit {commit}, {cpu}, {a.threads} threads, {a.rounds} rounds")


def bert_main(a):
    binary = f"{a.build}/bench/bench_bert"
    for b in (binary, BERT_ANCHOR):
        if not os.path.exists(b):
            sys.exit(f"model_rounds: {b} not found (run from the repository root after `ninja -C {a.build}`)")
    rounds = []
    for r in range(a.rounds):
        q = bench_round(binary, BERT_FILTER, a.threads)
        rounds.append({"shipped": torch_round(a.python, a.threads, None, BERT_ANCHOR),
                       "skylakex": torch_round(a.python, a.threads, "SkylakeX", BERT_ANCHOR), "quench": q})
        print(f"round {r + 1}/{a.rounds}: train {q['bert_train_step/engine']:.1f} ms "
              f"(PyTorch {rounds[-1]['skylakex']['train_step_ms']:.1f} ms)", file=sys.stderr, flush=True)
    header(a)
    table(BERT_ROWS, rounds)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default="build", help="meson build folder (default: build)")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter with python3-torch")
    ap.add_argument("--model", choices=("vit", "bert"), default="vit")
    a = ap.parse_args()
    if a.model == "bert":
        return bert_main(a)
    model_bin, qat_bin = f"{a.build}/bench/bench_model", f"{a.build}/bench/bench_qat"
    for b in (model_bin, qat_bin, ANCHOR):
        if not os.path.exists(b):
            sys.exit(f"model_rounds: {b} not found (run from the repository root after `ninja -C {a.build}`)")

    rounds = []
    for r in range(a.rounds):
        q = bench_round(model_bin, MODEL_FILTER, a.threads)
        q.update(bench_round(qat_bin, QAT_FILTER, a.threads))
        rounds.append({"shipped": torch_round(a.python, a.threads, None),
                       "skylakex": torch_round(a.python, a.threads, "SkylakeX"), "quench": q})
        print(f"round {r + 1}/{a.rounds}: train {q['vit_train_step/engine']:.1f} ms "
              f"(PyTorch {rounds[-1]['skylakex']['train_step_ms']:.1f} ms)", file=sys.stderr, flush=True)

    med = statistics.median
    header(a)
    table(ROWS, rounds)
    fp32 = [r["quench"]["vit_train_step/engine"] for r in rounds]
    for label, qk in (("QAT step / FP32 step", "vit_qat_train_step/engine"),
                      ("QAT + KD step / FP32 step", "vit_distill_train_step/engine")):
        print(f"{label}: {med([r['quench'][qk] / f for r, f in zip(rounds, fp32)]):.3f}x (per-round median)")
    ratio = [r["quench"]["vit_infer_int8/engine/128"] / r["quench"]["vit_infer_fp32/engine/128"] for r in rounds]
    print(f"int8 / our FP32 inference (bench_qat): {med(ratio):.3f}x (per-round median)")


if __name__ == "__main__":
    main()
