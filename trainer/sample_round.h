/* sample_round.h — one round of sample videos during or at the end of training. */
#ifndef TPDIFF_SAMPLE_ROUND_H
#define TPDIFF_SAMPLE_ROUND_H

#include <stddef.h>

#include "trainer/trainer.h"

/* Generates sample.count videos with the model's own pyramid (sample.steps per stage, guidance
 * sample.cfg, labels i mod classes for a class-conditional model) from the EMA weights when
 * train.ema > 0, else the raw weights, and writes train.out/samples/step-NNNNNNN/video-NN.gif,
 * video-NN_fNNN.png (frames), video-NN.png (all frames side by side) and video-NN.npy (the raw
 * float values [C, F, H, W]). Returns 0, or -1 with
 * err set. Non-finite values in a video make it an error (after the files are written). */
int sample_round(trainer *tr, long step, char *err, size_t err_size);

#endif
