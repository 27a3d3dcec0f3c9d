// process_title: a child sets its title; its /proc cmdline and comm show it, cut where its
// argv ends, and nothing past the argv area changes (its environment).
#include "process_title.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace ember {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

/// Runs `title` in a forked child that waits on a pipe; returns its (cmdline, comm, environ).
struct Seen {
  std::string cmdline, comm, environ;
};

Seen title_in_child(const std::string& title) {
  int ready[2], done[2];
  EXPECT_EQ(pipe(ready), 0);
  EXPECT_EQ(pipe(done), 0);
  pid_t pid = fork();
  if (pid == 0) {
    bool ok = set_process_title(title);
    char c = ok ? '1' : '0';
    (void)!write(ready[1], &c, 1);
    (void)!read(done[0], &c, 1);
    _exit(0);
  }
  char c = 0;
  EXPECT_EQ(read(ready[0], &c, 1), 1);
  EXPECT_EQ(c, '1');
  const std::string proc = "/proc/" + std::to_string(pid);
  Seen seen{read_file(proc + "/cmdline"), read_file(proc + "/comm"), read_file(proc + "/environ")};
  (void)!write(done[1], "x", 1);
  int status = 0;
  waitpid(pid, &status, 0);
  return seen;
}

TEST(ProcessTitle, TheCommandLineAndNameShowIt) {
  const std::string environ_before = read_file("/proc/self/environ");
  Seen seen = title_in_child("ember::Counter.add");
  EXPECT_EQ(seen.cmdline.substr(0, seen.cmdline.find('\0')), "ember::Counter.add");
  EXPECT_EQ(seen.comm, "ember::Counter.\n");  // the kernel keeps 15 bytes of a name
  EXPECT_EQ(seen.environ, environ_before);    // nothing written past argv
}

TEST(ProcessTitle, ATitleLongerThanTheArgvIsCutAtItsEnd) {
  const size_t argv_size = read_file("/proc/self/cmdline").size();
  Seen seen = title_in_child(std::string(argv_size + 100, 'x'));
  EXPECT_EQ(seen.cmdline.size(), argv_size);
  EXPECT_EQ(seen.cmdline.substr(0, seen.cmdline.find('\0')), std::string(argv_size - 1, 'x'));
}

}  // namespace
}  // namespace ember
