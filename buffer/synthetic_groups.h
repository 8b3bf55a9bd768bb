// Deterministic synthetic trajectory groups for tests, the crash test writer and
// `zerorl bench buffer`. Content is a pure function of (id, shape, seed), so a
// reader can regenerate what a writer stored and compare byte for byte.
#pragma once

#include <cstdint>
#include <string>

#include "zerorl/v1/common.pb.h"

namespace zerorl::buffer {

struct GroupShape {
  int group_size = 4;          // G completions
  int completion_tokens = 16;  // tokens per completion
  bool logprobs = true;        // fill logprobs and sampling_logprobs (one float per token each)
  int text_chars_per_token = 4;
};

// Group RUN/step/group with G trajectories. Rewards are 0/1 from the seed (sample
// 0 always 1, sample 1 always 0 when G > 1, so groups are not uniform unless
// `uniform_reward` is set); policy version = step; prompt id "p<group % 8>";
// finish reason alternates STOP/LENGTH by sample parity.
zerorl::v1::Group SyntheticGroup(const std::string& run, int64_t step, int32_t group, const GroupShape& shape,
                                 uint64_t seed = 0, bool uniform_reward = false);

}  // namespace zerorl::buffer
