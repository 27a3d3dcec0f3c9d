// Process title: what `ps`, `top` and psutil show for a worker ("ember::f",
// "ember::Counter.add", "ember::IDLE"), as Ray's workers show "ray::f".
//
// How: Linux shows /proc/<pid>/cmdline from the bytes between the process's arg_start and
// arg_end (the original argv, at the top of its stack), and `top` shows its comm (the
// thread name, 15 bytes). set_process_title() overwrites the first with the title, padded
// with NULs, and sets the second with prctl(PR_SET_NAME). A title longer than the original
// argv is cut there: the bytes after it belong to the environment. A worker's argv is the
// forkserver's, `python -m ember._forkserver <fd> <fd> <log dir> <spill dir>`, long enough
// for any task name in practice.
//
// Invariants
//   P1  Only bytes in [arg_start, arg_end) of this process are written, read once from
//       /proc/self/stat (fields 48 and 49) and kept for the process's life: a fork's child
//       has the same addresses, so the forkserver's workers can use the values it read.
//   P2  Not thread-safe: one thread of the process sets its title (a worker's main thread).
//       Python's sys.argv is a copy made at start-up and does not change.
#pragma once

#include <string_view>

namespace ember {

/// Shows `title` as this process's command line and name. False if the argv area cannot be
/// found (no /proc): then nothing is written.
bool set_process_title(std::string_view title);

}  // namespace ember
