// config.json parsing and safetensors loading: round trips (F32, BF16, F16,
// sharded) and the errors — unknown config field, unsupported value,
// truncated file, wrong dtype, missing tensor, wrong shape, bad header.
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "model/test_util.h"
#include "tests/testing/subprocess.h"

namespace zerorl::model {
namespace {

using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

TEST(ConfigTest, ParsesTheBenchConfigAndRoundTrips) {
  auto c = LoadModelConfig(zerorl::testing::SourceDir() + "/../shared/bench/moe-bench.config.json");
  if (!c.ok()) c = ParseModelConfig(testing::TinyDeepseekJson());
  ASSERT_TRUE(c.ok()) << c.status();
  auto again = ParseModelConfig(c->ToJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ToJson(), c->ToJson());
  auto q = ParseModelConfig(testing::TinyQwenJson());
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->family, ModelFamily::kQwen3Moe);
  EXPECT_EQ(ParseModelConfig(q->ToJson())->ToJson(), q->ToJson());
}

TEST(ConfigTest, ErrorsNameTheField) {
  auto s = ParseModelConfig(testing::TinyDeepseekJson(R"({"frobnicate": 3})")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), HasSubstr("frobnicate"));
  EXPECT_THAT(Msg(ParseModelConfig(testing::TinyDeepseekJson(R"({"hidden_act": "gelu"})")).status()),
              HasSubstr("hidden_act"));
  EXPECT_THAT(Msg(ParseModelConfig(testing::TinyDeepseekJson(R"({"rope_scaling": {"type": "yarn"}})")).status()),
              HasSubstr("rope_scaling"));
  EXPECT_THAT(Msg(ParseModelConfig(testing::TinyDeepseekJson(R"({"scoring_func": "relu"})")).status()),
              HasSubstr("scoring_func"));
  EXPECT_THAT(Msg(ParseModelConfig(testing::TinyDeepseekJson(R"({"n_group": 3})")).status()), HasSubstr("n_group"));
  EXPECT_THAT(Msg(ParseModelConfig(testing::TinyQwenJson(R"({"use_sliding_window": true})")).status()),
              HasSubstr("use_sliding_window"));
  EXPECT_THAT(Msg(ParseModelConfig(testing::TinyQwenJson(R"({"model_type": "llama"})")).status()),
              HasSubstr("model_type"));
  EXPECT_THAT(Msg(ParseModelConfig("{not json").status()), HasSubstr("JSON"));
}

// transformers' own DeepseekV3Config (4.5x) writes derived keys that DeepSeek's
// remote code does not: head_dim (= qk_rope_head_dim), qk_head_dim (= nope +
// rope) and rope_interleave; newer transformers write "dtype" for
// "torch_dtype". Such a config.json loads; values that contradict the
// geometry are errors naming the key.
TEST(ConfigTest, AcceptsTheKeysTransformersWrites) {
  auto base = ParseModelConfig(testing::TinyDeepseekJson());
  ASSERT_TRUE(base.ok()) << base.status();
  const std::string rope = std::to_string(base->qk_rope_head_dim),
                    qk = std::to_string(base->qk_nope_head_dim + base->qk_rope_head_dim);
  auto hf = ParseModelConfig(testing::TinyDeepseekJson(R"({"head_dim": )" + rope + R"(, "qk_head_dim": )" + qk +
                                                       R"(, "rope_interleave": true, "dtype": "bfloat16"})"));
  ASSERT_TRUE(hf.ok()) << hf.status();
  EXPECT_EQ(hf->ToJson(), base->ToJson());
  EXPECT_TRUE(ParseModelConfig(testing::TinyQwenJson(R"({"dtype": "bfloat16"})")).ok());
  EXPECT_THAT(Msg(ParseModelConfig(testing::TinyDeepseekJson(R"({"head_dim": 3})")).status()), HasSubstr("head_dim"));
  EXPECT_THAT(Msg(ParseModelConfig(testing::TinyDeepseekJson(R"({"qk_head_dim": 5})")).status()),
              HasSubstr("qk_head_dim"));
  EXPECT_THAT(Msg(ParseModelConfig(testing::TinyDeepseekJson(R"({"rope_interleave": false})")).status()),
              HasSubstr("rope_interleave"));
}

class SaveLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = zerorl::testing::MakeTempDir("loader");
    model_ = std::move(*Model::Create(testing::MustParse(testing::TinyDeepseekJson()), 11));
    ASSERT_TRUE(model_->Save(dir_ + "/m").ok());
  }
  std::string dir_;
  std::unique_ptr<Model> model_;
};

TEST_F(SaveLoadTest, F32RoundTripIsExactAndBf16IsClose) {
  auto back = Model::Load(dir_ + "/m");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ((*back)->NumParams(), model_->NumParams());
  EXPECT_EQ(0, std::memcmp((*back)->param_data(), model_->param_data(), model_->NumParams() * 4));
  ASSERT_TRUE(model_->Save(dir_ + "/bf", DType::kBF16).ok());
  auto bf = Model::Load(dir_ + "/bf");
  ASSERT_TRUE(bf.ok()) << bf.status();
  for (int64_t i = 0; i < model_->NumParams(); ++i)
    ASSERT_NEAR((*bf)->param_data()[i], model_->param_data()[i], 1e-2 * std::fabs(model_->param_data()[i]) + 1e-30);
}

TEST_F(SaveLoadTest, ShardedF16CheckpointLoads) {
  // Split the parameters over two F16 files with an index.
  const std::string sd = dir_ + "/sharded";
  std::filesystem::create_directories(sd);
  std::filesystem::copy_file(dir_ + "/m/config.json", sd + "/config.json");
  auto params = model_->Parameters();
  std::vector<SafetensorsTensor> a, b;
  nlohmann::json index;
  for (size_t i = 0; i < params.size(); ++i) {
    (i % 2 ? b : a).push_back({params[i].name, params[i].shape, params[i].data});
    index["weight_map"][params[i].name] = i % 2 ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
  }
  ASSERT_TRUE(WriteSafetensors(sd + "/model-00001-of-00002.safetensors", a, DType::kF16).ok());
  ASSERT_TRUE(WriteSafetensors(sd + "/model-00002-of-00002.safetensors", b, DType::kF16).ok());
  std::ofstream(sd + "/model.safetensors.index.json") << index.dump();
  auto m = Model::Load(sd);
  ASSERT_TRUE(m.ok()) << m.status();
  for (int64_t i = 0; i < model_->NumParams(); ++i)
    ASSERT_NEAR((*m)->param_data()[i], model_->param_data()[i], 1e-3 * std::fabs(model_->param_data()[i]) + 1e-7);
}

TEST_F(SaveLoadTest, TruncatedFileNamesFileAndTensor) {
  const std::string f = dir_ + "/m/model.safetensors";
  std::filesystem::resize_file(f, std::filesystem::file_size(f) - 100);
  auto s = Model::Load(dir_ + "/m").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), HasSubstr("model.safetensors"));
  EXPECT_THAT(Msg(s), HasSubstr("truncated"));
  EXPECT_THAT(Msg(s), HasSubstr("lm_head.weight"));  // the last tensor is the one cut
  std::filesystem::resize_file(f, 5);
  EXPECT_THAT(Msg(Model::Load(dir_ + "/m").status()), HasSubstr("truncated"));
}

TEST_F(SaveLoadTest, WrongDtypeMissingTensorWrongShapeBadHeader) {
  auto params = model_->Parameters();
  auto write_with = [&](const std::string& name, const std::string& header_json) {
    const std::string d = dir_ + "/" + name;
    std::filesystem::create_directories(d);
    std::filesystem::copy_file(dir_ + "/m/config.json", d + "/config.json",
                               std::filesystem::copy_options::overwrite_existing);
    std::ofstream out(d + "/model.safetensors", std::ios::binary);
    uint64_t n = header_json.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header_json;
    out << std::string(4096, '\0');
    return d;
  };
  // Wrong dtype: I32 is not a float type we load.
  auto s1 = Model::Load(write_with("dtype", R"({"model.embed_tokens.weight":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})"));
  EXPECT_THAT(Msg(s1.status()), HasSubstr("dtype"));
  EXPECT_THAT(Msg(s1.status()), HasSubstr("model.embed_tokens.weight"));
  // Missing tensor: a valid file holding one unrelated tensor.
  auto s2 = Model::Load(write_with("missing", R"({"other":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})"));
  EXPECT_EQ(s2.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(s2.status()), HasSubstr("model.embed_tokens.weight"));
  // Wrong shape.
  auto s3 = Model::Load(write_with("shape", R"({"model.embed_tokens.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})"));
  EXPECT_THAT(Msg(s3.status()), HasSubstr("shape"));
  EXPECT_THAT(Msg(s3.status()), HasSubstr("model.embed_tokens.weight"));
  // Bad header.
  auto s4 = Model::Load(write_with("header", "{not json"));
  EXPECT_THAT(Msg(s4.status()), HasSubstr("bad header"));
  auto s5 = Model::Load(write_with("sizes", R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})"));
  EXPECT_THAT(Msg(s5.status()), HasSubstr("does not match"));
}

TEST(Fp16Bf16, ConversionsRoundTrip) {
  for (float f : {0.f, 1.f, -2.5f, 65504.f, 6.1e-5f, 1e-7f, 3.14159f}) {
    EXPECT_NEAR(F16ToF32(F32ToF16(f)), f, std::fabs(f) * 1e-3 + 1e-7) << f;
    EXPECT_NEAR(Bf16ToF32(F32ToBf16(f)), f, std::fabs(f) * 8e-3) << f;
  }
  EXPECT_EQ(F32ToBf16(1.00390625f), 0x3f80);  // ties to even
}

}  // namespace
}  // namespace zerorl::model
