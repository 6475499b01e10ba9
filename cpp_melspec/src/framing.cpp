// librosa.stft's frame layout and numpy.pad; see framing.h.
#include "framing.h"

namespace melspec {
namespace {

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

bool frame_layout(int64_t n, int64_t n_fft, int64_t hop, bool center, FrameLayout* out) {
  *out = FrameLayout{};
  const int64_t half = n_fft / 2;
  if (!center) {
    if (n < n_fft) return false;
    out->middle_frames = 1 + (n - n_fft) / hop;
    return true;
  }
  const int64_t start_k = (half + hop - 1) / hop;               // frames that touch the head padding
  const int64_t tail_k = floor_div(n + half - n_fft, hop) + 1;  // first frame that touches the tail padding
  if (tail_k <= start_k) {  // head and tail overlap: pad the whole signal
    out->head_length = n;
    out->head_left = half;
    out->head_right = half;
    out->head_frames = 1 + floor_div(n + 2 * half - n_fft, hop);
    return true;
  }
  out->middle_start = start_k * hop - half;
  out->head_length = (start_k - 1) * hop - half + n_fft + 1;
  if (out->head_length > n) out->head_length = n;
  out->head_left = half;
  out->head_frames = 1 + floor_div(out->head_length + half - n_fft, hop);
  if (out->head_frames > start_k) out->head_frames = start_k;
  out->middle_frames = 1 + floor_div(n - out->middle_start - n_fft, hop);
  if (tail_k * hop - half + n_fft <= n + half) {
    out->tail_start = tail_k * hop - half;
    out->tail_length = n - out->tail_start;
    out->tail_right = half;
    out->tail_frames = 1 + floor_div(out->tail_length + half - n_fft, hop);
  }
  return true;
}

void pad_segment(const float* x, int64_t length, int64_t left, int64_t right, bool reflect, float* out) {
  const int64_t period = 2 * (length - 1);
  for (int64_t j = 0; j < left + length + right; ++j) {
    int64_t i = j - left;
    if (i >= 0 && i < length) {
      out[j] = x[i];
    } else if (!reflect) {
      out[j] = 0.0f;
    } else if (length == 1) {
      out[j] = x[0];
    } else {
      i %= period;
      if (i < 0) i += period;
      if (i >= length) i = period - i;
      out[j] = x[i];
    }
  }
}

}  // namespace melspec
