// LearnerService over gRPC on loopback: Train leases groups from a
// BufferService (a scripted in-test fake), steps, checkpoints and publishes to
// two rollout workers in parallel; FetchWeights (pull path) brings a third
// worker to the same weights; aborted and corrupt UpdateWeights streams leave
// a worker on its old version with a clear status.
#include "learner/learner_service.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include <gtest/gtest.h>

#include "common/config.h"
#include "common/server.h"
#include "model/routing_record.h"
#include "model/safetensors.h"
#include "learner/weight_publisher.h"
#include "rollout/rollout_service.h"
#include "model/test_models.h"
#include "tests/testing/subprocess.h"
#include "weights/model_weights.h"

namespace zerorl::learner {
namespace {

using zerorl::v1::WeightChunk;

// A scripted buffer: Lease hands out `groups` once; Ack counts.
class FakeBuffer final : public zerorl::v1::BufferService::Service {
 public:
  std::vector<zerorl::v1::Group> groups;
  int acks = 0;
  grpc::Status Lease(grpc::ServerContext*, const zerorl::v1::LeaseRequest* req,
                     zerorl::v1::LeaseResponse* resp) override {
    for (const auto& g : groups)
      if (g.id().step() == req->step()) *resp->add_groups() = g;
    resp->set_lease_id("lease-" + std::to_string(req->step()));
    return grpc::Status::OK;
  }
  grpc::Status Ack(grpc::ServerContext*, const zerorl::v1::AckRequest*, zerorl::v1::AckResponse* resp) override {
    ++acks;
    resp->set_consumed(1);
    return grpc::Status::OK;
  }
};

std::vector<zerorl::v1::Group> Groups(int64_t step) {
  std::mt19937_64 rng(step);
  std::vector<zerorl::v1::Group> out(2);
  for (auto& g : out) {
    g.mutable_id()->set_step(step);
    g.mutable_prompt()->set_text("hi");
    for (int s = 0; s < 4; ++s) {
      auto* t = g.add_trajectories();
      for (int i = 0; i < 6; ++i) t->mutable_sample()->add_token_ids(4 + rng() % 90);
      t->mutable_reward()->set_reward(s % 2);
    }
  }
  return out;
}

struct Worker {
  std::unique_ptr<rollout::GenerationEngine> engine;
  std::unique_ptr<rollout::RolloutServiceImpl> service;
  ServerHandle server;
  std::string address;
};

class LearnerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = DefaultRunConfig().server();
    for (int w = 0; w < 3; ++w) {
      Worker k;
      k.engine = std::make_unique<rollout::GenerationEngine>(zerorl::testing::TinyMoe(1), zerorl::testing::CharTokenizer(),
                                                             rollout::GenerationEngine::Options{});
      k.service = std::make_unique<rollout::RolloutServiceImpl>(k.engine.get(), "w" + std::to_string(w));
      auto h = StartServer("127.0.0.1:0", {k.service.get()}, server_, std::make_shared<AdminAuth>());
      ASSERT_TRUE(h.ok()) << h.status();
      k.server = std::move(*h);
      k.address = "127.0.0.1:" + std::to_string(k.server.port);
      workers_.push_back(std::move(k));
    }
    auto bh = StartServer("127.0.0.1:0", {&buffer_}, server_, std::make_shared<AdminAuth>());
    ASSERT_TRUE(bh.ok());
    buffer_server_ = std::move(*bh);
    config_ = DefaultRunConfig();
    config_.set_run_id("t");
    dir_ = zerorl::testing::MakeTempDir("learner_service");
    config_.mutable_learner()->mutable_checkpoint()->set_dir(dir_ + "/checkpoints");
    config_.mutable_learner()->mutable_checkpoint()->set_every_steps(1);
    config_.mutable_learner()->mutable_checkpoint()->set_keep_last(2);
    config_.mutable_learner()->set_weight_chunk_bytes(4096);
    config_.mutable_rollout()->mutable_sampling()->set_max_new_tokens(6);
    auto trainer = GrpoTrainer::Create(zerorl::testing::TinyMoe(1), zerorl::testing::CharTokenizer(),
                                       TrainerOptionsFromConfig(config_));
    ASSERT_TRUE(trainer.ok());
    learner_ = std::make_unique<LearnerServiceImpl>(
        std::move(*trainer), config_, MakeChannel("127.0.0.1:" + std::to_string(buffer_server_.port), server_));
    auto lh = StartServer("127.0.0.1:0", {learner_.get()}, server_, std::make_shared<AdminAuth>());
    ASSERT_TRUE(lh.ok());
    learner_server_ = std::move(*lh);
    stub_ = zerorl::v1::LearnerService::NewStub(MakeChannel("127.0.0.1:" + std::to_string(learner_server_.port), server_));
  }
  void TearDown() override {
    learner_server_.Shutdown();
    buffer_server_.Shutdown();
    for (auto& w : workers_) w.server.Shutdown();
  }
  std::vector<int32_t> GreedyTokens(Worker& w) {
    rollout::GenerationParams p;
    p.sampler.greedy = true;
    p.max_new_tokens = 12;
    auto r = w.engine->Generate({{1, 40, 41}}, 1, p);
    EXPECT_TRUE(r.ok());
    return r.ok() ? (*r)[0][0].tokens : std::vector<int32_t>{};
  }

  zerorl::v1::ServerConfig server_;
  zerorl::v1::RunConfig config_;
  std::string dir_;
  FakeBuffer buffer_;
  ServerHandle buffer_server_, learner_server_;
  std::vector<Worker> workers_;
  std::unique_ptr<LearnerServiceImpl> learner_;
  std::unique_ptr<zerorl::v1::LearnerService::Stub> stub_;
};

TEST_F(LearnerServiceTest, TrainCheckpointsPublishesAndWorkersCanPull) {
  for (int64_t s = 0; s < 3; ++s)
    for (auto& g : Groups(s)) buffer_.groups.push_back(g);
  for (int64_t s = 0; s < 3; ++s) {
    zerorl::v1::TrainRequest req;
    req.set_run_id("t");
    req.set_step(s);
    req.set_by_step(true);
    req.set_data_cursor("cursor-" + std::to_string(s));
    req.add_publish_to(workers_[0].address);
    req.add_publish_to(workers_[1].address);
    zerorl::v1::TrainResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Train(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.policy().version(), s + 1);
    EXPECT_TRUE(resp.publish_errors().empty()) << resp.publish_errors(0);
    EXPECT_GT(resp.publish_mb_per_s(), 0.0);
    for (const char* k : {"loss", "pg_loss", "kl", "clip_frac", "entropy", "grad_norm", "lr", "reward_mean",
                          "reward_std", "accuracy", "completion_len_mean", "completion_len_max",
                          "dynamic_sampling_dropped_frac", "expert_load_max_over_mean", "train_rollout_logprob_gap",
                          "rollout_train_kl", "rollout_train_logprob_abs_diff_max", "is_clip_frac", "tokens_per_s"})
      EXPECT_TRUE(resp.metrics().values().count(k)) << "missing metric " << k;
  }
  EXPECT_EQ(buffer_.acks, 3);
  EXPECT_EQ(workers_[0].engine->version(), 3);
  EXPECT_EQ(workers_[1].engine->version(), 3);
  EXPECT_EQ(workers_[2].engine->version(), 0);
  auto pulled = rollout::PullWeights(workers_[2].engine.get(), stub_.get(), 3, std::chrono::seconds(30));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(workers_[2].engine->version(), 3);
  EXPECT_EQ(GreedyTokens(workers_[0]), GreedyTokens(workers_[2]));
  EXPECT_EQ(GreedyTokens(workers_[1]), GreedyTokens(workers_[2]));
  // Asking for a version the learner does not have yet.
  EXPECT_EQ(rollout::PullWeights(workers_[2].engine.get(), stub_.get(), 9, std::chrono::seconds(10)).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Checkpoints: keep-last 2, complete, loadable as an HF model directory.
  zerorl::v1::LearnerState state;
  grpc::ClientContext sctx;
  ASSERT_TRUE(stub_->GetLearnerState(&sctx, {}, &state).ok());
  EXPECT_EQ(state.step(), 3);
  EXPECT_EQ(state.last_checkpoint().data_cursor(), "cursor-2");
  const std::string ck = state.last_checkpoint().path();
  EXPECT_TRUE(std::filesystem::exists(ck + "/COMPLETE"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/checkpoints/step-00000001"));
  auto loaded = model::Model::Load(ck);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->NumParams(), zerorl::testing::TinyMoe(1)->NumParams());
}

// A checkpoint carries the policy's tokenizer (tokenizer.json and the
// tokenizer_config.json beside it) so that it loads on its own; the files are
// written before the checkpoint is published, and one that cannot be copied
// fails the checkpoint instead of leaving a complete one without it.
TEST_F(LearnerServiceTest, CheckpointCarriesThePolicyTokenizer) {
  const std::string tok_dir = dir_ + "/tok";
  std::filesystem::create_directories(tok_dir);
  const std::string fixture = zerorl::testing::SourceDir() + "/tests/fixtures/tokenizer/qwen_style";
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(fixture + "/" + f, tok_dir + "/" + f);
  zerorl::v1::RunConfig c = config_;
  c.mutable_model()->set_tokenizer(tok_dir);
  c.mutable_learner()->mutable_checkpoint()->set_dir(dir_ + "/tok-checkpoints");
  auto trainer =
      GrpoTrainer::Create(zerorl::testing::TinyMoe(1), zerorl::testing::CharTokenizer(), TrainerOptionsFromConfig(c));
  ASSERT_TRUE(trainer.ok());
  LearnerServiceImpl learner(std::move(*trainer), c,
                             MakeChannel("127.0.0.1:" + std::to_string(buffer_server_.port), server_));
  auto h = StartServer("127.0.0.1:0", {&learner}, server_, std::make_shared<AdminAuth>());
  ASSERT_TRUE(h.ok());
  auto stub = zerorl::v1::LearnerService::NewStub(MakeChannel("127.0.0.1:" + std::to_string(h->port), server_));
  auto bytes = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  zerorl::v1::CheckpointInfo info;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->SaveCheckpoint(&ctx, {}, &info).ok());
  }
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    EXPECT_EQ(bytes(info.path() + "/" + f), bytes(fixture + "/" + f)) << f;
  auto tok = Tokenizer::Load(info.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->eos_id(), (*tok)->TokenToId("<|im_end|>"));  // from the copied tokenizer_config.json

  std::filesystem::remove_all(info.path());
  std::filesystem::remove(tok_dir + "/tokenizer.json");
  grpc::ClientContext ctx;
  const grpc::Status st = stub->SaveCheckpoint(&ctx, {}, &info);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.error_message().find("tokenizer"), std::string::npos) << st.error_message();
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/tok-checkpoints"))
    EXPECT_NE(e.path().filename().string().rfind("step-", 0), 0u) << "published without its tokenizer: " << e.path();
  h->Shutdown();
}

// Train of a step is idempotent across restarts: a step already applied is
// answered from its record (not trained twice); a learner restored from an
// older checkpoint re-trains the steps in between and ends on the same weights.
TEST_F(LearnerServiceTest, TrainIsIdempotentAcrossRestarts) {
  for (int64_t s = 0; s < 3; ++s)
    for (auto& g : Groups(s)) buffer_.groups.push_back(g);
  auto train = [](zerorl::v1::LearnerService::Stub* stub, int64_t step, zerorl::v1::TrainResponse* resp) {
    zerorl::v1::TrainRequest req;
    req.set_run_id("t");
    req.set_step(step);
    req.set_by_step(true);
    grpc::ClientContext ctx;
    return stub->Train(&ctx, req, resp);
  };
  zerorl::v1::TrainResponse first0, first1;
  ASSERT_TRUE(train(stub_.get(), 0, &first0).ok());
  ASSERT_TRUE(train(stub_.get(), 1, &first1).ok());
  const std::string ck1 = dir_ + "/checkpoints/step-00000001";
  const std::string snapshot = dir_ + "/at-step-1";  // the checkpoint dir as a learner killed after step 0 left it
  std::filesystem::create_directories(snapshot + "/train-results");
  std::filesystem::copy(ck1, snapshot + "/step-00000001", std::filesystem::copy_options::recursive);
  std::filesystem::copy(dir_ + "/checkpoints/train-results/step-00000000.pb", snapshot + "/train-results/");

  // A retry of step 1 (its answer was lost): the recorded answer, no second update.
  const int acks = buffer_.acks;
  zerorl::v1::TrainResponse again;
  ASSERT_TRUE(train(stub_.get(), 1, &again).ok());
  EXPECT_EQ(again.policy().version(), 2);
  EXPECT_EQ(again.metrics().values().at("loss"), first1.metrics().values().at("loss"));
  EXPECT_EQ(buffer_.acks, acks + 1);  // the ack is finished
  EXPECT_EQ(learner_->version(), 2);

  // A restarted learner on the same checkpoint dir answers step 0 and 1 from their records.
  auto restart = [&](const std::string& ck_dir) {
    zerorl::v1::RunConfig c = config_;
    c.mutable_learner()->mutable_checkpoint()->set_dir(ck_dir);
    auto trainer = GrpoTrainer::Create(zerorl::testing::TinyMoe(1), zerorl::testing::CharTokenizer(),
                                       TrainerOptionsFromConfig(c));
    EXPECT_TRUE(trainer.ok());
    auto l = std::make_unique<LearnerServiceImpl>(std::move(*trainer), c,
                                                  MakeChannel("127.0.0.1:" + std::to_string(buffer_server_.port), server_));
    auto resumed = l->ResumeFromLatest();
    EXPECT_TRUE(resumed.ok() && *resumed) << resumed.status();
    return l;
  };
  {
    auto l = restart(dir_ + "/checkpoints");
    auto h = StartServer("127.0.0.1:0", {l.get()}, server_, std::make_shared<AdminAuth>());
    ASSERT_TRUE(h.ok());
    auto stub = zerorl::v1::LearnerService::NewStub(MakeChannel("127.0.0.1:" + std::to_string(h->port), server_));
    zerorl::v1::TrainResponse r0;
    ASSERT_TRUE(train(stub.get(), 0, &r0).ok());
    EXPECT_EQ(r0.policy().version(), 1);
    EXPECT_EQ(r0.metrics().values().at("loss"), first0.metrics().values().at("loss"));
    EXPECT_EQ(l->version(), 2);
    h->Shutdown();
  }
  // Step 2 on the original learner, and on one restored from the step-1 checkpoint:
  // it re-trains step 1 from the buffer, then step 2, and ends on the same weights.
  zerorl::v1::TrainResponse straight;
  ASSERT_TRUE(train(stub_.get(), 2, &straight).ok());
  EXPECT_EQ(straight.policy().version(), 3);
  auto l = restart(snapshot);
  EXPECT_EQ(l->version(), 1);
  auto h = StartServer("127.0.0.1:0", {l.get()}, server_, std::make_shared<AdminAuth>());
  ASSERT_TRUE(h.ok());
  auto stub = zerorl::v1::LearnerService::NewStub(MakeChannel("127.0.0.1:" + std::to_string(h->port), server_));
  zerorl::v1::TrainResponse caught_up;
  ASSERT_TRUE(train(stub.get(), 2, &caught_up).ok());
  EXPECT_EQ(caught_up.policy().version(), 3);
  EXPECT_EQ(caught_up.metrics().values().at("loss"), straight.metrics().values().at("loss"));
  auto bytes = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string a = bytes(dir_ + "/checkpoints/step-00000003/model.safetensors");
  EXPECT_FALSE(a.empty());
  EXPECT_TRUE(a == bytes(snapshot + "/step-00000003/model.safetensors")) << "re-trained weights differ";
  h->Shutdown();
}

TEST_F(LearnerServiceTest, TrainWithoutGroupsIsFailedPrecondition) {
  zerorl::v1::TrainRequest req;
  req.set_step(7);
  req.set_by_step(true);
  zerorl::v1::TrainResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub_->Train(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("no groups"), std::string::npos);
}

std::vector<WeightChunk> ChunksOf(model::Model& m, int64_t version) {
  auto chunks = WeightChunksOf(m, version, 2048);
  EXPECT_TRUE(chunks.ok()) << chunks.status();
  return chunks.ok() ? *std::move(chunks) : std::vector<WeightChunk>{};
}

// Routing replay over the wire: GenerateRequest.record_routing fills each
// Sample.routing with a record of the fed tokens; without it there is none.
TEST_F(LearnerServiceTest, GenerateRecordsRoutingOnlyWhenTheRequestAsks) {
  auto stub = zerorl::v1::RolloutService::NewStub(MakeChannel(workers_[0].address, server_));
  const model::ModelConfig cfg = zerorl::testing::TinyMoe(1)->config();
  for (bool record : {true, false}) {
    zerorl::v1::GenerateRequest req;
    req.set_request_id(record ? "rec" : "plain");
    req.add_prompts()->set_text("hi");
    req.set_group_size(2);
    req.mutable_sampling()->set_max_new_tokens(6);
    req.mutable_sampling()->set_seed(3);
    req.set_record_routing(record);
    grpc::ClientContext ctx;
    zerorl::v1::GenerateResponse resp;
    ASSERT_TRUE(stub->Generate(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.groups_size(), 1);
    const auto& g = resp.groups(0);
    ASSERT_EQ(g.samples_size(), 2);
    for (const auto& smp : g.samples()) {
      if (!record) {
        EXPECT_FALSE(smp.has_routing());
        continue;
      }
      auto ids = model::UnpackRoutingRecord(smp.routing(), cfg, g.prompt_token_ids_size() + smp.token_ids_size() - 1);
      EXPECT_TRUE(ids.ok()) << ids.status();
    }
  }
}

TEST_F(LearnerServiceTest, AbortedAndCorruptStreamsLeaveTheOldVersionServing) {
  auto other = zerorl::testing::TinyMoe(2);
  auto chunks = ChunksOf(*other, 5);
  auto stub = zerorl::v1::RolloutService::NewStub(MakeChannel(workers_[0].address, server_));
  const auto before = GreedyTokens(workers_[0]);
  {  // the sender dies half way
    grpc::ClientContext ctx;
    zerorl::v1::UpdateWeightsResponse resp;
    auto w = stub->UpdateWeights(&ctx, &resp);
    for (size_t i = 0; i < chunks.size() / 2; ++i) ASSERT_TRUE(w->Write(chunks[i]));
    ctx.TryCancel();
    EXPECT_FALSE(w->Finish().ok());
  }
  {  // the sender closes early
    grpc::ClientContext ctx;
    zerorl::v1::UpdateWeightsResponse resp;
    auto w = stub->UpdateWeights(&ctx, &resp);
    for (size_t i = 0; i < chunks.size() / 2; ++i) ASSERT_TRUE(w->Write(chunks[i]));
    w->WritesDone();
    grpc::Status s = w->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
    EXPECT_NE(s.error_message().find("tensors"), std::string::npos) << s.error_message();
  }
  {  // a flipped bit
    auto bad = chunks;
    std::string d = bad[3].data();
    d[1] ^= 1;
    bad[3].set_data(d);
    grpc::ClientContext ctx;
    zerorl::v1::UpdateWeightsResponse resp;
    auto w = stub->UpdateWeights(&ctx, &resp);
    for (const auto& c : bad)
      if (!w->Write(c)) break;
    w->WritesDone();
    grpc::Status s = w->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
    EXPECT_NE(s.error_message().find("checksum"), std::string::npos) << s.error_message();
  }
  EXPECT_EQ(workers_[0].engine->version(), 0);
  EXPECT_EQ(GreedyTokens(workers_[0]), before);
  zerorl::v1::PolicyVersion pv;
  grpc::ClientContext vctx;
  ASSERT_TRUE(stub->GetPolicyVersion(&vctx, {}, &pv).ok());
  EXPECT_EQ(pv.version(), 0);
}

TEST_F(LearnerServiceTest, PublishReportsWorkersThatDidNotTakeTheWeights) {
  auto other = zerorl::testing::TinyMoe(2);
  const std::vector<WeightTensor> ts = HostWeightTensors(*other);
  ChunkOptions o;
  o.version = 4;
  o.config_json = other->config().ToJson();
  o.chunk_bytes = 1000;
  const PublishResult r = PublishWeights(
      {{workers_[0].address, MakeChannel(workers_[0].address, server_)},
       {"127.0.0.1:1", MakeChannel("127.0.0.1:1", server_)},
       {workers_[1].address, MakeChannel(workers_[1].address, server_)}},
      ts, o, std::chrono::seconds(5));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].find("127.0.0.1:1"), std::string::npos) << r.errors[0];
  EXPECT_EQ(r.bytes, 2 * other->NumParams() * 4);
  EXPECT_EQ(workers_[0].engine->version(), 4);
  EXPECT_EQ(workers_[1].engine->version(), 4);
}

}  // namespace
}  // namespace zerorl::learner
