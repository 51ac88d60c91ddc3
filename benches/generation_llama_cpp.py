"""The peer for benches/generation.rs: llama.cpp through llama-cpp-python on
the same GGUF and prompt. Prints: prompt_tokens pp_tok_s gen_tok_s ttft_ms generated
(medians), measured the same way as the Rust side."""
import os
import statistics
import sys
import time

from llama_cpp import Llama

path, threads, runs, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
prompt = os.environ["RAGCHAT_BENCH_PROMPT"]
llm = Llama(model_path=path, n_ctx=4096, n_batch=512, n_ubatch=512, n_threads=threads,
            n_threads_batch=threads, verbose=False)
tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
eos = llm.token_eos()

pp, gen, ttft, generated = [], [], [], 0
for run in range(runs + 1):
    # Prompt processing alone.
    llm.reset()
    start = time.perf_counter()
    llm.eval(tokens)
    prompt_s = time.perf_counter() - start
    # A full greedy generation from scratch: time to first token and decode rate.
    llm.reset()
    start = time.perf_counter()
    times = []
    for token in llm.generate(tokens, temp=0.0, top_k=1, reset=True):
        times.append(time.perf_counter() - start)
        if token == eos or len(times) >= max_tokens:
            break
    if token == eos:
        times.pop()
    if run == 0:
        continue  # warm-up
    generated = len(times)
    pp.append(len(tokens) / prompt_s)
    ttft.append(times[0] * 1000)
    gen.append((len(times) - 1) / (times[-1] - times[0]))

print(len(tokens), statistics.median(pp), statistics.median(gen), statistics.median(ttft), generated)
