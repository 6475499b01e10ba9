// librosa's window and mel filterbank; see librosa_filters.h.
#include "librosa_filters.h"

#include <math.h>
#include <stdlib.h>

namespace melspec {
namespace {

constexpr double kPi = 3.14159265358979323846264338327950288;

// numpy.linspace(start, stop, num)[i] for num >= 2: i * step + start, the last element exactly stop.
void linspace(double start, double stop, int32_t num, double* out) {
  const double step = (stop - start) / static_cast<double>(num - 1);
  for (int32_t i = 0; i < num; ++i) out[i] = static_cast<double>(i) * step + start;
  out[num - 1] = stop;
}

// librosa.hz_to_mel / mel_to_hz (Slaney: linear below 1 kHz, logarithmic above; or HTK).
double hz_to_mel(double hz, bool htk) {
  if (htk) return 2595.0 * log10(1.0 + hz / 700.0);
  const double f_sp = 200.0 / 3;
  const double min_log_mel = 1000.0 / f_sp;
  const double logstep = log(6.4) / 27.0;
  if (hz >= 1000.0) return min_log_mel + log(hz / 1000.0) / logstep;
  return hz / f_sp;
}

double mel_to_hz(double mel, bool htk) {
  if (htk) return 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
  const double f_sp = 200.0 / 3;
  const double min_log_mel = 1000.0 / f_sp;
  const double logstep = log(6.4) / 27.0;
  if (mel >= min_log_mel) return 1000.0 * exp(logstep * (mel - min_log_mel));
  return 0.0 + f_sp * mel;
}


}  // namespace

bool hann_window(int32_t n_fft, int32_t win_length, double* out) {
  for (int32_t i = 0; i < n_fft; ++i) out[i] = 0.0;
  const int32_t left = (n_fft - win_length) / 2;
  if (win_length == 1) {  // scipy returns ones(1) for M <= 1
    out[left] = 1.0;
    return true;
  }
  // general_cosine(M + 1, [0.5, 0.5]) truncated to M: 0.5 + 0.5 cos(linspace(-pi, pi, M + 1)[i])
  double* angles = static_cast<double*>(malloc(sizeof(double) * (win_length + 1)));
  if (angles == nullptr) return false;
  linspace(-kPi, kPi, win_length + 1, angles);
  for (int32_t i = 0; i < win_length; ++i) out[left + i] = 0.5 + 0.5 * cos(angles[i]);
  free(angles);
  return true;
}

bool mel_filterbank_init(MelFilterbank* fb, int32_t sample_rate_hz, int32_t n_fft, int32_t n_mels, double fmin_hz,
                         double fmax_hz, bool htk, bool slaney_norm) {
  *fb = MelFilterbank{};
  fb->n_mels = n_mels;
  const int32_t n_bins = n_fft / 2 + 1;
  double* mel_f = static_cast<double*>(malloc(sizeof(double) * (n_mels + 2)));
  double* fft_f = static_cast<double*>(malloc(sizeof(double) * n_bins));
  float* dense = static_cast<float*>(malloc(sizeof(float) * n_bins));
  fb->first = static_cast<int32_t*>(calloc(n_mels, sizeof(int32_t)));
  fb->count = static_cast<int32_t*>(calloc(n_mels, sizeof(int32_t)));
  fb->offset = static_cast<int32_t*>(calloc(n_mels, sizeof(int32_t)));
  bool ok = mel_f && fft_f && dense && fb->first && fb->count && fb->offset;
  if (ok) {
    // numpy.fft.rfftfreq(n_fft, d=1.0 / sr): k * (1.0 / (n * d))
    const double d = 1.0 / static_cast<double>(sample_rate_hz);
    const double val = 1.0 / (static_cast<double>(n_fft) * d);
    for (int32_t k = 0; k < n_bins; ++k) fft_f[k] = static_cast<double>(k) * val;
    linspace(hz_to_mel(fmin_hz, htk), hz_to_mel(fmax_hz, htk), n_mels + 2, mel_f);
    for (int32_t i = 0; i < n_mels + 2; ++i) mel_f[i] = mel_to_hz(mel_f[i], htk);
  }
  // Two passes: count the non-zero weights, then store them.
  int64_t total = 0;
  for (int pass = 0; ok && pass < 2; ++pass) {
    total = 0;
    for (int32_t b = 0; b < n_mels; ++b) {
      const double fdiff_lo = mel_f[b + 1] - mel_f[b];
      const double fdiff_hi = mel_f[b + 2] - mel_f[b + 1];
      const double enorm = 2.0 / (mel_f[b + 2] - mel_f[b]);
      int32_t first = -1;
      int32_t last = -1;
      for (int32_t k = 0; k < n_bins; ++k) {
        const double lower = -(mel_f[b] - fft_f[k]) / fdiff_lo;
        const double upper = (mel_f[b + 2] - fft_f[k]) / fdiff_hi;
        double w = lower < upper ? lower : upper;
        if (!(w > 0.0)) w = 0.0;
        float w32 = static_cast<float>(w);
        if (slaney_norm) w32 = static_cast<float>(static_cast<double>(w32) * enorm);
        dense[k] = w32;
        if (w32 != 0.0f) {
          if (first < 0) first = k;
          last = k;
        }
      }
      const int32_t count = first < 0 ? 0 : last - first + 1;
      if (pass == 1) {
        fb->first[b] = first < 0 ? 0 : first;
        fb->count[b] = count;
        fb->offset[b] = static_cast<int32_t>(total);
        for (int32_t k = 0; k < count; ++k) fb->weights[total + k] = dense[first + k];
        if (count > 0 && first + count > fb->used_bins) fb->used_bins = first + count;
      }
      total += count;
    }
    if (pass == 0) {
      fb->weights = static_cast<float*>(malloc(sizeof(float) * (total > 0 ? total : 1)));
      ok = fb->weights != nullptr;
    }
  }
  free(mel_f);
  free(fft_f);
  free(dense);
  if (!ok) mel_filterbank_free(fb);
  return ok;
}

void mel_filterbank_free(MelFilterbank* fb) {
  free(fb->first);
  free(fb->count);
  free(fb->offset);
  free(fb->weights);
  *fb = MelFilterbank{};
}


}  // namespace melspec
