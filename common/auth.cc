#include "common/auth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/config.h"

namespace zerorl {

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

absl::Status AdminAuth::CheckAdmin(const grpc::ServerContext* ctx) const {
  if (token_.empty())
    return absl::UnauthenticatedError("admin calls are disabled: the server has no token_file");
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end())
    return absl::UnauthenticatedError("admin call without a bearer token (use --token-file)");
  absl::string_view v(it->second.data(), it->second.size());
  constexpr absl::string_view kPrefix = "Bearer ";
  if (v.substr(0, kPrefix.size()) != kPrefix)
    return absl::UnauthenticatedError("authorization metadata is not a bearer token");
  v.remove_prefix(kPrefix.size());
  unsigned diff = v.size() ^ token_.size();
  for (size_t i = 0; i < token_.size(); ++i) diff |= static_cast<unsigned>(token_[i] ^ (i < v.size() ? v[i] : 0));
  if (diff != 0) return absl::UnauthenticatedError("invalid bearer token");
  return absl::OkStatus();
}

void AttachBearerToken(grpc::ClientContext* ctx, const std::string& token) {
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

}  // namespace zerorl
