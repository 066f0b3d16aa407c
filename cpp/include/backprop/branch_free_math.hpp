// exp, expm1, log1p, tanh and the normal distribution for the arguments the activations and
// the softmax need, written without branches or calls so that a loop over them vectorizes.
// libm's take one call per element: a 256-wide tanh network trained at 0.56x the speed of the
// same network with relu.
//
// Each stays within 3 units in the last place of the exact result, Phi within about 7 (the
// tests measure them over every sign, size and special value). The arithmetic is plain IEEE,
// with no FMA (-ffp-contract=off) and no reassociation, so a vector lane and a loop's scalar
// tail give the same bits, and so do one and two threads. Selects stand where branches would
// be: both sides are computed.
#pragma once

#include "backprop/config.hpp"
#include "backprop/float_bits.hpp"

#include <cmath>

namespace backprop {
namespace branch_free {

template <typename T>
struct Constants;

template <>
struct Constants<float> {
  static constexpr int kMantissaBits = 23;
  static constexpr int kExponentBias = 127;
  static constexpr float kRoundToInteger = 12582912.0f;  // 1.5 * 2^23: x + it - it = rint(x)
  static constexpr float kExpLowest = -104.0f;           // exp below this rounds to 0
  static constexpr float kExpm1Lowest = -30.0f;          // expm1 below this rounds to -1
  static constexpr int kExpDegree = 7;                   // Taylor degree for |r| <= ln2 / 2
  static constexpr int kExpm1Degree = 8;
  static constexpr int kAtanhTerms = 4;                  // terms of log's series in s^2
  static constexpr int kErfTaylorTerms = 7;              // erf's series for |x| <= 1/2
  static constexpr int kErfcChebyshevTerms = 12;         // of kErfcChebyshev
  static constexpr float kVeltkampSplitter = 4097.0f;    // 2^12 + 1: splits 24 bits in 12 + 12
  static constexpr float kNormalClamp = 15.0f;           // Phi(-15) and e^(-15^2 / 2) round to 0
};

template <>
struct Constants<double> {
  static constexpr int kMantissaBits = 52;
  static constexpr int kExponentBias = 1023;
  static constexpr double kRoundToInteger = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double kExpLowest = -746.0;
  static constexpr double kExpm1Lowest = -50.0;
  static constexpr int kExpDegree = 13;
  static constexpr int kExpm1Degree = 14;
  static constexpr int kAtanhTerms = 9;
  static constexpr int kErfTaylorTerms = 13;
  static constexpr int kErfcChebyshevTerms = 25;
  static constexpr double kVeltkampSplitter = 134217729.0;  // 2^27 + 1
  static constexpr double kNormalClamp = 40.0;
};

// erfc(x) e^(x^2) / t with t = 2 / (2 + x), for x >= 1/2 (t in (0, 0.8]), as a Chebyshev series
// in t on [0, 0.8]: the coefficients of its interpolant at 48 Chebyshev nodes, computed with
// mpmath at 40 digits. They fall below 2e-17 after 25 terms (double) and 4e-10 after 12
// (float).
constexpr double kErfcChebyshev[25] = {
    0.48699748965933807508,    0.24101444861760663227,    0.039171580198019343142,
    0.0028202013162589697429,  -0.00031900258801429846488, -0.000077624582946337690347,
    3.9047589030667484079e-6,  2.1065010053835600729e-6,  -1.1719156145292980931e-7,
    -6.4586129776873037967e-8, 6.5479281189765308983e-9,  2.0176470623078222486e-9,
    -3.9824011758730170059e-10, -4.9761436210290494042e-11, 2.2139448391598872435e-11,
    -1.7358623528113926076e-13, -1.0262097876293879025e-12, 1.4448991184132368371e-13,
    3.1589800536430021716e-14, -1.242895997189401249e-14, 3.0295830930074994961e-16,
    6.4222143479098525855e-16, -1.329424267463555249e-16, -1.2796905792827281924e-17,
    1.05322887602110474e-17};
constexpr double kErfcChebyshevEnd = 0.8;

template <typename T>
constexpr T kLog2e = T(1.44269504088896340736);
// ln 2 split in two: kLn2Hi has few enough bits that k * kLn2Hi is exact for every k used here.
template <typename T>
constexpr T kLn2Hi = sizeof(T) == 4 ? T(0.693145751953125) : T(6.93147180369123816490e-01);
template <typename T>
constexpr T kLn2Lo = sizeof(T) == 4 ? T(1.4286068202862268e-06) : T(1.90821492927058770002e-10);
template <typename T>
constexpr T kSqrt2 = T(1.41421356237309504880);
template <typename T>
constexpr T kInvSqrt2 = T(0.70710678118654752440);
template <typename T>
constexpr T kInvSqrt2Pi = T(0.39894228040143267794);
template <typename T>
constexpr T kTwoOverSqrtPi = T(1.12837916709551257390);

// The integer k = rint(x), as a float and as the integer: x must be well inside +-2^22.
template <typename T>
struct RoundedInteger {
  T value;
  FloatBits<T> bits;  // k in two's complement
};

template <typename T>
BACKPROP_ALWAYS_INLINE RoundedInteger<T> round_to_integer(T x) {
  constexpr T magic = Constants<T>::kRoundToInteger;
  const T shifted = x + magic;
  return {shifted - magic, bits_of(shifted) - bits_of(magic)};
}

// 2^k for an integer k inside the normal exponents.
template <typename T>
BACKPROP_ALWAYS_INLINE T power_of_two(FloatBits<T> k) {
  return float_from_bits<T>((k + FloatBits<T>(Constants<T>::kExponentBias))
                            << Constants<T>::kMantissaBits);
}

// x = k ln2 + r with |r| <= ln2 / 2 (Cody and Waite's reduction).
template <typename T>
struct Reduced {
  RoundedInteger<T> k;
  T r;
};

template <typename T>
BACKPROP_ALWAYS_INLINE Reduced<T> reduce_by_ln2(T x) {
  const RoundedInteger<T> k = round_to_integer(x * kLog2e<T>);
  return {k, (x - k.value * kLn2Hi<T>) - k.value * kLn2Lo<T>};
}

template <typename T>
constexpr T inverse_factorial(int n) {
  T factorial = T(1);
  for (int i = 2; i <= n; ++i) factorial *= T(i);  // exact: 14! < 2^53, 8! < 2^24
  return T(1) / factorial;
}

// sum_{n=N}^{Last} Series::coefficient<T>(n) z^(n - N), by Horner's rule, unrolled at compile
// time (a loop inside the element loop would keep it from vectorizing).
template <typename T, typename Series, int N, int Last>
BACKPROP_ALWAYS_INLINE T horner(T z) {
  constexpr T coefficient = Series::template coefficient<T>(N);
  if constexpr (N == Last) {
    return coefficient;
  } else {
    return coefficient + z * horner<T, Series, N + 1, Last>(z);
  }
}

// 1 / n!: e^r's Taylor series.
struct ExpSeries {
  template <typename T>
  static constexpr T coefficient(int n) { return inverse_factorial<T>(n); }
};

// 2 / (2n + 1): atanh's series in z = s^2, for its s^(2n+1) term.
struct AtanhSeries {
  template <typename T>
  static constexpr T coefficient(int n) { return T(2) / T(2 * n + 1); }
};

// (-1)^n / (n! (2n + 1)): erf(x) = 2/sqrt(pi) x * the series in z = x^2.
struct ErfSeries {
  template <typename T>
  static constexpr T coefficient(int n) {
    return T((n % 2 ? -1 : 1) * inverse_factorial<double>(n) / (2 * n + 1));
  }
};

// Clenshaw's recurrence for sum_{k<N} kErfcChebyshev[k] T_k(s), from k = K down to 1;
// b1, b2 hold b_{K+1}, b_{K+2} on entry and b_1, b_2 on return.
template <typename T, int K>
BACKPROP_ALWAYS_INLINE void clenshaw_erfc(T two_s, T& b1, T& b2) {
  if constexpr (K >= 1) {
    const T b = T(kErfcChebyshev[K]) + two_s * b1 - b2;
    b2 = b1;
    b1 = b;
    clenshaw_erfc<T, K - 1>(two_s, b1, b2);
  }
}

// e^x for x <= 0; larger x is taken as 0, -inf gives 0 and NaN gives NaN. Results below the
// smallest normal float round once, as subnormals: 2^k is applied as two normal halves.
template <typename T>
BACKPROP_ALWAYS_INLINE T exp_nonpositive(T x) {
  x = x > T(0) ? T(0) : x;
  x = x < Constants<T>::kExpLowest ? Constants<T>::kExpLowest : x;
  const Reduced<T> reduced = reduce_by_ln2(x);
  const T exp_r = horner<T, ExpSeries, 0, Constants<T>::kExpDegree>(reduced.r);
  const RoundedInteger<T> half = round_to_integer(reduced.k.value * T(0.5));
  return exp_r * power_of_two<T>(half.bits) * power_of_two<T>(reduced.k.bits - half.bits);
}

// e^x = 2^k e^r for x in [kExpm1Lowest, 0], with e^r - 1 kept apart: both e^x and e^x - 1
// follow from it to within a unit or two in the last place.
template <typename T>
struct SplitExp {
  T scale;           // 2^k
  T expm1_r;         // e^r - 1
  bool k_is_zero;
};

template <typename T>
BACKPROP_ALWAYS_INLINE SplitExp<T> split_exp(T x) {
  x = x > T(0) ? T(0) : x;
  x = x < Constants<T>::kExpm1Lowest ? Constants<T>::kExpm1Lowest : x;
  const Reduced<T> reduced = reduce_by_ln2(x);
  const T r = reduced.r;
  const T expm1_r = r * horner<T, ExpSeries, 1, Constants<T>::kExpm1Degree>(r);
  return {power_of_two<T>(reduced.k.bits), expm1_r, reduced.k.value == T(0)};
}

// e^x - 1 = 2^k (e^r - 1) + (2^k - 1), which does not cancel for k != 0: |2^k (e^r - 1)| is below
// half of |2^k - 1| there.
template <typename T>
BACKPROP_ALWAYS_INLINE T expm1_of(SplitExp<T> e) {
  return e.k_is_zero ? e.expm1_r : e.scale * e.expm1_r + (e.scale - T(1));
}

// e^x - 1 for x <= 0, accurate near 0 (where e^x - 1 would cancel); larger x is taken as 0,
// and below kExpm1Lowest the result is -1. -0 gives -0.
template <typename T>
BACKPROP_ALWAYS_INLINE T expm1_nonpositive(T x) {
  return expm1_of(split_exp(x));
}

// log(1 + t) for t in [0, 1].
template <typename T>
BACKPROP_ALWAYS_INLINE T log1p_unit(T t) {
  const T w = T(1) + t;
  const T w_error = t - (w - T(1));  // exact: 1 + t = w + w_error
  // w = 2^e m with m in [sqrt(2)/2, sqrt(2)], and log(1 + f), f = m - 1, through
  // s = f / (2 + f): log(1 + f) = 2 atanh(s) = 2s + s R(s^2) = f - s (f - R(s^2)).
  const bool halve = w > kSqrt2<T>;
  const T e = halve ? T(1) : T(0);
  const T f = (halve ? w * T(0.5) : w) - T(1);
  const T s = f / (T(2) + f);
  const T z = s * s;
  const T R = z * horner<T, AtanhSeries, 1, Constants<T>::kAtanhTerms>(z);
  const T small_terms = s * (f - R) - (e * kLn2Lo<T> + w_error / w);
  return (e * kLn2Hi<T> + f) - small_terms;
}

// tanh|x| from e^(-2|x|) = 2^k e^r: as (1 - q) / (1 + q) = -m / (2 + m) with m = q - 1 up to
// tanh = 1/2, where m keeps the digits of small |x|; as 1 - 2q / (1 + q) above, where tanh is near
// 1 and an error in m would be multiplied by 2 (and 1 - tanh^2, the derivative, needs tanh's
// last digits).
template <typename T>
BACKPROP_ALWAYS_INLINE T tanh(T x) {
  const T magnitude = std::fabs(x);
  const SplitExp<T> e = split_exp(T(-2) * magnitude);
  const T m = expm1_of(e);
  const T q = e.scale * (T(1) + e.expm1_r);
  const T near_one = T(1) - T(2) * q / (T(1) + q);
  const T near_zero = -m / (T(2) + m);
  return std::copysign(magnitude > T(0.5493061443340549) ? near_one : near_zero, x);
}

// 1 / (1 + e^-u) = e^u / (1 + e^u), with exp taken only of -|u|: one division, one rounding.
template <typename T>
BACKPROP_ALWAYS_INLINE T sigmoid(T u) {
  const T e = exp_nonpositive(-std::fabs(u));
  return (u >= T(0) ? T(1) : e) / (T(1) + e);
}

// log(1 + e^u) without overflow.
template <typename T>
BACKPROP_ALWAYS_INLINE T softplus(T u) {
  return (u > T(0) ? u : T(0)) + log1p_unit(exp_nonpositive(-std::fabs(u)));
}

// The standard normal distribution at u: Phi(u) and phi(u), for gelu and its derivative.
template <typename T>
struct Normal {
  T cdf;
  T pdf;
};

// |u|, at most kNormalClamp, from where Phi is 0 or 1 and phi 0. NaN stays NaN.
template <typename T>
BACKPROP_ALWAYS_INLINE T clamped_magnitude(T u) {
  const T a = std::fabs(u);
  return a > Constants<T>::kNormalClamp ? Constants<T>::kNormalClamp : a;
}

// e^(-a^2 / 2) for a = clamped_magnitude(u), with a^2 split exactly into two floats
// (Veltkamp and Dekker): rounded, a^2 would cost about a^2 ulps.
template <typename T>
BACKPROP_ALWAYS_INLINE T gaussian_of_magnitude(T a) {
  const T split = Constants<T>::kVeltkampSplitter * a;
  const T high = split - (split - a);
  const T low = a - high;
  const T square = a * a;
  const T square_error = ((high * high - square) + T(2) * high * low) + low * low;
  return exp_nonpositive(T(-0.5) * square) * (T(1) - T(0.5) * square_error);
}

// e^(-u^2 / 2).
template <typename T>
BACKPROP_ALWAYS_INLINE T gaussian(T u) {
  return gaussian_of_magnitude(clamped_magnitude(u));
}

// Near 0 (|u| <= 1/sqrt 2), Phi = 1/2 + erf(u / sqrt 2) / 2 by erf's Taylor series; further
// out, from erfc(x) = e^(-x^2) t Q(t) at x = |u| / sqrt 2 (Q: kErfcChebyshev), which keeps
// its digits in the lower tail where 1 + erf cancels.
template <typename T>
BACKPROP_ALWAYS_INLINE Normal<T> normal(T u) {
  const T x = u * kInvSqrt2<T>;
  const T erf_x =
      kTwoOverSqrtPi<T> * x * horner<T, ErfSeries, 0, Constants<T>::kErfTaylorTerms - 1>(x * x);
  const T central = T(0.5) + T(0.5) * erf_x;
  const T a = clamped_magnitude(u);
  const T e = gaussian_of_magnitude(a);
  const T t = T(2) / (T(2) + a * kInvSqrt2<T>);
  const T s = t * T(2.0 / kErfcChebyshevEnd) - T(1);
  T b1 = T(0), b2 = T(0);
  clenshaw_erfc<T, Constants<T>::kErfcChebyshevTerms - 1>(T(2) * s, b1, b2);
  const T half_erfc = T(0.5) * e * t * (T(kErfcChebyshev[0]) + s * b1 - b2);
  const T tail = u < T(0) ? half_erfc : T(1) - half_erfc;
  return {std::fabs(x) <= T(0.5) ? central : tail, kInvSqrt2Pi<T> * e};
}

}  // namespace branch_free
}  // namespace backprop
