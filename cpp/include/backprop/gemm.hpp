// General matrix multiply on row-major matrices: C = alpha * op(A) @ op(B) + beta * C.
#pragma once

#include "backprop/config.hpp"

namespace backprop {

// op(A) is m x k: A is m x k (lda >= k) when trans_a is false, k x m (lda >= m) when true.
// op(B) is k x n: B is k x n (ldb >= n) when trans_b is false, n x k (ldb >= k) when true.
// C is m x n with ldc >= n. When beta == 0, C is never read (NaN in C does not leak through).
// Packed and cache-blocked; threads split rows and columns of C, never the k sum, so the
// result is bit-identical for any thread count.
template <typename T>
void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc);

// The plain triple loop: the reference the tests and the benchmark compare against.
template <typename T>
void gemm_ref(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
              index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc);

}  // namespace backprop
