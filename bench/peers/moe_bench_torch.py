#!/usr/bin/python3
"""PyTorch peer of `zerorl bench model`: the same model (HF-style DeepSeek-V3 /
Qwen3-MoE modules, experts batched by sorting tokens per expert as HF's
moe_infer does) and the same two workloads, on the same number of threads.

  train:  B x T tokens, forward + cross-entropy + backward + grad clip + AdamW
          (skipped with --train-steps 0)
  decode: G samples of one prompt; prompt prefilled once, the KV cache
          expanded to G rows, then one batched step per new token

Prints `train_tokens_per_s X` and `decode_tokens_per_s Y`.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class MLP(nn.Module):
    def __init__(self, d, i):
        super().__init__()
        self.gate_proj = nn.Linear(d, i, bias=False)
        self.up_proj = nn.Linear(d, i, bias=False)
        self.down_proj = nn.Linear(i, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def rope_tables(dim, n, theta):
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2).float() / dim))
    f = torch.outer(torch.arange(n).float(), inv)
    e = torch.cat((f, f), -1)
    return e.cos(), e.sin()


def rot_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


def apply_rope(x, cos, sin, interleaved):
    if interleaved:
        b, h, s, d = x.shape
        x = x.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    return x * cos + rot_half(x) * sin


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        D, H = c["hidden_size"], c["num_attention_heads"]
        self.H = H
        self.mla = c["model_type"] == "deepseek_v3"
        if self.mla:
            self.nope, self.rd, self.dv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
            self.kvr = c["kv_lora_rank"]
            self.dq = self.nope + self.rd
            self.q_proj = nn.Linear(D, H * self.dq, bias=False)
            self.kv_a_proj_with_mqa = nn.Linear(D, self.kvr + self.rd, bias=False)
            self.kv_a_layernorm = RMSNorm(self.kvr, c["rms_norm_eps"])
            self.kv_b_proj = nn.Linear(self.kvr, H * (self.nope + self.dv), bias=False)
            self.o_proj = nn.Linear(H * self.dv, D, bias=False)
            self.scale = self.dq ** -0.5
            self.rope_dim = self.rd
        else:
            hd, Hkv = c["head_dim"], c["num_key_value_heads"]
            self.hd, self.Hkv = hd, Hkv
            self.q_proj = nn.Linear(D, H * hd, bias=False)
            self.k_proj = nn.Linear(D, Hkv * hd, bias=False)
            self.v_proj = nn.Linear(D, Hkv * hd, bias=False)
            self.o_proj = nn.Linear(H * hd, D, bias=False)
            self.q_norm = RMSNorm(hd, c["rms_norm_eps"])
            self.k_norm = RMSNorm(hd, c["rms_norm_eps"])
            self.scale = hd ** -0.5
            self.rope_dim = hd

    def forward(self, x, cos, sin, cache=None):
        # x [B, S, D]; cos/sin [S, rd] for the new positions; cache (k, v) [B, H, L, d]
        B, S, _ = x.shape
        H = self.H
        if self.mla:
            q = self.q_proj(x).view(B, S, H, self.dq).transpose(1, 2)
            q_nope, q_pe = torch.split(q, [self.nope, self.rd], -1)
            ckv, k_pe = torch.split(self.kv_a_proj_with_mqa(x), [self.kvr, self.rd], -1)
            k_pe = k_pe.view(B, S, 1, self.rd).transpose(1, 2)
            kv = self.kv_b_proj(self.kv_a_layernorm(ckv)).view(B, S, H, self.nope + self.dv).transpose(1, 2)
            k_nope, v = torch.split(kv, [self.nope, self.dv], -1)
            q = torch.cat([q_nope, apply_rope(q_pe, cos, sin, True)], -1)
            k = torch.cat([k_nope, apply_rope(k_pe, cos, sin, True).expand(B, H, S, self.rd)], -1)
        else:
            q = self.q_norm(self.q_proj(x).view(B, S, H, self.hd)).transpose(1, 2)
            k = self.k_norm(self.k_proj(x).view(B, S, self.Hkv, self.hd)).transpose(1, 2)
            v = self.v_proj(x).view(B, S, self.Hkv, self.hd).transpose(1, 2)
            q, k = apply_rope(q, cos, sin, False), apply_rope(k, cos, sin, False)
            rep = H // self.Hkv
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], 2)
                v = torch.cat([cache[1], v], 2)
            cache[0], cache[1] = k, v
        L = k.shape[2]
        w = (q @ k.transpose(2, 3)) * self.scale
        if S > 1:
            mask = torch.full((S, L), float("-inf")).triu(L - S + 1)
            w = w + mask
        o = (torch.softmax(w, -1) @ v).transpose(1, 2).reshape(B, S, -1)
        return self.o_proj(o)


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        D, Im = c["hidden_size"], c["moe_intermediate_size"]
        self.mla = c["model_type"] == "deepseek_v3"
        self.E = c["n_routed_experts"] if self.mla else c["num_experts"]
        self.K = c["num_experts_per_tok"]
        self.gate = nn.Linear(D, self.E, bias=False)
        self.register_buffer("e_score_correction_bias", torch.zeros(self.E))
        self.experts = nn.ModuleList([MLP(D, Im) for _ in range(self.E)])
        ns = (c.get("n_shared_experts") or 0) if self.mla else 0
        self.shared_experts = MLP(D, Im * ns) if ns else None

    def forward(self, x):
        B, S, D = x.shape
        h = x.reshape(-1, D)
        logits = self.gate(h)
        if self.mla and self.c.get("scoring_func", "sigmoid") == "sigmoid":
            scores = logits.sigmoid()
        else:
            scores = logits.softmax(-1)
        choice = scores.detach() + self.e_score_correction_bias if self.mla else scores.detach()
        idx = torch.topk(choice, self.K, -1, sorted=False)[1]
        w = scores.gather(1, idx)
        if self.c.get("norm_topk_prob", True):
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        # HF moe_infer: sort the (token, slot) rows by expert, one call per expert.
        flat = idx.view(-1)
        order = flat.argsort()
        counts = torch.bincount(flat, minlength=self.E).tolist()
        rows = h[order // self.K]
        outs, start = [], 0
        for e, n in enumerate(counts):
            if n:
                outs.append(self.experts[e](rows[start:start + n]))
            start += n
        y_sorted = torch.cat(outs, 0)
        y_rows = torch.empty_like(y_sorted).index_copy(0, order, y_sorted)
        y = (y_rows.view(-1, self.K, D) * w.unsqueeze(-1)).sum(1)
        if self.shared_experts is not None:
            y = y + self.shared_experts(h)
        return y.view(B, S, D)


class Layer(nn.Module):
    def __init__(self, c, l):
        super().__init__()
        eps = c["rms_norm_eps"]
        self.input_layernorm = RMSNorm(c["hidden_size"], eps)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], eps)
        self.self_attn = Attention(c)
        if c["model_type"] == "deepseek_v3":
            moe = (c.get("n_routed_experts") or 0) > 0 and l >= c.get("first_k_dense_replace", 0) \
                and l % c.get("moe_layer_freq", 1) == 0
        else:
            moe = c.get("num_experts", 0) > 0 and l not in (c.get("mlp_only_layers") or []) \
                and (l + 1) % c.get("decoder_sparse_step", 1) == 0
        self.mlp = MoE(c) if moe else MLP(c["hidden_size"], c["intermediate_size"])

    def forward(self, x, cos, sin, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([Layer(c, l) for l in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        rd = self.layers[0].self_attn.rope_dim
        self.cos, self.sin = rope_tables(rd, 4096, c.get("rope_theta", 10000.0))
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, pos0=0, caches=None):
        S = ids.shape[1]
        cos, sin = self.cos[pos0:pos0 + S], self.sin[pos0:pos0 + S]
        x = self.embed_tokens(ids)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, None if caches is None else caches[i])
        return self.lm_head(self.norm(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--train-steps", type=int, default=4)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(a.config) as f:
        c = json.load(f)
    m = Model(c)
    V = c["vocab_size"]

    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01)
    ids = torch.randint(0, V, (a.batch, a.seq))

    def step():
        opt.zero_grad(set_to_none=True)
        logits = m(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()

    if a.train_steps > 0:  # 0: the decode workload only
        step()
        t0 = time.perf_counter()
        for _ in range(a.train_steps):
            step()
        train_tps = a.batch * a.seq * a.train_steps / (time.perf_counter() - t0)
        print(f"train_tokens_per_s {train_tps:.1f}", flush=True)

    prompt = torch.randint(0, V, (1, a.prompt))

    @torch.no_grad()
    def decode():
        caches = [[None, None] for _ in m.layers]
        logits = m(prompt, 0, caches)[:, -1]
        for cch in caches:  # share the prefill: expand to G rows
            cch[0] = cch[0].expand(a.samples, -1, -1, -1).contiguous()
            cch[1] = cch[1].expand(a.samples, -1, -1, -1).contiguous()
        logits = logits.expand(a.samples, -1)
        for t in range(a.new):
            logp = torch.log_softmax(logits, -1)
            tok = torch.multinomial(logp.exp(), 1)
            logp.gather(1, tok)
            if t + 1 == a.new:
                break
            logits = m(tok, a.prompt + t, caches)[:, -1]

    decode()
    reps = 3
    t0 = time.perf_counter()
    for _ in range(reps):
        decode()
    dec_tps = a.samples * a.new * reps / (time.perf_counter() - t0)
    print(f"decode_tokens_per_s {dec_tps:.1f}", flush=True)


if __name__ == "__main__":
    main()
