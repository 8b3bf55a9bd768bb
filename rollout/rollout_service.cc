// RolloutServiceImpl: proto <-> GenerationEngine (see rollout_service.h).
#include "rollout/rollout_service.h"

#include <chrono>
#include <cmath>
#include <functional>

#include <grpcpp/support/method_handler.h>

#include "absl/strings/str_cat.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/server.h"
#include "common/status.h"
#include "weights/weight_chunk_buffer.h"

namespace zerorl::rollout {

using zerorl::v1::FinishReason;

absl::StatusOr<GenerationParams> ParamsFromRequest(const zerorl::v1::GenerateRequest& r) {
  // Fields the request leaves unset take the documented defaults; an explicit 0
  // is kept (temperature 0 is greedy; top_p or max_new_tokens 0 are refused by the engine).
  zerorl::v1::SamplingParams s = DefaultRunConfig().rollout().sampling();
  s.MergeFrom(r.sampling());
  GenerationParams p;
  if (!(s.temperature() >= 0)) return absl::InvalidArgumentError("sampling.temperature must be >= 0");
  if (!std::isfinite(s.temperature()) || !std::isfinite(s.top_p()))
    return absl::InvalidArgumentError("sampling.temperature and sampling.top_p must be finite");
  p.sampler.greedy = s.temperature() == 0;
  p.sampler.temperature = p.sampler.greedy ? 1.0f : s.temperature();
  p.sampler.top_p = s.top_p();
  p.sampler.top_k = s.top_k();
  p.max_new_tokens = s.max_new_tokens();
  p.stop.assign(s.stop().begin(), s.stop().end());
  p.stop_token_ids.assign(s.stop_token_ids().begin(), s.stop_token_ids().end());
  p.seed = s.seed() != 0 ? s.seed() : std::hash<std::string>{}(r.request_id()) | 1;
  p.record_routing = r.record_routing();
  return p;
}

RolloutServiceImpl::RolloutServiceImpl(GenerationEngine* engine, std::string worker, int cuda_device)
    : engine_(engine), worker_(std::move(worker)), nccl_(engine, cuda_device) {
  KeepFreedHeapForWeightTransfers();
  // Swap the generated UpdateWeights handler (which parses every chunk's 4 MiB
  // data into a std::string) for the same client-streaming handler over raw
  // ByteBuffers. Same method, same wire format, same response; the data bytes
  // go from the received slices into the staged model in one copy + CRC pass.
  // (MarkMethodStreamed is the generated code's hook for replacing a sync
  // handler; it also labels the method bidi, which a sync server treats like
  // client streaming: no request payload is read ahead.)
  const int index = zerorl::v1::WeightChunk::descriptor()
                        ->file()
                        ->FindServiceByName("RolloutService")
                        ->FindMethodByName("UpdateWeights")
                        ->index();
  MarkMethodStreamed(index, new grpc::internal::ClientStreamingHandler<RolloutServiceImpl, grpc::ByteBuffer,
                                                                       zerorl::v1::UpdateWeightsResponse>(
                                [](RolloutServiceImpl* service, grpc::ServerContext* ctx,
                                   grpc::ServerReader<grpc::ByteBuffer>* reader,
                                   zerorl::v1::UpdateWeightsResponse* resp) {
                                  return service->UpdateWeightsRaw(ctx, reader, resp);
                                },
                                this));
}

grpc::Status RolloutServiceImpl::Generate(grpc::ServerContext* ctx, const zerorl::v1::GenerateRequest* req,
                                          zerorl::v1::GenerateResponse* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  const auto t0 = std::chrono::steady_clock::now();
  auto params = ParamsFromRequest(*req);
  if (!params.ok()) return ToGrpcStatus(params.status());
  std::vector<std::vector<int32_t>> prompts;
  int64_t prompt_tokens = 0;
  for (const zerorl::v1::Prompt& p : req->prompts()) {
    prompts.emplace_back(p.token_ids().begin(), p.token_ids().end());
    if (prompts.back().empty()) prompts.back() = engine_->tokenizer().EncodePrompt(p.text());
    prompt_tokens += static_cast<int64_t>(prompts.back().size());
  }
  const int G = req->group_size() == 0 ? 1 : req->group_size();
  auto out = engine_->Generate(prompts, G, *params, req->min_policy_version());
  if (!out.ok()) return ToGrpcStatus(out.status());
  // Samples cut short by a drain (SIGTERM, Drain) are handed back, not
  // answered: the caller retries the request elsewhere, and no truncated
  // sample is ever stored or trained on.
  int aborted = 0;
  for (const auto& group : *out)
    for (const GeneratedText& t : group) aborted += t.finish == SampleFinish::kAbort;
  if (aborted > 0) {
    return ToGrpcStatus(absl::UnavailableError(absl::StrCat("rollout worker is draining: ", aborted,
                                                            " samples of request ", req->request_id(),
                                                            " were aborted; retry on another worker")));
  }
  int64_t completion_tokens = 0;
  for (size_t i = 0; i < out->size(); ++i) {
    zerorl::v1::GeneratedGroup* g = resp->add_groups();
    g->set_prompt_id(req->prompts(static_cast<int>(i)).id());
    g->mutable_prompt_token_ids()->Add(prompts[i].begin(), prompts[i].end());
    for (size_t j = 0; j < (*out)[i].size(); ++j) {
      const GeneratedText& t = (*out)[i][j];
      zerorl::v1::Sample* s = g->add_samples();
      s->set_index(static_cast<int32_t>(j));
      s->mutable_token_ids()->Add(t.tokens.begin(), t.tokens.end());
      s->set_text(t.text);
      s->mutable_logprobs()->Add(t.logprobs.begin(), t.logprobs.end());
      s->mutable_sampling_logprobs()->Add(t.sampling_logprobs.begin(), t.sampling_logprobs.end());
      s->set_finish_reason(t.finish == SampleFinish::kStop     ? zerorl::v1::FINISH_REASON_STOP
                           : t.finish == SampleFinish::kLength ? zerorl::v1::FINISH_REASON_LENGTH
                                                               : zerorl::v1::FINISH_REASON_ABORT);
      s->set_policy_version(t.policy_version);
      for (const VersionSpan& span : t.version_spans) {
        zerorl::v1::VersionSpan* v = s->add_version_spans();
        v->set_first_token(span.first_token);
        v->set_version(span.version);
      }
      s->set_worker(worker_);
      if (params->record_routing) *s->mutable_routing() = t.routing;
      completion_tokens += static_cast<int64_t>(t.tokens.size());
    }
  }
  resp->set_prompt_tokens(prompt_tokens);
  resp->set_completion_tokens(completion_tokens);
  resp->set_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return grpc::Status::OK;
}

grpc::Status RolloutServiceImpl::UpdateWeightsRaw(grpc::ServerContext* ctx, grpc::ServerReader<grpc::ByteBuffer>* reader,
                                                  zerorl::v1::UpdateWeightsResponse* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  grpc::ByteBuffer message;
  ReceivedChunk chunk;
  auto r = engine_->ReceiveWeightChunks(
      [&](WeightReceiver* rx) -> std::optional<absl::Status> {
        if (!reader->Read(&message)) return std::nullopt;
        absl::Status st = ParseWeightChunkBuffer(message, &chunk);
        for (size_t i = 0; st.ok() && i < chunk.parts.size(); ++i) st = rx->Add(chunk.parts[i].header, chunk.parts[i].data);
        return st;
      },
      [&] { return ctx->IsCancelled(); });
  if (!r.ok()) return ToGrpcStatus(r.status());
  resp->set_version(r->version);
  resp->set_bytes(r->bytes);
  resp->set_seconds(r->seconds);
  return grpc::Status::OK;
}

grpc::Status RolloutServiceImpl::GetPolicyVersion(grpc::ServerContext* ctx, const zerorl::v1::GetPolicyVersionRequest*,
                                                  zerorl::v1::PolicyVersion* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  resp->set_version(engine_->version());
  return grpc::Status::OK;
}

grpc::Status RolloutServiceImpl::Drain(grpc::ServerContext* ctx, const zerorl::v1::DrainRequest* req,
                                       zerorl::v1::DrainResponse* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  const DrainCounts c = engine_->Drain(req->abort_in_flight());
  resp->set_finished(c.finished);
  resp->set_aborted(c.aborted);
  return grpc::Status::OK;
}

grpc::Status RolloutServiceImpl::JoinWeightGroup(grpc::ServerContext* ctx, const zerorl::v1::JoinWeightGroupRequest* req,
                                                 zerorl::v1::JoinWeightGroupResponse* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  auto device = nccl_.Join(*req);
  if (!device.ok()) return ToGrpcStatus(device.status());
  resp->set_device(*device);
  return grpc::Status::OK;
}

grpc::Status RolloutServiceImpl::ReceiveWeightsNccl(grpc::ServerContext* ctx, const zerorl::v1::ReceiveWeightsNcclRequest* req,
                                                    zerorl::v1::UpdateWeightsResponse* resp) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  auto r = nccl_.Receive(*req);
  if (!r.ok()) return ToGrpcStatus(r.status());
  resp->set_version(r->version);
  resp->set_bytes(r->bytes);
  resp->set_seconds(r->seconds);
  return grpc::Status::OK;
}

absl::StatusOr<UpdateResult> PullWeights(GenerationEngine* engine, zerorl::v1::LearnerService::StubInterface* learner,
                                         int64_t min_version, std::chrono::milliseconds timeout) {
  auto ctx = ContextWithDeadline(timeout);
  zerorl::v1::FetchWeightsRequest req;
  req.set_min_version(min_version);
  auto reader = learner->FetchWeights(ctx.get(), req);
  auto r = engine->ReceiveWeights([&](zerorl::v1::WeightChunk* c) { return reader->Read(c); });
  const grpc::Status end = reader->Finish();
  if (!end.ok()) return Annotate(FromGrpcStatus(end), "fetching weights from the learner");
  return r;
}

}  // namespace zerorl::rollout
