// QueuedSpec: packing a TaskSpec to what a queued task needs, and back.
#include "queued_spec.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <unordered_set>

namespace ember {

namespace {

/// The process-wide pool of names and resource vectors (see the invariants).
class Pool {
 public:
  static Pool& get() {
    static auto* pool = new Pool();  // leaked on purpose: specs may outlive static teardown
    return *pool;
  }
  /// The interned copy of `name`, or nullptr when the pool is full.
  const char* name(const char* name) {
    std::lock_guard<std::mutex> g(mu_);
    if (last_name_ != nullptr && std::strcmp(last_name_, name) == 0) return last_name_;
    auto it = names_.find(name);
    if (it == names_.end()) {
      if (names_.size() >= QueuedSpec::kMaxInterned) return nullptr;
      it = names_.insert(name).first;  // node-based: the string never moves
    }
    return last_name_ = it->c_str();
  }
  /// The interned copy of `r` (kMaxResources amounts), or nullptr when the pool is full.
  const int64_t* resources(const int64_t* r) {
    std::array<int64_t, kMaxResources> key;
    std::memcpy(key.data(), r, sizeof key);
    std::lock_guard<std::mutex> g(mu_);
    if (last_res_ != nullptr && std::memcmp(last_res_, r, sizeof key) == 0) return last_res_;
    auto it = resources_.find(key);
    if (it == resources_.end()) {
      if (resources_.size() >= QueuedSpec::kMaxInterned) return nullptr;
      it = resources_.emplace(key, 0).first;  // node-based: the key never moves
    }
    return last_res_ = it->first.data();
  }

 private:
  std::mutex mu_;
  std::unordered_set<std::string> names_;
  std::map<std::array<int64_t, kMaxResources>, int> resources_;
  const char* last_name_ = nullptr;  ///< a burst of submissions is mostly one function
  const int64_t* last_res_ = nullptr;
};

}  // namespace

/// Offsets in the tail, in this order: [args id][max_task_retries][resources][deps]
/// [inline args][name NUL].
struct QueuedSpec::Layout {
  size_t args_id, mtr, res, deps, args, name, size;
  Layout(uint8_t has, uint8_t num_deps, uint16_t args_len, size_t name_len) {
    size_t at = 0;
    args_id = at;
    at += (has & kArgsId) ? sizeof(ObjectID) : 0;
    mtr = at;
    at += (has & kMaxTaskRetries) ? sizeof(int64_t) : 0;  // keeps what follows 8-aligned
    res = at;
    at += (has & kOwnResources) ? kMaxResources * sizeof(int64_t) : 0;
    deps = at;
    at += num_deps * sizeof(ObjectID);
    args = at;
    at += args_len;
    name = at;
    at += (has & kOwnName) ? name_len + 1 : 0;
    size = at;
  }
};

QueuedSpec::QueuedSpec(const TaskSpec& s)
    : function(s.function),
      returns(s.returns),
      resources(Pool::get().resources(s.resources)),
      name(nullptr),
      num_returns(s.num_returns),
      flags(s.flags),
      max_retries(s.max_retries),
      attempt(s.attempt),
      actor(s.actor),
      parent_index(s.parent_index),
      parent_gen(s.parent_gen),
      args_len_(static_cast<uint16_t>((s.flags & kSpecArgsInline) ? s.args_inline_len : 0)),
      num_deps_(static_cast<uint8_t>(std::min(s.num_deps, kMaxDeps))),
      placement_group(s.placement_group),
      bundle_index(s.bundle_index) {
  const size_t name_len = strnlen(s.name, sizeof s.name);
  // strnlen stops at the array's end: a name that fills it is NUL-terminated here.
  char terminated[sizeof s.name + 1];
  std::memcpy(terminated, s.name, name_len);
  terminated[name_len] = 0;
  name = Pool::get().name(terminated);
  if ((s.flags & (kSpecArgsInline | kSpecNoArgs)) == 0) has_ |= kArgsId;
  if (s.max_task_retries != 0) has_ |= kMaxTaskRetries;
  if (resources == nullptr) has_ |= kOwnResources;
  if (name == nullptr) has_ |= kOwnName;
  Layout l(has_, num_deps_, args_len_, name_len);
  if (l.size == 0) return;  // a plain task: no tail at all
  tail_.reset(new uint8_t[l.size]);
  uint8_t* t = tail_.get();
  if (has_ & kArgsId) std::memcpy(t + l.args_id, &s.args, sizeof(ObjectID));
  if (has_ & kMaxTaskRetries) {
    int64_t mtr = s.max_task_retries;
    std::memcpy(t + l.mtr, &mtr, sizeof mtr);
  }
  if (has_ & kOwnResources) std::memcpy(t + l.res, s.resources, sizeof s.resources);
  std::memcpy(t + l.deps, s.deps, num_deps_ * sizeof(ObjectID));
  std::memcpy(t + l.args, s.args_inline, args_len_);
  if (has_ & kOwnName) std::memcpy(t + l.name, terminated, name_len + 1);
  repoint(name_len);
}

void QueuedSpec::repoint(size_t name_len) {
  if (!tail_) return;
  Layout l(has_, num_deps_, args_len_, name_len);
  if (has_ & kOwnResources) resources = reinterpret_cast<const int64_t*>(tail_.get() + l.res);
  if (has_ & kOwnName) name = reinterpret_cast<const char*>(tail_.get() + l.name);
}

QueuedSpec::QueuedSpec(const QueuedSpec& o)
    : function(o.function),
      returns(o.returns),
      resources(o.resources),
      name(o.name),
      num_returns(o.num_returns),
      flags(o.flags),
      max_retries(o.max_retries),
      attempt(o.attempt),
      actor(o.actor),
      parent_index(o.parent_index),
      parent_gen(o.parent_gen),
      args_len_(o.args_len_),
      num_deps_(o.num_deps_),
      has_(o.has_),
      placement_group(o.placement_group),
      bundle_index(o.bundle_index) {
  if (!o.tail_) return;
  const size_t name_len = (has_ & kOwnName) ? std::strlen(o.name) : 0;
  Layout l(has_, num_deps_, args_len_, name_len);
  tail_.reset(new uint8_t[l.size]);
  std::memcpy(tail_.get(), o.tail_.get(), l.size);
  repoint(name_len);
}

QueuedSpec& QueuedSpec::operator=(const QueuedSpec& o) {
  if (this != &o) *this = QueuedSpec(o);
  return *this;
}

QueuedSpec::operator TaskSpec() const {
  TaskSpec s{};
  s.function = function;
  s.returns = returns;
  s.num_returns = num_returns;
  s.flags = flags;
  s.max_retries = max_retries;
  s.attempt = attempt;
  s.actor = actor;
  s.parent_index = parent_index;
  s.parent_gen = parent_gen;
  s.placement_group = placement_group;
  s.bundle_index = bundle_index;
  std::memcpy(s.resources, resources, sizeof s.resources);
  const size_t name_len = std::strlen(name);
  std::memcpy(s.name, name, std::min(name_len, sizeof s.name - 1));  // stays NUL-terminated
  s.num_deps = num_deps_;
  if (!tail_) return s;
  const uint8_t* t = tail_.get();
  Layout l(has_, num_deps_, args_len_, (has_ & kOwnName) ? name_len : 0);
  if (has_ & kArgsId) std::memcpy(&s.args, t + l.args_id, sizeof(ObjectID));
  if (has_ & kMaxTaskRetries) {
    int64_t mtr;
    std::memcpy(&mtr, t + l.mtr, sizeof mtr);
    s.max_task_retries = static_cast<int32_t>(mtr);
  }
  std::memcpy(s.deps, t + l.deps, num_deps_ * sizeof(ObjectID));
  s.args_inline_len = args_len_;
  std::memcpy(s.args_inline, t + l.args, args_len_);
  return s;
}

}  // namespace ember
