// zerorlctl test fixture (see ctl_fixture.h).
#include "tests/cli/ctl_fixture.h"

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "buffer/actor.h"
#include "cli/ctl_app.h"
#include "common/config.h"
#include "reward/actor.h"
#include "tests/testing/subprocess.h"

namespace zerorl::ctl::testing {

namespace v1 = zerorl::v1;

CtlResult Ctl(std::vector<std::string> args, Runtime* runtime) {
  args.insert(args.begin(), "zerorlctl");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  Runtime local;
  CtlResult r;
  r.code = RunZerorlctl(static_cast<int>(argv.size()), argv.data(), out, err, runtime ? runtime : &local);
  r.out = out.str();
  r.err = err.str();
  return r;
}

std::vector<std::string> JsonlIds(const std::string& out) {
  std::vector<std::string> ids;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    auto j = nlohmann::json::parse(line);
    const auto& id = j.at("id");
    ids.push_back(absl::StrCat(id.at("run_id").get<std::string>(), "/", id.at("step").get<std::string>(), "/",
                               id.at("group").get<int>(), "/", id.at("sample").get<int>()));
  }
  return ids;
}

// reward in {0, 0.25, 0.5, 0.75, 1}; sample 3 ends by length, the rest by a stop
// token; policy version = step / 2; every third sample of group 1 mentions "needle".
v1::Trajectory Crafted(const std::string& run, int64_t step, int group, int sample) {
  v1::Trajectory t;
  t.mutable_id()->set_run_id(run);
  t.mutable_id()->set_step(step);
  t.mutable_id()->set_group(group);
  t.mutable_id()->set_sample(sample);
  v1::Prompt* p = t.mutable_prompt();
  p->set_id(absl::StrCat("countdown-", group));
  p->set_dataset("countdown");
  p->set_text(absl::StrCat("Using the numbers [1, 2, 3], create an equation that equals ", 6 + group, "."));
  p->mutable_answer()->mutable_countdown()->add_nums(1);
  p->mutable_answer()->mutable_countdown()->add_nums(2);
  p->mutable_answer()->mutable_countdown()->add_nums(3);
  p->mutable_answer()->mutable_countdown()->set_target(6 + group);
  v1::Sample* s = t.mutable_sample();
  s->set_index(sample);
  std::string text = absl::StrCat("<think>try ", step, "-", group, "-", sample,
                                  (group == 1 && sample % 3 == 0) ? " needle" : "",
                                  "</think><answer>1+2+3</answer>");
  s->set_text(text);
  for (size_t i = 0; i < text.size(); ++i) {  // a character vocabulary: one token per byte (ASCII)
    s->add_token_ids(static_cast<unsigned char>(text[i]));
    s->add_logprobs(i == 5 ? -4.5f : -0.25f - 0.01f * static_cast<float>(i % 7));
  }
  s->set_finish_reason(sample == 3 ? v1::FINISH_REASON_LENGTH : v1::FINISH_REASON_STOP);
  s->set_policy_version(step / 2);
  s->set_worker("rollout-0");
  v1::RewardResult* r = t.mutable_reward();
  r->set_reward(((step * 7 + group * 3 + sample) % 5) / 4.0);
  r->set_spec_version(1);
  r->set_correct(group == 0);
  v1::TermScore* term = r->add_terms();
  term->set_name("countdown");
  term->set_value(r->reward());
  term->set_weight(1);
  term->set_verdict(group == 0 ? "correct" : "wrong");
  term->set_detail("1+2+3");
  t.set_created_unix_ms(1'700'000'000'000 + step * 1000);
  return t;
}

std::vector<v1::Group> CraftedGroups(const std::string& run, int64_t step_begin, int64_t step_end, int groups,
                                     int samples) {
  std::vector<v1::Group> out;
  for (int64_t step = step_begin; step < step_end; ++step) {
    for (int g = 0; g < groups; ++g) {
      v1::Group group;
      group.mutable_id()->set_run_id(run);
      group.mutable_id()->set_step(step);
      group.mutable_id()->set_group(g);
      for (int s = 0; s < samples; ++s) *group.add_trajectories() = Crafted(run, step, g, s);
      *group.mutable_prompt() = group.trajectories(0).prompt();
      out.push_back(std::move(group));
    }
  }
  return out;
}

std::unique_ptr<Deployment> Deployment::Start(const std::string& name, const std::string& tls_cert,
                                              const std::string& tls_key) {
  auto d = std::unique_ptr<Deployment>(new Deployment());
  d->dir_ = zerorl::testing::MakeTempDir(name);
  d->token_file_ = d->dir_ + "/token";
  std::ofstream(d->token_file_) << "s3cret-admin-token\n";
  v1::RunConfig config = DefaultRunConfig();
  config.set_run_id(name);
  config.set_run_dir(d->dir_ + "/run");
  config.mutable_server()->set_token_file(d->token_file_);
  config.mutable_server()->mutable_tls()->set_cert_file(tls_cert);
  config.mutable_server()->mutable_tls()->set_key_file(tls_key);
  if (!FinalizeRunConfig(&config).ok()) return nullptr;
  ActorOptions opts;
  opts.config = config;
  opts.auth = std::make_shared<AdminAuth>("s3cret-admin-token");
  std::vector<grpc::Service*> services;
  for (auto factory : {NewBufferActor, NewRewardActor}) {
    auto actor = factory(opts);
    if (!actor.ok()) {
      ADD_FAILURE() << actor.status();
      return nullptr;
    }
    for (grpc::Service* s : (*actor)->Services()) services.push_back(s);
    d->actors_.push_back(std::move(*actor));
  }
  auto server = StartServer("127.0.0.1:0", services, config.server(), opts.auth);
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    return nullptr;
  }
  d->server_ = std::move(*server);
  d->addr_ = absl::StrCat("127.0.0.1:", d->server_.port);
  for (auto& a : d->actors_) {
    if (auto st = a->Start(); !st.ok()) {
      ADD_FAILURE() << st;
      return nullptr;
    }
  }
  return d;
}

bool Deployment::Append(const std::vector<v1::Group>& groups) {
  auto stub = v1::BufferService::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
  v1::AppendRequest req;
  for (const auto& g : groups) *req.add_groups() = g;
  v1::AppendResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Status st = stub->Append(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return st.ok();
}

void Deployment::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& a : actors_) a->Shutdown();
  server_.Shutdown(std::chrono::milliseconds(500));
}

Deployment::~Deployment() { Stop(); }

}  // namespace zerorl::ctl::testing
