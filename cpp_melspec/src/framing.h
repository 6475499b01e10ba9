// Which samples each STFT frame sees, exactly as librosa.stft (0.11) lays frames out when centring:
// head frames come from a padded copy of the start of the signal, middle frames straight from the
// signal, tail frames from a padded copy of its end; a signal too short for that is padded whole.
// Padding is numpy.pad's: zeros ('constant') or repeated reflection ('reflect'; one sample is edge-padded).
#ifndef MELSPEC_FRAMING_H
#define MELSPEC_FRAMING_H

#include <stdint.h>

namespace melspec {

struct FrameLayout {
  int64_t head_frames = 0;   // frames t < head_frames: segment y[0 : head_length] padded (head_left, head_right)
  int64_t head_length = 0;
  int64_t head_left = 0;
  int64_t head_right = 0;
  int64_t middle_frames = 0;  // then frames starting at y[middle_start + f * hop]
  int64_t middle_start = 0;
  int64_t tail_frames = 0;    // then frames from y[tail_start : tail_start + tail_length] padded (0, tail_right)
  int64_t tail_start = 0;
  int64_t tail_length = 0;
  int64_t tail_right = 0;

  int64_t n_frames() const { return head_frames + middle_frames + tail_frames; }
  int64_t head_padded_length() const { return head_frames > 0 ? head_left + head_length + head_right : 0; }
  int64_t tail_padded_length() const { return tail_frames > 0 ? tail_length + tail_right : 0; }
};

// Layout for n >= 1 samples; false when not centring and n < n_fft (librosa raises there).
bool frame_layout(int64_t n, int64_t n_fft, int64_t hop, bool center, FrameLayout* out);

// numpy.pad(x[0:length], (left, right), 'constant' or 'reflect') into out (left + length + right floats).
void pad_segment(const float* x, int64_t length, int64_t left, int64_t right, bool reflect, float* out);

}  // namespace melspec

#endif  // MELSPEC_FRAMING_H
