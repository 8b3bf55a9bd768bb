// How `zerorlctl traj show` renders one trajectory: the text, each reward term,
// the versions, and a summary of the per-token logprobs.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "zerorl/v1/common.pb.h"

namespace zerorl::ctl {

struct LowToken {
  int position = 0;      // index in the completion's tokens
  int32_t token_id = 0;
  double logprob = 0;    // natural log, under the raw policy
  std::string text;      // the token's text when known (see SummarizeLogprobs), else empty
};

struct LogprobSummary {
  int tokens = 0;             // tokens with a logprob
  double mean = 0;            // mean logprob (nats/token)
  double min = 0;
  std::vector<LowToken> lowest;  // the k lowest-probability tokens, lowest first
  bool has_text = false;         // token texts are known
};

// Summarizes sample.logprobs. Token texts are known only when the completion
// has exactly one code point per token (the built-in character vocabulary);
// otherwise the tokens are shown by id (no tokenizer on the client).
LogprobSummary SummarizeLogprobs(const zerorl::v1::Sample& sample, int k);

// The human-readable view of `t` (the table output of `traj show`).
void PrintTrajectory(std::ostream& out, const zerorl::v1::Trajectory& t);

// One line per term: name, value, weight, weighted value, verdict, detail.
void PrintTerms(std::ostream& out, const zerorl::v1::RewardResult& r, const std::string& indent);

}  // namespace zerorl::ctl
