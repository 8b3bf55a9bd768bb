// The step loop of one run (see run_controller.h).
#include "orchestrator/run_controller.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <thread>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/log.h"
#include "common/server.h"
#include "common/status.h"
#include "common/splitmix.h"
#include "zerorl/v1/reward.grpc.pb.h"
#include "zerorl/v1/rollout.grpc.pb.h"

namespace zerorl {

using zerorl::v1::Group;
using zerorl::v1::Prompt;
using zerorl::v1::RewardResult;
using zerorl::v1::Sample;

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Runs fn(i) for i in [0, n) on up to `threads` threads; returns the first error.
template <typename Fn>
absl::Status ParallelFor(int n, int threads, Fn fn) {
  std::atomic<int> next{0};
  std::vector<absl::Status> errors(n);
  auto worker = [&] {
    for (int i = next++; i < n; i = next++) errors[i] = fn(i);
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::min(n, threads); ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  for (auto& e : errors) {
    if (!e.ok()) return e;
  }
  return absl::OkStatus();
}

double Mean(const std::vector<double>& v) {
  if (v.empty()) return 0;
  double s = 0;
  for (double x : v) s += x;
  return s / v.size();
}

// Non-overlapping occurrences of `needle` in `text` (needle not empty).
int64_t CountOccurrences(const std::string& text, const std::string& needle) {
  int64_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

// One scored completion, wherever it lives (a Trajectory; the eval's arrays).
struct Scored {
  const zerorl::v1::Sample* sample;
  const zerorl::v1::RewardResult* reward;
};

std::vector<Scored> ScoredOf(const google::protobuf::RepeatedPtrField<zerorl::v1::Trajectory>& ts) {
  std::vector<Scored> out;
  for (const auto& t : ts) out.push_back({&t.sample(), &t.reward()});
  return out;
}

// The metrics of a set of completions, the same for a generated step, a step
// read back from the buffer and an eval: reward_mean, reward_std, accuracy,
// completion_len_mean, completion_len_max, completion_tokens,
// truncated_fraction and `<name>_per_completion` per orchestrator.text_counters.
std::map<std::string, double> CompletionStats(const zerorl::v1::OrchestratorConfig& config,
                                              const std::vector<Scored>& scored) {
  std::vector<double> r, acc, len;
  int64_t tokens = 0, truncated = 0;
  for (const Scored& c : scored) {
    r.push_back(c.reward->reward());
    acc.push_back(c.reward->correct() ? 1 : 0);
    len.push_back(c.sample->token_ids_size());
    tokens += c.sample->token_ids_size();
    truncated += c.sample->finish_reason() == zerorl::v1::FINISH_REASON_LENGTH;
  }
  std::map<std::string, double> out;
  double var = 0;
  const double mean = Mean(r);
  for (double x : r) var += (x - mean) * (x - mean);
  out["reward_mean"] = mean;
  out["reward_std"] = r.empty() ? 0 : std::sqrt(var / r.size());
  out["accuracy"] = Mean(acc);
  out["completion_len_mean"] = Mean(len);
  out["completion_len_max"] = len.empty() ? 0 : *std::max_element(len.begin(), len.end());
  out["completion_tokens"] = static_cast<double>(tokens);
  out["truncated_fraction"] = r.empty() ? 0 : static_cast<double>(truncated) / r.size();
  for (const auto& counter : config.text_counters()) {
    std::vector<double> per_sample;
    for (const Scored& c : scored) {
      int64_t n = 0;
      for (const auto& sub : counter.substrings()) n += CountOccurrences(c.sample->text(), sub);
      per_sample.push_back(static_cast<double>(n));
    }
    out[absl::StrCat(counter.name(), "_per_completion")] = Mean(per_sample);
  }
  return out;
}

}  // namespace

// What Produce hands to Train and Record.
struct RunController::StepData {
  std::map<std::string, double> stats;  // reward_mean, accuracy, completion_len_mean, ...
  double seconds = 0;                   // generate + score + append
  std::vector<int64_t> group_min_versions;  // oldest sampling version per group (empty when stored before)
};

// Async mode's producer: Produce(j) on its own thread for j in [first, end),
// step j once step j - S - 1 is trained; Take(k) hands step k to the trainer.
class RunController::Pipeline {
 public:
  using ProduceFn = std::function<absl::StatusOr<StepData>(int64_t step, int64_t min_version)>;
  // version(j) = first_version + (j - first): each Train adds one version.
  // may_go() waits while the run is paused and is false once it is stopping.
  Pipeline(int64_t first, int64_t end, int64_t first_version, int staleness, ProduceFn produce,
           std::function<bool()> may_go)
      : first_(first),
        end_(end),
        first_version_(first_version),
        staleness_(staleness),
        produce_(std::move(produce)),
        may_go_(std::move(may_go)),
        trained_(first - 1) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Pipeline() {
    {
      absl::MutexLock l(&mu_);
      quit_ = true;
    }
    thread_.join();  // after the Produce in flight, if any
  }

  int64_t MinVersion(int64_t step) const {
    return std::max<int64_t>(0, first_version_ + (step - first_) - staleness_);
  }
  // Blocks until step is produced; CANCELLED when the producer stopped first
  // (a stop was requested), else the producer's error.
  absl::StatusOr<StepData> Take(int64_t step) {
    absl::MutexLock l(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return exited_ || ready_.count(step) > 0; };
    mu_.Await(absl::Condition(&ready));
    auto it = ready_.find(step);
    if (it == ready_.end()) return error_.ok() ? absl::CancelledError("the run is stopping") : error_;
    StepData d = std::move(it->second);
    ready_.erase(it);
    return d;
  }
  void Trained(int64_t step) {
    absl::MutexLock l(&mu_);
    trained_ = std::max(trained_, step);
  }
  int64_t StepsReady() {
    absl::MutexLock l(&mu_);
    return static_cast<int64_t>(ready_.size());
  }

 private:
  void Loop() {
    for (int64_t j = first_; j < end_; ++j) {
      {
        absl::MutexLock l(&mu_);
        auto go = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return quit_ || trained_ >= j - staleness_ - 1; };
        mu_.Await(absl::Condition(&go));
        if (quit_) break;
      }
      if (!may_go_()) break;
      absl::StatusOr<StepData> d = produce_(j, MinVersion(j));
      absl::MutexLock l(&mu_);
      if (!d.ok()) {
        error_ = d.status();
        break;
      }
      ready_.emplace(j, *std::move(d));
    }
    absl::MutexLock l(&mu_);
    exited_ = true;
  }

  const int64_t first_, end_, first_version_;
  const int staleness_;
  const ProduceFn produce_;
  const std::function<bool()> may_go_;
  absl::Mutex mu_;
  int64_t trained_ ABSL_GUARDED_BY(mu_);  // the last step whose Train returned
  std::map<int64_t, StepData> ready_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  bool quit_ ABSL_GUARDED_BY(mu_) = false;
  bool exited_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

RunController::RunController(zerorl::v1::RunConfig config, WorkerRegistry* registry,
                             std::shared_ptr<grpc::Channel> buffer, std::shared_ptr<grpc::Channel> learner,
                             RunControllerOptions options)
    : config_(std::move(config)),
      registry_(registry),
      buffer_(zerorl::v1::BufferService::NewStub(buffer)),
      learner_(zerorl::v1::LearnerService::NewStub(learner)),
      options_(std::move(options)),
      calls_(config_.orchestrator(), &stop_, [this](const std::string& waiting_for) {
        absl::MutexLock l(&mu_);
        if (waiting_for == waiting_for_) return;
        waiting_for_ = waiting_for;
        if (progress_ && !waiting_for.empty()) progress_->Note(waiting_for);
      }) {}

RunController::~RunController() {
  RequestStop();
  Join();
}

absl::Status RunController::Prepare() {
  const std::string& dir = config_.run_dir();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("run_dir: cannot create ", dir, ": ", ec.message()));
  if (!dir_lock_) {
    ZRL_ASSIGN_OR_RETURN(dir_lock_, RunDirLock::Acquire(dir));
  }
  ZRL_ASSIGN_OR_RETURN(data_, LoadDataset(config_.dataset(), config_.seed(), options_.base_dir, options_.chat,
                                           options_.dataset_limits));
  if (data_.train.empty()) return absl::InvalidArgumentError("dataset: the train split is empty");
  eval_prompts_ = data_.eval;
  if (config_.orchestrator().eval().prompts() > 0 &&
      static_cast<size_t>(config_.orchestrator().eval().prompts()) < eval_prompts_.size()) {
    eval_prompts_.resize(config_.orchestrator().eval().prompts());
  }

  RunStateRecord state;
  auto loaded = LoadRunState(dir + "/state.json");
  if (loaded.ok()) {
    state = *loaded;
    if (state.run_id != config_.run_id()) {
      return absl::FailedPreconditionError(absl::StrCat(dir, "/state.json belongs to run \"", state.run_id,
                                                        "\", not \"", config_.run_id(), "\""));
    }
    ZLOG(INFO) << "resuming run " << state.run_id << " at step " << state.step;
  } else if (loaded.status().code() == absl::StatusCode::kNotFound) {
    state.run_id = config_.run_id();
    state.started_unix_ms = NowUnixMs();
  } else {
    return loaded.status();
  }
  {
    absl::MutexLock l(&mu_);
    state_ = state;
  }
  ZRL_RETURN_IF_ERROR(ReconcileWithLearner(/*fresh_state=*/!loaded.ok()));
  {
    std::ofstream(dir + "/config.yaml") << MessageToYaml(config_);
  }
  int64_t step;
  {
    absl::MutexLock l(&mu_);
    step = state_.step;
  }
  ZRL_RETURN_IF_ERROR(metrics_log_.Open(dir + "/metrics.jsonl", step));
  if (auto prior = ReadMetricsJsonl(dir + "/metrics.jsonl"); prior.ok()) {
    absl::MutexLock l(&mu_);
    metrics_ = std::move(*prior);
  }
  ZRL_RETURN_IF_ERROR(tensorboard_.Open(dir + "/tensorboard"));
  if (config_.orchestrator().metrics_port() > 0) {
    prometheus_ = std::make_unique<PrometheusEndpoint>();
    ZRL_RETURN_IF_ERROR(prometheus_->Start(config_.server().bind_host(), config_.orchestrator().metrics_port(),
                                           config_.run_id()));
  }
  progress_ = std::make_unique<ProgressBar>(options_.progress && config_.orchestrator().progress(),
                                            config_.orchestrator().total_steps(), step);
  return SaveState();
}

absl::StatusOr<zerorl::v1::LearnerState> RunController::FetchLearnerState() {
  zerorl::v1::LearnerState ls;
  ZRL_RETURN_IF_ERROR(calls_.CallSingle("learner", config_.learner().address(), "learner GetLearnerState", [&] {
    ls.Clear();
    auto ctx = ContextWithDeadline(calls_.deadline());
    return FromGrpcStatus(learner_->GetLearnerState(ctx.get(), zerorl::v1::GetLearnerStateRequest(), &ls));
  }));
  return ls;
}

absl::Status RunController::ReconcileWithLearner(bool fresh_state) {
  ZRL_ASSIGN_OR_RETURN(zerorl::v1::LearnerState ls, FetchLearnerState());
  absl::MutexLock l(&mu_);
  if (fresh_state) {  // no state.json: the learner's checkpoint says where the run is
    state_.step = ls.step();
    state_.policy_version = ls.policy().version();
  } else if (ls.step() > state_.step) {
    ZLOG(WARNING) << "the learner finished step " << ls.step() - 1 << " before the orchestrator recorded it; "
                  << "re-running step " << state_.step << " (the learner answers it from its record)";
  } else if (ls.step() < state_.step) {
    ZLOG(WARNING) << "the learner is at step " << ls.step() << " (restored from an older checkpoint) while the run "
                  << "state is at step " << state_.step << "; it re-trains steps " << ls.step() << ".."
                  << state_.step - 1 << " from the buffer before step " << state_.step;
  }
  state_.cursor = CursorForStep(state_.step);
  state_.rng_state = SeedForStep(state_.step);
  return absl::OkStatus();
}

absl::Status RunController::CatchUpLearner() {
  int64_t step, version;
  {
    absl::MutexLock l(&mu_);
    step = state_.step;
    version = state_.policy_version;
  }
  if (step == 0) return absl::OkStatus();
  ZRL_ASSIGN_OR_RETURN(zerorl::v1::LearnerState ls, FetchLearnerState());
  if (ls.step() >= step) return absl::OkStatus();
  // Train of the last recorded step re-trains what the learner lost (its
  // metrics are recorded already) and pushes the weights the rollout needs.
  ZRL_ASSIGN_OR_RETURN(zerorl::v1::TrainResponse caught_up, Train(step - 1));
  if (caught_up.policy().version() != version) {
    return absl::DataLossError(absl::StrCat("the learner re-trained up to step ", step - 1, " at policy version ",
                                            caught_up.policy().version(), ", but the run recorded version ", version));
  }
  return absl::OkStatus();
}

DatasetCursor RunController::CursorForStep(int64_t step) const {
  const int64_t n = static_cast<int64_t>(data_.train.size());
  const int64_t pos = step * config_.rollout().prompts_per_step();
  return DatasetCursor{n > 0 ? pos / n : 0, n > 0 ? pos % n : 0};
}

uint64_t RunController::SeedForStep(int64_t step) const {
  SplitMix64 r(config_.seed() * 0x9E3779B97F4A7C15ULL ^ (static_cast<uint64_t>(step) + 0x5eed));
  return r.Next() ^ config_.rollout().sampling().seed();
}

std::vector<Prompt> RunController::PromptsForStep(int64_t step) const {
  PromptSampler sampler(&data_.train, config_.seed(), config_.dataset().shuffle());
  sampler.set_cursor(CursorForStep(step));
  return sampler.Next(config_.rollout().prompts_per_step());
}

std::string RunController::DataCursorJson(int64_t step) const {
  const DatasetCursor c = CursorForStep(step);
  return absl::StrCat("{\"step\": ", step, ", \"epoch\": ", c.epoch, ", \"index\": ", c.index,
                      ", \"seed\": ", config_.seed(), "}");
}

absl::StatusOr<std::vector<std::vector<Sample>>> RunController::GenerateAll(
    const std::vector<Prompt>& prompts, int group_size, const zerorl::v1::SamplingParams& sampling, uint64_t seed,
    int64_t min_version, const std::string& request_prefix, std::vector<std::vector<int32_t>>* prompt_ids,
    std::atomic<int64_t>* sent_bytes, bool record_routing) {
  std::vector<std::vector<Sample>> out(prompts.size());
  if (prompt_ids != nullptr) prompt_ids->assign(prompts.size(), {});
  const auto deadline = calls_.deadline();
  // One request per prompt: the sample seeds depend only on (seed, prompt
  // index), so a retry elsewhere reproduces the same samples.
  absl::Status s = ParallelFor(static_cast<int>(prompts.size()), 32, [&](int i) {
    zerorl::v1::GenerateRequest req;
    req.set_request_id(absl::StrCat(request_prefix, "/", i));
    Prompt* p = req.add_prompts();  // the worker needs only what it renders: id and text
    p->set_id(prompts[i].id());
    p->set_text(prompts[i].text());
    req.set_group_size(group_size);
    *req.mutable_sampling() = sampling;
    SplitMix64 r(seed + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ULL);
    req.mutable_sampling()->set_seed(r.Next());
    req.set_min_policy_version(min_version);
    req.set_record_routing(record_routing);
    return calls_.CallPool(registry_, zerorl::v1::WORKER_ROLE_ROLLOUT, absl::StrCat("Generate ", req.request_id()),
                           [&](const WorkerHandle& h) -> absl::Status {
                           auto ctx = ContextWithDeadline(deadline);
                           if (sent_bytes != nullptr) *sent_bytes += static_cast<int64_t>(req.ByteSizeLong());
                           zerorl::v1::GenerateResponse resp;
                           ZRL_RETURN_IF_ERROR(FromGrpcStatus(
                               zerorl::v1::RolloutService::NewStub(h.channel)->Generate(ctx.get(), req, &resp)));
                           if (resp.groups_size() != 1 || resp.groups(0).samples_size() != group_size) {
                             return absl::InternalError(absl::StrCat("Generate returned ", resp.groups_size(),
                                                                     " groups; expected 1 of ", group_size));
                           }
                           out[i].assign(resp.groups(0).samples().begin(), resp.groups(0).samples().end());
                           if (prompt_ids != nullptr) {
                             (*prompt_ids)[i].assign(resp.groups(0).prompt_token_ids().begin(),
                                                     resp.groups(0).prompt_token_ids().end());
                           }
                           for (auto& smp : out[i]) {
                             if (smp.worker().empty()) smp.set_worker(h.address);
                           }
                           return absl::OkStatus();
                         });
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<std::vector<RewardResult>>> RunController::ScoreAll(
    const std::vector<Prompt>& prompts, const std::vector<std::vector<Sample>>& samples,
    std::atomic<int64_t>* sent_bytes) {
  std::vector<std::vector<RewardResult>> out(prompts.size());
  const auto deadline = calls_.deadline();
  absl::Status s = ParallelFor(static_cast<int>(prompts.size()), 8, [&](int i) {
    zerorl::v1::ScoreRequest req;
    req.set_group_prompt(prompts[i].text());
    *req.mutable_group_answer() = prompts[i].answer();
    for (size_t g = 0; g < samples[i].size(); ++g) {
      auto* item = req.add_items();
      item->set_id(absl::StrCat(prompts[i].id(), "/", g));
      item->set_completion(samples[i][g].text());
      item->set_completion_tokens(samples[i][g].token_ids_size());
      item->set_finish_reason(samples[i][g].finish_reason());
    }
    return calls_.CallPool(registry_, zerorl::v1::WORKER_ROLE_REWARD, absl::StrCat("Score ", prompts[i].id()),
                           [&](const WorkerHandle& h) -> absl::Status {
                           auto ctx = ContextWithDeadline(deadline);
                           if (sent_bytes != nullptr) *sent_bytes += static_cast<int64_t>(req.ByteSizeLong());
                           zerorl::v1::ScoreResponse resp;
                           ZRL_RETURN_IF_ERROR(FromGrpcStatus(
                               zerorl::v1::RewardService::NewStub(h.channel)->Score(ctx.get(), req, &resp)));
                           if (resp.results_size() != req.items_size()) {
                             return absl::InternalError(absl::StrCat("Score returned ", resp.results_size(),
                                                                     " results for ", req.items_size(), " items"));
                           }
                           out[i].assign(resp.results().begin(), resp.results().end());
                           return absl::OkStatus();
                         });
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<RunController::StepData>> RunController::StoredStep(int64_t step) {
  zerorl::v1::ListTrajectoriesRequest req;
  req.mutable_filter()->set_run_id(config_.run_id());
  req.mutable_filter()->set_step_min(step);
  req.mutable_filter()->set_step_max(step);
  req.mutable_filter()->set_has_step_max(true);
  req.set_page_size(1000);
  google::protobuf::RepeatedPtrField<zerorl::v1::Trajectory> stored;
  do {
    zerorl::v1::ListTrajectoriesResponse page;
    ZRL_RETURN_IF_ERROR(calls_.CallSingle("buffer", config_.buffer().address(),
                                          absl::StrCat("buffer ListTrajectories of step ", step), [&] {
                                            page.Clear();
                                            auto ctx = ContextWithDeadline(calls_.deadline());
                                            return FromGrpcStatus(buffer_->ListTrajectories(ctx.get(), req, &page));
                                          }));
    for (auto& t : *page.mutable_trajectories()) stored.Add(std::move(t));
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  const int64_t want = static_cast<int64_t>(config_.rollout().prompts_per_step()) * config_.rollout().group_size();
  if (stored.size() < want) return std::optional<StepData>();
  // Its metrics from the stored completions, as Produce computes them.
  StepData d;
  d.stats = CompletionStats(config_.orchestrator(), ScoredOf(stored));
  d.stats["appended_groups"] = 0;
  d.stats["duplicate_groups"] = config_.rollout().prompts_per_step();
  absl::MutexLock l(&mu_);
  d.stats["reward_spec_version"] = static_cast<double>(state_.reward_spec_version);
  return std::optional<StepData>(std::move(d));
}

absl::StatusOr<RunController::StepData> RunController::Produce(int64_t step, int64_t min_version) {
  const auto t0 = Clock::now();
  // A step whose groups were all stored before a crash is not generated again
  // (with newer weights it would not be the same): the stored groups are what
  // the learner trains on, and the step's metrics come from them.
  ZRL_ASSIGN_OR_RETURN(std::optional<StepData> stored, StoredStep(step));
  if (stored) {
    ZLOG(INFO) << "step " << step << ": its groups are stored already; not generating them again";
    stored->seconds = SecondsSince(t0);
    return *std::move(stored);
  }
  const std::vector<Prompt> prompts = PromptsForStep(step);
  const int G = config_.rollout().group_size();
  std::atomic<int64_t> sent_bytes{0};
  std::vector<std::vector<int32_t>> prompt_ids;
  ZRL_ASSIGN_OR_RETURN(auto samples, GenerateAll(prompts, G, config_.rollout().sampling(), SeedForStep(step),
                                                 min_version, absl::StrCat(config_.run_id(), "/", step), &prompt_ids,
                                                 &sent_bytes, config_.learner().grpo().routing_replay()));
  const double gen_s = SecondsSince(t0);
  const auto t1 = Clock::now();
  ZRL_ASSIGN_OR_RETURN(auto rewards, ScoreAll(prompts, samples, &sent_bytes));
  const double score_s = SecondsSince(t1);

  zerorl::v1::AppendRequest append;
  std::vector<Scored> scored;
  std::vector<int64_t> group_mins;
  int64_t spec_version = 0, min_pv = INT64_MAX, max_pv = 0;
  const int64_t now = NowUnixMs();
  for (size_t i = 0; i < prompts.size(); ++i) {
    Group* g = append.add_groups();
    g->mutable_id()->set_run_id(config_.run_id());
    g->mutable_id()->set_step(step);
    g->mutable_id()->set_group(static_cast<int32_t>(i));
    *g->mutable_prompt() = prompts[i];  // once per group: text, answer and the worker's token ids
    g->mutable_prompt()->mutable_token_ids()->Assign(prompt_ids[i].begin(), prompt_ids[i].end());
    int64_t group_min = INT64_MAX;
    for (int k = 0; k < G; ++k) {
      group_min = std::min(group_min, samples[i][k].policy_version());
      auto* t = g->add_trajectories();
      *t->mutable_id() = g->id();
      t->mutable_id()->set_sample(k);
      *t->mutable_sample() = samples[i][k];
      *t->mutable_reward() = rewards[i][k];
      t->set_created_unix_ms(now);
      scored.push_back({&samples[i][k], &rewards[i][k]});
      spec_version = std::max(spec_version, rewards[i][k].spec_version());
      min_pv = std::min(min_pv, samples[i][k].policy_version());
      max_pv = std::max(max_pv, samples[i][k].policy_version());
    }
    group_mins.push_back(group_min);
  }
  const auto t2 = Clock::now();
  sent_bytes += static_cast<int64_t>(append.ByteSizeLong());
  zerorl::v1::AppendResponse appended;
  ZRL_RETURN_IF_ERROR(calls_.CallSingle("buffer", config_.buffer().address(),
                                         absl::StrCat("buffer Append of step ", step), [&] {
                                           auto ctx = ContextWithDeadline(calls_.deadline());
                                           return FromGrpcStatus(buffer_->Append(ctx.get(), append, &appended));
                                         }));
  StepData d;
  d.stats = CompletionStats(config_.orchestrator(), scored);
  d.stats["tokens_per_s"] = gen_s > 0 ? d.stats["completion_tokens"] / gen_s : 0;
  d.stats["generate_seconds"] = gen_s;
  d.stats["score_seconds"] = score_s;
  d.stats["append_seconds"] = SecondsSince(t2);
  d.stats["reward_spec_version"] = static_cast<double>(spec_version);
  d.stats["sample_policy_version_min"] = static_cast<double>(min_pv == INT64_MAX ? 0 : min_pv);
  d.stats["sample_policy_version_max"] = static_cast<double>(max_pv);
  d.stats["appended_groups"] = appended.appended();
  d.stats["duplicate_groups"] = appended.duplicates();
  d.stats["orchestrator_sent_bytes"] = static_cast<double>(sent_bytes.load());  // Generate + Score + Append
  d.group_min_versions = std::move(group_mins);
  d.seconds = SecondsSince(t0);
  return d;
}

absl::StatusOr<zerorl::v1::TrainResponse> RunController::Train(int64_t step, int64_t min_version) {
  zerorl::v1::TrainRequest req;
  req.set_run_id(config_.run_id());
  req.set_step(step);
  req.set_min_policy_version(min_version);
  req.set_by_step(true);
  req.set_expected_groups(config_.rollout().prompts_per_step());
  for (const auto& a : registry_->Addresses(zerorl::v1::WORKER_ROLE_ROLLOUT)) req.add_publish_to(a);
  req.set_total_steps(config_.orchestrator().total_steps());
  req.set_data_cursor(DataCursorJson(step + 1));
  zerorl::v1::TrainResponse resp;
  // Train of a step is idempotent (learner_service.h): a retry after a lost
  // answer, or to a restarted learner, gets the step's one result.
  ZRL_RETURN_IF_ERROR(calls_.CallSingle("learner", config_.learner().address(),
                                        absl::StrCat("learner Train of step ", step), [&] {
                                          resp.Clear();
                                          auto ctx = ContextWithDeadline(calls_.deadline());
                                          return FromGrpcStatus(learner_->Train(ctx.get(), req, &resp));
                                        }));
  for (const auto& e : resp.publish_errors()) ZLOG(WARNING) << "weights not published: " << e;
  return resp;
}

absl::StatusOr<RunController::EvalResult> RunController::Evaluate(int64_t version) {
  EvalResult res;
  if (eval_prompts_.empty()) return res;
  const auto& ec = config_.orchestrator().eval();
  zerorl::v1::SamplingParams greedy = config_.rollout().sampling();
  greedy.set_temperature(0);
  ZRL_ASSIGN_OR_RETURN(auto samples, GenerateAll(eval_prompts_, 1, greedy, config_.seed(), version,
                                                 absl::StrCat(config_.run_id(), "/eval-v", version)));
  ZRL_ASSIGN_OR_RETURN(auto rewards, ScoreAll(eval_prompts_, samples));
  std::vector<Scored> scored;
  for (size_t i = 0; i < eval_prompts_.size(); ++i) scored.push_back({&samples[i][0], &rewards[i][0]});
  std::map<std::string, double> stats = CompletionStats(config_.orchestrator(), scored);
  res.greedy_accuracy = stats["accuracy"];
  res.reward_mean = stats["reward_mean"];
  res.completion_len_mean = stats["completion_len_mean"];
  for (const auto& counter : config_.orchestrator().text_counters()) {
    res.text_counts[counter.name()] = stats[absl::StrCat(counter.name(), "_per_completion")];
  }
  if (ec.pass_k() > 0) {
    zerorl::v1::SamplingParams sampled = config_.rollout().sampling();
    sampled.set_temperature(ec.temperature());
    ZRL_ASSIGN_OR_RETURN(auto ks, GenerateAll(eval_prompts_, ec.pass_k(), sampled, config_.seed() + 1, version,
                                              absl::StrCat(config_.run_id(), "/eval-pass-v", version)));
    ZRL_ASSIGN_OR_RETURN(auto kr, ScoreAll(eval_prompts_, ks));
    int solved = 0;
    for (const auto& group : kr) {
      solved += std::any_of(group.begin(), group.end(), [](const RewardResult& x) { return x.correct(); });
    }
    res.pass_at_k = static_cast<double>(solved) / eval_prompts_.size();
  }
  return res;
}

absl::Status RunController::Record(int64_t step, const StepData& data, const zerorl::v1::TrainResponse& train,
                                   double step_seconds, double learner_idle_fraction, const EvalResult* eval) {
  zerorl::v1::StepMetrics m;
  m.set_run_id(config_.run_id());
  m.set_step(step);
  m.set_unix_ms(NowUnixMs());
  auto& v = *m.mutable_values();
  for (const auto& [k, x] : train.metrics().values()) v[k] = x;  // the learner's view first...
  for (const auto& [k, x] : data.stats) v[k] = x;                // ...the rollout's numbers win on overlap
  if (!v.count("kl")) v["kl"] = 0;  // no reference model (beta = 0): KL is not measured
  v["policy_version"] = static_cast<double>(train.policy().version());
  v["step_seconds"] = step_seconds;
  v["learner_idle_fraction"] = learner_idle_fraction;
  v["publish_mb_per_s"] = train.publish_mb_per_s();
  if (eval != nullptr) {
    v["eval_accuracy"] = eval->greedy_accuracy;
    v["eval_reward_mean"] = eval->reward_mean;
    v["eval_completion_len_mean"] = eval->completion_len_mean;
    for (const auto& [name, mean_count] : eval->text_counts) v[absl::StrCat("eval_", name, "_per_completion")] = mean_count;
    if (eval->pass_at_k >= 0) v[absl::StrCat("eval_pass_at_", config_.orchestrator().eval().pass_k())] = eval->pass_at_k;
  }
  ZRL_RETURN_IF_ERROR(metrics_log_.Append(m));
  std::map<std::string, double> sorted(v.begin(), v.end());
  ZRL_RETURN_IF_ERROR(tensorboard_.WriteScalars(step, sorted));
  if (prometheus_) {
    sorted["step"] = static_cast<double>(step);
    prometheus_->Update(sorted);
  }
  {
    absl::MutexLock l(&mu_);
    metrics_.push_back(m);
    state_.step = step + 1;
    state_.cursor = CursorForStep(step + 1);
    state_.rng_state = SeedForStep(step + 1);
    state_.policy_version = train.policy().version();
    state_.reward_spec_version = static_cast<int64_t>(data.stats.at("reward_spec_version"));
    if (summary_.steps_done == 0) summary_.reward_first = data.stats.at("reward_mean");
    summary_.reward_last = data.stats.at("reward_mean");
    ++summary_.steps_done;
  }
  progress_->Update(step, sorted);
  return SaveState();
}

absl::Status RunController::RecordFinalEval(int64_t step, const EvalResult& eval) {
  zerorl::v1::StepMetrics m;
  m.set_run_id(config_.run_id());
  m.set_step(step);
  m.set_unix_ms(NowUnixMs());
  auto& v = *m.mutable_values();
  {
    absl::MutexLock l(&mu_);
    v["policy_version"] = static_cast<double>(state_.policy_version);
    v["reward_spec_version"] = static_cast<double>(state_.reward_spec_version);
  }
  v["eval_accuracy"] = eval.greedy_accuracy;
  v["eval_reward_mean"] = eval.reward_mean;
  v["eval_completion_len_mean"] = eval.completion_len_mean;
  for (const auto& [name, mean_count] : eval.text_counts) v[absl::StrCat("eval_", name, "_per_completion")] = mean_count;
  if (eval.pass_at_k >= 0) v[absl::StrCat("eval_pass_at_", config_.orchestrator().eval().pass_k())] = eval.pass_at_k;
  ZRL_RETURN_IF_ERROR(metrics_log_.Append(m));
  ZRL_RETURN_IF_ERROR(tensorboard_.WriteScalars(step, std::map<std::string, double>(v.begin(), v.end())));
  absl::MutexLock l(&mu_);
  metrics_.push_back(m);
  return absl::OkStatus();
}

absl::Status RunController::SaveState() {
  RunStateRecord copy;
  {
    absl::MutexLock l(&mu_);
    state_.workers = registry_->List();
    copy = state_;
    updated_unix_ms_ = NowUnixMs();
  }
  return SaveRunState(config_.run_dir() + "/state.json", copy);
}

absl::Status RunController::Checkpoint() {
  int64_t step;
  {
    absl::MutexLock l(&mu_);
    step = state_.step;
  }
  zerorl::v1::SaveCheckpointRequest req;
  req.set_step(step);
  req.set_data_cursor(DataCursorJson(step));
  zerorl::v1::CheckpointInfo info;
  ZRL_RETURN_IF_ERROR(calls_.CallSingle("learner", config_.learner().address(), "learner checkpoint", [&] {
    auto ctx = ContextWithDeadline(calls_.deadline());
    return FromGrpcStatus(learner_->SaveCheckpoint(ctx.get(), req, &info));
  }));
  ZLOG(INFO) << "checkpoint of step " << step << " at " << info.path();
  return absl::OkStatus();
}

void RunController::SetState(zerorl::v1::RunState s, const std::string& error) {
  absl::MutexLock l(&mu_);
  state_.state = s;
  state_.error = error;
}

bool RunController::WaitWhilePaused() {
  absl::MutexLock l(&mu_);
  if (paused_ && !stop_) {
    state_.state = zerorl::v1::RUN_STATE_PAUSED;
    auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !paused_ || stop_.load(); };
    mu_.Await(absl::Condition(&wake));
    if (!stop_) state_.state = zerorl::v1::RUN_STATE_RUNNING;
  }
  return !stop_;
}

void RunController::Pause() {
  absl::MutexLock l(&mu_);
  paused_ = true;
}

void RunController::Resume() {
  absl::MutexLock l(&mu_);
  paused_ = false;
  if (state_.state == zerorl::v1::RUN_STATE_PAUSED) state_.state = zerorl::v1::RUN_STATE_RUNNING;
}

void RunController::RequestStop() {
  absl::MutexLock l(&mu_);
  stop_ = true;
}

void RunController::StartInBackground() {
  thread_ = std::thread([this] {
    absl::Status s = Run();
    if (!s.ok()) {
      ZLOG(ERROR) << "run " << config_.run_id() << " failed: " << s;
    }
  });
}

void RunController::Join() {
  if (thread_.joinable()) thread_.join();
}

absl::Status RunController::Run() {
  {
    absl::MutexLock l(&mu_);
    if (state_.state == zerorl::v1::RUN_STATE_FINISHED && state_.step >= config_.orchestrator().total_steps()) {
      ZLOG(INFO) << "run " << config_.run_id() << " already finished";
      return absl::OkStatus();
    }
  }
  SetState(zerorl::v1::RUN_STATE_RUNNING);
  absl::Status s = RunLoop();
  progress_->Finish();
  if (!s.ok()) {
    // An actor that stayed down past orchestrator.outage_seconds stops the run
    // (resumable: start the orchestrator again); anything else fails it.
    const bool outage = CallPolicy::IsOutage(s);
    if (outage) s = Annotate(s, "run stopped; start the orchestrator again to resume");
    SetState(outage ? zerorl::v1::RUN_STATE_STOPPED : zerorl::v1::RUN_STATE_FAILED, std::string(s.message()));
    (void)SaveState();
  }
  return s;
}

absl::Status RunController::RunLoop() {
  const auto& oc = config_.orchestrator();
  const int64_t total = oc.total_steps();
  const int every = oc.eval().every_steps();
  const bool async = oc.mode() == zerorl::v1::RUN_MODE_ASYNC;
  const auto t_start = Clock::now();
  int64_t step;
  {
    absl::MutexLock l(&mu_);
    step = state_.step;
  }
  ZRL_RETURN_IF_ERROR(CatchUpLearner());
  std::unique_ptr<Pipeline> pipeline;
  if (async) {
    int64_t first_version;
    {
      absl::MutexLock l(&mu_);
      first_version = state_.policy_version;
    }
    pipeline = std::make_unique<Pipeline>(
        step, total, first_version, std::max(0, oc.max_staleness()),
        [this](int64_t j, int64_t min_version) { return Produce(j, min_version); },
        [this] { return WaitWhilePaused(); });
  }
  auto last_train_end = Clock::now();
  while (step < total) {
    if (!WaitWhilePaused()) break;
    std::optional<EvalResult> eval;
    int64_t version;
    {
      absl::MutexLock l(&mu_);
      version = state_.policy_version;
    }
    if (every > 0 && step % every == 0) {
      ZRL_ASSIGN_OR_RETURN(eval, Evaluate(version));
      if (step == 0) {
        absl::MutexLock l(&mu_);
        state_.has_base_eval = true;
        state_.base_eval_accuracy = eval->greedy_accuracy;
      }
    }
    const auto step_start = Clock::now();
    StepData data;
    int64_t min_version = 0;
    if (pipeline) {
      const int64_t ahead = pipeline->StepsReady();
      absl::StatusOr<StepData> taken = pipeline->Take(step);
      if (!taken.ok() && stop_) break;
      if (!taken.ok()) return taken.status();
      data = *std::move(taken);
      min_version = pipeline->MinVersion(step);
      int64_t stale = 0;
      for (int64_t v : data.group_min_versions) stale += v < min_version;
      data.stats["stale_groups"] = static_cast<double>(stale);  // left out by the learner's lease
      data.stats["pipeline_steps_ready"] = static_cast<double>(ahead);
      if (data.stats.count("sample_policy_version_min"))
        data.stats["version_lag_max"] = static_cast<double>(version) - data.stats["sample_policy_version_min"];
    } else {
      ZRL_ASSIGN_OR_RETURN(data, Produce(step, version));
    }
    const auto train_start = Clock::now();
    absl::StatusOr<zerorl::v1::TrainResponse> train = Train(step, min_version);
    if (!train.ok()) return train.status();
    if (pipeline) pipeline->Trained(step);
    const double train_s = SecondsSince(train_start);
    const auto train_end = Clock::now();
    const double wall = std::chrono::duration<double>(train_end - std::min(last_train_end, step_start)).count();
    const double idle = wall > 0 ? std::max(0.0, 1.0 - train_s / wall) : 0;
    last_train_end = train_end;
    ZRL_RETURN_IF_ERROR(Record(step, data, *train, SecondsSince(step_start), idle, eval ? &*eval : nullptr));
    ++step;
  }
  pipeline.reset();  // joins the producer (after the step it is generating, if any)
  {
    absl::MutexLock l(&mu_);
    summary_.seconds = SecondsSince(t_start);
    summary_.has_before = state_.has_base_eval;
    summary_.eval_before = state_.base_eval_accuracy;
  }
  if (step < total) {  // stopped
    ZRL_RETURN_IF_ERROR(Checkpoint());
    SetState(zerorl::v1::RUN_STATE_STOPPED);
    return SaveState();
  }
  int64_t version;
  {
    absl::MutexLock l(&mu_);
    version = state_.policy_version;
  }
  if (every > 0 || oc.eval().prompts() > 0) {
    ZRL_ASSIGN_OR_RETURN(EvalResult final_eval, Evaluate(version));
    ZRL_RETURN_IF_ERROR(RecordFinalEval(total, final_eval));
    absl::MutexLock l(&mu_);
    summary_.has_after = true;
    summary_.eval_after = final_eval.greedy_accuracy;
  }
  ZRL_RETURN_IF_ERROR(Checkpoint());
  SetState(zerorl::v1::RUN_STATE_FINISHED);
  return SaveState();
}

zerorl::v1::RunInfo RunController::Info() const {
  zerorl::v1::RunInfo info;
  absl::MutexLock l(&mu_);
  info.set_run_id(config_.run_id());
  info.set_state(state_.state);
  info.set_step(state_.step);
  info.set_total_steps(config_.orchestrator().total_steps());
  info.set_policy_version(state_.policy_version);
  info.set_reward_spec_version(state_.reward_spec_version);
  *info.mutable_config() = config_;
  info.set_started_unix_ms(state_.started_unix_ms);
  info.set_updated_unix_ms(updated_unix_ms_);
  info.set_run_dir(config_.run_dir());
  info.set_error(state_.error);
  info.set_waiting_for(waiting_for_);
  if (!metrics_.empty()) {
    for (const auto& [k, v] : metrics_.back().values()) (*info.mutable_last_metrics())[k] = v;
  }
  info.set_buffer_address(config_.buffer().address());
  for (const auto& a : config_.reward().workers()) {
    info.set_reward_address(a);
    break;
  }
  info.set_learner_address(config_.learner().address());
  return info;
}

std::vector<zerorl::v1::StepMetrics> RunController::Metrics(int last) const {
  absl::MutexLock l(&mu_);
  if (last <= 0 || static_cast<size_t>(last) >= metrics_.size()) return metrics_;
  return std::vector<zerorl::v1::StepMetrics>(metrics_.end() - last, metrics_.end());
}

RunSummary RunController::Summary() const {
  absl::MutexLock l(&mu_);
  RunSummary s = summary_;
  s.has_before = state_.has_base_eval;
  s.eval_before = state_.base_eval_accuracy;
  return s;
}

}  // namespace zerorl
