// zerorlctl's pure pieces: trajectory ids, tables, previews, the logprob summary.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <sstream>

#include "cli/ctl_output.h"
#include "cli/ctl_session.h"
#include "cli/ctl_traj_view.h"

namespace zerorl::ctl {
namespace {

// Issue 16 #13: the table shows the key metrics unless asked for more.
TEST(CtlMetricsTest, KeyColumnsByDefaultEveryOneWithAll) {
  const std::set<std::string> present = {"loss", "reward_mean", "kl", "accuracy", "tokens_per_s", "grad_norm",
                                         "eval_accuracy", "entropy", "completion_len_mean", "lr", "clip_frac"};
  EXPECT_EQ(MetricColumns(present, "", false),
            (std::vector<std::string>{"reward_mean", "accuracy", "eval_accuracy", "completion_len_mean", "kl",
                                      "entropy", "tokens_per_s"}));
  const auto all = MetricColumns(present, "", true);
  EXPECT_EQ(all.size(), present.size());
  EXPECT_EQ(all[7], "clip_frac");  // the rest by name
  EXPECT_EQ(MetricColumns(present, "loss, lr", false), (std::vector<std::string>{"loss", "lr"}));
  EXPECT_EQ(MetricColumns({"loss"}, "", false), std::vector<std::string>{"loss"});
}

TEST(CtlIdTest, ParsesAndFormatsRoundTrip) {
  auto id = ParseId("countdown-a/12/3/7");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->run_id(), "countdown-a");
  EXPECT_EQ(id->step(), 12);
  EXPECT_EQ(id->group(), 3);
  EXPECT_EQ(id->sample(), 7);
  EXPECT_EQ(FormatId(*id), "countdown-a/12/3/7");
}

TEST(CtlIdTest, RunMayContainSlashes) {
  auto id = ParseId("team/exp1/4/0/1");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->run_id(), "team/exp1");
  EXPECT_EQ(id->step(), 4);
}

TEST(CtlIdTest, MalformedIdsAreUsageErrorsNamingThePart) {
  for (const char* bad : {"r/1/2", "r/x/2/3", "r/1/-2/3", "/1/2/3", "r/1/2/3.5", ""}) {
    auto id = ParseId(bad);
    ASSERT_FALSE(id.ok()) << bad;
    EXPECT_EQ(ExitCodeFor(id.status()), 2) << bad;
    EXPECT_NE(std::string(id.status().message()).find("RUN/STEP/GROUP/SAMPLE"), std::string::npos);
  }
}

TEST(CtlTableTest, AlignsColumnsByDisplayWidth) {
  Table t({"ID", "REWARD", "TEXT"});
  t.AddRow({"r/1/0/0", "1", "a\nb"});
  t.AddRow({"r/10/0/12", "0.25", "x"});
  std::ostringstream out;
  t.Print(out);
  EXPECT_EQ(out.str(),
            "ID         REWARD  TEXT\n"
            "r/1/0/0    1       a⏎b\n"
            "r/10/0/12  0.25    x\n");
}

TEST(CtlFormatTest, PreviewCutsByCodePoints) {
  EXPECT_EQ(Preview("héllo world", 5), "héllo…");
  EXPECT_EQ(Preview("short", 10), "short");
  EXPECT_EQ(Preview("a\nb", 10), "a⏎b");
}

TEST(CtlFormatTest, AgesAndTimes) {
  EXPECT_EQ(FormatAge(0, 1000), "-");
  EXPECT_EQ(FormatAge(10'000, 15'000), "5s ago");
  EXPECT_EQ(FormatAge(0 + 1, 1 + 600'000), "10m ago");
  EXPECT_EQ(FormatTime(1'700'000'000'000), "2023-11-14 22:13:20");
  EXPECT_EQ(FormatNumber(0.123456), "0.1235");
  EXPECT_EQ(FormatNumber(std::nan("")), "-");
}

TEST(CtlJsonTest, UsesProtoFieldNamesAndPrintsDefaults) {
  zerorl::v1::TrajectoryId id;
  id.set_run_id("r");
  id.set_step(3);
  std::string json = ToJson(id, false);
  EXPECT_EQ(json, R"({"run_id":"r","step":"3","group":0,"sample":0})");
}

zerorl::v1::Sample CharSample() {
  zerorl::v1::Sample s;
  s.set_text("a+bé");
  for (int id : {10, 11, 12, 13}) s.add_token_ids(id);
  for (float lp : {-0.1f, -3.0f, -0.5f, -2.0f}) s.add_logprobs(lp);
  return s;
}

TEST(CtlLogprobTest, LowestTokensWithTextUnderCharVocabulary) {
  LogprobSummary lp = SummarizeLogprobs(CharSample(), 3);
  EXPECT_EQ(lp.tokens, 4);
  EXPECT_NEAR(lp.mean, -1.4, 1e-6);
  EXPECT_FLOAT_EQ(lp.min, -3.0f);
  ASSERT_TRUE(lp.has_text);
  ASSERT_EQ(lp.lowest.size(), 3u);
  EXPECT_EQ(lp.lowest[0].position, 1);
  EXPECT_EQ(lp.lowest[0].token_id, 11);
  EXPECT_EQ(lp.lowest[0].text, "+");
  EXPECT_EQ(lp.lowest[1].position, 3);
  EXPECT_EQ(lp.lowest[1].text, "é");
  EXPECT_EQ(lp.lowest[2].position, 2);
}

TEST(CtlLogprobTest, IdsOnlyWhenTokensDoNotMapToCharacters) {
  zerorl::v1::Sample s = CharSample();
  s.set_text("a+b é!");  // 6 code points for 4 tokens: a BPE vocabulary
  LogprobSummary lp = SummarizeLogprobs(s, 5);
  EXPECT_FALSE(lp.has_text);
  ASSERT_EQ(lp.lowest.size(), 4u);
  EXPECT_TRUE(lp.lowest[0].text.empty());
  EXPECT_EQ(lp.lowest[0].token_id, 11);
}

TEST(CtlTrajectoryViewTest, ShowsTermsVersionsAndLogprobs) {
  zerorl::v1::Trajectory t;
  t.mutable_id()->set_run_id("r");
  t.mutable_id()->set_step(2);
  t.mutable_prompt()->set_text("Using [1, 2] make 3");
  t.mutable_prompt()->mutable_answer()->mutable_countdown()->set_target(3);
  *t.mutable_sample() = CharSample();
  t.mutable_sample()->set_policy_version(7);
  t.mutable_reward()->set_reward(1.1);
  t.mutable_reward()->set_spec_version(4);
  auto* term = t.mutable_reward()->add_terms();
  term->set_name("countdown");
  term->set_value(1);
  term->set_weight(1);
  term->set_verdict("correct");
  std::ostringstream out;
  PrintTrajectory(out, t);
  const std::string s = out.str();
  EXPECT_NE(s.find("trajectory     r/2/0/0"), std::string::npos) << s;
  EXPECT_NE(s.find("policy         version 7"), std::string::npos) << s;
  EXPECT_NE(s.find("reward spec    version 4"), std::string::npos) << s;
  EXPECT_NE(s.find("countdown  1      1       1         correct"), std::string::npos) << s;
  EXPECT_NE(s.find("target 3"), std::string::npos) << s;
  EXPECT_NE(s.find("\"+\""), std::string::npos) << s;
  EXPECT_NE(s.find("mean -1.4000"), std::string::npos) << s;
  EXPECT_EQ(s.find("routing "), std::string::npos) << "no routing record, no routing line: " << s;
}

TEST(CtlTrajectoryViewTest, SummarisesARoutingReplayRecord) {
  zerorl::v1::Trajectory t;
  *t.mutable_sample() = CharSample();
  zerorl::v1::RoutingRecord* rec = t.mutable_sample()->mutable_routing();
  rec->set_moe_layers(3);
  rec->set_top_k(2);
  rec->set_n_experts(8);
  rec->set_tokens(4);
  std::string ids(4 * 3 * 2, '\5');
  ids[0] = '\1';
  rec->set_expert_ids(ids);
  std::ostringstream out;
  PrintTrajectory(out, t);
  EXPECT_NE(out.str().find("routing        4 tokens x 3 MoE layers x top-2 of 8 experts (uint8, 24 bytes); most "
                           "used expert 5 (95% of picks)"),
            std::string::npos)
      << out.str();
}

}  // namespace
}  // namespace zerorl::ctl
