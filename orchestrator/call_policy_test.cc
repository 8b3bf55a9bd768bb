// CallPolicy: outages are retried until the budget is spent (then an outage
// error naming the budget), reported while waited out and cleared after; a
// pool call moves to another worker; the caller's errors are not retried;
// a stop request ends the wait.
#include "orchestrator/call_policy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

#include <grpcpp/create_channel.h>

namespace zerorl {
namespace {

using Clock = std::chrono::steady_clock;

zerorl::v1::OrchestratorConfig Config(int outage_seconds, int max_retries = 3) {
  zerorl::v1::OrchestratorConfig c;
  c.set_call_deadline_ms(2000);
  c.set_outage_seconds(outage_seconds);
  c.set_max_retries(max_retries);
  return c;
}

struct Reports {
  std::mutex mu;
  std::vector<std::string> lines;
  CallPolicy::WaitReporter Reporter() {
    return [this](const std::string& s) {
      std::lock_guard<std::mutex> l(mu);
      lines.push_back(s);
    };
  }
};

TEST(CallPolicyTest, OutageIsWaitedOutAndReported) {
  std::atomic<bool> stop{false};
  Reports reports;
  CallPolicy p(Config(60), &stop, reports.Reporter());
  EXPECT_EQ(p.deadline(), std::chrono::milliseconds(2000));
  int calls = 0;
  absl::Status s = p.CallSingle("learner", "10.0.0.6:50055", "learner Train of step 3", [&] {
    return ++calls < 3 ? absl::UnavailableError("connection refused") : absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(calls, 3);
  ASSERT_GE(reports.lines.size(), 2u);
  EXPECT_NE(reports.lines.front().find("waiting for learner at 10.0.0.6:50055 (0s of orchestrator.outage_seconds 60)"),
            std::string::npos)
      << reports.lines.front();
  EXPECT_EQ(reports.lines.back(), "");  // cleared once the call went through
}

TEST(CallPolicyTest, OutagePastTheBudgetIsAnOutageErrorNamingIt) {
  std::atomic<bool> stop{false};
  Reports reports;
  CallPolicy p(Config(1), &stop, reports.Reporter());
  const auto t0 = Clock::now();
  absl::Status s = p.CallSingle("buffer", "b:1", "buffer Append of step 2",
                                [&] { return absl::DeadlineExceededError("deadline"); });
  EXPECT_GE(Clock::now() - t0, std::chrono::seconds(1));
  EXPECT_TRUE(CallPolicy::IsOutage(s)) << s;
  EXPECT_NE(s.message().find("buffer Append of step 2"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("orchestrator.outage_seconds 1 spent"), absl::string_view::npos) << s;
}

TEST(CallPolicyTest, OtherErrorsOfASingleActorAreNotRetried) {
  std::atomic<bool> stop{false};
  Reports reports;
  CallPolicy p(Config(60), &stop, reports.Reporter());
  int calls = 0;
  absl::Status s = p.CallSingle("learner", "l:1", "learner Train of step 1", [&] {
    ++calls;
    return absl::FailedPreconditionError("the buffer has no groups");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(CallPolicy::IsOutage(s));
  EXPECT_EQ(calls, 1);
}

TEST(CallPolicyTest, StopEndsTheWait) {
  std::atomic<bool> stop{false};
  Reports reports;
  CallPolicy p(Config(600), &stop, reports.Reporter());
  int calls = 0;
  absl::Status s = p.CallSingle("learner", "l:1", "learner Train", [&] {
    if (++calls == 2) stop = true;
    return absl::UnavailableError("down");
  });
  EXPECT_TRUE(CallPolicy::IsOutage(s));
  EXPECT_NE(s.message().find("stopped while waiting for learner at l:1"), absl::string_view::npos) << s;
}

TEST(CallPolicyTest, PoolMovesToAnotherWorkerAndBoundsOtherFaults) {
  WorkerRegistry registry([](const std::string& a) {
    return grpc::CreateChannel(a, grpc::InsecureChannelCredentials());
  });
  for (const char* a : {"127.0.0.1:1", "127.0.0.1:2"}) {
    zerorl::v1::WorkerInfo w;
    w.set_role(zerorl::v1::WORKER_ROLE_REWARD);
    w.set_address(a);
    registry.Register(w);
  }
  std::atomic<bool> stop{false};
  Reports reports;
  CallPolicy p(Config(60, /*max_retries=*/2), &stop, reports.Reporter());
  std::vector<std::string> tried;
  absl::Status s = p.CallPool(&registry, zerorl::v1::WORKER_ROLE_REWARD, "Score p1", [&](const WorkerHandle& h) {
    tried.push_back(h.address);
    return tried.size() == 1 ? absl::UnavailableError("down") : absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
  ASSERT_EQ(tried.size(), 2u);
  EXPECT_NE(tried[0], tried[1]);

  int calls = 0;
  s = p.CallPool(&registry, zerorl::v1::WORKER_ROLE_REWARD, "Score p2", [&](const WorkerHandle&) {
    ++calls;
    return absl::InternalError("checker crashed");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(calls, 3);  // the first try and max_retries more

  calls = 0;
  s = p.CallPool(&registry, zerorl::v1::WORKER_ROLE_REWARD, "Score p3", [&](const WorkerHandle&) {
    ++calls;
    return absl::InvalidArgumentError("bad spec");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace zerorl
