// LearnerServiceImpl: buffer leases -> GrpoTrainer -> checkpoints and publishing
// (see learner_service.h).
#include "learner/learner_service.h"

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/log.h"
#include "common/server.h"
#include "common/status.h"
#include "learner/weight_publisher.h"
#include "model/policy_loader.h"

namespace zerorl::learner {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string CheckpointRoot(const zerorl::v1::RunConfig& c) {
  if (!c.learner().checkpoint().dir().empty()) return c.learner().checkpoint().dir();
  return (c.run_dir().empty() ? std::string("runs/") + c.run_id() : c.run_dir()) + "/checkpoints";
}

// learner.weight_transport (loaded configs are checked; an unknown value in a
// config built in code is logged and the stream used)
// and the learner's CUDA device: rank 0's replica, else model.device.
WeightPublisher::Options PublisherOptions(const zerorl::v1::RunConfig& config) {
  WeightPublisher::Options o;
  auto transport = ParseWeightTransport(config.learner().weight_transport());
  if (transport.ok()) {
    o.transport = *transport;
  } else {
    ZLOG(ERROR) << transport.status().message() << "; publishing by the gRPC stream";
  }
  const auto& dp = config.learner().data_parallel_devices();
  auto device = dp.empty() ? ParseDevice(config.model().device(), "model.device")
                           : ParseDevice(dp[0], "learner.data_parallel_devices[0]");
  o.nccl_device = device.ok() && *device >= 0 ? *device : 0;
  return o;
}

}  // namespace

LearnerServiceImpl::LearnerServiceImpl(std::unique_ptr<GrpoTrainer> trainer, const zerorl::v1::RunConfig& config,
                                       std::shared_ptr<grpc::Channel> buffer, ChannelFactory rollout_channels)
    : trainer_(std::move(trainer)),
      config_(config),
      buffer_(buffer ? zerorl::v1::BufferService::NewStub(buffer) : nullptr),
      rollout_channels_(std::move(rollout_channels)),
      checkpoints_(CheckpointRoot(config), config.learner().checkpoint().keep_last()),
      results_(CheckpointRoot(config) + "/train-results", kKeptResults),
      publisher_(PublisherOptions(config)),
      start_ms_(NowMs()) {
  if (!rollout_channels_) {
    const zerorl::v1::ServerConfig server = config.server();
    rollout_channels_ = [server](const std::string& a) { return MakeChannel(a, server); };
  }
}

int LearnerServiceImpl::DeadlineMs() const {
  return config_.orchestrator().call_deadline_ms();
}

int64_t LearnerServiceImpl::version() const {
  absl::MutexLock lk(&mu_);
  return trainer_->version();
}

absl::StatusOr<bool> LearnerServiceImpl::ResumeFromLatest() {
  absl::MutexLock lk(&mu_);
  // A checkpoint dir that cannot be written fails the start, not the first
  // scheduled checkpoint (or, worse, only the log).
  std::error_code ec;
  std::filesystem::create_directories(checkpoints_.root(), ec);
  if (ec || !std::filesystem::is_directory(checkpoints_.root())) {
    return absl::FailedPreconditionError(absl::StrCat(
        config_.learner().checkpoint().dir().empty() ? "run_dir" : "learner.checkpoint.dir", ": cannot use ",
        checkpoints_.root(), " as the checkpoint directory: ", ec ? ec.message() : "not a directory"));
  }
  auto latest = checkpoints_.Latest();
  if (!latest) return false;
  ZRL_ASSIGN_OR_RETURN(data_cursor_, trainer_->Restore(latest->path));
  last_checkpoint_.set_path(latest->path);
  last_checkpoint_.set_step(trainer_->step());
  last_checkpoint_.set_policy_version(trainer_->version());
  last_checkpoint_.set_data_cursor(data_cursor_);
  ZLOG(INFO) << "learner resumed from " << latest->path << " at step " << trainer_->step();
  return true;
}

std::string LearnerServiceImpl::ConfigJson() { return trainer_->policy().config().ToJson(); }

// The policy's tokenizer files go into the checkpoint before it is published,
// so that a complete checkpoint always loads on its own; a copy that fails
// fails the checkpoint.
absl::Status LearnerServiceImpl::CopyTokenizerFiles(const std::string& dir) const {
  const std::vector<std::string> files = model::PolicyTokenizerFiles(config_.model());
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string to =
        dir + "/" + (i == 0 ? std::string("tokenizer.json") : std::filesystem::path(files[i]).filename().string());
    std::error_code ec;
    std::filesystem::copy_file(files[i], to, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat("copying the tokenizer ", files[i], " to ", to, ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<zerorl::v1::CheckpointInfo> LearnerServiceImpl::CheckpointLocked(const std::string& data_cursor) {
  ZRL_ASSIGN_OR_RETURN(std::string path, checkpoints_.Write(trainer_->step(), [&](const std::string& dir) {
                         ZRL_RETURN_IF_ERROR(trainer_->Save(dir, data_cursor));
                         return CopyTokenizerFiles(dir);
                       }));
  last_checkpoint_.set_path(path);
  last_checkpoint_.set_step(trainer_->step());
  last_checkpoint_.set_policy_version(trainer_->version());
  last_checkpoint_.set_data_cursor(data_cursor);
  return last_checkpoint_;
}

grpc::Status LearnerServiceImpl::Train(grpc::ServerContext* ctx, const zerorl::v1::TrainRequest* req,
                                       zerorl::v1::TrainResponse* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  absl::MutexLock lk(&mu_);
  if (!buffer_) return ToGrpcStatus(absl::FailedPreconditionError("learner has no buffer address (buffer.address)"));
  if (req->by_step()) {
    if (req->step() < trainer_->step()) return ToGrpcStatus(AnswerAppliedStepLocked(*req, resp));
    // Restored from a checkpoint older than the step: re-train the steps in
    // between from the buffer (their groups are kept; the result is the same).
    while (trainer_->step() < req->step()) {
      zerorl::v1::TrainRequest replay = *req;
      replay.set_step(trainer_->step());
      replay.clear_publish_to();
      replay.clear_data_cursor();
      replay.clear_min_policy_version();  // req's staleness bound is req's step's, not this one's
      ZLOG(WARNING) << "learner is at step " << trainer_->step() << ", asked for step " << req->step()
                    << ": re-training step " << replay.step() << " from the buffer";
      zerorl::v1::TrainResponse ignored;
      if (auto s = TrainStepLocked(replay, &ignored); !s.ok()) {
        return ToGrpcStatus(Annotate(s, absl::StrCat("learner is at step ", replay.step(), ", asked for step ",
                                                     req->step(), "; re-training step ", replay.step())));
      }
    }
  }
  return ToGrpcStatus(TrainStepLocked(*req, resp));
}

int64_t LearnerServiceImpl::NextIncarnation() { return (start_ms_ << 20) + ++lease_requests_; }

absl::StatusOr<zerorl::v1::LeaseResponse> LearnerServiceImpl::LeaseLocked(const zerorl::v1::TrainRequest& req) {
  zerorl::v1::LeaseRequest lease;
  lease.set_run_id(req.run_id().empty() ? config_.run_id() : req.run_id());
  lease.set_by_step(req.by_step());
  lease.set_step(req.step());
  lease.set_min_policy_version(req.min_policy_version());
  lease.set_max_groups(req.expected_groups());
  lease.set_holder(kLeaseHolder);
  lease.set_holder_incarnation(NextIncarnation());
  lease.set_include_consumed(req.by_step());  // the learner's own step says whether the step is due
  zerorl::v1::LeaseResponse leased;
  auto ctx = ContextWithDeadline(std::chrono::milliseconds(DeadlineMs()));
  grpc::Status s = buffer_->Lease(ctx.get(), lease, &leased);
  if (!s.ok()) return Annotate(FromGrpcStatus(s), "leasing groups from the buffer");
  if (leased.groups().empty())
    return absl::FailedPreconditionError(absl::StrCat("the buffer has no groups for run ", lease.run_id(),
                                                      req.by_step() ? absl::StrCat(" step ", req.step()) : ""));
  return leased;
}

void LearnerServiceImpl::AckLocked(const std::string& lease_id) {
  zerorl::v1::AckRequest ack;
  ack.set_lease_id(lease_id);
  zerorl::v1::AckResponse acked;
  auto ctx = ContextWithDeadline(std::chrono::milliseconds(DeadlineMs()));
  grpc::Status s = buffer_->Ack(ctx.get(), ack, &acked);
  // The step is applied and checkpointed on schedule either way; an unacked
  // lease only leaves the groups unmarked until a successor re-leases them.
  if (!s.ok()) {
    ZLOG(WARNING) << "ack of lease " << lease_id << " failed: " << s.error_message();
  }
}

absl::Status LearnerServiceImpl::TrainStepLocked(const zerorl::v1::TrainRequest& req,
                                                 zerorl::v1::TrainResponse* resp) {
  ZRL_ASSIGN_OR_RETURN(zerorl::v1::LeaseResponse leased, LeaseLocked(req));
  if (req.total_steps() > 0) trainer_->set_total_steps(req.total_steps());
  std::vector<zerorl::v1::Group> groups(leased.groups().begin(), leased.groups().end());
  auto metrics = trainer_->Step(groups);
  if (!metrics.ok()) return Annotate(metrics.status(), absl::StrCat("training step ", req.step()));
  if (!req.data_cursor().empty()) data_cursor_ = req.data_cursor();

  zerorl::v1::PolicyVersion* pv = resp->mutable_policy();
  pv->set_version(trainer_->version());
  pv->set_step(trainer_->step());
  pv->set_created_unix_ms(NowMs());
  zerorl::v1::StepMetrics* sm = resp->mutable_metrics();
  sm->set_run_id(req.run_id().empty() ? config_.run_id() : req.run_id());
  sm->set_step(req.step());
  sm->set_unix_ms(NowMs());
  for (const auto& [k, v] : *metrics) (*sm->mutable_values())[k] = v;
  // Recorded before the checkpoint: a learner restored from that checkpoint
  // answers a retry of this step from the record instead of training again.
  if (req.by_step()) ZRL_RETURN_IF_ERROR(Annotate(results_.Put(req.step(), *resp), "recording the step's result"));
  const int every = config_.learner().checkpoint().every_steps();
  if (every > 0 && trainer_->step() % every == 0) {
    auto ck = CheckpointLocked(data_cursor_);
    if (!ck.ok()) {
      return absl::Status(ck.status().code(), absl::StrCat("checkpoint of step ", req.step(), " under ",
                                                           checkpoints_.root(), " failed: ", ck.status().message()));
    }
    pv->set_checkpoint_path(ck->path());
  }
  AckLocked(leased.lease_id());
  ZLOG(INFO) << "step " << req.step() << " loss " << (*metrics)["loss"] << " reward " << (*metrics)["reward_mean"]
             << " version " << trainer_->version();
  const int publish_every = config_.learner().publish_every();
  if (!req.publish_to().empty() && trainer_->step() % publish_every == 0) {
    PublishLocked(req, resp);
    if (req.by_step()) ZRL_RETURN_IF_ERROR(Annotate(results_.Put(req.step(), *resp), "recording the step's result"));
  }
  return absl::OkStatus();
}

void LearnerServiceImpl::PublishLocked(const zerorl::v1::TrainRequest& req, zerorl::v1::TrainResponse* resp) {
  std::vector<PublishTarget> targets;
  for (const std::string& a : req.publish_to()) targets.push_back({a, rollout_channels_(a)});
  ChunkOptions co;
  co.version = trainer_->version();
  co.config_json = ConfigJson();
  co.chunk_bytes = config_.learner().weight_chunk_bytes();
  const PublishResult pr = publisher_.Publish(targets, NcclWeightSourceOf(trainer_->policy()),
                                              [&] { return trainer_->WeightTensors(); }, co,
                                              std::chrono::milliseconds(DeadlineMs()));
  resp->set_publish_mb_per_s(pr.mb_per_s);
  resp->clear_publish_errors();
  for (const std::string& e : pr.errors) resp->add_publish_errors(e);
  auto& values = *resp->mutable_metrics()->mutable_values();
  if (pr.nccl_workers > 0) values["publish_nccl_workers"] = pr.nccl_workers;
  values["publish_mb_per_s"] = pr.mb_per_s;
  values["publish_seconds"] = pr.seconds;
}

absl::Status LearnerServiceImpl::AnswerAppliedStepLocked(const zerorl::v1::TrainRequest& req,
                                                         zerorl::v1::TrainResponse* resp) {
  auto recorded = results_.Get(req.step());
  if (!recorded) {
    return absl::FailedPreconditionError(absl::StrCat(
        "learner is at step ", trainer_->step(), ": step ", req.step(), " was applied already but its result is not ",
        "recorded under ", results_.root()));
  }
  ZLOG(WARNING) << "step " << req.step() << " was applied already (learner at step " << trainer_->step()
                << "): answering from its record, not training twice";
  *resp = *recorded;
  // Finish what the predecessor may have left: the ack (taking its lease over)...
  if (auto leased = LeaseLocked(req); leased.ok()) AckLocked(leased->lease_id());
  // ...and the weight push, when the answer was recorded before it.
  if (!req.publish_to().empty() && trainer_->step() == req.step() + 1 && !resp->metrics().values().count("publish_seconds")) {
    PublishLocked(req, resp);
    ZRL_RETURN_IF_ERROR(Annotate(results_.Put(req.step(), *resp), "recording the step's result"));
  }
  return absl::OkStatus();
}

grpc::Status LearnerServiceImpl::SaveCheckpoint(grpc::ServerContext* ctx, const zerorl::v1::SaveCheckpointRequest* req,
                                                zerorl::v1::CheckpointInfo* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  absl::MutexLock lk(&mu_);
  if (!req->data_cursor().empty()) data_cursor_ = req->data_cursor();
  auto ck = CheckpointLocked(data_cursor_);
  if (!ck.ok()) return ToGrpcStatus(ck.status());
  *resp = *ck;
  return grpc::Status::OK;
}

grpc::Status LearnerServiceImpl::FetchWeights(grpc::ServerContext* ctx, const zerorl::v1::FetchWeightsRequest* req,
                                              grpc::ServerWriter<zerorl::v1::WeightChunk>* writer) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  absl::MutexLock lk(&mu_);
  if (trainer_->version() < req->min_version())
    return ToGrpcStatus(absl::FailedPreconditionError(
        absl::StrCat("learner has policy version ", trainer_->version(), ", asked for >= ", req->min_version())));
  if (!req->dtype().empty() && req->dtype() != "F32" && req->dtype() != "BF16")
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat("dtype must be F32 or BF16, got ", req->dtype())));
  ChunkOptions co;
  co.version = trainer_->version();
  co.config_json = ConfigJson();
  co.chunk_bytes = config_.learner().weight_chunk_bytes();
  co.bf16 = req->dtype() == "BF16";
  absl::Status st = ForEachWeightChunk(trainer_->WeightTensors(), co,
                                       [&](const zerorl::v1::WeightChunk& c) { return writer->Write(c); });
  return ToGrpcStatus(st);
}

grpc::Status LearnerServiceImpl::GetLearnerState(grpc::ServerContext* ctx, const zerorl::v1::GetLearnerStateRequest*,
                                                 zerorl::v1::LearnerState* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  absl::MutexLock lk(&mu_);
  resp->mutable_policy()->set_version(trainer_->version());
  resp->mutable_policy()->set_step(trainer_->step());
  resp->mutable_policy()->set_checkpoint_path(last_checkpoint_.path());
  *resp->mutable_last_checkpoint() = last_checkpoint_;
  resp->set_step(trainer_->step());
  return grpc::Status::OK;
}

}  // namespace zerorl::learner
