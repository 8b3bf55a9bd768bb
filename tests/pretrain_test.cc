// `zerorl pretrain` as a real process: a tiny run writes a loadable checkpoint
// and the demo's task splits, is deterministic in its seed, reports the base's
// eval accuracy and how often its think concludes right, and refuses bad flags;
// the same for `--task countdown-hard` (make demo-hard's base).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "tests/testing/subprocess.h"

namespace zerorl {
namespace {

using testing::ZerorlBin;

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

size_t Lines(const std::string& path) {
  std::ifstream f(path);
  size_t n = 0;
  for (std::string line; std::getline(f, line);) n += !line.empty();
  return n;
}

std::vector<std::string> TinyPretrain(const std::string& out, const std::string& tasks) {
  return {ZerorlBin(), "pretrain", "--out", out, "--write-tasks", tasks, "--steps", "4", "--batch", "4",
          "--hidden", "32", "--layers", "2", "--eval-size", "5", "--seed", "3", "--threads", "1"};
}

TEST(PretrainTest, WritesCheckpointAndSplitsDeterministically) {
  const std::string dir = testing::MakeTempDir("pretrain");
  std::string out;
  ASSERT_EQ(testing::RunCommand(TinyPretrain(dir + "/a", dir + "/tasks"), &out, std::chrono::seconds(300)), 0) << out;
  EXPECT_NE(out.find("base greedy eval accuracy"), std::string::npos) << out;
  EXPECT_NE(out.find("think concludes right"), std::string::npos) << out;
  EXPECT_NE(Slurp(dir + "/a/config.json").find("deepseek_v3"), std::string::npos);
  const std::string weights = Slurp(dir + "/a/model.safetensors");
  ASSERT_GT(weights.size(), 1000u);
  // All two-number tasks over [1, 12]: the demo's 319 + 100, here split 414 + 5.
  EXPECT_EQ(Lines(dir + "/tasks/eval.jsonl"), 5u);
  EXPECT_EQ(Lines(dir + "/tasks/train.jsonl") + Lines(dir + "/tasks/eval.jsonl"), 419u);

  ASSERT_EQ(testing::RunCommand(TinyPretrain(dir + "/b", dir + "/tasks2"), &out, std::chrono::seconds(300)), 0) << out;
  EXPECT_TRUE(Slurp(dir + "/b/model.safetensors") == weights) << "same seed, different checkpoint";
  EXPECT_EQ(Slurp(dir + "/tasks2/eval.jsonl"), Slurp(dir + "/tasks/eval.jsonl"));
}

// `make demo-hard`'s base: the countdown-hard task's splits (3–4 numbers,
// targets within bounds) and a checkpoint with room for its longer completions.
// --train-size trims the train split without moving the eval split (which the
// corpus stays clear of).
TEST(PretrainTest, CountdownHardWritesItsSplitsAndCheckpoint) {
  const std::string dir = testing::MakeTempDir("pretrain-hard");
  auto args = [&](const std::string& out, const std::string& tasks, const std::string& train_size) {
    return std::vector<std::string>{ZerorlBin(), "pretrain", "--task", "countdown-hard", "--out", out, "--write-tasks",
                                    tasks, "--tasks", "60", "--eval-size", "10", "--train-size", train_size,
                                    "--steps", "3", "--batch", "4", "--hidden", "32", "--layers", "2", "--threads", "1"};
  };
  std::string out;
  ASSERT_EQ(testing::RunCommand(args(dir + "/a", dir + "/tasks", "20"), &out, std::chrono::seconds(300)), 0) << out;
  EXPECT_NE(out.find("attempts and"), std::string::npos) << out;
  EXPECT_NE(Slurp(dir + "/a/config.json").find("\"max_position_embeddings\": 512"), std::string::npos)
      << Slurp(dir + "/a/config.json");
  EXPECT_EQ(Lines(dir + "/tasks/eval.jsonl"), 10u);
  EXPECT_EQ(Lines(dir + "/tasks/train.jsonl"), 20u);
  std::ifstream eval(dir + "/tasks/eval.jsonl");
  for (std::string line; std::getline(eval, line);) {
    const size_t open = line.find('['), close = line.find(']');
    ASSERT_NE(close, std::string::npos) << line;
    const std::string nums = line.substr(open + 1, close - open - 1);
    const size_t count = std::count(nums.begin(), nums.end(), ',') + 1;
    EXPECT_TRUE(count == 3 || count == 4) << line;
    const long target = std::stol(line.substr(line.find("\"target\": ") + 10));
    EXPECT_GE(target, 1) << line;
    EXPECT_LE(target, 50) << line;
  }
  ASSERT_EQ(testing::RunCommand(args(dir + "/b", dir + "/tasks2", "0"), &out, std::chrono::seconds(300)), 0) << out;
  EXPECT_EQ(Slurp(dir + "/tasks2/eval.jsonl"), Slurp(dir + "/tasks/eval.jsonl"));
  EXPECT_EQ(Lines(dir + "/tasks2/train.jsonl"), 50u);
  EXPECT_TRUE(Slurp(dir + "/b/model.safetensors") == Slurp(dir + "/a/model.safetensors"))
      << "--train-size changed the base";
}

// Runs `zerorl pretrain ARGS` with stderr folded into the captured output.
int PretrainWithStderr(std::vector<std::string> args, std::string* out) {
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" pretrain \"$@\" 2>&1", ZerorlBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing::RunCommand(argv, out, std::chrono::seconds(60));
}

TEST(PretrainTest, RefusesBadFlagsByName) {
  const std::string dir = testing::MakeTempDir("pretrain-bad");
  std::string out;
  EXPECT_EQ(PretrainWithStderr({"--out", dir + "/x", "--correct-fraction", "1.5"}, &out), 2);
  EXPECT_NE(out.find("--correct-fraction"), std::string::npos) << out;
  EXPECT_FALSE(std::ifstream(dir + "/x/model.safetensors").good()) << "wrote a checkpoint despite the bad flag";
  EXPECT_EQ(PretrainWithStderr({"--steps", "1"}, &out), 2);
  EXPECT_NE(out.find("--out"), std::string::npos) << out;
  EXPECT_EQ(PretrainWithStderr({"--out", dir + "/x", "--task", "countdown-harder"}, &out), 2);
  EXPECT_NE(out.find("--task"), std::string::npos) << out;
  EXPECT_EQ(PretrainWithStderr({"--out", dir + "/x", "--task", "countdown-hard", "--continue-prob", "1.5"}, &out), 2);
  EXPECT_NE(out.find("--continue-prob"), std::string::npos) << out;
  EXPECT_FALSE(std::ifstream(dir + "/x/model.safetensors").good()) << "wrote a checkpoint despite the bad flag";
}

}  // namespace
}  // namespace zerorl
