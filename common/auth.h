// Who may call what: the access table of every zerorl RPC, the credentials a
// server checks against it, and the client side that presents them.
//
// Every RPC needs one of four kinds of caller (AccessTable(), one entry per
// full method name "/zerorl.v1.RolloutService/Drain"):
//   kAnyone  health and reflection
//   kReader  read-only queries; anyone, or with ServerConfig.private_reads the
//            internal or the admin token
//   kActor   calls between the actors of one deployment (Train, Append, Lease,
//            Ack, Drain, UpdateWeights, Generate, Score, SaveCheckpoint, ...):
//            the internal token (ServerConfig.internal_token_file) or the
//            admin token; open to anyone when the server has no internal token
//   kAdmin   admin calls (stop a run, swap a reward spec, back up the buffer):
//            the admin token (ServerConfig.token_file) only; refused when the
//            server has none
// A method missing from the table is refused (PERMISSION_DENIED): fail closed.
//
// Both tokens travel as "authorization: Bearer <token>". No credential, or one
// the server does not know: UNAUTHENTICATED. The internal token on an admin
// call, or a method not in the table: PERMISSION_DENIED. Comparison is
// constant-time.
//
// Enforcement: StartServer (common/server.h) installs NewAccessInterceptorFactory
// on every server; the interceptor decides each call from its method name and
// metadata, and every handler's first line returns CheckCallAccess(ctx) — gRPC
// C++ server interceptors cannot reject a call themselves. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/client_interceptor.h>
#include <grpcpp/support/server_interceptor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl {

enum class Access { kAnyone, kReader, kActor, kAdmin };
const char* AccessName(Access a);  // "anyone", "reader", "actor", "admin"

// The table, sorted by method name.
const std::vector<std::pair<absl::string_view, Access>>& AccessTable();
// The entry of `method` ("/pkg.Service/Method"); nullopt when it has none.
std::optional<Access> RequiredAccess(absl::string_view method);

// The credentials one server accepts. (Named for its first job, admin calls;
// it now holds the internal token too.)
class AdminAuth {
 public:
  AdminAuth() = default;  // no tokens: admin calls refused, actor calls open
  explicit AdminAuth(std::string admin_token, std::string internal_token = "", bool private_reads = false)
      : token_(std::move(admin_token)), internal_(std::move(internal_token)), private_reads_(private_reads) {}

  // Reads the admin token from `path` (surrounding whitespace trimmed). An empty path
  // gives an AdminAuth without a token. A missing or empty file is an error.
  static absl::StatusOr<AdminAuth> FromFile(const std::string& path);
  // Reads token_file and internal_token_file (either may be empty) and takes
  // private_reads. Errors name the key and the file. The two tokens must differ.
  static absl::StatusOr<AdminAuth> FromConfig(const zerorl::v1::ServerConfig& config);

  // OK when the call carries the admin token (see the header comment).
  absl::Status CheckAdmin(const grpc::ServerContext* ctx) const;
  // The verdict for one call of `method` carrying `metadata`.
  absl::Status Authorize(absl::string_view method,
                         const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

  bool has_token() const { return !token_.empty(); }
  bool has_internal_token() const { return !internal_.empty(); }
  const std::string& internal_token() const { return internal_; }

 private:
  std::string token_;     // admin
  std::string internal_;  // actors of this deployment
  bool private_reads_ = false;
};

// Server side. The interceptor StartServer installs; `auth` must not be null.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewAccessInterceptorFactory(
    std::shared_ptr<const AdminAuth> auth);
// The interceptor's verdict for the call of `ctx`: every zerorl handler returns
// it when not OK, before reading its request. PERMISSION_DENIED when no verdict
// was recorded (a server started without the interceptor).
absl::Status CheckCallAccess(const grpc::ServerContextBase* ctx);

// Client side. Reads a token file (trimmed). Empty path -> empty token.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);
// Adds "authorization: Bearer <token>" to an outgoing call when token is non-empty.
void AttachBearerToken(grpc::ClientContext* ctx, const std::string& token);
// A client interceptor that adds "authorization: Bearer <token>" to every call
// that does not carry an authorization already (MakeChannel, in-process channels).
std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> NewBearerInterceptorFactory(
    std::string token);

// The internal token this process presents and accepts when
// ServerConfig.internal_token_file is empty: "" unless SetProcessInternalToken
// was called (`zerorl run` sets a fresh random one, see NewRandomToken).
std::string ProcessInternalToken();
void SetProcessInternalToken(std::string token);
// 32 random bytes from the OS, hex-encoded (64 characters).
absl::StatusOr<std::string> NewRandomToken();

}  // namespace zerorl
