#include "server/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace biserve {
namespace {

prometheus::MetricFamily Single(const std::string& name,
                                const std::string& help,
                                prometheus::MetricType type, double value) {
  prometheus::MetricFamily family{name, help, type, {}};
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(metric);
  return family;
}

std::string ReadAll(const char* path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Fields of /proc/self/stat after the command name (which may hold spaces
// and parentheses, so split after its closing parenthesis). Field 3 of
// proc(5) ("state") is element 0.
std::vector<std::string> StatFields() {
  const std::string stat = ReadAll("/proc/self/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return {};
  return absl::StrSplit(stat.substr(close + 2), ' ', absl::SkipEmpty());
}

double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("btime ", 0) == 0) {
      double btime = 0;
      (void)absl::SimpleAtod(line.substr(6), &btime);
      return btime;
    }
  }
  return 0;
}

int OpenFds() {
  int count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') ++count;
    }
    closedir(dir);
    --count;  // the descriptor of this listing itself
  }
  return count;
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families;
  const std::vector<std::string> f = StatFields();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  auto field = [&](size_t proc5_index) {
    // proc(5) numbers fields from 1; element 0 here is field 3.
    double value = 0;
    if (proc5_index >= 3 && proc5_index - 3 < f.size()) {
      (void)absl::SimpleAtod(f[proc5_index - 3], &value);
    }
    return value;
  };
  families.push_back(Single("process_cpu_seconds_total",
                            "Total user and system CPU time spent in seconds.",
                            MetricType::Counter,
                            (field(14) + field(15)) / ticks));
  families.push_back(Single("process_virtual_memory_bytes",
                            "Virtual memory size in bytes.", MetricType::Gauge,
                            field(23)));
  families.push_back(Single("process_resident_memory_bytes",
                            "Resident memory size in bytes.", MetricType::Gauge,
                            field(24) * page));
  families.push_back(
      Single("process_start_time_seconds",
             "Start time of the process since unix epoch in seconds.",
             MetricType::Gauge, BootTimeSeconds() + field(22) / ticks));
  families.push_back(Single("process_open_fds",
                            "Number of open file descriptors.",
                            MetricType::Gauge, OpenFds()));
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    families.push_back(
        Single("process_max_fds", "Maximum number of open file descriptors.",
               MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
  }
  return families;
}

}  // namespace biserve
