// buffer_crash_writer DIR GROUPS_PER_STEP: the child of buffer_crash_test.
// Appends one step (GROUPS_PER_STEP synthetic groups, one Append = one batch)
// after another, continuing after the last stored step, and prints "ACK STEP"
// on stdout (flushed) only after Append has returned OK — i.e. after the batch
// is durable. It runs until killed.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "buffer/synthetic_groups.h"
#include "buffer/trajectory_store.h"

namespace zb = zerorl::buffer;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: buffer_crash_writer DIR GROUPS_PER_STEP\n");
    return 2;
  }
  const int groups = std::atoi(argv[2]);
  auto store = zb::TrajectoryStore::Open(argv[1], {});
  if (!store.ok()) {
    std::fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
    return 1;
  }
  int64_t step = 0;
  const auto runs = (*store)->ListRuns();
  for (const auto& r : runs.runs())
    if (r.run_id() == "crash") step = r.last_step() + 1;
  std::printf("READY %lld\n", static_cast<long long>(step));
  std::fflush(stdout);
  const zb::GroupShape shape{4, 48, true, 3};
  for (;; ++step) {
    zerorl::v1::AppendRequest req;
    for (int g = 0; g < groups; ++g) *req.add_groups() = zb::SyntheticGroup("crash", step, g, shape);
    auto r = (*store)->Append(req);
    if (!r.ok()) {
      std::fprintf(stderr, "append step %lld: %s\n", static_cast<long long>(step), r.status().ToString().c_str());
      return 1;
    }
    std::printf("ACK %lld\n", static_cast<long long>(step));
    std::fflush(stdout);
  }
}
