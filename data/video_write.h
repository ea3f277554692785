/* video_write.h — writes one video [C, T, H, W] (float, values in [-1, 1]) as an animated GIF, as one PNG per
 * frame, or as one PNG contact sheet: what tpdiff-sample writes and what a person looks at.
 *
 * Pixel conversion, shared by every writer:
 *   - a value v becomes the byte floor((clamp(v, -1, 1) + 1) * 127.5 + 0.5): -1 -> 0, 0 -> 128, 1 -> 255;
 *     NaN is written as -1 (black), +-inf clamps;
 *   - C == 1 or C == 2: gray from channel 0 (the second channel of C == 2 is ignored);
 *     C >= 3: RGB from channels 0, 1, 2 (channels 3.. are ignored, e.g. the 4th of a latent);
 *   - each pixel becomes an upscale x upscale block (nearest neighbour: our clips are 16x16 or 32x32).
 *
 * GIF colours: gray videos use a 256-level gray palette (exact); RGB videos use ONE fixed global palette, the
 * 6x7x6 RGB cube (252 colours, green gets 7 levels because the eye is most sensitive to it), nearest level per
 * channel, so every byte is off by at most half a level step (25 of 255 for red and blue, 21 for green) and
 * the same colour maps to the same index in every frame. We do not use giflib's GifQuantizeBuffer: it builds
 * a median-cut palette per call, i.e. per frame, which makes colours flicker between frames of a video, its
 * error is not bounded in advance, and it is a deprecated entry point (dropped from libgif in 5.2.0, back in
 * 5.2.1). The cost of the fixed cube is banding on smooth gradients; look at the PNGs for exact values.
 *
 * Every writer writes to "<path>.tmp.<pid>", fsyncs it and renames it onto the final name; on any error it
 * returns -1 with one line in err that names the file and the reason, and leaves no file behind. */
#ifndef TPDIFF_VIDEO_WRITE_H
#define TPDIFF_VIDEO_WRITE_H

#include <stddef.h>

typedef struct {
  double fps;        /* GIF: frames per second (> 0); delay per frame = round(100 / fps) hundredths of a second,
                        at least 2 (browsers play a delay of 0 or 1 as 10, so fps above 50 plays as 50) */
  int upscale;       /* nearest-neighbour factor per axis, >= 1 */
  int sheet_columns; /* contact sheet: frames per row; 0 = all frames in one row */
  int sheet_gap;     /* contact sheet: pixels (after upscaling) of white between neighbouring frames, >= 0 */
} video_write_options;

/* fps 8, upscale 1, sheet in one row, no gap. */
video_write_options video_write_defaults(void);

/* Writes video[C, T, H, W] as an animated GIF at path: GIF89a, the screen (W*upscale) x (H*upscale), T
 * full-screen frames, each with a graphics control block (the delay from fps, no transparency, disposal
 * "leave in place"), looping forever (Netscape 2.0 extension, count 0). opt NULL = video_write_defaults().
 * Width and height after upscaling must be <= 65535 (GIF's 16-bit sizes). Returns 0, or -1 with err. */
int video_write_gif(const char *path, const float *video, int C, int T, int H, int W, const video_write_options *opt,
                    char *err, size_t err_size);

/* Writes frame t of video[C, T, H, W] to "<prefix>_f%03d.png" (8-bit gray for C < 3, else 8-bit RGB) for every
 * t. All or nothing: every frame is written and fsynced under a temporary name before the first rename, and
 * on a failure the frames already renamed are removed again. Returns 0, or -1 with err. */
int video_write_png_frames(const char *prefix, const float *video, int C, int T, int H, int W,
                           const video_write_options *opt, char *err, size_t err_size);

/* Writes all T frames of video[C, T, H, W] into one PNG at path: a grid of opt->sheet_columns frames per row
 * (0 = one row), in frame order left to right then top to bottom, opt->sheet_gap white pixels between
 * neighbouring frames, cells after the last frame white. Returns 0, or -1 with err. */
int video_write_png_sheet(const char *path, const float *video, int C, int T, int H, int W,
                          const video_write_options *opt, char *err, size_t err_size);

/* The name video_write_png_frames gives frame t: "<prefix>_f%03d.png" (frames from 1000 get 4 digits) into
 * out[out_size]. Returns 0, or -1 when it does not fit. */
int video_png_frame_path(char *out, size_t out_size, const char *prefix, int t);

#endif
