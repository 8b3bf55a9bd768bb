// GenerationEngine: continuous-batching decode loop and staged weight swaps
// (see generation_engine.h).
#include "rollout/generation_engine.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "model/routing_record.h"

namespace zerorl::rollout {

struct GenerationEngine::Request {
  const std::vector<std::vector<int32_t>>* prompts = nullptr;
  int G = 1;
  GenerationParams params;
  std::vector<int32_t> stop_ids;  // sorted
  std::vector<std::vector<GeneratedText>> out;  // [P][G], written by the loop
  // Guarded by the engine's mu_ (a nested struct cannot name it in ABSL_GUARDED_BY).
  size_t next_prompt = 0;
  int64_t pending = 0;  // samples not final yet
  bool done = false;
  absl::Status status;
};

struct GenerationEngine::Seq {
  Request* req = nullptr;
  int p = 0, g = 0;
  std::shared_ptr<model::Model> model;  // pinned at admission
  int64_t version = 0;
  model::KVCache cache;
  int64_t kv_bytes = 0;  // reserved for cache in the engine's budget
  std::unique_ptr<model::Sampler> sampler;
  std::string raw_text;  // DecodeToken bytes so far, for stop strings
  bool finished = false;  // no more tokens
  bool counted = false;   // its request's `pending` already counts it as final
  SampleFinish finish = SampleFinish::kLength;
  // Routing replay: [fed tokens, moe_layers, K] expert ids, when the request records.
  std::vector<int32_t> routes;
  GeneratedText& out() { return req->out[p][g]; }
};

GenerationEngine::GenerationEngine(std::unique_ptr<model::Model> model, std::shared_ptr<const Tokenizer> tokenizer,
                                   const Options& options)
    : tokenizer_(std::move(tokenizer)), options_(options) {
  if (tokenizer_->eos_id() >= 0) default_stop_ids_.push_back(tokenizer_->eos_id());
  for (int64_t id : model->config().eos_token_ids) default_stop_ids_.push_back(static_cast<int32_t>(id));
  model->set_mla_cache(options.mla_cache);
  kv_budget_ = options.kv_cache_bytes > 0 ? options.kv_cache_bytes : model->backend()->memory_bytes() / 4;
  live_ = std::shared_ptr<model::Model>(std::move(model));
  live_version_ = options.initial_version;
  loop_ = std::thread([this] { Loop(); });
}

GenerationEngine::~GenerationEngine() {
  {
    absl::MutexLock lk(&mu_);
    stop_ = true;
    draining_ = true;
    abort_ = true;
  }
  cv_.SignalAll();
  loop_.join();
}

int64_t GenerationEngine::version() const {
  absl::MutexLock lk(&mu_);
  return live_version_;
}

model::ModelConfig GenerationEngine::config() const {
  absl::MutexLock lk(&mu_);
  return live_->config();
}

bool GenerationEngine::weights_on_host() const {
  absl::MutexLock lk(&mu_);
  return live_->on_host();
}

int64_t GenerationEngine::kv_cache_reserved() const {
  absl::MutexLock lk(&mu_);
  return kv_reserved_;
}

int64_t GenerationEngine::kv_cache_peak() const {
  absl::MutexLock lk(&mu_);
  return kv_peak_;
}

int64_t GenerationEngine::num_params() const {
  absl::MutexLock lk(&mu_);
  return live_->NumParams();
}

absl::StatusOr<std::vector<std::vector<GeneratedText>>> GenerationEngine::Generate(
    const std::vector<std::vector<int32_t>>& prompts, int G, const GenerationParams& params,
    int64_t min_policy_version) {
  model::ModelConfig cfg;
  int64_t kv_per_token = 0;
  {
    absl::MutexLock lk(&mu_);
    cfg = live_->config();
    kv_per_token = live_->KvBytesPerToken();
  }
  if (prompts.empty()) return absl::InvalidArgumentError("generate: no prompts");
  if (G < 1) return absl::InvalidArgumentError(absl::StrCat("generate: group_size must be >= 1, got ", G));
  if (params.max_new_tokens < 1)
    return absl::InvalidArgumentError(absl::StrCat("generate: max_new_tokens must be >= 1, got ", params.max_new_tokens));
  if (!params.sampler.greedy && !(params.sampler.temperature > 0))
    return absl::InvalidArgumentError("generate: temperature must be > 0 (0 means greedy)");
  if (!(params.sampler.top_p > 0 && params.sampler.top_p <= 1))
    return absl::InvalidArgumentError(absl::StrCat("generate: top_p must be in (0, 1], got ", params.sampler.top_p));
  if (params.sampler.top_k < 0) return absl::InvalidArgumentError("generate: top_k must be >= 0");
  for (size_t p = 0; p < prompts.size(); ++p) {
    if (prompts[p].empty()) return absl::InvalidArgumentError(absl::StrCat("generate: prompt ", p, " is empty"));
    for (int32_t t : prompts[p])
      if (t < 0 || t >= cfg.vocab_size)
        return absl::InvalidArgumentError(
            absl::StrCat("generate: prompt ", p, " has token ", t, " outside the vocabulary of ", cfg.vocab_size));
    if (static_cast<int64_t>(prompts[p].size()) + params.max_new_tokens > cfg.max_position_embeddings)
      return absl::InvalidArgumentError(absl::StrCat("generate: prompt ", p, " (", prompts[p].size(),
                                                     " tokens) + max_new_tokens ", params.max_new_tokens,
                                                     " exceeds the model's ", cfg.max_position_embeddings,
                                                     " positions"));
    const int64_t need = int64_t{G} * (static_cast<int64_t>(prompts[p].size()) + params.max_new_tokens) * kv_per_token;
    if (need > kv_budget_)
      return absl::ResourceExhaustedError(absl::StrCat(
          "generate: prompt ", p, " needs ", need, " bytes of KV cache (", G, " samples x (", prompts[p].size(),
          " prompt + ", params.max_new_tokens, " new tokens) x ", kv_per_token,
          " bytes per token), more than the rollout worker's whole budget of ", kv_budget_,
          " bytes (rollout.kv_cache_mb); lower group_size, max_new_tokens or the prompt length, or raise the budget"));
  }
  for (const std::string& s : params.stop)
    if (s.empty()) return absl::InvalidArgumentError("generate: empty stop string");

  Request req;
  req.prompts = &prompts;
  req.G = G;
  req.params = params;
  req.stop_ids = default_stop_ids_;
  req.stop_ids.insert(req.stop_ids.end(), params.stop_token_ids.begin(), params.stop_token_ids.end());
  std::sort(req.stop_ids.begin(), req.stop_ids.end());
  req.out.assign(prompts.size(), std::vector<GeneratedText>(G));
  req.pending = static_cast<int64_t>(prompts.size()) * G;
  {
    absl::MutexLock lk(&mu_);
    if (draining_) return absl::UnavailableError("rollout worker is draining");
    if (live_version_ < min_policy_version)
      return absl::FailedPreconditionError(absl::StrCat("rollout worker serves policy version ", live_version_,
                                                        ", the request needs >= ", min_policy_version));
    queue_.push_back(&req);
    cv_.SignalAll();
    while (!req.done) done_cv_.Wait(&mu_);
    if (!req.status.ok()) return req.status;
  }
  return std::move(req.out);
}

// Bookkeeping of a final sample.
void GenerationEngine::FinishSeq(Seq* s, SampleFinish f) {
  GeneratedText& o = s->out();
  o.finish = f;
  o.policy_version = o.version_spans.empty() ? s->version : o.version_spans.front().version;
  o.text = tokenizer_->DecodeText(o.tokens, /*skip_special=*/true);  // Sample.text is a proto string: UTF-8
  if (s->req->params.record_routing && s->model) o.routing = model::PackRoutingRecord(s->model->config(), s->routes);
  s->finished = true;
  s->counted = true;
  if (draining_) (f == SampleFinish::kAbort ? drain_counts_.aborted : drain_counts_.finished)++;
  if (--s->req->pending == 0) s->req->done = true;
}

void GenerationEngine::FailRequest(Request* r, const absl::Status& st) {
  if (r->status.ok()) r->status = st;
  queue_.erase(std::remove(queue_.begin(), queue_.end(), r), queue_.end());
  r->pending -= static_cast<int64_t>(r->prompts->size() - r->next_prompt) * r->G;
  r->next_prompt = r->prompts->size();
  for (auto& s : active_)
    if (s->req == r && !s->counted) {
      s->finished = s->counted = true;
      --r->pending;
    }
  if (r->pending == 0) r->done = true;
}

void GenerationEngine::Advance(Seq* s, const model::TokenDraw& d) {
  GeneratedText& o = s->out();
  o.tokens.push_back(d.token);
  o.logprobs.push_back(d.logprob);
  o.sampling_logprobs.push_back(d.sampling_logprob);
  const auto& stop_ids = s->req->stop_ids;
  if (std::binary_search(stop_ids.begin(), stop_ids.end(), d.token)) {
    s->finish = SampleFinish::kStop;
    s->finished = true;
    return;
  }
  if (!s->req->params.stop.empty()) {
    const size_t before = s->raw_text.size();
    if (!tokenizer_->is_special(d.token)) s->raw_text += tokenizer_->DecodeToken(d.token);
    for (const std::string& stop : s->req->params.stop) {
      const size_t from = before >= stop.size() ? before - stop.size() + 1 : 0;
      if (s->raw_text.find(stop, from) != std::string::npos) {
        s->finish = SampleFinish::kStop;
        s->finished = true;
        return;
      }
    }
  }
  if (static_cast<int32_t>(o.tokens.size()) >= s->req->params.max_new_tokens) {
    s->finish = SampleFinish::kLength;
    s->finished = true;
  }
}

void GenerationEngine::AdmitAndPrefill(std::vector<std::unique_ptr<Seq>>* fresh) {
  struct Admit {
    Request* req;
    int p;
    std::shared_ptr<model::Model> model;
    int64_t version;
    int64_t tokens;    // worst-case cache length of each sample: prompt + max_new_tokens
    int64_t kv_bytes;  // reserved per sample
  };
  std::vector<Admit> admits;
  {
    absl::MutexLock lk(&mu_);
    int room = options_.max_batch_sequences - active_count_;
    const int64_t kv_per_token = live_->KvBytesPerToken();
    while (!queue_.empty()) {
      Request* r = queue_.front();
      const int p = static_cast<int>(r->next_prompt);
      const int64_t tokens = static_cast<int64_t>((*r->prompts)[p].size()) + r->params.max_new_tokens;
      const int64_t need = r->G * tokens * kv_per_token;
      const bool empty = active_count_ == 0 && admits.empty();
      if (need > kv_budget_ && empty) {  // only after a swap to a config with a larger cache
        FailRequest(r, absl::ResourceExhaustedError(absl::StrCat(
                           "prompt ", p, " needs ", need, " bytes of KV cache, more than the budget of ", kv_budget_,
                           " bytes (rollout.kv_cache_mb)")));
        done_cv_.SignalAll();
        continue;
      }
      // A prompt always fits into an empty batch, so a large G cannot starve.
      if (r->G > room && !empty) break;
      if (kv_reserved_ + need > kv_budget_) break;  // waits for sequences to finish
      admits.push_back({r, p, live_, live_version_, tokens, tokens * kv_per_token});
      room -= r->G;
      active_count_ += r->G;  // counted as in flight from admission on (Drain waits for them)
      kv_reserved_ += need;
      kv_peak_ = std::max(kv_peak_, kv_reserved_);
      if (++r->next_prompt == r->prompts->size()) queue_.pop_front();
    }
  }
  std::vector<float> logits;
  std::vector<int32_t> prompt_routes;
  for (Admit& a : admits) {
    model::KVCache cache;
    const bool record = a.req->params.record_routing;
    absl::Status st = a.model->ReserveCache(&cache, a.tokens);
    if (st.ok())
      st = a.model->Prefill((*a.req->prompts)[a.p], &cache, &logits, false, record ? &prompt_routes : nullptr);
    if (!st.ok()) {
      absl::MutexLock lk(&mu_);
      a.req->pending -= a.req->G;  // this prompt's samples never became sequences
      kv_reserved_ -= a.req->G * a.kv_bytes;
      FailRequest(a.req, Annotate(st, absl::StrCat("prefill of prompt ", a.p)));
      done_cv_.SignalAll();
      continue;
    }
    const int64_t V = a.model->config().vocab_size;
    for (int g = 0; g < a.req->G; ++g) {
      auto s = std::make_unique<Seq>();
      s->req = a.req;
      s->p = a.p;
      s->g = g;
      s->model = a.model;
      s->version = a.version;
      s->out().version_spans = {{0, a.version}};
      s->kv_bytes = a.kv_bytes;
      if (record) s->routes = prompt_routes;
      s->cache = g + 1 < a.req->G ? cache.Fork() : std::move(cache);
      s->sampler = std::make_unique<model::Sampler>(
          a.req->params.sampler,
          model::MixSeed(a.req->params.seed, static_cast<uint64_t>(a.p) * a.req->G + g));
      Advance(s.get(), s->sampler->Draw(logits.data(), V));
      fresh->push_back(std::move(s));
    }
  }
}

void GenerationEngine::MoveToServingVersion() {
  std::shared_ptr<model::Model> live;
  int64_t version;
  {
    absl::MutexLock lk(&mu_);
    live = live_;
    version = live_version_;
  }
  std::vector<int32_t> context;
  std::vector<float> logits;
  for (auto& s : active_) {
    if (s->finished || s->model == live) continue;
    // The cache holds every token but the last sampled one, which the next
    // decode step feeds: rebuild exactly that under the new weights.
    const std::vector<int32_t>& prompt = (*s->req->prompts)[s->p];
    GeneratedText& o = s->out();
    context.assign(prompt.begin(), prompt.end());
    context.insert(context.end(), o.tokens.begin(), o.tokens.end() - 1);
    model::KVCache cache;
    absl::Status st =
        live->ReserveCache(&cache, static_cast<int64_t>(prompt.size()) + s->req->params.max_new_tokens);
    // With routing replay the record is replaced too: the tokens generated from
    // here on attend to keys and values routed by the new weights.
    if (st.ok())
      st = live->Prefill(context, &cache, &logits, false, s->req->params.record_routing ? &s->routes : nullptr);
    if (!st.ok()) {
      absl::MutexLock lk(&mu_);
      FailRequest(s->req, Annotate(st, absl::StrCat("recomputing the KV cache of prompt ", s->p, " sample ", s->g,
                                                    " under policy version ", version)));
      continue;
    }
    s->cache = std::move(cache);
    s->model = live;
    s->version = version;
    o.version_spans.push_back({static_cast<int32_t>(o.tokens.size()), version});
  }
}

void GenerationEngine::Loop() {
  std::vector<float> logits;
  int64_t iteration = 0;
  std::vector<int32_t> routes;  // [sequences, moe_layers, K] of a decode step, when any sequence records
  for (;;) {
    {
      absl::MutexLock lk(&mu_);
      while (!(stop_ || abort_ || !queue_.empty() || !active_.empty())) cv_.Wait(&mu_);
      if (abort_) {
        for (auto& s : active_) {
          if (!s->counted) FinishSeq(s.get(), s->finished ? s->finish : SampleFinish::kAbort);
          kv_reserved_ -= s->kv_bytes;
        }
        active_.clear();
        active_count_ = 0;
        for (Request* r : queue_) {
          for (size_t p = r->next_prompt; p < r->prompts->size(); ++p)
            for (int g = 0; g < r->G; ++g) {
              Seq s;
              s.req = r;
              s.p = static_cast<int>(p);
              s.g = g;
              s.version = live_version_;
              FinishSeq(&s, SampleFinish::kAbort);
            }
          r->next_prompt = r->prompts->size();
        }
        queue_.clear();
        done_cv_.SignalAll();
        if (stop_) return;
        continue;
      }
      if (stop_ && queue_.empty() && active_.empty()) return;
    }
    if (options_.before_iteration) options_.before_iteration(iteration);
    ++iteration;
    if (options_.partial_rollout) MoveToServingVersion();
    std::vector<std::unique_ptr<Seq>> fresh;
    AdmitAndPrefill(&fresh);
    // One decode step over every live sequence, batched per pinned model.
    std::map<model::Model*, std::vector<Seq*>> by_model;
    for (auto& s : active_)
      if (!s->finished) by_model[s->model.get()].push_back(s.get());
    for (auto& [m, seqs] : by_model) {
      std::vector<model::KVCache*> caches;
      std::vector<int32_t> last;
      bool record = false;
      for (Seq* s : seqs) {
        caches.push_back(&s->cache);
        last.push_back(s->out().tokens.back());
        record = record || s->req->params.record_routing;
      }
      absl::Status st = m->DecodeStep(caches, last, &logits, record ? &routes : nullptr);
      if (!st.ok()) {
        absl::MutexLock lk(&mu_);
        for (Seq* s : seqs)
          if (!s->finished) FailRequest(s->req, Annotate(st, "decode step"));
        continue;
      }
      const int64_t V = m->config().vocab_size;
      if (record) {
        const size_t per_token = routes.size() / seqs.size();
        for (size_t i = 0; i < seqs.size(); ++i)
          if (seqs[i]->req->params.record_routing)
            seqs[i]->routes.insert(seqs[i]->routes.end(), routes.begin() + i * per_token,
                                   routes.begin() + (i + 1) * per_token);
      }
      for (size_t i = 0; i < seqs.size(); ++i) Advance(seqs[i], seqs[i]->sampler->Draw(logits.data() + i * V, V));
    }
    absl::MutexLock lk(&mu_);
    for (auto& s : fresh) active_.push_back(std::move(s));
    bool any_done = false;
    std::vector<std::unique_ptr<Seq>> keep;
    for (auto& s : active_) {
      if (!s->counted && !s->req->status.ok()) {  // its request failed meanwhile
        s->finished = s->counted = true;
        if (--s->req->pending == 0) s->req->done = true;
      } else if (s->finished && !s->counted) {
        FinishSeq(s.get(), s->finish);
      }
      if (s->finished) {
        any_done = true;
        kv_reserved_ -= s->kv_bytes;
      } else {
        keep.push_back(std::move(s));
      }
    }
    active_ = std::move(keep);
    active_count_ = static_cast<int>(active_.size());
    if (any_done) done_cv_.SignalAll();
  }
}

absl::StatusOr<UpdateResult> GenerationEngine::ReceiveWeights(
    const std::function<bool(zerorl::v1::WeightChunk*)>& next, const std::function<bool()>& cancelled) {
  zerorl::v1::WeightChunk chunk;
  return ReceiveWeightChunks(
      [&](WeightReceiver* rx) -> std::optional<absl::Status> {
        if (!next(&chunk)) return std::nullopt;
        return rx->Add(chunk);
      },
      cancelled);
}

absl::StatusOr<std::shared_ptr<model::Model>> GenerationEngine::TakeSpare(const model::ModelConfig& cfg) {
  std::shared_ptr<model::Model> spare;
  model::ops::Backend* backend = nullptr;
  {
    absl::MutexLock lk(&mu_);
    backend = live_->backend();
    if (retired_ && retired_.use_count() == 1 && retired_->config().ToJson() == cfg.ToJson())
      spare = std::move(retired_);
    retired_.reset();
  }
  if (spare) return spare;
  auto created = model::Model::Create(cfg, 0, backend);
  if (!created.ok()) return Annotate(created.status(), "spare model for the weight update");
  (*created)->set_mla_cache(options_.mla_cache);
  return std::shared_ptr<model::Model>(std::move(*created));
}

void GenerationEngine::ReturnSpare(std::shared_ptr<model::Model> spare) {
  absl::MutexLock lk(&mu_);
  if (spare && !retired_) retired_ = std::move(spare);
}

void GenerationEngine::SwapIn(std::shared_ptr<model::Model> spare, int64_t version) {
  absl::MutexLock lk(&mu_);
  retired_ = std::move(live_);
  live_ = std::move(spare);
  live_version_ = version;
}

absl::StatusOr<UpdateResult> GenerationEngine::ReceiveWeightChunks(const ChunkFeed& feed,
                                                                   const std::function<bool()>& cancelled) {
  absl::MutexLock one_at_a_time(&update_mu_);
  const auto t0 = std::chrono::steady_clock::now();
  std::shared_ptr<model::Model> spare;
  bool staged = false;  // chunks land in staging_, uploaded after Finish
  WeightReceiver rx([&](const zerorl::v1::WeightChunk& first) -> absl::StatusOr<WeightDestinations> {
    model::ModelConfig cfg = config();
    if (!first.config_json().empty()) {
      auto parsed = model::ParseModelConfig(first.config_json());
      if (!parsed.ok()) return Annotate(parsed.status(), "config_json of the weight transfer");
      cfg = *parsed;
    }
    ZRL_ASSIGN_OR_RETURN(spare, TakeSpare(cfg));
    update_mu_.AssertHeld();  // the lambda runs inside this call, under one_at_a_time
    staged = !spare->on_host();
    if (staged) staging_.resize(static_cast<size_t>(spare->NumParams()));
    const float* base = spare->param_data();
    WeightDestinations dest;
    for (const model::TensorRef& t : spare->Parameters())
      dest[t.name] = {t.shape, staged ? staging_.data() + (t.data - base) : t.data, t.size};
    return dest;
  });
  absl::Status st;
  while (st.ok()) {
    std::optional<absl::Status> fed = feed(&rx);
    if (!fed) break;
    st = cancelled && cancelled() ? absl::CancelledError("weight transfer cancelled by the sender") : *fed;
  }
  if (st.ok()) st = rx.Finish();
  if (!st.ok()) {
    ZLOG(WARNING) << "weight update rejected, still serving version " << version() << ": " << st.message();
    ReturnSpare(std::move(spare));
    return st;
  }
  if (staged) spare->UploadParams(staging_.data());  // [NumParams] floats, host -> backend
  SwapIn(std::move(spare), rx.version());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ZLOG(INFO) << "serving policy version " << rx.version() << " (" << rx.bytes() / 1e6 << " MB in " << secs << " s"
             << (staged ? ", staged in host memory" : "") << ")";
  return UpdateResult{rx.version(), rx.bytes(), secs};
}

absl::StatusOr<UpdateResult> GenerationEngine::ReceiveWeightsInPlace(
    int64_t version, const std::function<absl::Status(model::Model* spare)>& fill) {
  absl::MutexLock one_at_a_time(&update_mu_);
  const auto t0 = std::chrono::steady_clock::now();
  ZRL_ASSIGN_OR_RETURN(std::shared_ptr<model::Model> spare, TakeSpare(config()));
  absl::Status st = fill(spare.get());
  if (!st.ok()) {
    ZLOG(WARNING) << "in-place weight update to version " << version << " failed, still serving version "
                  << this->version() << ": " << st.message();
    ReturnSpare(std::move(spare));
    return st;
  }
  const int64_t bytes = spare->NumParams() * static_cast<int64_t>(sizeof(float));
  SwapIn(std::move(spare), version);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ZLOG(INFO) << "serving policy version " << version << " (" << bytes / 1e6 << " MB in place in " << secs << " s)";
  return UpdateResult{version, bytes, secs};
}

DrainCounts GenerationEngine::Drain(bool abort_in_flight) {
  absl::MutexLock lk(&mu_);
  draining_ = true;
  if (abort_in_flight) abort_ = true;
  cv_.SignalAll();
  while (!(queue_.empty() && active_count_ == 0 && !(abort_ && !active_.empty()))) done_cv_.Wait(&mu_);
  abort_ = false;
  return drain_counts_;
}

}  // namespace zerorl::rollout
