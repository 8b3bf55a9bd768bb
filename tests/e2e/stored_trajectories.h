// The trajectories a finished `zerorl run` left in its buffer, read straight
// from RUN_DIR/buffer with the buffer's own store (the run has exited, so no
// service holds the database). For e2e tests that link zerorl_buffer.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "buffer/trajectory_store.h"
#include "zerorl/v1/buffer.pb.h"

namespace zerorl::e2e {

// Every stored trajectory of `run_id`, page by page; the store is closed again
// before this returns.
inline absl::StatusOr<std::vector<zerorl::v1::Trajectory>> StoredTrajectories(const std::string& buffer_dir,
                                                                             const std::string& run_id) {
  auto store = buffer::TrajectoryStore::Open(buffer_dir, {});
  if (!store.ok()) return store.status();
  std::vector<zerorl::v1::Trajectory> out;
  zerorl::v1::ListTrajectoriesRequest req;
  req.mutable_filter()->set_run_id(run_id);
  req.set_page_size(1000);
  do {
    auto page = (*store)->List(req);
    if (!page.ok()) return page.status();
    out.insert(out.end(), page->trajectories().begin(), page->trajectories().end());
    req.set_page_token(page->next_page_token());
  } while (!req.page_token().empty());
  return out;
}

}  // namespace zerorl::e2e
