// worker_pool: worker slots, spawning, exits and their descriptions, retiring idle extras.
#include "worker_pool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace ember {

namespace {


/// Reads [start, start + len) of `fd` into `out`; false on an error.
bool read_range(int fd, off_t start, size_t len, std::string& out) {
  out.assign(len, '\0');
  size_t got = 0;
  while (got < len) {
    ssize_t r = pread(fd, &out[got], len - got, start + static_cast<off_t>(got));
    if (r < 0) return false;
    if (r == 0) break;  // shorter than it was at fstat(): fine
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return true;
}

}  // namespace

std::string tail_lines(const std::string& path, int n) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return "";
  }
  const off_t size = st.st_size;
  // Read a window at the end; widen it until it holds n lines (after the first, which may
  // be cut) or the whole file. Lines are split as std::getline does: a last line without
  // '\n' counts, a final '\n' does not start an empty one.
  std::vector<std::string> lines;
  std::string buf;
  for (off_t window = 64 << 10;; window *= 4) {
    const off_t start = size > window ? size - window : 0;
    if (!read_range(fd, start, static_cast<size_t>(size - start), buf)) break;
    lines.clear();
    size_t at = 0;
    bool first = true;
    while (at < buf.size()) {
      size_t nl = buf.find('\n', at);
      size_t end = nl == std::string::npos ? buf.size() : nl;
      const bool marker = buf.compare(at, sizeof kTaskLogMarker - 1, kTaskLogMarker) == 0;
      if (!(first && start > 0) && !marker) {
        lines.emplace_back(buf, at, end - at);
      }
      first = false;
      at = end + 1;
    }
    if (static_cast<int>(lines.size()) >= n || start == 0) break;
  }
  close(fd);
  std::string out;
  const size_t from = lines.size() > static_cast<size_t>(n) ? lines.size() - n : 0;
  for (size_t i = from; i < lines.size(); ++i) out += "    " + lines[i] + "\n";
  return out;
}

std::string describe_exit(const std::string& log_dir, int32_t status, int32_t pid) {
  std::string how;
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    how = "killed by signal " + std::to_string(sig) + (name ? std::string(" (SIG") + name + ")" : "");
  } else if (WIFEXITED(status)) {
    how = "exited with code " + std::to_string(WEXITSTATUS(status));
  } else {
    how = "ended with wait status " + std::to_string(status);
  }
  std::string msg = "worker pid=" + std::to_string(pid) + " " + how + ".";
  const std::string base = log_dir + "/worker-" + std::to_string(pid);
  std::string file = base + ".err";
  std::string out = tail_lines(file, 40);
  if (out.empty()) {
    file = base + ".out";
    out = tail_lines(file, 40);
  }
  if (!out.empty()) msg += " Its last output (" + file + "):\n" + out;
  return msg;
}

WorkerPool::WorkerPool(RuntimeControl* rc, const RuntimeLayout& layout, uint32_t max_workers,
                       uint32_t num_cpus)
    : rc_(rc),
      slots_(reinterpret_cast<WorkerSlot*>(reinterpret_cast<uint8_t*>(rc) + layout.slots_at)),
      max_workers_(max_workers),
      num_cpus_(num_cpus),
      info_(max_workers) {}

bool WorkerPool::is_idle(uint32_t w) const {
  const WorkerInfo& info = info_[w];
  return info.state == WorkerState::kReady && info.actor == 0 && !retiring(w) &&
         info.pushed == done(w) && !blocked(w);
}

bool WorkerPool::retiring(uint32_t w) const {
  // acquire: pairs with Worker::ask_retire's release, made after its last task finished.
  return info_[w].retiring || slots_[w].retire_asked.load(std::memory_order_acquire) != 0;
}

bool WorkerPool::has_room(uint32_t w) const {
  // An actor's calls may run concurrently (async and threaded actors: a thousand may wait on
  // one event), so only what still sits in its ring counts; a task worker runs one at a time,
  // and what it has not finished is its load.
  const uint64_t gone = info_[w].actor != 0
                            ? slots_[w].taken.load(std::memory_order_acquire)
                            : done(w);
  return info_[w].pushed - gone + kRoomMargin < kInboundCapacity;
}

bool WorkerPool::push(uint32_t w, TaskRef ref) {
  if (!slots_[w].inbound.try_push(ref)) return false;
  ++info_[w].pushed;
  info_[w].assigned.push_back(ref);
  return true;
}

void WorkerPool::reclaim(uint32_t w, TaskTable& table, TaskEvents& events) {
  auto& assigned = info_[w].assigned;
  while (!assigned.empty()) {
    const TaskRef ref = assigned.front();
    const uint64_t c = table.claim(ref.index);
    if (claim_gen(c) == ref.gen && claim_state(c) != TaskState::kDone) break;
    assigned.pop_front();
    if (claim_gen(c) == ref.gen) {  // DONE and not yet freed (a stolen copy may be elsewhere)
      events.record(table.record(ref.index));
      table.free(ref.index);
    }
  }
}

bool WorkerPool::spawn(uint32_t w, uint32_t actor) {
  WorkerSlot* s = slot(w);
  WorkerInfo& info = info_[w];
  if (w + 1 > used()) used_.store(w + 1, std::memory_order_relaxed);
  Ring<TaskRef, kInboundCapacity>::create_at(&s->inbound);
  Ring<TaskSpec, kOutboundCapacity>::create_at(&s->outbound);
  s->done.store(0, std::memory_order_relaxed);
  s->taken.store(0, std::memory_order_relaxed);
  s->blocked.store(0, std::memory_order_relaxed);
  s->current.store(0, std::memory_order_relaxed);
  s->pid.store(0, std::memory_order_relaxed);
  s->exit_status.store(0, std::memory_order_relaxed);
  s->retire_asked.store(0, std::memory_order_relaxed);
  const uint32_t gen = s->generation.load(std::memory_order_relaxed) + 1;
  s->generation.store(gen, std::memory_order_relaxed);
  // release: the forkserver and the new worker see the fresh rings and counters.
  s->state.store(static_cast<uint32_t>(WorkerState::kStarting), std::memory_order_release);
  info = WorkerInfo{};
  info.generation = gen;
  info.state = WorkerState::kStarting;
  info.actor = actor;
  if (!rc_->spawn.try_push(SpawnRequest{w, gen, actor != 0})) {
    info.state = WorkerState::kUnused;  // P1: the forkserver is gone, the node shuts down
    return false;
  }
  ++started_;
  return true;
}

int64_t WorkerPool::free_slot() const {
  for (uint32_t w = 0; w < max_workers_; ++w) {
    if (info_[w].state == WorkerState::kUnused) return w;
  }
  return -1;
}

uint32_t WorkerPool::task_workers() const {
  uint32_t n = 0;
  for (const WorkerInfo& info : info_) n += info.state != WorkerState::kUnused && info.actor == 0;
  return n;
}

bool WorkerPool::announced(uint32_t w) const {
  // acquire: the worker's release of kReady follows its pid.
  return info_[w].state == WorkerState::kStarting &&
         static_cast<WorkerState>(slots_[w].state.load(std::memory_order_acquire)) ==
             WorkerState::kReady;
}

void WorkerPool::reset(uint32_t w) {
  info_[w] = WorkerInfo{};
  slots_[w].state.store(static_cast<uint32_t>(WorkerState::kUnused), std::memory_order_release);
}

std::vector<ExitNote> WorkerPool::read_exits(const std::string& log_dir) const {
  std::vector<ExitNote> out;
  const uint32_t n = used();
  for (uint32_t w = 0; w < n; ++w) {
    const WorkerSlot& s = slots_[w];
    // acquire: the forkserver's release of kExited follows its write of the status.
    if (static_cast<WorkerState>(s.state.load(std::memory_order_acquire)) != WorkerState::kExited) {
      continue;
    }
    ExitNote note{w, s.generation.load(std::memory_order_relaxed),
                  s.pid.load(std::memory_order_relaxed),
                  s.exit_status.load(std::memory_order_relaxed), {}};
    note.why = describe_exit(log_dir, note.status, note.pid);
    out.push_back(std::move(note));
  }
  return out;
}

std::vector<int32_t> WorkerPool::retire_idle(uint64_t now, uint64_t idle_ns,
                                             const std::function<bool(uint32_t)>& keep) {
  std::vector<int32_t> pids;
  uint32_t alive = 0;
  for (const WorkerInfo& info : info_) {
    alive += info.actor == 0 &&
             (info.state == WorkerState::kReady || info.state == WorkerState::kStarting) &&
             !info.retiring;
  }
  for (uint32_t w = 0; w < max_workers_; ++w) {
    WorkerInfo& info = info_[w];
    if (info.actor != 0 || info.retiring || info.state != WorkerState::kReady) continue;
    const bool asked = retiring(w);  // max_calls: retired once it ran what it was pushed
    const bool drained = info.pushed == done(w) && !blocked(w);
    if (info.lease.held || !drained || (!asked && !is_idle(w))) {
      info.idle_since_ns = 0;
      continue;
    }
    if (info.idle_since_ns == 0) info.idle_since_ns = now;
    if (!asked && (alive <= num_cpus_ || now - info.idle_since_ns < idle_ns)) continue;
    if (keep && keep(w)) continue;
    info.retiring = true;
    --alive;
    pids.push_back(pid(w));
  }
  return pids;
}

}  // namespace ember
