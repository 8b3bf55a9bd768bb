// LearnerServiceImpl: buffer leases -> GrpoTrainer -> checkpoints and publishing
// (see learner_service.h).
#include "learner/learner_service.h"

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/log.h"
#include "common/server.h"
#include "common/status.h"
#include "learner/weight_publisher.h"

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
      publisher_(PublisherOptions(config)) {
  if (!rollout_channels_) {
    const zerorl::v1::ServerConfig server = config.server();
    rollout_channels_ = [server](const std::string& a) { return MakeChannel(a, server); };
  }
}

int64_t LearnerServiceImpl::version() const {
  absl::MutexLock lk(&mu_);
  return trainer_->version();
}

absl::StatusOr<bool> LearnerServiceImpl::ResumeFromLatest() {
  absl::MutexLock lk(&mu_);
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

absl::StatusOr<zerorl::v1::CheckpointInfo> LearnerServiceImpl::CheckpointLocked(const std::string& data_cursor) {
  GrpoTrainer* trainer = trainer_.get();
  ZRL_ASSIGN_OR_RETURN(std::string path, checkpoints_.Write(trainer->step(), [&](const std::string& dir) {
                         return trainer->Save(dir, data_cursor);
                       }));
  // Copy the tokenizer beside the weights so the checkpoint loads on its own.
  const std::string& src = config_.model().path();
  std::error_code ec;
  if (!src.empty() && std::filesystem::exists(src + "/tokenizer.json"))
    std::filesystem::copy_file(src + "/tokenizer.json", path + "/tokenizer.json",
                               std::filesystem::copy_options::overwrite_existing, ec);
  last_checkpoint_.set_path(path);
  last_checkpoint_.set_step(trainer_->step());
  last_checkpoint_.set_policy_version(trainer_->version());
  last_checkpoint_.set_data_cursor(data_cursor);
  return last_checkpoint_;
}

grpc::Status LearnerServiceImpl::Train(grpc::ServerContext*, const zerorl::v1::TrainRequest* req,
                                       zerorl::v1::TrainResponse* resp) {
  absl::MutexLock lk(&mu_);
  if (!buffer_) return ToGrpcStatus(absl::FailedPreconditionError("learner has no buffer address (buffer.address)"));
  const int deadline_ms = config_.orchestrator().call_deadline_ms() > 0 ? config_.orchestrator().call_deadline_ms() : 600000;
  zerorl::v1::LeaseRequest lease;
  lease.set_run_id(req->run_id().empty() ? config_.run_id() : req->run_id());
  lease.set_by_step(req->by_step());
  lease.set_step(req->step());
  lease.set_min_policy_version(req->min_policy_version());
  lease.set_max_groups(req->expected_groups());
  lease.set_holder("learner");
  zerorl::v1::LeaseResponse leased;
  {
    auto ctx = ContextWithDeadline(std::chrono::milliseconds(deadline_ms));
    grpc::Status s = buffer_->Lease(ctx.get(), lease, &leased);
    if (!s.ok()) return grpc::Status(s.error_code(), "leasing groups from the buffer: " + s.error_message());
  }
  if (leased.groups().empty())
    return ToGrpcStatus(absl::FailedPreconditionError(
        absl::StrCat("the buffer has no groups for run ", lease.run_id(), req->by_step() ? " step " : "",
                     req->by_step() ? absl::StrCat(req->step()) : "")));
  if (req->total_steps() > 0) trainer_->set_total_steps(req->total_steps());
  std::vector<zerorl::v1::Group> groups(leased.groups().begin(), leased.groups().end());
  auto metrics = trainer_->Step(groups);
  if (!metrics.ok()) return ToGrpcStatus(Annotate(metrics.status(), absl::StrCat("training step ", req->step())));
  {
    zerorl::v1::AckRequest ack;
    ack.set_lease_id(leased.lease_id());
    zerorl::v1::AckResponse acked;
    auto ctx = ContextWithDeadline(std::chrono::milliseconds(deadline_ms));
    grpc::Status s = buffer_->Ack(ctx.get(), ack, &acked);
    if (!s.ok()) {
      ZLOG(WARNING) << "ack of lease " << leased.lease_id() << " failed: " << s.error_message();
    }
  }
  if (!req->data_cursor().empty()) data_cursor_ = req->data_cursor();
  const int every = config_.learner().checkpoint().every_steps();
  if (every > 0 && trainer_->step() % every == 0) {
    auto ck = CheckpointLocked(data_cursor_);
    if (!ck.ok()) {
      ZLOG(ERROR) << "checkpoint at step " << trainer_->step() << " failed: " << ck.status().message();
    }
  }
  const int publish_every = config_.learner().publish_every() > 0 ? config_.learner().publish_every() : 1;
  if (!req->publish_to().empty() && trainer_->step() % publish_every == 0) {
    std::vector<PublishTarget> targets;
    for (const std::string& a : req->publish_to()) targets.push_back({a, rollout_channels_(a)});
    ChunkOptions co;
    co.version = trainer_->version();
    co.config_json = ConfigJson();
    co.chunk_bytes = config_.learner().weight_chunk_bytes() > 0 ? config_.learner().weight_chunk_bytes() : 4 << 20;
    GrpoTrainer* trainer = trainer_.get();
    const PublishResult pr = publisher_.Publish(targets, NcclWeightSourceOf(trainer->policy()),
                                                [&] { return trainer->WeightTensors(); }, co,
                                                std::chrono::milliseconds(deadline_ms));
    resp->set_publish_mb_per_s(pr.mb_per_s);
    for (const std::string& e : pr.errors) resp->add_publish_errors(e);
    if (pr.nccl_workers > 0) (*metrics)["publish_nccl_workers"] = pr.nccl_workers;
    (*metrics)["publish_mb_per_s"] = pr.mb_per_s;
    (*metrics)["publish_seconds"] = pr.seconds;
  }
  zerorl::v1::PolicyVersion* pv = resp->mutable_policy();
  pv->set_version(trainer_->version());
  pv->set_step(trainer_->step());
  pv->set_created_unix_ms(NowMs());
  if (last_checkpoint_.step() == trainer_->step()) pv->set_checkpoint_path(last_checkpoint_.path());
  zerorl::v1::StepMetrics* sm = resp->mutable_metrics();
  sm->set_run_id(lease.run_id());
  sm->set_step(req->step());
  sm->set_unix_ms(NowMs());
  for (const auto& [k, v] : *metrics) (*sm->mutable_values())[k] = v;
  ZLOG(INFO) << "step " << req->step() << " loss " << (*metrics)["loss"] << " reward " << (*metrics)["reward_mean"]
             << " version " << trainer_->version();
  return grpc::Status::OK;
}

grpc::Status LearnerServiceImpl::SaveCheckpoint(grpc::ServerContext*, const zerorl::v1::SaveCheckpointRequest* req,
                                                zerorl::v1::CheckpointInfo* resp) {
  absl::MutexLock lk(&mu_);
  if (!req->data_cursor().empty()) data_cursor_ = req->data_cursor();
  auto ck = CheckpointLocked(data_cursor_);
  if (!ck.ok()) return ToGrpcStatus(ck.status());
  *resp = *ck;
  return grpc::Status::OK;
}

grpc::Status LearnerServiceImpl::FetchWeights(grpc::ServerContext*, const zerorl::v1::FetchWeightsRequest* req,
                                              grpc::ServerWriter<zerorl::v1::WeightChunk>* writer) {
  absl::MutexLock lk(&mu_);
  if (trainer_->version() < req->min_version())
    return ToGrpcStatus(absl::FailedPreconditionError(
        absl::StrCat("learner has policy version ", trainer_->version(), ", asked for >= ", req->min_version())));
  if (!req->dtype().empty() && req->dtype() != "F32" && req->dtype() != "BF16")
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat("dtype must be F32 or BF16, got ", req->dtype())));
  ChunkOptions co;
  co.version = trainer_->version();
  co.config_json = ConfigJson();
  co.chunk_bytes = config_.learner().weight_chunk_bytes() > 0 ? config_.learner().weight_chunk_bytes() : 4 << 20;
  co.bf16 = req->dtype() == "BF16";
  absl::Status st = ForEachWeightChunk(trainer_->WeightTensors(), co,
                                       [&](const zerorl::v1::WeightChunk& c) { return writer->Write(c); });
  return ToGrpcStatus(st);
}

grpc::Status LearnerServiceImpl::GetLearnerState(grpc::ServerContext*, const zerorl::v1::GetLearnerStateRequest*,
                                                 zerorl::v1::LearnerState* resp) {
  absl::MutexLock lk(&mu_);
  resp->mutable_policy()->set_version(trainer_->version());
  resp->mutable_policy()->set_step(trainer_->step());
  resp->mutable_policy()->set_checkpoint_path(last_checkpoint_.path());
  *resp->mutable_last_checkpoint() = last_checkpoint_;
  resp->set_step(trainer_->step());
  return grpc::Status::OK;
}

}  // namespace zerorl::learner
