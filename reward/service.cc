// RewardService handlers (contract in service.h).
#include "reward/service.h"

#include "absl/strings/str_cat.h"
#include "common/auth.h"
#include "common/status.h"
#include "reward/reward_spec.h"

namespace zerorl::reward {

grpc::Status RewardServiceImpl::Score(grpc::ServerContext* ctx, const zerorl::v1::ScoreRequest* req,
                                      zerorl::v1::ScoreResponse* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  if (req->items_size() > kMaxItemsPerCall) {
    return ToGrpcStatus(absl::ResourceExhaustedError(
        absl::StrCat(req->items_size(), " items in one Score call; at most ", kMaxItemsPerCall)));
  }
  std::vector<zerorl::v1::ScoreItem> items(req->items().begin(), req->items().end());
  for (auto& item : items) {  // a group's prompt and answer travel once (ScoreRequest.group_*)
    if (item.prompt().empty()) item.set_prompt(req->group_prompt());
    if (!item.has_answer() && req->has_group_answer()) *item.mutable_answer() = req->group_answer();
  }
  const zerorl::v1::RewardSpec* candidate = req->candidate_spec().terms_size() > 0 ? &req->candidate_spec() : nullptr;
  auto results = scorer_->Score(items, candidate);
  if (!results.ok()) return ToGrpcStatus(results.status());
  for (auto& r : *results) *resp->add_results() = std::move(r);
  return grpc::Status::OK;
}

grpc::Status RewardServiceImpl::GetRewardSpec(grpc::ServerContext* ctx, const zerorl::v1::GetRewardSpecRequest*,
                                              zerorl::v1::RewardSpecVersion* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  auto v = scorer_->registry().CurrentInfo();
  if (!v.ok()) return ToGrpcStatus(v.status());
  *resp = *v;
  return grpc::Status::OK;
}

grpc::Status RewardServiceImpl::SetRewardSpec(grpc::ServerContext* ctx, const zerorl::v1::SetRewardSpecRequest* req,
                                              zerorl::v1::RewardSpecVersion* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  if (auto s = auth_->CheckAdmin(ctx); !s.ok()) return ToGrpcStatus(s);
  bool has_spec = req->spec().terms_size() > 0 || !req->spec().name().empty();
  if (has_spec == !req->yaml().empty()) {
    return ToGrpcStatus(absl::InvalidArgumentError("SetRewardSpec: give exactly one of spec or yaml"));
  }
  zerorl::v1::RewardSpec spec = req->spec();
  if (!has_spec) {
    auto parsed = ParseRewardSpecYaml(req->yaml(), "SetRewardSpec.yaml");
    if (!parsed.ok()) return ToGrpcStatus(parsed.status());
    spec = *parsed;
  }
  auto v = scorer_->registry().Set(spec, "rpc", req->reason());
  if (!v.ok()) return ToGrpcStatus(v.status());
  *resp = *v;
  return grpc::Status::OK;
}

grpc::Status RewardServiceImpl::ListSpecVersions(grpc::ServerContext* ctx, const zerorl::v1::ListSpecVersionsRequest*,
                                                 zerorl::v1::ListSpecVersionsResponse* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  for (auto& v : scorer_->registry().History()) *resp->add_versions() = std::move(v);
  resp->set_active_version(scorer_->registry().Current().version);
  return grpc::Status::OK;
}

grpc::Status RewardServiceImpl::Rollback(grpc::ServerContext* ctx, const zerorl::v1::RollbackRequest* req,
                                         zerorl::v1::RewardSpecVersion* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  if (auto s = auth_->CheckAdmin(ctx); !s.ok()) return ToGrpcStatus(s);
  auto v = scorer_->registry().Rollback(req->version(), req->reason());
  if (!v.ok()) return ToGrpcStatus(v.status());
  *resp = *v;
  return grpc::Status::OK;
}

}  // namespace zerorl::reward
