// Actor: one zerorl role (rollout, reward, buffer, learner, orchestrator) as a
// set of gRPC services plus whatever background work it owns.
//
// `zerorl serve ROLE` builds one actor and serves it over TCP; `zerorl run`
// builds them all in one process. Each module provides a factory
// `absl::StatusOr<std::unique_ptr<Actor>> NewXActor(const ActorOptions&)`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/impl/service_type.h>

#include "absl/status/status.h"
#include "common/auth.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl {

struct ActorOptions {
  zerorl::v1::RunConfig config;
  std::shared_ptr<const AdminAuth> auth;  // never null
  std::string self_address;                // how peers reach this actor ("host:port")
};

class Actor {
 public:
  virtual ~Actor() = default;
  // Services to register; owned by the actor, alive until it is destroyed.
  virtual std::vector<grpc::Service*> Services() = 0;
  // Called after the server listens (start background loops here).
  virtual absl::Status Start() { return absl::OkStatus(); }
  // Called before the server shuts down: stop loops, drain, flush state.
  virtual void Shutdown() {}
  // A one-line status for health reports, e.g. "policy version 12".
  virtual std::string Describe() const { return ""; }
};

}  // namespace zerorl
