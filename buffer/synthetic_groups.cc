// Deterministic synthetic trajectory groups (see synthetic_groups.h).
#include "buffer/synthetic_groups.h"

#include "absl/strings/str_cat.h"

namespace zerorl::buffer {

namespace {
// splitmix64: a tiny deterministic generator, enough for synthetic content.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

zerorl::v1::Group SyntheticGroup(const std::string& run, int64_t step, int32_t group, const GroupShape& shape,
                                 uint64_t seed, bool uniform_reward) {
  zerorl::v1::Group g;
  g.mutable_id()->set_run_id(run);
  g.mutable_id()->set_step(step);
  g.mutable_id()->set_group(group);
  auto* p = g.mutable_prompt();
  p->set_id(absl::StrCat("p", group % 8));
  p->set_text(absl::StrCat("Question ", group % 8, ": what is ", group % 8, " + ", step % 5, "?"));
  p->set_dataset("synthetic");
  p->mutable_answer()->set_math(absl::StrCat(group % 8 + step % 5));
  uint64_t h = Mix(seed ^ Mix(static_cast<uint64_t>(step) * 1000003u + static_cast<uint64_t>(group)));
  for (int i = 0; i < shape.group_size; ++i) {
    auto* t = g.add_trajectories();
    t->mutable_id()->set_run_id(run);
    t->mutable_id()->set_step(step);
    t->mutable_id()->set_group(group);
    t->mutable_id()->set_sample(i);
    auto* s = t->mutable_sample();
    s->set_index(i);
    std::string text;
    text.reserve(static_cast<size_t>(shape.completion_tokens * shape.text_chars_per_token));
    for (int k = 0; k < shape.completion_tokens; ++k) {
      h = Mix(h);
      s->add_token_ids(static_cast<int32_t>(h % 50000));
      if (shape.logprobs) {
        s->add_logprobs(-static_cast<float>(h % 1000) / 100.0f);
        s->add_sampling_logprobs(-static_cast<float>((h >> 16) % 1000) / 100.0f);
      }
      for (int c = 0; c < shape.text_chars_per_token; ++c) text.push_back(static_cast<char>('a' + (h >> (c * 5)) % 26));
    }
    s->set_text(std::move(text));
    s->set_finish_reason(i % 2 == 0 ? zerorl::v1::FINISH_REASON_STOP : zerorl::v1::FINISH_REASON_LENGTH);
    s->set_policy_version(step);
    s->set_worker("synthetic");
    double reward = uniform_reward ? 1.0 : i == 0 ? 1.0 : i == 1 ? 0.0 : static_cast<double>(Mix(h) % 2);
    auto* r = t->mutable_reward();
    r->set_reward(reward);
    r->set_correct(reward > 0.5);
    r->set_spec_version(1);
    auto* term = r->add_terms();
    term->set_name("accuracy");
    term->set_value(reward);
    term->set_weight(1.0);
    term->set_verdict(reward > 0.5 ? "correct" : "wrong");
    t->set_created_unix_ms(1700000000000 + step);
  }
  return g;
}

}  // namespace zerorl::buffer
