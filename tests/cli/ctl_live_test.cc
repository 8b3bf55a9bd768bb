// zerorlctl against a live in-process deployment (buffer and reward actors on
// one port, as `zerorl run` serves them): every traj and reward command, each
// output mode, filters returning exactly the matching trajectories, tail
// receiving new ones, a reward swap seen in the versions of the next scores,
// and admin calls refused without the token (exit 4).
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include <grpcpp/create_channel.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/ctl_output.h"
#include "tests/cli/ctl_fixture.h"
#include "tests/testing/subprocess.h"
#include "zerorl/v1/reward.grpc.pb.h"

namespace zerorl::ctl::testing {
namespace {

namespace v1 = zerorl::v1;

constexpr int kSteps = 5, kGroups = 2, kSamples = 4;  // run "ctl": 40 trajectories

class CtlLiveTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    deployment_ = Deployment::Start("ctl-live").release();
    ASSERT_NE(deployment_, nullptr);
    ASSERT_TRUE(deployment_->Append(CraftedGroups("ctl", 0, kSteps, kGroups, kSamples)));
    ASSERT_TRUE(deployment_->Append(CraftedGroups("other", 0, 1, 1, 2)));
    ASSERT_TRUE(deployment_->Append(CraftedGroups("big", 0, 10, 5, 6)));
  }
  static void TearDownTestSuite() {
    delete deployment_;
    deployment_ = nullptr;
  }

  // zerorlctl --addr <deployment> ARGS...
  CtlResult Run(std::vector<std::string> args, Runtime* rt = nullptr) {
    args.insert(args.begin(), {"--addr", deployment_->addr()});
    return Ctl(std::move(args), rt);
  }

  // Ids of run "ctl" for which `pred` holds, in (step, group, sample) order.
  static std::vector<std::string> Expected(const std::function<bool(const v1::Trajectory&)>& pred) {
    std::vector<std::string> ids;
    for (int step = 0; step < kSteps; ++step)
      for (int g = 0; g < kGroups; ++g)
        for (int s = 0; s < kSamples; ++s) {
          v1::Trajectory t = Crafted("ctl", step, g, s);
          if (pred(t)) ids.push_back(FormatId(t.id()));
        }
    return ids;
  }

  static std::vector<std::string> Sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  }

  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = deployment_->dir() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  static Deployment* deployment_;
};
Deployment* CtlLiveTest::deployment_ = nullptr;

TEST_F(CtlLiveTest, FiltersReturnExactlyTheMatchingTrajectories) {
  struct Case {
    std::vector<std::string> flags;
    std::function<bool(const v1::Trajectory&)> pred;
  };
  auto step = [](const v1::Trajectory& t) { return t.id().step(); };
  auto reward = [](const v1::Trajectory& t) { return t.reward().reward(); };
  std::vector<Case> cases = {
      {{}, [](const v1::Trajectory&) { return true; }},
      {{"--step", "1:3"}, [&](const v1::Trajectory& t) { return step(t) >= 1 && step(t) <= 3; }},
      {{"--step", "2"}, [&](const v1::Trajectory& t) { return step(t) == 2; }},
      {{"--step", "3:"}, [&](const v1::Trajectory& t) { return step(t) >= 3; }},
      {{"--step", ":1"}, [&](const v1::Trajectory& t) { return step(t) <= 1; }},
      {{"--min-reward", "0.5"}, [&](const v1::Trajectory& t) { return reward(t) >= 0.5; }},
      {{"--max-reward", "0.25"}, [&](const v1::Trajectory& t) { return reward(t) <= 0.25; }},
      {{"--min-reward", "0.25", "--max-reward", "0.75"},
       [&](const v1::Trajectory& t) { return reward(t) >= 0.25 && reward(t) <= 0.75; }},
      {{"--version", "1"}, [](const v1::Trajectory& t) { return t.sample().policy_version() == 1; }},
      {{"--finish", "length"},
       [](const v1::Trajectory& t) { return t.sample().finish_reason() == v1::FINISH_REASON_LENGTH; }},
      {{"--finish", "stop"},
       [](const v1::Trajectory& t) { return t.sample().finish_reason() == v1::FINISH_REASON_STOP; }},
      {{"--contains", "needle"},
       [](const v1::Trajectory& t) { return t.sample().text().find("needle") != std::string::npos; }},
      {{"--contains", "equals 7"}, [](const v1::Trajectory& t) { return t.id().group() == 1; }},  // prompt text
      {{"--prompt-id", "countdown-0"}, [](const v1::Trajectory& t) { return t.id().group() == 0; }},
      {{"--step", "1:4", "--min-reward", "0.5", "--finish", "stop"},
       [&](const v1::Trajectory& t) {
         return step(t) >= 1 && step(t) <= 4 && reward(t) >= 0.5 &&
                t.sample().finish_reason() == v1::FINISH_REASON_STOP;
       }},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"-o", "jsonl", "traj", "list", "--run", "ctl", "--limit", "0"};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    CtlResult r = Run(args);
    std::string what = absl::StrJoin(c.flags, " ");
    ASSERT_EQ(r.code, 0) << what << ": " << r.err;
    std::vector<std::string> expected = Expected(c.pred);
    EXPECT_FALSE(expected.empty()) << "case selects nothing: " << what;
    EXPECT_EQ(Sorted(JsonlIds(r.out)), Sorted(expected)) << what;
  }
}

TEST_F(CtlLiveTest, LimitAndPagingCoverTheRunOnce) {
  CtlResult r = Run({"-o", "jsonl", "traj", "list", "--run", "ctl", "--limit", "5"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> five = JsonlIds(r.out);
  ASSERT_EQ(five.size(), 5u);
  std::vector<std::string> all = Expected([](const v1::Trajectory&) { return true; });
  for (const auto& id : five) EXPECT_NE(std::find(all.begin(), all.end(), id), all.end()) << id;

  // 300 trajectories: more than one page (256) of ListTrajectories.
  r = Run({"-o", "jsonl", "traj", "list", "--run", "big", "--limit", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> big = JsonlIds(r.out);
  EXPECT_EQ(big.size(), 300u);
  EXPECT_EQ(std::set<std::string>(big.begin(), big.end()).size(), 300u) << "a trajectory listed twice";
  // The default limit is 50.
  r = Run({"-o", "jsonl", "traj", "list", "--run", "big"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(JsonlIds(r.out).size(), 50u);
}

TEST_F(CtlLiveTest, ListInEachOutputMode) {
  const std::vector<std::string> filter = {"traj", "list", "--run", "ctl", "--step", "2", "--finish", "length"};
  std::vector<std::string> expected = Expected([](const v1::Trajectory& t) {
    return t.id().step() == 2 && t.sample().finish_reason() == v1::FINISH_REASON_LENGTH;
  });
  ASSERT_EQ(expected.size(), 2u);

  CtlResult table = Run(filter);
  ASSERT_EQ(table.code, 0) << table.err;
  std::vector<std::string> lines = absl::StrSplit(table.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << table.out;
  EXPECT_EQ(lines[0].rfind("ID", 0), 0u);
  for (const char* col : {"STEP", "REWARD", "LEN", "FINISH", "POLICY", "SPEC"})
    EXPECT_NE(lines[0].find(col), std::string::npos) << col;
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(lines[i + 1].rfind(expected[i] + " ", 0), 0u) << lines[i + 1];
    EXPECT_NE(lines[i + 1].find("length"), std::string::npos);
  }
  // Columns are aligned: each row's STEP starts where the header's does.
  const size_t step_col = lines[0].find("STEP");
  for (size_t i = 1; i < lines.size(); ++i) EXPECT_EQ(lines[i].substr(step_col, 2), "2 ") << lines[i];

  std::vector<std::string> json_args = {"-o", "json"};
  json_args.insert(json_args.end(), filter.begin(), filter.end());
  CtlResult json = Run(json_args);
  ASSERT_EQ(json.code, 0) << json.err;
  auto doc = nlohmann::json::parse(json.out);
  ASSERT_EQ(doc.at("trajectories").size(), 2u);
  EXPECT_EQ(doc["trajectories"][0]["sample"]["finish_reason"], "FINISH_REASON_LENGTH");

  std::vector<std::string> jsonl_args = {"--output", "jsonl"};
  jsonl_args.insert(jsonl_args.end(), filter.begin(), filter.end());
  CtlResult jsonl = Run(jsonl_args);
  ASSERT_EQ(jsonl.code, 0) << jsonl.err;
  EXPECT_EQ(JsonlIds(jsonl.out), expected);

  // Global flags may also follow the command.
  std::vector<std::string> after = filter;
  after.insert(after.end(), {"-o", "jsonl"});
  EXPECT_EQ(JsonlIds(Run(after).out), expected);
}

TEST_F(CtlLiveTest, ListWithoutRunNeedsOneWhenTheBufferHoldsSeveral) {
  CtlResult r = Run({"traj", "list"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--run is required"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ctl"), std::string::npos) << r.err;
}

TEST_F(CtlLiveTest, ShowPrintsTextTermsVersionsAndLogprobs) {
  const v1::Trajectory t = Crafted("ctl", 3, 1, 0);
  CtlResult r = Run({"traj", "show", "ctl/3/1/0"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string& s = r.out;
  EXPECT_NE(s.find("trajectory     ctl/3/1/0"), std::string::npos) << s;
  EXPECT_NE(s.find(t.prompt().text()), std::string::npos) << s;
  EXPECT_NE(s.find(t.sample().text()), std::string::npos) << s;
  EXPECT_NE(s.find("policy         version 1"), std::string::npos) << s;
  EXPECT_NE(s.find("reward spec    version 1"), std::string::npos) << s;
  EXPECT_NE(s.find("wrong"), std::string::npos) << "verdict: " << s;
  EXPECT_NE(s.find("lowest-probability tokens:"), std::string::npos) << s;
  // Token 5 has the lowest logprob (-4.5); its text is the 6th character.
  EXPECT_NE(s.find("5    " + std::to_string(static_cast<unsigned char>(t.sample().text()[5]))), std::string::npos)
      << s;
  EXPECT_NE(s.find("-4.5000"), std::string::npos) << s;

  CtlResult json = Run({"-o", "json", "traj", "show", "ctl/3/1/0"});
  ASSERT_EQ(json.code, 0) << json.err;
  auto doc = nlohmann::json::parse(json.out);
  EXPECT_EQ(doc["id"]["step"], "3");
  EXPECT_EQ(doc["sample"]["text"], t.sample().text());
  CtlResult jsonl = Run({"-o", "jsonl", "traj", "show", "ctl/3/1/0"});
  EXPECT_EQ(JsonlIds(jsonl.out), std::vector<std::string>{"ctl/3/1/0"});

  CtlResult missing = Run({"traj", "show", "ctl/99/0/0"});
  EXPECT_EQ(missing.code, 1) << missing.err;
  EXPECT_NE(missing.err.find("buffer at " + deployment_->addr()), std::string::npos) << missing.err;
}

TEST_F(CtlLiveTest, ExportWritesMatchingTrajectoriesAsJsonLines) {
  std::string path = deployment_->dir() + "/export.jsonl";
  CtlResult r = Run({"traj", "export", "--run", "ctl", "--min-reward", "0.75", "--out", path});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> expected = Expected([](const v1::Trajectory& t) { return t.reward().reward() >= 0.75; });
  EXPECT_EQ(r.out, absl::StrCat("exported ", expected.size(), " trajectories of run ctl to ", path, "\n"));
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(Sorted(JsonlIds(text)), Sorted(expected));

  CtlResult json = Run({"-o", "json", "traj", "export", "--run", "ctl", "--step", "0", "--out", path});
  ASSERT_EQ(json.code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["exported"], kGroups * kSamples);

  CtlResult to_stdout = Run({"traj", "export", "--run", "other", "--out", "-"});
  ASSERT_EQ(to_stdout.code, 0) << to_stdout.err;
  EXPECT_EQ(Sorted(JsonlIds(to_stdout.out)), (std::vector<std::string>{"other/0/0/0", "other/0/0/1"}));

  // A device is written through, never replaced by a regular file (issue 16 #10):
  // /dev/null takes the lines, /dev/full fails with ENOSPC and stays a device.
  CtlResult null_dev = Run({"traj", "export", "--run", "other", "--out", "/dev/null"});
  EXPECT_EQ(null_dev.code, 0) << null_dev.err;
  CtlResult full = Run({"traj", "export", "--run", "other", "--out", "/dev/full"});
  EXPECT_EQ(full.code, 1) << full.err;
  EXPECT_NE(full.err.find("writing /dev/full failed"), std::string::npos) << full.err;
  struct stat st;
  ASSERT_EQ(stat("/dev/full", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

// Appends new groups of run "live" (step after step) until `done`.
void AppendUntil(Deployment* d, const std::atomic<bool>& done, int64_t first_step) {
  for (int64_t step = first_step; !done && step < first_step + 200; ++step) {
    d->Append(CraftedGroups("live", step, step + 1, 1, 4));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

TEST_F(CtlLiveTest, TailReceivesNewTrajectoriesMatchingItsFilter) {
  ASSERT_TRUE(deployment_->Append(CraftedGroups("live", 0, 1, 1, 4)));  // stored before the tail
  std::atomic<bool> done{false};
  CtlResult r;
  std::thread tail([&] {
    r = Run({"-o", "jsonl", "traj", "tail", "--run", "live", "--finish", "length", "--limit", "3"});
    done = true;
  });
  AppendUntil(deployment_, done, 1000);
  tail.join();
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> ids = JsonlIds(r.out);
  ASSERT_EQ(ids.size(), 3u) << r.out;
  std::set<std::string> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), 3u) << "a trajectory delivered twice";
  for (const auto& id : ids) {
    auto parsed = ParseId(id);
    ASSERT_TRUE(parsed.ok());
    EXPECT_GE(parsed->step(), 1000) << "only new trajectories: " << id;
    EXPECT_EQ(parsed->sample(), 3) << "only --finish length: " << id;
  }
}

TEST_F(CtlLiveTest, TailFromStartReplaysStoredOnesInTableMode) {
  CtlResult r = Run({"traj", "tail", "--run", "other", "--from-start", "--limit", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0].rfind("ID", 0), 0u);
  EXPECT_EQ(lines[1].rfind("other/0/0/", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2].rfind("other/0/0/", 0), 0u) << lines[2];
}

TEST_F(CtlLiveTest, TailStopsCleanlyOnInterrupt) {
  Runtime rt;
  CtlResult r;
  std::thread tail([&] { r = Run({"traj", "tail", "--run", "ctl"}, &rt); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  rt.interrupted = true;
  tail.join();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_EQ(r.out.rfind("ID", 0), 0u) << r.out;
}

std::string SpecYaml(double weight) {
  return absl::StrCat("name: countdown-x", weight, "\nterms:\n  - name: countdown\n    kind: countdown\n    weight: ",
                      weight, "\n");
}

// Scores one correct countdown completion directly (not through the CLI).
v1::RewardResult ScoreOne(const std::string& addr) {
  auto stub = v1::RewardService::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  v1::ScoreRequest req;
  v1::ScoreItem* item = req.add_items();
  v1::Trajectory t = Crafted("ctl", 0, 0, 0);
  item->set_id("probe");
  item->set_prompt(t.prompt().text());
  item->set_completion(t.sample().text());
  *item->mutable_answer() = t.prompt().answer();
  item->set_completion_tokens(t.sample().token_ids_size());
  item->set_finish_reason(v1::FINISH_REASON_STOP);
  v1::ScoreResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Status st = stub->Score(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp.results_size() == 1 ? resp.results(0) : v1::RewardResult();
}

int64_t ActiveVersion(CtlLiveTest* t, const std::function<CtlResult(std::vector<std::string>)>& run) {
  (void)t;
  CtlResult r = run({"-o", "json", "reward", "get"});
  EXPECT_EQ(r.code, 0) << r.err;
  return std::stoll(nlohmann::json::parse(r.out)["version"].get<std::string>());
}

TEST_F(CtlLiveTest, RewardSwapIsSeenInTheVersionsOfTheNextScores) {
  auto run = [this](std::vector<std::string> a) { return Run(std::move(a)); };
  const int64_t before = ActiveVersion(this, run);
  CtlResult get = Run({"reward", "get"});
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_NE(get.out.find(absl::StrCat("version  ", before)), std::string::npos) << get.out;
  EXPECT_NE(get.out.find("spec:\n"), std::string::npos) << get.out;

  std::string spec = WriteFile("double.yaml", SpecYaml(2.0));
  CtlResult set = Run({"--token-file", deployment_->token_file(), "reward", "set", spec, "--reason", "double it"});
  ASSERT_EQ(set.code, 0) << set.err;
  const int64_t swapped = ActiveVersion(this, run);
  EXPECT_GT(swapped, before);
  EXPECT_NE(set.out.find(absl::StrCat("reward spec version ", swapped, " is active")), std::string::npos) << set.out;

  v1::RewardResult after = ScoreOne(deployment_->addr());
  EXPECT_EQ(after.spec_version(), swapped);
  EXPECT_DOUBLE_EQ(after.reward(), 2.0);

  CtlResult history = Run({"-o", "json", "reward", "history"});
  ASSERT_EQ(history.code, 0) << history.err;
  auto doc = nlohmann::json::parse(history.out);
  EXPECT_EQ(doc["active_version"], std::to_string(swapped));
  bool found = false;
  for (const auto& v : doc["versions"])
    if (v["version"] == std::to_string(swapped)) found = v["reason"] == "double it";
  EXPECT_TRUE(found) << history.out;
  CtlResult table = Run({"reward", "history"});
  ASSERT_EQ(table.code, 0);
  EXPECT_NE(table.out.find("double it"), std::string::npos) << table.out;
  CtlResult jsonl = Run({"-o", "jsonl", "reward", "history"});
  EXPECT_EQ(std::count(jsonl.out.begin(), jsonl.out.end(), '\n'), static_cast<long>(doc["versions"].size()));

  // Roll back to the version before: a new version number, the old weights.
  CtlResult rb = Run({"--token-file", deployment_->token_file(), "reward", "rollback", std::to_string(before)});
  ASSERT_EQ(rb.code, 0) << rb.err;
  const int64_t rolled = ActiveVersion(this, run);
  EXPECT_GT(rolled, swapped);
  v1::RewardResult back = ScoreOne(deployment_->addr());
  EXPECT_EQ(back.spec_version(), rolled);
  EXPECT_NE(back.reward(), 2.0);
}

TEST_F(CtlLiveTest, AdminCallsWithoutTheTokenExitFour) {
  auto run = [this](std::vector<std::string> a) { return Run(std::move(a)); };
  const int64_t before = ActiveVersion(this, run);
  std::string spec = WriteFile("triple.yaml", SpecYaml(3.0));
  std::string wrong = WriteFile("wrong-token", "not-the-token\n");
  for (const auto& prefix : {std::vector<std::string>{}, std::vector<std::string>{"--token-file", wrong}}) {
    std::vector<std::string> set = prefix;
    set.insert(set.end(), {"reward", "set", spec});
    CtlResult r = Run(set);
    EXPECT_EQ(r.code, 4) << r.err;
    EXPECT_EQ(r.err.rfind("zerorlctl: unauthenticated: ", 0), 0u) << r.err;
    std::vector<std::string> rb = prefix;
    rb.insert(rb.end(), {"reward", "rollback", "1"});
    r = Run(rb);
    EXPECT_EQ(r.code, 4) << r.err;
  }
  EXPECT_EQ(ActiveVersion(this, run), before) << "a refused call changed the spec";
}

TEST_F(CtlLiveTest, RewardTestScoresStoredTrajectoriesUnderACandidate) {
  auto run = [this](std::vector<std::string> a) { return Run(std::move(a)); };
  const int64_t before = ActiveVersion(this, run);
  std::string spec = WriteFile("five.yaml", SpecYaml(5.0));
  CtlResult r = Run({"-o", "json", "reward", "test", spec, "--traj", "ctl/0/0/1", "--traj", "ctl/2/1/3"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  ASSERT_EQ(doc["results"].size(), 2u);
  EXPECT_EQ(doc["results"][0]["id"], "ctl/0/0/1");
  EXPECT_DOUBLE_EQ(doc["results"][0]["stored"]["reward"].get<double>(), Crafted("ctl", 0, 0, 1).reward().reward());
  // Group 0's target is 6 = 1+2+3 (correct); group 1's is 7 (wrong).
  EXPECT_DOUBLE_EQ(doc["results"][0]["candidate"]["reward"].get<double>(), 5.0);
  EXPECT_LT(doc["results"][1]["candidate"]["reward"].get<double>(), 5.0);
  EXPECT_EQ(ActiveVersion(this, run), before) << "a dry run swapped the spec";

  CtlResult table = Run({"reward", "test", spec, "--traj", "ctl/0/0/1"});
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("CANDIDATE"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("ctl/0/0/1  "), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("countdown"), std::string::npos) << table.out;

  CtlResult missing = Run({"reward", "test", spec, "--traj", "ctl/77/0/0"});
  EXPECT_EQ(missing.code, 1) << missing.err;
}

TEST(CtlTlsTest, TalksTlsWithTheGivenCaAndFailsPlaintext) {
  if (access("/usr/bin/openssl", X_OK) != 0) GTEST_SKIP() << "openssl (to make a test certificate) not installed";
  const std::string dir = zerorl::testing::MakeTempDir("ctl-tls");
  std::string out;
  ASSERT_EQ(zerorl::testing::RunCommand({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                                         "1", "-subj", "/CN=localhost", "-addext",
                                         "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", dir + "/key.pem",
                                         "-out", dir + "/cert.pem"},
                                        &out),
            0)
      << out;
  auto d = Deployment::Start("ctl-tls-run", dir + "/cert.pem", dir + "/key.pem");
  ASSERT_NE(d, nullptr);
  const std::string port = d->addr().substr(d->addr().find(':') + 1);
  const std::string addr = "localhost:" + port;
  CtlResult ok = Ctl({"--addr", addr, "--tls-ca", dir + "/cert.pem", "-o", "json", "reward", "get"});
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_TRUE(nlohmann::json::parse(ok.out).contains("spec"));
  // A plaintext client cannot talk to a TLS server: unreachable, said once.
  CtlResult plain = Ctl({"--addr", addr, "--timeout", "3s", "reward", "get"});
  EXPECT_EQ(plain.code, 3) << plain.err;
  EXPECT_EQ(plain.err.rfind("zerorlctl: cannot reach ", 0), 0u) << plain.err;
  // --tls alone trusts only the system roots, which do not include this certificate.
  CtlResult untrusted = Ctl({"--addr", addr, "--tls", "--timeout", "3s", "reward", "get"});
  EXPECT_EQ(untrusted.code, 3) << untrusted.err;
}

}  // namespace
}  // namespace zerorl::ctl::testing
