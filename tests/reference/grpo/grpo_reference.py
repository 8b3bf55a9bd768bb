#!/usr/bin/python3
"""GRPO reference in PyTorch: the loss on padded [N, T] tensors with a mask, as
TRL/verl write it, and its gradient w.r.t. the current logprobs by autograd.

Reads a JSON case (or a list of cases) from the file named by argv[1] (or stdin)
and writes the result (or the list of results) on stdout:
  in:  logp, logp_old, logp_ref: [[float]] ragged rows (one per sequence)
       rewards: [[float]] per group; group sizes must sum to the row count
       clip_low, clip_high, beta, aggregation ("grpo"|"dapo"|"dr_grpo"),
       max_new_tokens, std_normalize, batch_normalize, adv_eps
       optional off-policy correction, as verl's rollout_is / slime's TIS and
       icepop write it: logp_rollout [[float]] ragged, is_correction
       ("none"|"tis"|"mis"), is_level ("token"|"sequence"), is_cap, is_mask_low
  out: advantages [float] (per sequence), loss, pg_loss, kl, clip_frac, grad [[float]] ragged,
       and with logp_rollout: rollout_train_kl, rollout_train_logprob_abs_diff_max, is_clip_frac
Run it with /usr/bin/python3 (Debian's python3-torch).
"""
import json
import sys

import torch

torch.set_default_dtype(torch.float64)

SAFETY_BOUND = 20.0  # |log-ratio| clamp before exp (verl's SAFETY_BOUND)


def rollout_correction(p, old, mask):
    """IS weights pi_old / pi_rollout (detached), the tokens they truncate or
    mask, and the mismatch diagnostics."""
    T = mask.shape[1]
    d = (old - pad(p["logp_rollout"], T)) * mask
    dc = torch.clamp(d, -SAFETY_BOUND, SAFETY_BOUND)
    n = mask.sum()
    diag = {
        "rollout_train_kl": (((torch.exp(dc) - dc - 1) * mask).sum() / n).item(),
        "rollout_train_logprob_abs_diff_max": (d.abs() * mask).max().item(),
    }
    if p["is_level"] == "token":
        w = torch.exp(dc)
    elif p["is_level"] == "sequence":
        w = torch.exp(torch.clamp(d.sum(1, keepdim=True), -SAFETY_BOUND, SAFETY_BOUND)).expand_as(d)
    else:
        raise ValueError(p["is_level"])
    corrected = torch.zeros_like(w)
    if p["is_correction"] == "tis":
        corrected = (w > p["is_cap"]).double()
        w = torch.clamp(w, max=p["is_cap"])
    elif p["is_correction"] == "mis":
        keep = (w >= p["is_mask_low"]) & (w <= p["is_cap"])
        corrected = (~keep).double()
        w = torch.where(keep, w, torch.zeros_like(w))
    elif p["is_correction"] == "none":
        w = torch.ones_like(w)
    else:
        raise ValueError(p["is_correction"])
    diag["is_clip_frac"] = ((corrected * mask).sum() / n).item()
    return w.detach(), diag


def advantages(groups, std_normalize, batch_normalize, eps):
    flat = torch.tensor([r for g in groups for r in g])
    batch_std = flat.std() if flat.numel() > 1 else torch.tensor(0.0)
    out = []
    for g in groups:
        r = torch.tensor(g)
        mean = r.mean()
        std = r.std() if r.numel() > 1 else torch.tensor(0.0)
        a = r - mean
        if std_normalize:
            a = a / ((batch_std if batch_normalize else std) + eps)
        out.extend(a.tolist())
    return out


def pad(rows, T):
    x = torch.zeros(len(rows), T)
    for i, r in enumerate(rows):
        x[i, : len(r)] = torch.tensor(r)
    return x


def run_case(p):
    lengths = [len(r) for r in p["logp"]]
    N, T = len(lengths), max(lengths)
    mask = torch.zeros(N, T)
    for i, L in enumerate(lengths):
        mask[i, :L] = 1.0
    adv = torch.tensor(advantages(p["rewards"], p["std_normalize"], p["batch_normalize"], p["adv_eps"]))
    logp = pad(p["logp"], T).requires_grad_(True)
    old = pad(p["logp_old"], T)
    ratio = torch.exp(logp - old)
    A = adv[:, None]
    unclipped = ratio * A
    clipped = torch.clamp(ratio, 1 - p["clip_low"], 1 + p["clip_high"]) * A
    pg = torch.min(unclipped, clipped)
    diag = {}
    if "logp_rollout" in p:
        w, diag = rollout_correction(p, old, mask)
        pg = w * pg  # the weight scales the clipped term only, not the KL or the aggregation
    per_token = -pg
    kl = torch.zeros(N, T)
    if p["beta"] != 0:
        ref = pad(p["logp_ref"], T)
        kl = torch.exp(ref - logp) - (ref - logp) - 1
        per_token = per_token + p["beta"] * kl

    def aggregate(x):
        if p["aggregation"] == "grpo":
            return ((x * mask).sum(1) / mask.sum(1)).mean()
        if p["aggregation"] == "dapo":
            return (x * mask).sum() / mask.sum()
        if p["aggregation"] == "dr_grpo":
            return (x * mask).sum() / (p["max_new_tokens"] * N)
        raise ValueError(p["aggregation"])

    loss = aggregate(per_token)
    loss.backward()
    grad = logp.grad
    out = {
        "advantages": adv.tolist(),
        "loss": loss.item(),
        "pg_loss": aggregate(-pg).item(),
        "kl": aggregate(kl).item(),
        "clip_frac": (((clipped < unclipped).double() * mask).sum() / mask.sum()).item(),
        "grad": [grad[i, :L].tolist() for i, L in enumerate(lengths)],
    }
    out.update(diag)
    return out


def main():
    p = json.load(open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin)
    out = [run_case(c) for c in p] if isinstance(p, list) else run_case(p)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
