// `zerorl serve ROLE`: one actor per process over TCP.
//
// The role's port comes from the config (<role>.listen_port) unless --port is
// given (0 picks a free port). Once listening it prints "listening HOST:PORT"
// on stdout. SIGINT/SIGTERM shut it down gracefully (the actor drains first).
// --check parses the flags and the config, prints what it would serve, and exits.
#include <cstdio>
#include <map>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "buffer/actor.h"
#include "cli/commands.h"
#include "common/config.h"
#include "common/log.h"
#include "common/server.h"
#include "common/shutdown_signal.h"
#include "learner/actor.h"
#include "orchestrator/actor.h"
#include "reward/actor.h"
#include "rollout/actor.h"

namespace zerorl {
namespace {

using ActorFactory = absl::StatusOr<std::unique_ptr<Actor>> (*)(const ActorOptions&);

struct Role {
  ActorFactory factory;
  int (*port)(const zerorl::v1::RunConfig&);
};

const std::map<std::string, Role>& Roles() {
  static const auto* roles = new std::map<std::string, Role>{
      {"rollout", {NewRolloutActor, [](const zerorl::v1::RunConfig& c) { return c.rollout().listen_port(); }}},
      {"reward", {NewRewardActor, [](const zerorl::v1::RunConfig& c) { return c.reward().listen_port(); }}},
      {"buffer", {NewBufferActor, [](const zerorl::v1::RunConfig& c) { return c.buffer().listen_port(); }}},
      {"learner", {NewLearnerActor, [](const zerorl::v1::RunConfig& c) { return c.learner().listen_port(); }}},
      {"orchestrator",
       {NewOrchestratorActor, [](const zerorl::v1::RunConfig& c) { return c.orchestrator().listen_port(); }}},
  };
  return *roles;
}

}  // namespace

int ServeCommand(int argc, char** argv) {
  CLI::App app{"Serve one zerorl actor over TCP.", "zerorl serve"};
  std::string role, config_path, host, advertise;
  int port = -1, health_port = -1;
  bool check = false;
  app.add_option("role", role, "rollout | reward | buffer | learner | orchestrator")->required();
  app.add_option("--config", config_path, "RunConfig YAML (defaults when omitted)");
  app.add_option("--port", port, "port to listen on (default: <role>.listen_port; 0 = any free port)");
  app.add_option("--host", host, "address to bind (default: server.bind_host)");
  app.add_option("--health-port", health_port, "extra plaintext port serving only grpc.health.v1 (probes)");
  app.add_option("--advertise", advertise, "address peers use to reach this actor (default: HOST:PORT)");
  app.add_flag("--check", check, "parse flags and config, print the plan, exit 0");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  const std::pair<const char*, int> port_flags[] = {{"--port", port}, {"--health-port", health_port}};
  for (const auto& [flag, value] : port_flags) {
    if (value == -1) continue;  // not given
    if (auto s = ValidatePort(value, flag, /*allow_zero=*/true); !s.ok()) {
      std::fprintf(stderr, "zerorl serve: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }
  auto it = Roles().find(role);
  if (it == Roles().end()) {
    std::fprintf(stderr, "zerorl serve: unknown role \"%s\" (rollout|reward|buffer|learner|orchestrator)\n",
                 role.c_str());
    return 2;
  }
  absl::StatusOr<zerorl::v1::RunConfig> config =
      config_path.empty() ? absl::StatusOr<zerorl::v1::RunConfig>(DefaultRunConfig()) : LoadRunConfig(config_path);
  if (config.ok() && config_path.empty()) {
    if (auto s = FinalizeRunConfig(&*config); !s.ok()) config = s;
  }
  if (!config.ok()) {
    std::fprintf(stderr, "zerorl serve: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  if (port < 0) port = it->second.port(*config);
  if (host.empty()) host = config->server().bind_host();
  if (health_port >= 0) config->mutable_server()->set_health_port(health_port);
  const std::string address = absl::StrCat(host, ":", port);
  if (check) {
    std::printf("zerorl serve %s: config ok (run %s), would listen on %s\n", role.c_str(),
                config->run_id().c_str(), address.c_str());
    return 0;
  }

  auto auth = AdminAuth::FromConfig(config->server());
  if (!auth.ok()) {
    std::fprintf(stderr, "zerorl serve: %s\n", std::string(auth.status().message()).c_str());
    return 2;
  }
  if (auto s = InstallShutdownSignalHandlers(); !s.ok()) {
    std::fprintf(stderr, "zerorl serve: %s\n", std::string(s.message()).c_str());
    return 1;
  }

  ActorOptions opts;
  opts.config = *config;
  opts.auth = std::make_shared<AdminAuth>(std::move(*auth));
  opts.self_address = advertise.empty() ? absl::StrCat(host == "0.0.0.0" ? "127.0.0.1" : host, ":", port) : advertise;
  auto actor = it->second.factory(opts);
  if (!actor.ok()) {
    std::fprintf(stderr, "zerorl serve %s: %s\n", role.c_str(), std::string(actor.status().message()).c_str());
    return 1;
  }
  if (!opts.auth->has_internal_token()) {
    ZLOG(WARNING) << "server.internal_token_file is not set: actor calls (Train, Append, Lease, Ack, Drain, "
                     "UpdateWeights, ...) are open to anyone who reaches "
                  << address << " (zerorl k8s render sets one up)";
  }
  auto server = StartServer(address, (*actor)->Services(), config->server(), opts.auth);
  if (!server.ok()) {
    std::fprintf(stderr, "zerorl serve %s: %s\n", role.c_str(), std::string(server.status().message()).c_str());
    return 1;
  }
  if (auto s = (*actor)->Start(); !s.ok()) {
    std::fprintf(stderr, "zerorl serve %s: %s\n", role.c_str(), std::string(s.message()).c_str());
    server->Shutdown();
    return 1;
  }
  std::printf("listening %s:%d\n", host.c_str(), server->port);
  std::fflush(stdout);
  ZLOG(INFO) << "serving " << role << " on " << host << ":" << server->port;

  const int sig = WaitForShutdownSignal();
  ZLOG(INFO) << "signal " << sig << ": shutting down " << role;
  (*actor)->Shutdown();
  server->Shutdown();
  return 0;
}

}  // namespace zerorl
