// The HuggingFace path end to end, through the real `zerorl` binary: a tiny
// deepseek_v3 and a tiny qwen3_moe checkpoint written as HF writes them
// (config.json with the keys HF puts there, BF16 model.safetensors under HF's
// tensor names, the byte-level BPE tokenizer.json fixture with its
// tokenizer_config.json), trained for two steps by examples/gsm8k.yaml's
// pipeline (R1-Zero template, the r1zero-math reward, async mode) on the
// committed GSM8K subset, then loaded back with `zerorl generate`.
//
// What must hold: both steps recorded; every trajectory stored with the BPE
// prompt ids and a reward from the math checker; the rollout's logprobs equal
// the logprobs of the checkpoint of the policy version that sampled them
// (so what the learner saved is what the rollout workers ran); the final
// checkpoint carries config, weights and tokenizer, loads, and `zerorl
// generate` on it gives the greedy tokens of those saved weights.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tests/e2e/stored_trajectories.h"
#include "common/config.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "tests/e2e/e2e_util.h"
#include "tests/testing/subprocess.h"

namespace zerorl {
namespace {

using json = nlohmann::json;
using testing::ZerorlBin;

constexpr int64_t kVocab = 576;      // the tokenizer's 560 ids, padded as HF models pad theirs
constexpr int64_t kTokenizerIds = 560;
constexpr int kSteps = 2, kPrompts = 2, kGroup = 4;

std::string Fixture(const std::string& rel) { return testing::SourceDir() + "/tests/fixtures/" + rel; }

// The tensors of a checkpoint, named and shaped as HF's modeling code names them.
class TensorList {
 public:
  explicit TensorList(uint64_t seed) : rng_(seed) {}
  void Random(const std::string& name, std::vector<int64_t> shape) { Add(name, std::move(shape), kRandom); }
  void Ones(const std::string& name, std::vector<int64_t> shape) { Add(name, std::move(shape), kOnes); }
  void Zeros(const std::string& name, std::vector<int64_t> shape) { Add(name, std::move(shape), kZeros); }
  void SwiGlu(const std::string& prefix, int64_t inner, int64_t hidden) {
    Random(prefix + "gate_proj.weight", {inner, hidden});
    Random(prefix + "up_proj.weight", {inner, hidden});
    Random(prefix + "down_proj.weight", {hidden, inner});
  }
  // embed_tokens / lm_head rows past the tokenizer are zero, as in padded HF vocabularies.
  void Vocab(const std::string& name, int64_t hidden) {
    Random(name, {kVocab, hidden});
    std::fill(data_.back().begin() + kTokenizerIds * hidden, data_.back().end(), 0.f);
  }
  absl::Status Write(const std::string& path) const {
    std::vector<model::SafetensorsTensor> ts;
    for (size_t i = 0; i < names_.size(); ++i) ts.push_back({names_[i], shapes_[i], data_[i].data()});
    return model::WriteSafetensors(path, ts, model::DType::kBF16, {{"format", "pt"}});
  }

 private:
  enum Fill { kRandom, kOnes, kZeros };
  void Add(const std::string& name, std::vector<int64_t> shape, Fill fill) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(n, fill == kOnes ? 1.f : 0.f);
    std::normal_distribution<float> normal(0.f, 0.05f);
    if (fill == kRandom)
      for (float& x : v) x = normal(rng_);
    names_.push_back(name);
    shapes_.push_back(std::move(shape));
    data_.push_back(std::move(v));
  }
  std::mt19937 rng_;
  std::vector<std::string> names_;
  std::vector<std::vector<int64_t>> shapes_;
  std::vector<std::vector<float>> data_;
};

// A deepseek_v3 checkpoint as transformers' DeepseekV3Config / save_pretrained
// writes it (head_dim, qk_head_dim, rope_interleave included), with q_lora,
// one dense layer then MoE layers with group-limited routing and a shared
// expert, plus the multi-token-prediction layer DeepSeek-V3 ships (ignored).
void WriteDeepseek(const std::string& dir) {
  const int64_t D = 64, L = 3, H = 4, nope = 16, rope = 8, dv = 16, qr = 32, kvr = 32, E = 4, I = 128, Im = 32;
  json c = {{"architectures", {"DeepseekV3ForCausalLM"}}, {"attention_bias", false}, {"attention_dropout", 0.0},
            {"bos_token_id", 556}, {"eos_token_id", 558}, {"first_k_dense_replace", 1}, {"head_dim", rope},
            {"hidden_act", "silu"}, {"hidden_size", D}, {"initializer_range", 0.02}, {"intermediate_size", I},
            {"kv_lora_rank", kvr}, {"max_position_embeddings", 1024}, {"model_type", "deepseek_v3"},
            {"moe_intermediate_size", Im}, {"n_group", 2}, {"n_routed_experts", E}, {"n_shared_experts", 1},
            {"norm_topk_prob", true}, {"num_attention_heads", H}, {"num_experts_per_tok", 2},
            {"num_hidden_layers", L}, {"num_key_value_heads", H}, {"num_nextn_predict_layers", 1},
            {"pretraining_tp", 1}, {"q_lora_rank", qr}, {"qk_head_dim", nope + rope}, {"qk_nope_head_dim", nope},
            {"qk_rope_head_dim", rope}, {"rms_norm_eps", 1e-6}, {"rope_interleave", true}, {"rope_scaling", nullptr},
            {"rope_theta", 10000.0}, {"routed_scaling_factor", 2.5}, {"tie_word_embeddings", false},
            {"topk_group", 1}, {"torch_dtype", "bfloat16"}, {"transformers_version", "4.57.1"},
            {"use_cache", true}, {"v_head_dim", dv}, {"vocab_size", kVocab}};
  std::ofstream(dir + "/config.json") << c.dump(2);
  TensorList t(19);
  t.Vocab("model.embed_tokens.weight", D);
  for (int64_t l = 0; l <= L; ++l) {  // layer L: the MTP module
    const std::string p = absl::StrCat("model.layers.", l, ".");
    t.Ones(p + "input_layernorm.weight", {D});
    t.Random(p + "self_attn.q_a_proj.weight", {qr, D});
    t.Ones(p + "self_attn.q_a_layernorm.weight", {qr});
    t.Random(p + "self_attn.q_b_proj.weight", {H * (nope + rope), qr});
    t.Random(p + "self_attn.kv_a_proj_with_mqa.weight", {kvr + rope, D});
    t.Ones(p + "self_attn.kv_a_layernorm.weight", {kvr});
    t.Random(p + "self_attn.kv_b_proj.weight", {H * (nope + dv), kvr});
    t.Random(p + "self_attn.o_proj.weight", {D, H * dv});
    t.Ones(p + "post_attention_layernorm.weight", {D});
    if (l == 0) {
      t.SwiGlu(p + "mlp.", I, D);
      continue;
    }
    t.Random(p + "mlp.gate.weight", {E, D});
    t.Zeros(p + "mlp.gate.e_score_correction_bias", {E});
    for (int64_t e = 0; e < E; ++e) t.SwiGlu(absl::StrCat(p, "mlp.experts.", e, "."), Im, D);
    t.SwiGlu(p + "mlp.shared_experts.", Im, D);
    if (l == L) {
      t.Ones(p + "enorm.weight", {D});
      t.Ones(p + "hnorm.weight", {D});
      t.Random(p + "eh_proj.weight", {D, 2 * D});
      t.Ones(p + "shared_head.norm.weight", {D});
      t.Random(p + "shared_head.head.weight", {kVocab, D});
    }
  }
  t.Ones("model.norm.weight", {D});
  t.Vocab("lm_head.weight", D);
  ASSERT_TRUE(t.Write(dir + "/model.safetensors").ok());
  // DeepSeek's tokenizers start every prompt with a BOS token: this one does too.
  std::filesystem::copy_file(Fixture("tokenizer/qwen_style/tokenizer.json"), dir + "/tokenizer.json");
  std::ofstream(dir + "/tokenizer_config.json")
      << R"({"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})";
}

// A qwen3_moe checkpoint with Qwen3-30B-A3B's config.json keys (GQA with q/k
// norms, every layer MoE, no shared expert) and the Qwen-style tokenizer (no BOS).
void WriteQwen(const std::string& dir) {
  const int64_t D = 64, L = 2, H = 4, Hkv = 2, hd = 16, E = 4, Im = 32;
  json c = {{"architectures", {"Qwen3MoeForCausalLM"}}, {"attention_bias", false}, {"attention_dropout", 0.0},
            {"bos_token_id", 556}, {"decoder_sparse_step", 1}, {"eos_token_id", 558}, {"head_dim", hd},
            {"hidden_act", "silu"}, {"hidden_size", D}, {"initializer_range", 0.02}, {"intermediate_size", 128},
            {"max_position_embeddings", 1024}, {"max_window_layers", L}, {"mlp_only_layers", json::array()},
            {"model_type", "qwen3_moe"}, {"moe_intermediate_size", Im}, {"norm_topk_prob", true},
            {"num_attention_heads", H}, {"num_experts", E}, {"num_experts_per_tok", 2}, {"num_hidden_layers", L},
            {"num_key_value_heads", Hkv}, {"output_router_logits", false}, {"rms_norm_eps", 1e-6},
            {"rope_scaling", nullptr}, {"rope_theta", 1000000.0}, {"router_aux_loss_coef", 0.001},
            {"sliding_window", nullptr}, {"tie_word_embeddings", false}, {"torch_dtype", "bfloat16"},
            {"transformers_version", "4.51.0"}, {"use_cache", true}, {"use_sliding_window", false},
            {"vocab_size", kVocab}};
  std::ofstream(dir + "/config.json") << c.dump(2);
  TensorList t(23);
  t.Vocab("model.embed_tokens.weight", D);
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    t.Ones(p + "input_layernorm.weight", {D});
    t.Random(p + "self_attn.q_proj.weight", {H * hd, D});
    t.Random(p + "self_attn.k_proj.weight", {Hkv * hd, D});
    t.Random(p + "self_attn.v_proj.weight", {Hkv * hd, D});
    t.Random(p + "self_attn.o_proj.weight", {D, H * hd});
    t.Ones(p + "self_attn.q_norm.weight", {hd});
    t.Ones(p + "self_attn.k_norm.weight", {hd});
    t.Ones(p + "post_attention_layernorm.weight", {D});
    t.Random(p + "mlp.gate.weight", {E, D});
    for (int64_t e = 0; e < E; ++e) t.SwiGlu(absl::StrCat(p, "mlp.experts.", e, "."), Im, D);
  }
  t.Ones("model.norm.weight", {D});
  t.Vocab("lm_head.weight", D);
  ASSERT_TRUE(t.Write(dir + "/model.safetensors").ok());
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(Fixture(std::string("tokenizer/qwen_style/") + f), dir + "/" + f);
}

// examples/gsm8k.yaml as written, with the model, data and run dir pointed at
// the test's, and sizes cut to run in seconds on two cores.
std::string DerivedGsm8kConfig(const std::string& model_dir, const std::string& run_dir) {
  zerorl::v1::RunConfig c;
  const absl::Status read = MergeYamlFileInto(testing::SourceDir() + "/examples/gsm8k.yaml", &c);
  EXPECT_TRUE(read.ok()) << read;
  c.set_run_dir(run_dir);
  c.mutable_model()->set_path(model_dir);
  c.mutable_model()->set_threads(2);
  c.mutable_dataset()->set_train_path(Fixture("gsm8k/test.jsonl"));
  c.mutable_reward()->set_spec_path(testing::SourceDir() + "/" + c.reward().spec_path());
  c.mutable_rollout()->set_group_size(kGroup);
  c.mutable_rollout()->set_prompts_per_step(kPrompts);
  c.mutable_rollout()->mutable_sampling()->set_max_new_tokens(24);
  c.mutable_learner()->mutable_checkpoint()->set_every_steps(1);  // a checkpoint per policy version
  c.mutable_orchestrator()->set_total_steps(kSteps);
  c.mutable_orchestrator()->set_metrics_port(0);
  c.mutable_orchestrator()->mutable_eval()->set_prompts(2);
  c.mutable_orchestrator()->set_call_deadline_ms(120000);
  return MessageToYaml(c);
}

std::string CheckpointDir(const std::string& run_dir, int64_t step) {
  return absl::StrFormat("%s/checkpoints/step-%08d", run_dir, step);
}

// Log-probabilities the model gives `completion` after `prompt` (teacher forced).
std::vector<float> TeacherForcedLogprobs(model::Model* m, const std::vector<int32_t>& prompt,
                                         const std::vector<int32_t>& completion) {
  model::TrainBatch b;
  b.B = 1;
  b.tokens = prompt;
  b.tokens.insert(b.tokens.end(), completion.begin(), completion.end());
  b.T = static_cast<int64_t>(b.tokens.size());
  b.lengths = {static_cast<int32_t>(b.T)};
  model::TrainOutput out;
  EXPECT_TRUE(m->TrainForward(b, {}, &out).ok());
  return std::vector<float>(out.logp.begin() + (prompt.size() - 1), out.logp.end());
}

class HfE2eTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfE2eTest, Gsm8kPipelineTrainsTwoStepsAndTheCheckpointGenerates) {
  const std::string family = GetParam();
  const std::string dir = testing::MakeTempDir("hf-e2e-" + family), base = dir + "/base", run = dir + "/run";
  std::filesystem::create_directories(base);
  if (family == "deepseek_v3") WriteDeepseek(base);
  else WriteQwen(base);
  auto base_config = model::LoadModelConfig(base);
  ASSERT_TRUE(base_config.ok()) << base_config.status();
  auto tok = Tokenizer::Load(base);
  ASSERT_TRUE(tok.ok()) << tok.status();
  e2e::WriteText(dir + "/gsm8k.yaml", DerivedGsm8kConfig(base, run));

  std::string out;
  const int rc = testing::RunCommand({ZerorlBin(), "run", dir + "/gsm8k.yaml", "--port", "0", "--no-progress"}, &out,
                                     std::chrono::seconds(300));
  ASSERT_EQ(rc, 0) << out;

  // Both steps recorded, each training the policy one version on.
  std::map<int64_t, zerorl::v1::StepMetrics> steps;
  for (const auto& m : e2e::Metrics(run)) steps[m.step()] = m;
  for (int s = 0; s < kSteps; ++s) {
    ASSERT_TRUE(steps.count(s)) << "step " << s << " not in metrics.jsonl\n" << out;
    for (const char* k : {"reward_mean", "accuracy", "loss", "policy_version", "completion_len_mean"})
      EXPECT_TRUE(steps[s].values().count(k)) << "step " << s << " lacks " << k;
    EXPECT_EQ(steps[s].values().at("policy_version"), s + 1);
  }

  // Every trajectory: the R1-Zero prompt as the BPE tokenizer encodes it, a
  // completion with one logprob per token, a reward from r1zero-math's terms.
  auto stored = e2e::StoredTrajectories(run + "/buffer", "gsm8k");
  ASSERT_TRUE(stored.ok()) << stored.status();
  const std::vector<zerorl::v1::Trajectory>& trajs = *stored;
  ASSERT_EQ(trajs.size(), static_cast<size_t>(kSteps * kPrompts * kGroup));
  std::map<int64_t, std::unique_ptr<model::Model>> by_version;  // the checkpoint of each policy version
  for (const auto& t : trajs) {
    SCOPED_TRACE(absl::StrCat(t.id().step(), "/", t.id().group(), "/", t.id().sample()));
    EXPECT_EQ(t.prompt().text().rfind("A conversation between User and Assistant.", 0), 0u) << t.prompt().text();
    EXPECT_NE(t.prompt().text().find(t.prompt().question()), std::string::npos);
    EXPECT_FALSE(t.prompt().answer().math().empty());  // GSM8K's "#### N"
    EXPECT_EQ(std::vector<int32_t>(t.prompt().token_ids().begin(), t.prompt().token_ids().end()),
              (*tok)->EncodePrompt(t.prompt().text()));
    const auto& s = t.sample();
    ASSERT_GE(s.token_ids_size(), 1);
    ASSERT_EQ(s.logprobs_size(), s.token_ids_size());
    EXPECT_LE(s.token_ids_size(), 24);
    EXPECT_EQ(s.text(), (*tok)->DecodeText({s.token_ids().begin(), s.token_ids().end()}, true));
    const auto& r = t.reward();
    EXPECT_TRUE(r.error().empty()) << r.error();
    EXPECT_GE(r.spec_version(), 1);
    std::map<std::string, zerorl::v1::TermScore> terms;
    double sum = 0;
    for (const auto& term : r.terms()) {
      terms[term.name()] = term;
      sum += term.weight() * term.value();
    }
    ASSERT_TRUE(terms.count("accuracy") && terms.count("format")) << r.DebugString();
    // The math checker judged it: a completion with neither <answer> nor \boxed has no answer.
    const std::string verdict = terms["accuracy"].verdict();
    EXPECT_TRUE(verdict == "correct" || verdict == "wrong" || verdict == "no_answer") << verdict;
    if (s.text().find("<answer>") == std::string::npos && s.text().find("\\boxed") == std::string::npos) {
      EXPECT_EQ(verdict, "no_answer") << s.text();
    }
    EXPECT_EQ(r.correct(), terms["accuracy"].verdict() == "correct");
    EXPECT_NEAR(r.reward(), sum, 1e-9);

    // The policy that sampled it is the learner's checkpoint of that version.
    const int64_t v = s.policy_version();
    ASSERT_GE(v, 0);
    ASSERT_LT(v, kSteps);
    if (!by_version.count(v)) {
      auto m = model::Model::Load(v == 0 ? base : CheckpointDir(run, v));
      ASSERT_TRUE(m.ok()) << m.status();
      by_version[v] = std::move(*m);
    }
    const std::vector<float> want = TeacherForcedLogprobs(
        by_version[v].get(), {t.prompt().token_ids().begin(), t.prompt().token_ids().end()},
        {s.token_ids().begin(), s.token_ids().end()});
    ASSERT_EQ(want.size(), static_cast<size_t>(s.logprobs_size()));
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(s.logprobs(i), want[i], 2e-3) << "token " << i;
  }

  // The final checkpoint carries everything it needs, and loads.
  const std::string ck = CheckpointDir(run, kSteps);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                        "trainer_state.json", "COMPLETE"})
    EXPECT_TRUE(std::filesystem::exists(ck + "/" + f)) << ck << " lacks " << f;
  auto final_model = model::Model::Load(ck);
  ASSERT_TRUE(final_model.ok()) << final_model.status();
  EXPECT_EQ((*final_model)->config().ToJson(), base_config->ToJson());
  auto ck_tok = Tokenizer::Load(ck);
  ASSERT_TRUE(ck_tok.ok()) << ck_tok.status();
  EXPECT_EQ((*ck_tok)->bos_id(), (*tok)->bos_id());
  EXPECT_EQ((*ck_tok)->eos_id(), (*tok)->eos_id());

  // `zerorl generate` on it: the greedy tokens of the saved weights, from the
  // prompt ids rollout used.
  const zerorl::v1::Trajectory& first = trajs.front();
  std::string gen;
  ASSERT_EQ(testing::RunCommand({ZerorlBin(), "generate", "--model", ck, "--prompt", first.prompt().text(),
                                 "--max-new-tokens", "12", "--greedy", "--json", "--threads", "1"},
                                &gen, std::chrono::seconds(120)),
            0)
      << gen;
  const json g = json::parse(gen.substr(0, gen.find('\n')));
  EXPECT_EQ(g["prompt_ids"].get<std::vector<int32_t>>(),
            std::vector<int32_t>(first.prompt().token_ids().begin(), first.prompt().token_ids().end()));
  const std::vector<int32_t> tokens = g["tokens"].get<std::vector<int32_t>>();
  ASSERT_FALSE(tokens.empty());
  EXPECT_FALSE(g["text"].get<std::string>().empty());
  model::SamplerParams greedy;
  greedy.greedy = true;
  std::vector<int32_t> stop;
  for (int64_t e : (*final_model)->config().eos_token_ids) stop.push_back(static_cast<int32_t>(e));
  stop.push_back((*ck_tok)->eos_id());
  auto want = (*final_model)->Generate({(*ck_tok)->EncodePrompt(first.prompt().text())}, 1, greedy, 0, stop, 12);
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(tokens, (*want)[0].tokens);
}

INSTANTIATE_TEST_SUITE_P(Families, HfE2eTest, ::testing::Values("deepseek_v3", "qwen3_moe"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace zerorl
