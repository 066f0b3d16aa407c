// Tuning constants in one place: GEMM tiles and blocks, and the work below which we stay on one thread.
#pragma once

#include <cstdint>

namespace backprop {

using index_t = std::int64_t;

// Register tile of the GEMM micro-kernel (rows x columns of C) and the cache blocks around it,
// per element type. KC*NR elements of B stay in L1, MC*KC of A in L2, KC*NC of B in L3 (in
// L2 on the AVX-512 path, below: COLUMN_PANELS_FASTEST).
// GemmBlocking: the AVX2 and portable kernels (two 256-bit vectors per row);
// GemmBlocking512: the AVX-512 kernels (14 rows of two 512-bit vectors, 28 of 32 registers).
// Against 8 rows (16 registers), one thread: 1024^3 float 155 -> 160 GFLOP/s, double 64 -> 68,
// 512 x 512 x 128 TN float 146 -> 157. A last row panel of at most 4 or 8 rows runs a tile that
// high, so m = 32, 64 or 512 (14k + 4 or 8) computes no padding rows.
// Its B panel (KC x NR: 32 KiB) fits the 48 KiB L1 of the Xeon it was tuned on, not the 32 KiB
// of older AVX-512 CPUs; there KC = 128 or 192 measured no faster (within the noise of a shared
// machine). The thresholds below were tuned on the AVX2 tile and serve every family, but for
// kGemmRowSlabMaxPackingPerLine, tuned on the AVX-512 tiles and used by them alone.
template <typename T>
struct GemmBlocking;
template <typename T>
struct GemmBlocking512;

// A last row panel of at most TWO_PANEL_MAX_ROWS rows takes two full column panels per kernel
// call on the 6-row tiles (kernels/gemm_register_tile.hpp,
// tile_two_panels): the 6-row tile costs the same whatever mr is, while 4 mr accumulator chains
// keep the FMA units far busier than 2 mr. One thread, AVX2 on Zen 2, GFLOP/s (before SHORT_MR,
// below, took the blocks of more rows): 32 x 128 x 784
// float 80.6 -> 87.4, 128 x 512 x 512 88.6 -> 90.4, 1 x 512 x 784 8.4 -> 11.8, 32 x 128 x 784
// double 36.8 -> 39.3; products without such a panel moved by 1% or less, except 784 x 128 x 32
// TN, 80 -> 78.5 (the kernel's code moved; aligned, the loss was under 1%). The AVX-512 tiles
// have heights of their own for a last panel (4, 8 and 14) and do not pair.
// SHORT_MR: the family's kernels also have a tile of MR - 1 rows (0: none), and a block of rows
// that would end in a lower panel is cut into panels of MR and SHORT_MR rows where it can be
// (gemm.cpp, RowPanels): deep's 64 x 256 x 256 float then runs as nine panels of 6 rows and two
// of 5, 85-94 -> 96-99 GFLOP/s on one thread. The paired tile above remains for blocks of 1-3,
// 7-9, 13, 14 or 19 rows, too few to cut, and for a transposed A packed along its rows.
// PACK_TRANSPOSED_B_IN_FIRST_ROW_BLOCK: a transposed B with enough column panels is packed panel by
// panel inside the first row block, each panel multiplied while it is in L1 (gemm.cpp, gemm_team),
// rather than every thread packing its panels ahead of a barrier. Measured when it came in
// (84a641f, AVX2): 4% on 256 x 4096 x 4096 NT float. On the 2-vCPU AVX-512 Xeon the 14-row tiles
// lost by it (measured on shared blocks, before SHARE_PACKED_BLOCKS below; on their one-thread
// slabs since, fused and ahead measured within the noise): two threads, three rounds, GFLOP/s,
// fused -> ahead: 256 x 4096 x 4096 NT float 249-258 -> 261-264, 256 x 4096 x 1024 NT 259-268 ->
// 269-277, double 119-124 -> 127-128 and 121-127 -> 127-131; 128 x 512 x 512 and 64 x 256 x 256 NT
// within the noise. The AVX2 tiles on that machine: within the noise either way, so they keep it.
// SHARE_PACKED_BLOCKS: from kGemmSharedMinFlops on, whether the threads share each packed block
// (gemm_team: barriers, nothing packed twice) or each computes its own slab of C as below that size
// (gemm_split: no barriers, the shared operand packed by every thread). On the 2-vCPU AVX-512 Xeon
// the 14-row tiles run twice as fast as the AVX2 ones, and the barriers' waits cost them more than
// the packing: two threads, C on cache lines, two to three alternated rounds, GFLOP/s, shared ->
// slabs: 1024^3 float 297-316 -> 312-332, 256 x 4096 x 1024 NT 266-286 -> 279-294, 4096 x 1024 x
// 256 TN 294-306 -> 310-325, 256 x 4096 x 4096 NT 259-279 -> 263-282, 4096 x 4096 x 256 TN 292-316
// -> 302-311, 2048^3 306-329 -> 306-327; C 16 bytes past a line (row slabs where m = n): 1024^3 290
// -> 307-313, 4096 x 4096 x 256 TN 266-280 -> 259-272 (each thread's packed B block, 4 MiB at NC
// 4064, outgrew its 2 MiB L2). wide's epochs 1,638-1,818 -> 1,737-1,827 samples/s (six rounds). The
// AVX2 tiles on the same machine: 256 x 4096 x 1024 NT 191-192 -> 183-185, 4096 x 1024 x 256 TN
// 205-210 -> 195-199, the rest within the noise, so they share.
// COLUMN_PANELS_FASTEST: a thread runs its tiles of a block column panel after column panel,
// each row panel of A staying in L1 while the panels of B (KC x NC, 1 MiB: half the Xeon's 2
// MiB L2) stream past it, rather than row panel after row panel under one B panel. The 14-row
// AVX-512 tiles gained by it: slabs, two threads, three alternated rounds, GFLOP/s, NC 4064 and
// row panels fastest -> NC 1 MiB of B and column panels fastest: float 1024^3 296-300 -> 302-316,
// 2048^3 297-299 -> 308-314, 4096 x 4096 x 256 TN 288-304 -> 312-320, 4096 x 1024 x 256 TN
// 296-299 -> 310-324, 256 x 4096 x 1024 NT 271-273 -> 270-275; double 2048^3 130-137 -> 142-146,
// 4096 x 4096 x 256 TN 131-136 -> 143-147, 256 x 4096 x 4096 NT 121-127 -> 131-132; wide's
// epochs 1,692-1,701 -> 1,725-1,754 samples/s. NC 1 MiB alone, row panels fastest: within the
// noise; column panels fastest with NC 4064 (4 MiB of float B, past L2): 256 x 4096 x 1024 NT
// float 264-273 -> 245-258. The 8-row tiles that read A in place then (mnist's and deep's
// products) lost by it (deep's epochs -5%, mnist's -2%: each B panel streamed is 32 KiB per 8
// rows, not 14), so they kept row panels fastest; the 14-row ones that replaced them
// (GemmBlocking512InPlaceA) gained by it (measured there). A family that shares packed blocks
// splits a block's tiles between threads by column panels (gemm_team packs B to match), so it
// keeps row panels fastest.
template <>
struct GemmBlocking<float> {
  static constexpr index_t MR = 6;
  static constexpr index_t SHORT_MR = 5;
  static constexpr index_t CUT_MR = 0;
  static constexpr index_t NR = 16;
  static constexpr index_t MC = 144;
  static constexpr index_t KC = 256;
  static constexpr index_t NC = 4080;
  static constexpr index_t TWO_PANEL_MAX_ROWS = 3;
  static constexpr bool PACK_TRANSPOSED_B_IN_FIRST_ROW_BLOCK = true;
  static constexpr bool SHARE_PACKED_BLOCKS = true;
  static constexpr bool COLUMN_PANELS_FASTEST = false;
};

template <>
struct GemmBlocking<double> {
  static constexpr index_t MR = 6;
  static constexpr index_t SHORT_MR = 5;
  static constexpr index_t CUT_MR = 0;
  static constexpr index_t NR = 8;
  static constexpr index_t MC = 96;
  static constexpr index_t KC = 256;
  static constexpr index_t NC = 4080;
  static constexpr index_t TWO_PANEL_MAX_ROWS = 3;
  static constexpr bool PACK_TRANSPOSED_B_IN_FIRST_ROW_BLOCK = true;
  static constexpr bool SHARE_PACKED_BLOCKS = true;
  static constexpr bool COLUMN_PANELS_FASTEST = false;
};

template <>
struct GemmBlocking512<float> {
  static constexpr index_t MR = 14;
  static constexpr index_t SHORT_MR = 0;
  static constexpr index_t CUT_MR = 0;
  static constexpr index_t NR = 32;
  static constexpr index_t MC = 140;
  static constexpr index_t KC = 256;
  static constexpr index_t NC = 1024;
  static constexpr index_t TWO_PANEL_MAX_ROWS = 0;
  static constexpr bool PACK_TRANSPOSED_B_IN_FIRST_ROW_BLOCK = false;
  static constexpr bool SHARE_PACKED_BLOCKS = false;
  static constexpr bool COLUMN_PANELS_FASTEST = true;
};

template <>
struct GemmBlocking512<double> {
  static constexpr index_t MR = 14;
  static constexpr index_t SHORT_MR = 0;
  static constexpr index_t CUT_MR = 0;
  static constexpr index_t NR = 16;
  static constexpr index_t MC = 112;
  static constexpr index_t KC = 256;
  static constexpr index_t NC = 512;
  static constexpr index_t TWO_PANEL_MAX_ROWS = 0;
  static constexpr bool PACK_TRANSPOSED_B_IN_FIRST_ROW_BLOCK = false;
  static constexpr bool SHARE_PACKED_BLOCKS = false;
  static constexpr bool COLUMN_PANELS_FASTEST = true;
};

// A GEMM that reads A in place (see kGemmDirectAMaxPanels) on the AVX-512 path: the same 14-row
// tiles, and each block of rows cut into panels of 14, CUT_MR = 8 and 4 rows where it can be
// (gemm.cpp, RowPanels), so that no panel is packed: 128 = 8 x 14 + 8 + 8, 64 = 4 x 14 + 8,
// 32 = 2 x 14 + 4. Each row of a 14-row panel read in place is an addressing mode off three row
// pointers and two strides (kernels/gemm_register_tile.hpp, InPlaceRows14); with an address
// register per row, 14 rows had spilled them to the stack and 8-row tiles were faster. Column
// panels fastest, as the packed 14-row tiles, against row panels fastest (both 14 rows, before
// the cut): 128 x 512 x 512 NN one thread 149 -> 153-160, deep's 64 x 256 x 256 by k blocks
// 218-226 -> 232-239, 128 x 512 x 784 by k blocks 281-285 -> 291-299, 128 x 512 x 512 NT
// 282-287 -> 273-283. A split by rows gives each thread a multiple of CUT_MR / 2 rows (gemm.cpp,
// row_slab_unit): 128 rows as 64 and 64, each slab cut whole, where units of 14 gave 70 and 58
// and the larger slab packed a B that 64 rows read in place (128 x 10 x 512, two threads, 111-115
// -> 95 GFLOP/s). Against
// those 8-row tiles (run row panels fastest), two threads, two alternated rounds, float GFLOP/s:
// 64 x 256 x 256 split by k blocks (deep's layers) 209-212 -> 250-258, 32 x 128 x 784 by k
// blocks (tiny's) 205-226 -> 229-244, 128 x 512 x 784 by k blocks 287-290 -> 290-305, 128 x 512 x
// 512 NT 274-291 -> 282-299, 256 x 1024 x 1024 282-284 -> 300; one thread, 128 x 10 x 512
// 64-69 -> 70-71, 64 x 10 x 256 67-70 -> 70-74, 32 x 10 x 128 58-61 -> 55-58 (its last panel
// of 4 rows). Double, against the same blocks of 8-row tiles: 64 x 256 x 256 by k blocks
// 111-118 -> 118-124, 32 x 128 x 784 111-115 -> 122-127, the rest within the noise. Training on
// two threads, epochs, four alternated rounds, samples/s: deep +3.6% to +6.6% (4 of 4), mnist
// +3.2% to +3.8% in 3 of 4 (-3.7%); train_step deep faster in 3 of 4 (median +5%), mnist 4 of 4
// (+1.2% to +3.8%). The bits are the same: a row's sums do not depend on its tile's height.
template <typename T>
struct GemmBlocking512InPlaceA : GemmBlocking512<T> {
  static constexpr index_t CUT_MR = 8;
};

// Below this many float multiply-adds (about 20 us of one core) a GEMM called on its own runs
// on one thread; a double one takes twice as long, so its threshold is half as many
// (gemm_parallel_min_flops): the same 20 us. A parallel region whose threads are awake costs
// about a microsecond, but one whose second thread is asleep or preempted can cost tens: on a
// 2-vCPU KVM guest (Zen 2), a call after both vCPUs had idled 2-50 ms paid about 0.8 ms to wake
// the second, and 64^3 split in two ran at 0.6x of one thread in a busy moment, while tiny's
// 784 x 128 x 32 products gain 20% to 30%.
constexpr index_t kGemmParallelMinFlops = index_t(1) << 20;

// In a burst of calls (call_burst.hpp: the GEMM before, of at least this size, started, or
// ended on several threads, less than kCallBurstWindowNs earlier) a GEMM splits from this many
// float multiply-adds (about 3 us of one core; half as many in double). Two threads on the
// Zen 2 guest, in a loop, float GFLOP/s: 128 x 10 x 512 46 -> 78, 64 x 64 x 32 56 -> 70, 96^3
// 84 -> 137; with the caller busy 5-180 us between calls a split call was never slower than
// one thread, and training's samples/s did not change. The AVX-512 path does the same work in
// about half the time, so it splits from twice as many (kGemmBurstAvx512Scale): on the Xeon
// guest, one thread against two, float GFLOP/s: 64 x 10 x 256 69 against 61, 256 x 10 x 64 TN
// 78 against 73, 64^3 (2^18, so it still splits) 123 against 118, 64 x 64 x 96 139 against 150,
// 128 x 64 x 64 134 against 159.
constexpr index_t kGemmBurstParallelMinFlops = index_t(1) << 17;
constexpr index_t kGemmBurstAvx512Scale = 2;
constexpr std::int64_t kCallBurstWindowNs = 200'000;

// While another process keeps a core busy, any split waits on the thread that lost its core:
// one CPU hog on the 2-vCPU Zen 2 guest took float 128^3 from 84 GFLOP/s on one thread to 9-18
// on two, 1024^3 from 88 to 37-41, and two-thread training to a half to a ninth of its speed
// on one thread. The sign is a thread that starts its share late although its team had just
// run (its threads spin between calls, so they start within microseconds): under the hog, 30%
// to 100% of such calls had a thread start 0.4-1.5 ms late. Idle, with 0 to 190 us between
// 128^3 products, 1 to 7 calls in 2 s started 100 us late or more, and 0 to 5 of them 250 us
// or more (the hypervisor's hiccups, up to 4 ms); a machine whose threads spin for less than
// the burst window would add wake-ups of tens of microseconds. So kLateCallsToPause judged
// calls in a row that start kLateThreadNs late (or a fifth of that, if the delay is half the
// call's time and the call came within that fifth of the last split: no wake-up in it), each
// within a pause's length of the one before or twice its own time (calls over 0.5 s), pause
// every split (a lone late start is a hiccup, and a thread's first calls can start late: two
// in a row happened as tiny's training started, and pausing on one cost the idle guest up to
// a third of some products' speed in bench/gemm_peers.py) for kLateThreadPauseNs, or
// kLateThreadPauseRatio times that call's time if longer (late calls under 20 ms then cost
// at most 2% of the time on one thread), or twice the last pause if that one ended less than
// its own length before; never longer than kLateThreadLongestPauseNs. Under the hog, two
// threads then ran as fast as one: 128^3 80-85 GFLOP/s, 1024^3 80-88, training within noise.
constexpr std::int64_t kLateThreadNs = 250'000;
constexpr int kLateCallsToPause = 3;
constexpr std::int64_t kLateThreadPauseNs = 20'000'000;
constexpr std::int64_t kLateThreadPauseRatio = 50;
constexpr std::int64_t kLateThreadLongestPauseNs = 1'000'000'000;

// A float threshold for element type T: the same time of one core.
template <typename T>
constexpr index_t per_element_type(index_t float_flops) {
  return float_flops * index_t(sizeof(float)) / index_t(sizeof(T));
}

template <typename T>
constexpr index_t gemm_parallel_min_flops() {
  return per_element_type<T>(kGemmParallelMinFlops);
}

// A GemmSplit::k_blocks product splits by k blocks only while the block products the other
// threads hold (m x n values each) come to at most 1 / kGemmKSplitMaxShare of op(B)'s k x n
// values (gemm.cpp, k_split_applies, where the choice of a third is measured).
constexpr index_t kGemmKSplitMaxShare = 3;  // the products: at most a third of op(B)

// From this many multiply-adds on, threads share the packed blocks (barriers, no duplicated
// packing) on the families that take it (SHARE_PACKED_BLOCKS); below it each thread runs its
// own slab of C without a barrier.
constexpr index_t kGemmSharedMinFlops = index_t(1) << 27;

// A split GEMM on tiles that run column panels fastest (AVX-512), whose column slabs would share
// cache lines of C, splits by rows instead while packing B on each thread adds fewer values
// than this per line of C the columns would share (gemm.cpp, split_by_columns).
constexpr index_t kGemmRowSlabMaxPackingPerLine = 128;

// A GEMM asked for more k blocks than KC needs (gemm_k_block's min_blocks) makes each at least
// this deep: a shorter block would cost an extra pass over C for little work.
constexpr index_t kGemmMinKBlockDepth = 64;
// A one-thread GEMM on the AVX-512 tiles packs a k block of A once for every column block when
// that block (m x KC) takes at most this many bytes (gemm.cpp, packs_a_once_per_k_block).
constexpr index_t kGemmPackedAOnceMaxBytes = index_t(512) << 10;

// A GEMM with at most this many rows in op(A) reads an untransposed B of at most this many
// bytes in place instead of packing it: about 10% faster at 32 and 64 rows while B stays in
// L2, slower at 128 rows (where B is reused enough), and 1.3x to 2x slower with a B of 1 MiB
// and more (64 x 512 x 512, 32 x 1024 x 784), which streams from L3 or memory at a stride.
// Rows of B further apart than kGemmDirectBMaxRowBytes fall into too few L1 sets for a panel
// read in place to stay there; packed, it is contiguous: 64 x 512 x 256 float (rows 2 KiB
// apart) 62 -> 83 GFLOP/s packed, deep's 64 x 256 x 256 double 31 -> 41. At 1 KiB (deep's
// float products: 4 sets, 32 lines for a panel 128 or 256 rows deep) a loop of one product
// ran as fast either way, but training is faster packed, where B is the weights the last
// update wrote and comes from L3. Two Zen 3 threads, paired alternated runs, packed / in place:
// deep's train_step from Python 1.07x and 1.11x (faster in 9 of 14 pairs), its fit 1.16x and
// 1.04x (10 of 14); C++ loops of train_step 1.01x, 1.10x, 0.95x and of epochs 1.08x, 1.01x,
// 1.22x; 64 x 256 x 256 alone 1.05x. At 512 bytes (tiny's float rows, 8 sets) packing lost
// alone (32 x 128 x 784: 0.92x, 2 of 6 pairs) and did not gain in tiny's training (Python:
// fit 0.95x and 0.99x, train_step 1.07x and 0.96x), so tiny's B stays in place. Its double
// rows, 1 KiB apart, are packed: paired against in place, Python's train_step 0.96x and fit
// 0.99x, a C++ loop's 1.09x and 1.05x; no difference the noise lets through.
constexpr index_t kGemmDirectBMaxRows = 64;
constexpr index_t kGemmDirectBMaxBytes = index_t(512) << 10;
constexpr index_t kGemmDirectBMaxRowBytes = 512;

// A GEMM whose op(B) has at most this many column panels reads A in place instead of packing
// it: each row panel of A is then read once per column panel rather than copied once and read
// from the copy. Measured (one thread, C++ loop, best of alternating runs): 256 x 10 x 64
// double 19.6 -> 24.7 GFLOP/s, 128 x 32 x 512 float 67 -> 84, 256 x 128 x 256 float 88 -> 91,
// deep's 64 x 256 x 256 float (16 panels) 81 -> 86; at 32 panels it is even.
constexpr index_t kGemmDirectAMaxPanels = 16;

// The AVX-512 path reads a transposed A in place (14-row tiles) only up to this many column
// panels, and packs it above: the panel's k steps lie lda apart, over many pages, while a packed
// copy is contiguous. One thread, GFLOP/s read in place by 8-row tiles -> packed: 784 x 512 x
// 128 TN float (16 panels, mnist's first weight gradient) 127-128 -> 144-150; 256 x 256 x 64 (8)
// 136-138 -> 138-139; 784 x 128 x 32 (4) 119-122 -> 121-124; 256 x 64 x 256 (2) 136-140 ->
// 119-123; 512 x 32 x 128 (1) 127-132 -> 102, and 139-146 read in place by 14-row tiles.
constexpr index_t kGemmDirectTransposedAMaxPanels512 = 4;

// The micro-kernel prefetches its tile of C before the k loop, which hides the fetch of a C
// that is not in cache (4096 x 4096 x 256 TN float: 95 -> 99 GFLOP/s). With beta = 0 and fewer
// k steps than this, the loop is too short for the prefetch to arrive early, and its
// instructions (two per row: twelve on the 6-row AVX2 tile) cost more than they save: 128 x 512 x 10 NT float 54.2 -> 57.7 without them,
// 32 x 128 x 10 NT 38.2 -> 40.7.
constexpr index_t kGemmPrefetchCMinK = 16;

// Two-vector tiles of at least this many rows run their k loop two steps per pass
// (kernels/gemm_register_tile.hpp): the AVX-512 14-row tiles, float and double, whose step is
// 44 instructions of loads and FMAs; the loop's counter, compare and branch then come once per
// two steps. Two threads, four alternated rounds (double: three), GFLOP/s, one step -> two:
// float 1024^3 323-338 -> 330-336, 2048^3 312-337 -> 342-352, 256 x 4096 x 1024 NT 297-305 ->
// 312-326; double 1024^3 144-154 -> 153-158, 256 x 4096 x 1024 NT 133-151 -> 146-152; wide's
// epochs faster in five of six rounds (median +3%). On L1-resident panels, one thread: 85% ->
// 88% of the FMA peak (four steps per pass: 86%; in products they lost, an earlier session
// found). The 8-row tiles that read A in place lost by it (64 x 256 x 256 NN float 267-353 ->
// 268-286, NT alike, 128 x 512 x 784 NN 278-311 -> 266-296), and the AVX2 tiles (6 rows)
// measured the same either way.
constexpr int kGemmTwoStepsMinRows = 9;

// A transposed A read in place takes each k step from a new row of the stored matrix. Rows a
// multiple of 4 KiB apart all fall into one set of the 32 KiB, 8-way L1 (2 KiB: two sets), and
// then reading in place is slower than packing unless there are at most that many column panels:
// 1024 x 10 x 128 float (rows 4 KiB apart) 32 -> 27 GFLOP/s in place, 256 x 64 x 256 double
// (2 KiB, 8 panels) 37 -> 31, but 256 x 10 x 64 double (2 KiB, 2 panels) 19.5 -> 24.
constexpr index_t kL1SetStrideBytes = 64;   // a cache line: consecutive lines, consecutive sets
constexpr index_t kL1Sets = 64;             // 32 KiB / (8 ways x 64 bytes)

// Elementwise kernels (activations, updates) go parallel only from this many elements on, in
// one share per thread that starts on a multiple of kElementwiseAlign elements (for_each_share).
// 2^15 rather than 2^18 made tiny's update parallel: 3% to 11% more samples/s on 2 threads.
constexpr index_t kElementwiseParallelMin = 1 << 15;
constexpr index_t kElementwiseAlign = 16;  // 64 bytes of float, 128 of double
// The finiteness scan (all_finite) reads blocks of this many elements.
constexpr index_t kElementwiseBlock = 1 << 14;
// all_finite splits over the threads from this many elements on: fit checks the whole data set
// on every call. Two Xeon threads against one: 2048 x 784 float 222 -> 103 us (on one thread,
// 2.6% of tiny's 8.5 ms epoch on those rows), 60000 x 784 9.8 -> 5.7 ms, 2^18 values 16.5 ->
// 9.7 us. A batch's own check (mnist's 128 x 784: 6.6 us) stays on the calling thread.
constexpr index_t kFiniteScanParallelMin = index_t(1) << 18;
// A thread's rows of a weight gradient that an early update writes as it takes them go to a
// buffer of the thread's own, not to the grads buffer, up to this many bytes (mlp.cpp,
// gradient_in_thread_buffer): a quarter of the Xeon's 2 MiB L2, where it was measured. It
// would be half of Zen 5's 1 MiB L2 and all of Zen 2's 512 KiB (measured on neither).
constexpr index_t kThreadGradientMaxBytes = index_t(512) << 10;

}  // namespace backprop

// Hot elementwise loops are compiled three times, for AVX-512F, for AVX2 and for the baseline
// x86-64, and the loader picks the one this CPU runs (GCC's target_clones). No clone contracts
// a*b+c into an FMA (-ffp-contract=off), so all give the same bits. Loops over short rows
// (a softmax over 10 classes) skip the AVX-512 clone: a row shorter than 16 floats never fills
// its vector and would run as scalar tail alone, slower than AVX2 (softmax of 6554 rows of 10,
// float32: 156 -> 173 us). Other compilers and CPUs get the baseline only.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define BACKPROP_ELEMENTWISE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define BACKPROP_SHORT_ROW_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define BACKPROP_ELEMENTWISE_CLONES
#define BACKPROP_SHORT_ROW_CLONES
#endif

// Functions a vectorized loop calls must be inlined whole, or the loop stays scalar: GCC's
// inliner gave up partway into the double-precision softplus and sigmoid derivative.
#if defined(__GNUC__)
#define BACKPROP_ALWAYS_INLINE inline __attribute__((always_inline))
#define BACKPROP_LAMBDA_ALWAYS_INLINE __attribute__((always_inline))
#else
#define BACKPROP_ALWAYS_INLINE inline
#define BACKPROP_LAMBDA_ALWAYS_INLINE
#endif
