#include "common/server.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/log.h"

namespace zerorl {
namespace {

int MaxMessageBytes(const zerorl::v1::ServerConfig& c) {
  int mb = c.max_message_mb() > 0 ? c.max_message_mb() : 64;
  return mb * 1024 * 1024;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCreds(const zerorl::v1::ServerConfig& c) {
  if (c.tls().cert_file().empty()) return grpc::InsecureServerCredentials();
  auto cert = ReadFile(c.tls().cert_file());
  if (!cert.ok()) return cert.status();
  auto key = ReadFile(c.tls().key_file());
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions opts;
  opts.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(opts);
}

}  // namespace

void ServerHandle::Shutdown(std::chrono::milliseconds grace) {
  auto deadline = std::chrono::system_clock::now() + grace;
  if (health_server) health_server->Shutdown(deadline);
  if (server) server->Shutdown(deadline);
}

absl::StatusOr<ServerHandle> StartServer(const std::string& address,
                                         const std::vector<grpc::Service*>& services,
                                         const zerorl::v1::ServerConfig& config,
                                         std::shared_ptr<const AdminAuth> auth) {
  if (auth == nullptr) return absl::InternalError("StartServer without credentials (AdminAuth)");
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  auto creds = ServerCreds(config);
  if (!creds.ok()) return creds.status();

  ServerHandle h;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, *creds, &h.port);
  builder.SetMaxReceiveMessageSize(MaxMessageBytes(config));
  builder.SetMaxSendMessageSize(MaxMessageBytes(config));
  for (grpc::Service* s : services) builder.RegisterService(s);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(NewAccessInterceptorFactory(std::move(auth)));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  h.server = builder.BuildAndStart();
  if (h.server == nullptr || h.port == 0)
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address,
                                               " (address in use or not valid)"));
  auto* health = h.server->GetHealthCheckService();
  if (health != nullptr) health->SetServingStatus(true);

  if (config.health_port() > 0) {
    grpc::ServerBuilder hb;
    int hport = 0;
    hb.AddListeningPort(absl::StrCat(config.bind_host().empty() ? "0.0.0.0" : config.bind_host(), ":",
                                     config.health_port()),
                        grpc::InsecureServerCredentials(), &hport);
    h.health_server = hb.BuildAndStart();
    if (h.health_server == nullptr || hport == 0)
      return absl::UnavailableError(absl::StrCat("cannot listen on health port ", config.health_port()));
    if (auto* hh = h.health_server->GetHealthCheckService()) hh->SetServingStatus(true);
  }
  return h;
}

absl::StatusOr<std::string> InternalTokenFor(const zerorl::v1::ServerConfig& config) {
  if (config.internal_token_file().empty()) return ProcessInternalToken();
  auto token = ReadTokenFile(config.internal_token_file());
  if (!token.ok())
    return absl::Status(token.status().code(), absl::StrCat("server.internal_token_file: ", token.status().message()));
  return token;
}

std::shared_ptr<grpc::Channel> InProcessChannel(grpc::Server* server, const zerorl::v1::ServerConfig& config,
                                                const std::string& token) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(MaxMessageBytes(config));
  args.SetMaxSendMessageSize(MaxMessageBytes(config));
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!token.empty()) interceptors.push_back(NewBearerInterceptorFactory(token));
  return server->experimental().InProcessChannelWithInterceptors(args, std::move(interceptors));
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const zerorl::v1::ServerConfig& config, bool retry_unavailable) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(MaxMessageBytes(config));
  args.SetMaxSendMessageSize(MaxMessageBytes(config));
  if (retry_unavailable) args.SetServiceConfigJSON(R"({
    "methodConfig": [{
      "name": [{}],
      "retryPolicy": {
        "maxAttempts": 4,
        "initialBackoff": "0.1s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"]
      }
    }]
  })");
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (!config.tls().ca_file().empty()) {
    grpc::SslCredentialsOptions opts;
    auto ca = ReadFile(config.tls().ca_file());
    if (ca.ok()) opts.pem_root_certs = *ca;
    creds = grpc::SslCredentials(opts);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  auto token = InternalTokenFor(config);
  if (!token.ok()) {
    ZLOG(ERROR) << "channel to " << address << ": " << token.status().message();
  }
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (token.ok() && !token->empty()) interceptors.push_back(NewBearerInterceptorFactory(*token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, creds, args, std::move(interceptors));
}

std::unique_ptr<grpc::ClientContext> ContextWithDeadline(std::chrono::milliseconds timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  return ctx;
}

}  // namespace zerorl
