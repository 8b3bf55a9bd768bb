// Test helper: one gRPC call by method name with raw request bytes — what
// `curl --http2-prior-knowledge -H 'content-type: application/grpc' --data-binary`
// sends — optionally with "authorization: Bearer <token>". Works for every
// method kind (unary or streaming): one request message, then half-close.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/channel.h>
#include <grpcpp/support/status.h>

namespace zerorl::testing {

// Returns the call's status; the response bytes are dropped.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& request_bytes, const std::string& bearer_token = "",
                     std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace zerorl::testing
