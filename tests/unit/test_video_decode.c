/* test_video_decode.c — unit tests of data/video_decode.c on videos it writes itself as YUV4MPEG2
 * (y4m: a text header and raw planes, so every pixel and the frame rate are known exactly): frame
 * choice when resampling, the clip cutter's strides, the centre crop (with a non-square sample
 * aspect), the float range, and one clear error line for each kind of bad input.
 *
 * Usage: test_video_decode              run the cases; "PASS <case>" / "FAIL <case>: <detail>" lines
 *                                       and a summary line; exits 1 if any case failed
 *        test_video_decode --dump IN OUT [--size HxW] [--fps F] [--resize area|bicubic]
 *                                       decode IN and write its frames as raw RGB24 to OUT (for
 *                                       tests/data/decode_vs_ffmpeg.sh); prints "frames N" */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/video_decode.h"
#include "tests/unit/test_files.h"

static int failures, passes;
static char root[512];

static void pass(const char *name) {
  printf("PASS %s\n", name);
  passes++;
}

static void failf(const char *name, const char *fmt, ...) {
  char detail[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  for (char *p = detail; *p; p++)
    if ((unsigned char)*p < 0x20) *p = '?';
  printf("FAIL %s: %s\n", name, detail);
  failures++;
}

/* ---- y4m writer --------------------------------------------------------------------------------- */

/* luma(frame, x, y) gives the Y byte; chroma is 128 (gray). */
typedef int (*luma_fn)(int frame, int x, int y, int w, int h);

/* Writes root/name: w x h, `frames` frames at fps_num/fps_den, 4:2:0 (w, h even) or mono, sample
 * aspect sar_num:sar_den; truncate_bytes > 0 cuts that many bytes off the end. path gets the name. */
static int write_y4m(const char *name, int w, int h, int frames, int fps_num, int fps_den, int sar_num, int sar_den,
                     int mono, luma_fn luma, long truncate_bytes, char *path, size_t path_size) {
  snprintf(path, path_size, "%s/%s", root, name);
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  fprintf(f, "YUV4MPEG2 W%d H%d F%d:%d Ip A%d:%d C%s\n", w, h, fps_num, fps_den, sar_num, sar_den,
          mono ? "mono" : "420jpeg");
  uint8_t *plane = malloc((size_t)w * h);
  for (int t = 0; t < frames; t++) {
    fputs("FRAME\n", f);
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) plane[(size_t)y * w + x] = (uint8_t)luma(t, x, y, w, h);
    fwrite(plane, 1, (size_t)w * h, f);
    if (!mono) {
      memset(plane, 128, (size_t)(w / 2) * (h / 2));
      fwrite(plane, 1, (size_t)(w / 2) * (h / 2), f);
      fwrite(plane, 1, (size_t)(w / 2) * (h / 2), f);
    }
  }
  free(plane);
  long size = ftell(f);
  fclose(f);
  if (truncate_bytes > 0 && truncate(path, size - truncate_bytes) != 0) return -1;
  return 0;
}

/* Frame t is a flat gray Y = 16 + 4 t: its decoded value tells which source frame it was. */
static int luma_frame_index(int t, int x, int y, int w, int h) {
  (void)x, (void)y, (void)w, (void)h;
  return 16 + 4 * t;
}

/* White in the centred square of side min(w, h), black in the bands beside or above and below it. */
static int luma_centre_square(int t, int x, int y, int w, int h) {
  (void)t;
  int s = w < h ? w : h;
  return (x >= (w - s) / 2 && x < (w + s) / 2 && y >= (h - s) / 2 && y < (h + s) / 2) ? 235 : 16;
}

/* ---- decoding helpers ------------------------------------------------------------------------- */

/* Decodes every frame of path as RGB24 into *out (malloc'ed, caller frees); returns the count, or
 * -1 with err. */
static long decode_all(const char *path, const video_decode_options *opt, uint8_t **out, int *w, int *h, char *err,
                       size_t err_size) {
  *out = NULL;
  video_decoder *d = video_decoder_open(path, opt, err, err_size);
  if (!d) return -1;
  *w = video_decoder_info(d)->width;
  *h = video_decoder_info(d)->height;
  size_t frame = (size_t)*w * *h * 3;
  long n = 0, cap = 0;
  int r;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      uint8_t *grown = realloc(*out, frame * (size_t)cap);
      if (!grown) {
        snprintf(err, err_size, "out of memory");
        r = -1;
        break;
      }
      *out = grown;
    }
    r = video_decoder_next_rgb24(d, *out + frame * (size_t)n, err, err_size);
    if (r <= 0) break;
    n++;
  }
  video_decoder_close(d);
  if (r < 0) {
    free(*out);
    *out = NULL;
    return -1;
  }
  return n;
}

/* Source frame index of each decoded frame of the frame-index video (by its gray level, looked up
 * in the levels the source-rate decode gives). */
static int frame_indices(const char *path, double fps, int *index, int max, char *err, size_t err_size) {
  video_decode_options opt = video_decode_defaults();
  uint8_t *src, *out;
  int w, h;
  long ns = decode_all(path, &opt, &src, &w, &h, err, err_size);
  if (ns < 0) return -1;
  opt.fps = fps;
  long no = decode_all(path, &opt, &out, &w, &h, err, err_size);
  if (no < 0) {
    free(src);
    return -1;
  }
  size_t frame = (size_t)w * h * 3;
  int n = 0;
  for (long k = 0; k < no && n < max; k++) {
    int found = -1;
    for (long i = 0; i < ns; i++)
      if (src[frame * (size_t)i] == out[frame * (size_t)k]) found = (int)i;
    index[n++] = found;
  }
  free(src);
  free(out);
  return n;
}

static void check_frame_choice(const char *name, const char *path, double fps, int expect_count,
                               int (*expect)(int k)) {
  int index[512];
  char err[1024];
  int n = frame_indices(path, fps, index, 512, err, sizeof err);
  if (n < 0) {
    failf(name, "%s", err);
    return;
  }
  if (n != expect_count) {
    failf(name, "%d output frames, expected %d", n, expect_count);
    return;
  }
  for (int k = 0; k < n; k++)
    if (index[k] != expect(k)) {
      failf(name, "output frame %d is source frame %d, expected %d", k, index[k], expect(k));
      return;
    }
  pass(name);
}

static int every_frame(int k) { return k; }
static int every_other(int k) { return 2 * k; }
static int every_third(int k) { return 3 * k; }
static int each_twice(int k) { return k / 2; }
static int at_ten_fps(int k) { return (int)((long)k * 24 / 10); } /* floor(k * 24 / 10): interval containing k/10 */
/* y4m's time base is one frame, so the pts tolerance is 1/16 of a frame: floor(frame position + 1/16) */
static int ntsc_to_12(int k) { return (int)floor(k * 30000.0 / 1001.0 / 12.0 + 1.0 / 16.0); }

/* ---- clip cutter ------------------------------------------------------------------------------ */

typedef struct {
  int count;
  long starts[64];
  int first_index[64]; /* gray level of the clip's first frame */
  int consecutive;     /* every clip's frames follow one another (+1 source frame each) */
  float lo, hi;
  char last_source[600];
  int fail_at;         /* return an error on this clip (1-based); 0 = never */
} clip_log;

static int log_clip(void *user, const float *clip, long start, const char *source, char *err, size_t err_size) {
  clip_log *log = user;
  if (log->fail_at && log->count + 1 == log->fail_at) {
    snprintf(err, err_size, "stopped by the callback");
    return -1;
  }
  if (log->count < 64) {
    log->starts[log->count] = start;
    log->first_index[log->count] = (int)lroundf((clip[0] + 1.0f) * 127.5f);
  }
  log->count++;
  snprintf(log->last_source, sizeof log->last_source, "%s", source);
  return 0;
}

static void check_clips(const char *path) {
  struct {
    const char *name;
    int frames, stride;
    long max_clips;
    int expect_count;
    long expect_start_1;
  } cases[] = {
      {"clips_back_to_back", 8, 0, 0, 6, 8},       /* 48 frames: 0, 8, ..., 40 */
      {"clips_overlapping_stride_4", 8, 4, 0, 11, 4}, /* 0, 4, ..., 40 */
      {"clips_with_gaps_stride_20", 8, 20, 0, 3, 20}, /* 0, 20, 40 */
      {"clips_whole_video", 48, 0, 0, 1, -1},
      {"clips_max_clips", 8, 0, 2, 2, 8},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    video_clip_options opt = {.decode = video_decode_defaults(), .frames = cases[i].frames, .stride = cases[i].stride,
                              .max_clips = cases[i].max_clips};
    opt.decode.height = opt.decode.width = 8;
    clip_log log = {0};
    char err[1024];
    video_info info;
    long n = video_clip_file(path, &opt, log_clip, &log, &info, err, sizeof err);
    if (n != cases[i].expect_count || log.count != n) {
      failf(cases[i].name, "%ld clips (%d seen), expected %d: %s", n, log.count, cases[i].expect_count,
            n < 0 ? err : "");
      continue;
    }
    if (n > 1 && log.starts[1] != cases[i].expect_start_1) {
      failf(cases[i].name, "second clip starts at %ld, expected %ld", log.starts[1], cases[i].expect_start_1);
      continue;
    }
    /* the first frame of clip c is source frame starts[c]: compare with that frame's level */
    int bad = -1;
    for (int c = 1; c < log.count && c < 64; c++)
      if (log.first_index[c] <= log.first_index[c - 1]) bad = c;
    char want_source[600];
    snprintf(want_source, sizeof want_source, "%s:%ld", path, log.starts[log.count - 1]);
    if (bad >= 0)
      failf(cases[i].name, "clip %d does not start later in the video than clip %d", bad, bad - 1);
    else if (strcmp(log.last_source, want_source))
      failf(cases[i].name, "source text '%s', expected '%s'", log.last_source, want_source);
    else
      pass(cases[i].name);
  }
  /* the clip's frames are the right source frames, at a resampled rate too: T=4 stride 6 at 12 fps
   * -> clip 1 starts at output frame 6 = source frame 12 */
  video_clip_options opt = {.decode = video_decode_defaults(), .frames = 4, .stride = 6};
  opt.decode.fps = 12;
  clip_log log = {0};
  char err[1024];
  long n = video_clip_file(path, &opt, log_clip, &log, NULL, err, sizeof err);
  uint8_t *src;
  int w, h;
  video_decode_options o = video_decode_defaults();
  long ns = decode_all(path, &o, &src, &w, &h, err, sizeof err);
  if (n != 4 || ns != 48) {
    failf("clips_at_12fps_stride_6", "%ld clips (expected 4 from 24 output frames), %ld source frames: %s", n, ns, err);
  } else if (log.first_index[1] != src[(size_t)w * h * 3 * 12]) {
    failf("clips_at_12fps_stride_6", "clip 1 starts with level %d, source frame 12 has %d", log.first_index[1],
          src[(size_t)w * h * 3 * 12]);
  } else {
    pass("clips_at_12fps_stride_6");
  }
  free(src);
  /* an error from the callback stops the cutter and comes back */
  log = (clip_log){.fail_at = 2};
  n = video_clip_file(path, &opt, log_clip, &log, NULL, err, sizeof err);
  if (n == -1 && strstr(err, "stopped by the callback") && log.count == 1)
    pass("clips_callback_error_stops");
  else
    failf("clips_callback_error_stops", "returned %ld after %d clips, err '%s'", n, log.count, err);
}

/* ---- geometry and values ---------------------------------------------------------------------- */

/* Mean and extremes of an RGB24 frame's first channel. */
static void frame_stats(const uint8_t *f, int w, int h, double *mean, int *lo, int *hi) {
  double s = 0;
  *lo = 255, *hi = 0;
  for (int i = 0; i < w * h; i++) {
    s += f[3 * i];
    if (f[3 * i] < *lo) *lo = f[3 * i];
    if (f[3 * i] > *hi) *hi = f[3 * i];
  }
  *mean = s / (w * h);
}

static void check_crop(void) {
  char path[1024], err[1024];
  /* 96x64 with a white centred 64x64 square and black side bands: a square output keeps only the
   * square, every pixel white; a 2:3 (H:W) output keeps everything (bands visible). */
  struct {
    const char *name, *file;
    int w, h, sar_num, sar_den, out_h, out_w, expect_all_white;
  } cases[] = {
      {"crop_wide_to_square", "wide.y4m", 96, 64, 1, 1, 32, 32, 1},
      {"crop_same_aspect_keeps_bands", "wide.y4m", 96, 64, 1, 1, 32, 48, 0},
      {"crop_tall_to_square", "tall.y4m", 64, 96, 1, 1, 16, 16, 1},
      {"crop_tall_same_aspect_keeps_bands", "tall.y4m", 64, 96, 1, 1, 48, 32, 0},
      /* 64x64 stored, shown 2:1 wide (sample aspect 2:1): the square output is the middle 32 columns */
      {"crop_honours_sample_aspect", "anamorphic.y4m", 64, 64, 2, 1, 16, 16, 1},
      {"crop_enlarges_bicubic", "wide.y4m", 96, 64, 1, 1, 128, 128, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (!strcmp(cases[i].file, "anamorphic.y4m")) {
      /* white in columns [16, 48): exactly the display-square centre */
      write_y4m(cases[i].file, cases[i].w, cases[i].h, 2, 24, 1, cases[i].sar_num, cases[i].sar_den, 0,
                luma_centre_square, 0, path, sizeof path);
      /* luma_centre_square with w = h = 64 would be all white: draw the bands by hand instead */
      FILE *f = fopen(path, "r+b");
      long header = 0;
      int c;
      while (f && (c = fgetc(f)) != EOF && c != '\n') header++;
      for (int t = 0; f && t < 2; t++) {
        long frame_start = header + 1 + (long)t * (6 + 64 * 64 * 3 / 2) + 6;
        for (int y = 0; y < 64; y++) {
          fseek(f, frame_start + (long)y * 64, SEEK_SET);
          uint8_t row[64];
          for (int x = 0; x < 64; x++) row[x] = (x >= 16 && x < 48) ? 235 : 16;
          fwrite(row, 1, 64, f);
        }
      }
      if (f) fclose(f);
    } else {
      write_y4m(cases[i].file, cases[i].w, cases[i].h, 2, 24, 1, cases[i].sar_num, cases[i].sar_den, 0,
                luma_centre_square, 0, path, sizeof path);
    }
    video_decode_options opt = video_decode_defaults();
    opt.height = cases[i].out_h;
    opt.width = cases[i].out_w;
    uint8_t *frames;
    int w, h;
    long n = decode_all(path, &opt, &frames, &w, &h, err, sizeof err);
    if (n != 2 || w != cases[i].out_w || h != cases[i].out_h) {
      failf(cases[i].name, "%ld frames of %dx%d: %s", n, h, w, n < 0 ? err : "");
      free(frames);
      continue;
    }
    double mean;
    int lo, hi;
    frame_stats(frames, w, h, &mean, &lo, &hi);
    int all_white = lo >= 250;
    if (all_white != cases[i].expect_all_white)
      failf(cases[i].name, "pixels %d..%d (mean %.1f), expected %s", lo, hi, mean,
            cases[i].expect_all_white ? "all white" : "black bands too");
    else
      pass(cases[i].name);
    free(frames);
  }
}

static void check_float_values(const char *path) {
  video_decode_options opt = video_decode_defaults();
  opt.height = 8, opt.width = 12;
  char err[1024];
  video_decoder *d = video_decoder_open(path, &opt, err, sizeof err);
  if (!d) {
    failf("float_frames_in_range_and_exact", "%s", err);
    return;
  }
  float fr[8 * 12 * 3];
  uint8_t bytes[8 * 12 * 3];
  video_decoder *d2 = video_decoder_open(path, &opt, err, sizeof err);
  int bad = 0, frames = 0;
  for (;;) {
    int r1 = video_decoder_next(d, fr, err, sizeof err), r2 = video_decoder_next_rgb24(d2, bytes, err, sizeof err);
    if (r1 != r2) bad = 1;
    if (r1 <= 0) break;
    frames++;
    for (int i = 0; i < 8 * 12 * 3; i++)
      if (!(fr[i] >= -1.0f && fr[i] <= 1.0f) || lroundf((fr[i] + 1.0f) * 127.5f) != bytes[i]) bad = 1;
  }
  video_decoder_close(d);
  video_decoder_close(d2);
  if (bad || frames != 48)
    failf("float_frames_in_range_and_exact", "%d frames, values outside [-1, 1] or not b / 127.5 - 1", frames);
  else
    pass("float_frames_in_range_and_exact");
}

/* ---- errors ----------------------------------------------------------------------------------- */

/* Expects video_clip_file(path) to fail with one line that names the file and contains want. */
static void check_error(const char *name, const char *path, int frames, const char *want) {
  video_clip_options opt = {.decode = video_decode_defaults(), .frames = frames};
  opt.decode.height = opt.decode.width = 16;
  clip_log log = {0};
  char err[1024] = "";
  long n = video_clip_file(path, &opt, log_clip, &log, NULL, err, sizeof err);
  if (n != -1)
    failf(name, "returned %ld, expected an error", n);
  else if (strncmp(err, path, strlen(path)) || !strstr(err, want) || strchr(err, '\n'))
    failf(name, "error '%s' does not start with the path and say '%s'", err, want);
  else {
    printf("  %s -> %s\n", name, err);
    pass(name);
  }
}

static void check_errors(const char *good) {
  char path[1024];
  snprintf(path, sizeof path, "%s/missing.mp4", root);
  check_error("error_missing_file", path, 8, "No such file");
  check_error("error_folder_as_file", root, 8, "is a folder");
  snprintf(path, sizeof path, "%s/empty.mp4", root);
  fclose(fopen(path, "wb"));
  check_error("error_empty_file", path, 8, "0 bytes");
  snprintf(path, sizeof path, "%s/text.mp4", root);
  FILE *f = fopen(path, "wb");
  fputs("this is a text file, not a video\nsecond line\n", f);
  fclose(f);
  check_error("error_text_file", path, 8, "not a video");
  snprintf(path, sizeof path, "%s/notes.txt", root);
  f = fopen(path, "wb");
  fputs("plain words in a .txt file\n", f);
  fclose(f);
  check_error("error_text_file_txt", path, 8, "not a video");
  write_y4m("zero_frames.y4m", 16, 16, 0, 24, 1, 1, 1, 0, luma_frame_index, 0, path, sizeof path);
  check_error("error_zero_frames", path, 8, "0 frames");
  check_error("error_shorter_than_clip", good, 49, "48 frames at 24 fps, a clip needs 49");
  /* the 9th frame's "FRAME" tag damaged: the frames before it decode, then the error names where */
  write_y4m("damaged.y4m", 16, 16, 10, 24, 1, 1, 1, 0, luma_frame_index, 0, path, sizeof path);
  f = fopen(path, "r+b");
  long header = 0;
  int c;
  while ((c = fgetc(f)) != EOF && c != '\n') header++;
  fseek(f, header + 1 + 8L * (6 + 16 * 16 * 3 / 2), SEEK_SET);
  fputs("FRAMX\n", f);
  fclose(f);
  check_error("error_damaged_mid_stream", path, 4, "after 8 good source frames");
  /* a clip cutter that asked for fewer frames stops before the damage: no error */
  video_clip_options opt = {.decode = video_decode_defaults(), .frames = 4, .max_clips = 2};
  clip_log log = {0};
  char err[1024];
  long n = video_clip_file(path, &opt, log_clip, &log, NULL, err, sizeof err);
  if (n == 2) pass("truncated_file_clips_before_damage");
  else failf("truncated_file_clips_before_damage", "returned %ld: %s", n, err);
  /* bad sizes are refused before anything is allocated */
  video_decode_options o = video_decode_defaults();
  o.height = 16, o.width = 0;
  video_decoder *d = video_decoder_open(good, &o, err, sizeof err);
  if (!d && strstr(err, "output size")) pass("error_half_a_size");
  else failf("error_half_a_size", "opened or said '%s'", err);
  video_decoder_close(d);
}

/* ---- --dump mode ------------------------------------------------------------------------------ */

static int dump(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: test_video_decode --dump IN OUT [--size HxW] [--fps F] [--resize area|bicubic]\n");
    return 2;
  }
  video_decode_options opt = video_decode_defaults();
  for (int i = 4; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--size")) {
      if (sscanf(argv[i + 1], "%dx%d", &opt.height, &opt.width) != 2) return 2;
    } else if (!strcmp(argv[i], "--fps")) {
      opt.fps = atof(argv[i + 1]);
    } else if (!strcmp(argv[i], "--resize")) {
      opt.resize = !strcmp(argv[i + 1], "area") ? VIDEO_RESIZE_AREA : VIDEO_RESIZE_BICUBIC;
    } else {
      return 2;
    }
  }
  char err[1024];
  uint8_t *frames;
  int w, h;
  long n = decode_all(argv[2], &opt, &frames, &w, &h, err, sizeof err);
  if (n < 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  FILE *f = fopen(argv[3], "wb");
  if (!f || fwrite(frames, (size_t)w * h * 3, (size_t)n, f) != (size_t)n || fclose(f) != 0) {
    fprintf(stderr, "%s: cannot write\n", argv[3]);
    return 1;
  }
  free(frames);
  printf("frames %ld size %dx%d\n", n, h, w);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--dump")) return dump(argc, argv);
  const char *tmpdir;
  if (make_scratch_dir(root, sizeof root, "tpdiff_test_video_decode", &tmpdir) != 0) {
    printf("FAIL setup: cannot create a folder under %s: %s\n", tmpdir, strerror(errno));
    return 1;
  }
  char good[1024], ntsc[1024];
  write_y4m("index.y4m", 16, 16, 48, 24, 1, 1, 1, 0, luma_frame_index, 0, good, sizeof good);
  check_frame_choice("fps_source_rate_keeps_every_frame", good, 0, 48, every_frame);
  check_frame_choice("fps_24_to_24_keeps_every_frame", good, 24, 48, every_frame);
  check_frame_choice("fps_24_to_12_every_other", good, 12, 24, every_other);
  check_frame_choice("fps_24_to_8_every_third", good, 8, 16, every_third);
  check_frame_choice("fps_24_to_48_each_twice", good, 48, 96, each_twice);
  check_frame_choice("fps_24_to_10_interval_rule", good, 10, 20, at_ten_fps);
  write_y4m("ntsc.y4m", 16, 16, 48, 30000, 1001, 1, 1, 1, luma_frame_index, 0, ntsc, sizeof ntsc);
  /* 48 frames at 29.97 last 1.6016 s: ceil(1.6016 * 12) = 20 output frames */
  check_frame_choice("fps_ntsc_to_12_interval_rule", ntsc, 12, 20, ntsc_to_12);
  check_frame_choice("fps_ntsc_exact_rational", ntsc, 30000.0 / 1001.0, 48, every_frame);
  check_clips(good);
  check_crop();
  check_float_values(good);
  check_errors(good);
  remove_tree(root);
  printf("%d passed, %d failed\n", passes, failures);
  return failures ? 1 : 0;
}
