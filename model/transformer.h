// Internal to model/: one decoder layer's weights (pointers into the model's
// parameter buffer), its saved activations, and the forward/backward of its
// two halves (attention, MLP/MoE) written over the op layer. Training keeps a
// LayerActs per layer; inference reuses one as scratch. Not a public header.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "model/config.h"
#include "model/ops/buffer.h"
#include "model/ops/ops.h"

namespace zerorl::model::internal {

struct Layer {
  bool moe = false;
  float* ln1 = nullptr;  // input_layernorm [D]
  float* ln2 = nullptr;  // post_attention_layernorm [D]
  // MLA
  float* q_proj = nullptr;     // [H*dq, D] (q_lora_rank null) or q_b_proj [H*dq, qr]
  float* q_a_proj = nullptr;   // [qr, D]
  float* q_a_ln = nullptr;     // [qr]
  float* kv_a_proj = nullptr;  // [kvr+rd, D]
  float* kv_a_ln = nullptr;    // [kvr]
  float* kv_b_proj = nullptr;  // [H*(nope+dv), kvr]
  // GQA: q_proj|k_proj|v_proj stored back to back = one [(H+2Hkv)*hd, D] matrix
  float* qkv_proj = nullptr;
  float* q_norm = nullptr;     // [hd]
  float* k_norm = nullptr;     // [hd]
  float* o_proj = nullptr;     // [D, H*dv]
  // Dense MLP: gate_proj|up_proj back to back = [2I, D]; down [D, I]
  float* gate_up = nullptr;
  float* down = nullptr;
  // MoE
  float* router = nullptr;       // gate.weight [E, D]
  float* router_bias = nullptr;  // e_score_correction_bias [E] or nullptr
  std::vector<float*> ex_gate_up, ex_down;  // per expert [2Im, D], [D, Im]
  float* sh_gate_up = nullptr;   // shared experts [2Is, D]
  float* sh_down = nullptr;      // [D, Is]
};

// Activations in backend memory (ops::Buf), except ex_off (host: GEMM sizes).
struct LayerActs {
  using F = ops::Buf<float>;
  using I = ops::Buf<int32_t>;
  F x_in;                // [N, D] layer input (residual)
  F ln1, rstd1;          // [N, D], [N]
  F qa, qa_rstd, qa_n;   // MLA q_lora: [N, qr], [N], [N, qr]
  F kva, ckv_rstd, ckv, kv;   // MLA: [N, kvr+rd], [N], [N, kvr], [N, H*(nope+dv)]
  F qkv, qn_rstd, kn_rstd;    // GQA: [N, (H+2Hkv)*hd], [H, N], [Hkv, N]
  F q, k, v;             // roped q [N, H*dk], roped k [N, Hkv*dk], v [N, Hkv*dv]
  // MLA latent cache (inference): lat [N, kvr+rd] = [c_kv | roped k_pe];
  // absorbed query qlat [N, H*(kvr+rd)] = per head [q_nope W_UK_h | q_pe];
  // latent attention output olat [N, H*kvr].
  F lat, qlat, olat;
  F probs;               // [B, H, T, T] (training)
  F attn;                // [N, H*dv]
  F x_mid;               // [N, D] after the attention residual
  F ln2, rstd2;          // [N, D], [N]
  F h, a;                // dense: [N, 2I], [N, I]
  // MoE
  F rlogits, scores;     // [N, E]
  I topk_idx;            // [N, K]
  F topk_w;              // [N, K] combine weights
  std::vector<int64_t> ex_off;  // [E+1] row ranges per expert (host)
  I row_token;           // [N*K] token of each routed row (rows grouped by expert)
  I row_slot;            // [N*K] n*K + k
  F row_w;               // [N*K] combine weight of each routed row
  F ex_x, ex_h, ex_a, ex_y;  // [N*K, D], [N*K, 2Im], [N*K, Im], [N*K, D]
  F sh_h, sh_a;          // [N, 2Is], [N, Is]
  // Training only, read back to the host once per forward: the picks (MlpForward,
  // when expert loads are asked for) and the scores (BalanceLoss); MlpBackward's
  // balance-loss gradient reuses both.
  std::vector<int32_t> topk_idx_host;  // [N, K]
  std::vector<float> scores_host;      // [N, E]
  // Binds every buffer to the backend (before first use).
  void Bind(ops::Backend* b);
};

// Token groups of the batch, for attention and the balance loss.
struct SeqSpan {
  int64_t start = 0, len = 0;  // rows [start, start+len) of the batch
  int64_t valid = 0;           // leading rows that are real tokens (balance loss, loads)
};

// Everything TrainForward saves for TrainBackward.
struct TrainState {
  int64_t B = 0, T = 0, N = 0;                 // N = B*T rows
  ops::Buf<int32_t> tokens, pos, targets;      // [N]; targets -1 where padded
  std::vector<SeqSpan> spans;                  // one per sequence
  std::vector<LayerActs> layers;
  ops::Buf<float> x_final, lnf, rstdf;         // [N, D], [N, D], [N]
  ops::Buf<float> logits;                      // [N, V]
  float balance_alpha = 0.f;
  bool ready = false;                          // a forward is waiting for its backward
};

struct Net {
  const ModelConfig* cfg;
  ops::Backend* ops;
  float* params;
  float* grads;
  float* G(const float* p) const { return grads + (p - params); }
};

// RESOURCE_EXHAUSTED "out of memory <doing>: <what the backend said>".
absl::Status OutOfMemoryError(const char* doing, const std::bad_alloc& e);

// The attention geometry of a config (contiguous q/k/v/out rows).
ops::AttnShape AttnShapeOf(const ModelConfig& c);

// x [N, D] -> acts.ln1, q/k/v (roped at positions pos[N]). MLA inference
// with latent_rows also fills acts.lat (the latent cache rows); expand_kv
// false then skips k/v (kv_b_proj), which the absorbed decode does not need.
void AttnQkvForward(const Net& net, const Layer& L, LayerActs& A, const float* x, const int32_t* pos, int64_t N,
                    bool latent_rows = false, bool expand_kv = true);

// Weight-absorbed MLA over the latent cache. W_UK_h [nope, kvr] and W_UV_h
// [dv, kvr] are head h's rows of kv_b_proj. Attention runs as MQA with one
// shared K row per token, [c_kv | k_pe] (dk = kvr+rd), whose first kvr values
// are also V (dv = kvr), and the expanded form's scale 1/sqrt(nope+rd):
// q_h . k_j = q_nope_h W_UK_h c_kv_j + q_pe_h k_pe_j equals the expanded score.
ops::AttnShape LatentAttnShapeOf(const ModelConfig& c);
// acts.q [N, H*dk] -> acts.qlat [N, H*(kvr+rd)].
void MlaAbsorbQuery(const Net& net, const Layer& L, LayerActs& A, int64_t N);
// acts.olat [N, H*kvr] -> acts.attn [N, H*dv] (per head olat_h W_UV_h^T).
void MlaAbsorbOutput(const Net& net, const Layer& L, LayerActs& A, int64_t N);
// acts.attn -> out[N, D] = x + attn @ Wo^T
void AttnOutForward(const Net& net, const Layer& L, LayerActs& A, const float* x, float* out, int64_t N);
// Backward of both: dres [N, D] holds dL/d(x_mid); dq/dk/dv [N, ...] are the
// gradients wrt the roped q, k and v (from AttentionBackward, dattn from o_proj).
void AttnOutBackward(const Net& net, const Layer& L, LayerActs& A, const float* dres, float* dattn, int64_t N);
void AttnQkvBackward(const Net& net, const Layer& L, LayerActs& A, float* dq, float* dk, const float* dv,
                     const int32_t* pos, float* dres, int64_t N);

// Routing replay of one MoE layer: forced [N, K] (host) expert ids to use
// instead of the router's own top-k; a row whose first id is < 0 is routed by
// the router. Counts, over the rows inside the spans' valid rows: replayed,
// and mismatched (the router's own picks differ from the forced ones as sets).
struct RouteReplay {
  const int32_t* forced = nullptr;
  int64_t replayed = 0, mismatched = 0;
};

// out[N, D] = x_mid + mlp(ln2(x_mid)). For MoE layers, loads[E] (if not
// null) gets the routed counts of tokens inside the spans' valid rows;
// replay (if not null) forces the picks (see RouteReplay).
void MlpForward(const Net& net, const Layer& L, LayerActs& A, const float* x_mid, float* out, int64_t N,
                const std::vector<SeqSpan>& spans, int64_t* loads, RouteReplay* replay = nullptr);
// dres [N, D]: in dL/d(out), out dL/d(x_mid) (adds the MLP path). balance_alpha
// > 0 adds the sequence-wise balance loss gradient (scaled by 1/num spans);
// it needs the host copies BalanceLoss left in A.
void MlpBackward(const Net& net, const Layer& L, LayerActs& A, float* dres, int64_t N,
                 const std::vector<SeqSpan>& spans, float balance_alpha);
// Sequence-wise balance loss of one MoE layer: mean over spans of sum_i f_i P_i.
// Needs the picks MlpForward read back (it was given `loads`); reads the scores
// back into A.scores_host for MlpBackward.
float BalanceLoss(const ModelConfig& cfg, LayerActs& A, const std::vector<SeqSpan>& spans);

}  // namespace zerorl::model::internal
