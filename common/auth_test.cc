#include "common/auth.h"

#include <gtest/gtest.h>

#include <fstream>

namespace zerorl {
namespace {

TEST(AuthTest, TokenFileIsTrimmedAndEmptyRejected) {
  std::string p = ::testing::TempDir() + "/tok";
  std::ofstream(p) << "  s3cret\n";
  auto t = ReadTokenFile(p);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, "s3cret");
  std::ofstream(p) << "\n";
  EXPECT_FALSE(ReadTokenFile(p).ok());
  EXPECT_EQ(ReadTokenFile("/nonexistent/tok").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(ReadTokenFile("").ok());
}

TEST(AuthTest, NoTokenRefusesAdmin) {
  AdminAuth auth;
  EXPECT_FALSE(auth.has_token());
}

}  // namespace
}  // namespace zerorl
