// Configuration: YAML text -> protobuf messages (RunConfig, RewardSpec, ...).
//
// Every key must name a field of the target message; an unknown key, a value of
// the wrong type or an unknown enum name is an INVALID_ARGUMENT error whose
// message starts with the key's dotted path and its line, e.g.
//   run.yaml:12: learner.optimizer.lr: expected number, got "fast"
// Enum values may be written by their short lowercase name: for the enum
// `LossAggregation`, `dapo` means LOSS_AGGREGATION_DAPO.
// A key written twice in one mapping is an error naming both lines. Every
// float and double must be finite (".nan", "-nan", ".inf" are refused).
// Loading never partially applies: on error the output message is untouched.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl {

// The documented defaults of every RunConfig field (see config.proto).
zerorl::v1::RunConfig DefaultRunConfig();

// Parses YAML `text` over the current contents of `msg` (fields not named in
// the text keep their values). `source` names the text in errors (a path).
absl::Status MergeYamlInto(absl::string_view text, absl::string_view source,
                           google::protobuf::Message* msg);

// Reads `path` and merges it into `msg`. NOT_FOUND when the file is missing.
absl::Status MergeYamlFileInto(const std::string& path, google::protobuf::Message* msg);

// DefaultRunConfig() overlaid with the file, then derived paths filled in
// (run_dir, buffer.path, checkpoint dir) and values range-checked.
absl::StatusOr<zerorl::v1::RunConfig> LoadRunConfig(const std::string& path);
absl::StatusOr<zerorl::v1::RunConfig> ParseRunConfig(absl::string_view yaml,
                                                      absl::string_view source);

// Range checks and derived defaults for a RunConfig built any other way:
// every number finite and in its documented range, run_id a plain name;
// INVALID_ARGUMENT starting with the offending key.
absl::Status FinalizeRunConfig(zerorl::v1::RunConfig* config);

// INVALID_ARGUMENT naming the first float or double field of `msg` (or of a
// message in it) that is NaN or infinite, by its dotted path under `prefix`.
absl::Status CheckFinite(const google::protobuf::Message& msg, absl::string_view prefix);

// A run id names directories: letters, digits, '-', '_' and '.', 1 to 64
// characters, not "." or "..". INVALID_ARGUMENT starting with `key` otherwise.
absl::Status ValidateRunId(absl::string_view id, absl::string_view key);

// The most threads any --threads flag or `threads:` key may ask for.
inline constexpr int kMaxThreads = 1024;
// OK for 0 (all cores) to kMaxThreads; INVALID_ARGUMENT starting with `key`.
absl::Status ValidateThreads(int64_t threads, absl::string_view key);

// A TCP port as a key or flag takes it: 0 (when `allow_zero`) or 1..65535.
absl::Status ValidatePort(int64_t port, absl::string_view key, bool allow_zero);

// An address "HOST:PORT" (HOST may be a name, an IPv4 or a [IPv6] literal) or a
// gRPC target with a scheme ("unix:/path", "dns:///h:p") as --addr takes it:
// INVALID_ARGUMENT starting with `key` for an empty host or a port outside
// 1..65535 (gRPC would otherwise wrap 99999 to another port).
absl::Status ValidateAddress(absl::string_view address, absl::string_view key);

// A device string as model.device and learner.data_parallel_devices take it:
// "cpu" (or "") -> -1, "cuda" -> 0, "cuda:N" -> N (decimal, N >= 0).
// INVALID_ARGUMENT starting with `key` for anything else.
absl::StatusOr<int> ParseDevice(absl::string_view device, absl::string_view key);

// Renders a message as YAML (set fields only), the inverse of MergeYamlInto.
std::string MessageToYaml(const google::protobuf::Message& msg);

// Reads a whole file. NOT_FOUND / PERMISSION_DENIED name the path;
// INVALID_ARGUMENT for a directory.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace zerorl
