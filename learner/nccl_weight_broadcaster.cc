// NcclWeightBroadcaster: group formation (check, then join with a fresh
// unique id) and the per-version broadcast as rank 0 (see
// nccl_weight_broadcaster.h). NCCL calls only with ZERORL_HAVE_NCCL.
#include "learner/nccl_weight_broadcaster.h"

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/server.h"
#include "common/status.h"
#include "weights/nccl_weight_deadline.h"
#include "weights/weight_group.h"
#include "zerorl/v1/rollout.grpc.pb.h"

#ifdef ZERORL_HAVE_NCCL
#include "weights/nccl_comm.h"
#endif

namespace zerorl::learner {
#ifdef ZERORL_HAVE_NCCL
namespace {

using weights::NcclComm;
using weights::NcclNewUniqueId;
using weights::RunWithDeadline;

constexpr std::chrono::milliseconds kCheckDeadline{10000};  // a check_only join answers at once
constexpr std::chrono::milliseconds kJoinSlack{5000};       // beyond join_timeout, for the RPC itself

absl::Status Join(const PublishTarget& t, const zerorl::v1::JoinWeightGroupRequest& req,
                  std::chrono::milliseconds deadline) {
  auto stub = zerorl::v1::RolloutService::NewStub(t.channel);
  auto ctx = ContextWithDeadline(deadline);
  zerorl::v1::JoinWeightGroupResponse resp;
  return FromGrpcStatus(stub->JoinWeightGroup(ctx.get(), req, &resp));
}

// Runs call(i) for i in [0, n) on n threads and returns their statuses.
std::vector<absl::Status> OnEach(size_t n, const std::function<absl::Status(size_t)>& call) {
  std::vector<absl::Status> out(n);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < n; ++i) threads.emplace_back([&, i] { out[i] = call(i); });
  for (auto& t : threads) t.join();
  return out;
}

}  // namespace
#endif

NcclWeightBroadcaster::NcclWeightBroadcaster(const Options& options) : options_(options) {}

NcclWeightBroadcaster::~NcclWeightBroadcaster() = default;

void NcclWeightBroadcaster::DropGroup() {
  comm_.reset();
  members_.clear();
  group_fingerprint_.clear();
}

std::vector<absl::Status> NcclWeightBroadcaster::Send(const std::vector<PublishTarget>& targets,
                                                      const NcclWeightSource& source, int64_t version,
                                                      std::chrono::milliseconds timeout) {
  std::vector<absl::Status> out(targets.size());
  absl::Status local;
  if (!weights::NcclWeightTransportBuilt())
    local = absl::UnimplementedError("the learner was built without NCCL");
  else if (!source.on_device || source.params == nullptr)
    local = absl::FailedPreconditionError(
        "the learner's weights are in host memory (CPU backend); NCCL needs them on a GPU");
  if (!local.ok()) {
    if (!logged_local_) {
      ZLOG(WARNING) << "weight_transport nccl: streaming weights to every worker instead: " << local.message();
    }
    logged_local_ = true;
    for (absl::Status& s : out) s = local;
    return out;
  }
  // A refusal holds while the worker stays in the target list (a worker that
  // left and came back, e.g. restarted on a GPU, is asked again).
  std::set<std::string> targeted;
  for (const PublishTarget& t : targets) targeted.insert(t.address);
  for (auto it = refused_.begin(); it != refused_.end();)
    it = targeted.count(it->first) ? std::next(it) : refused_.erase(it);
  std::vector<size_t> candidates;
  std::set<std::string> want;
  for (size_t i = 0; i < targets.size(); ++i) {
    auto r = refused_.find(targets[i].address);
    if (r != refused_.end()) {
      out[i] = absl::FailedPreconditionError(r->second);
    } else {
      candidates.push_back(i);
      want.insert(targets[i].address);
    }
  }
  std::set<std::string> have;
  for (const Member& m : members_) have.insert(m.target.address);
  if (want != have || source.fingerprint != group_fingerprint_) {
    DropGroup();
    if (want.empty()) return out;
    if (want == failed_group_) {
      for (size_t i : candidates)
        out[i] = absl::UnavailableError("the NCCL weight group of these workers failed before (see the log)");
      return out;
    }
    std::vector<PublishTarget> cand;
    for (size_t i : candidates) cand.push_back(targets[i]);
    const absl::Status formed = FormGroup(cand, source, timeout);
    for (size_t i : candidates) {
      auto r = refused_.find(targets[i].address);
      if (r != refused_.end()) out[i] = absl::FailedPreconditionError(r->second);
      else if (!formed.ok()) out[i] = formed;
    }
    if (!formed.ok()) {
      failed_group_ = want;
      ZLOG(WARNING) << "weight_transport nccl: no NCCL group for " << want.size()
                    << " worker(s), streaming to them instead: " << formed.message();
      return out;
    }
  }
  if (members_.empty()) return out;
  // One version: every member's ReceiveWeightsNccl and our broadcast as root, together.
  zerorl::v1::ReceiveWeightsNcclRequest req;
  req.set_version(version);
  req.set_num_params(source.num_params);
  req.set_config_fingerprint(source.fingerprint);
  std::vector<absl::Status> got(members_.size());
  std::atomic<bool> member_failed{false};  // then the broadcast can never complete
  std::vector<std::thread> calls;
  for (size_t k = 0; k < members_.size(); ++k)
    calls.emplace_back([&, k] {
      auto stub = zerorl::v1::RolloutService::NewStub(members_[k].target.channel);
      auto ctx = ContextWithDeadline(timeout);
      zerorl::v1::UpdateWeightsResponse resp;
      got[k] = FromGrpcStatus(stub->ReceiveWeightsNccl(ctx.get(), req, &resp));
      if (got[k].ok() && resp.version() != version)
        got[k] = absl::InternalError(absl::StrCat("ReceiveWeightsNccl answered version ", resp.version(), ", sent ",
                                                  version));
      if (!got[k].ok()) member_failed = true;
    });
#ifdef ZERORL_HAVE_NCCL
  std::shared_ptr<NcclComm> comm = comm_;
  auto root = weights::RunWithDeadline<absl::Status>(
      [comm, p = source.params, n = source.num_params] { return comm->Broadcast(p, n, /*root=*/0); }, timeout,
      [&] { return member_failed.load(); });
  const absl::Status sent =
      root ? *root
      : member_failed
          ? absl::AbortedError("NCCL broadcast abandoned: a worker failed to take part")
          : absl::DeadlineExceededError(absl::StrCat("NCCL broadcast did not finish within ", timeout.count(), " ms"));
#else
  const absl::Status sent = absl::UnimplementedError("the learner was built without NCCL");
#endif
  for (auto& t : calls) t.join();
  bool broken = !sent.ok();
  std::set<std::string> group;
  for (size_t k = 0; k < members_.size(); ++k) {
    group.insert(members_[k].target.address);
    absl::Status st = got[k];
    if (st.ok() && !sent.ok()) st = Annotate(sent, "learner side");
    broken = broken || !st.ok();
    for (size_t i = 0; i < targets.size(); ++i)
      if (targets[i].address == members_[k].target.address) out[i] = st;
  }
  if (broken) {
    ZLOG(WARNING) << "weight_transport nccl: broadcast of version " << version
                  << " failed, dropping the NCCL group and streaming to its workers (learner side: " << sent.message()
                  << ")";
    DropGroup();
    failed_group_ = group;
  }
  return out;
}

absl::Status NcclWeightBroadcaster::FormGroup(const std::vector<PublishTarget>& candidates,
                                              const NcclWeightSource& source, std::chrono::milliseconds timeout) {
#ifdef ZERORL_HAVE_NCCL
  ZRL_ASSIGN_OR_RETURN(const std::string id, NcclNewUniqueId());
  zerorl::v1::JoinWeightGroupRequest req;
  req.set_unique_id(id);
  req.set_config_fingerprint(source.fingerprint);
  req.set_num_params(source.num_params);
  // 1. Who can join at all (answers at once, creates nothing).
  req.set_check_only(true);
  req.set_nranks(static_cast<int32_t>(candidates.size()) + 1);
  const std::vector<absl::Status> checks = OnEach(candidates.size(), [&](size_t i) {
    zerorl::v1::JoinWeightGroupRequest r = req;
    r.set_rank(static_cast<int32_t>(i) + 1);
    return Join(candidates[i], r, std::min(timeout, kCheckDeadline));
  });
  std::vector<PublishTarget> joining;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (checks[i].ok()) {
      joining.push_back(candidates[i]);
      continue;
    }
    const std::string why = absl::StrCat("NCCL weight broadcast refused: ", checks[i].ToString());
    ZLOG(WARNING) << "weight_transport nccl: streaming weights to " << candidates[i].address << ": " << why;
    refused_[candidates[i].address] = why;
  }
  if (joining.empty()) return absl::OkStatus();
  // 2. Everyone joins together; ncclCommInitRank returns when all ranks are in.
  req.set_check_only(false);
  req.set_nranks(static_cast<int32_t>(joining.size()) + 1);
  req.set_timeout_ms(static_cast<int32_t>(options_.join_timeout.count()));
  std::vector<absl::Status> joins;
  std::atomic<bool> join_failed{false};  // then rank 0 can never complete its init
  std::thread workers([&] {
    joins = OnEach(joining.size(), [&](size_t i) {
      zerorl::v1::JoinWeightGroupRequest r = req;
      r.set_rank(static_cast<int32_t>(i) + 1);
      absl::Status st = Join(joining[i], r, options_.join_timeout + kJoinSlack);
      if (!st.ok()) join_failed = true;
      return st;
    });
  });
  const int nranks = static_cast<int>(joining.size()) + 1, device = options_.device;
  auto root = RunWithDeadline<absl::StatusOr<std::shared_ptr<NcclComm>>>(
      [id, nranks, device]() -> absl::StatusOr<std::shared_ptr<NcclComm>> {
        ZRL_ASSIGN_OR_RETURN(std::unique_ptr<NcclComm> c, NcclComm::Create(id, nranks, /*rank=*/0, device));
        return std::shared_ptr<NcclComm>(std::move(c));
      },
      options_.join_timeout + kJoinSlack, [&] { return join_failed.load(); });
  workers.join();
  for (size_t i = 0; i < joining.size(); ++i)
    if (!joins[i].ok()) return Annotate(joins[i], absl::StrCat("worker ", joining[i].address, " joining"));
  if (!root)
    return absl::DeadlineExceededError(
        absl::StrCat("rank 0 did not join within ", (options_.join_timeout + kJoinSlack).count(), " ms"));
  if (!root->ok()) return Annotate(root->status(), "rank 0 joining");
  comm_ = std::move(**root);
  group_fingerprint_ = source.fingerprint;
  for (size_t i = 0; i < joining.size(); ++i) members_.push_back({joining[i], static_cast<int>(i) + 1});
  ZLOG(INFO) << "weight_transport nccl: NCCL weight group of " << nranks << " ranks formed on device " << device;
  return absl::OkStatus();
#else
  (void)candidates;
  (void)source;
  (void)timeout;
  return absl::UnimplementedError("the learner was built without NCCL");
#endif
}

}  // namespace zerorl::learner
