#!/usr/bin/env python3
"""How fast a mainstream f32 BERT forward is on this CPU: the yardstick for `bench`'s baseline.

BERT-base (or --config minilm / bert-large) on random weights, in numpy float32 with its BLAS
(OpenBLAS, which picks its kernels for the CPU at run time), on one thread, as `bench`'s
`Plain<f32>` runs: embeddings and LayerNorm; per layer a fused QKV product, softmax attention,
the output projection, residual and LayerNorm, the tanh GeLU feed-forward, residual and
LayerNorm. Prints the median and range of seven timed forwards (after one warm-up), and of the
matrix products alone; with --json, one JSON line. Compare with `plaintext_s` of
`mpcformer bench --json` on the same machine: a baseline slower than this one flatters every
ratio the bench reports.

    pip install numpy
    OPENBLAS_NUM_THREADS=1 python3 scripts/mainstream-bert.py [--seq 128] [--config bert-base] [--json]
"""
import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402  (after the thread setting, which OpenBLAS reads as it loads)

CONFIGS = {"bert-base": (12, 768, 12, 3072), "bert-large": (24, 1024, 16, 4096), "minilm": (6, 384, 12, 1536)}
VOCAB, POSITIONS, RUNS = 30522, 512, 7


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="bert-base", choices=sorted(CONFIGS))
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    layers_n, h, heads, ffn = CONFIGS[args.config]
    s, d, f = args.seq, h // heads, np.float32
    rng = np.random.default_rng(0)

    def w(*shape):
        return rng.standard_normal(shape, dtype=f) * 0.02

    emb, pos = w(VOCAB, h), w(POSITIONS, h)
    layers = [
        dict(qkv=w(h, 3 * h), bqkv=w(3 * h), o=w(h, h), bo=w(h), f1=w(h, ffn), b1=w(ffn), f2=w(ffn, h), b2=w(h),
             g1=np.ones(h, f), be1=np.zeros(h, f), g2=np.ones(h, f), be2=np.zeros(h, f))
        for _ in range(layers_n)
    ]
    toks = rng.integers(0, VOCAB, s)

    def layer_norm(x, g, b):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + f(1e-12)) * g + b

    def gelu(x):
        return f(0.5) * x * (f(1) + np.tanh(f(0.7978845608) * (x + f(0.044715) * x * x * x)))

    def heads_of(x):
        return x.reshape(s, heads, d).transpose(1, 0, 2)

    def forward():
        x = layer_norm(emb[toks] + pos[:s], np.ones(h, f), np.zeros(h, f))
        for p in layers:
            qkv = x @ p["qkv"] + p["bqkv"]
            q, k, v = (heads_of(qkv[:, i * h:(i + 1) * h]) for i in range(3))
            scores = q @ k.transpose(0, 2, 1) * f(1 / np.sqrt(d))
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(s, h)
            x = layer_norm(x + context @ p["o"] + p["bo"], p["g1"], p["be1"])
            x = layer_norm(x + gelu(x @ p["f1"] + p["b1"]) @ p["f2"] + p["b2"], p["g2"], p["be2"])
        return x

    def products():
        # The same matrix products on the same shapes, nothing else.
        x = np.full((s, h), 0.01, f)
        for p in layers:
            qkv = x @ p["qkv"]
            q, k, v = (heads_of(qkv[:, i * h:(i + 1) * h]) for i in range(3))
            context = ((q @ k.transpose(0, 2, 1)) @ v).transpose(1, 0, 2).reshape(s, h)
            context @ p["o"]
            (x @ p["f1"]) @ p["f2"]

    def timed(run):
        run()
        runs = []
        for _ in range(RUNS):
            t = time.perf_counter()
            run()
            runs.append(time.perf_counter() - t)
        return runs

    full, products = timed(forward), timed(products)
    report = {
        "config": args.config, "seq": s, "cpu": cpu_model(), "numpy": np.__version__,
        "forward_s": statistics.median(full), "forward_range_s": [min(full), max(full)],
        "products_s": statistics.median(products),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.config}, {s} tokens, numpy {np.__version__} f32, one thread, {report['cpu']}: forward "
              f"{report['forward_s']:.3f} s [{min(full):.3f}, {max(full):.3f}], of it the products "
              f"{report['products_s']:.3f} s")


if __name__ == "__main__":
    main()
