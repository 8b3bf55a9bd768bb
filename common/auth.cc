#include "common/auth.h"

#include <algorithm>
#include <fstream>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"

namespace zerorl {
namespace {

using grpc::experimental::InterceptionHookPoints;

// The one access table. Every RPC of every service in proto/zerorl/v1 must be
// here (common/auth_test.cc checks it against the generated descriptors).
const std::vector<std::pair<absl::string_view, Access>>& Table() {
  static const auto* table = [] {
    auto* t = new std::vector<std::pair<absl::string_view, Access>>{
        // Health and reflection: probes and grpcurl.
        {"/grpc.health.v1.Health/Check", Access::kAnyone},
        {"/grpc.health.v1.Health/Watch", Access::kAnyone},
        {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", Access::kAnyone},
        {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", Access::kAnyone},
        // Buffer: the orchestrator appends, the learner leases and acks.
        {"/zerorl.v1.BufferService/Append", Access::kActor},
        {"/zerorl.v1.BufferService/Lease", Access::kActor},
        {"/zerorl.v1.BufferService/Ack", Access::kActor},
        {"/zerorl.v1.BufferService/ListTrajectories", Access::kReader},
        {"/zerorl.v1.BufferService/GetTrajectory", Access::kReader},
        {"/zerorl.v1.BufferService/Tail", Access::kReader},
        {"/zerorl.v1.BufferService/GetStepStats", Access::kReader},
        {"/zerorl.v1.BufferService/ListRuns", Access::kReader},
        {"/zerorl.v1.BufferService/Backup", Access::kAdmin},
        {"/zerorl.v1.BufferService/Compact", Access::kAdmin},
        // Learner: the orchestrator trains and checkpoints; rollout workers pull weights.
        {"/zerorl.v1.LearnerService/Train", Access::kActor},
        {"/zerorl.v1.LearnerService/SaveCheckpoint", Access::kActor},
        {"/zerorl.v1.LearnerService/FetchWeights", Access::kActor},
        {"/zerorl.v1.LearnerService/GetLearnerState", Access::kReader},
        // Orchestrator: run control is admin; nothing registers from outside but actors.
        {"/zerorl.v1.OrchestratorService/ListRuns", Access::kReader},
        {"/zerorl.v1.OrchestratorService/GetRun", Access::kReader},
        {"/zerorl.v1.OrchestratorService/CreateRun", Access::kAdmin},
        {"/zerorl.v1.OrchestratorService/PauseRun", Access::kAdmin},
        {"/zerorl.v1.OrchestratorService/ResumeRun", Access::kAdmin},
        {"/zerorl.v1.OrchestratorService/StopRun", Access::kAdmin},
        {"/zerorl.v1.OrchestratorService/RegisterWorker", Access::kActor},
        {"/zerorl.v1.OrchestratorService/Heartbeat", Access::kActor},
        {"/zerorl.v1.OrchestratorService/ListWorkers", Access::kReader},
        {"/zerorl.v1.OrchestratorService/GetMetrics", Access::kReader},
        // Reward: Score runs completions (code in the sandbox) for the orchestrator.
        {"/zerorl.v1.RewardService/Score", Access::kActor},
        {"/zerorl.v1.RewardService/GetRewardSpec", Access::kReader},
        {"/zerorl.v1.RewardService/SetRewardSpec", Access::kAdmin},
        {"/zerorl.v1.RewardService/ListSpecVersions", Access::kReader},
        {"/zerorl.v1.RewardService/Rollback", Access::kAdmin},
        // Rollout: the orchestrator generates, the learner pushes weights.
        {"/zerorl.v1.RolloutService/Generate", Access::kActor},
        {"/zerorl.v1.RolloutService/UpdateWeights", Access::kActor},
        {"/zerorl.v1.RolloutService/GetPolicyVersion", Access::kReader},
        {"/zerorl.v1.RolloutService/Drain", Access::kActor},
        {"/zerorl.v1.RolloutService/JoinWeightGroup", Access::kActor},
        {"/zerorl.v1.RolloutService/ReceiveWeightsNccl", Access::kActor},
    };
    std::sort(t->begin(), t->end());
    return t;
  }();
  return *table;
}

bool ConstantTimeEqual(absl::string_view a, const std::string& b) {
  unsigned diff = a.size() ^ b.size();
  for (size_t i = 0; i < b.size(); ++i) diff |= static_cast<unsigned>(b[i] ^ (i < a.size() ? a[i] : 0));
  return diff == 0;
}

// The bearer token of a call: nullopt without "authorization"; an error when
// it is not "Bearer <token>".
absl::StatusOr<std::optional<absl::string_view>> BearerOf(
    const std::multimap<grpc::string_ref, grpc::string_ref>& md) {
  auto it = md.find("authorization");
  if (it == md.end()) return std::optional<absl::string_view>();
  absl::string_view v(it->second.data(), it->second.size());
  constexpr absl::string_view kPrefix = "Bearer ";
  if (v.substr(0, kPrefix.size()) != kPrefix)
    return absl::UnauthenticatedError("authorization metadata is not a bearer token");
  v.remove_prefix(kPrefix.size());
  return std::optional<absl::string_view>(v);
}

// Verdicts of calls in flight, by their server context (CheckCallAccess).
class VerdictBoard {
 public:
  static VerdictBoard& Get() {
    static auto* board = new VerdictBoard();
    return *board;
  }
  void Put(const grpc::ServerContextBase* ctx, const void* owner, absl::Status verdict) {
    absl::MutexLock l(&mu_);
    verdicts_[ctx] = {owner, std::move(verdict)};
  }
  void Erase(const grpc::ServerContextBase* ctx, const void* owner) {
    absl::MutexLock l(&mu_);
    auto it = verdicts_.find(ctx);
    if (it != verdicts_.end() && it->second.first == owner) verdicts_.erase(it);
  }
  std::optional<absl::Status> Find(const grpc::ServerContextBase* ctx) {
    absl::MutexLock l(&mu_);
    auto it = verdicts_.find(ctx);
    if (it == verdicts_.end()) return std::nullopt;
    return it->second.second;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<const grpc::ServerContextBase*, std::pair<const void*, absl::Status>> verdicts_
      ABSL_GUARDED_BY(mu_);
};

class AccessInterceptor final : public grpc::experimental::Interceptor {
 public:
  AccessInterceptor(grpc::experimental::ServerRpcInfo* info, std::shared_ptr<const AdminAuth> auth)
      : ctx_(info->server_context()), method_(info->method() ? info->method() : ""), auth_(std::move(auth)) {}
  ~AccessInterceptor() override {
    if (recorded_) VerdictBoard::Get().Erase(ctx_, this);
  }
  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      VerdictBoard::Get().Put(ctx_, this, auth_->Authorize(method_, *m->GetRecvInitialMetadata()));
      recorded_ = true;
    }
    m->Proceed();
  }

 private:
  const grpc::ServerContextBase* ctx_;
  const std::string method_;
  std::shared_ptr<const AdminAuth> auth_;
  bool recorded_ = false;
};

class AccessInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit AccessInterceptorFactory(std::shared_ptr<const AdminAuth> auth) : auth_(std::move(auth)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new AccessInterceptor(info, auth_);
  }

 private:
  std::shared_ptr<const AdminAuth> auth_;
};

class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(const std::string* token) : token_(token) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      auto* md = m->GetSendInitialMetadata();
      if (md->find("authorization") == md->end()) md->emplace("authorization", "Bearer " + *token_);
    }
    m->Proceed();
  }

 private:
  const std::string* token_;  // owned by the factory, which outlives the channel's calls
};

class BearerInterceptorFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerInterceptorFactory(std::string token) : token_(std::move(token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo*) override {
    return new BearerInterceptor(&token_);
  }

 private:
  const std::string token_;
};

struct ProcessToken {
  absl::Mutex mu;
  std::string token ABSL_GUARDED_BY(mu);
};
ProcessToken& TheProcessToken() {
  static auto* t = new ProcessToken();
  return *t;
}

}  // namespace

const char* AccessName(Access a) {
  switch (a) {
    case Access::kAnyone: return "anyone";
    case Access::kReader: return "reader";
    case Access::kActor: return "actor";
    case Access::kAdmin: return "admin";
  }
  return "?";
}

const std::vector<std::pair<absl::string_view, Access>>& AccessTable() { return Table(); }

std::optional<Access> RequiredAccess(absl::string_view method) {
  const auto& t = Table();
  auto it = std::lower_bound(t.begin(), t.end(), method,
                             [](const auto& e, absl::string_view m) { return e.first < m; });
  if (it == t.end() || it->first != method) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  if (path.empty()) return std::string();
  auto text = ReadFile(path);
  if (!text.ok()) return absl::Status(text.status().code(), "token file " + std::string(text.status().message()));
  std::string token(absl::StripAsciiWhitespace(*text));
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat("token file ", path, " is empty"));
  return token;
}

absl::StatusOr<AdminAuth> AdminAuth::FromFile(const std::string& path) {
  if (path.empty()) return AdminAuth();
  auto token = ReadTokenFile(path);
  if (!token.ok()) return token.status();
  return AdminAuth(*token);
}

absl::StatusOr<AdminAuth> AdminAuth::FromConfig(const zerorl::v1::ServerConfig& config) {
  auto admin = ReadTokenFile(config.token_file());
  if (!admin.ok()) return absl::Status(admin.status().code(), absl::StrCat("server.token_file: ", admin.status().message()));
  auto internal = ReadTokenFile(config.internal_token_file());
  if (!internal.ok())
    return absl::Status(internal.status().code(),
                        absl::StrCat("server.internal_token_file: ", internal.status().message()));
  std::string internal_token = config.internal_token_file().empty() ? ProcessInternalToken() : *internal;
  if (!admin->empty() && *admin == internal_token)
    return absl::InvalidArgumentError(
        "server.internal_token_file holds the admin token (server.token_file): use a different secret, every "
        "actor holds the internal one");
  return AdminAuth(*admin, internal_token, config.private_reads());
}

absl::Status AdminAuth::CheckAdmin(const grpc::ServerContext* ctx) const {
  if (token_.empty())
    return absl::UnauthenticatedError("admin calls are disabled: the server has no token_file");
  auto bearer = BearerOf(ctx->client_metadata());
  if (!bearer.ok()) return bearer.status();
  if (!bearer->has_value())
    return absl::UnauthenticatedError("admin call without a bearer token (use --token-file)");
  if (!ConstantTimeEqual(**bearer, token_)) return absl::UnauthenticatedError("invalid bearer token");
  return absl::OkStatus();
}

absl::Status AdminAuth::Authorize(absl::string_view method,
                                  const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  const std::optional<Access> need = RequiredAccess(method);
  if (!need.has_value())
    return absl::PermissionDeniedError(
        absl::StrCat(method, " is not in the access table (common/auth.cc): refused"));
  if (*need == Access::kAnyone) return absl::OkStatus();
  if (*need == Access::kReader && !private_reads_) return absl::OkStatus();
  if (*need == Access::kActor && internal_.empty()) return absl::OkStatus();  // an unconfigured deployment
  if (*need == Access::kAdmin && token_.empty())
    return absl::UnauthenticatedError(
        absl::StrCat("admin calls are disabled: the server has no token_file (", method, ")"));

  auto bearer = BearerOf(metadata);
  if (!bearer.ok()) return bearer.status();
  const char* wants = *need == Access::kAdmin ? "the admin token (--token-file)"
                                              : "the deployment's internal token (server.internal_token_file) or "
                                                "the admin token";
  if (!bearer->has_value())
    return absl::UnauthenticatedError(absl::StrCat(method, " needs ", wants, "; the call carried no credential"));
  const bool is_admin = !token_.empty() && ConstantTimeEqual(**bearer, token_);
  const bool is_internal = !internal_.empty() && ConstantTimeEqual(**bearer, internal_);
  if (is_admin) return absl::OkStatus();
  if (is_internal && *need != Access::kAdmin) return absl::OkStatus();
  if (is_internal)
    return absl::PermissionDeniedError(
        absl::StrCat(method, " is an admin call: the internal token may not make it (use the admin token)"));
  return absl::UnauthenticatedError(absl::StrCat(method, ": invalid bearer token (it needs ", wants, ")"));
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewAccessInterceptorFactory(
    std::shared_ptr<const AdminAuth> auth) {
  return std::make_unique<AccessInterceptorFactory>(std::move(auth));
}

absl::Status CheckCallAccess(const grpc::ServerContextBase* ctx) {
  std::optional<absl::Status> v = VerdictBoard::Get().Find(ctx);
  if (!v.has_value())
    return absl::PermissionDeniedError("no access verdict for this call: the server runs without the access check");
  return *v;
}

void AttachBearerToken(grpc::ClientContext* ctx, const std::string& token) {
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> NewBearerInterceptorFactory(
    std::string token) {
  return std::make_unique<BearerInterceptorFactory>(std::move(token));
}

std::string ProcessInternalToken() {
  ProcessToken& t = TheProcessToken();
  absl::MutexLock l(&t.mu);
  return t.token;
}

void SetProcessInternalToken(std::string token) {
  ProcessToken& t = TheProcessToken();
  absl::MutexLock l(&t.mu);
  t.token = std::move(token);
}

absl::StatusOr<std::string> NewRandomToken() {
  std::ifstream in("/dev/urandom", std::ios::binary);
  std::string bytes(32, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
    return absl::UnavailableError("cannot read 32 bytes from /dev/urandom for a token");
  return absl::BytesToHexString(bytes);
}

}  // namespace zerorl
