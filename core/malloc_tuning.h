// TuneMallocForBatchBuffers: keeps glibc from returning large batch buffers
// to the kernel after every batch.
//
// A batch's packed buffers run to tens of megabytes (W4: 52 MB of input
// projection). glibc serves blocks above its mmap threshold (at most 32 MB
// even after its dynamic adjustment) with fresh mmaps and unmaps them on
// free, so every batch paid page faults and kernel zeroing for them:
// measured 15% of W3's time, 30% slower batches. Called once at the start of
// a program that evaluates batches; process-wide, so programs call it, the
// library never does. The cost: the heap keeps its high-water mark.
#pragma once

#include <malloc.h>

namespace biserve {

inline void TuneMallocForBatchBuffers() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);  // serve large blocks from the heap
  mallopt(M_TRIM_THRESHOLD, 1 << 30);  // and keep them there for reuse
}

}  // namespace biserve
