// BufferService through a real in-process gRPC server on 127.0.0.1:0: status
// mapping, Tail streaming, leases, admin calls.
#include "buffer/service.h"

#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "buffer/keys.h"
#include "buffer/synthetic_groups.h"
#include "common/server.h"
#include "tests/testing/subprocess.h"

namespace zerorl::buffer {
namespace {

using zerorl::v1::BufferService;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("buffer_service");
    auto store = TrajectoryStore::Open(dir_ + "/db", {});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(store).value();
    auto auth = std::make_shared<const AdminAuth>("s3cret");
    service_ = std::make_unique<BufferServiceImpl>(store_.get(), auth);
    auto h = StartServer("127.0.0.1:0", {service_.get()}, zerorl::v1::ServerConfig(), auth);
    ASSERT_TRUE(h.ok()) << h.status();
    server_ = std::move(h).value();
    stub_ = BufferService::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", server_.port), zerorl::v1::ServerConfig()));
  }
  void TearDown() override {
    if (store_) store_->Close();
    server_.Shutdown();
  }
  grpc::Status AppendSteps(int first, int steps, int groups, zerorl::v1::AppendResponse* out = nullptr) {
    zerorl::v1::AppendRequest req;
    for (int s = first; s < first + steps; ++s)
      for (int g = 0; g < groups; ++g) *req.add_groups() = SyntheticGroup("run", s, g, {});
    zerorl::v1::AppendResponse resp;
    auto ctx = ContextWithDeadline(std::chrono::seconds(10));
    return stub_->Append(ctx.get(), req, out ? out : &resp);
  }

  std::string dir_;
  std::unique_ptr<TrajectoryStore> store_;
  std::unique_ptr<BufferServiceImpl> service_;
  ServerHandle server_;
  std::unique_ptr<BufferService::Stub> stub_;
};

TEST_F(ServiceTest, AppendGetListAndStatusCodes) {
  zerorl::v1::AppendResponse a;
  ASSERT_TRUE(AppendSteps(0, 2, 2, &a).ok());
  EXPECT_EQ(a.appended(), 4);
  ASSERT_TRUE(AppendSteps(0, 2, 2, &a).ok());  // retry
  EXPECT_EQ(a.appended(), 0);
  EXPECT_EQ(a.duplicates(), 4);

  zerorl::v1::GetTrajectoryRequest get;
  get.set_id("run/1/1/2");
  zerorl::v1::Trajectory t;
  auto ctx = ContextWithDeadline(std::chrono::seconds(5));
  ASSERT_TRUE(stub_->GetTrajectory(ctx.get(), get, &t).ok());
  EXPECT_EQ(FormatId(t.id()), "run/1/1/2");
  EXPECT_FALSE(t.prompt().text().empty());

  get.set_id("run/1/1");
  ctx = ContextWithDeadline(std::chrono::seconds(5));
  auto s = stub_->GetTrajectory(ctx.get(), get, &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("run/1/1"), std::string::npos);
  get.set_id("run/9/0/0");
  ctx = ContextWithDeadline(std::chrono::seconds(5));
  EXPECT_EQ(stub_->GetTrajectory(ctx.get(), get, &t).error_code(), grpc::StatusCode::NOT_FOUND);

  zerorl::v1::ListTrajectoriesRequest list;
  list.mutable_filter()->set_run_id("run");
  list.mutable_filter()->set_finish_reason(zerorl::v1::FINISH_REASON_STOP);
  list.set_page_size(3);
  zerorl::v1::ListTrajectoriesResponse page;
  int total = 0;
  do {
    ctx = ContextWithDeadline(std::chrono::seconds(5));
    ASSERT_TRUE(stub_->ListTrajectories(ctx.get(), list, &page).ok());
    total += page.trajectories_size();
    list.set_page_token(page.next_page_token());
  } while (!list.page_token().empty());
  EXPECT_EQ(total, 8);  // 4 groups x 2 even samples
  list.set_page_token("not-a-token");
  ctx = ContextWithDeadline(std::chrono::seconds(5));
  EXPECT_EQ(stub_->ListTrajectories(ctx.get(), list, &page).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  zerorl::v1::ListRunsResponse runs;
  ctx = ContextWithDeadline(std::chrono::seconds(5));
  ASSERT_TRUE(stub_->ListRuns(ctx.get(), {}, &runs).ok());
  ASSERT_EQ(runs.runs_size(), 1);
  EXPECT_EQ(runs.runs(0).trajectories(), 16);

  zerorl::v1::StepStatsRequest sr;
  sr.set_run_id("run");
  zerorl::v1::StepStatsResponse stats;
  ctx = ContextWithDeadline(std::chrono::seconds(5));
  ASSERT_TRUE(stub_->GetStepStats(ctx.get(), sr, &stats).ok());
  EXPECT_EQ(stats.steps_size(), 2);
}

TEST_F(ServiceTest, LeaseAndAck) {
  ASSERT_TRUE(AppendSteps(0, 1, 3).ok());
  zerorl::v1::LeaseRequest lr;
  lr.set_run_id("run");
  lr.set_by_step(true);
  lr.set_step(0);
  zerorl::v1::LeaseResponse lease;
  auto ctx = ContextWithDeadline(std::chrono::seconds(5));
  ASSERT_TRUE(stub_->Lease(ctx.get(), lr, &lease).ok());
  EXPECT_EQ(lease.groups_size(), 3);
  zerorl::v1::AckRequest ar;
  ar.set_lease_id(lease.lease_id());
  zerorl::v1::AckResponse ack;
  ctx = ContextWithDeadline(std::chrono::seconds(5));
  ASSERT_TRUE(stub_->Ack(ctx.get(), ar, &ack).ok());
  EXPECT_EQ(ack.consumed(), 3);
  ar.set_lease_id("L-unknown");
  ctx = ContextWithDeadline(std::chrono::seconds(5));
  EXPECT_EQ(stub_->Ack(ctx.get(), ar, &ack).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, TailFromStartThenLiveEachOnce) {
  ASSERT_TRUE(AppendSteps(0, 1, 2).ok());  // 8 stored before the stream opens
  zerorl::v1::TailRequest req;
  req.mutable_filter()->set_run_id("run");
  req.set_from_start(true);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = stub_->Tail(&ctx, req);
  std::vector<std::string> seen;
  zerorl::v1::Trajectory t;
  while (seen.size() < 8 && reader->Read(&t)) seen.push_back(FormatId(t.id()));
  ASSERT_EQ(seen.size(), 8u);
  ASSERT_TRUE(AppendSteps(1, 2, 2).ok());
  ASSERT_TRUE(AppendSteps(1, 2, 2).ok());  // retried: delivers nothing new
  while (seen.size() < 24 && reader->Read(&t)) seen.push_back(FormatId(t.id()));
  ASSERT_EQ(seen.size(), 24u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 24u);
  EXPECT_EQ(seen.back(), "run/2/1/3");
  ctx.TryCancel();
  while (reader->Read(&t)) seen.push_back(FormatId(t.id()));
  EXPECT_EQ(seen.size(), 24u);  // nothing extra after the last append
}

TEST_F(ServiceTest, TailLiveSkipsWhatWasStored) {
  ASSERT_TRUE(AppendSteps(0, 1, 1).ok());
  zerorl::v1::TailRequest req;
  req.mutable_filter()->set_run_id("run");
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = stub_->Tail(&ctx, req);
  // Keep appending new steps until the stream (which starts asynchronously) sees one.
  std::atomic<bool> got_first{false};
  std::thread writer([&] {
    for (int step = 1; step < 100 && !got_first; ++step) {
      EXPECT_TRUE(AppendSteps(step, 1, 1).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  zerorl::v1::Trajectory t;
  ASSERT_TRUE(reader->Read(&t));
  got_first = true;
  writer.join();
  EXPECT_GE(t.id().step(), 1);  // never the step stored before the stream
  EXPECT_EQ(t.id().sample(), 0);  // starts at a group boundary: appends are atomic
  ctx.TryCancel();
}

TEST_F(ServiceTest, AdminCallsNeedTheToken) {
  ASSERT_TRUE(AppendSteps(0, 1, 1).ok());
  zerorl::v1::BackupRequest br;
  br.set_dir(dir_ + "/backup");
  zerorl::v1::BackupResponse b;
  auto ctx = ContextWithDeadline(std::chrono::seconds(10));
  EXPECT_EQ(stub_->Backup(ctx.get(), br, &b).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  ctx = ContextWithDeadline(std::chrono::seconds(10));
  AttachBearerToken(ctx.get(), "s3cret");
  ASSERT_TRUE(stub_->Backup(ctx.get(), br, &b).ok());
  EXPECT_GT(b.bytes(), 0);
  zerorl::v1::CompactRequest cr;
  cr.set_run_id("run");
  zerorl::v1::CompactResponse c;
  ctx = ContextWithDeadline(std::chrono::seconds(10));
  EXPECT_EQ(stub_->Compact(ctx.get(), cr, &c).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  ctx = ContextWithDeadline(std::chrono::seconds(10));
  AttachBearerToken(ctx.get(), "s3cret");
  ASSERT_TRUE(stub_->Compact(ctx.get(), cr, &c).ok());
}

}  // namespace
}  // namespace zerorl::buffer
