// GenerationEngine: the rollout worker's core, usable in-process without gRPC.
//
// One background decode loop serves every concurrent Generate call
// (continuous batching): each iteration admits queued prompts while the batch
// has room (max_batch_sequences), prefills each prompt ONCE and forks its KV
// cache to its G samples, then runs one DecodeStep over all live sequences.
// Finished sequences leave the batch at once, so new prompts join mid-flight.
//
// KV-cache budget (Options::kv_cache_bytes): admission reserves each prompt's
// worst case, G x (prompt + max_new_tokens) x the model's KV bytes per token,
// and allocates its caches at exactly that size (Model::ReserveCache; forks
// keep it), so the caches in flight never exceed the budget and never grow. A
// prompt that does not fit beside the sequences in flight waits in the queue
// (FIFO: later prompts wait behind it); one that cannot fit into the whole
// budget is refused by Generate with RESOURCE_EXHAUSTED naming the sizes.
// Nothing is preempted, so no sample is dropped or recomputed.
//
// Weights: ReceiveWeights() stages a transfer into a spare model beside the
// live one and swaps the live pointer under the engine lock, i.e. between
// admissions/iterations. By default a sequence keeps the model it was admitted
// with until it finishes, so every sample is produced by exactly one policy
// version (the one it reports). With Options::partial_rollout, a swap instead
// moves every sequence in flight to the new version at the next iteration:
// its KV cache is recomputed under the new weights (a prefill of the prompt
// and the tokens so far), so no cache ever mixes versions, and its later
// tokens are sampled by, and recorded with, the new version
// (GeneratedText::version_spans). Generation already done is never thrown
// away. An aborted or corrupt transfer leaves the live model and
// version untouched and returns why. The spare lives on the live model's
// backend: on the CPU the chunks land straight in its parameter buffer (no
// extra copy); on a GPU they land in a host staging buffer (NumParams floats,
// kept between transfers) that is uploaded in one UploadParams before the
// swap. ReceiveWeightsInPlace instead hands the spare to a transport that
// writes backend memory itself (the NCCL broadcast).
//
// Routing replay (GenerationParams::record_routing, per request): the prefill
// and every decode step also return the experts each fed token was routed to
// (one download of N*K ids per MoE layer); a sample's record is its prompt's
// (shared by the group) followed by its own fed tokens. Requests that do not
// record cost nothing extra, even when batched with ones that do.
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "zerorl/v1/common.pb.h"
#include "weights/weight_transfer.h"

namespace zerorl::rollout {

enum class SampleFinish { kStop, kLength, kAbort };

struct GenerationParams {
  model::SamplerParams sampler;         // greedy when sampler.greedy
  int32_t max_new_tokens = 256;         // > 0
  std::vector<std::string> stop;        // stop strings, matched on the decoded text
  std::vector<int32_t> stop_token_ids;  // besides the tokenizer's EOS and the config's eos ids
  uint64_t seed = 0;                    // sample g of prompt p draws with MixSeed(seed, p*G+g)
  // Routing replay: fill GeneratedText::routing. Off, the decode loop asks the
  // model for no routes at all (no cost).
  bool record_routing = false;
};

// Tokens [first_token, next span's first_token) were sampled by `version`.
struct VersionSpan {
  int32_t first_token = 0;
  int64_t version = 0;
  bool operator==(const VersionSpan&) const = default;
};

struct GeneratedText {
  std::vector<int32_t> tokens;           // new tokens; the stop token / stop string's tokens included
  std::string text;                      // DecodeText(tokens) without special tokens: valid UTF-8
  std::vector<float> logprobs;           // per token, raw policy (temperature 1)
  std::vector<float> sampling_logprobs;  // per token, sampling distribution
  SampleFinish finish = SampleFinish::kLength;
  int64_t policy_version = 0;            // the oldest version that sampled a token (version_spans[0])
  std::vector<VersionSpan> version_spans;  // oldest first; one span unless partial_rollout moved it
  // With GenerationParams::record_routing: the experts every fed token (the
  // prompt, then each completion token but the last) was routed to, packed
  // (model/routing_record.h). Empty otherwise.
  zerorl::v1::RoutingRecord routing;
};

struct UpdateResult {
  int64_t version = 0;
  int64_t bytes = 0;
  double seconds = 0;
};

struct DrainCounts {
  int finished = 0;  // samples that ran to stop/length after the drain began
  int aborted = 0;   // samples cut short with finish kAbort
};

class GenerationEngine {
 public:
  struct Options {
    int max_batch_sequences = 256;  // sequences decoded together (a prompt's G may exceed it alone)
    int64_t initial_version = 0;    // policy version of the model given at construction
    // KV-cache budget in bytes; <= 0: a quarter of the model backend's memory
    // (ops::Backend::memory_bytes).
    int64_t kv_cache_bytes = 0;
    // Cache layout of deepseek_v3 models (set on every model the engine serves).
    model::MlaCache mla_cache = model::MlaCache::kLatent;
    // Sequences in flight continue under new weights (recomputing their KV
    // cache) instead of finishing under the version they were admitted with.
    bool partial_rollout = false;
    // Testing hook: called on the loop thread before each decode iteration
    // (0, 1, ...), holding no engine lock; it may call ReceiveWeights*.
    std::function<void(int64_t iteration)> before_iteration;
  };
  GenerationEngine(std::unique_ptr<model::Model> model, std::shared_ptr<const Tokenizer> tokenizer,
                   const Options& options);
  ~GenerationEngine();  // aborts in-flight work and joins the loop

  // G samples for each prompt (token ids, non-empty); blocks until all are done.
  // Result [P][G]. INVALID_ARGUMENT on bad prompts/params, RESOURCE_EXHAUSTED
  // when a prompt's G samples can never fit the KV-cache budget,
  // FAILED_PRECONDITION when the serving version is older than
  // min_policy_version, UNAVAILABLE while draining.
  absl::StatusOr<std::vector<std::vector<GeneratedText>>> Generate(
      const std::vector<std::vector<int32_t>>& prompts, int G, const GenerationParams& params,
      int64_t min_policy_version = 0);

  // Reads one transfer with `next` (false at the end of the stream) and swaps
  // it in. `cancelled` (may be empty) is polled between chunks. One transfer at
  // a time; a second waits. Errors leave the serving model as it was.
  absl::StatusOr<UpdateResult> ReceiveWeights(const std::function<bool(zerorl::v1::WeightChunk*)>& next,
                                              const std::function<bool()>& cancelled = nullptr);
  // The same, for callers that hand chunks to the receiver themselves (e.g.
  // with the data still in gRPC slices): `feed` reads the next chunk, passes it
  // to rx->Add and returns that status, or nullopt at the end of the stream.
  using ChunkFeed = std::function<std::optional<absl::Status>(WeightReceiver* rx)>;
  absl::StatusOr<UpdateResult> ReceiveWeightChunks(const ChunkFeed& feed, const std::function<bool()>& cancelled = nullptr);

  // For transports that write the spare's backend memory directly: takes a
  // spare with the serving config on the serving backend, calls fill(spare)
  // (e.g. an NCCL broadcast into spare->param_data()), and swaps it in as
  // `version` when fill returns OK. One transfer at a time (shared with
  // ReceiveWeightChunks). Errors leave the serving model as it was.
  absl::StatusOr<UpdateResult> ReceiveWeightsInPlace(int64_t version,
                                                     const std::function<absl::Status(model::Model* spare)>& fill);

  // Stops taking work (Generate then answers UNAVAILABLE), then finishes or
  // aborts what is in flight and returns the counts. Idempotent.
  DrainCounts Drain(bool abort_in_flight);

  int64_t version() const;
  model::ModelConfig config() const;
  // True when the serving weights are in host memory (the CPU backend).
  bool weights_on_host() const;
  int64_t num_params() const;
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // The KV-cache budget in bytes (Options::kv_cache_bytes resolved), the bytes
  // reserved by the sequences in flight now, and the most ever reserved.
  int64_t kv_cache_budget() const { return kv_budget_; }
  int64_t kv_cache_reserved() const;
  int64_t kv_cache_peak() const;

 private:
  struct Request;
  struct Seq;
  void Loop();
  void AdmitAndPrefill(std::vector<std::unique_ptr<Seq>>* fresh);
  void Advance(Seq* s, const model::TokenDraw& d);
  // partial_rollout: moves the sequences in flight that are pinned to an older
  // model to the serving one, recomputing their KV caches.
  void MoveToServingVersion();
  void FinishSeq(Seq* s, SampleFinish f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailRequest(Request* r, const absl::Status& st) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A model for the next version: the retired one when no sequence pins it and
  // its config matches, else a new one on the serving backend.
  absl::StatusOr<std::shared_ptr<model::Model>> TakeSpare(const model::ModelConfig& cfg);
  void ReturnSpare(std::shared_ptr<model::Model> spare);  // after a failed transfer
  void SwapIn(std::shared_ptr<model::Model> spare, int64_t version);

  std::shared_ptr<const Tokenizer> tokenizer_;
  const Options options_;
  std::vector<int32_t> default_stop_ids_;
  int64_t kv_budget_ = 0;  // bytes, fixed at construction

  // mu_ guards the serving model, the queue and the engine's state; a
  // Request's next_prompt / pending / done / status are guarded by it too.
  mutable absl::Mutex mu_;
  absl::CondVar cv_;       // loop wakes on work / stop
  absl::CondVar done_cv_;  // callers wake when requests finish
  std::shared_ptr<model::Model> live_ ABSL_GUARDED_BY(mu_);
  int64_t live_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<model::Model> retired_ ABSL_GUARDED_BY(mu_);  // last replaced model, reused as a spare when free
  std::deque<Request*> queue_ ABSL_GUARDED_BY(mu_);             // requests with prompts left to admit
  // Loop thread only; Drain (under mu_) checks it is empty while aborting.
  std::vector<std::unique_ptr<Seq>> active_;
  int active_count_ ABSL_GUARDED_BY(mu_) = 0;  // mirror of active_.size()
  int64_t kv_reserved_ ABSL_GUARDED_BY(mu_) = 0;  // KV bytes reserved by admitted samples
  int64_t kv_peak_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool abort_ ABSL_GUARDED_BY(mu_) = false;
  DrainCounts drain_counts_ ABSL_GUARDED_BY(mu_);
  absl::Mutex update_mu_;  // one weight transfer at a time
  std::vector<float> staging_ ABSL_GUARDED_BY(update_mu_);  // host copy of a device spare's params
  std::thread loop_;
};

}  // namespace zerorl::rollout
