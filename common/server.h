// gRPC servers and channels configured the zerorl way.
//
// Every server registers grpc.health.v1.Health (each service SERVING once
// started) and server reflection, honours ServerConfig (TLS, message size) and
// can additionally listen on a plaintext health-only port for Kubernetes probes.
// Every server also decides who may call what (common/auth.h): its handlers
// return CheckCallAccess(ctx) first. Channels carry a service config with a
// retry policy for UNAVAILABLE, so callers do not write retry loops; every call
// still sets its own deadline; and they present the deployment's internal token.
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
#include "common/auth.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl {

struct ServerHandle {
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<grpc::Server> health_server;  // plaintext probes port, may be null
  int port = 0;                                 // the bound port (useful with port 0)
  void Shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));
};

// Listens on `address` ("host:port"; port 0 picks a free one) and serves
// `services`, deciding every call against the access table with `auth`'s
// credentials (not null; the health-only port serves health alone, to anyone).
absl::StatusOr<ServerHandle> StartServer(const std::string& address,
                                         const std::vector<grpc::Service*>& services,
                                         const zerorl::v1::ServerConfig& config,
                                         std::shared_ptr<const AdminAuth> auth);

// A client channel to `address`, TLS when config.tls.ca_file is set;
// `retry_unavailable` false leaves out the service config's retry policy. Every
// call on it carries the internal token (config.internal_token_file, else
// ProcessInternalToken()) unless it sets an authorization of its own; an
// unreadable token file is logged and the calls go without (the server then
// answers UNAUTHENTICATED naming the key).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const zerorl::v1::ServerConfig& config, bool retry_unavailable = true);

// The token MakeChannel presents for `config` ("" = none).
absl::StatusOr<std::string> InternalTokenFor(const zerorl::v1::ServerConfig& config);

// An in-process channel to `server` that presents `token` (when not empty).
std::shared_ptr<grpc::Channel> InProcessChannel(grpc::Server* server, const zerorl::v1::ServerConfig& config,
                                                const std::string& token);

// A client context with a deadline `timeout` from now.
std::unique_ptr<grpc::ClientContext> ContextWithDeadline(std::chrono::milliseconds timeout);

}  // namespace zerorl
