// PackedMatrix and PackedGemm: C = A * B for a B known ahead of time (a
// kernel of the model), packed once into the layout the micro-kernel
// streams. Every product a request's result depends on goes through here:
// the input projections, the recurrent steps and the Dense heads.
//
// Why our own kernel rather than a BLAS: batch invariance. Each element of C
// sums its products in depth order, starting from the bias row, whatever
// the number of rows and whichever rows it is computed with; so a sequence
// gets the same bits batched with any others as alone. A BLAS picks kernels,
// blockings and summation orders by shape (OpenBLAS on an AVX-512 CPU: 301
// of 472 concurrently served sequences equal to their solo answers, max
// difference 1.8e-7). And speed: OpenBLAS packs B on every call, which for
// 200 steps of a 4 MB recurrent kernel was 13% of W4's time, and at a few
// dozen rows its kernels run far from peak. Measured on the AVX-512
// development machine, one thread, against cblas_sgemm: [64 x 256] x [256 x
// 1024] 174 vs 112 GFLOP/s; [32 x 512] x [512 x 2048] 179 vs 76.
//
// Three kernel sets, chosen at run time: AVX-512, AVX2 with FMA, and a
// portable one for any other CPU (plain C++ the compiler vectorises for the
// baseline ISA). The environment variable BISERVE_PACKED_ISA=avx2 (or
// =none) holds them to AVX2 (or the portable kernel), so that one machine
// tests every path; another value is ignored with a warning on stderr. Each
// set is batch-invariant on its own; the sets differ from each other in the
// last bits (FMA rounds once, a multiply and an add twice).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include "core/common/eigen_types.h"

namespace biserve {

// Allocates on 64-byte (cache line) boundaries: a 64-float panel row is
// then exactly four cache lines, and no vector load of it straddles two
// (split loads halved the kernel's rate on an Intel AVX-512 machine).
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlignment{64};
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), kAlignment));
  }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlignment); }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const {
    return true;
  }
};

class PackedMatrix {
 public:
  PackedMatrix() = default;
  // Packs `b` ([k, n]) into panels of kPanel columns, the last one padded
  // with zeros.
  explicit PackedMatrix(const RowMatrix& b);
  // The same, with a bias row ([n]) that PackedGemm adds to every row of c:
  // the kernel starts its accumulators from it, which saves a pass over c
  // (adding an input bias to a W3 projection afterwards was 4% of W3).
  PackedMatrix(const RowMatrix& b, const RowVector& bias);

  static constexpr int kPanel = 64;

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  // Columns rounded up to whole panels: the row stride C needs.
  int64_t padded_cols() const { return panels_ * kPanel; }
  int64_t panels() const { return panels_; }
  // Panel p: [rows, kPanel], row-major.
  const float* panel(int64_t p) const {
    return data_.data() + p * rows_ * kPanel;
  }
  // Panel p's kPanel entries of the bias row (zero-padded), or nullptr
  // without one.
  const float* bias(int64_t p) const {
    return bias_.empty() ? nullptr : bias_.data() + p * kPanel;
  }

 private:
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  int64_t panels_ = 0;
  std::vector<float, CacheLineAllocator<float>> data_;
  std::vector<float, CacheLineAllocator<float>> bias_;
};

// The kernel set PackedGemm runs in this process: "avx512", "avx2" or
// "portable".
const char* PackedGemmIsa();

// c[m, padded_cols] = a[m, b.rows()] * b (+ b's bias row, when it has one),
// rows of `a` lda floats apart, of `c` ldc floats apart. Columns past b.cols()
// receive zeros times a (plus the bias row's zero padding): junk the caller
// ignores. Row i of c depends on row i of a and on b alone: the same bits
// for any m and any neighbours. REQUIRES: b.rows() >= 1;
// ldc >= b.padded_cols().
void PackedGemm(const float* a, int64_t lda, int64_t m, const PackedMatrix& b,
                float* c, int64_t ldc);

}  // namespace biserve
