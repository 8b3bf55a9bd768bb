// GRPO math on per-token log-probabilities: group advantages, reward shaping,
// dynamic-sampling filter and the clipped policy-gradient objective with its
// gradient. Pure functions over plain arrays; no model, no I/O. The model's
// TrainForward gives logp, TrainBackward takes the dloss/dlogp computed here.
//
// Objective per completion token t of sequence i (DESIGN.md "GRPO"):
//   ρ   = exp(logp − logp_old)
//   pg  = min(ρ·A_i, clip(ρ, 1−ε_low, 1+ε_high)·A_i)
//   k3  = exp(ref − logp) − (ref − logp) − 1           (only when β > 0)
//   ℓ   = −pg + β·k3
// and the loss is Σ_i Σ_t w_i·ℓ_it with per-sequence weights w_i set by the
// aggregation mode over the WHOLE optimisation batch (so micro-batches add up):
//   grpo:    w_i = 1 / (N · T_i)        token mean per sequence, then mean
//   dapo:    w_i = 1 / Σ_j T_j          one token mean over the batch
//   dr_grpo: w_i = 1 / (N · max_len)    = sum / (max_len·G) averaged over groups
// where N is the number of sequences in the batch and T_i their token counts.
//
// Off-policy correction (learner.grpo.is_correction, README "Off-policy
// correction"): with an importance weight ω_it from RolloutCorrection the
// token loss becomes ℓ = −ω_it·pg + β·k3. ω is a constant of the step (it
// depends on logp_old and the rollout's logprobs only, so no gradient flows
// through it), the KL term and the aggregation weights w_i are not weighted.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl::grpo {

// ---- advantages -----------------------------------------------------------

struct AdvantageOptions {
  bool std_normalize = true;     // divide by the std (group or batch)
  bool batch_normalize = false;  // std over the whole batch instead of the group;
                                 // the mean is always the group's
  double eps = 1e-6;             // A = (r − mean) / (std + eps)
};

// rewards[g][i]: reward of sample i of group g. Returns advantages of the same
// shape. std is the unbiased sample std (n−1), 0 for a single sample, matching
// torch.std. INVALID_ARGUMENT on an empty group or a non-finite reward.
absl::StatusOr<std::vector<std::vector<double>>> GroupAdvantages(
    const std::vector<std::vector<double>>& rewards, const AdvantageOptions& options);

// True when every reward of the group is equal (within 1e-12): such a group has
// zero advantage everywhere and DAPO dynamic sampling drops it.
bool GroupIsUniform(const std::vector<double>& rewards);

// DAPO soft overlong punishment, added to the reward of a completion of
// `length` tokens when at most `max_new_tokens` were allowed:
//   0 while length ≤ max − buffer; −penalty·(length − (max − buffer))/buffer
//   inside the last `buffer` tokens; −penalty beyond max.
double OverlongPenalty(int length, int max_new_tokens, int buffer_tokens, double penalty);

// ---- the per-token objective ---------------------------------------------

enum class Aggregation { kGrpo, kDapo, kDrGrpo };

// From the config enum (UNSPECIFIED means the documented default, dapo).
Aggregation AggregationFromProto(zerorl::v1::LossAggregation a);

struct LossOptions {
  double clip_low = 0.2;    // ε_low
  double clip_high = 0.28;  // ε_high
  double beta = 0.0;        // k3 KL coefficient; 0 ignores logp_ref
  Aggregation aggregation = Aggregation::kDapo;
  int max_new_tokens = 0;   // max_len of dr_grpo (> 0 required for that mode)
};

// Per-sequence loss weights w_i (see the banner) for a batch whose sequences
// have `lengths` completion tokens. INVALID_ARGUMENT on an empty batch, a
// negative length, an all-empty batch, or dr_grpo without max_new_tokens.
absl::StatusOr<std::vector<double>> SequenceWeights(const std::vector<int>& lengths,
                                                    const LossOptions& options);

// One sequence's completion tokens, as views into caller-owned arrays.
struct SequenceView {
  const float* logp = nullptr;      // [T] current policy
  const float* logp_old = nullptr;  // [T] policy that the ratio is taken against
  const float* logp_ref = nullptr;  // [T] frozen reference; may be null when β = 0
  int length = 0;                   // T
  double advantage = 0.0;           // A_i
  double weight = 0.0;              // w_i from SequenceWeights
  const double* is_weight = nullptr;  // [T] ω from RolloutCorrection; null: no correction (ω = 1)
};

// Sums over the tokens given (every value is already weighted by w_i, so the
// results of several micro-batches add up to those of the batch).
struct LossSums {
  double loss = 0;          // Σ w·ℓ
  double pg_loss = 0;       // Σ w·(−pg)
  double kl = 0;            // Σ w·k3   (0 when β = 0)
  double tokens = 0;        // token count
  double clipped = 0;       // tokens whose clipped branch is strictly smaller (clip fraction numerator)
  double neg_logp = 0;      // Σ −logp: sampled-token entropy estimate numerator
  double ratio_max = 0;     // max ρ seen
  void Add(const LossSums& o);
};

// ---- off-policy correction against the rollout's logprobs -----------------

enum class IsCorrection { kNone, kTis, kMis };
enum class IsLevel { kToken, kSequence };

// From the config enums (UNSPECIFIED means the documented defaults, none / token).
IsCorrection IsCorrectionFromProto(zerorl::v1::ImportanceCorrection c);
IsLevel IsLevelFromProto(zerorl::v1::ImportanceLevel l);

struct IsOptions {
  IsCorrection correction = IsCorrection::kNone;
  IsLevel level = IsLevel::kToken;
  double cap = 2.0;        // tis: ω = min(w, cap); mis: w > cap is masked
  double mask_low = 0.5;   // mis: w < mask_low is masked
};

// The log-ratio (token, or summed over the sequence) is clamped to
// ±kIsLogRatioBound before exp, as verl's SAFETY_BOUND: no overflow for long
// sequences, and no effect on any weight that a cap below e^20 bounds anyway.
inline constexpr double kIsLogRatioBound = 20.0;

// Per-step sums of the rollout/training mismatch, over tokens (they add up
// across micro-batches and ranks like LossSums).
struct MismatchSums {
  double k3 = 0;            // Σ_t exp(d_t) − d_t − 1, d_t = logp_old − logp_rollout clamped to
                            // ±kIsLogRatioBound: the k3 estimate of KL(π_rollout‖π_old)
  double abs_diff_max = 0;  // max_t |d_t|
  double tokens = 0;        // tokens with rollout logprobs
  double corrected = 0;     // tokens whose weight was truncated (tis) or masked (mis)
  void Add(const MismatchSums& o);
};

// One sequence's importance weights ω[0..T) for π_old / π_rollout:
//   w_t = exp(clamp(d_t)) (token level), or w = exp(clamp(Σ_t d_t)) for every
//   t (sequence level); tis: ω = min(w, cap); mis: ω = w if mask_low ≤ w ≤ cap,
//   else 0; none: ω = 1 (the loss must then be given is_weight = null, which
//   is what keeps it bit-identical to the uncorrected one).
// Adds the sequence's mismatch diagnostics to *sums (computed for every
// correction, none included). INVALID_ARGUMENT on T < 0, null arrays with
// T > 0, or a non-finite logprob (naming the token).
absl::Status RolloutCorrection(const float* logp_old, const float* logp_rollout, int length,
                               const IsOptions& options, double* is_weight, MismatchSums* sums);

// Computes the loss of `seqs` and writes dloss/dlogp for each token into
// dlogp[i][0..T_i) (overwritten, not accumulated). Ties of the min take the
// unclipped branch's gradient, as torch.minimum/clamp do inside the range.
absl::StatusOr<LossSums> TokenLoss(const std::vector<SequenceView>& seqs,
                                   const LossOptions& options,
                                   const std::vector<float*>& dlogp);

}  // namespace zerorl::grpo
