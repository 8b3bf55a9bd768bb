// GrpoTrainer: sequences from groups, μ epochs of accumulated micro-batches,
// AdamW, router-bias update, checkpoint state (see grpo_trainer.h).
#include "learner/grpo_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/json.h"
#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/status.h"
#include "learner/grpo.h"
#include "model/safetensors.h"

namespace zerorl::learner {

struct GrpoTrainer::Seq {
  std::vector<int32_t> tokens;       // prompt + completion
  int32_t prompt_len = 0;            // P
  int32_t completion_len = 0;        // C
  std::vector<float> rollout_logp;   // [C] as the rollout reported them (may be empty)
  std::vector<float> old_logp;       // [C] policy at step start
  std::vector<float> ref_logp;       // [C] reference (β > 0)
  double advantage = 0, weight = 0;
};

TrainerOptions TrainerOptionsFromConfig(const zerorl::v1::RunConfig& c) {
  TrainerOptions o;
  o.grpo = c.learner().grpo();
  o.optimizer = c.learner().optimizer();
  o.max_new_tokens = c.rollout().sampling().max_new_tokens();
  o.total_steps = c.orchestrator().total_steps();
  o.seed = c.seed();
  return o;
}

absl::StatusOr<std::unique_ptr<GrpoTrainer>> GrpoTrainer::Create(std::unique_ptr<model::Model> policy,
                                                                 std::shared_ptr<const Tokenizer> tokenizer,
                                                                 const TrainerOptions& options) {
  if (!policy) return absl::InvalidArgumentError("GrpoTrainer needs a policy model");
  PolicyReplicas one;
  one.models.push_back(std::move(policy));
  return Create(std::move(one), std::move(tokenizer), options);
}

absl::StatusOr<std::unique_ptr<GrpoTrainer>> GrpoTrainer::Create(PolicyReplicas replicas,
                                                                 std::shared_ptr<const Tokenizer> tokenizer,
                                                                 const TrainerOptions& options) {
  const size_t R = replicas.models.size();
  if (R == 0) return absl::InvalidArgumentError("GrpoTrainer needs a policy model");
  for (const auto& m : replicas.models)
    if (!m) return absl::InvalidArgumentError("GrpoTrainer: a policy replica is null");
  if (R > 1 && replicas.reducers.size() != R)
    return absl::InvalidArgumentError(absl::StrCat("GrpoTrainer: ", R, " policy replicas need ", R,
                                                   " gradient reducers, got ", replicas.reducers.size()));
  if (options.grpo.epochs() < 1) return absl::InvalidArgumentError("learner.grpo.epochs must be >= 1");
  if (options.grpo.micro_batch() < 1) return absl::InvalidArgumentError("learner.grpo.micro_batch must be >= 1");
  std::unique_ptr<GrpoTrainer> t(new GrpoTrainer());
  t->options_ = options;
  t->tokenizer_ = std::move(tokenizer);
  t->policies_ = std::move(replicas.models);
  if (R > 1) t->reducers_ = std::move(replicas.reducers);
  model::AdamWConfig ac;
  ac.beta1 = static_cast<float>(options.optimizer.beta1());
  ac.beta2 = static_cast<float>(options.optimizer.beta2());
  ac.eps = static_cast<float>(options.optimizer.eps());
  ac.weight_decay = static_cast<float>(options.optimizer.weight_decay());
  for (size_t r = 0; r < R; ++r) {
    model::Model& p = *t->policies_[r];
    if (r > 0) {
      auto st = p.CopyWeightsFrom(*t->policies_[0]);
      if (!st.ok()) return Annotate(st, absl::StrCat("policy replica ", r));
    }
    if (options.grpo.beta() != 0) {
      ZRL_ASSIGN_OR_RETURN(auto ref, model::Model::Create(p.config(), 0, p.backend()));
      ZRL_RETURN_IF_ERROR(ref->CopyWeightsFrom(p));
      t->references_.push_back(std::move(ref));
    }
    t->adams_.push_back(std::make_unique<model::AdamW>(ac));
  }
  t->rng_.seed(options.seed);
  return t;
}

absl::Status GrpoTrainer::BuildSequences(const std::vector<zerorl::v1::Group>& groups, std::vector<Seq>* seqs,
                                         Metrics* m) const {
  const model::ModelConfig& cfg = policies_[0]->config();
  const auto& g = options_.grpo;
  std::vector<std::vector<double>> rewards;
  std::vector<std::vector<Seq>> kept_groups;
  double r_sum = 0, r_sq = 0, correct = 0, n = 0, len_sum = 0, len_max = 0, dropped = 0;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const zerorl::v1::Group& grp = groups[gi];
    if (grp.trajectories().empty()) return absl::InvalidArgumentError(absl::StrCat("group ", gi, " has no trajectories"));
    std::vector<int32_t> prompt(grp.prompt().token_ids().begin(), grp.prompt().token_ids().end());
    if (prompt.empty()) {
      if (!tokenizer_) return absl::InvalidArgumentError(absl::StrCat("group ", gi, " has no prompt token ids"));
      prompt = tokenizer_->EncodePrompt(grp.prompt().text());
    }
    if (prompt.empty()) return absl::InvalidArgumentError(absl::StrCat("group ", gi, " has an empty prompt"));
    std::vector<double> rs;
    std::vector<Seq> gs;
    for (int ti = 0; ti < grp.trajectories_size(); ++ti) {
      const zerorl::v1::Trajectory& tr = grp.trajectories(ti);
      Seq s;
      s.tokens = prompt;
      s.prompt_len = static_cast<int32_t>(prompt.size());
      s.tokens.insert(s.tokens.end(), tr.sample().token_ids().begin(), tr.sample().token_ids().end());
      s.completion_len = tr.sample().token_ids_size();
      if (static_cast<int64_t>(s.tokens.size()) > cfg.max_position_embeddings)
        return absl::InvalidArgumentError(absl::StrCat("group ", gi, " sample ", ti, " has ", s.tokens.size(),
                                                       " tokens, the model has ", cfg.max_position_embeddings,
                                                       " positions"));
      for (int32_t t : s.tokens)
        if (t < 0 || t >= cfg.vocab_size)
          return absl::InvalidArgumentError(
              absl::StrCat("group ", gi, " sample ", ti, " has token ", t, " outside the vocabulary"));
      if (tr.sample().logprobs_size() == s.completion_len)
        s.rollout_logp.assign(tr.sample().logprobs().begin(), tr.sample().logprobs().end());
      double r = tr.reward().reward();
      if (g.overlong().enabled())
        r += grpo::OverlongPenalty(s.completion_len, options_.max_new_tokens, g.overlong().buffer_tokens(),
                                   g.overlong().penalty());
      rs.push_back(r);
      r_sum += tr.reward().reward();
      r_sq += tr.reward().reward() * tr.reward().reward();
      correct += tr.reward().correct() ? 1 : 0;
      len_sum += s.completion_len;
      len_max = std::max<double>(len_max, s.completion_len);
      n += 1;
      gs.push_back(std::move(s));
    }
    if (g.dynamic_sampling() && grpo::GroupIsUniform(rs)) {
      dropped += 1;
      continue;
    }
    rewards.push_back(std::move(rs));
    kept_groups.push_back(std::move(gs));
  }
  if (groups.empty()) return absl::InvalidArgumentError("training step has no groups");
  const double mean = r_sum / n;
  (*m)["reward_mean"] = mean;
  (*m)["reward_std"] = std::sqrt(std::max(0.0, r_sq / n - mean * mean));
  (*m)["accuracy"] = correct / n;
  (*m)["completion_len_mean"] = len_sum / n;
  (*m)["completion_len_max"] = len_max;
  (*m)["dynamic_sampling_dropped_frac"] = dropped / static_cast<double>(groups.size());
  (*m)["groups"] = static_cast<double>(groups.size());
  if (kept_groups.empty()) return absl::OkStatus();
  grpo::AdvantageOptions ao;
  ao.std_normalize = g.std_normalize();
  ao.batch_normalize = g.batch_normalize();
  ao.eps = g.adv_eps();
  ZRL_ASSIGN_OR_RETURN(auto adv, grpo::GroupAdvantages(rewards, ao));
  for (size_t gi = 0; gi < kept_groups.size(); ++gi)
    for (size_t i = 0; i < kept_groups[gi].size(); ++i) {
      kept_groups[gi][i].advantage = adv[gi][i];
      seqs->push_back(std::move(kept_groups[gi][i]));
    }
  return absl::OkStatus();
}

absl::StatusOr<Metrics> GrpoTrainer::Step(const std::vector<zerorl::v1::Group>& groups) {
  const auto t0 = std::chrono::steady_clock::now();
  Metrics m;
  std::vector<Seq> seqs;
  ZRL_RETURN_IF_ERROR(BuildSequences(groups, &seqs, &m));
  const auto& g = options_.grpo;
  const auto& o = options_.optimizer;
  model::LrSchedule sched;
  sched.peak_lr = static_cast<float>(o.lr());
  sched.warmup_steps = o.warmup_steps();
  sched.total_steps = std::max<int64_t>(options_.total_steps, 1);
  sched.min_lr_ratio = o.cosine() ? static_cast<float>(o.min_lr_ratio()) : 1.0f;
  const float lr = sched.LrAt(step_);
  m["lr"] = lr;
  if (seqs.empty()) {
    m["skipped"] = 1;
    ++step_;
    return m;
  }

  grpo::LossOptions lo;
  lo.clip_low = g.clip_low();
  lo.clip_high = g.clip_high();
  lo.beta = g.beta();
  lo.aggregation = grpo::AggregationFromProto(g.loss_aggregation());
  lo.max_new_tokens = options_.max_new_tokens;
  std::vector<int> lengths;
  for (const Seq& s : seqs) lengths.push_back(s.completion_len);
  ZRL_ASSIGN_OR_RETURN(std::vector<double> w, grpo::SequenceWeights(lengths, lo));
  for (size_t i = 0; i < seqs.size(); ++i) seqs[i].weight = w[i];

  // Per-rank sums over the whole step, merged in rank order at the end (with
  // one rank the merge adds to zero, so the single-replica numbers are exact).
  struct RankSums {
    grpo::LossSums first_epoch, all_epochs;
    double entropy = 0, gap_sum = 0, gap_max = 0, gap_n = 0, tokens_processed = 0;
    float balance_loss = 0;
    std::vector<std::vector<int64_t>> loads;  // [layer][expert], first epoch
  };
  const int R = ranks();
  std::vector<RankSums> acc(R);
  std::vector<std::vector<model::TensorRef>> params(R);
  for (int r = 0; r < R; ++r) params[r] = policies_[r]->Parameters();
  std::vector<float> grad_norms(R, 0.f);
  std::vector<size_t> order(seqs.size());
  const size_t mb = static_cast<size_t>(g.micro_batch());
  model::TrainOptions topt;
  topt.balance_alpha = static_cast<float>(g.balance_loss_alpha());

  // One micro-batch, sequences order[start, start + B), on rank r.
  auto micro_batch = [&](int r, int epoch, size_t start, size_t B) -> absl::Status {
    model::Model& policy = *policies_[r];
    model::Model* reference = references_.empty() ? nullptr : references_[r].get();
    RankSums& a = acc[r];
    model::TrainBatch batch;
    batch.B = static_cast<int64_t>(B);
    for (size_t b = 0; b < B; ++b) batch.T = std::max<int64_t>(batch.T, seqs[order[start + b]].tokens.size());
    batch.tokens.assign(batch.B * batch.T, 0);
    for (size_t b = 0; b < B; ++b) {
      const Seq& s = seqs[order[start + b]];
      std::copy(s.tokens.begin(), s.tokens.end(), batch.tokens.begin() + b * batch.T);
      batch.lengths.push_back(static_cast<int32_t>(s.tokens.size()));
    }
    const int64_t Tm1 = batch.T - 1;
    if (epoch == 0 && reference) {
      model::TrainOutput ref_out;
      ZRL_RETURN_IF_ERROR(reference->TrainForward(batch, {}, &ref_out));
      for (size_t b = 0; b < B; ++b) {
        Seq& s = seqs[order[start + b]];
        const float* row = ref_out.logp.data() + b * Tm1 + (s.prompt_len - 1);
        s.ref_logp.assign(row, row + s.completion_len);
      }
    }
    model::TrainOptions to = topt;
    to.entropy = epoch == 0;
    model::TrainOutput out;
    ZRL_RETURN_IF_ERROR(policy.TrainForward(batch, to, &out));
    a.tokens_processed += std::accumulate(batch.lengths.begin(), batch.lengths.end(), 0.0);
    if (epoch == 0) {
      a.balance_loss += out.balance_loss;
      const auto& el = policy.ExpertLoads();
      if (a.loads.empty()) a.loads.assign(el.size(), {});
      for (size_t l = 0; l < el.size(); ++l) {
        if (a.loads[l].empty()) a.loads[l].assign(el[l].size(), 0);
        for (size_t e = 0; e < el[l].size(); ++e) a.loads[l][e] += el[l][e];
      }
    }
    std::vector<grpo::SequenceView> views;
    std::vector<float> dlogp(batch.B * Tm1, 0.f);
    std::vector<float*> drows;
    for (size_t b = 0; b < B; ++b) {
      Seq& s = seqs[order[start + b]];
      const float* row = out.logp.data() + b * Tm1 + (s.prompt_len - 1);
      if (epoch == 0) {
        s.old_logp.assign(row, row + s.completion_len);
        for (int t = 0; t < s.completion_len; ++t) a.entropy += out.entropy[b * Tm1 + s.prompt_len - 1 + t];
        if (!s.rollout_logp.empty())
          for (int t = 0; t < s.completion_len; ++t) {
            const double d = std::fabs(static_cast<double>(s.old_logp[t]) - s.rollout_logp[t]);
            a.gap_sum += d;
            a.gap_max = std::max(a.gap_max, d);
            a.gap_n += 1;
          }
      }
      views.push_back({row, s.old_logp.data(), reference ? s.ref_logp.data() : nullptr, s.completion_len,
                       s.advantage, s.weight});
      drows.push_back(dlogp.data() + b * Tm1 + (s.prompt_len - 1));
    }
    ZRL_ASSIGN_OR_RETURN(grpo::LossSums sums, grpo::TokenLoss(views, lo, drows));
    if (epoch == 0) a.first_epoch.Add(sums);
    a.all_epochs.Add(sums);
    return policy.TrainBackward(dlogp.data());
  };

  for (int epoch = 0; epoch < g.epochs(); ++epoch) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng_);
    // Micro-batch j (sequences order[j*mb, ...)) runs on rank j mod R.
    ZRL_RETURN_IF_ERROR(RunOnRanks(R, [&](int r) -> absl::Status {
      policies_[r]->ZeroGrad();
      for (size_t start = r * mb; start < order.size(); start += R * mb)
        ZRL_RETURN_IF_ERROR(micro_batch(r, epoch, start, std::min(mb, order.size() - start)));
      return absl::OkStatus();
    }));
    if (R > 1)
      ZRL_RETURN_IF_ERROR(RunOnRanks(R, [&](int r) {
        return reducers_[r]->AllReduceSum(policies_[r]->grad_data(), policies_[r]->NumParams());
      }));
    ZRL_RETURN_IF_ERROR(RunOnRanks(R, [&](int r) -> absl::Status {
      grad_norms[r] = model::ClipGradNorm(params[r], static_cast<float>(o.grad_clip()));
      if (!std::isfinite(grad_norms[r]))
        return absl::InternalError(absl::StrCat("non-finite gradient norm at step ", step_, " epoch ", epoch,
                                                R > 1 ? absl::StrCat(" (rank ", r, ")") : std::string()));
      return adams_[r]->Step(params[r], lr);
    }));
  }
  RankSums sum;
  for (const RankSums& a : acc) {
    sum.first_epoch.Add(a.first_epoch);
    sum.all_epochs.Add(a.all_epochs);
    sum.entropy += a.entropy;
    sum.gap_sum += a.gap_sum;
    sum.gap_max = std::max(sum.gap_max, a.gap_max);
    sum.gap_n += a.gap_n;
    sum.tokens_processed += a.tokens_processed;
    sum.balance_loss += a.balance_loss;
    if (sum.loads.size() < a.loads.size()) sum.loads.resize(a.loads.size());
    for (size_t l = 0; l < a.loads.size(); ++l) {
      if (sum.loads[l].size() < a.loads[l].size()) sum.loads[l].resize(a.loads[l].size(), 0);
      for (size_t e = 0; e < a.loads[l].size(); ++e) sum.loads[l][e] += a.loads[l][e];
    }
  }
  for (auto& p : policies_) p->ZeroGrad();
  UpdateRouterBias(sum.loads, &m);
  staging_stale_ = true;
  ++step_;
  ++version_;

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const grpo::LossSums& first_epoch = sum.first_epoch;
  const grpo::LossSums& all_epochs = sum.all_epochs;
  m["loss"] = first_epoch.loss;
  m["pg_loss"] = first_epoch.pg_loss;
  m["kl"] = first_epoch.kl;
  m["clip_frac"] = all_epochs.tokens > 0 ? all_epochs.clipped / all_epochs.tokens : 0;
  m["ratio_max"] = all_epochs.ratio_max;
  m["entropy"] = first_epoch.tokens > 0 ? sum.entropy / first_epoch.tokens : 0;
  m["grad_norm"] = grad_norms[0];
  m["balance_loss"] = sum.balance_loss;
  m["train_rollout_logprob_gap"] = sum.gap_n > 0 ? sum.gap_sum / sum.gap_n : 0;
  m["train_rollout_logprob_gap_max"] = sum.gap_max;
  m["completion_tokens"] = first_epoch.tokens;
  m["tokens_per_s"] = sum.tokens_processed / secs;
  m["step_seconds"] = secs;
  m["policy_version"] = static_cast<double>(version_);
  return m;
}

void GrpoTrainer::UpdateRouterBias(const std::vector<std::vector<int64_t>>& loads, Metrics* m) {
  const float gamma = static_cast<float>(options_.grpo.router_bias_gamma());
  double worst = 0;
  std::vector<float> host;  // a device policy's bias, staged
  for (size_t l = 0; l < loads.size(); ++l) {
    if (loads[l].empty()) continue;
    const double mean = std::accumulate(loads[l].begin(), loads[l].end(), 0.0) / loads[l].size();
    const double mx = static_cast<double>(*std::max_element(loads[l].begin(), loads[l].end()));
    const double ratio = mean > 0 ? mx / mean : 0;
    (*m)[absl::StrCat("expert_load_max_over_mean_l", l)] = ratio;
    worst = std::max(worst, ratio);
    if (gamma == 0) continue;
    const std::string name = absl::StrCat("model.layers.", l, ".mlp.gate.e_score_correction_bias");
    for (auto& policy : policies_) {  // every replica moves its bias the same way
      for (const model::TensorRef& t : policy->Parameters()) {
        if (t.name != name) continue;
        float* bias = t.data;
        if (!policy->on_host()) {
          host.resize(static_cast<size_t>(t.size));
          policy->DownloadTensor(t, host.data());
          bias = host.data();
        }
        for (int64_t e = 0; e < t.size && e < static_cast<int64_t>(loads[l].size()); ++e) {
          const double d = mean - static_cast<double>(loads[l][e]);
          bias[e] += gamma * static_cast<float>((d > 0) - (d < 0));
        }
        if (!policy->on_host()) policy->UploadTensor(t, host.data());
      }
    }
  }
  (*m)["expert_load_max_over_mean"] = worst;
}

std::vector<WeightTensor> GrpoTrainer::WeightTensors() {
  model::Model& p = policy();
  std::vector<WeightTensor> out;
  const std::vector<model::TensorRef> params = p.Parameters();
  if (p.on_host()) {
    for (const model::TensorRef& t : params) out.push_back({t.name, t.shape, t.data, t.size});
    return out;
  }
  // Device policy: one download of the whole parameter buffer per step (the
  // tensors lie in it in Parameters() order), views into the host copy.
  if (staging_stale_ || staging_.size() != static_cast<size_t>(p.NumParams())) {
    staging_.resize(static_cast<size_t>(p.NumParams()));
    p.DownloadParams(staging_.data());
    staging_stale_ = false;
  }
  for (const model::TensorRef& t : params) {
    const int64_t off = t.data - p.param_data();
    out.push_back({t.name, t.shape, staging_.data() + off, t.size});
  }
  return out;
}

namespace {

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

absl::Status GrpoTrainer::Save(const std::string& dir, const std::string& data_cursor) const {
  ZRL_RETURN_IF_ERROR(policies_[0]->Save(dir, model::DType::kF32));
  if (!references_.empty()) {
    model::Model& ref = *references_[0];
    const std::vector<model::TensorRef> params = ref.Parameters();
    std::vector<float> host;  // a device reference's weights, downloaded
    if (!ref.on_host()) {
      host.resize(static_cast<size_t>(ref.NumParams()));
      ref.DownloadParams(host.data());
    }
    std::vector<model::SafetensorsTensor> ts;
    for (const model::TensorRef& t : params)
      ts.push_back({t.name, t.shape, ref.on_host() ? t.data : host.data() + (t.data - ref.param_data())});
    ZRL_RETURN_IF_ERROR(model::WriteSafetensors(dir + "/reference.safetensors", ts, model::DType::kF32));
  }
  ZRL_RETURN_IF_ERROR(WriteText(dir + "/optimizer.bin", adams_[0]->SerializeState()));
  std::ostringstream rng;
  rng << rng_;
  nlohmann::json st = {{"step", step_}, {"policy_version", version_}, {"data_cursor", data_cursor},
                       {"rng", rng.str()}};
  return WriteText(dir + "/trainer_state.json", st.dump(2));
}

absl::StatusOr<std::string> GrpoTrainer::Restore(const std::string& dir) {
  ZRL_ASSIGN_OR_RETURN(model::ModelConfig cfg, model::LoadModelConfig(dir + "/config.json"));
  if (cfg.ToJson() != policies_[0]->config().ToJson())
    return absl::FailedPreconditionError(absl::StrCat("checkpoint ", dir, " holds a different model config"));
  ZRL_ASSIGN_OR_RETURN(std::string state_text, ReadFile(dir + "/trainer_state.json"));
  nlohmann::json st = CheckJsonDepth(state_text).ok() ? nlohmann::json::parse(state_text, nullptr, false)
                                                      : nlohmann::json(nlohmann::json::value_t::discarded);
  if (st.is_discarded() || !st.contains("step") || !st.contains("rng"))
    return absl::DataLossError(absl::StrCat(dir, "/trainer_state.json is corrupt"));
  ZRL_ASSIGN_OR_RETURN(auto reader, model::SafetensorsReader::Open(dir + "/model.safetensors"));
  ZRL_RETURN_IF_ERROR(policies_[0]->LoadWeights(*reader));
  for (size_t r = 1; r < policies_.size(); ++r) ZRL_RETURN_IF_ERROR(policies_[r]->CopyWeightsFrom(*policies_[0]));
  if (!references_.empty()) {
    ZRL_ASSIGN_OR_RETURN(auto ref_reader, model::SafetensorsReader::Open(dir + "/reference.safetensors"));
    ZRL_RETURN_IF_ERROR(references_[0]->LoadWeights(*ref_reader));
    for (size_t r = 1; r < references_.size(); ++r)
      ZRL_RETURN_IF_ERROR(references_[r]->CopyWeightsFrom(*references_[0]));
  }
  ZRL_ASSIGN_OR_RETURN(std::string opt, ReadFile(dir + "/optimizer.bin"));
  for (auto& adam : adams_) ZRL_RETURN_IF_ERROR(adam->RestoreState(opt));
  staging_stale_ = true;
  std::istringstream rng(st["rng"].get<std::string>());
  rng >> rng_;
  step_ = st["step"].get<int64_t>();
  version_ = st["policy_version"].get<int64_t>();
  return st.value("data_cursor", std::string());
}

}  // namespace zerorl::learner
