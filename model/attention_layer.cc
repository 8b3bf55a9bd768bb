// The attention half of a decoder layer: MLA (deepseek_v3) or GQA with q/k
// RMSNorm (qwen3_moe), forward and hand-written backward. The attention core
// itself (softmax(QK^T)V over a batch of sequences) is ops::AttentionForward,
// called by the model with training spans or KV caches. Head splits and
// merges are strided 2-D copies on the backend (ops::Backend::Copy2D).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/transformer.h"

namespace zerorl::model::internal {
namespace {

using Buf = ops::Buf<float>;

}  // namespace

ops::AttnShape AttnShapeOf(const ModelConfig& c) {
  ops::AttnShape s;
  s.H = c.num_attention_heads;
  s.Hkv = c.kv_heads();
  s.dk = c.qk_head_dim();
  s.dv = c.v_dim();
  s.q_stride = s.H * s.dk;
  s.k_stride = s.Hkv * s.dk;
  s.v_stride = s.Hkv * s.dv;
  s.out_stride = s.H * s.dv;
  s.scale = 1.f / std::sqrt(static_cast<float>(s.dk));
  return s;
}

ops::AttnShape LatentAttnShapeOf(const ModelConfig& c) {
  ops::AttnShape s;
  const int64_t kvr = c.kv_lora_rank, row = kvr + c.qk_rope_head_dim;
  s.H = c.num_attention_heads;
  s.Hkv = 1;
  s.dk = row;
  s.dv = kvr;
  s.q_stride = s.H * row;
  s.k_stride = row;
  s.v_stride = row;  // V is the c_kv part of the same cache row
  s.out_stride = s.H * kvr;
  s.scale = 1.f / std::sqrt(static_cast<float>(c.qk_head_dim()));
  return s;
}

void MlaAbsorbQuery(const Net& net, const Layer& L, LayerActs& A, int64_t N) {
  const ModelConfig& c = *net.cfg;
  const int64_t H = c.num_attention_heads, dk = c.qk_head_dim(), nope = c.qk_nope_head_dim, dv = c.v_dim(),
                kvr = c.kv_lora_rank, row = kvr + c.qk_rope_head_dim;
  A.qlat.resize_discard(N * H * row);
  // q_lat_h [N, kvr] = q_nope_h [N, nope] @ W_UK_h [nope, kvr]
  for (int64_t h = 0; h < H; ++h)
    net.ops->Gemm(false, false, N, kvr, nope, 1.f, A.q.data() + h * dk, H * dk, L.kv_b_proj + h * (nope + dv) * kvr,
                  kvr, 0.f, A.qlat.data() + h * row, H * row);
  // q_pe of every (token, head) row: [N*H rows of dk] -> [N*H rows of row], dims [nope, dk) -> [kvr, row).
  net.ops->Copy2D(A.qlat.data() + kvr, row, A.q.data() + nope, dk, N * H, c.qk_rope_head_dim, false);
}

void MlaAbsorbOutput(const Net& net, const Layer& L, LayerActs& A, int64_t N) {
  const ModelConfig& c = *net.cfg;
  const int64_t H = c.num_attention_heads, nope = c.qk_nope_head_dim, dv = c.v_dim(), kvr = c.kv_lora_rank;
  A.attn.resize_discard(N * H * dv);
  // attn_h [N, dv] = olat_h [N, kvr] @ W_UV_h^T, W_UV_h [dv, kvr]
  for (int64_t h = 0; h < H; ++h)
    net.ops->Gemm(false, true, N, dv, kvr, 1.f, A.olat.data() + h * kvr, H * kvr,
                  L.kv_b_proj + (h * (nope + dv) + nope) * kvr, kvr, 0.f, A.attn.data() + h * dv, H * dv);
}

void AttnQkvForward(const Net& net, const Layer& L, LayerActs& A, const float* x, const int32_t* pos, int64_t N,
                    bool latent_rows, bool expand_kv) {
  const ModelConfig& c = *net.cfg;
  ops::Backend* ops = net.ops;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, Hkv = c.kv_heads(), dk = c.qk_head_dim(), dv = c.v_dim();
  const float eps = static_cast<float>(c.rms_norm_eps), theta = static_cast<float>(c.rope_theta);
  A.ln1.resize_discard(N * D);
  A.rstd1.resize_discard(N);
  ops->RmsNormForward(A.ln1.data(), A.rstd1.data(), x, L.ln1, N, D, D, D, eps);
  A.q.resize_discard(N * H * dk);
  if (!c.is_mla()) expand_kv = true;
  if (expand_kv) {
    A.k.resize_discard(N * Hkv * dk);
    A.v.resize_discard(N * Hkv * dv);
  }
  if (c.is_mla()) {
    const int64_t nope = c.qk_nope_head_dim, rd = c.qk_rope_head_dim, kvr = c.kv_lora_rank, qr = c.q_lora_rank;
    if (L.q_a_proj) {
      A.qa.resize_discard(N * qr);
      A.qa_n.resize_discard(N * qr);
      A.qa_rstd.resize_discard(N);
      ops->LinearForward(A.qa.data(), A.ln1.data(), L.q_a_proj, N, D, qr);
      ops->RmsNormForward(A.qa_n.data(), A.qa_rstd.data(), A.qa.data(), L.q_a_ln, N, qr, qr, qr, eps);
      ops->LinearForward(A.q.data(), A.qa_n.data(), L.q_proj, N, qr, H * dk);
    } else {
      ops->LinearForward(A.q.data(), A.ln1.data(), L.q_proj, N, D, H * dk);
    }
    A.kva.resize_discard(N * (kvr + rd));
    A.ckv.resize_discard(N * kvr);
    A.ckv_rstd.resize_discard(N);
    ops->LinearForward(A.kva.data(), A.ln1.data(), L.kv_a_proj, N, D, kvr + rd);
    ops->RmsNormForward(A.ckv.data(), A.ckv_rstd.data(), A.kva.data(), L.kv_a_ln, N, kvr, kvr + rd, kvr, eps);
    ops->Rope(A.q.data(), pos, N, H, H * dk, dk, nope, rd, theta, /*interleaved=*/true, false);
    if (latent_rows) {
      // [c_kv | k_pe], then k_pe roped in place: the same rotation the expanded k gets per head.
      A.lat.resize_discard(N * (kvr + rd));
      ops->Copy2D(A.lat.data(), kvr + rd, A.ckv.data(), kvr, N, kvr, false);
      ops->Copy2D(A.lat.data() + kvr, kvr + rd, A.kva.data() + kvr, kvr + rd, N, rd, false);
      ops->Rope(A.lat.data(), pos, N, 1, kvr + rd, kvr + rd, kvr, rd, theta, true, false);
    }
    if (!expand_kv) return;
    A.kv.resize_discard(N * H * (nope + dv));
    ops->LinearForward(A.kv.data(), A.ckv.data(), L.kv_b_proj, N, kvr, H * (nope + dv));
    // k[n, h] = [k_nope of head h | the shared k_pe]; v[n, h] = v of head h.
    const int64_t kvw = H * (nope + dv);
    for (int64_t h = 0; h < H; ++h) {
      ops->Copy2D(A.k.data() + h * dk, H * dk, A.kv.data() + h * (nope + dv), kvw, N, nope, false);
      ops->Copy2D(A.k.data() + h * dk + nope, H * dk, A.kva.data() + kvr, kvr + rd, N, rd, false);
      ops->Copy2D(A.v.data() + h * dv, H * dv, A.kv.data() + h * (nope + dv) + nope, kvw, N, dv, false);
    }
    ops->Rope(A.k.data(), pos, N, H, H * dk, dk, nope, rd, theta, true, false);
  } else {
    const int64_t hd = c.head_dim, W = (H + 2 * Hkv) * hd;
    A.qkv.resize_discard(N * W);
    A.qn_rstd.resize_discard(H * N);
    A.kn_rstd.resize_discard(Hkv * N);
    ops->LinearForward(A.qkv.data(), A.ln1.data(), L.qkv_proj, N, D, W);
    for (int64_t h = 0; h < H; ++h)
      ops->RmsNormForward(A.q.data() + h * hd, A.qn_rstd.data() + h * N, A.qkv.data() + h * hd, L.q_norm, N, hd, W,
                          H * hd, eps);
    for (int64_t h = 0; h < Hkv; ++h)
      ops->RmsNormForward(A.k.data() + h * hd, A.kn_rstd.data() + h * N, A.qkv.data() + (H + h) * hd, L.k_norm, N,
                          hd, W, Hkv * hd, eps);
    ops->Copy2D(A.v.data(), Hkv * hd, A.qkv.data() + (H + Hkv) * hd, W, N, Hkv * hd, false);
    ops->Rope(A.q.data(), pos, N, H, H * hd, hd, 0, hd, theta, /*interleaved=*/false, false);
    ops->Rope(A.k.data(), pos, N, Hkv, Hkv * hd, hd, 0, hd, theta, false, false);
  }
}

void AttnOutForward(const Net& net, const Layer& L, LayerActs& A, const float* x, float* out, int64_t N) {
  const ModelConfig& c = *net.cfg;
  const int64_t D = c.hidden_size, HV = c.num_attention_heads * c.v_dim();
  if (out != x) net.ops->Copy(out, x, N * D * 4);
  net.ops->LinearForward(out, A.attn.data(), L.o_proj, N, HV, D, /*accumulate=*/true);
}

void AttnOutBackward(const Net& net, const Layer& L, LayerActs& A, const float* dres, float* dattn, int64_t N) {
  const ModelConfig& c = *net.cfg;
  const int64_t D = c.hidden_size, HV = c.num_attention_heads * c.v_dim();
  net.ops->Fill(dattn, 0.f, N * HV);
  net.ops->LinearBackward(dattn, net.G(L.o_proj), dres, A.attn.data(), L.o_proj, N, HV, D);
}

void AttnQkvBackward(const Net& net, const Layer& L, LayerActs& A, float* dq, float* dk, const float* dv,
                     const int32_t* pos, float* dres, int64_t N) {
  const ModelConfig& c = *net.cfg;
  ops::Backend* ops = net.ops;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, Hkv = c.kv_heads(), hdk = c.qk_head_dim(),
                hdv = c.v_dim();
  const float theta = static_cast<float>(c.rope_theta);
  Buf dln1(ops, "attention gradients");
  dln1.assign(N * D, 0.f);
  if (c.is_mla()) {
    const int64_t nope = c.qk_nope_head_dim, rd = c.qk_rope_head_dim, kvr = c.kv_lora_rank, qr = c.q_lora_rank;
    ops->Rope(dq, pos, N, H, H * hdk, hdk, nope, rd, theta, true, /*inverse=*/true);
    ops->Rope(dk, pos, N, H, H * hdk, hdk, nope, rd, theta, true, true);
    Buf dkv(ops, "attention gradients"), dkva(ops, "attention gradients"), dckv(ops, "attention gradients");
    const int64_t kvw = H * (nope + hdv);
    dkv.resize_discard(N * kvw);  // every element is written below
    dkva.assign(N * (kvr + rd), 0.f);
    dckv.assign(N * kvr, 0.f);
    for (int64_t h = 0; h < H; ++h) {
      ops->Copy2D(dkv.data() + h * (nope + hdv), kvw, dk + h * hdk, H * hdk, N, nope, false);
      ops->Copy2D(dkva.data() + kvr, kvr + rd, dk + h * hdk + nope, H * hdk, N, rd, /*accumulate=*/true);
      ops->Copy2D(dkv.data() + h * (nope + hdv) + nope, kvw, dv + h * hdv, H * hdv, N, hdv, false);
    }
    ops->LinearBackward(dckv.data(), net.G(L.kv_b_proj), dkv.data(), A.ckv.data(), L.kv_b_proj, N, kvr,
                        H * (nope + hdv));
    ops->RmsNormBackward(dkva.data(), net.G(L.kv_a_ln), dckv.data(), A.kva.data(), L.kv_a_ln, A.ckv_rstd.data(), N,
                         kvr, kvr + rd, kvr);
    ops->LinearBackward(dln1.data(), net.G(L.kv_a_proj), dkva.data(), A.ln1.data(), L.kv_a_proj, N, D, kvr + rd);
    if (L.q_a_proj) {
      Buf dqa_n(ops, "attention gradients"), dqa(ops, "attention gradients");
      dqa_n.assign(N * qr, 0.f);
      dqa.assign(N * qr, 0.f);
      ops->LinearBackward(dqa_n.data(), net.G(L.q_proj), dq, A.qa_n.data(), L.q_proj, N, qr, H * hdk);
      ops->RmsNormBackward(dqa.data(), net.G(L.q_a_ln), dqa_n.data(), A.qa.data(), L.q_a_ln, A.qa_rstd.data(), N,
                           qr, qr, qr);
      ops->LinearBackward(dln1.data(), net.G(L.q_a_proj), dqa.data(), A.ln1.data(), L.q_a_proj, N, D, qr);
    } else {
      ops->LinearBackward(dln1.data(), net.G(L.q_proj), dq, A.ln1.data(), L.q_proj, N, D, H * hdk);
    }
  } else {
    const int64_t hd = c.head_dim, W = (H + 2 * Hkv) * hd;
    ops->Rope(dq, pos, N, H, H * hd, hd, 0, hd, theta, false, true);
    ops->Rope(dk, pos, N, Hkv, Hkv * hd, hd, 0, hd, theta, false, true);
    Buf dqkv(ops, "attention gradients");
    dqkv.assign(N * W, 0.f);
    for (int64_t h = 0; h < H; ++h)
      ops->RmsNormBackward(dqkv.data() + h * hd, net.G(L.q_norm), dq + h * hd, A.qkv.data() + h * hd, L.q_norm,
                           A.qn_rstd.data() + h * N, N, hd, W, H * hd);
    for (int64_t h = 0; h < Hkv; ++h)
      ops->RmsNormBackward(dqkv.data() + (H + h) * hd, net.G(L.k_norm), dk + h * hd, A.qkv.data() + (H + h) * hd,
                           L.k_norm, A.kn_rstd.data() + h * N, N, hd, W, Hkv * hd);
    ops->Copy2D(dqkv.data() + (H + Hkv) * hd, W, dv, Hkv * hd, N, Hkv * hd, false);
    ops->LinearBackward(dln1.data(), net.G(L.qkv_proj), dqkv.data(), A.ln1.data(), L.qkv_proj, N, D, W);
  }
  ops->RmsNormBackward(dres, net.G(L.ln1), dln1.data(), A.x_in.data(), L.ln1, A.rstd1.data(), N, D, D, D);
}

}  // namespace zerorl::model::internal
