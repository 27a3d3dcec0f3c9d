#include "process_title.h"

#include <sys/prctl.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace ember {
namespace {

struct ArgvArea {
  char* start = nullptr;
  size_t size = 0;
};

/// [arg_start, arg_end) from /proc/self/stat: the fields after the ")" that ends comm (which
/// may itself hold spaces and parentheses) start at field 3; arg_start is field 48.
ArgvArea find_argv_area() {
  std::ifstream f("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  uint64_t start = 0, end = 0;
  for (int n = 3; fields >> field; ++n) {
    if (n == 48) start = std::stoull(field);
    if (n == 49) {
      end = std::stoull(field);
      break;
    }
  }
  if (start == 0 || end <= start) return {};
  return {reinterpret_cast<char*>(start), static_cast<size_t>(end - start)};
}

}  // namespace

bool set_process_title(std::string_view title) {
  static const ArgvArea area = find_argv_area();  // P1
  if (area.start == nullptr) return false;
  // The last byte stays NUL, so the area always reads as one NUL-terminated string.
  const size_t n = std::min(title.size(), area.size - 1);
  std::memcpy(area.start, title.data(), n);
  std::memset(area.start + n, 0, area.size - n);
  char comm[16] = {};
  std::memcpy(comm, title.data(), std::min(title.size(), sizeof comm - 1));
  prctl(PR_SET_NAME, comm, 0, 0, 0);
  return true;
}

}  // namespace ember
