// Run state: atomic save, exact round trip, clear errors.
#include "orchestrator/run_state.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace zerorl {
namespace {

TEST(RunStateTest, RoundTripsEveryField) {
  std::string path = ::testing::TempDir() + "/state_rt.json";
  RunStateRecord s;
  s.run_id = "r1";
  s.state = zerorl::v1::RUN_STATE_PAUSED;
  s.step = 17;
  s.cursor = {2, 5};
  s.rng_state = 0xFFFFFFFFFFFFFFF1ULL;
  s.policy_version = 17;
  s.reward_spec_version = 3;
  s.has_base_eval = true;
  s.base_eval_accuracy = 0.125;
  zerorl::v1::WorkerInfo w;
  w.set_id("rollout-0");
  w.set_role(zerorl::v1::WORKER_ROLE_ROLLOUT);
  w.set_address("127.0.0.1:5");
  s.workers.push_back(w);
  ASSERT_TRUE(SaveRunState(path, s).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto r = LoadRunState(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->run_id, "r1");
  EXPECT_EQ(r->state, zerorl::v1::RUN_STATE_PAUSED);
  EXPECT_EQ(r->step, 17);
  EXPECT_EQ(r->cursor.epoch, 2);
  EXPECT_EQ(r->cursor.index, 5);
  EXPECT_EQ(r->rng_state, 0xFFFFFFFFFFFFFFF1ULL);
  EXPECT_EQ(r->reward_spec_version, 3);
  EXPECT_TRUE(r->has_base_eval);
  EXPECT_DOUBLE_EQ(r->base_eval_accuracy, 0.125);
  ASSERT_EQ(r->workers.size(), 1u);
  EXPECT_EQ(r->workers[0].role(), zerorl::v1::WORKER_ROLE_ROLLOUT);
  EXPECT_EQ(r->workers[0].address(), "127.0.0.1:5");
}

TEST(RunStateTest, MissingAndCorruptFiles) {
  EXPECT_EQ(LoadRunState("/nonexistent/state.json").status().code(), absl::StatusCode::kNotFound);
  std::string path = ::testing::TempDir() + "/state_bad.json";
  std::ofstream(path) << "{\"run_id\": \"x\", \"st";
  auto r = LoadRunState(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("state_bad.json"), std::string::npos);
}

}  // namespace
}  // namespace zerorl
