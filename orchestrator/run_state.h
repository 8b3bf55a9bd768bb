// The orchestrator's durable state of one run: RUN_DIR/state.json.
//
// Written atomically after every step (temporary file, fsync, rename, fsync of
// the directory), so after a crash the file holds either the previous or the
// new step, never a mix. `step` is the next step to run: a restarted
// orchestrator re-runs that step with the same IDs (the buffer drops the
// duplicates), never skipping or repeating a finished one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "orchestrator/dataset.h"
#include "zerorl/v1/orchestrator.pb.h"

namespace zerorl {

struct RunStateRecord {
  std::string run_id;
  zerorl::v1::RunState state = zerorl::v1::RUN_STATE_CREATED;
  int64_t step = 0;                 // next step to run
  DatasetCursor cursor;             // train-split position before `step`
  uint64_t rng_state = 0;           // orchestrator RNG (sampling seeds) before `step`
  int64_t policy_version = 0;
  int64_t reward_spec_version = 0;
  int64_t started_unix_ms = 0;
  std::string error;
  std::vector<zerorl::v1::WorkerInfo> workers;  // the registry as last seen
  bool has_base_eval = false;       // eval at step 0 (before any training) recorded
  double base_eval_accuracy = 0;
};

// Writes `state` to `path` atomically.
absl::Status SaveRunState(const std::string& path, const RunStateRecord& state);

// NOT_FOUND when there is no state yet; DATA_LOSS naming the path when it is unreadable.
absl::StatusOr<RunStateRecord> LoadRunState(const std::string& path);

}  // namespace zerorl
