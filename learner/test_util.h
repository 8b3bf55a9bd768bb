// Test-only helpers of the learner tests: random trajectory groups, the GRPO
// and AdamW settings the tests share, and a host copy of a model's weights.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "learner/grpo_trainer.h"
#include "model/model.h"
#include "zerorl/v1/common.pb.h"

namespace zerorl::testing {

// A prompt of 3-7 ids and G samples of 1-10 ids each over the tiny test
// vocabulary (ids 4..98), rollout logprobs, rewards in {0, 0.5, 1} and a
// correct flag. Deterministic in the seed.
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

// DAPO aggregation with clip 0.2 / 0.28, std-normalised advantages (eps 1e-6),
// AdamW betas 0.9 / 0.99, eps 1e-8, grad clip 1.0; each test sets the rest
// (epochs, micro-batch, lr, beta, ...).
inline learner::TrainerOptions BaseTrainerOptions() {
  learner::TrainerOptions o;
  o.grpo.set_clip_low(0.2);
  o.grpo.set_clip_high(0.28);
  o.grpo.set_loss_aggregation(zerorl::v1::LOSS_AGGREGATION_DAPO);
  o.grpo.set_std_normalize(true);
  o.grpo.set_adv_eps(1e-6);
  o.optimizer.set_beta1(0.9);
  o.optimizer.set_beta2(0.99);
  o.optimizer.set_eps(1e-8);
  o.optimizer.set_grad_clip(1.0);
  return o;
}

// The model's weights (NumParams floats), from any backend.
inline std::vector<float> Weights(const model::Model& m) {
  std::vector<float> w(m.NumParams());
  m.DownloadParams(w.data());
  return w;
}

}  // namespace zerorl::testing
