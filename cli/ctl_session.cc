// zerorlctl's connection to a deployment (see ctl_session.h).
#include "cli/ctl_session.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/server.h"
#include "common/status.h"
#include "zerorl/v1/orchestrator.grpc.pb.h"

namespace zerorl::ctl {
namespace {

constexpr char kExitPayload[] = "type.zerorl.dev/zerorlctl.exit_code";

absl::Status WithExitCode(absl::Status s, int code) {
  s.SetPayload(kExitPayload, absl::Cord(absl::StrCat(code)));
  return s;
}

// "10s", "500ms", "2m" (absl durations) or a bare number of seconds.
absl::StatusOr<std::chrono::milliseconds> ParseTimeout(const std::string& text) {
  double seconds = 0;
  absl::Duration d;
  if (absl::SimpleAtod(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d)) {
    return UsageError(absl::StrCat("--timeout: \"", text, "\" is not a duration (e.g. 10s, 500ms, 2m)"));
  }
  if (d <= absl::ZeroDuration())
    return UsageError(absl::StrCat("--timeout: must be positive, got \"", text, "\""));
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

}  // namespace

absl::Status UsageError(absl::string_view message) {
  return WithExitCode(absl::InvalidArgumentError(message), 2);
}

int ExitCodeFor(const absl::Status& status) {
  if (status.ok()) return 0;
  if (auto p = status.GetPayload(kExitPayload)) {
    int code = 1;
    if (absl::SimpleAtoi(std::string(*p), &code)) return code;
  }
  switch (status.code()) {
    case absl::StatusCode::kUnavailable: return 3;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied: return 4;
    default: return 1;
  }
}

Session::Session(GlobalFlags flags, std::ostream& out, Runtime* runtime)
    : flags_(std::move(flags)), out_(out), runtime_(runtime) {}

absl::Status Session::Init() {
  if (flags_.addr.empty()) return UsageError("--addr: empty address");
  const std::pair<const char*, const std::string*> addr_flags[] = {
      {"--addr", &flags_.addr}, {"--buffer-addr", &flags_.buffer_addr}, {"--reward-addr", &flags_.reward_addr}};
  for (const auto& [flag, value] : addr_flags) {
    if (value->empty()) continue;
    if (auto s = ValidateAddress(*value, flag); !s.ok()) return UsageError(std::string(s.message()));
  }
  ZRL_ASSIGN_OR_RETURN(timeout_, ParseTimeout(flags_.timeout));
  std::string mode = absl::AsciiStrToLower(flags_.output);
  if (mode == "table") {
    output_ = OutputMode::kTable;
  } else if (mode == "json") {
    output_ = OutputMode::kJson;
  } else if (mode == "jsonl") {
    output_ = OutputMode::kJsonl;
  } else {
    return UsageError(absl::StrCat("--output: \"", flags_.output, "\" is not one of table, json, jsonl"));
  }
  if (!flags_.tls_ca.empty()) {
    auto ca = ReadFile(flags_.tls_ca);
    if (!ca.ok()) return UsageError(absl::StrCat("--tls-ca: ", ca.status().message()));
    flags_.tls = true;
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> Session::Channel(const std::string& address) {
  auto it = channels_.find(address);
  if (it != channels_.end()) return it->second;
  std::shared_ptr<grpc::Channel> channel;
  if (flags_.tls && flags_.tls_ca.empty()) {
    // TLS against the system roots; MakeChannel only knows explicit CA files.
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    channel = grpc::CreateCustomChannel(address, grpc::SslCredentials(grpc::SslCredentialsOptions()), args);
  } else {
    zerorl::v1::ServerConfig config;
    config.mutable_tls()->set_ca_file(flags_.tls_ca);
    channel = MakeChannel(address, config);
  }
  channels_[address] = channel;
  return channel;
}

std::unique_ptr<grpc::ClientContext> Session::Context() {
  auto ctx = ContextWithDeadline(timeout_);
  // Every call presents --token-file when it can be read (deployments with
  // server.private_reads, and Score for `reward test`); AdminContext reports
  // an unreadable file.
  if (!flags_.token_file.empty() && LoadToken().ok()) AttachBearerToken(ctx.get(), token_);
  return ctx;
}

absl::Status Session::LoadToken() {
  if (token_loaded_) return absl::OkStatus();
  auto token = ReadTokenFile(flags_.token_file);
  if (!token.ok()) return UsageError(absl::StrCat("--token-file: ", token.status().message()));
  token_ = *token;
  token_loaded_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<grpc::ClientContext>> Session::AdminContext() {
  ZRL_RETURN_IF_ERROR(LoadToken());
  return Context();
}

absl::Status Session::CallError(const grpc::Status& status, absl::string_view service,
                                const std::string& address) {
  const std::string where = absl::StrCat(service, " at ", address);
  const std::string detail = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return WithExitCode(
          absl::UnavailableError(absl::StrCat("cannot reach ", where, ": ", detail,
                                              " (is it running? set --addr or $ZERORL_ADDR)")),
          3);
    case grpc::StatusCode::DEADLINE_EXCEEDED: {
      auto state = Channel(address)->GetState(false);
      if (state != GRPC_CHANNEL_READY)
        return WithExitCode(absl::UnavailableError(absl::StrCat("cannot reach ", where, ": no connection within ",
                                                                flags_.timeout, " (is it running?)")),
                            3);
      return WithExitCode(absl::DeadlineExceededError(absl::StrCat(where, " did not answer within ",
                                                                   flags_.timeout, " (raise --timeout)")),
                          1);
    }
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return WithExitCode(absl::UnauthenticatedError(absl::StrCat(
                              "unauthenticated: ", where, " refused the call: ", detail,
                              flags_.token_file.empty() ? " (admin calls need --token-file)" : "")),
                          4);
    case grpc::StatusCode::UNIMPLEMENTED:
      return WithExitCode(absl::UnimplementedError(absl::StrCat(
                              where, " does not implement this call", detail.empty() ? "" : " (" + detail + ")",
                              "; is that the right address? see --addr, --buffer-addr, --reward-addr")),
                          1);
    default:
      return WithExitCode(absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                                       absl::StrCat(where, ": ", detail)),
                          1);
  }
}

absl::StatusOr<std::string> Session::ResolveFromOrchestrator(const std::string& run, bool buffer) {
  const std::string key = absl::StrCat(buffer ? "b:" : "r:", run);
  if (auto it = resolved_.find(key); it != resolved_.end()) return it->second;
  auto stub = zerorl::v1::OrchestratorService::NewStub(Channel(flags_.addr));
  std::string found;
  auto pick = [&](const zerorl::v1::RunInfo& info) {
    return buffer ? info.buffer_address() : info.reward_address();
  };
  grpc::Status st;
  if (!run.empty()) {
    zerorl::v1::RunRef ref;
    ref.set_run_id(run);
    zerorl::v1::RunInfo info;
    auto ctx = Context();
    st = stub->GetRun(ctx.get(), ref, &info);
    if (st.ok()) found = pick(info);
  } else {
    zerorl::v1::RunList list;
    auto ctx = Context();
    st = stub->ListRuns(ctx.get(), zerorl::v1::ListRunInfosRequest(), &list);
    for (const auto& info : list.runs()) {
      if (!pick(info).empty()) {
        found = pick(info);
        break;
      }
    }
  }
  // Unreachable: the fallback is the same address, so say so now rather than
  // waiting a second deadline. Any other answer (UNIMPLEMENTED: --addr is not an
  // orchestrator; NOT_FOUND: the run is unknown to it) falls back to --addr.
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE || st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
    return CallError(st, "orchestrator", flags_.addr);
  if (found.empty()) found = flags_.addr;
  resolved_[key] = found;
  return found;
}

absl::StatusOr<std::string> Session::BufferAddress(const std::string& run) {
  if (!flags_.buffer_addr.empty()) return flags_.buffer_addr;
  return ResolveFromOrchestrator(run, /*buffer=*/true);
}

absl::StatusOr<std::string> Session::RewardAddress(const std::string& run) {
  if (!flags_.reward_addr.empty()) return flags_.reward_addr;
  return ResolveFromOrchestrator(run, /*buffer=*/false);
}

}  // namespace zerorl::ctl
