// numpy's own float32 roundings that librosa's result depends on, reproduced exactly:
// np.abs of complex64 and `float32_array ** power`. Header-only (inlined into the hot loops).
#ifndef MELSPEC_NUMPY_OPS_H
#define MELSPEC_NUMPY_OPS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#endif

namespace melspec {

// numpy.abs on complex64 (numpy >= 2 SIMD loop): larger * sqrt(fma(r, r, 1)), r = smaller / larger,
// all in float32. The float32 fma is done exactly: r * r is exact in double and the sum is rounded
// to odd before the final rounding to float32.
inline float numpy_cabsf(float re, float im) {
  const float a = fabsf(re);
  const float b = fabsf(im);
  const float larger = a > b ? a : b;
  const float smaller = a > b ? b : a;
  if (larger == 0.0f) return 0.0f;
  const float ratio = smaller / larger;
  const double product = static_cast<double>(ratio) * static_cast<double>(ratio);
  double sum = 1.0 + product;
  const double residual = product - (sum - 1.0);  // exact: sum - 1.0 and the difference are representable
  // Round to odd, without branches: an inexact sum with an even last bit moves one ulp towards the
  // exact value (sum > 0, so +1 on the bits is one ulp up).
  uint64_t bits;
  memcpy(&bits, &sum, sizeof bits);
  const uint64_t direction = static_cast<uint64_t>(static_cast<int64_t>(residual > 0.0) -
                                                   static_cast<int64_t>(residual < 0.0));
  bits += direction & ((bits & 1u) - 1u);
  memcpy(&sum, &bits, sizeof bits);
  const float fused = static_cast<float>(sum);
  return __builtin_sqrtf(fused) * larger;
}

// numpy's `magnitude ** power` for a float32 array and a Python float exponent.
inline float apply_power(float magnitude, double power) {
  if (power == 2.0) return magnitude * magnitude;
  if (power == 1.0) return magnitude;
  if (power == 0.5) return __builtin_sqrtf(magnitude);
  return static_cast<float>(pow(static_cast<double>(magnitude), static_cast<double>(static_cast<float>(power))));
}

#if defined(__wasm_simd128__)
// numpy_cabsf on four points at once, given as float32 real and imaginary parts (lane i = point i),
// with the same roundings.
inline v128_t numpy_cabsf4(v128_t re, v128_t im) {
  const v128_t a = wasm_f32x4_abs(re);
  const v128_t b = wasm_f32x4_abs(im);
  const v128_t larger = wasm_f32x4_pmax(a, b);
  const v128_t smaller = wasm_f32x4_pmin(a, b);
  const v128_t is_zero = wasm_f32x4_eq(larger, wasm_f32x4_splat(0.0f));
  const v128_t ratio = wasm_v128_andnot(wasm_f32x4_div(smaller, larger), is_zero);  // 0/0 -> 0
  const v128_t one = wasm_f64x2_splat(1.0);
  const v128_t low_bit = wasm_i64x2_splat(1);
  v128_t fused[2];
  for (int half = 0; half < 2; ++half) {
    const v128_t r = wasm_f64x2_promote_low_f32x4(half == 0 ? ratio : wasm_i32x4_shuffle(ratio, ratio, 2, 3, 2, 3));
    const v128_t product = wasm_f64x2_mul(r, r);
    const v128_t sum = wasm_f64x2_add(one, product);
    const v128_t residual = wasm_f64x2_sub(product, wasm_f64x2_sub(sum, one));
    const v128_t zero = wasm_f64x2_splat(0.0);
    // direction = +1 / -1 / 0 as (lt mask) - (gt mask); applied only where the last bit is even
    const v128_t direction = wasm_i64x2_sub(wasm_f64x2_lt(residual, zero), wasm_f64x2_gt(residual, zero));
    const v128_t even = wasm_i64x2_eq(wasm_v128_and(sum, low_bit), wasm_i64x2_splat(0));
    fused[half] = wasm_f32x4_demote_f64x2_zero(wasm_i64x2_add(sum, wasm_v128_and(direction, even)));
  }
  const v128_t f = wasm_i32x4_shuffle(fused[0], fused[1], 0, 1, 4, 5);
  return wasm_f32x4_mul(wasm_f32x4_sqrt(f), larger);
}
#endif

}  // namespace melspec

#endif  // MELSPEC_NUMPY_OPS_H
