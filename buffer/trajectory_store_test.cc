// TrajectoryStore tests: round trip (routing replay records too), idempotency, filters, paging, stats,
// retention, arrivals (Tail), backup and every kind of bad input / bad directory.
#include "buffer/trajectory_store.h"

#include <filesystem>
#include <fstream>
#include <set>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "buffer/keys.h"
#include "buffer/synthetic_groups.h"
#include "tests/testing/subprocess.h"

namespace zerorl::buffer {
namespace {

using google::protobuf::util::MessageDifferencer;
using zerorl::v1::AppendRequest;
using zerorl::v1::ListTrajectoriesRequest;

std::unique_ptr<TrajectoryStore> OpenOrDie(const std::string& dir, StoreOptions o = {}) {
  auto s = TrajectoryStore::Open(dir, o);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(s).value() : nullptr;
}

AppendRequest Steps(const std::string& run, int first_step, int steps, int groups, GroupShape shape = {}) {
  AppendRequest r;
  for (int s = first_step; s < first_step + steps; ++s)
    for (int g = 0; g < groups; ++g) *r.add_groups() = SyntheticGroup(run, s, g, shape);
  return r;
}

// Every trajectory matching `req`'s filter, following page tokens.
std::vector<zerorl::v1::Trajectory> ListAll(TrajectoryStore* store, ListTrajectoriesRequest req, int* pages = nullptr) {
  std::vector<zerorl::v1::Trajectory> out;
  int n = 0;
  do {
    auto page = store->List(req);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) break;
    for (auto& t : page->trajectories()) out.push_back(t);
    req.set_page_token(page->next_page_token());
    ++n;
  } while (!req.page_token().empty() && n < 10000);
  if (pages) *pages = n;
  return out;
}

TEST(TrajectoryStoreTest, RoundTripKeepsEveryField) {
  auto dir = testing::MakeTempDir("buffer_roundtrip");
  auto store = OpenOrDie(dir);
  ASSERT_TRUE(store);
  auto g = SyntheticGroup("run1", 3, 2, GroupShape{4, 32, true, 4});
  AppendRequest req;
  *req.add_groups() = g;
  auto r = store->Append(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->appended(), 1);
  EXPECT_EQ(r->duplicates(), 0);
  for (const auto& want : g.trajectories()) {
    auto got = store->Get(FormatId(want.id()));
    ASSERT_TRUE(got.ok()) << got.status();
    zerorl::v1::Trajectory expect = want;
    *expect.mutable_prompt() = g.prompt();
    EXPECT_TRUE(MessageDifferencer::Equals(*got, expect)) << got->DebugString();
  }
  // Survives reopen.
  store.reset();
  store = OpenOrDie(dir);
  auto again = store->Get("run1/3/2/3");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->sample().token_ids_size(), 32);
  EXPECT_EQ(again->prompt().id(), g.prompt().id());
  EXPECT_EQ(store->Get("run1/3/2/4").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Get("run1/3/2").status().code(), absl::StatusCode::kInvalidArgument);
}

// A routing replay record (every byte value, NULs included) comes back intact
// from Get, after a reopen, and in the learner's Lease.
TEST(TrajectoryStoreTest, RoutingRecordRoundTripsThroughGetAndLease) {
  auto dir = testing::MakeTempDir("buffer_routing");
  auto store = OpenOrDie(dir);
  ASSERT_TRUE(store);
  auto g = SyntheticGroup("run1", 0, 0, GroupShape{3, 16, true, 4});
  for (int i = 0; i < g.trajectories_size(); ++i) {
    zerorl::v1::RoutingRecord* rec = g.mutable_trajectories(i)->mutable_sample()->mutable_routing();
    rec->set_moe_layers(3);
    rec->set_top_k(2);
    rec->set_n_experts(300);  // two bytes per id
    rec->set_tokens(100 + i);
    std::string ids;
    for (int b = 0; b < rec->tokens() * 3 * 2 * 2; ++b) ids.push_back(static_cast<char>((b * 37 + i) & 0xff));
    rec->set_expert_ids(ids);
  }
  AppendRequest req;
  *req.add_groups() = g;
  ASSERT_TRUE(store->Append(req).ok());
  store.reset();
  store = OpenOrDie(dir);
  ASSERT_TRUE(store);
  for (const auto& want : g.trajectories()) {
    auto got = store->Get(FormatId(want.id()));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(MessageDifferencer::Equals(got->sample().routing(), want.sample().routing())) << FormatId(want.id());
  }
  zerorl::v1::LeaseRequest lease;
  lease.set_run_id("run1");
  lease.set_by_step(true);
  lease.set_step(0);
  lease.set_holder("learner-0");
  auto leased = store->Lease(lease);
  ASSERT_TRUE(leased.ok()) << leased.status();
  ASSERT_EQ(leased->groups_size(), 1);
  ASSERT_EQ(leased->groups(0).trajectories_size(), g.trajectories_size());
  for (int i = 0; i < g.trajectories_size(); ++i)
    EXPECT_TRUE(MessageDifferencer::Equals(leased->groups(0).trajectories(i).sample().routing(),
                                           g.trajectories(i).sample().routing()))
        << "sample " << i;
}

TEST(TrajectoryStoreTest, RetriedAppendIsANoOp) {
  auto store = OpenOrDie(testing::MakeTempDir("buffer_idem"));
  auto req = Steps("r", 0, 2, 3);
  auto first = store->Append(req);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->appended(), 6);
  // Same IDs with different content: still a duplicate, content untouched.
  auto changed = req;
  changed.mutable_groups(0)->mutable_trajectories(0)->mutable_sample()->set_text("CHANGED");
  *changed.add_groups() = SyntheticGroup("r", 2, 0, {});
  auto second = store->Append(changed);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->appended(), 1);
  EXPECT_EQ(second->duplicates(), 6);
  EXPECT_NE(store->Get("r/0/0/0")->sample().text(), "CHANGED");
  // A group repeated inside one request counts once.
  AppendRequest twice;
  *twice.add_groups() = SyntheticGroup("r", 5, 0, {});
  *twice.add_groups() = SyntheticGroup("r", 5, 0, {});
  auto t = store->Append(twice);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->appended(), 1);
  EXPECT_EQ(t->duplicates(), 1);
  auto runs = store->ListRuns();
  ASSERT_EQ(runs.runs_size(), 1);
  EXPECT_EQ(runs.runs(0).trajectories(), 8 * 4);
  EXPECT_EQ(runs.runs(0).first_step(), 0);
  EXPECT_EQ(runs.runs(0).last_step(), 5);
  EXPECT_EQ(store->counters().duplicate_groups, 7);
}

TEST(TrajectoryStoreTest, BadAppendsAreRejectedWhole) {
  StoreOptions o;
  o.max_request_bytes = 20000;
  auto store = OpenOrDie(testing::MakeTempDir("buffer_bad_append"), o);
  auto big = Steps("r", 0, 1, 10, GroupShape{4, 256, true, 4});
  EXPECT_EQ(store->Append(big).status().code(), absl::StatusCode::kResourceExhausted);

  auto bad_id = Steps("r", 0, 1, 2);
  bad_id.mutable_groups(1)->mutable_id()->set_run_id("bad run");
  auto s = store->Append(bad_id);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("groups[1]"), std::string::npos) << s.status();

  auto neg = Steps("r", 0, 1, 1);
  neg.mutable_groups(0)->mutable_id()->set_step(-1);
  EXPECT_EQ(store->Append(neg).status().code(), absl::StatusCode::kInvalidArgument);

  auto foreign = Steps("r", 0, 1, 1);
  foreign.mutable_groups(0)->mutable_trajectories(1)->mutable_id()->set_group(9);
  EXPECT_EQ(store->Append(foreign).status().code(), absl::StatusCode::kInvalidArgument);

  auto dup_sample = Steps("r", 0, 1, 1);
  dup_sample.mutable_groups(0)->mutable_trajectories(1)->mutable_id()->set_sample(0);
  EXPECT_EQ(store->Append(dup_sample).status().code(), absl::StatusCode::kInvalidArgument);

  auto empty = Steps("r", 0, 1, 1);
  empty.mutable_groups(0)->clear_trajectories();
  EXPECT_EQ(store->Append(empty).status().code(), absl::StatusCode::kInvalidArgument);

  auto nan = Steps("r", 0, 1, 1);
  nan.mutable_groups(0)->mutable_trajectories(0)->mutable_reward()->set_reward(std::nan(""));
  EXPECT_EQ(store->Append(nan).status().code(), absl::StatusCode::kInvalidArgument);
  // Nothing of the rejected requests was written.
  EXPECT_EQ(store->ListRuns().runs_size(), 0);
}

TEST(TrajectoryStoreTest, EveryFilter) {
  auto store = OpenOrDie(testing::MakeTempDir("buffer_filters"));
  ASSERT_TRUE(store->Append(Steps("a", 0, 6, 4)).ok());  // 6 steps x 4 groups x 4 samples
  ASSERT_TRUE(store->Append(Steps("b", 0, 2, 2)).ok());
  std::vector<zerorl::v1::Trajectory> all_a;
  {
    ListTrajectoriesRequest req;
    req.mutable_filter()->set_run_id("a");
    all_a = ListAll(store.get(), req);
    ASSERT_EQ(all_a.size(), 96u);
    for (size_t i = 1; i < all_a.size(); ++i)
      EXPECT_LT(TrajectoryKey(all_a[i - 1].id()), TrajectoryKey(all_a[i].id()));  // step order
  }
  // Checks a filter against brute force over all_a.
  auto check = [&](const std::function<void(zerorl::v1::TrajectoryFilter*)>& set,
                   const std::function<bool(const zerorl::v1::Trajectory&)>& want, const char* name) {
    ListTrajectoriesRequest req;
    req.mutable_filter()->set_run_id("a");
    set(req.mutable_filter());
    req.set_page_size(7);
    std::set<std::string> got, expect;
    for (const auto& t : ListAll(store.get(), req)) got.insert(FormatId(t.id()));
    for (const auto& t : all_a)
      if (want(t)) expect.insert(FormatId(t.id()));
    EXPECT_FALSE(expect.empty()) << name;
    EXPECT_LT(expect.size(), all_a.size()) << name;
    EXPECT_EQ(got, expect) << name;
  };
  check([](auto* f) { f->set_step_min(2); f->set_step_max(3); f->set_has_step_max(true); },
        [](const auto& t) { return t.id().step() >= 2 && t.id().step() <= 3; }, "step range");
  check([](auto* f) { f->set_step_min(4); }, [](const auto& t) { return t.id().step() >= 4; }, "step_min");
  check([](auto* f) { f->set_min_reward(0.5); }, [](const auto& t) { return t.reward().reward() >= 0.5; }, "min_reward");
  check([](auto* f) { f->set_max_reward(0.5); }, [](const auto& t) { return t.reward().reward() <= 0.5; }, "max_reward");
  check([](auto* f) { f->set_min_reward(0.5); f->set_step_min(3); },
        [](const auto& t) { return t.reward().reward() >= 0.5 && t.id().step() >= 3; }, "reward+step");
  check([](auto* f) { f->set_policy_version(2); }, [](const auto& t) { return t.sample().policy_version() == 2; },
        "policy_version");
  check([](auto* f) { f->set_finish_reason(zerorl::v1::FINISH_REASON_LENGTH); },
        [](const auto& t) { return t.sample().finish_reason() == zerorl::v1::FINISH_REASON_LENGTH; }, "finish");
  check([](auto* f) { f->set_prompt_id("p1"); }, [](const auto& t) { return t.prompt().id() == "p1"; }, "prompt_id");
  const std::string needle = all_a[37].sample().text().substr(5, 6);
  check([&](auto* f) { f->set_contains(needle); },
        [&](const auto& t) { return t.sample().text().find(needle) != std::string::npos; }, "contains completion");
  check([](auto* f) { f->set_contains("Question 3"); },
        [](const auto& t) { return t.prompt().text().find("Question 3") != std::string::npos; }, "contains prompt");

  // No run filter: every run.
  ListTrajectoriesRequest every;
  EXPECT_EQ(ListAll(store.get(), every).size(), 96u + 16u);
}

TEST(TrajectoryStoreTest, PagingCoversEverythingOnce) {
  auto store = OpenOrDie(testing::MakeTempDir("buffer_paging"));
  ASSERT_TRUE(store->Append(Steps("r", 0, 5, 5)).ok());  // 100 trajectories
  ListTrajectoriesRequest req;
  req.mutable_filter()->set_run_id("r");
  req.set_page_size(30);
  int pages = 0;
  auto all = ListAll(store.get(), req, &pages);
  EXPECT_EQ(all.size(), 100u);
  EXPECT_EQ(pages, 4);
  std::set<std::string> ids;
  for (const auto& t : all) ids.insert(FormatId(t.id()));
  EXPECT_EQ(ids.size(), 100u);
  // Exactly one full page: no token.
  req.set_page_size(100);
  auto one = store->List(req);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->trajectories_size(), 100);
  EXPECT_TRUE(one->next_page_token().empty());
}

TEST(TrajectoryStoreTest, BadFiltersAndTokensAreInvalidArgument) {
  auto store = OpenOrDie(testing::MakeTempDir("buffer_bad_filter"));
  ASSERT_TRUE(store->Append(Steps("r", 0, 2, 2)).ok());
  auto code = [&](const std::function<void(ListTrajectoriesRequest*)>& set) {
    ListTrajectoriesRequest req;
    req.mutable_filter()->set_run_id("r");
    set(&req);
    return store->List(req).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code([](auto* r) { r->mutable_filter()->set_run_id("no/slash"); }), kInvalid);
  EXPECT_EQ(code([](auto* r) { r->mutable_filter()->set_step_min(-1); }), kInvalid);
  EXPECT_EQ(code([](auto* r) { r->mutable_filter()->set_step_min(5); r->mutable_filter()->set_step_max(2);
                               r->mutable_filter()->set_has_step_max(true); }), kInvalid);
  EXPECT_EQ(code([](auto* r) { r->mutable_filter()->set_min_reward(2); r->mutable_filter()->set_max_reward(1); }),
            kInvalid);
  EXPECT_EQ(code([](auto* r) { r->mutable_filter()->set_min_reward(std::nan("")); }), kInvalid);
  EXPECT_EQ(code([](auto* r) { r->mutable_filter()->set_policy_version(-3); }), kInvalid);
  EXPECT_EQ(code([](auto* r) { r->mutable_filter()->set_finish_reason(static_cast<zerorl::v1::FinishReason>(42)); }),
            kInvalid);
  EXPECT_EQ(code([](auto* r) { r->set_page_size(-1); }), kInvalid);
  EXPECT_EQ(code([](auto* r) { r->set_page_token("garbage"); }), kInvalid);
  EXPECT_EQ(code([](auto* r) { r->set_page_token("p:zz"); }), kInvalid);
  // A token from another filter's plan.
  ListTrajectoriesRequest by_reward;
  by_reward.mutable_filter()->set_run_id("r");
  by_reward.mutable_filter()->set_min_reward(0);
  by_reward.set_page_size(1);
  auto page = store->List(by_reward);
  ASSERT_TRUE(page.ok());
  ASSERT_FALSE(page->next_page_token().empty());
  EXPECT_EQ(code([&](auto* r) { r->set_page_token(page->next_page_token()); }), kInvalid);
  EXPECT_EQ(store->StepStats([] { zerorl::v1::StepStatsRequest r; r.set_run_id("r"); r.set_step_min(3);
                                  r.set_step_max(1); return r; }()).status().code(), kInvalid);
}

TEST(TrajectoryStoreTest, StepStats) {
  auto store = OpenOrDie(testing::MakeTempDir("buffer_stats"));
  auto req = Steps("r", 0, 3, 2, GroupShape{4, 10, false, 1});
  ASSERT_TRUE(store->Append(req).ok());
  zerorl::v1::StepStatsRequest sr;
  sr.set_run_id("r");
  sr.set_step_min(1);
  auto stats = store->StepStats(sr);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->steps_size(), 2);
  for (const auto& st : stats->steps()) {
    double sum = 0, sq = 0;
    int correct = 0;
    for (const auto& g : req.groups()) {
      if (g.id().step() != st.step()) continue;
      for (const auto& t : g.trajectories()) {
        sum += t.reward().reward();
        sq += t.reward().reward() * t.reward().reward();
        correct += t.reward().correct();
      }
    }
    EXPECT_EQ(st.count(), 8);
    EXPECT_DOUBLE_EQ(st.reward_mean(), sum / 8);
    EXPECT_NEAR(st.reward_std(), std::sqrt(sq / 8 - (sum / 8) * (sum / 8)), 1e-12);
    EXPECT_DOUBLE_EQ(st.accuracy(), correct / 8.0);
    EXPECT_DOUBLE_EQ(st.completion_len_mean(), 10.0);
  }
  EXPECT_EQ(stats->steps(0).step(), 1);
}

TEST(TrajectoryStoreTest, RetentionByStepsAndBytes) {
  StoreOptions o;
  o.keep_last_steps = 3;
  auto dir = testing::MakeTempDir("buffer_retention");
  {
    auto store = OpenOrDie(dir, o);
    for (int s = 0; s < 8; ++s) ASSERT_TRUE(store->Append(Steps("r", s, 1, 2)).ok());
    auto runs = store->ListRuns();
    ASSERT_EQ(runs.runs_size(), 1);
    EXPECT_EQ(runs.runs(0).first_step(), 5);
    EXPECT_EQ(runs.runs(0).last_step(), 7);
    EXPECT_EQ(runs.runs(0).trajectories(), 3 * 2 * 4);
    EXPECT_EQ(store->Get("r/4/0/0").status().code(), absl::StatusCode::kNotFound);
    EXPECT_TRUE(store->Get("r/5/0/0").ok());
    // Index entries went too: a reward-filtered list sees only live steps.
    ListTrajectoriesRequest req;
    req.mutable_filter()->set_run_id("r");
    req.mutable_filter()->set_min_reward(-1);
    for (const auto& t : ListAll(store.get(), req)) EXPECT_GE(t.id().step(), 5);
    // A retried append of a deleted step stays deleted.
    auto re = store->Append(Steps("r", 1, 1, 2));
    ASSERT_TRUE(re.ok());
    EXPECT_EQ(re->duplicates(), 2);
    EXPECT_EQ(store->counters().retention_deleted, 5 * 2 * 4);
  }
  // Byte budget: roughly two steps' worth.
  auto one_step = Steps("q", 0, 1, 2).ByteSizeLong();
  StoreOptions b;
  b.keep_bytes = static_cast<int64_t>(one_step * 2.5);
  auto store = OpenOrDie(testing::MakeTempDir("buffer_retention_bytes"), b);
  for (int s = 0; s < 6; ++s) ASSERT_TRUE(store->Append(Steps("q", s, 1, 2)).ok());
  auto runs = store->ListRuns();
  ASSERT_EQ(runs.runs_size(), 1);
  EXPECT_LE(runs.runs(0).bytes(), b.keep_bytes);
  EXPECT_EQ(runs.runs(0).last_step(), 5);
  EXPECT_GE(runs.runs(0).first_step(), 3);
  auto c = store->Compact("q");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(store->Compact("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(TrajectoryStoreTest, ArrivalsDeliverEachTrajectoryOnce) {
  auto store = OpenOrDie(testing::MakeTempDir("buffer_arrivals"));
  ASSERT_TRUE(store->Append(Steps("r", 0, 1, 2)).ok());
  uint64_t cursor = store->NextArrival();
  EXPECT_EQ(cursor, 8u);
  zerorl::v1::TrajectoryFilter f;
  f.set_run_id("r");
  auto none = store->ReadArrivals(&cursor, f, 100);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(store->WaitForArrivals(cursor, absl::Milliseconds(10)));
  ASSERT_TRUE(store->Append(Steps("r", 1, 1, 2)).ok());
  ASSERT_TRUE(store->Append(Steps("other", 0, 1, 1)).ok());
  EXPECT_TRUE(store->WaitForArrivals(cursor, absl::Milliseconds(10)));
  std::vector<std::string> got;
  for (int i = 0; i < 10; ++i) {
    auto batch = store->ReadArrivals(&cursor, f, 3);
    ASSERT_TRUE(batch.ok());
    for (const auto& t : *batch) got.push_back(FormatId(t.id()));
  }
  ASSERT_EQ(got.size(), 8u);
  EXPECT_EQ(got.front(), "r/1/0/0");
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), 8u);
  uint64_t from_start = 0;
  auto replay = store->ReadArrivals(&from_start, f, 1000);
  ASSERT_TRUE(replay.ok());
  EXPECT_EQ(replay->size(), 16u);
}

TEST(TrajectoryStoreTest, BackupOpensAsACopy) {
  auto dir = testing::MakeTempDir("buffer_backup");
  auto store = OpenOrDie(dir + "/db");
  ASSERT_TRUE(store->Append(Steps("r", 0, 2, 2)).ok());
  auto b = store->Backup(dir + "/backup");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_GT(b->bytes(), 0);
  EXPECT_EQ(store->Backup(dir + "/backup").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store->Backup("").status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->Append(Steps("r", 2, 1, 2)).ok());  // after the backup: not in it
  auto copy = OpenOrDie(dir + "/backup");
  ASSERT_TRUE(copy);
  EXPECT_TRUE(copy->Get("r/1/1/3").ok());
  EXPECT_EQ(copy->Get("r/2/0/0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(copy->ListRuns().runs(0).trajectories(), 16);
}

TEST(TrajectoryStoreTest, ForeignOrBrokenDirectoriesAreClearErrors) {
  auto dir = testing::MakeTempDir("buffer_foreign");
  // Not RocksDB.
  std::filesystem::create_directories(dir + "/junk");
  std::ofstream(dir + "/junk/notes.txt") << "precious";
  auto s = TrajectoryStore::Open(dir + "/junk", {});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find(dir + "/junk"), std::string::npos) << s.status();
  EXPECT_TRUE(std::filesystem::exists(dir + "/junk/notes.txt"));  // never wiped
  // A file, not a directory.
  EXPECT_EQ(TrajectoryStore::Open(dir + "/junk/notes.txt", {}).status().code(), absl::StatusCode::kFailedPrecondition);
  // A foreign RocksDB.
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir + "/other", &db).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "k", "v").ok());
    delete db;
  }
  s = TrajectoryStore::Open(dir + "/other", {});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("not a zerorl buffer"), std::string::npos) << s.status();
  // A buffer with a different format marker.
  {
    auto store = OpenOrDie(dir + "/buf");
    ASSERT_TRUE(store->Append(Steps("r", 0, 1, 1)).ok());
  }
  {
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir + "/buf", &names).ok());
    for (const auto& n : names) cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> hs;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir + "/buf", cfs, &hs, &db).ok());
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == "meta") {
        ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), hs[i], "format", "zerorl-buffer/99").ok());
      }
    }
    for (auto* h : hs) db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  s = TrajectoryStore::Open(dir + "/buf", {});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("zerorl-buffer/99"), std::string::npos) << s.status();
  // Corrupted files: a clear error naming the path, no crash.
  {
    auto store = OpenOrDie(dir + "/corrupt");
    ASSERT_TRUE(store->Append(Steps("r", 0, 1, 1)).ok());
  }
  for (const auto& e : std::filesystem::directory_iterator(dir + "/corrupt")) {
    if (e.path().filename().string().rfind("MANIFEST", 0) == 0) std::ofstream(e.path(), std::ios::trunc) << "garbage";
  }
  s = TrajectoryStore::Open(dir + "/corrupt", {});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(dir + "/corrupt"), std::string::npos) << s.status();
  // Held by another open store.
  auto holder = OpenOrDie(dir + "/held");
  EXPECT_EQ(TrajectoryStore::Open(dir + "/held", {}).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace zerorl::buffer
