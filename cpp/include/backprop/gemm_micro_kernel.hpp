// The GEMM micro-kernel interface and its run-time choice among instruction-set paths.
#pragma once

#include "backprop/config.hpp"

namespace backprop {

// Where the micro-kernel reads its operands. Entry (i, p) of the MR x kc A panel is at
// a[i * a_row + p * a_k]: a packed panel has a_row = 1, a_k = MR (zero padded to MR rows); a
// matrix read in place gives its own strides. Row p of the kc x NR B panel starts at b + p * b_k:
// b_k = NR for a packed panel, ldb for a row-major B read in place (all NR columns present),
// and NR / 2 for a packed last panel of at most NR / 2 columns, whose rows hold only NR / 2
// values: the kernel then reads no further than that (the tile is one vector wide).
// b_next, when set, is the full B panel of the next NR columns, laid out as b: the tile is then
// two panels wide (nr = 2 NR), for a last row panel of at most the family's TWO_PANEL_MAX_ROWS
// rows (config.hpp).
template <typename T>
struct PanelOperands {
  const T* a;
  index_t a_row, a_k;
  const T* b;
  index_t b_k;
  const T* b_next = nullptr;
};

// C[0:mr, 0:nr] = alpha * (A panel @ B panel) + beta * C over kc steps; when beta == 0, C is
// not read. With panels.b_next the tile spans both panels, and each entry gets the same sums
// as in a tile of one.
template <typename T>
using MicroKernel = void (*)(index_t kc, const PanelOperands<T>& panels, T* c, index_t ldc,
                             T alpha, T beta, index_t mr, index_t nr);

// A column of `count` tiles of C, each mr x nr, one under another from c (tile t at
// c + t * mr * ldc): tile t reads the A panel at panels.a + t * a_step, every tile the same B
// panel (panels.b_next: two B panels, count 1). Each tile sums its kc steps in k blocks of
// k_block, each one kernel call over a tile still in L1: the first block scales C by beta, the
// later ones add onto it.
template <typename T>
struct TileColumn {
  PanelOperands<T> panels;
  index_t a_step, count, kc, k_block;
  T* c;
  index_t ldc;
  T alpha, beta;
  index_t mr, nr;
};

// Runs a column's tiles through tile(kc, panels, c, ldc, alpha, beta, mr, nr), one call per tile
// and k block: a MicroKernel, or a tile function a path's column kernel inlines.
template <typename T, typename Tile>
inline void for_each_tile_call(const TileColumn<T>& column, Tile&& tile) {
  for (index_t t = 0; t < column.count; ++t) {
    PanelOperands<T> panels = column.panels;
    panels.a += t * column.a_step;
    T* const c = column.c + t * column.mr * column.ldc;
    for (index_t p = 0; p < column.kc; p += column.k_block) {
      PanelOperands<T> block = panels;
      block.a += p * panels.a_k;
      block.b += p * panels.b_k;
      if (panels.b_next != nullptr) block.b_next += p * panels.b_k;
      tile(column.k_block < column.kc - p ? column.k_block : column.kc - p, block, c, column.ldc,
           column.alpha, p == 0 ? column.beta : T(1), column.mr, column.nr);
    }
  }
}

// A path's whole column in one call, its tile chosen once for all of them: the same bits as
// a micro-kernel call per tile and k block, without the call and the driver's work around each
// (gemm.cpp, gemm_team). One AVX2 thread on Zen 3, both ways alternated in one process,
// GFLOP/s, per tile -> column: float 784 x 128 x 32 TN 53 -> 69, 64 x 256 x 10 NT 23 -> 40,
// 256^3 75 -> 79, 128 x 512 x 784 62 -> 65; double 784 x 128 x 32 TN 20 -> 26, 256^3 37 -> 39.
// No b_next.
template <typename T>
using ColumnKernel = void (*)(const TileColumn<T>& column);

// A path's kernels: column is null where the path has none (the driver then calls tile per
// tile).
template <typename T>
struct TileKernels {
  MicroKernel<T> tile;
  ColumnKernel<T> column;
};

enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };

// Every path, narrowest first: the automatic choice is the last one the CPU runs.
constexpr Isa kAllIsas[] = {Isa::generic, Isa::avx2, Isa::avx512};

// The best path this CPU runs, unless force_isa chose one (tests and the benchmark pin paths).
Isa active_isa();
bool isa_supported(Isa isa);
void force_isa(Isa isa);  // throws std::invalid_argument when the CPU lacks it
void reset_isa();         // back to the automatic choice
const char* isa_name(Isa isa);

// The kernels of a path: its tiles are GemmBlocking512<T>'s (and GemmBlocking512InPlaceA<T>'s
// for A read in place) for avx512, else GemmBlocking<T>'s. The AVX-512 path has no column
// kernel: none has run on an AVX-512 CPU yet.
template <typename T>
TileKernels<T> select_tile_kernels(Isa isa);

// The narrow transposed product (kernels/gemm_narrow_tn.hpp) of a path: C = alpha * op(A) B +
// beta * C with op(A) = A^T and n <= kNarrowMaxColumns, on up to `width` rows of C per call
// (kNarrowAvx512Vectors or kNarrowAvx2Vectors vectors), A and B read in place, `width` values
// from each row of A: rows(n, rows, k, a, lda, b, ldb, c, ldc, alpha, beta). The portable path
// has none (rows is null) and uses its micro-kernel.
constexpr index_t kNarrowMaxColumns = 12;
// The AVX2 narrow kernel's blocks: two vectors of rows, so that each broadcast of B feeds two
// multiply-adds, as a broadcast of A does in the micro-kernels' tiles. One thread, Zen 3, whole
// products in place, GFLOP/s, alternated, one vector -> two: float 512 x 10 x 128 46.3 -> 50.3,
// 128 x 10 x 32 40.0 -> 40.5; double 512 x 10 x 128 17.5 -> 19.3, 128 x 10 x 32 20.8 -> 23.2;
// its loop alone, A in L1, float 16 x 10 x 128 58 -> 72 (the best of the runs).
constexpr int kNarrowAvx2Vectors = 2;
// The AVX-512 one keeps one vector (16 float rows, 8 double): not measured with two, for want
// of an AVX-512 machine since.
constexpr int kNarrowAvx512Vectors = 1;

template <typename T>
struct NarrowKernel {
  void (*rows)(index_t n, index_t rows, index_t k, const T* a, index_t lda, const T* b,
               index_t ldb, T* c, index_t ldc, T alpha, T beta) = nullptr;
  index_t width = 0;
};

template <typename T>
NarrowKernel<T> select_narrow_kernel(Isa isa);

// One entry point per compiled path (each in its own translation unit, built with its flags).
void micro_kernel_generic_s6x16(index_t, const PanelOperands<float>&, float*, index_t, float, float,
                                index_t, index_t);
void micro_kernel_generic_d6x8(index_t, const PanelOperands<double>&, double*, index_t, double,
                               double, index_t, index_t);
void micro_kernel_avx2_s6x16(index_t, const PanelOperands<float>&, float*, index_t, float, float,
                             index_t, index_t);
void micro_kernel_avx2_d6x8(index_t, const PanelOperands<double>&, double*, index_t, double,
                            double, index_t, index_t);
void column_kernel_generic_s6x16(const TileColumn<float>&);
void column_kernel_generic_d6x8(const TileColumn<double>&);
void column_kernel_avx2_s6x16(const TileColumn<float>&);
void column_kernel_avx2_d6x8(const TileColumn<double>&);
void micro_kernel_avx512_s14x32(index_t, const PanelOperands<float>&, float*, index_t, float,
                                float, index_t, index_t);
void micro_kernel_avx512_d14x16(index_t, const PanelOperands<double>&, double*, index_t, double,
                                double, index_t, index_t);
void narrow_tn_avx2_s(index_t, index_t, index_t, const float*, index_t, const float*,
                      index_t, float*, index_t, float, float);
void narrow_tn_avx2_d(index_t, index_t, index_t, const double*, index_t, const double*,
                      index_t, double*, index_t, double, double);
void narrow_tn_avx512_s(index_t, index_t, index_t, const float*, index_t, const float*,
                        index_t, float*, index_t, float, float);
void narrow_tn_avx512_d(index_t, index_t, index_t, const double*, index_t, const double*,
                        index_t, double*, index_t, double, double);

}  // namespace backprop
