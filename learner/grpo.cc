// GRPO advantages and the clipped per-token objective (see grpo.h).
#include "learner/grpo.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace zerorl::grpo {
namespace {

struct Moments {
  double mean = 0, std = 0;
};

// Mean and unbiased std (n−1; 0 for n ≤ 1).
Moments MomentsOf(const std::vector<double>& v) {
  Moments m;
  if (v.empty()) return m;
  for (double x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  if (v.size() < 2) return m;
  double ss = 0;
  for (double x : v) ss += (x - m.mean) * (x - m.mean);
  m.std = std::sqrt(ss / static_cast<double>(v.size() - 1));
  return m;
}

}  // namespace

absl::StatusOr<std::vector<std::vector<double>>> GroupAdvantages(
    const std::vector<std::vector<double>>& rewards, const AdvantageOptions& options) {
  std::vector<double> all;
  for (size_t g = 0; g < rewards.size(); ++g) {
    if (rewards[g].empty()) return absl::InvalidArgumentError(absl::StrCat("group ", g, " has no samples"));
    for (size_t i = 0; i < rewards[g].size(); ++i) {
      if (!std::isfinite(rewards[g][i]))
        return absl::InvalidArgumentError(absl::StrCat("reward of group ", g, " sample ", i, " is not finite"));
      all.push_back(rewards[g][i]);
    }
  }
  const double batch_std = MomentsOf(all).std;
  std::vector<std::vector<double>> adv(rewards.size());
  for (size_t g = 0; g < rewards.size(); ++g) {
    const Moments m = MomentsOf(rewards[g]);
    const double scale = options.std_normalize
                             ? 1.0 / ((options.batch_normalize ? batch_std : m.std) + options.eps)
                             : 1.0;
    adv[g].reserve(rewards[g].size());
    for (double r : rewards[g]) adv[g].push_back((r - m.mean) * scale);
  }
  return adv;
}

bool GroupIsUniform(const std::vector<double>& rewards) {
  for (double r : rewards)
    if (std::fabs(r - rewards.front()) > 1e-12) return false;
  return true;
}

double OverlongPenalty(int length, int max_new_tokens, int buffer_tokens, double penalty) {
  const int free_len = max_new_tokens - buffer_tokens;
  if (length <= free_len) return 0.0;
  if (length > max_new_tokens || buffer_tokens <= 0) return -penalty;
  return -penalty * static_cast<double>(length - free_len) / static_cast<double>(buffer_tokens);
}

Aggregation AggregationFromProto(zerorl::v1::LossAggregation a) {
  switch (a) {
    case zerorl::v1::LOSS_AGGREGATION_GRPO: return Aggregation::kGrpo;
    case zerorl::v1::LOSS_AGGREGATION_DR_GRPO: return Aggregation::kDrGrpo;
    default: return Aggregation::kDapo;
  }
}

absl::StatusOr<std::vector<double>> SequenceWeights(const std::vector<int>& lengths,
                                                    const LossOptions& options) {
  if (lengths.empty()) return absl::InvalidArgumentError("GRPO batch has no sequences");
  double total = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (lengths[i] < 0) return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " has negative length"));
    total += lengths[i];
  }
  if (total == 0) return absl::InvalidArgumentError("GRPO batch has no completion tokens");
  const double n = static_cast<double>(lengths.size());
  std::vector<double> w(lengths.size(), 0.0);
  for (size_t i = 0; i < lengths.size(); ++i) {
    switch (options.aggregation) {
      case Aggregation::kGrpo:
        w[i] = lengths[i] > 0 ? 1.0 / (n * lengths[i]) : 0.0;
        break;
      case Aggregation::kDapo:
        w[i] = 1.0 / total;
        break;
      case Aggregation::kDrGrpo:
        if (options.max_new_tokens <= 0)
          return absl::InvalidArgumentError("dr_grpo aggregation needs max_new_tokens > 0");
        w[i] = 1.0 / (n * options.max_new_tokens);
        break;
    }
  }
  return w;
}

void LossSums::Add(const LossSums& o) {
  loss += o.loss;
  pg_loss += o.pg_loss;
  kl += o.kl;
  tokens += o.tokens;
  clipped += o.clipped;
  neg_logp += o.neg_logp;
  ratio_max = std::max(ratio_max, o.ratio_max);
}

IsCorrection IsCorrectionFromProto(zerorl::v1::ImportanceCorrection c) {
  switch (c) {
    case zerorl::v1::IMPORTANCE_CORRECTION_TIS: return IsCorrection::kTis;
    case zerorl::v1::IMPORTANCE_CORRECTION_MIS: return IsCorrection::kMis;
    default: return IsCorrection::kNone;
  }
}

IsLevel IsLevelFromProto(zerorl::v1::ImportanceLevel l) {
  return l == zerorl::v1::IMPORTANCE_LEVEL_SEQUENCE ? IsLevel::kSequence : IsLevel::kToken;
}

void MismatchSums::Add(const MismatchSums& o) {
  k3 += o.k3;
  abs_diff_max = std::max(abs_diff_max, o.abs_diff_max);
  tokens += o.tokens;
  corrected += o.corrected;
}

absl::Status RolloutCorrection(const float* logp_old, const float* logp_rollout, int length,
                               const IsOptions& options, double* is_weight, MismatchSums* sums) {
  if (length < 0) return absl::InvalidArgumentError(absl::StrCat("sequence has negative length ", length));
  if (length == 0) return absl::OkStatus();
  if (!logp_old || !logp_rollout || !is_weight)
    return absl::InvalidArgumentError("rollout correction of a sequence with missing arrays");
  MismatchSums s;
  double d_sum = 0;
  for (int t = 0; t < length; ++t) {
    const double d = static_cast<double>(logp_old[t]) - static_cast<double>(logp_rollout[t]);
    if (!std::isfinite(d))
      return absl::InvalidArgumentError(absl::StrCat("token ", t, " has a non-finite logprob (learner ", logp_old[t],
                                                     ", rollout ", logp_rollout[t], ")"));
    const double dc = std::clamp(d, -kIsLogRatioBound, kIsLogRatioBound);
    s.k3 += std::exp(dc) - dc - 1.0;
    s.abs_diff_max = std::max(s.abs_diff_max, std::fabs(d));
    d_sum += d;
    is_weight[t] = std::exp(dc);
  }
  s.tokens = length;
  if (options.level == IsLevel::kSequence) {
    const double w = std::exp(std::clamp(d_sum, -kIsLogRatioBound, kIsLogRatioBound));
    std::fill(is_weight, is_weight + length, w);
  }
  for (int t = 0; t < length; ++t) {
    double& w = is_weight[t];
    switch (options.correction) {
      case IsCorrection::kNone:
        w = 1.0;
        break;
      case IsCorrection::kTis:
        if (w > options.cap) {
          w = options.cap;
          s.corrected += 1;
        }
        break;
      case IsCorrection::kMis:
        if (w < options.mask_low || w > options.cap) {
          w = 0.0;
          s.corrected += 1;
        }
        break;
    }
  }
  sums->Add(s);
  return absl::OkStatus();
}

absl::StatusOr<LossSums> TokenLoss(const std::vector<SequenceView>& seqs, const LossOptions& options,
                                   const std::vector<float*>& dlogp) {
  if (dlogp.size() != seqs.size())
    return absl::InvalidArgumentError(absl::StrCat("dlogp has ", dlogp.size(), " rows for ", seqs.size(), " sequences"));
  const bool use_kl = options.beta != 0.0;
  const double lo = 1.0 - options.clip_low, hi = 1.0 + options.clip_high;
  LossSums s;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const SequenceView& q = seqs[i];
    if (q.length < 0 || (q.length > 0 && (!q.logp || !q.logp_old || !dlogp[i])))
      return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " has missing arrays"));
    if (use_kl && q.length > 0 && !q.logp_ref)
      return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " has no reference logprobs but beta > 0"));
    const double a = q.advantage, w = q.weight;
    for (int t = 0; t < q.length; ++t) {
      const double lp = q.logp[t];
      const double ratio = std::exp(lp - static_cast<double>(q.logp_old[t]));
      const double clipped_ratio = std::clamp(ratio, lo, hi);
      const double unclipped_obj = ratio * a, clipped_obj = clipped_ratio * a;
      double pg, dpg;  // objective and d objective / d logp
      if (clipped_obj < unclipped_obj) {
        pg = clipped_obj;
        // clamp passes the gradient only strictly inside the range.
        dpg = (ratio > lo && ratio < hi) ? ratio * a : 0.0;
        s.clipped += 1;
      } else {
        pg = unclipped_obj;
        dpg = ratio * a;
      }
      if (q.is_weight) {  // off-policy correction: ω scales the clipped term and its gradient
        pg *= q.is_weight[t];
        dpg *= q.is_weight[t];
      }
      double token_loss = -pg, dtoken = -dpg;
      if (use_kl) {
        const double d = static_cast<double>(q.logp_ref[t]) - lp;
        const double e = std::exp(d);
        const double k3 = e - d - 1.0;
        token_loss += options.beta * k3;
        dtoken += options.beta * (1.0 - e);
        s.kl += w * k3;
      }
      s.loss += w * token_loss;
      s.pg_loss += w * -pg;
      s.neg_logp += -lp;
      s.ratio_max = std::max(s.ratio_max, ratio);
      dlogp[i][t] = static_cast<float>(w * dtoken);
    }
    s.tokens += q.length;
  }
  return s;
}

}  // namespace zerorl::grpo
