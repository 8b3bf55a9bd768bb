// `zerorl score`: scores a JSONL file of completions under a spec; a malformed
// line gets an error row naming its line, the others are scored.
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"

namespace zerorl {
namespace {

std::string WriteTemp(const std::string& name, const std::string& content) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << content;
  return path;
}

TEST(ScoreCommand, ScoresJsonlAndReportsMalformedLines) {
  std::string in = WriteTemp("score_in.jsonl",
                             "{\"id\": \"a\", \"completion\": \"\\\\boxed{18}\", \"answer\": \"18\"}\n"
                             "this is not json\n"
                             "{\"id\": \"c\", \"completion\": \"\\\\boxed{7}\", \"answer\": \"8\"}\n"
                             "{\"id\": \"d\", \"answer\": \"8\"}\n");
  std::string out = ::testing::TempDir() + "/score_out.jsonl";
  std::string spec = std::string(ZERORL_SOURCE_DIR) + "/examples/rewards/math.yaml";
  std::vector<std::string> args = {"score", "--spec", spec, "--in", in, "--out", out, "--threads", "2"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ASSERT_EQ(ScoreCommand(static_cast<int>(argv.size()), argv.data()), 0);
  std::ifstream f(out);
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(f, line)) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0]["id"], "a");
  EXPECT_DOUBLE_EQ(rows[0]["reward"].get<double>(), 1.0);
  EXPECT_EQ(rows[0]["spec_version"], 1);
  EXPECT_EQ(rows[0]["verdicts"]["accuracy"], "correct");
  EXPECT_NE(rows[1]["error"].get<std::string>().find(":2:"), std::string::npos);
  EXPECT_DOUBLE_EQ(rows[1]["reward"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(rows[2]["reward"].get<double>(), 0.0);
  EXPECT_EQ(rows[2]["verdicts"]["accuracy"], "wrong");
  EXPECT_NE(rows[3]["error"].get<std::string>().find("completion"), std::string::npos);
}

int RunScore(std::vector<std::string> args, std::string* err) {
  args.insert(args.begin(), "score");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStderr();
  const int rc = ScoreCommand(static_cast<int>(argv.size()), argv.data());
  *err = ::testing::internal::GetCapturedStderr();
  return rc;
}

// Issue 16 #6: an id or answer.inputs nested 100k deep crashed the process
// (stack overflow); now that line is reported malformed and the rest scored.
TEST(ScoreCommand, DeeplyNestedLinesAreMalformedNotACrash) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  std::string in = WriteTemp("score_deep.jsonl",
                             "{\"id\": " + deep + ", \"completion\": \"x\", \"answer\": \"1\"}\n"
                             "{\"id\": \"b\", \"completion\": \"x\", \"answer\": {\"inputs\": " + deep +
                                 ", \"outputs\": []}}\n"
                             "{\"id\": \"c\", \"completion\": \"\\\\boxed{7}\", \"answer\": \"7\"}\n");
  const std::string out = ::testing::TempDir() + "/score_deep_out.jsonl";
  const std::string spec = std::string(ZERORL_SOURCE_DIR) + "/examples/rewards/math.yaml";
  std::string err;
  ASSERT_EQ(RunScore({"--spec", spec, "--in", in, "--out", out, "--threads", "1"}, &err), 0) << err;
  std::ifstream f(out);
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(f, line)) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_NE(rows[0]["error"].get<std::string>().find(":1: JSON nested deeper than"), std::string::npos) << rows[0];
  EXPECT_NE(rows[1]["error"].get<std::string>().find(":2: JSON nested deeper than"), std::string::npos) << rows[1];
  EXPECT_DOUBLE_EQ(rows[2]["reward"].get<double>(), 1.0);
}

// Issue 16 #8, #13: --threads 100000 aborted after 33 s; a directory as --in
// scored 0 lines and exited 0.
TEST(ScoreCommand, BadThreadsAndADirectoryAreRefused) {
  const std::string spec = std::string(ZERORL_SOURCE_DIR) + "/examples/rewards/math.yaml";
  const std::string in = WriteTemp("score_one.jsonl", "{\"completion\": \"x\", \"answer\": \"1\"}\n");
  std::string err;
  EXPECT_EQ(RunScore({"--spec", spec, "--in", in, "--threads", "100000"}, &err), 2);
  EXPECT_NE(err.find("--threads: 100000 threads; expected 0 (all cores) to 1024"), std::string::npos) << err;
  EXPECT_EQ(RunScore({"--spec", spec, "--in", ::testing::TempDir()}, &err), 1);
  EXPECT_NE(err.find("not a file (a directory)"), std::string::npos) << err;
}

}  // namespace
}  // namespace zerorl
