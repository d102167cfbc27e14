// SharedStackTest: a GoogleTest fixture whose suite shares one real LocalStack (PostgreSQL, Redis
// and the three servers on free ports), started before the suite's first test and stopped after
// its last. SharedComponentsTest: the same with PostgreSQL and Redis only, for store tests.
// Tests that share one must not depend on each other's data: use distinct ids.
#ifndef MICROLEND_TESTS_HARNESS_SHARED_STACK_TEST_H_
#define MICROLEND_TESTS_HARNESS_SHARED_STACK_TEST_H_

#include "gtest/gtest.h"
#include "harness/local_stack.h"

namespace microlend::testing {

template <bool kStartServers>
class SharedLocalStackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<LocalStack>> started =
        LocalStack::Start({.start_servers = kStartServers});
    ASSERT_TRUE(started.ok()) << started.status();
    stack_ = started->release();
  }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
  }

  static inline LocalStack* stack_ = nullptr;
};

using SharedStackTest = SharedLocalStackTest<true>;
using SharedComponentsTest = SharedLocalStackTest<false>;

}  // namespace microlend::testing

#endif  // MICROLEND_TESTS_HARNESS_SHARED_STACK_TEST_H_
