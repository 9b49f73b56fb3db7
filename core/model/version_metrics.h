// VersionMetrics: a model version's metric handles, resolved once when the
// version loads and carried with every request for it (ServableModel), so
// that recording a request needs no lookup by name, no lock and no label
// strings.
//
// core/ knows nothing of Prometheus: this is an opaque base that the
// server's metrics implement (server/metrics.h); the registry makes one per
// version through ModelRegistry::Options::version_metrics and never looks
// inside.
#pragma once

namespace biserve {

class VersionMetrics {
 public:
  virtual ~VersionMetrics() = default;
};

}  // namespace biserve
