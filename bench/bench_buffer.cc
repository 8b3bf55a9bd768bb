// `zerorl bench buffer`: the trajectory buffer against raw RocksDB, same run.
//
// 1. Durable appends: realistic groups (G = 16 completions x 512 tokens with
//    token ids, logprobs and sampling logprobs, ~130 KB serialized) appended one
//    group per call through TrajectoryStore (one WriteBatch, WAL fsync). The peer
//    writes the same serialized trajectories, one WriteBatch per group with
//    sync=true, into a bare RocksDB with the same compression and table options.
//    Rounds alternate (raw, store, raw, store) to share disk conditions.
// 2. Queries on a buffer of --trajectories (default 1,000,000) small
//    trajectories (G = 16 x 32 tokens, no logprobs) filled with sync OFF (bulk
//    fill only; durability is what part 1 measures): first-page latency of List
//    with filters (step range + min reward, policy version, prompt id, finish
//    reason, substring) and of Get by random ID.
// Prints a table and machine-readable lines "name value".
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>

#include "bench/bench.h"
#include "buffer/keys.h"
#include "buffer/synthetic_groups.h"
#include "buffer/trajectory_store.h"

namespace zerorl::bench {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// The raw peer: a bare RocksDB with the buffer's compression and table options.
struct RawDb {
  std::unique_ptr<rocksdb::DB> db;
  static std::unique_ptr<RawDb> Open(const std::string& path) {
    rocksdb::Options o;
    o.create_if_missing = true;
    auto supported = rocksdb::GetSupportedCompressions();
    o.compression = std::find(supported.begin(), supported.end(), rocksdb::kZSTD) != supported.end()
                        ? rocksdb::kZSTD
                        : rocksdb::kLZ4Compression;
    rocksdb::BlockBasedTableOptions t;
    t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    t.block_size = 16 << 10;
    o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
    o.IncreaseParallelism(2);
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::Open(o, path, &raw);
    if (!s.ok()) {
      std::fprintf(stderr, "raw rocksdb open %s: %s\n", path.c_str(), s.ToString().c_str());
      return nullptr;
    }
    auto r = std::make_unique<RawDb>();
    r->db.reset(raw);
    return r;
  }
};

struct AppendResult {
  double seconds = 0;
  int64_t bytes = 0;
  int64_t calls = 0;
  double MbPerS() const { return static_cast<double>(bytes) / 1e6 / seconds; }
  double CallsPerS() const { return static_cast<double>(calls) / seconds; }
};

struct BenchBufferFlags {
  std::string dir;
  int groups = 160;
  int64_t trajectories = 1'000'000;
  int queries = 1000;
  bool keep = false;
};

// Parses the flags and prepares the (empty) work directory. Returns the exit
// code when the command ends here: 0 after --help, 2 on a usage error.
std::optional<int> ParseFlags(int argc, char** argv, BenchBufferFlags* f) {
  CLI::App app{"zerorl bench buffer: durable append MB/s against raw RocksDB; query latency"};
  app.add_option("--dir", f->dir, "work directory (default: a fresh one under /tmp)");
  app.add_option("--groups", f->groups, "realistic groups (16 x 512 tokens) to append per side")->check(CLI::Range(2, 100000));
  app.add_option("--trajectories", f->trajectories, "size of the query buffer")->check(CLI::Range(int64_t{1600}, int64_t{100'000'000}));
  app.add_option("--queries", f->queries, "queries per kind")->check(CLI::Range(10, 1'000'000));
  app.add_flag("--keep", f->keep, "keep the work directory");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (f->dir.empty()) f->dir = (std::filesystem::temp_directory_path() / ("zerorl-bench-buffer-" + std::to_string(getpid()))).string();
  std::error_code ec;
  if (std::filesystem::exists(f->dir, ec) && !std::filesystem::is_empty(f->dir, ec)) {
    std::fprintf(stderr, "bench buffer: --dir %s is not empty\n", f->dir.c_str());
    return 2;
  }
  std::filesystem::create_directories(f->dir, ec);
  return std::nullopt;
}

// Part 1: `groups` realistic groups appended durably through TrajectoryStore
// (*mine) and as bare WriteBatches into raw RocksDB (*peer), in alternating
// rounds. Prints the reason and returns false on a failure.
bool BenchDurableAppends(const std::string& dir, int groups, AppendResult* mine, AppendResult* peer) {
  const buffer::GroupShape big{16, 512, true, 4};
  std::vector<zerorl::v1::AppendRequest> requests(static_cast<size_t>(groups));
  for (int i = 0; i < groups; ++i) *requests[i].add_groups() = buffer::SyntheticGroup("bench", i / 8, i % 8, big, 7);
  auto store_or = buffer::TrajectoryStore::Open(dir + "/append", {});
  if (!store_or.ok()) {
    std::fprintf(stderr, "bench buffer: %s\n", store_or.status().ToString().c_str());
    return false;
  }
  auto store = std::move(store_or).value();
  auto raw = RawDb::Open(dir + "/raw");
  if (!raw) return false;
  std::string value;
  for (int round = 0; round < 2; ++round) {
    const int lo = round * groups / 2, hi = (round + 1) * groups / 2;
    auto t0 = Clock::now();
    rocksdb::WriteOptions sync;
    sync.sync = true;
    for (int i = lo; i < hi; ++i) {
      rocksdb::WriteBatch b;
      for (const auto& t : requests[i].groups(0).trajectories()) {
        t.SerializeToString(&value);
        b.Put(buffer::TrajectoryKey(t.id()), value);
      }
      auto s = raw->db->Write(sync, &b);
      if (!s.ok()) {
        std::fprintf(stderr, "raw write: %s\n", s.ToString().c_str());
        return false;
      }
      peer->bytes += static_cast<int64_t>(requests[i].ByteSizeLong());
      ++peer->calls;
    }
    auto t1 = Clock::now();
    for (int i = lo; i < hi; ++i) {
      auto r = store->Append(requests[i]);
      if (!r.ok() || r->appended() != 1) {
        std::fprintf(stderr, "append: %s\n", r.ok() ? "not appended" : r.status().ToString().c_str());
        return false;
      }
      mine->bytes += static_cast<int64_t>(requests[i].ByteSizeLong());
      ++mine->calls;
    }
    auto t2 = Clock::now();
    peer->seconds += Seconds(t0, t1);
    mine->seconds += Seconds(t1, t2);
  }
  return true;
}

constexpr int kGroupsPerStep = 64;  // query buffer: groups per step, 16 samples each

// Part 2's buffer: steps x kGroupsPerStep small groups, filled with sync off.
struct QueryBuffer {
  std::unique_ptr<buffer::TrajectoryStore> store;
  int64_t steps = 0;
  double fill_seconds = 0;
  int64_t stored() const { return steps * kGroupsPerStep * 16; }
};

// Fills a fresh query buffer of about `trajectories` trajectories. Prints the
// reason and returns false on a failure.
bool FillQueryBuffer(const std::string& dir, int64_t trajectories, QueryBuffer* qb) {
  buffer::StoreOptions fill_opts;
  fill_opts.sync = false;
  fill_opts.max_page_size = 1000;
  auto qstore_or = buffer::TrajectoryStore::Open(dir + "/query", fill_opts);
  if (!qstore_or.ok()) {
    std::fprintf(stderr, "bench buffer: %s\n", qstore_or.status().ToString().c_str());
    return false;
  }
  qb->store = std::move(qstore_or).value();
  const buffer::GroupShape small{16, 32, false, 4};
  qb->steps = std::max<int64_t>(1, trajectories / (16 * kGroupsPerStep));
  auto f0 = Clock::now();
  for (int64_t s = 0; s < qb->steps; ++s) {
    zerorl::v1::AppendRequest req;
    for (int g = 0; g < kGroupsPerStep; ++g) *req.add_groups() = buffer::SyntheticGroup("q", s, g, small, 11);
    auto r = qb->store->Append(req);
    if (!r.ok()) {
      std::fprintf(stderr, "fill: %s\n", r.status().ToString().c_str());
      return false;
    }
  }
  qb->fill_seconds = Seconds(f0, Clock::now());
  return true;
}

constexpr int kQueryKinds = 5;
const char* const kQueryKindNames[kQueryKinds] = {"step range + min_reward", "policy_version", "prompt_id + step_min",
                                                  "finish_reason + steps", "contains + steps"};

// First-page List latencies (ms) of every kind, and Get latencies by random ID.
struct QueryLatencies {
  std::vector<double> list_ms, per_kind[kQueryKinds], get_ms;
  int64_t returned = 0;  // trajectories over all List pages
};

// The filter of List query `kind` (see kQueryKindNames) around step s.
zerorl::v1::ListTrajectoriesRequest ListQuery(int kind, int64_t s, std::mt19937_64* rng) {
  zerorl::v1::ListTrajectoriesRequest req;
  auto* f = req.mutable_filter();
  f->set_run_id("q");
  req.set_page_size(100);
  switch (kind) {
    case 0:
      f->set_step_min(s);
      f->set_step_max(s + 1);
      f->set_has_step_max(true);
      f->set_min_reward(0.5);
      break;
    case 1:
      f->set_policy_version(s);
      break;
    case 2:
      f->set_prompt_id("p" + std::to_string((*rng)() % 8));
      f->set_step_min(s);
      break;
    case 3:
      f->set_finish_reason(zerorl::v1::FINISH_REASON_LENGTH);
      f->set_step_min(s);
      f->set_step_max(s + 3);
      f->set_has_step_max(true);
      break;
    default:
      f->set_contains(std::string(1, static_cast<char>('a' + (*rng)() % 26)) + static_cast<char>('a' + (*rng)() % 26));
      f->set_step_min(s);
      f->set_step_max(s + 3);
      f->set_has_step_max(true);
  }
  return req;
}

// Part 2's measurements: `queries` List calls of each kind, then 5 x
// `queries` Get calls. Prints the reason and returns false on a failure.
bool MeasureQueries(const QueryBuffer& qb, int queries, QueryLatencies* lat) {
  std::mt19937_64 rng(42);
  auto rand_step = [&] { return static_cast<int64_t>(rng() % static_cast<uint64_t>(qb.steps)); };
  for (int i = 0; i < queries * kQueryKinds; ++i) {
    const int kind = i % kQueryKinds;
    const int64_t s = rand_step();
    const zerorl::v1::ListTrajectoriesRequest req = ListQuery(kind, s, &rng);
    auto t0 = Clock::now();
    auto r = qb.store->List(req);
    const double ms = Seconds(t0, Clock::now()) * 1e3;
    if (!r.ok()) {
      std::fprintf(stderr, "list: %s\n", r.status().ToString().c_str());
      return false;
    }
    lat->returned += r->trajectories_size();
    lat->list_ms.push_back(ms);
    lat->per_kind[kind].push_back(ms);
  }
  for (int i = 0; i < queries * kQueryKinds; ++i) {
    zerorl::v1::TrajectoryId id;
    id.set_run_id("q");
    id.set_step(rand_step());
    id.set_group(static_cast<int32_t>(rng() % kGroupsPerStep));
    id.set_sample(static_cast<int32_t>(rng() % 16));
    auto t0 = Clock::now();
    auto r = qb.store->Get(id);
    lat->get_ms.push_back(Seconds(t0, Clock::now()) * 1e3);
    if (!r.ok()) {
      std::fprintf(stderr, "get: %s\n", r.status().ToString().c_str());
      return false;
    }
  }
  return true;
}

// The table, then the machine-readable "name value" lines.
void PrintReport(const BenchBufferFlags& f, const AppendResult& mine, const AppendResult& peer,
                 const QueryBuffer& qb, const QueryLatencies& lat) {
  const double mine_mb = mine.MbPerS(), peer_mb = peer.MbPerS();
  std::printf("zerorl bench buffer (work dir %s%s)\n\n", f.dir.c_str(), f.keep ? "" : ", removed");
  std::printf("durable append: %d groups of 16 x 512 tokens (%.0f KB each), one call per group, WAL fsync\n",
              f.groups, static_cast<double>(mine.bytes) / static_cast<double>(mine.calls) / 1e3);
  std::printf("  %-28s %10s %12s\n", "", "MB/s", "groups/s");
  std::printf("  %-28s %10.1f %12.1f\n", "TrajectoryStore::Append", mine_mb, mine.CallsPerS());
  std::printf("  %-28s %10.1f %12.1f\n", "raw RocksDB WriteBatch+sync", peer_mb, peer.CallsPerS());
  std::printf("  ratio store/raw = %.2f (target >= 0.5)\n\n", mine_mb / peer_mb);
  std::printf("queries on %lld trajectories (16 x 32 tokens; filled with sync off in %.1f s, %.0f traj/s)\n",
              static_cast<long long>(qb.stored()), qb.fill_seconds, static_cast<double>(qb.stored()) / qb.fill_seconds);
  std::printf("  %-28s %10s %10s\n", "first page of 100", "p50 ms", "p99 ms");
  for (int k = 0; k < kQueryKinds; ++k)
    std::printf("  %-28s %10.3f %10.3f\n", kQueryKindNames[k], Percentile(lat.per_kind[k], 0.5),
                Percentile(lat.per_kind[k], 0.99));
  std::printf("  %-28s %10.3f %10.3f   (mean %.1f results/page)\n", "list, all kinds", Percentile(lat.list_ms, 0.5),
              Percentile(lat.list_ms, 0.99), static_cast<double>(lat.returned) / static_cast<double>(lat.list_ms.size()));
  std::printf("  %-28s %10.3f %10.3f\n\n", "get by id", Percentile(lat.get_ms, 0.5), Percentile(lat.get_ms, 0.99));
  std::printf("append_mb_per_s %.2f\n", mine_mb);
  std::printf("rocksdb_raw_mb_per_s %.2f\n", peer_mb);
  std::printf("append_ratio %.3f\n", mine_mb / peer_mb);
  std::printf("appends_per_s %.2f\n", mine.CallsPerS());
  std::printf("list_p50_ms %.3f\n", Percentile(lat.list_ms, 0.5));
  std::printf("list_p99_ms %.3f\n", Percentile(lat.list_ms, 0.99));
  std::printf("get_p50_ms %.3f\n", Percentile(lat.get_ms, 0.5));
  std::printf("get_p99_ms %.3f\n", Percentile(lat.get_ms, 0.99));
}

}  // namespace

int BenchBuffer(int argc, char** argv) {
  BenchBufferFlags f;
  if (std::optional<int> exit_code = ParseFlags(argc, argv, &f)) return *exit_code;
  AppendResult mine, peer;
  if (!BenchDurableAppends(f.dir, f.groups, &mine, &peer)) return 1;
  QueryBuffer qb;
  if (!FillQueryBuffer(f.dir, f.trajectories, &qb)) return 1;
  QueryLatencies lat;
  if (!MeasureQueries(qb, f.queries, &lat)) return 1;
  qb.store.reset();
  std::error_code ec;
  if (!f.keep) std::filesystem::remove_all(f.dir, ec);
  PrintReport(f, mine, peer, qb, lat);
  return 0;
}

}  // namespace zerorl::bench
