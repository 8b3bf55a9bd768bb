// RewardService: gRPC face of the reward actor over a RewardScorer.
//   Score            batched; items scored in parallel under one spec snapshot
//                    (or ScoreRequest.candidate_spec as a dry run, version 0).
//   GetRewardSpec    the active version; FAILED_PRECONDITION when none.
//   SetRewardSpec    admin (bearer token, else UNAUTHENTICATED): `spec` or
//                    `yaml` (exactly one), validated, then swapped atomically.
//   ListSpecVersions every version set so far, and the active one.
//   Rollback         admin: re-activates an earlier version as a new version.
// absl statuses map to gRPC codes once, here. Thread-safe.
#pragma once

#include <memory>

#include "common/auth.h"
#include "reward/scorer.h"
#include "zerorl/v1/reward.grpc.pb.h"

namespace zerorl::reward {

class RewardServiceImpl final : public zerorl::v1::RewardService::Service {
 public:
  static constexpr int kMaxItemsPerCall = 65536;

  RewardServiceImpl(std::shared_ptr<RewardScorer> scorer, std::shared_ptr<const AdminAuth> auth)
      : scorer_(std::move(scorer)), auth_(std::move(auth)) {}

  grpc::Status Score(grpc::ServerContext* ctx, const zerorl::v1::ScoreRequest* req,
                     zerorl::v1::ScoreResponse* resp) override;
  grpc::Status GetRewardSpec(grpc::ServerContext* ctx, const zerorl::v1::GetRewardSpecRequest* req,
                             zerorl::v1::RewardSpecVersion* resp) override;
  grpc::Status SetRewardSpec(grpc::ServerContext* ctx, const zerorl::v1::SetRewardSpecRequest* req,
                             zerorl::v1::RewardSpecVersion* resp) override;
  grpc::Status ListSpecVersions(grpc::ServerContext* ctx, const zerorl::v1::ListSpecVersionsRequest* req,
                                zerorl::v1::ListSpecVersionsResponse* resp) override;
  grpc::Status Rollback(grpc::ServerContext* ctx, const zerorl::v1::RollbackRequest* req,
                        zerorl::v1::RewardSpecVersion* resp) override;

 private:
  std::shared_ptr<RewardScorer> scorer_;
  std::shared_ptr<const AdminAuth> auth_;
};

}  // namespace zerorl::reward
