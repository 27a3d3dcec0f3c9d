// ActorTable without processes: slots marked ready by hand, the claim CAS standing in for the
// actor's worker, and hooks that record failures and signals instead of writing errors and
// killing. Checks creation first (and its resources), call order (A2), restarts re-queueing
// creation then unfinished calls, death failing every call with its reason (A4), the hold on
// the class (A3), kills before the process is up, and unreferenced actors (A5): asked to end,
// killed if they outstay their time.
#include "actors.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime_test_util.h"
#include "store.h"

namespace ember {
namespace {

constexpr int64_t U = kResourceUnit;

class ActorsTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kWorkers = 4;
  static constexpr uint32_t kRecords = 64;
  RuntimeLayout layout_{kWorkers, kRecords};
  std::shared_ptr<Store> store_ = testing_util::runtime_store(layout_);
  RuntimeControl* rc_ = testing_util::runtime_control(*store_);
  int64_t totals_[kMaxResources] = {2 * U, 1 * U};
  NodeResources resources_{nullptr, totals_, nullptr};
  WorkerPool workers_{rc_, layout_, kWorkers, /*num_cpus=*/1};
  TaskTable table_{reinterpret_cast<TaskRecord*>(store_->runtime_region() + layout_.records_at),
                   kRecords};
  TaskEvents events_{100};
  Dispatcher dispatch_{*store_, rc_, workers_, resources_, table_, events_};

  struct Failure {
    std::string name;
    ErrorKind kind;
    std::string msg;
  };
  std::vector<Failure> failed_;
  std::vector<std::pair<int32_t, int>> signals_;
  ActorTable::Hooks hooks() {
    return ActorTable::Hooks{
        [this](const TaskSpec& s, ErrorKind k, const std::string& m) {
          failed_.push_back({s.name, k, m});
        },
        [this](int32_t pid, int sig) { signals_.emplace_back(pid, sig); }};
  }
  ActorTable actors_{*store_, rc_, workers_, resources_, table_, events_, dispatch_, hooks()};
  ObjectID cls_ = [this] {  // the actor's class, held by the test (mine=false) and the actor
    ObjectID id = store_->new_id();
    EXPECT_TRUE(store_->create_object(id, 8, false, /*mine=*/false).ok());
    EXPECT_TRUE(store_->seal(id).ok());
    return id;
  }();

  TaskSpec creation(uint32_t id, double cpus = 1, double gpus = 0, bool hold = false) {
    TaskSpec s{};
    std::strncpy(s.name, "Counter", sizeof s.name - 1);
    s.function = cls_;
    s.returns = store_->new_id();
    s.num_returns = 1;
    s.flags = kSpecNoArgs | (hold ? uint32_t{kSpecHoldResources} : 0u);
    s.resources[kResourceCPU] = static_cast<int64_t>(cpus * U);
    s.resources[kResourceGPU] = static_cast<int64_t>(gpus * U);
    s.actor = id;
    return s;
  }
  static TaskSpec call(uint32_t id, const char* name) {
    TaskSpec s{};
    std::strncpy(s.name, name, sizeof s.name - 1);
    s.flags = kSpecActorMethod | kSpecNoArgs;
    s.num_returns = 1;
    s.actor = id;
    return s;
  }
  /// The forkserver and the new process: pop the request, announce, and the scheduler notices.
  SpawnRequest up(uint32_t w) { return up(w, actors_); }
  SpawnRequest up(uint32_t w, ActorTable& actors) {
    SpawnRequest req{};
    EXPECT_TRUE(rc_->spawn.try_pop(req));
    EXPECT_EQ(req.slot, w);
    workers_.slot(w)->pid.store(7000 + static_cast<int32_t>(w));
    workers_.slot(w)->state.store(static_cast<uint32_t>(WorkerState::kReady));
    EXPECT_TRUE(workers_.announced(w));
    workers_.mark_ready(w);
    actors.on_ready(w);
    return req;
  }
  /// The actor's worker claims its next ref; returns the record index (or -1).
  int64_t claim_next(uint32_t w) {
    TaskRef ref;
    while (workers_.slot(w)->inbound.try_pop(ref)) {
      uint64_t expected = make_claim(ref.gen, 0, TaskState::kQueued);
      if (table_.record(ref.index).claim.compare_exchange_strong(
              expected, make_claim(ref.gen, w, TaskState::kRunning))) {
        return ref.index;
      }
      workers_.slot(w)->done.fetch_add(1);
    }
    return -1;
  }
  void finish(uint32_t w, int64_t index) {
    TaskRecord& r = table_.record(static_cast<uint32_t>(index));
    r.claim.store(make_claim(claim_gen(r.claim.load()), w, TaskState::kDone));
    workers_.slot(w)->done.fetch_add(1);
  }
  std::string name_of(int64_t index) { return table_.record(static_cast<uint32_t>(index)).spec.name; }
  /// Worker `w` runs everything in its ring: the names, in the order it claimed them.
  std::vector<std::string> run_all(uint32_t w) {
    std::vector<std::string> order;
    for (int64_t i; (i = claim_next(w)) >= 0;) {
      order.push_back(name_of(i));
      finish(w, i);
    }
    return order;
  }
};

TEST_F(ActorsTest, CreationTakesAFreeSlotAndRunsFirst) {
  ASSERT_TRUE(workers_.spawn(0));  // a task worker has slot 0
  SpawnRequest req{};
  ASSERT_TRUE(rc_->spawn.try_pop(req));
  ASSERT_TRUE(actors_.create(creation(5), {}, 0, 0, false).ok());
  ActorInfo* a = actors_.find(5);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->slot, 1u);
  EXPECT_EQ(workers_.info(1).actor, 5u);  // A1: never a task worker
  actors_.submit_call(*a, call(5, "Counter.add"), {});  // not up yet: waits behind creation
  EXPECT_EQ(a->calls.size(), 2u);
  EXPECT_TRUE(actors_.calls_waiting());
  SpawnRequest r = up(1);
  EXPECT_EQ(r.actor, 1u);  // the forkserver preloads the actor runtime
  actors_.dispatch_calls();
  EXPECT_TRUE(a->calls.empty());
  EXPECT_FALSE(actors_.calls_waiting());
  const int64_t first = claim_next(1);
  ASSERT_GE(first, 0);
  EXPECT_NE(table_.record(static_cast<uint32_t>(first)).spec.flags & kSpecActorCreate, 0u);
  EXPECT_EQ(resources_.available()[kResourceCPU], 2 * U);  // it needed 1 CPU, keeps none
}

TEST_F(ActorsTest, ACreationWaitsForItsResourcesAndHoldsThemWhenAsked) {
  Lease other;
  ASSERT_TRUE(resources_.lease(other, totals_, Placement{}, false));  // the node is busy
  ASSERT_TRUE(actors_.create(creation(1, 1, 1, /*hold=*/true), {}, 0, 0, false).ok());
  up(0);
  actors_.dispatch_calls();
  EXPECT_EQ(actors_.find(1)->calls.size(), 1u);  // waits for a CPU and the GPU
  resources_.end(other);
  actors_.dispatch_calls();
  EXPECT_TRUE(actors_.find(1)->calls.empty());
  const int64_t idx = claim_next(0);
  ASSERT_GE(idx, 0);
  EXPECT_EQ(table_.record(static_cast<uint32_t>(idx)).gpu_mask, 0b1u);  // CUDA_VISIBLE_DEVICES
  EXPECT_EQ(resources_.available()[kResourceCPU], 1 * U);
  EXPECT_EQ(resources_.available()[kResourceGPU], 0);
  finish(0, idx);
  actors_.reap(0, "worker pid=7000 killed by signal 9 (SIGKILL).");  // no restarts left
  EXPECT_TRUE(actors_.find(1)->dead);
  EXPECT_EQ(resources_.available()[kResourceCPU], 2 * U);  // the hold went back with it
  EXPECT_EQ(resources_.free_gpus(), 0b1u);
  EXPECT_EQ(workers_.info(0).state, WorkerState::kUnused);
}

TEST_F(ActorsTest, CallsFromOneCallerKeepTheirOrder) {
  ASSERT_TRUE(actors_.create(creation(3), {}, 0, 0, false).ok());
  up(0);
  actors_.dispatch_calls();
  ActorInfo& a = *actors_.find(3);
  actors_.submit_call(a, call(3, "one"), {});
  EXPECT_TRUE(a.calls.empty());  // straight into the ring
  const ObjectID dep = store_->new_id();
  ASSERT_TRUE(store_->create_object(dep, 8, false, false).ok());
  actors_.submit_call(a, call(3, "two"), {dep});
  actors_.submit_call(a, call(3, "three"), {});  // ready, but "two" is ahead of it (A2)
  EXPECT_EQ(a.calls.size(), 2u);
  actors_.dispatch_calls();
  EXPECT_EQ(a.calls.size(), 2u);
  ASSERT_TRUE(store_->seal(dep).ok());
  actors_.dispatch_calls();
  EXPECT_TRUE(a.calls.empty());
  EXPECT_EQ(run_all(0), (std::vector<std::string>{"Counter", "one", "two", "three"}));
}

TEST_F(ActorsTest, AWaitingCallHoldsUpOnlyItsOwnCallersLaterCalls) {
  ASSERT_TRUE(actors_.create(creation(3), {}, 0, 0, false).ok());
  up(0);
  ActorInfo& a = *actors_.find(3);
  const uint32_t driver = kDriverCaller;
  const uint32_t worker = 1 + 2;  // a worker in slot 2
  actors_.submit_call(a, call(3, "early"), {}, worker);  // before the creation ran: waits
  actors_.dispatch_calls();
  EXPECT_EQ(run_all(0), (std::vector<std::string>{"Counter", "early"}));
  const ObjectID dep = store_->new_id();
  ASSERT_TRUE(store_->create_object(dep, 8, false, false).ok());
  actors_.submit_call(a, call(3, "slow"), {dep}, driver);
  actors_.submit_call(a, call(3, "after slow"), {}, driver);  // the same caller: behind it
  actors_.submit_call(a, call(3, "other"), {}, worker);       // another caller: passes it
  EXPECT_EQ(a.calls.size(), 2u);
  actors_.dispatch_calls();
  EXPECT_EQ(run_all(0), std::vector<std::string>{"other"});
  ASSERT_TRUE(store_->seal(dep).ok());
  actors_.dispatch_calls();
  EXPECT_EQ(run_all(0), (std::vector<std::string>{"slow", "after slow"}));
}

TEST_F(ActorsTest, ARestartRunsCreationThenWhatItHadThenWhatWaited) {
  ASSERT_TRUE(actors_.create(creation(2), {}, /*max_restarts=*/1, /*max_task_retries=*/0,
                             false).ok());
  const SpawnRequest first = up(0);
  actors_.dispatch_calls();
  ActorInfo& a = *actors_.find(2);
  finish(0, claim_next(0));  // __init__ done
  actors_.submit_call(a, call(2, "running"), {});
  actors_.submit_call(a, call(2, "queued"), {});
  const ObjectID dep = store_->new_id();
  ASSERT_TRUE(store_->create_object(dep, 8, false, false).ok());
  actors_.submit_call(a, call(2, "waiting"), {dep});
  ASSERT_GE(claim_next(0), 0);  // "running" runs; "queued" sits in the ring
  workers_.slot(0)->state.store(static_cast<uint32_t>(WorkerState::kExited));
  actors_.reap(0, "worker pid=7000 exited with code 1.");
  // "running" ran and has no task retries: it fails, unavailable (the actor comes back, as in
  // Ray); "queued" never ran: it goes again.
  ASSERT_EQ(failed_.size(), 1u);
  EXPECT_EQ(failed_[0].name, "running");
  EXPECT_EQ(failed_[0].kind, ErrorKind::kActorUnavailable);
  EXPECT_EQ(failed_[0].msg,
            "actor call running failed: worker pid=7000 exited with code 1. The actor is "
            "restarting: it takes calls again once it is up.");
  ASSERT_EQ(a.calls.size(), 3u);
  EXPECT_NE(a.calls[0].spec.flags & kSpecActorCreate, 0u);
  EXPECT_STREQ(a.calls[1].spec.name, "queued");
  EXPECT_STREQ(a.calls[2].spec.name, "waiting");
  EXPECT_EQ(a.restarts_left, 0);
  EXPECT_FALSE(a.dead);
  EXPECT_EQ(table_.free_count(), kRecords);  // every record freed, __init__'s finished one too
  EXPECT_EQ(events_.size(), 0u);  // (the stand-in worker never set started_ns)
  const SpawnRequest second = up(0);         // the same slot, a new process
  EXPECT_EQ(second.generation, first.generation + 1);
}

TEST_F(ActorsTest, ACallsOwnMaxTaskRetriesDecidesWhetherItRunsAgain) {
  ASSERT_TRUE(actors_.create(creation(2), {}, /*max_restarts=*/2, /*max_task_retries=*/0,
                             false).ok());
  up(0);
  actors_.dispatch_calls();
  ActorInfo& a = *actors_.find(2);
  finish(0, claim_next(0));  // __init__ done
  TaskSpec own = call(2, "own");  // @method(max_task_retries=1): A9
  own.flags |= kSpecOwnRetries;
  own.max_retries = 1;
  actors_.submit_call(a, own, {});
  ASSERT_GE(claim_next(0), 0);
  workers_.slot(0)->state.store(static_cast<uint32_t>(WorkerState::kExited));
  actors_.reap(0, "worker pid=7000 exited with code 1.");
  EXPECT_TRUE(failed_.empty()) << "the actor's max_task_retries=0 is not the call's";
  ASSERT_EQ(a.calls.size(), 2u);
  EXPECT_STREQ(a.calls[1].spec.name, "own");
  EXPECT_EQ(a.calls[1].spec.attempt, 1u);
  up(0);
  actors_.dispatch_calls();
  finish(0, claim_next(0));  // __init__ again
  ASSERT_GE(claim_next(0), 0);  // "own", its second run: it dies with the actor once more
  workers_.slot(0)->state.store(static_cast<uint32_t>(WorkerState::kExited));
  actors_.reap(0, "worker pid=7001 exited with code 1.");
  ASSERT_EQ(failed_.size(), 1u);  // its one retry is used up
  EXPECT_EQ(failed_[0].name, "own");
  EXPECT_EQ(failed_[0].kind, ErrorKind::kActorUnavailable);
}

TEST_F(ActorsTest, ACallRunAgainAfterARestartWaitsOutTheRetryDelayAndSoDoTheOnesBehind) {
  ActorTable actors{*store_, rc_, workers_, resources_, table_, events_, dispatch_, hooks(),
                    ActorTiming{/*graceful_shutdown_ms=*/0, /*retry_delay_ms=*/30}};
  ASSERT_TRUE(actors.create(creation(3), {}, /*max_restarts=*/1, /*max_task_retries=*/1,
                            false).ok());
  up(0, actors);
  actors.dispatch_calls();
  ActorInfo& a = *actors.find(3);
  finish(0, claim_next(0));  // __init__ done
  actors.submit_call(a, call(3, "ran"), {});
  actors.submit_call(a, call(3, "behind"), {});
  ASSERT_GE(claim_next(0), 0);  // "ran" runs; "behind" sits in the ring
  workers_.slot(0)->state.store(static_cast<uint32_t>(WorkerState::kExited));
  actors.reap(0, "worker pid=7000 exited with code 1.");
  up(0, actors);
  actors.submit_call(a, call(3, "another caller's"), {}, /*caller=*/5);
  actors.dispatch_calls();
  EXPECT_EQ(run_all(0), std::vector<std::string>{"Counter"});  // __init__ at once
  actors.dispatch_calls();
  EXPECT_TRUE(run_all(0).empty());  // "ran" waits out its delay; every call waits behind it
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  actors.dispatch_calls();
  EXPECT_EQ(run_all(0), (std::vector<std::string>{"ran", "behind", "another caller's"}));
  EXPECT_TRUE(failed_.empty());
}

TEST_F(ActorsTest, ADeadActorFailsEveryCallWithItsReason) {
  ASSERT_TRUE(actors_.create(creation(4), {}, 0, 0, false).ok());
  up(0);
  ActorInfo& a = *actors_.find(4);
  actors_.submit_call(a, call(4, "waiting"), {});
  actors_.reap(0, "worker pid=7000 killed by signal 11 (SIGSEGV).");
  ASSERT_EQ(failed_.size(), 2u);  // the creation that never ran, and the call behind it
  EXPECT_EQ(failed_[0].name, "Counter");
  EXPECT_EQ(failed_[1].name, "waiting");
  EXPECT_EQ(failed_[1].msg,
            "the actor Counter is dead: worker pid=7000 killed by signal 11 (SIGSEGV).");
  actors_.submit_call(a, call(4, "later"), {});  // A4: the reason, not "no such actor"
  ASSERT_EQ(failed_.size(), 3u);
  EXPECT_EQ(failed_[2].msg, failed_[1].msg);
}

TEST_F(ActorsTest, TheActorHoldsItsClassForItsLife) {
  ASSERT_TRUE(actors_.create(creation(6), {}, 0, 0, false).ok());
  up(0);
  store_->release_ref(cls_, /*mine=*/false);  // the handle's side lets go
  EXPECT_TRUE(store_->contains(cls_));        // A3: the actor still holds it
  actors_.dispatch_calls();
  finish(0, claim_next(0));
  actors_.reap(0, "gone");
  EXPECT_TRUE(actors_.find(6)->dead);
  EXPECT_FALSE(store_->contains(cls_));  // released with the actor, exactly once
}

TEST_F(ActorsTest, AKillBeforeTheProcessIsUpLandsWhenItIs) {
  ASSERT_TRUE(actors_.create(creation(8), {}, 3, 0, false).ok());
  actors_.kill(8, /*no_restart=*/true);
  EXPECT_TRUE(signals_.empty());
  up(0);
  ASSERT_EQ(signals_.size(), 1u);
  EXPECT_EQ(signals_[0], std::make_pair(7000, SIGKILL));
  actors_.reap(0, "worker pid=7000 killed by signal 9 (SIGKILL).");
  EXPECT_TRUE(actors_.find(8)->dead);  // restarts left, but killed for good
  EXPECT_NE(actors_.find(8)->death.find("killed with ember.kill()"), std::string::npos);
}

TEST_F(ActorsTest, AnActorThatLeavesOnPurposeIsNotRestarted) {
  ASSERT_TRUE(actors_.create(creation(9), {}, -1, 0, false).ok());
  up(0);
  workers_.slot(0)->exit_intended.store(1);
  actors_.reap(0, "exited with code 0");
  EXPECT_TRUE(actors_.find(9)->dead);
  EXPECT_NE(actors_.find(9)->death.find("exit_actor()"), std::string::npos);
  EXPECT_EQ(workers_.slot(0)->exit_intended.load(), 0u);  // the slot is clean for reuse
}

TEST_F(ActorsTest, UnreferencedActorsEndOnceIdleUnlessDetached) {
  TaskSpec c = creation(10);
  TaskSpec d = creation(11);
  for (const ObjectID& ready : {c.returns, d.returns}) {  // the handles' ready objects
    ASSERT_TRUE(store_->create_object(ready, 8, false, /*mine=*/false).ok());
    ASSERT_TRUE(store_->seal(ready).ok());
  }
  ASSERT_TRUE(actors_.create(c, {}, 0, 0, false).ok());
  ASSERT_TRUE(actors_.create(d, {}, 0, 0, /*detached=*/true).ok());
  up(0);
  up(1);
  actors_.dispatch_calls();
  actors_.kill_unreferenced();
  EXPECT_TRUE(signals_.empty());  // handles exist
  store_->release_ref(c.returns, false);
  store_->release_ref(d.returns, false);
  actors_.kill_unreferenced();
  EXPECT_TRUE(signals_.empty());  // its __init__ is still in its ring: let it run
  finish(0, claim_next(0));
  finish(1, claim_next(1));
  actors_.kill_unreferenced();
  ASSERT_EQ(signals_.size(), 1u);  // the detached one lives on
  EXPECT_EQ(signals_[0].first, 7000);
  EXPECT_TRUE(actors_.find(10)->no_restart);
  actors_.kill_unreferenced();
  EXPECT_EQ(signals_.size(), 1u);  // once
}

TEST_F(ActorsTest, AnUnreferencedActorIsAskedToEndAndKilledOnlyIfItOutstaysItsTime) {
  ActorTable actors{*store_, rc_, workers_, resources_, table_, events_, dispatch_, hooks(),
                    ActorTiming{/*graceful_shutdown_ms=*/30}};
  TaskSpec lingers = creation(12);
  TaskSpec leaves = creation(13);
  for (const ObjectID& ready : {lingers.returns, leaves.returns}) {
    ASSERT_TRUE(store_->create_object(ready, 8, false, /*mine=*/false).ok());
    ASSERT_TRUE(store_->seal(ready).ok());
  }
  ASSERT_TRUE(actors.create(lingers, {}, /*max_restarts=*/-1, 0, false).ok());
  ASSERT_TRUE(actors.create(leaves, {}, /*max_restarts=*/-1, 0, false).ok());
  up(0, actors);
  up(1, actors);
  actors.dispatch_calls();
  finish(0, claim_next(0));  // the __init__s
  finish(1, claim_next(1));
  store_->release_ref(lingers.returns, false);
  store_->release_ref(leaves.returns, false);
  actors.kill_unreferenced();
  EXPECT_TRUE(signals_.empty());  // asked, not killed
  for (uint32_t w : {0u, 1u}) {
    const int64_t end = claim_next(w);
    ASSERT_GE(end, 0);
    EXPECT_EQ(name_of(end), "Counter.__ray_terminate__");
    EXPECT_EQ(table_.record(static_cast<uint32_t>(end)).spec.num_returns, 0u);
    if (w == 1) finish(w, end);
  }
  EXPECT_TRUE(actors.find(12)->no_restart);  // not restarted, whichever way it ends
  // 13 runs its __ray_shutdown__ and exits on purpose: its reason is the driver's.
  workers_.slot(1)->exit_intended.store(1);
  actors.reap(1, "exited with code 0");
  EXPECT_TRUE(actors.find(13)->dead);
  EXPECT_NE(actors.find(13)->death.find("out of scope"), std::string::npos);
  // 12 does not end: SIGKILLed once its time is up, once.
  actors.kill_unreferenced();
  EXPECT_TRUE(signals_.empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  actors.kill_unreferenced();
  ASSERT_EQ(signals_.size(), 1u);
  EXPECT_EQ(signals_[0], std::make_pair(7000, SIGKILL));
  actors.kill_unreferenced();
  EXPECT_EQ(signals_.size(), 1u);
}

TEST_F(ActorsTest, AnActorFateSharesWithTheProcessThatCreatedItUnlessDetached) {
  ASSERT_TRUE(workers_.spawn(3));  // the owner: a task worker in the last slot
  SpawnRequest req{};
  ASSERT_TRUE(rc_->spawn.try_pop(req));
  const uint32_t gen = workers_.info(3).generation;
  ASSERT_TRUE(actors_.create(creation(20), {}, /*max_restarts=*/3, 0, false, /*owner=*/3).ok());
  ASSERT_TRUE(actors_.create(creation(21), {}, 0, 0, /*detached=*/true, /*owner=*/3).ok());
  ASSERT_TRUE(actors_.create(creation(22), {}, 0, 0, false).ok());  // the driver's
  up(0);
  up(1);
  up(2);
  EXPECT_TRUE(actors_.owns_live_actor(3));
  EXPECT_FALSE(actors_.owns_live_actor(0));
  actors_.owner_died(3, gen + 1);  // another process of that slot: not the owner
  EXPECT_TRUE(signals_.empty());
  actors_.owner_died(3, gen);
  ASSERT_EQ(signals_.size(), 1u) << "only the non-detached one, restarts or not";
  EXPECT_EQ(signals_[0].first, 7000);
  EXPECT_TRUE(actors_.find(20)->no_restart);
  actors_.reap(0, "killed");
  EXPECT_TRUE(actors_.find(20)->dead);
  EXPECT_NE(actors_.find(20)->death.find("owner"), std::string::npos) << actors_.find(20)->death;
  EXPECT_FALSE(actors_.owns_live_actor(3)) << "the detached one is not owned";
}

TEST_F(ActorsTest, TheTableHoldsADetachedActorsReturnUntilItIsKilledForGood) {
  TaskSpec d = creation(12);
  ASSERT_TRUE(store_->create_object(d.returns, 8, false, /*mine=*/false).ok());
  ASSERT_TRUE(store_->seal(d.returns).ok());
  ASSERT_TRUE(actors_.create(d, {}, /*max_restarts=*/1, 0, /*detached=*/true).ok());
  up(0);
  store_->release_ref(d.returns, false);  // its last handle goes
  EXPECT_TRUE(store_->is_sealed(d.returns)) << "A6: found by name with no handle left";
  actors_.kill(12, /*no_restart=*/false);  // a kill that restarts it keeps the hold
  EXPECT_TRUE(store_->is_sealed(d.returns));
  actors_.kill(12, /*no_restart=*/true);
  EXPECT_FALSE(store_->contains(d.returns)) << "killed for good: the hold goes at the kill";
  actors_.reap(0, "killed");
  EXPECT_TRUE(actors_.find(12)->dead);
  EXPECT_FALSE(actors_.find(12)->holds_return) << "and is given back once";
}

TEST_F(ActorsTest, AnOutOfOrderActorsReadyCallsPassOneThatWaitsForItsArgument) {
  TaskSpec made = creation(4);
  made.flags |= kSpecOutOfOrder;  // a threaded or async actor (A2)
  ASSERT_TRUE(actors_.create(made, {}, 0, 0, false).ok());
  ActorInfo& a = *actors_.find(4);
  actors_.submit_call(a, call(4, "early"), {});  // not up: behind the creation, even so
  EXPECT_EQ(a.calls.size(), 2u);
  up(0);
  actors_.dispatch_calls();
  EXPECT_TRUE(a.calls.empty());
  const ObjectID dep = store_->new_id();
  ASSERT_TRUE(store_->create_object(dep, 8, false, false).ok());
  actors_.submit_call(a, call(4, "waits"), {dep});
  actors_.submit_call(a, call(4, "ready"), {});  // goes ahead of "waits"
  EXPECT_EQ(a.calls.size(), 1u);
  actors_.submit_call(a, call(4, "also-ready"), {dep});
  actors_.dispatch_calls();
  EXPECT_EQ(a.calls.size(), 2u);  // both wait for dep, nothing else holds them
  ASSERT_TRUE(store_->seal(dep).ok());
  actors_.dispatch_calls();
  EXPECT_TRUE(a.calls.empty());
  EXPECT_EQ(run_all(0),
            (std::vector<std::string>{"Counter", "early", "ready", "waits", "also-ready"}));
}

}  // namespace
}  // namespace ember
