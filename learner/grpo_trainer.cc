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
#include "model/routing_record.h"
#include "model/safetensors.h"
#include "weights/model_weights.h"

namespace zerorl::learner {

struct GrpoTrainer::Seq {
  std::vector<int32_t> tokens;       // prompt + completion
  int32_t prompt_len = 0;            // P
  int32_t completion_len = 0;        // C
  std::vector<float> rollout_logp;   // [C] as the rollout reported them (may be empty)
  std::vector<float> old_logp;       // [C] policy at step start
  std::vector<float> ref_logp;       // [C] reference (β > 0)
  std::vector<double> is_weight;     // [C] off-policy correction ω (empty: none)
  // Routing replay: [P + C - 1, moe_layers, K] expert ids the rollout routed
  // the fed tokens to; empty: the policy routes this sequence itself.
  std::vector<int32_t> routes;
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
  const grpo::IsCorrection is = grpo::IsCorrectionFromProto(options.grpo.is_correction());
  if (is != grpo::IsCorrection::kNone && !(options.grpo.is_cap() > 0))
    return absl::InvalidArgumentError(
        absl::StrCat("learner.grpo.is_cap must be > 0 with an is_correction, got ", options.grpo.is_cap()));
  const double low = options.grpo.is_mask_low();
  if (is == grpo::IsCorrection::kMis && !(low >= 0 && low < options.grpo.is_cap()))
    return absl::InvalidArgumentError(absl::StrCat(
        "learner.grpo.is_mask_low must be in [0, is_cap) with is_correction: mis, got ", low));
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

// The rollout's logprobs are the behaviour policy of the off-policy
// correction: with one on, every sample must carry one finite logprob per
// completion token. Without one they only feed the mismatch diagnostics, and
// a sample whose logprobs are unusable is left out of those.
absl::Status GrpoTrainer::CheckRolloutLogprobs(size_t group, int sample, int reported, Seq* s) const {
  const bool needed = grpo::IsCorrectionFromProto(options_.grpo.is_correction()) != grpo::IsCorrection::kNone;
  const auto where = [&] { return absl::StrCat("group ", group, " sample ", sample); };
  if (needed && reported != s->completion_len)
    return absl::InvalidArgumentError(absl::StrCat(where(), " has ", reported, " rollout logprobs for ",
                                                    s->completion_len, " completion tokens; ",
                                                    "learner.grpo.is_correction needs one per token"));
  for (size_t t = 0; t < s->rollout_logp.size(); ++t) {
    if (std::isfinite(s->rollout_logp[t])) continue;
    if (needed)
      return absl::InvalidArgumentError(absl::StrCat(where(), " token ", t, " has a non-finite rollout logprob (",
                                                     s->rollout_logp[t], "); ",
                                                     "learner.grpo.is_correction needs finite ones"));
    s->rollout_logp.clear();
    break;
  }
  return absl::OkStatus();
}

absl::Status GrpoTrainer::BuildSequences(const std::vector<zerorl::v1::Group>& groups, std::vector<Seq>* seqs,
                                         Metrics* m) const {
  const model::ModelConfig& cfg = policies_[0]->config();
  const auto& g = options_.grpo;
  std::vector<std::vector<double>> rewards;
  std::vector<std::vector<Seq>> kept_groups;
  double r_sum = 0, r_sq = 0, correct = 0, n = 0, len_sum = 0, len_max = 0, dropped = 0, no_routing = 0;
  const bool replay = g.routing_replay() && model::MoeLayerCount(cfg) > 0;
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
      ZRL_RETURN_IF_ERROR(CheckRolloutLogprobs(gi, ti, tr.sample().logprobs_size(), &s));
      if (replay && s.completion_len > 0) {
        // A sample without a record (generated before routing_replay was
        // switched on) is routed by the policy itself and counted; a record
        // that does not fit this model or sequence is refused.
        const zerorl::v1::RoutingRecord& rec = tr.sample().routing();
        if (rec.tokens() == 0 && rec.expert_ids().empty()) {
          no_routing += 1;
        } else {
          auto routes = model::UnpackRoutingRecord(rec, cfg, s.prompt_len + s.completion_len - 1);
          if (!routes.ok())
            return absl::InvalidArgumentError(absl::StrCat(
                "group ", gi, " sample ", ti, " (", tr.id().run_id(), "/", tr.id().step(), "/", tr.id().group(), "/",
                tr.id().sample(), "): ", routes.status().message()));
          s.routes = *std::move(routes);
        }
      }
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
  if (replay) (*m)["routing_replay_missing"] = no_routing;
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

// One rank's sums over a whole step, merged in rank order at the end (with
// one rank the merge adds to zero, so the single-replica numbers are exact).
struct GrpoTrainer::RankSums {
  grpo::LossSums first_epoch, all_epochs;
  double entropy = 0, gap_sum = 0, gap_max = 0, gap_n = 0, tokens_processed = 0;
  grpo::MismatchSums mismatch;  // rollout vs step-start logprobs, off-policy correction counts
  float balance_loss = 0;
  std::vector<std::vector<int64_t>> loads;  // [layer][expert], first epoch
  int64_t replayed_routes = 0, mismatched_routes = 0;  // routing replay, first epoch
};

// What the phases of one Step share. Rank r's threads touch only the [r]
// entries and the sequences of their own micro-batches.
struct GrpoTrainer::StepState {
  std::vector<Seq> seqs;                              // the step's sequences (kept groups)
  float lr = 0;                                       // this step's scheduled learning rate
  grpo::LossOptions loss;                             // clip range, β, aggregation
  grpo::IsOptions is;                                 // off-policy correction
  model::TrainOptions train;                          // balance-loss α (entropy: per epoch)
  std::vector<size_t> order;                          // [seqs] this epoch's seeded shuffle
  std::vector<std::vector<model::TensorRef>> params;  // [rank] the replica's parameters
  std::vector<RankSums> sums;                         // [rank]
  std::vector<float> grad_norms;                      // [rank] of the last epoch
};

// One micro-batch in flight on one rank.
struct GrpoTrainer::MicroBatch {
  int rank = 0, epoch = 0;
  std::vector<Seq*> seqs;    // [B] into StepState::seqs
  model::TrainBatch batch;   // [B, T] right-padded prompt + completion ids
  model::TrainOutput out;    // the policy's logp / entropy, [B, T-1]
  std::vector<float> dlogp;  // [B, T-1] dloss/dlogp
  int64_t Tm1() const { return batch.T - 1; }
  // Offset of sequence b's first completion position in a [B, T-1] array.
  int64_t CompletionRow(size_t b) const { return static_cast<int64_t>(b) * Tm1() + (seqs[b]->prompt_len - 1); }
};

// A step reads top-down: sequences and advantages from the groups, the
// scheduled LR, loss weights, μ epochs of micro-batches (each ending in one
// optimizer update), then the router-bias update and the step's metrics.
absl::StatusOr<Metrics> GrpoTrainer::Step(const std::vector<zerorl::v1::Group>& groups) {
  const auto t0 = std::chrono::steady_clock::now();
  Metrics m;
  StepState st;
  ZRL_RETURN_IF_ERROR(BuildSequences(groups, &st.seqs, &m));
  st.lr = ScheduledLr();
  m["lr"] = st.lr;
  if (st.seqs.empty()) {
    m["skipped"] = 1;
    ++step_;
    return m;
  }
  ZRL_RETURN_IF_ERROR(PrepareStep(&st));
  for (int epoch = 0; epoch < options_.grpo.epochs(); ++epoch) ZRL_RETURN_IF_ERROR(TrainEpoch(epoch, &st));
  const RankSums sum = MergeRanks(st.sums);
  FinishStep(sum, &m);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ReportStepMetrics(sum, st.grad_norms[0], secs, &m);
  return m;
}

// The learning rate of the current step (warmup, then cosine when configured).
float GrpoTrainer::ScheduledLr() const {
  const auto& o = options_.optimizer;
  model::LrSchedule sched;
  sched.peak_lr = static_cast<float>(o.lr());
  sched.warmup_steps = o.warmup_steps();
  sched.total_steps = std::max<int64_t>(options_.total_steps, 1);
  sched.min_lr_ratio = o.cosine() ? static_cast<float>(o.min_lr_ratio()) : 1.0f;
  return sched.LrAt(step_);
}

// Loss options, every sequence's loss weight, and the per-rank state.
absl::Status GrpoTrainer::PrepareStep(StepState* st) const {
  const auto& g = options_.grpo;
  grpo::LossOptions& lo = st->loss;
  lo.clip_low = g.clip_low();
  lo.clip_high = g.clip_high();
  lo.beta = g.beta();
  lo.aggregation = grpo::AggregationFromProto(g.loss_aggregation());
  lo.max_new_tokens = options_.max_new_tokens;
  st->is.correction = grpo::IsCorrectionFromProto(g.is_correction());
  st->is.level = grpo::IsLevelFromProto(g.is_level());
  st->is.cap = g.is_cap();
  st->is.mask_low = g.is_mask_low();
  std::vector<int> lengths;
  for (const Seq& s : st->seqs) lengths.push_back(s.completion_len);
  ZRL_ASSIGN_OR_RETURN(std::vector<double> w, grpo::SequenceWeights(lengths, lo));
  for (size_t i = 0; i < st->seqs.size(); ++i) st->seqs[i].weight = w[i];
  st->train.balance_alpha = static_cast<float>(g.balance_loss_alpha());

  const int R = ranks();
  st->order.resize(st->seqs.size());
  st->params.resize(R);
  for (int r = 0; r < R; ++r) st->params[r] = policies_[r]->Parameters();
  st->sums.resize(R);
  st->grad_norms.assign(R, 0.f);
  return absl::OkStatus();
}

// One epoch: a fresh seeded shuffle, every rank's micro-batches, the gradient
// sum across ranks, then clipping and one AdamW update on every rank.
absl::Status GrpoTrainer::TrainEpoch(int epoch, StepState* st) {
  std::iota(st->order.begin(), st->order.end(), 0);
  std::shuffle(st->order.begin(), st->order.end(), rng_);
  ZRL_RETURN_IF_ERROR(AccumulateGradients(epoch, st));
  ZRL_RETURN_IF_ERROR(AllReduceGradients());
  return ClipAndUpdate(epoch, st);
}

// Micro-batch j (sequences order[j*mb, ...)) runs on rank j mod R; each rank
// runs its micro-batches in order on its own thread, accumulating gradients.
absl::Status GrpoTrainer::AccumulateGradients(int epoch, StepState* st) {
  const int R = ranks();
  const size_t mb = static_cast<size_t>(options_.grpo.micro_batch());
  const size_t n = st->order.size();
  return RunOnRanks(R, [&](int r) -> absl::Status {
    policies_[r]->ZeroGrad();
    for (size_t start = r * mb; start < n; start += R * mb) {
      MicroBatch batch;
      batch.rank = r;
      batch.epoch = epoch;
      for (size_t i = start; i < std::min(n, start + mb); ++i) batch.seqs.push_back(&st->seqs[st->order[i]]);
      ZRL_RETURN_IF_ERROR(RunMicroBatch(&batch, st));
    }
    return absl::OkStatus();
  });
}

// One micro-batch: the reference's logprobs (first epoch, β > 0), the
// policy's forward, the old logprobs (first epoch), the token loss and its
// gradient, the backward pass into the rank's gradients.
absl::Status GrpoTrainer::RunMicroBatch(MicroBatch* mb, StepState* st) {
  PackBatch(mb);
  if (mb->epoch == 0 && !references_.empty()) ZRL_RETURN_IF_ERROR(ReferenceLogprobs(mb));
  ZRL_RETURN_IF_ERROR(PolicyForward(mb, st));
  if (mb->epoch == 0) ZRL_RETURN_IF_ERROR(RecordOldLogprobs(*mb, st->is, &st->sums[mb->rank]));
  ZRL_RETURN_IF_ERROR(TokenLossGradient(mb, st));
  return policies_[mb->rank]->TrainBackward(mb->dlogp.data());
}

// The micro-batch's sequences as one [B, T] token block, T the longest.
void GrpoTrainer::PackBatch(MicroBatch* mb) {
  model::TrainBatch& batch = mb->batch;
  const size_t B = mb->seqs.size();
  batch.B = static_cast<int64_t>(B);
  for (size_t b = 0; b < B; ++b) batch.T = std::max<int64_t>(batch.T, mb->seqs[b]->tokens.size());
  batch.tokens.assign(batch.B * batch.T, 0);
  for (size_t b = 0; b < B; ++b) {
    const Seq& s = *mb->seqs[b];
    std::copy(s.tokens.begin(), s.tokens.end(), batch.tokens.begin() + b * batch.T);
    batch.lengths.push_back(static_cast<int32_t>(s.tokens.size()));
  }
  // Routing replay: the recorded experts of each sequence's fed tokens; the
  // last token, padding and sequences without a record route themselves (-1).
  size_t per_token = 0;
  for (const Seq* s : mb->seqs)
    if (!s->routes.empty()) per_token = s->routes.size() / (s->tokens.size() - 1);
  if (per_token == 0) return;
  batch.routed_experts.assign(batch.B * batch.T * per_token, -1);
  for (size_t b = 0; b < B; ++b) {
    const std::vector<int32_t>& r = mb->seqs[b]->routes;
    std::copy(r.begin(), r.end(), batch.routed_experts.begin() + b * batch.T * per_token);
  }
}

// The frozen reference's logprobs of each completion (Seq::ref_logp).
absl::Status GrpoTrainer::ReferenceLogprobs(MicroBatch* mb) {
  model::TrainOutput ref_out;
  ZRL_RETURN_IF_ERROR(references_[mb->rank]->TrainForward(mb->batch, {}, &ref_out));
  for (size_t b = 0; b < mb->seqs.size(); ++b) {
    Seq& s = *mb->seqs[b];
    const float* row = ref_out.logp.data() + mb->CompletionRow(b);
    s.ref_logp.assign(row, row + s.completion_len);
  }
  return absl::OkStatus();
}

// The policy's forward (entropy in the first epoch); counts the tokens and,
// in the first epoch, the balance loss and the expert loads.
absl::Status GrpoTrainer::PolicyForward(MicroBatch* mb, StepState* st) {
  model::Model& policy = *policies_[mb->rank];
  RankSums& a = st->sums[mb->rank];
  model::TrainOptions to = st->train;
  to.entropy = mb->epoch == 0;
  ZRL_RETURN_IF_ERROR(policy.TrainForward(mb->batch, to, &mb->out));
  a.tokens_processed += std::accumulate(mb->batch.lengths.begin(), mb->batch.lengths.end(), 0.0);
  if (mb->epoch == 0) {
    a.balance_loss += mb->out.balance_loss;
    a.replayed_routes += mb->out.replayed_routes;
    a.mismatched_routes += mb->out.mismatched_routes;
    const auto& el = policy.ExpertLoads();
    if (a.loads.empty()) a.loads.assign(el.size(), {});
    for (size_t l = 0; l < el.size(); ++l) {
      if (a.loads[l].empty()) a.loads[l].assign(el[l].size(), 0);
      for (size_t e = 0; e < el[l].size(); ++e) a.loads[l][e] += el[l][e];
    }
  }
  return absl::OkStatus();
}

// First epoch: the policy's logprobs before any update become the "old"
// logprobs; sums their entropy and their gap to the rollout's logprobs, and
// sets the off-policy correction weights ω = f(π_old / π_rollout), fixed for
// the step's epochs.
absl::Status GrpoTrainer::RecordOldLogprobs(const MicroBatch& mb, const grpo::IsOptions& is, RankSums* a) {
  for (size_t b = 0; b < mb.seqs.size(); ++b) {
    Seq& s = *mb.seqs[b];
    const float* row = mb.out.logp.data() + mb.CompletionRow(b);
    s.old_logp.assign(row, row + s.completion_len);
    for (int t = 0; t < s.completion_len; ++t) a->entropy += mb.out.entropy[mb.CompletionRow(b) + t];
    if (!s.rollout_logp.empty())
      for (int t = 0; t < s.completion_len; ++t) {
        const double d = std::fabs(static_cast<double>(s.old_logp[t]) - s.rollout_logp[t]);
        a->gap_sum += d;
        a->gap_max = std::max(a->gap_max, d);
        a->gap_n += 1;
      }
    if (s.rollout_logp.empty()) continue;  // only possible without a correction (CheckRolloutLogprobs)
    s.is_weight.resize(s.completion_len);
    ZRL_RETURN_IF_ERROR(grpo::RolloutCorrection(s.old_logp.data(), s.rollout_logp.data(), s.completion_len, is,
                                                s.is_weight.data(), &a->mismatch));
    if (is.correction == grpo::IsCorrection::kNone) s.is_weight.clear();
  }
  return absl::OkStatus();
}

// The GRPO token loss against the old (and reference) logprobs; writes
// dloss/dlogp into mb->dlogp and adds the loss sums.
absl::Status GrpoTrainer::TokenLossGradient(MicroBatch* mb, StepState* st) const {
  const bool with_reference = !references_.empty();
  mb->dlogp.assign(mb->batch.B * mb->Tm1(), 0.f);
  std::vector<grpo::SequenceView> views;
  std::vector<float*> drows;
  for (size_t b = 0; b < mb->seqs.size(); ++b) {
    const Seq& s = *mb->seqs[b];
    views.push_back({mb->out.logp.data() + mb->CompletionRow(b), s.old_logp.data(),
                     with_reference ? s.ref_logp.data() : nullptr, s.completion_len, s.advantage, s.weight,
                     s.is_weight.empty() ? nullptr : s.is_weight.data()});
    drows.push_back(mb->dlogp.data() + mb->CompletionRow(b));
  }
  ZRL_ASSIGN_OR_RETURN(grpo::LossSums sums, grpo::TokenLoss(views, st->loss, drows));
  RankSums& a = st->sums[mb->rank];
  if (mb->epoch == 0) a.first_epoch.Add(sums);
  a.all_epochs.Add(sums);
  return absl::OkStatus();
}

// Data parallel: every rank's gradient becomes the sum over ranks.
absl::Status GrpoTrainer::AllReduceGradients() {
  const int R = ranks();
  if (R == 1) return absl::OkStatus();
  return RunOnRanks(R, [&](int r) {
    return reducers_[r]->AllReduceSum(policies_[r]->grad_data(), policies_[r]->NumParams());
  });
}

// Every rank clips its (identical) gradient and takes one AdamW step.
absl::Status GrpoTrainer::ClipAndUpdate(int epoch, StepState* st) {
  const int R = ranks();
  return RunOnRanks(R, [&](int r) -> absl::Status {
    st->grad_norms[r] = model::ClipGradNorm(st->params[r], static_cast<float>(options_.optimizer.grad_clip()));
    if (!std::isfinite(st->grad_norms[r]))
      return absl::InternalError(absl::StrCat("non-finite gradient norm at step ", step_, " epoch ", epoch,
                                              R > 1 ? absl::StrCat(" (rank ", r, ")") : std::string()));
    return adams_[r]->Step(st->params[r], st->lr);
  });
}

// The ranks' sums added in rank order.
GrpoTrainer::RankSums GrpoTrainer::MergeRanks(const std::vector<RankSums>& per_rank) {
  RankSums sum;
  for (const RankSums& a : per_rank) {
    sum.first_epoch.Add(a.first_epoch);
    sum.all_epochs.Add(a.all_epochs);
    sum.entropy += a.entropy;
    sum.gap_sum += a.gap_sum;
    sum.gap_max = std::max(sum.gap_max, a.gap_max);
    sum.gap_n += a.gap_n;
    sum.mismatch.Add(a.mismatch);
    sum.tokens_processed += a.tokens_processed;
    sum.balance_loss += a.balance_loss;
    sum.replayed_routes += a.replayed_routes;
    sum.mismatched_routes += a.mismatched_routes;
    if (sum.loads.size() < a.loads.size()) sum.loads.resize(a.loads.size());
    for (size_t l = 0; l < a.loads.size(); ++l) {
      if (sum.loads[l].size() < a.loads[l].size()) sum.loads[l].resize(a.loads[l].size(), 0);
      for (size_t e = 0; e < a.loads[l].size(); ++e) sum.loads[l][e] += a.loads[l][e];
    }
  }
  return sum;
}

// After the epochs: gradients cleared, router biases moved by the step's
// expert loads, the step and the policy version advanced.
void GrpoTrainer::FinishStep(const RankSums& sum, Metrics* m) {
  for (auto& p : policies_) p->ZeroGrad();
  UpdateRouterBias(sum.loads, m);
  staging_stale_ = true;
  ++step_;
  ++version_;
}

void GrpoTrainer::ReportStepMetrics(const RankSums& sum, float grad_norm, double secs, Metrics* m) const {
  const grpo::LossSums& first_epoch = sum.first_epoch;
  const grpo::LossSums& all_epochs = sum.all_epochs;
  (*m)["loss"] = first_epoch.loss;
  (*m)["pg_loss"] = first_epoch.pg_loss;
  (*m)["kl"] = first_epoch.kl;
  (*m)["clip_frac"] = all_epochs.tokens > 0 ? all_epochs.clipped / all_epochs.tokens : 0;
  (*m)["ratio_max"] = all_epochs.ratio_max;
  (*m)["entropy"] = first_epoch.tokens > 0 ? sum.entropy / first_epoch.tokens : 0;
  (*m)["grad_norm"] = grad_norm;
  (*m)["balance_loss"] = sum.balance_loss;
  (*m)["train_rollout_logprob_gap"] = sum.gap_n > 0 ? sum.gap_sum / sum.gap_n : 0;
  (*m)["train_rollout_logprob_gap_max"] = sum.gap_max;
  const grpo::MismatchSums& mm = sum.mismatch;
  (*m)["rollout_train_kl"] = mm.tokens > 0 ? mm.k3 / mm.tokens : 0;
  (*m)["rollout_train_logprob_abs_diff_max"] = mm.abs_diff_max;
  (*m)["is_clip_frac"] = mm.tokens > 0 ? mm.corrected / mm.tokens : 0;
  (*m)["completion_tokens"] = first_epoch.tokens;
  (*m)["tokens_per_s"] = sum.tokens_processed / secs;
  (*m)["step_seconds"] = secs;
  (*m)["policy_version"] = static_cast<double>(version_);
  if (options_.grpo.routing_replay()) {
    // Of the (token, MoE layer) pairs replayed in the first epoch (the policy
    // as it was at step start), those whose own top-k differs from the record.
    (*m)["router_mismatch_frac"] =
        sum.replayed_routes > 0 ? static_cast<double>(sum.mismatched_routes) / sum.replayed_routes : 0;
    (*m)["router_replayed_pairs"] = static_cast<double>(sum.replayed_routes);
  }
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
  if (p.on_host()) return HostWeightTensors(p);
  // Device policy: one download of the whole parameter buffer per step (the
  // tensors lie in it in Parameters() order), views into the host copy.
  if (staging_stale_ || staging_.size() != static_cast<size_t>(p.NumParams())) {
    staging_.resize(static_cast<size_t>(p.NumParams()));
    p.DownloadParams(staging_.data());
    staging_stale_ = false;
  }
  std::vector<WeightTensor> out;
  for (const model::TensorRef& t : p.Parameters()) {
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
