// Test-only: random GRPO trajectory groups for the learner tests — a prompt of
// 3-7 ids and G samples of 1-10 ids each over the tiny test vocabulary (ids
// 4..98), rollout logprobs, rewards in {0, 0.5, 1} and a correct flag.
// Deterministic in the seed.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "zerorl/v1/common.pb.h"

namespace zerorl::testing {

inline std::vector<zerorl::v1::Group> RandomGroups(uint64_t seed, int n_groups, int G) {
  std::mt19937_64 rng(seed);
  auto tok = [&] { return static_cast<int32_t>(4 + rng() % 95); };
  std::vector<zerorl::v1::Group> groups(n_groups);
  for (auto& g : groups) {
    g.mutable_prompt()->add_token_ids(1);
    for (int i = 0, n = 2 + rng() % 5; i < n; ++i) g.mutable_prompt()->add_token_ids(tok());
    for (int s = 0; s < G; ++s) {
      auto* t = g.add_trajectories();
      for (int i = 0, n = 1 + rng() % 10; i < n; ++i) {
        t->mutable_sample()->add_token_ids(tok());
        t->mutable_sample()->add_logprobs(-0.1f - static_cast<float>(rng() % 300) / 100.f);
      }
      t->mutable_reward()->set_reward(static_cast<double>(rng() % 3) / 2.0);
      t->mutable_reward()->set_correct(rng() % 2);
    }
  }
  return groups;
}

}  // namespace zerorl::testing
