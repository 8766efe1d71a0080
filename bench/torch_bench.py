#!/usr/bin/python3
"""PyTorch reference for `ftengine bench`: the same shapes, batch and steps,
full fine-tuning with AdamW or LoRA (frozen base, adapters on every linear
layer of the blocks), eager mode as Hugging Face runs on a CPU.

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_bench.py \
        --preset smollm-135m --batch 4 --seq 256 --steps 3 [--lora-rank 16] [--json]

Prints tokens/s, ms/step and peak RSS (one JSON line with --json).  With
--eval, `ftengine bench --eval`'s counterpart: the batched loss under
torch.no_grad and greedy generation at batch 1 with a KV cache (--prompt
tokens, then --new), for a preset or a llama2.c checkpoint's shape
(--llama2c PATH; the weights are random, which does not change the time).
"""
import argparse
import json
import math
import resource
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "smollm-135m": dict(arch="llama", layers=30, dim=576, heads=9, kv_heads=3, ffn=1536, vocab=49152),
    "gpt2-124m": dict(arch="gpt2", layers=12, dim=768, heads=12, kv_heads=12, ffn=3072, vocab=50257),
}


class Linear(nn.Module):
    """nn.Linear with an optional LoRA adapter (PEFT's lora.Linear)."""

    def __init__(self, i, o, bias, rank, alpha):
        super().__init__()
        self.base = nn.Linear(i, o, bias=bias)
        self.rank = rank
        if rank:
            self.base.requires_grad_(False)
            self.A = nn.Parameter(torch.empty(rank, i))
            nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
            self.B = nn.Parameter(torch.zeros(o, rank))
            self.scale = alpha / rank

    def forward(self, x):
        y = self.base(x)
        if self.rank:
            y = y + (x @ self.A.T @ self.B.T) * self.scale
        return y


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Block(nn.Module):
    def __init__(self, c, rank, alpha):
        super().__init__()
        self.c = c
        C, H, K, D, Fd = c["dim"], c["heads"], c["kv_heads"], c["dim"] // c["heads"], c["ffn"]
        gpt2 = c["arch"] == "gpt2"
        self.n1 = nn.LayerNorm(C) if gpt2 else RMSNorm(C)
        self.n2 = nn.LayerNorm(C) if gpt2 else RMSNorm(C)
        self.q = Linear(C, H * D, gpt2, rank, alpha)
        self.k = Linear(C, K * D, gpt2, rank, alpha)
        self.v = Linear(C, K * D, gpt2, rank, alpha)
        self.o = Linear(H * D, C, gpt2, rank, alpha)
        if gpt2:
            self.up = Linear(C, Fd, True, rank, alpha)
        else:
            self.gate = Linear(C, Fd, False, rank, alpha)
            self.up = Linear(C, Fd, False, rank, alpha)
        self.down = Linear(Fd, C, gpt2, rank, alpha)

    def forward(self, x, cos, sin, mask, cache=None):
        B, T, _ = x.shape
        H, K = self.c["heads"], self.c["kv_heads"]
        D = self.c["dim"] // H
        h = self.n1(x)
        q = self.q(h).view(B, T, H, D).transpose(1, 2)
        k = self.k(h).view(B, T, K, D).transpose(1, 2)
        v = self.v(h).view(B, T, K, D).transpose(1, 2)
        if cos is not None:
            def rot(t):
                t1, t2 = t[..., : D // 2], t[..., D // 2:]
                return t * cos + torch.cat([-t2, t1], -1) * sin
            q, k = rot(q), rot(k)
        if cache is not None:      # [k, v] of the positions before, grown here
            if cache:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[:] = [k, v]
        if K != H:
            k = k.repeat_interleave(H // K, dim=1)
            v = v.repeat_interleave(H // K, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, H * D)
        x = x + self.o(y)
        h = self.n2(x)
        if self.c["arch"] == "gpt2":
            a = F.gelu(self.up(h), approximate="tanh")
        else:
            a = F.silu(self.gate(h)) * self.up(h)
        return x + self.down(a)


class Model(nn.Module):
    def __init__(self, c, seq, rank, alpha):
        super().__init__()
        self.c = c
        self.emb = nn.Embedding(c["vocab"], c["dim"])
        self.pos = nn.Embedding(seq, c["dim"]) if c["arch"] == "gpt2" else None
        self.blocks = nn.ModuleList(Block(c, rank, alpha) for _ in range(c["layers"]))
        self.norm = nn.LayerNorm(c["dim"]) if c["arch"] == "gpt2" else RMSNorm(c["dim"])
        if rank:
            for p in (self.emb, self.norm, self.pos):
                if p is not None:
                    p.requires_grad_(False)
            for b in self.blocks:
                b.n1.requires_grad_(False)
                b.n2.requires_grad_(False)
        D = c["dim"] // c["heads"]
        inv = 10000.0 ** (-torch.arange(0, D, 2).float() / D)
        ang = torch.arange(seq).float()[:, None] * inv[None]
        self.cos = torch.cat([ang.cos(), ang.cos()], -1) if self.pos is None else None
        self.sin = torch.cat([ang.sin(), ang.sin()], -1) if self.pos is None else None
        self.mask = torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1)

    def forward(self, tokens, start=0, caches=None):
        """Logits of tokens at positions start...; caches (one list per
        block) hold the keys and values of the positions before."""
        T = tokens.shape[1]
        x = self.emb(tokens)
        if self.pos is not None:
            x = x + self.pos.weight[start:start + T]
        cos = self.cos[start:start + T] if self.cos is not None else None
        sin = self.sin[start:start + T] if self.sin is not None else None
        mask = self.mask[start:start + T, :start + T]
        for i, b in enumerate(self.blocks):
            x = b(x, cos, sin, mask, caches[i] if caches is not None else None)
        return self.norm(x) @ self.emb.weight.T    # tied head


def llama2c_shape(path):
    """A llama2.c checkpoint's shape, from its header."""
    with open(path, "rb") as f:
        dim, ffn, layers, heads, kv_heads, vocab, seq = struct.unpack("7i", f.read(28))
    return dict(arch="llama", layers=layers, dim=dim, heads=heads, kv_heads=kv_heads, ffn=ffn,
                vocab=abs(vocab)), seq


@torch.no_grad()
def bench_eval(a, c):
    """Loss rows and greedy generation, timed as ftengine bench --eval."""
    model = Model(c, max(a.seq, a.prompt + a.new), 0, 0.0)
    g = torch.Generator().manual_seed(99)
    tokens = torch.randint(0, c["vocab"], (a.batch, a.seq), generator=g)
    targets = torch.randint(0, c["vocab"], (a.batch, a.seq), generator=g)
    prompt = torch.randint(0, c["vocab"], (1, a.prompt), generator=g)
    lt = gt = 0.0
    lbest = gbest = float("inf")
    for i in range(a.warmup + a.steps):
        s0 = time.perf_counter()
        F.cross_entropy(model(tokens).view(-1, c["vocab"]), targets.view(-1),
                        reduction="none").view(a.batch, a.seq).sum(1)
        s1 = time.perf_counter()
        caches = [[] for _ in model.blocks]
        nxt = model(prompt, 0, caches)[:, -1].argmax(-1, keepdim=True)
        for pos in range(a.prompt, a.prompt + a.new - 1):
            nxt = model(nxt, pos, caches)[:, -1].argmax(-1, keepdim=True)
        s2 = time.perf_counter()
        if i >= a.warmup:
            lt, gt = lt + s1 - s0, gt + s2 - s1
            lbest, gbest = min(lbest, s1 - s0), min(gbest, s2 - s1)
    return {"loss_examples_per_s": a.batch * a.steps / lt,
            "loss_tokens_per_s": a.batch * a.seq * a.steps / lt, "loss_ms_best": 1e3 * lbest,
            "gen_tokens_per_s": a.new * a.steps / gt, "gen_ms_best": 1e3 * gbest,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "threads": torch.get_num_threads()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--llama2c", help="--eval: a llama2.c checkpoint whose shape to use")
    ap.add_argument("--eval", action="store_true")
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--lora-rank", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.eval:
        c = llama2c_shape(a.llama2c)[0] if a.llama2c else PRESETS[a.preset]
        out = bench_eval(a, c)
        if a.json:
            print(json.dumps(out))
        else:
            print("torch eval: loss %.1f examples/s, %.0f tokens/s; generation %.1f tokens/s" % (
                out["loss_examples_per_s"], out["loss_tokens_per_s"], out["gen_tokens_per_s"]))
        return
    if a.preset is None:
        ap.error("--preset is required")
    c = PRESETS[a.preset]
    model = Model(c, a.seq, a.lora_rank, 2.0 * a.lora_rank)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    tokens = torch.randint(0, c["vocab"], (a.batch, a.seq))
    targets = torch.randint(0, c["vocab"], (a.batch, a.seq))
    best = float("inf")
    for i in range(a.warmup + a.steps):
        s0 = time.perf_counter()
        if i == a.warmup:
            t0 = s0
        loss = F.cross_entropy(model(tokens).view(-1, c["vocab"]), targets.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= a.warmup:
            best = min(best, time.perf_counter() - s0)
    ms = 1e3 * (time.perf_counter() - t0) / a.steps
    out = {"tokens_per_s": a.batch * a.seq / (ms * 1e-3), "ms_per_step": ms,
           "ms_per_step_best": 1e3 * best,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
           "threads": torch.get_num_threads()}
    if a.json:
        print(json.dumps(out))
    else:
        print("torch %s %s: %.1f tokens/s, %.1f ms/step, peak RSS %.0f MB" % (
            a.preset, "LoRA" if a.lora_rank else "full", out["tokens_per_s"], ms, out["peak_rss_mb"]))


if __name__ == "__main__":
    main()
