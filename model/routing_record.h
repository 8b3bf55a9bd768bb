// Routing replay (R3) records: the experts each MoE layer routed each token
// to while a sample was generated (zerorl.v1.RoutingRecord, common.proto).
// The rollout packs what Model::Prefill / DecodeStep report; the learner
// checks a record against its model and unpacks it into TrainBatch's
// routed_experts. (zerorlctl's summary of a record: cli/ctl_traj_view.cc.)
//
// Layout everywhere: token-major [tokens][moe_layers][K] expert ids, the MoE
// layers in layer order (dense layers skipped). On the wire one byte per id
// (uint8) when the model has at most 256 routed experts, else two (uint16,
// little-endian). Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "zerorl/v1/common.pb.h"

namespace zerorl::model {

// MoE layers of the config (0 for a dense model).
int64_t MoeLayerCount(const ModelConfig& c);

// Bytes per packed id: 1 when n_experts <= 256, else 2.
int BytesPerExpertId(int64_t n_experts);

// Packs ids [tokens][MoeLayerCount(c)][K] (each in [0, E)) into a record.
zerorl::v1::RoutingRecord PackRoutingRecord(const ModelConfig& c, const std::vector<int32_t>& ids);

// The record's ids [tokens][moe_layers][K] after checking it against the
// model (layers, K, E), the expected token count, the byte length and every
// id (< n_experts, the K of a token distinct). INVALID_ARGUMENT naming the
// field and what is wrong otherwise.
absl::StatusOr<std::vector<int32_t>> UnpackRoutingRecord(const zerorl::v1::RoutingRecord& rec, const ModelConfig& c,
                                                         int64_t expected_tokens);

}  // namespace zerorl::model
