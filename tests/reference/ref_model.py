#!/usr/bin/python3
"""PyTorch reference of the two model families zerorl implements (deepseek_v3
with MLA + DeepSeekMoE, qwen3_moe with GQA + q/k norm + softmax MoE), written
to follow HuggingFace's modeling code op for op, loading the same safetensors.

Not fast, not a training framework: it is the yardstick the C++ model is
checked against (tests/model tests call it through a subprocess).

  ref_model.py check --model DIR --batch BATCH.json --out OUT.safetensors
      BATCH.json: {"B","T","tokens":[B*T],"lengths":[B],"dlogp":[B*(T-1)],
                   "dentropy":[B*(T-1)] (optional), "alpha": float,
                   "routed_experts":[B*T*moe_layers*K] (optional)}
      Runs the forward on the padded batch, the objective
        sum(dlogp*logp) + sum(dentropy*entropy) + balance_loss(alpha)
      and its backward; writes logits [B,T,V], logp [B,T-1], entropy [B,T-1],
      balance_loss [1] and grad.<hf name> for every parameter.
      routed_experts (routing replay, token-major, -1 = route yourself): the
      MoE layers use these experts instead of their own top-k, with combine
      weights from the current scores of those experts; then also writes
      replayed [1] / mismatched [1]: (real token, MoE layer) pairs replayed,
      and of those the ones whose own top-k is a different set.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

torch.set_num_threads(1)

# ---------------------------------------------------------------- safetensors

def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        raw = data[base + b:base + en]
        if e["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype=np.float32).copy()
        elif e["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
        elif e["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32).copy()
        else:
            raise ValueError(f"{path}: tensor {name}: dtype {e['dtype']}")
        out[name] = torch.from_numpy(arr.reshape(e["shape"]))
    return out


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(a)]}
        blobs.append(a)
        off += len(a)
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)

# ---------------------------------------------------------------- the model

def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_cos_sin(dim, T, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2).float() / dim))
    t = torch.arange(T).float()
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()  # [T, dim]


def apply_rope(q, k, cos, sin, interleaved):
    # q, k: [B, h, T, d]
    if interleaved:  # DeepSeek-V3: de-interleave pairs, then rotate_half
        b, h, s, d = q.shape
        q = q.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
        b, h, s, d = k.shape
        k = k.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def swiglu(x, p, prefix):
    g = x @ p[prefix + "gate_proj.weight"].T
    u = x @ p[prefix + "up_proj.weight"].T
    return (torch.nn.functional.silu(g) * u) @ p[prefix + "down_proj.weight"].T


class Ref:
    def __init__(self, cfg, params):
        self.c = cfg
        self.p = params
        self.mla = cfg["model_type"] == "deepseek_v3"
        self.L = cfg["num_hidden_layers"]
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.theta = cfg.get("rope_theta", 10000.0)
        self.router_scores = {}  # layer -> (scores [N,E], topk_idx [N,K])
        self.forced = None       # routing replay: [N, moe_layers, K] long, -1 = own routing
        self.valid = None        # [N] bool, real (non-padding) tokens
        self.moe_index = {l: i for i, l in enumerate(x for x in range(self.L) if self.is_moe(x))}
        self.replayed = 0
        self.mismatched = 0

    def is_moe(self, l):
        c = self.c
        if self.mla:
            return (c.get("n_routed_experts") or 0) > 0 and l >= c.get("first_k_dense_replace", 0) \
                and l % c.get("moe_layer_freq", 1) == 0
        if l in (c.get("mlp_only_layers") or []):
            return False
        return c.get("num_experts", 0) > 0 and (l + 1) % c.get("decoder_sparse_step", 1) == 0

    def attention(self, l, x):
        c, p = self.c, self.p
        pre = f"model.layers.{l}.self_attn."
        B, T, D = x.shape
        H = c["num_attention_heads"]
        causal = torch.full((T, T), float("-inf")).triu(1)
        if self.mla:
            nope, rd, dv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
            kvr = c["kv_lora_rank"]
            dq = nope + rd
            if c.get("q_lora_rank"):
                q = rms_norm(x @ p[pre + "q_a_proj.weight"].T, p[pre + "q_a_layernorm.weight"], self.eps)
                q = q @ p[pre + "q_b_proj.weight"].T
            else:
                q = x @ p[pre + "q_proj.weight"].T
            q = q.view(B, T, H, dq).transpose(1, 2)
            q_nope, q_pe = torch.split(q, [nope, rd], dim=-1)
            ckv = x @ p[pre + "kv_a_proj_with_mqa.weight"].T
            ckv, k_pe = torch.split(ckv, [kvr, rd], dim=-1)
            k_pe = k_pe.view(B, T, 1, rd).transpose(1, 2)
            kv = rms_norm(ckv, p[pre + "kv_a_layernorm.weight"], self.eps) @ p[pre + "kv_b_proj.weight"].T
            kv = kv.view(B, T, H, nope + dv).transpose(1, 2)
            k_nope, v = torch.split(kv, [nope, dv], dim=-1)
            cos, sin = rope_cos_sin(rd, T, self.theta)
            q_pe, k_pe = apply_rope(q_pe, k_pe, cos, sin, interleaved=True)
            qs = torch.cat([q_nope, q_pe], dim=-1)
            ks = torch.cat([k_nope, k_pe.expand(B, H, T, rd)], dim=-1)
            scale = dq ** -0.5
        else:
            hd, Hkv = c["head_dim"], c["num_key_value_heads"]
            q = (x @ p[pre + "q_proj.weight"].T).view(B, T, H, hd)
            k = (x @ p[pre + "k_proj.weight"].T).view(B, T, Hkv, hd)
            v = (x @ p[pre + "v_proj.weight"].T).view(B, T, Hkv, hd).transpose(1, 2)
            q = rms_norm(q, p[pre + "q_norm.weight"], self.eps).transpose(1, 2)
            k = rms_norm(k, p[pre + "k_norm.weight"], self.eps).transpose(1, 2)
            cos, sin = rope_cos_sin(hd, T, self.theta)
            qs, ks = apply_rope(q, k, cos, sin, interleaved=False)
            rep = H // Hkv
            ks = ks.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            scale = hd ** -0.5
        w = (qs @ ks.transpose(2, 3)) * scale + causal
        w = torch.softmax(w, dim=-1, dtype=torch.float32)
        o = (w @ v).transpose(1, 2).reshape(B, T, -1)
        return o @ p[pre + "o_proj.weight"].T

    def moe(self, l, x):
        c, p = self.c, self.p
        pre = f"model.layers.{l}.mlp."
        B, T, D = x.shape
        h = x.reshape(-1, D)
        logits = h @ p[pre + "gate.weight"].T
        if self.mla:
            E, K = c["n_routed_experts"], c["num_experts_per_tok"]
            scores = logits.sigmoid() if c.get("scoring_func", "sigmoid") == "sigmoid" else logits.softmax(-1)
            method = c.get("topk_method", "noaux_tc")
            choice = scores.detach().clone()
            if method == "noaux_tc":
                choice = choice + p[pre + "gate.e_score_correction_bias"].detach()
            ng, tg = c.get("n_group") or 1, c.get("topk_group") or 1
            gs = choice.view(h.shape[0], ng, -1).topk(2, dim=-1)[0].sum(dim=-1)
            gidx = torch.topk(gs, k=tg, dim=-1, sorted=False)[1]
            gmask = torch.zeros_like(gs).scatter_(1, gidx, 1)
            smask = gmask.unsqueeze(-1).expand(h.shape[0], ng, E // ng).reshape(h.shape[0], -1)
            tmp = choice.masked_fill(~smask.bool(), 0.0)
            idx = self.replay(l, torch.topk(tmp, k=K, dim=-1, sorted=False)[1])
            w = scores.gather(1, idx)
            if K > 1 and c.get("norm_topk_prob", True):
                w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
            w = w * c.get("routed_scaling_factor", 1.0)
        else:
            E, K = c["num_experts"], c["num_experts_per_tok"]
            scores = torch.softmax(logits, dim=1, dtype=torch.float)
            idx = self.replay(l, torch.topk(scores, K, dim=-1)[1])
            w = scores.gather(1, idx)
            if c.get("norm_topk_prob", False):
                w = w / w.sum(dim=-1, keepdim=True)
        self.router_scores[l] = (scores, idx)
        y = torch.zeros_like(h)
        for e in range(E):
            sel = (idx == e)
            rows = sel.any(dim=-1).nonzero().flatten()
            if rows.numel() == 0:
                continue
            we = (w * sel).sum(dim=-1)[rows].unsqueeze(-1)
            y = y.index_add(0, rows, we * swiglu(h[rows], p, f"{pre}experts.{e}."))
        if self.mla and (c.get("n_shared_experts") or 0) > 0:
            y = y + swiglu(h, p, pre + "shared_experts.")
        return y.view(B, T, D)

    def replay(self, l, own):
        """Routing replay: the forced experts where given, else the own top-k."""
        if self.forced is None:
            return own
        f = self.forced[:, self.moe_index[l], :]
        use = f[:, 0] >= 0
        for n in range(own.shape[0]):
            if use[n] and self.valid[n]:
                self.replayed += 1
                if set(own[n].tolist()) != set(f[n].tolist()):
                    self.mismatched += 1
        return torch.where(use.unsqueeze(-1), f, own)

    def forward(self, tokens):
        p = self.p
        x = p["model.embed_tokens.weight"][tokens]
        for l in range(self.L):
            pre = f"model.layers.{l}."
            x = x + self.attention(l, rms_norm(x, p[pre + "input_layernorm.weight"], self.eps))
            hn = rms_norm(x, p[pre + "post_attention_layernorm.weight"], self.eps)
            x = x + (self.moe(l, hn) if self.is_moe(l) else swiglu(hn, p, pre + "mlp."))
        x = rms_norm(x, p["model.norm.weight"], self.eps)
        head = p["model.embed_tokens.weight"] if self.c.get("tie_word_embeddings") else p["lm_head.weight"]
        return x @ head.T

    def balance_loss(self, lengths, T):
        """Sequence-wise balance loss (DeepSeek-V3): mean over sequences, summed over MoE layers."""
        total = 0.0
        for l, (scores, idx) in self.router_scores.items():
            E = scores.shape[-1]
            K = idx.shape[-1]
            per = []
            for b, n in enumerate(lengths):
                s = scores[b * T:b * T + n]
                f = torch.zeros(E).index_add(0, idx[b * T:b * T + n].flatten(), torch.ones(n * K)) * E / (K * n)
                P = (s / s.sum(-1, keepdim=True)).mean(0)
                per.append((f * P).sum())
            total = total + torch.stack(per).mean()
        return total


def cmd_check(args):
    mdir = args.model
    with open(os.path.join(mdir, "config.json")) as f:
        cfg = json.load(f)
    params = load_safetensors(os.path.join(mdir, "model.safetensors"))
    for t in params.values():
        t.requires_grad_(True)
    with open(args.batch) as f:
        bj = json.load(f)
    B, T = bj["B"], bj["T"]
    tokens = torch.tensor(bj["tokens"], dtype=torch.long).view(B, T)
    lengths = bj["lengths"]
    ref = Ref(cfg, params)
    if "routed_experts" in bj:
        K = cfg["num_experts_per_tok"]
        ref.forced = torch.tensor(bj["routed_experts"], dtype=torch.long).view(B * T, len(ref.moe_index), K)
        ref.valid = torch.zeros(B * T, dtype=torch.bool)
        for b, n in enumerate(lengths):
            ref.valid[b * T:b * T + n] = True
    logits = ref.forward(tokens)
    logsm = torch.log_softmax(logits, dim=-1)
    logp = logsm[:, :-1].gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)  # [B, T-1]
    ent = -(logsm.exp() * logsm).sum(-1)[:, :-1]
    mask = torch.zeros(B, T - 1)
    for b, n in enumerate(lengths):
        mask[b, : max(0, n - 1)] = 1
    logp = logp * mask
    ent = ent * mask
    dlogp = torch.tensor(bj["dlogp"], dtype=torch.float32).view(B, T - 1)
    obj = (dlogp * logp).sum()
    if "dentropy" in bj:
        obj = obj + (torch.tensor(bj["dentropy"], dtype=torch.float32).view(B, T - 1) * ent).sum()
    alpha = bj.get("alpha", 0.0)
    bal = torch.zeros(())
    if alpha > 0 and ref.router_scores:
        bal = alpha * ref.balance_loss(lengths, T)
        obj = obj + bal
    obj.backward()
    out = {"logits": logits, "logp": logp, "entropy": ent, "balance_loss": bal.reshape(1)}
    if ref.forced is not None:
        out["replayed"] = torch.tensor([float(ref.replayed)])
        out["mismatched"] = torch.tensor([float(ref.mismatched)])
    for name, t in params.items():
        out["grad." + name] = t.grad if t.grad is not None else torch.zeros_like(t)
    save_safetensors(args.out, out)
    print("ok", len(params))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("--model", required=True)
    c.add_argument("--batch", required=True)
    c.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.cmd == "check":
        cmd_check(args)


if __name__ == "__main__":
    main()
