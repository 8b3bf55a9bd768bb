// Bearer-token authentication for admin calls (swap a reward spec, stop a run).
//
// The server holds one token read from a file (ServerConfig.token_file). Admin
// handlers call `CheckAdmin(ctx)`: OK when the request carries
// "authorization: Bearer <token>", UNAUTHENTICATED otherwise (also when the
// server has no token: admin calls are then refused outright). Comparison is
// constant-time. Thread-safe after construction.
#pragma once

#include <string>

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zerorl {

class AdminAuth {
 public:
  AdminAuth() = default;  // no token: every admin call is refused
  explicit AdminAuth(std::string token) : token_(std::move(token)) {}

  // Reads the token from `path` (surrounding whitespace trimmed). An empty path
  // gives an AdminAuth without a token. A missing or empty file is an error.
  static absl::StatusOr<AdminAuth> FromFile(const std::string& path);

  absl::Status CheckAdmin(const grpc::ServerContext* ctx) const;
  bool has_token() const { return !token_.empty(); }

 private:
  std::string token_;
};

// Reads a token file for clients (trimmed). Empty path -> empty token.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Adds "authorization: Bearer <token>" to an outgoing call when token is non-empty.
void AttachBearerToken(grpc::ClientContext* ctx, const std::string& token);

}  // namespace zerorl
