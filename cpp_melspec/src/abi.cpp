// The C ABI exported by melspec.wasm (see cpp_melspec/README.md). Handles index a small fixed table;
// the last error message is kept in a static buffer. No exceptions, threads, files, clocks or env.
#include <stdint.h>
#include <stdio.h>

#include "melspec.h"

#define MELSPEC_EXPORT(name) extern "C" __attribute__((export_name(name), visibility("default")))

namespace {

constexpr int32_t kAbiVersion = 1;
constexpr int32_t kMaxHandles = 64;
constexpr size_t kErrorSize = 512;

melspec::MelSpec* g_plans[kMaxHandles] = {};
char g_error[kErrorSize] = "";

melspec::MelSpec* lookup(int32_t handle) {
  if (handle < 1 || handle > kMaxHandles || g_plans[handle - 1] == nullptr) {
    snprintf(g_error, kErrorSize, "invalid handle %d (create one with melspec_create)", static_cast<int>(handle));
    return nullptr;
  }
  return g_plans[handle - 1];
}

}  // namespace

MELSPEC_EXPORT("melspec_abi_version") int32_t melspec_abi_version(void) { return kAbiVersion; }

MELSPEC_EXPORT("melspec_create")
int32_t melspec_create(int32_t sample_rate_hz, int32_t n_fft, int32_t hop_length, int32_t win_length, int32_t window,
                       int32_t center, int32_t pad_mode, int32_t n_mels, double fmin_hz, double fmax_hz, double power,
                       int32_t htk, int32_t mel_norm, double db_ref, double db_amin, double top_db) {
  int32_t slot = 0;
  while (slot < kMaxHandles && g_plans[slot] != nullptr) ++slot;
  if (slot == kMaxHandles) {
    snprintf(g_error, kErrorSize, "too many open handles (%d); destroy unused ones", static_cast<int>(kMaxHandles));
    return melspec::kErrTooManyHandles;
  }
  const melspec::MelSpecConfig config = {sample_rate_hz, n_fft, hop_length, win_length, window, center,
                                         pad_mode,       n_mels, fmin_hz,   fmax_hz,    power,  htk,
                                         mel_norm,       db_ref, db_amin,   top_db};
  melspec::MelSpec* plan = nullptr;
  const int32_t status = melspec::melspec_plan_create(&config, &plan, g_error, kErrorSize);
  if (status != melspec::kOk) return status;
  g_plans[slot] = plan;
  g_error[0] = '\0';
  return slot + 1;
}

MELSPEC_EXPORT("melspec_input") float* melspec_input(int32_t handle, int32_t n_samples) {
  melspec::MelSpec* plan = lookup(handle);
  if (plan == nullptr) return nullptr;
  float* input = melspec::melspec_plan_input(plan, n_samples);
  if (input == nullptr) snprintf(g_error, kErrorSize, "out of memory for %d input samples", static_cast<int>(n_samples));
  return input;
}

MELSPEC_EXPORT("melspec_compute") int32_t melspec_compute(int32_t handle, int32_t n_samples) {
  melspec::MelSpec* plan = lookup(handle);
  if (plan == nullptr) return melspec::kErrInvalidHandle;
  return melspec::melspec_plan_compute(plan, n_samples, g_error, kErrorSize);
}

MELSPEC_EXPORT("melspec_output") float* melspec_output(int32_t handle) {
  melspec::MelSpec* plan = lookup(handle);
  return plan == nullptr ? nullptr : melspec::melspec_plan_output(plan);
}

MELSPEC_EXPORT("melspec_last_error") const char* melspec_last_error(void) { return g_error; }

MELSPEC_EXPORT("melspec_destroy") int32_t melspec_destroy(int32_t handle) {
  melspec::MelSpec* plan = lookup(handle);
  if (plan == nullptr) return melspec::kErrInvalidHandle;
  melspec::melspec_plan_destroy(plan);
  g_plans[handle - 1] = nullptr;
  return melspec::kOk;
}

MELSPEC_EXPORT("melspec_fft_buffer") double* melspec_fft_buffer(int32_t handle) {
  melspec::MelSpec* plan = lookup(handle);
  return plan == nullptr ? nullptr : melspec::melspec_plan_fft_buffer(plan);
}

MELSPEC_EXPORT("melspec_fft_forward") int32_t melspec_fft_forward(int32_t handle) {
  melspec::MelSpec* plan = lookup(handle);
  if (plan == nullptr) return melspec::kErrInvalidHandle;
  melspec::melspec_plan_rfft(plan);
  return melspec::kOk;
}
