#include "common/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "zerorl/v1/reward.pb.h"

namespace zerorl {
namespace {

using ::testing::HasSubstr;

TEST(ConfigTest, GoodFileOverlaysDefaults) {
  auto c = ParseRunConfig(R"(
run_id: demo
seed: 7
learner:
  optimizer:
    lr: 3.0e-4
  grpo:
    loss_aggregation: dr_grpo
rollout:
  group_size: 4
  sampling:
    stop: ["</answer>", "\n\n"]
)", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->run_id(), "demo");
  EXPECT_EQ(c->seed(), 7u);
  EXPECT_DOUBLE_EQ(c->learner().optimizer().lr(), 3e-4);
  EXPECT_DOUBLE_EQ(c->learner().optimizer().beta1(), 0.9);  // default kept
  EXPECT_EQ(c->learner().grpo().loss_aggregation(), zerorl::v1::LOSS_AGGREGATION_DR_GRPO);
  EXPECT_EQ(c->rollout().group_size(), 4);
  EXPECT_EQ(c->rollout().prompts_per_step(), 16);
  ASSERT_EQ(c->rollout().sampling().stop_size(), 2);
  EXPECT_EQ(c->rollout().sampling().stop(1), "\n\n");
  EXPECT_EQ(c->run_dir(), "runs/demo");
  EXPECT_EQ(c->buffer().path(), "runs/demo/buffer");
}

TEST(ConfigTest, UnknownKeyNamesItsPath) {
  auto c = ParseRunConfig("learner:\n  optimizer:\n    learning_rate: 1\n", "t.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("t.yaml:3: learner.optimizer.learning_rate: unknown key"));
  EXPECT_THAT(c.status().message(), HasSubstr("lr"));
}

TEST(ConfigTest, WrongTypeNamesItsPath) {
  auto c = ParseRunConfig("learner:\n  optimizer:\n    lr: fast\n", "t.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("learner.optimizer.lr: expected number, got \"fast\""));

  auto d = ParseRunConfig("rollout:\n  group_size: 2.5\n", "t.yaml");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("rollout.group_size: expected integer"));

  auto e = ParseRunConfig("rollout: [1, 2]\n", "t.yaml");
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(e.status().message(), HasSubstr("rollout: expected a mapping"));

  auto f = ParseRunConfig("learner:\n  grpo:\n    loss_aggregation: mean\n", "t.yaml");
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), HasSubstr("one of grpo|dapo|dr_grpo"));

  auto is = ParseRunConfig("learner:\n  grpo:\n    is_correction: icepop\n", "t.yaml");
  ASSERT_FALSE(is.ok());
  EXPECT_THAT(is.status().message(), HasSubstr("learner.grpo.is_correction"));
  EXPECT_THAT(is.status().message(), HasSubstr("one of none|tis|mis"));
  auto lv = ParseRunConfig("learner:\n  grpo:\n    is_level: batch\n", "t.yaml");
  ASSERT_FALSE(lv.ok());
  EXPECT_THAT(lv.status().message(), HasSubstr("one of token|sequence"));

  auto g = ParseRunConfig("orchestrator:\n  progress: maybe\n", "t.yaml");
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(g.status().message(), HasSubstr("orchestrator.progress: expected boolean"));
}

TEST(ConfigTest, OffPolicyCorrectionParsesAndItsBoundsAreChecked) {
  auto c = ParseRunConfig("learner:\n  grpo:\n    is_correction: mis\n    is_level: sequence\n"
                          "    is_cap: 3.0\n    is_mask_low: 0.25\n", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->learner().grpo().is_correction(), zerorl::v1::IMPORTANCE_CORRECTION_MIS);
  EXPECT_EQ(c->learner().grpo().is_level(), zerorl::v1::IMPORTANCE_LEVEL_SEQUENCE);
  EXPECT_EQ(c->learner().grpo().is_cap(), 3.0);
  EXPECT_EQ(c->learner().grpo().is_mask_low(), 0.25);
  auto d = ParseRunConfig("", "t.yaml");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->learner().grpo().is_correction(), zerorl::v1::IMPORTANCE_CORRECTION_NONE);
  // mis: the mask's lower bound must lie below the cap; tis does not use it.
  auto bad = ParseRunConfig("learner:\n  grpo:\n    is_correction: mis\n    is_mask_low: 2.0\n", "t.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("t.yaml: learner.grpo.is_mask_low: must be below learner.grpo.is_cap"));
  EXPECT_TRUE(ParseRunConfig("learner:\n  grpo:\n    is_correction: tis\n    is_mask_low: 2.0\n", "t.yaml").ok());
}

TEST(ConfigTest, OutOfRangeValueIsRejected) {
  auto c = ParseRunConfig("rollout:\n  sampling:\n    top_p: 1.5\n", "t.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("rollout.sampling.top_p"));
}

TEST(ConfigTest, MalformedYamlIsAnError) {
  auto c = ParseRunConfig("run_id: [unclosed\n", "t.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("invalid YAML"));
}

TEST(ConfigTest, MissingFileIsNotFound) {
  auto c = LoadRunConfig("/nonexistent/zerorl.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("/nonexistent/zerorl.yaml"));
}

TEST(ConfigTest, LoadsFromFileAndErrorLeavesMessageUntouched) {
  std::string path = ::testing::TempDir() + "/cfg.yaml";
  std::ofstream(path) << "run_id: from-file\n";
  auto c = LoadRunConfig(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->run_id(), "from-file");

  zerorl::v1::RunConfig msg = *c;
  ASSERT_FALSE(MergeYamlInto("seed: 3\nnope: 1\n", "x", &msg).ok());
  EXPECT_EQ(msg.seed(), 0u);  // the good key before the bad one was not applied
}

TEST(ConfigTest, RewardSpecRoundTripsThroughYaml) {
  zerorl::v1::RewardSpec spec;
  ASSERT_TRUE(MergeYamlInto(R"(
name: r1zero-math
terms:
  - kind: math
    weight: 1.0
  - kind: format
    weight: 0.2
    format: {strict: true}
)", "spec.yaml", &spec).ok());
  ASSERT_EQ(spec.terms_size(), 2);
  EXPECT_EQ(spec.terms(1).kind(), zerorl::v1::TERM_KIND_FORMAT);
  EXPECT_TRUE(spec.terms(1).format().strict());
  EXPECT_NE(MessageToYaml(spec).find("weight: 0.2\n"), std::string::npos) << MessageToYaml(spec);
  zerorl::v1::RewardSpec back;
  ASSERT_TRUE(MergeYamlInto(MessageToYaml(spec), "emitted", &back).ok()) << MessageToYaml(spec);
  EXPECT_EQ(back.SerializeAsString(), spec.SerializeAsString());
}

TEST(ConfigTest, ExampleConfigsLoad) {
  const char* src = ZERORL_SOURCE_DIR;
  for (const char* f : {"examples/countdown/run.yaml"}) {
    std::string path = std::string(src) + "/" + f;
    std::ifstream probe(path);
    if (!probe) continue;  // examples land with their issues
    auto c = LoadRunConfig(path);
    EXPECT_TRUE(c.ok()) << path << ": " << c.status();
  }
}

}  // namespace
}  // namespace zerorl
