// gRPC servers and channels configured the zerorl way.
//
// Every server registers grpc.health.v1.Health (each service SERVING once
// started) and server reflection, honours ServerConfig (TLS, message size) and
// can additionally listen on a plaintext health-only port for Kubernetes probes.
// Channels carry a service config with a retry policy for UNAVAILABLE, so
// callers do not write retry loops; every call still sets its own deadline.
// The orchestrator owns its retries (orchestrator/call_policy.h: deadlines, an
// outage budget) and asks for channels without that policy.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/server.h>

#include "absl/status/statusor.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl {

struct ServerHandle {
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<grpc::Server> health_server;  // plaintext probes port, may be null
  int port = 0;                                 // the bound port (useful with port 0)
  void Shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));
};

// Listens on `address` ("host:port"; port 0 picks a free one) and serves `services`.
absl::StatusOr<ServerHandle> StartServer(const std::string& address,
                                         const std::vector<grpc::Service*>& services,
                                         const zerorl::v1::ServerConfig& config);

// A client channel to `address`, TLS when config.tls.ca_file is set;
// `retry_unavailable` false leaves out the service config's retry policy.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const zerorl::v1::ServerConfig& config, bool retry_unavailable = true);

// A client context with a deadline `timeout` from now.
std::unique_ptr<grpc::ClientContext> ContextWithDeadline(std::chrono::milliseconds timeout);

}  // namespace zerorl
