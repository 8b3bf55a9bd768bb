// absl::Status <-> grpc::Status, mapped once at the gRPC edge.
// absl and gRPC share the canonical code numbering, so codes map one to one;
// the message travels unchanged.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zerorl {

grpc::Status ToGrpcStatus(const absl::Status& s);
absl::Status FromGrpcStatus(const grpc::Status& s);

// Prefixes the message of a non-OK status with context ("loading x: ...").
absl::Status Annotate(const absl::Status& s, absl::string_view context);

}  // namespace zerorl

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define ZRL_RETURN_IF_ERROR(expr)                 \
  do {                                            \
    ::absl::Status _zrl_st = (expr);              \
    if (!_zrl_st.ok()) return _zrl_st;            \
  } while (0)

#define ZRL_CONCAT_INNER(a, b) a##b
#define ZRL_CONCAT(a, b) ZRL_CONCAT_INNER(a, b)
// ZRL_ASSIGN_OR_RETURN(auto x, StatusOrExpr());
#define ZRL_ASSIGN_OR_RETURN(lhs, expr) \
  ZRL_ASSIGN_OR_RETURN_IMPL(ZRL_CONCAT(_zrl_sor_, __LINE__), lhs, expr)
#define ZRL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
