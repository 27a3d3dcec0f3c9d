// Tests for submission: feasibility before anything exists, inline arguments, reserved returns
// and the task's holds on its inputs, all-or-nothing.
#include "submission.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "store_test_util.h"

namespace ember {
namespace {

using testing_util::kMiB;

/// The runtime region's control block of a node of 2 CPUs and no GPU: zeroed bytes, as the
/// region is before Scheduler::start (make_spec reads only the totals and names).
struct TwoCpus {
  alignas(RuntimeControl) unsigned char bytes[sizeof(RuntimeControl)] = {};
  RuntimeControl* operator->() { return reinterpret_cast<RuntimeControl*>(bytes); }
  RuntimeControl& operator*() { return *reinterpret_cast<RuntimeControl*>(bytes); }
};

std::unique_ptr<TwoCpus> two_cpus() {
  auto rc = std::make_unique<TwoCpus>();
  (*rc)->totals[kResourceCPU] = 2 * kResourceUnit;
  std::strcpy((*rc)->resource_names[kResourceCPU], "CPU");
  std::strcpy((*rc)->resource_names[kResourceGPU], "GPU");
  return rc;
}

int32_t refs_of(Store& s, const ObjectID& id) {
  for (const Store::ObjectInfo& o : s.list_objects()) {
    if (o.id == id) return o.refs;
  }
  return -1;
}

ObjectID put(Store& s, const char* bytes) {
  ObjectID id = s.new_id();
  auto dst = s.create_object(id, std::strlen(bytes));
  EXPECT_TRUE(dst.ok());
  std::memcpy(*dst, bytes, std::strlen(bytes));
  EXPECT_TRUE(s.seal(id).ok());
  return id;
}

TEST(Submission, SpecCarriesTheOptions) {
  auto rc = two_cpus();
  TaskOptions o;
  o.name = "f";
  o.num_returns = 3;
  o.max_retries = -1;
  o.flags = kSpecRetryExceptions;
  o.resources[kResourceCPU] = kResourceUnit / 2;
  ObjectID fn{1, 2};
  std::vector<ObjectID> deps(kMaxDeps + 2, ObjectID{1, 9});
  auto spec = make_spec(**rc, fn, o, deps);
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ(spec->function, fn);
  EXPECT_EQ(spec->num_returns, 3u);
  EXPECT_EQ(spec->max_retries, -1);
  EXPECT_EQ(spec->flags, static_cast<uint32_t>(kSpecRetryExceptions));
  EXPECT_EQ(spec->resources[kResourceCPU], kResourceUnit / 2);
  EXPECT_STREQ(spec->name, "f");
  EXPECT_EQ(spec->num_deps, kMaxDeps) << "a nested submission carries at most kMaxDeps";
}

TEST(Submission, AnInfeasibleTaskIsRefusedNamingTheResource) {
  auto rc = two_cpus();
  TaskOptions o;
  o.name = "big";
  o.resources[kResourceCPU] = 3 * kResourceUnit;
  auto spec = make_spec(**rc, ObjectID{1, 2}, o, {});
  ASSERT_EQ(spec.status().code(), StatusCode::kInvalid);
  const std::string& msg = spec.status().message();
  EXPECT_NE(msg.find("big"), std::string::npos) << msg;
  EXPECT_NE(msg.find("3 CPU"), std::string::npos) << msg;
  EXPECT_NE(msg.find("has 2"), std::string::npos) << msg;
}

TEST(Submission, OnlySmallPlainArgumentsGoInline) {
  TaskSpec spec{};
  EXPECT_TRUE(set_inline_args(spec, "abc", true));
  EXPECT_FALSE(has_args_object(spec));
  EXPECT_EQ(spec.args_inline_len, 3u);
  EXPECT_EQ(std::memcmp(spec.args_inline, "abc", 3), 0);

  TaskSpec with_buffers{};
  EXPECT_FALSE(set_inline_args(with_buffers, "abc", false));
  EXPECT_TRUE(has_args_object(with_buffers));
  TaskSpec too_big{};
  EXPECT_FALSE(set_inline_args(too_big, std::string(kInlineArgs + 1, 'x'), true));
  TaskSpec just_fits{};
  EXPECT_TRUE(set_inline_args(just_fits, std::string(kInlineArgs, 'x'), true));
}

TEST(Submission, ReservedReturnsArePendingAndTheFunctionIsHeld) {
  auto store = testing_util::small_store();
  ObjectID fn = put(*store, "fn");
  TaskSpec spec{};
  spec.function = fn;
  spec.num_returns = 2;
  spec.flags = kSpecNoArgs;
  ASSERT_TRUE(reserve_returns(*store, spec).ok());
  for (uint32_t i = 0; i < 2; ++i) {
    ObjectID r{spec.returns.hi, spec.returns.lo + i};
    EXPECT_TRUE(store->contains(r));
    EXPECT_FALSE(store->is_sealed(r));
  }
  EXPECT_EQ(refs_of(*store, fn), 2);
  release_inputs(*store, spec);
  EXPECT_EQ(refs_of(*store, fn), 1);
}

TEST(Submission, HoldsOnInputsPairUp) {
  auto store = testing_util::small_store();
  TaskSpec spec{};
  spec.function = put(*store, "fn");
  spec.args = put(*store, "args");
  hold_inputs(*store, spec);
  EXPECT_EQ(refs_of(*store, spec.function), 2);
  EXPECT_EQ(refs_of(*store, spec.args), 2);
  release_inputs(*store, spec);
  release_inputs(*store, spec);
  EXPECT_EQ(refs_of(*store, spec.function), -1);
  EXPECT_EQ(refs_of(*store, spec.args), -1);
}

TEST(Submission, AFailedReservationLeavesNothing) {
  auto store = testing_util::small_store();
  TaskSpec spec{};
  spec.function = ObjectID{store->node_tag(), 999'999};  // gone: the hold cannot be taken
  spec.num_returns = 2;
  spec.args = put(*store, "args");  // the task's hold on it, given back on failure
  ASSERT_FALSE(reserve_returns(*store, spec).ok());
  EXPECT_FALSE(store->contains(ObjectID{spec.returns.hi, spec.returns.lo}));
  EXPECT_FALSE(store->contains(ObjectID{spec.returns.hi, spec.returns.lo + 1}));
  EXPECT_FALSE(store->contains(spec.args));
  EXPECT_EQ(store->stats().num_objects, 0u);
}

}  // namespace
}  // namespace ember
