"""Python reference for benches/embed.rs: the same model file and tokenizer through
onnxruntime and tokenizers, the same threads, batches of 32 in corpus order, mean pooling and
L2 normalisation in numpy. Prints one JSON object: chunks/s over the corpus and the p50 of
single short-query calls. Usage: embed_reference.py MODEL TOKENIZER CORPUS.json THREADS QUERY"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

model, tok_path, corpus_path, threads, query = sys.argv[1:6]
opts = ort.SessionOptions()
opts.intra_op_num_threads = int(threads)
opts.inter_op_num_threads = 1
session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
tok = Tokenizer.from_file(tok_path)
tok.enable_truncation(max_length=256)
corpus = json.load(open(corpus_path))


def embed(texts):
    tok.enable_padding()
    enc = tok.encode_batch(texts)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    types = np.array([e.type_ids for e in enc], dtype=np.int64)
    hidden = session.run(
        ["last_hidden_state"],
        {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
    )[0]
    m = mask[:, :, None].astype(np.float32)
    pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


embed(corpus[:32])
start = time.perf_counter()
for i in range(0, len(corpus), 32):
    embed(corpus[i : i + 32])
rate = len(corpus) / (time.perf_counter() - start)

for _ in range(20):
    embed([query])
times = []
for _ in range(200):
    t = time.perf_counter()
    embed([query])
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print(json.dumps({"chunks_per_sec": rate, "single_p50_ms": times[len(times) // 2]}))
