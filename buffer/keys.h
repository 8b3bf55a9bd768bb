// Key encoding of the buffer's RocksDB and the text form of trajectory IDs.
//
// Every key starts with the run id followed by one 0x00 byte (run ids cannot
// contain 0x00: they are [A-Za-z0-9._-]{1,128}), so "run\0" is a prefix that
// holds exactly one run. Numbers are fixed-width big-endian, so byte order is
// numeric order for the non-negative values we accept:
//
//   group key       RUN \0 step:be64 group:be32                  (20 + |RUN| bytes)
//   trajectory key  RUN \0 step:be64 group:be32 sample:be32      (24 + |RUN| bytes)
//
// A prefix scan over "RUN\0" therefore walks a run in (step, group, sample)
// order, and "RUN\0 step:be64" selects one step.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "zerorl/v1/common.pb.h"

namespace zerorl::buffer {

inline constexpr size_t kMaxRunIdLength = 128;

// OK when `run_id` is 1..128 chars of [A-Za-z0-9._-]; INVALID_ARGUMENT naming it otherwise.
absl::Status ValidateRunId(absl::string_view run_id);
// Validates run id, step >= 0, group >= 0, sample >= 0.
absl::Status ValidateId(const zerorl::v1::TrajectoryId& id);

// "RUN/STEP/GROUP/SAMPLE" <-> TrajectoryId. Parse is strict (4 parts, decimal,
// non-negative, valid run id) and returns INVALID_ARGUMENT quoting the input.
std::string FormatId(const zerorl::v1::TrajectoryId& id);
absl::StatusOr<zerorl::v1::TrajectoryId> ParseId(absl::string_view text);

void AppendBe64(std::string* out, uint64_t v);
void AppendBe32(std::string* out, uint32_t v);
uint64_t ReadBe64(const char* p);
uint32_t ReadBe32(const char* p);

// Order-preserving encoding of a double (NaN not allowed) as 8 bytes.
void AppendOrderedDouble(std::string* out, double v);
double ReadOrderedDouble(const char* p);

std::string RunPrefix(absl::string_view run_id);                       // RUN \0
std::string StepPrefix(absl::string_view run_id, int64_t step);        // RUN \0 step
std::string GroupKey(absl::string_view run_id, int64_t step, int32_t group);
std::string TrajectoryKey(absl::string_view run_id, int64_t step, int32_t group, int32_t sample);
std::string TrajectoryKey(const zerorl::v1::TrajectoryId& id);

// Every index key ends with the 16-byte (step, group, sample) suffix of a
// trajectory key (group-level entries use sample 0); these read it back.
inline constexpr size_t kIdSuffixBytes = 16;
// Parses a trajectory key (RUN \0 step group sample) into an ID.
absl::StatusOr<zerorl::v1::TrajectoryId> ParseTrajectoryKey(absl::string_view key);
// Parses a group key (RUN \0 step group).
absl::StatusOr<zerorl::v1::TrajectoryId> ParseGroupKey(absl::string_view key);
// Decodes the (step, group, sample) suffix at the end of an index key of `run_id`.
zerorl::v1::TrajectoryId IdFromSuffix(absl::string_view run_id, absl::string_view key);

// Smallest string greater than every string that starts with `prefix`
// ("" when none exists, i.e. the prefix is all 0xff).
std::string PrefixSuccessor(std::string prefix);

}  // namespace zerorl::buffer
