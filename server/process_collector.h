// ProcessCollector: the standard process_* metrics, read from /proc at each
// scrape (prometheus-cpp has no process collector).
//
// process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds,
// process_start_time_seconds: the names and meanings of the Prometheus
// client libraries' process collectors.
#pragma once

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace biserve {

class ProcessCollector final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace biserve
