#include "common/status.h"

#include <gtest/gtest.h>

namespace zerorl {
namespace {

TEST(StatusTest, CodesAndMessagesMapBothWays) {
  const absl::Status cases[] = {
      absl::InvalidArgumentError("bad key"), absl::NotFoundError("no run"),
      absl::UnavailableError("down"),        absl::ResourceExhaustedError("too big"),
      absl::UnauthenticatedError("token"),   absl::FailedPreconditionError("state"),
      absl::AbortedError("retry"),           absl::DeadlineExceededError("slow"),
  };
  for (const absl::Status& s : cases) {
    grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), static_cast<int>(s.code()));
    EXPECT_EQ(g.error_message(), s.message());
    EXPECT_EQ(FromGrpcStatus(g), s);
  }
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("x")).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ToGrpcStatus(absl::UnauthenticatedError("x")).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(StatusTest, AnnotatePrefixesContext) {
  EXPECT_EQ(Annotate(absl::NotFoundError("x"), "loading a").message(), "loading a: x");
  EXPECT_TRUE(Annotate(absl::OkStatus(), "ctx").ok());
}

absl::StatusOr<int> Half(int x) {
  if (x % 2) return absl::InvalidArgumentError("odd");
  return x / 2;
}
absl::StatusOr<int> Quarter(int x) {
  ZRL_ASSIGN_OR_RETURN(int h, Half(x));
  ZRL_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(StatusTest, Macros) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd");
}

}  // namespace
}  // namespace zerorl
