// Lease/Ack tests: sync and async selection, exactly-once across restarts,
// expiry and re-hand-out, DAPO uniform-group dropping, size limits.
#include <set>

#include <gtest/gtest.h>

#include "buffer/keys.h"
#include "buffer/synthetic_groups.h"
#include "buffer/trajectory_store.h"
#include "tests/testing/subprocess.h"

namespace zerorl::buffer {
namespace {

struct FakeClock {
  std::shared_ptr<std::atomic<int64_t>> ms = std::make_shared<std::atomic<int64_t>>(1'000'000);
  StoreOptions Options() const {
    StoreOptions o;
    auto p = ms;
    o.now_unix_ms = [p] { return p->load(); };
    o.lease_seconds = 60;
    return o;
  }
};

void AppendSteps(TrajectoryStore* store, int first, int steps, int groups, bool uniform_odd = false) {
  zerorl::v1::AppendRequest req;
  for (int s = first; s < first + steps; ++s)
    for (int g = 0; g < groups; ++g) *req.add_groups() = SyntheticGroup("r", s, g, {}, 0, uniform_odd && g % 2 == 1);
  auto r = store->Append(req);
  ASSERT_TRUE(r.ok()) << r.status();
}

zerorl::v1::LeaseRequest ByStep(int64_t step, int max_groups = 0) {
  zerorl::v1::LeaseRequest r;
  r.set_run_id("r");
  r.set_by_step(true);
  r.set_step(step);
  r.set_max_groups(max_groups);
  r.set_holder("learner-0");
  return r;
}

std::set<std::string> Ids(const zerorl::v1::LeaseResponse& r) {
  std::set<std::string> out;
  for (const auto& g : r.groups()) out.insert(FormatId(g.id()));
  return out;
}

TEST(LeaseTest, ByStepHandsEachGroupOnceAndAckSurvivesRestart) {
  FakeClock clock;
  auto dir = testing::MakeTempDir("buffer_lease_sync");
  auto store = std::move(TrajectoryStore::Open(dir, clock.Options())).value();
  AppendSteps(store.get(), 0, 2, 4);
  auto a = store->Lease(ByStep(1, 3));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->groups_size(), 3);
  EXPECT_FALSE(a->lease_id().empty());
  for (const auto& g : a->groups()) {
    EXPECT_EQ(g.id().step(), 1);
    EXPECT_EQ(g.trajectories_size(), 4);
    EXPECT_FALSE(g.prompt().id().empty());  // the prompt travels once, with the group
    EXPECT_FALSE(g.trajectories(0).has_prompt());
  }
  auto b = store->Lease(ByStep(1));
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->groups_size(), 1);  // only the one not under lease
  EXPECT_FALSE(Ids(*a).count(FormatId(b->groups(0).id())));
  auto ack = store->Ack([&] { zerorl::v1::AckRequest r; r.set_lease_id(a->lease_id()); return r; }());
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->consumed(), 3);
  // Acking twice is idempotent.
  auto again = store->Ack([&] { zerorl::v1::AckRequest r; r.set_lease_id(a->lease_id()); return r; }());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->consumed(), 3);

  // Restart: consumed stays consumed; lease b (unacked, live) still holds its group.
  store.reset();
  store = std::move(TrajectoryStore::Open(dir, clock.Options())).value();
  auto c = store->Lease(ByStep(1));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->groups_size(), 0);
  EXPECT_TRUE(c->lease_id().empty());
  // b expires: its group is handed out again, and b can no longer be acked.
  *clock.ms += 61'000;
  auto d = store->Lease(ByStep(1));
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->groups_size(), 1);
  EXPECT_EQ(Ids(*d), Ids(*b));
  auto late = store->Ack([&] { zerorl::v1::AckRequest r; r.set_lease_id(b->lease_id()); return r; }());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition) << late.status();
  ASSERT_TRUE(store->Ack([&] { zerorl::v1::AckRequest r; r.set_lease_id(d->lease_id()); return r; }()).ok());
  EXPECT_EQ(store->Lease(ByStep(1))->groups_size(), 0);
  // Step 0 untouched.
  EXPECT_EQ(store->Lease(ByStep(0))->groups_size(), 4);
}

TEST(LeaseTest, ExpiredButNotReleasedLeaseCanStillBeAcked) {
  FakeClock clock;
  auto store = std::move(TrajectoryStore::Open(testing::MakeTempDir("buffer_lease_late"), clock.Options())).value();
  AppendSteps(store.get(), 0, 1, 2);
  auto a = store->Lease(ByStep(0));
  ASSERT_EQ(a->groups_size(), 2);
  *clock.ms += 120'000;
  auto ack = store->Ack([&] { zerorl::v1::AckRequest r; r.set_lease_id(a->lease_id()); return r; }());
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->consumed(), 2);
  EXPECT_EQ(store->Lease(ByStep(0))->groups_size(), 0);
}

TEST(LeaseTest, AsyncTakesFreshestWithinStaleness) {
  FakeClock clock;
  auto store = std::move(TrajectoryStore::Open(testing::MakeTempDir("buffer_lease_async"), clock.Options())).value();
  AppendSteps(store.get(), 0, 5, 2);  // policy version = step
  zerorl::v1::LeaseRequest req;
  req.set_run_id("r");
  req.set_min_policy_version(3);
  req.set_max_groups(3);
  auto a = store->Lease(req);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->groups_size(), 3);
  EXPECT_EQ(a->groups(0).id().step(), 4);
  EXPECT_EQ(a->groups(1).id().step(), 4);
  EXPECT_EQ(a->groups(2).id().step(), 3);
  req.set_max_groups(0);
  auto b = store->Lease(req);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->groups_size(), 1);  // the last version >= 3 group
  EXPECT_EQ(b->groups(0).id().step(), 3);
  EXPECT_EQ(store->Lease(req)->groups_size(), 0);
}

// Async Train leases by step with the step's staleness bound: a group whose
// oldest sample is older than min_policy_version is not handed out.
TEST(LeaseTest, ByStepLeavesOutGroupsStalerThanTheBound) {
  FakeClock clock;
  auto store = std::move(TrajectoryStore::Open(testing::MakeTempDir("buffer_lease_stale"), clock.Options())).value();
  AppendSteps(store.get(), 2, 1, 2);  // step 2, policy version 2
  zerorl::v1::LeaseRequest req = ByStep(2);
  req.set_min_policy_version(3);
  auto stale = store->Lease(req);
  ASSERT_TRUE(stale.ok()) << stale.status();
  EXPECT_EQ(stale->groups_size(), 0);
  req.set_min_policy_version(2);
  auto fresh = store->Lease(req);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->groups_size(), 2);
}

TEST(LeaseTest, DropUniformSkipsAndCounts) {
  FakeClock clock;
  auto store = std::move(TrajectoryStore::Open(testing::MakeTempDir("buffer_lease_dapo"), clock.Options())).value();
  AppendSteps(store.get(), 0, 1, 6, /*uniform_odd=*/true);
  auto req = ByStep(0);
  req.set_drop_uniform(true);
  auto a = store->Lease(req);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->groups_size(), 3);
  EXPECT_EQ(a->dropped_uniform(), 3);
  for (const auto& g : a->groups()) EXPECT_EQ(g.id().group() % 2, 0);
  EXPECT_EQ(store->counters().dropped_uniform, 3);
  // Dropped groups are settled: not offered, not counted again.
  auto b = store->Lease(ByStep(0));
  EXPECT_EQ(b->groups_size(), 0);
  EXPECT_EQ(b->dropped_uniform(), 0);
}
// A restarted learner (same holder, newer incarnation) takes its dead
// predecessor's live lease over at once, also across a buffer restart; an
// unrelated holder still waits for expiry; the predecessor's late ack fails.
TEST(LeaseTest, NewIncarnationOfTheHolderTakesOverItsLeases) {
  FakeClock clock;
  auto dir = testing::MakeTempDir("buffer_lease_takeover");
  auto store = std::move(TrajectoryStore::Open(dir, clock.Options())).value();
  AppendSteps(store.get(), 0, 1, 3);
  auto first = ByStep(0);
  first.set_holder_incarnation(100);
  auto a = store->Lease(first);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->groups_size(), 3);
  store.reset();  // the buffer restarts too: the live lease and its holder are durable
  store = std::move(TrajectoryStore::Open(dir, clock.Options())).value();

  auto stranger = ByStep(0);
  stranger.set_holder("someone-else");
  stranger.set_holder_incarnation(999);
  EXPECT_EQ(store->Lease(stranger)->groups_size(), 0);
  EXPECT_EQ(store->Lease(first)->groups_size(), 0);  // the same incarnation does not take over itself

  auto second = ByStep(0);
  second.set_holder_incarnation(200);
  auto b = store->Lease(second);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->groups_size(), 3);
  EXPECT_EQ(Ids(*a), Ids(*b));
  auto late = store->Ack([&] { zerorl::v1::AckRequest r; r.set_lease_id(a->lease_id()); return r; }());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition) << late.status();
  auto ack = store->Ack([&] { zerorl::v1::AckRequest r; r.set_lease_id(b->lease_id()); return r; }());
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->consumed(), 3);
}

// include_consumed re-leases a consumed step (a learner restored from an older
// checkpoint re-trains it); its ack counts nothing twice. Dropped groups stay dropped.
TEST(LeaseTest, IncludeConsumedHandsAConsumedStepOutAgain) {
  FakeClock clock;
  auto store = std::move(TrajectoryStore::Open(testing::MakeTempDir("buffer_lease_replay"), clock.Options())).value();
  AppendSteps(store.get(), 0, 1, 4, /*uniform_odd=*/true);
  auto drop = ByStep(0);
  drop.set_drop_uniform(true);
  auto a = store->Lease(drop);
  ASSERT_EQ(a->groups_size(), 2);
  ASSERT_EQ(a->dropped_uniform(), 2);
  ASSERT_EQ(store->Ack([&] { zerorl::v1::AckRequest r; r.set_lease_id(a->lease_id()); return r; }())->consumed(), 2);
  EXPECT_EQ(store->Lease(ByStep(0))->groups_size(), 0);

  auto replay = ByStep(0);
  replay.set_include_consumed(true);
  auto b = store->Lease(replay);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(Ids(*a), Ids(*b));
  EXPECT_EQ(b->dropped_uniform(), 2);
  auto ack = store->Ack([&] { zerorl::v1::AckRequest r; r.set_lease_id(b->lease_id()); return r; }());
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->consumed(), 0);
  EXPECT_EQ(store->counters().consumed_groups, 2);
  auto async = replay;
  async.set_by_step(false);
  EXPECT_EQ(store->Lease(async).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LeaseTest, BadLeaseRequests) {
  auto dir = testing::MakeTempDir("buffer_lease_bad");
  {
    auto store = std::move(TrajectoryStore::Open(dir, {})).value();
    zerorl::v1::AppendRequest big;
    *big.add_groups() = SyntheticGroup("r", 0, 0, GroupShape{4, 64, true, 1});
    ASSERT_TRUE(store->Append(big).ok());
  }
  StoreOptions o;
  o.max_request_bytes = 1000;  // reopened with a limit below one group
  auto store = std::move(TrajectoryStore::Open(dir, o)).value();
  EXPECT_EQ(store->Lease(ByStep(0)).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(store->Lease(ByStep(-1)).status().code(), absl::StatusCode::kInvalidArgument);
  auto no_run = ByStep(0);
  no_run.set_run_id("");
  EXPECT_EQ(store->Lease(no_run).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Ack(zerorl::v1::AckRequest()).status().code(), absl::StatusCode::kInvalidArgument);
  zerorl::v1::AckRequest unknown;
  unknown.set_lease_id("L-nope");
  EXPECT_EQ(store->Ack(unknown).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace zerorl::buffer
