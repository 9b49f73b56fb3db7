// Names the calling thread, so that top -H, gdb, perf and /proc show which
// of the server's threads is which (biserve-batch, biserve-eval-3, ...).
#pragma once

#include <string>

namespace biserve {

// Names the calling thread `name`, cut to the 15 characters Linux keeps.
// Best effort: a failure leaves the thread as it was.
void SetCurrentThreadName(const std::string& name);

}  // namespace biserve
