#include "common/net.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace zerorl {
namespace {

TEST(NetTest, AFreePortAcceptsOnlyOnceSomethingListensOnIt) {
  auto port = FreeLoopbackPort();
  ASSERT_TRUE(port.ok()) << port.status();
  ASSERT_GT(*port, 0);
  ASSERT_LT(*port, 65536);
  EXPECT_FALSE(LoopbackAccepts(*port));

  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(*port));
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << "the free port was taken";
  ASSERT_EQ(listen(fd, 1), 0);
  EXPECT_TRUE(LoopbackAccepts(*port));
  close(fd);
  EXPECT_FALSE(LoopbackAccepts(*port));
}

TEST(NetTest, TwoFreePortsInARowAreBothUsable) {
  auto a = FreeLoopbackPort(), b = FreeLoopbackPort();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(LoopbackAccepts(*a));
  EXPECT_FALSE(LoopbackAccepts(*b));
}

}  // namespace
}  // namespace zerorl
