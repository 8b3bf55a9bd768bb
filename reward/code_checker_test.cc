// Code checker tests: stdin/stdout and call-based tests, partial credit,
// all-or-nothing, per-test verdicts, and a solution hunting expected outputs.
#include "reward/code_checker.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace zerorl::reward {
namespace {

class CodeCheckerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { sandbox_ = Sandbox::Create({}).value().release(); }
  static void TearDownTestSuite() { delete sandbox_; }
  CodeCheckResult Check(const std::string& completion, const std::string& tests_json, bool all = false) {
    auto tests = ParseCodeTests(tests_json);
    EXPECT_TRUE(tests.ok()) << tests.status();
    SandboxLimits l;
    l.cpu_seconds = 1;
    l.wall_ms = 1500;
    CodeCheckOptions o;
    o.all_or_nothing = all;
    return CheckCode(*sandbox_, completion, *tests, o, l);
  }
  static Sandbox* sandbox_;
};
Sandbox* CodeCheckerTest::sandbox_ = nullptr;

constexpr const char* kSumTests = R"({"inputs": ["1 2\n", "3 4\n", "10 -3\n"], "outputs": ["3\n", "7\n", "7"]})";

TEST(CodeParsing, ExtractsFencedCode) {
  EXPECT_EQ(ExtractPythonCode("text\n```python\nprint(1)\n```\nmore"), "print(1)\n");
  EXPECT_EQ(ExtractPythonCode("```python\nA\n```\n```python\nB\n```"), "B\n");
  EXPECT_EQ(ExtractPythonCode("```\nprint(2)\n```"), "print(2)\n");
  EXPECT_EQ(ExtractPythonCode("print(3)"), "print(3)");
}

TEST(CodeParsing, OutputComparison) {
  EXPECT_TRUE(OutputsMatch("1 2  \n3\n\n", "1 2\n3"));
  EXPECT_FALSE(OutputsMatch("1\n2\n", "1\n"));   // extra line
  EXPECT_FALSE(OutputsMatch("1\n", "1\n2\n"));   // missing line
  EXPECT_FALSE(OutputsMatch(" 1\n", "1\n"));     // leading space matters
}

TEST(CodeParsing, BadTestsAreNamed) {
  EXPECT_FALSE(ParseCodeTests("nope").ok());
  EXPECT_NE(ParseCodeTests(R"({"inputs": ["1"], "outputs": []})").status().message().find("1 inputs but 0"),
            std::string::npos);
  EXPECT_FALSE(ParseCodeTests(R"({"outputs": []})").ok());
}

TEST_F(CodeCheckerTest, CorrectSolutionPassesAll) {
  auto r = Check("```python\na, b = map(int, input().split())\nprint(a + b)\n```", kSumTests);
  EXPECT_DOUBLE_EQ(r.score, 1.0) << r.detail;
  EXPECT_EQ(r.verdicts, (std::vector<std::string>{"passed", "passed", "passed"}));
}

TEST_F(CodeCheckerTest, PartialCreditAndAllOrNothing) {
  std::string sol = "```python\na, b = map(int, input().split())\nprint(7 if a == 3 else a + b + (a == 10))\n```";
  auto r = Check(sol, kSumTests);
  EXPECT_NEAR(r.score, 2.0 / 3.0, 1e-12);
  EXPECT_EQ(r.verdicts[2], "wrong");
  auto all = Check("```python\nprint(0)\n```", kSumTests, true);
  EXPECT_DOUBLE_EQ(all.score, 0.0);
  EXPECT_EQ(all.verdicts, (std::vector<std::string>{"wrong", "skipped", "skipped"}));
}

TEST_F(CodeCheckerTest, VerdictsForFailures) {
  auto tests = R"({"inputs": ["1\n"], "outputs": ["1\n"]})";
  EXPECT_EQ(Check("while True: pass", tests).verdicts[0], "timeout");
  EXPECT_EQ(Check("raise SystemExit(3)", tests).verdicts[0], "runtime_error");
  EXPECT_EQ(Check("x = bytearray(4 * 1024**3)", tests).verdicts[0], "killed_by_limit");
  EXPECT_EQ(Check("import sys\nwhile True: sys.stdout.write('1' * 100000)", tests).verdicts[0], "killed_by_limit");
}

TEST_F(CodeCheckerTest, CallBasedTests) {
  auto tests = R"({"fn_name": "add", "inputs": [[1, 2], [5, 5]], "outputs": [[3], [10]]})";
  EXPECT_DOUBLE_EQ(Check("def add(a, b):\n    return a + b\n", tests).score, 1.0);
  EXPECT_DOUBLE_EQ(Check("class Solution:\n    def add(self, a, b):\n        return a + b\n", tests).score, 1.0);
  EXPECT_DOUBLE_EQ(Check("def add(a, b):\n    return a - b\n", tests).score, 0.0);
}

// A solution that searches the disk for the expected outputs finds nothing:
// they never enter the sandbox, and the dataset on disk is not readable.
TEST_F(CodeCheckerTest, CannotReadExpectedOutputsFromDisk) {
  std::string dir = ::testing::TempDir() + "/code_dataset";
  std::filesystem::create_directories(dir);
  chmod(dir.c_str(), 0700);
  std::ofstream(dir + "/tests.json") << "EXPECTED-98765";
  auto tests = R"({"inputs": ["x\n"], "outputs": ["EXPECTED-98765\n"]})";
  std::string hunter =
      "import os\n"
      "for root in ['" + dir + "', '/tmp', '.', '/proc']:\n"
      "  for d, _, fs in os.walk(root):\n"
      "    for f in fs[:200]:\n"
      "      try:\n"
      "        t = open(os.path.join(d, f), errors='ignore').read(100000)\n"
      "        i = t.find('EXPECTED-')\n"
      "        if i >= 0:\n"
      "          print(t[i:i+14]); raise SystemExit(0)\n"
      "      except Exception:\n"
      "        pass\n"
      "print('nothing')\n";
  auto r = Check(hunter, tests);
  EXPECT_DOUBLE_EQ(r.score, 0.0) << r.detail;
}

}  // namespace
}  // namespace zerorl::reward
