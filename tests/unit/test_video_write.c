/* test_video_write.c — unit tests of data/video_write.c: writes GIFs and PNGs of known patterns, reads them
 * back with giflib's DGifSlurp and libpng's reader, and checks the error paths leave nothing behind.
 *
 * Usage: test_video_write. Prints one "PASS <case>" or "FAIL <case>: <detail>" line per case and a summary
 * line; exits 1 if any case failed. Works as root too (the unwritable cases do not rely on permissions). */
#include <dirent.h>
#include <errno.h>
#include <gif_lib.h>
#include <math.h>
#include <png.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/video_write.h"
#include "tests/unit/test_files.h"
#include "tests/unit/test_report.h"

static char root[512]; /* this run's scratch folder */

/* ---- helpers ---------------------------------------------------------------------------------- */

/* A fresh empty folder root/<name>; path gets its name. */
static int make_dir(const char *name, char *path, size_t path_size) {
  snprintf(path, path_size, "%s/%s", root, name);
  return mkdir(path, 0755);
}

/* Number of entries in dir (without . and ..), and whether one of them contains ".tmp"; -1 if unreadable. */
static int count_entries(const char *dir, int *has_tmp) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  if (has_tmp) *has_tmp = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    n++;
    if (has_tmp && strstr(e->d_name, ".tmp")) *has_tmp = 1;
  }
  closedir(d);
  return n;
}

/* The byte a value b/127.5 - 1 must come back as: b itself (the writer's rounding, computed here on its own). */
static float byte_value(int b) { return (float)b / 127.5f - 1.0f; }

/* video[C, T, H, W] whose every value is byte_value of a known byte: pattern(c, t, y, x). */
static int pattern_byte(int c, int t, int y, int x) { return (37 * c + 11 * t + 23 * y + 5 * x + 3 * x * y) % 256; }

static float *make_pattern(int C, int T, int H, int W) {
  float *v = malloc(sizeof(float) * (size_t)C * T * H * W);
  if (!v) return NULL;
  for (int c = 0; c < C; c++)
    for (int t = 0; t < T; t++)
      for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) v[(((size_t)c * T + t) * H + y) * W + x] = byte_value(pattern_byte(c, t, y, x));
  return v;
}

/* The err contract: one non-empty line, terminated, containing needle. NULL if fine, else the problem. */
static const char *err_problem(const char *err, size_t err_size, const char *needle) {
  size_t len = strnlen(err, err_size);
  if (len == err_size) return "err is not terminated";
  if (len == 0) return "err is empty";
  if (strchr(err, '\n') || strchr(err, '\r')) return "err is not a single line";
  if (needle && !strstr(err, needle)) return "err does not name the path";
  return NULL;
}

/* Reads a PNG into a newly allocated buffer [h, w, channels] in its own format (gray or RGB, 8 bits).
 * Returns NULL on failure with the reason in why. */
static uint8_t *read_png(const char *path, int *w, int *h, int *channels, char *why, size_t why_size) {
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path)) {
    snprintf(why, why_size, "cannot read %s: %s", path, img.message);
    return NULL;
  }
  if (img.format != PNG_FORMAT_GRAY && img.format != PNG_FORMAT_RGB) {
    snprintf(why, why_size, "%s: format 0x%x is neither 8-bit gray nor 8-bit RGB", path, img.format);
    png_image_free(&img);
    return NULL;
  }
  *channels = (img.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
  *w = (int)img.width;
  *h = (int)img.height;
  uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
  if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
    snprintf(why, why_size, "cannot decode %s: %s", path, img.message);
    free(buf);
    png_image_free(&img);
    return NULL;
  }
  return buf;
}

/* ---- GIF cases -------------------------------------------------------------------------------- */

/* Finds the Netscape looping block in the extension blocks before image 0; returns the loop count or -1. */
static int netscape_loop_count(const SavedImage *image) {
  for (int i = 0; i + 1 < image->ExtensionBlockCount; i++) {
    const ExtensionBlock *b = &image->ExtensionBlocks[i], *next = &image->ExtensionBlocks[i + 1];
    if (b->Function == APPLICATION_EXT_FUNC_CODE && b->ByteCount == 11 && !memcmp(b->Bytes, "NETSCAPE2.0", 11) &&
        next->Function == CONTINUE_EXT_FUNC_CODE && next->ByteCount == 3 && next->Bytes[0] == 1)
      return next->Bytes[1] | (next->Bytes[2] << 8);
  }
  return -1;
}

/* Writes pattern video [C, T, H, W] as a GIF with (upscale, fps), reads it back and checks structure, delay,
 * looping and every pixel against the pattern within tolerance per channel (0 = exact). */
static void check_gif(const char *name, int C, int T, int H, int W, int up, double fps, int want_delay,
                      const int tolerance[3]) {
  char dir[700], path[900], err[1024], why[4096] = "";
  if (make_dir(name, dir, sizeof dir)) {
    failf(name, "cannot create %s", dir);
    return;
  }
  snprintf(path, sizeof path, "%s/clip.gif", dir);
  float *video = make_pattern(C, T, H, W);
  video_write_options opt = video_write_defaults();
  opt.upscale = up;
  opt.fps = fps;
  if (video_write_gif(path, video, C, T, H, W, &opt, err, sizeof err) != 0) {
    failf(name, "video_write_gif failed: %s", err);
    free(video);
    return;
  }
  int has_tmp, entries = count_entries(dir, &has_tmp);
  int error = 0;
  GifFileType *gif = DGifOpenFileName(path, &error);
  if (!gif) {
    failf(name, "DGifOpenFileName: %s", GifErrorString(error));
    free(video);
    return;
  }
  double max_err[3] = {0, 0, 0};
  if (DGifSlurp(gif) != GIF_OK) {
    snprintf(why, sizeof why, "DGifSlurp: %s", GifErrorString(gif->Error));
  } else if (entries != 1 || has_tmp) {
    snprintf(why, sizeof why, "folder holds %d entries (tmp: %d), expected only clip.gif", entries, has_tmp);
  } else if (gif->SWidth != W * up || gif->SHeight != H * up) {
    snprintf(why, sizeof why, "screen %dx%d, expected %dx%d", gif->SWidth, gif->SHeight, W * up, H * up);
  } else if (gif->ImageCount != T) {
    snprintf(why, sizeof why, "%d frames, expected %d", gif->ImageCount, T);
  } else if (!gif->SColorMap || gif->SColorMap->ColorCount != 256) {
    snprintf(why, sizeof why, "no global 256-colour palette");
  } else if (netscape_loop_count(&gif->SavedImages[0]) != 0) {
    snprintf(why, sizeof why, "no Netscape loop-forever block before frame 0 (count %d)",
             netscape_loop_count(&gif->SavedImages[0]));
  } else {
    for (int t = 0; t < T && !why[0]; t++) {
      const SavedImage *im = &gif->SavedImages[t];
      GraphicsControlBlock gcb;
      if (im->ImageDesc.Left != 0 || im->ImageDesc.Top != 0 || im->ImageDesc.Width != W * up ||
          im->ImageDesc.Height != H * up || im->ImageDesc.ColorMap || im->ImageDesc.Interlace) {
        snprintf(why, sizeof why, "frame %d: descriptor %d,%d %dx%d (local map %d) is not the full screen", t,
                 im->ImageDesc.Left, im->ImageDesc.Top, im->ImageDesc.Width, im->ImageDesc.Height,
                 im->ImageDesc.ColorMap != NULL);
        break;
      }
      if (DGifSavedExtensionToGCB(gif, t, &gcb) != GIF_OK || gcb.DelayTime != want_delay ||
          gcb.TransparentColor != NO_TRANSPARENT_COLOR) {
        snprintf(why, sizeof why, "frame %d: delay %d (expected %d), transparent %d", t, gcb.DelayTime, want_delay,
                 gcb.TransparentColor);
        break;
      }
      for (int y = 0; y < H * up && !why[0]; y++)
        for (int x = 0; x < W * up; x++) {
          GifColorType col = gif->SColorMap->Colors[im->RasterBits[(size_t)y * W * up + x]];
          int got[3] = {col.Red, col.Green, col.Blue};
          for (int c = 0; c < 3; c++) {
            int want = pattern_byte(C < 3 ? 0 : c, t, y / up, x / up);
            int e = abs(got[c] - want);
            if (e > max_err[c]) max_err[c] = e;
            if (e > tolerance[c]) {
              snprintf(why, sizeof why, "frame %d pixel (%d,%d) channel %d: %d, expected %d +- %d", t, x, y, c, got[c],
                       want, tolerance[c]);
              break;
            }
          }
          if (why[0]) break;
        }
    }
  }
  DGifCloseFile(gif, &error);
  free(video);
  if (why[0])
    failf(name, "%s", why);
  else
    pass(name, "%dx%d, %d frames, delay %d cs, max error r/g/b %.0f/%.0f/%.0f", W * up, H * up, T, want_delay,
         max_err[0], max_err[1], max_err[2]);
}

/* ---- PNG cases -------------------------------------------------------------------------------- */

/* Compares a decoded image [h, w, ch] with frame t of the pattern video (C channels) upscaled by up, placed at
 * (x0, y0). Returns 0 or -1 with why. */
static int compare_frame(const uint8_t *img, int w, int ch, int C, int t, int H, int W, int up, int x0, int y0,
                         char *why, size_t why_size) {
  for (int y = 0; y < H * up; y++)
    for (int x = 0; x < W * up; x++)
      for (int c = 0; c < ch; c++) {
        int got = img[((size_t)(y0 + y) * w + x0 + x) * ch + c];
        int want = pattern_byte(C < 3 ? 0 : c, t, y / up, x / up);
        if (got != want) {
          snprintf(why, why_size, "frame %d pixel (%d,%d) channel %d: %d, expected %d", t, x, y, c, got, want);
          return -1;
        }
      }
  return 0;
}

static void check_png_frames(const char *name, int C, int T, int H, int W, int up) {
  char dir[700], prefix[800], err[1024], why[4096] = "";
  if (make_dir(name, dir, sizeof dir)) {
    failf(name, "cannot create %s", dir);
    return;
  }
  snprintf(prefix, sizeof prefix, "%s/clip", dir);
  float *video = make_pattern(C, T, H, W);
  video_write_options opt = video_write_defaults();
  opt.upscale = up;
  if (video_write_png_frames(prefix, video, C, T, H, W, &opt, err, sizeof err) != 0) {
    failf(name, "video_write_png_frames failed: %s", err);
    free(video);
    return;
  }
  int has_tmp, entries = count_entries(dir, &has_tmp);
  if (entries != T || has_tmp)
    snprintf(why, sizeof why, "folder holds %d entries (tmp: %d), expected %d", entries, has_tmp, T);
  int want_ch = C < 3 ? 1 : 3;
  for (int t = 0; t < T && !why[0]; t++) {
    char path[900];
    snprintf(path, sizeof path, "%s_f%03d.png", prefix, t);
    int w, h, ch;
    uint8_t *img = read_png(path, &w, &h, &ch, why, sizeof why);
    if (!img) break;
    if (w != W * up || h != H * up || ch != want_ch)
      snprintf(why, sizeof why, "%s: %dx%d with %d channels, expected %dx%d with %d", path, w, h, ch, W * up, H * up,
               want_ch);
    else
      compare_frame(img, w, ch, C, t, H, W, up, 0, 0, why, sizeof why);
    free(img);
  }
  free(video);
  if (why[0])
    failf(name, "%s", why);
  else
    pass(name, "%d files %dx%d, %s, exact", T, W * up, H * up, want_ch == 3 ? "RGB" : "gray");
}

static void check_png_sheet(const char *name) {
  const int C = 3, T = 5, H = 4, W = 6, up = 2, cols = 3, gap = 2;
  char dir[700], path[900], err[1024], why[4096] = "";
  if (make_dir(name, dir, sizeof dir)) {
    failf(name, "cannot create %s", dir);
    return;
  }
  snprintf(path, sizeof path, "%s/sheet.png", dir);
  float *video = make_pattern(C, T, H, W);
  video_write_options opt = video_write_defaults();
  opt.upscale = up;
  opt.sheet_columns = cols;
  opt.sheet_gap = gap;
  int w = 0, h = 0, ch = 0;
  uint8_t *img = NULL;
  if (video_write_png_sheet(path, video, C, T, H, W, &opt, err, sizeof err) != 0) {
    snprintf(why, sizeof why, "video_write_png_sheet failed: %s", err);
  } else if ((img = read_png(path, &w, &h, &ch, why, sizeof why)) != NULL) {
    int want_w = cols * W * up + (cols - 1) * gap, want_h = 2 * H * up + gap;
    if (w != want_w || h != want_h || ch != 3) {
      snprintf(why, sizeof why, "%dx%d with %d channels, expected %dx%d RGB", w, h, ch, want_w, want_h);
    } else {
      for (int t = 0; t < T && !why[0]; t++)
        compare_frame(img, w, ch, C, t, H, W, up, (t % cols) * (W * up + gap), (t / cols) * (H * up + gap), why,
                      sizeof why);
      /* the gaps and the empty sixth cell are white */
      long white = 0, pixels = (long)w * h;
      for (long i = 0; i < pixels * 3; i++) white += img[i] == 255;
      long frame_white = 0;
      for (int t = 0; t < T; t++)
        for (int y = 0; y < H; y++)
          for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) frame_white += (pattern_byte(c, t, y, x) == 255) * up * up;
      long want_white = (pixels - (long)T * W * up * H * up) * 3 + frame_white;
      if (!why[0] && white != want_white)
        snprintf(why, sizeof why, "%ld white bytes, expected %ld (gaps and the empty cell)", white, want_white);
    }
  }
  free(img);
  free(video);
  if (why[0])
    failf(name, "%s", why);
  else
    pass(name, "%dx%d, %d frames in rows of %d, gap %d", w, h, T, cols, gap);
}

/* Values outside [-1, 1] clamp, NaN is black, 0 is 128; C = 2 is gray from channel 0; C = 4 is RGB of 0..2. */
static void check_clamp_and_channels(void) {
  const char *name = "png_clamp_nan_and_channel_rules";
  char dir[700], prefix[800], path[900], err[1024], why[4096] = "";
  if (make_dir(name, dir, sizeof dir)) {
    failf(name, "cannot create %s", dir);
    return;
  }
  float v2[2 * 1 * 1 * 4] = {2.0f, -3.0f, NAN, 0.0f, /* channel 1, ignored */ 1, 1, 1, 1};
  snprintf(prefix, sizeof prefix, "%s/two", dir);
  const uint8_t want2[4] = {255, 0, 0, 128};
  int w, h, ch;
  uint8_t *img = NULL;
  if (video_write_png_frames(prefix, v2, 2, 1, 1, 4, NULL, err, sizeof err)) {
    snprintf(why, sizeof why, "C=2: %s", err);
  } else if (snprintf(path, sizeof path, "%s_f000.png", prefix),
             !(img = read_png(path, &w, &h, &ch, why, sizeof why))) {
  } else if (w != 4 || h != 1 || ch != 1 || memcmp(img, want2, 4)) {
    snprintf(why, sizeof why, "C=2: got %dx%d ch %d bytes %d %d %d %d, expected gray 255 0 0 128", w, h, ch, img[0],
             img[1 % (w * h * ch)], img[2 % (w * h * ch)], img[3 % (w * h * ch)]);
  }
  free(img);
  img = NULL;
  if (!why[0]) {
    /* C = 4, one pixel: channels 0.5, -0.5, 1, and a 4th (-1) that must not show */
    float v4[4] = {byte_value(191), byte_value(64), 1.0f, -1.0f};
    const uint8_t want4[3] = {191, 64, 255};
    snprintf(prefix, sizeof prefix, "%s/four", dir);
    if (video_write_png_frames(prefix, v4, 4, 1, 1, 1, NULL, err, sizeof err)) {
      snprintf(why, sizeof why, "C=4: %s", err);
    } else if (snprintf(path, sizeof path, "%s_f000.png", prefix),
               !(img = read_png(path, &w, &h, &ch, why, sizeof why))) {
    } else if (w != 1 || h != 1 || ch != 3 || memcmp(img, want4, 3)) {
      snprintf(why, sizeof why, "C=4: got ch %d bytes %d %d %d, expected RGB 191 64 255", ch, img[0],
               img[ch > 1 ? 1 : 0], img[ch > 2 ? 2 : 0]);
    }
    free(img);
  }
  if (why[0])
    failf(name, "%s", why);
  else
    pass(name, NULL);
}

/* ---- error cases ------------------------------------------------------------------------------ */

typedef enum { WRITE_GIF, WRITE_FRAMES, WRITE_SHEET } writer;
static const char *writer_name[] = {"gif", "png_frames", "png_sheet"};

static int call_writer(writer which, const char *path, const float *video, int C, int T, int H, int W,
                       const video_write_options *opt, char *err, size_t err_size) {
  if (which == WRITE_GIF) return video_write_gif(path, video, C, T, H, W, opt, err, err_size);
  if (which == WRITE_FRAMES) return video_write_png_frames(path, video, C, T, H, W, opt, err, err_size);
  return video_write_png_sheet(path, video, C, T, H, W, opt, err, err_size);
}

/* Calls the writer on path (a file name, or the prefix for frames), expects -1, one line naming needle, and
 * `watch` (a folder) holding exactly `entries` entries afterwards, none of them temporary. */
static void expect_failure(const char *case_name, writer which, const char *path, const float *video, int C, int T,
                           int H, int W, const video_write_options *opt, const char *needle, const char *watch,
                           int entries) {
  char name[256], err[1024];
  snprintf(name, sizeof name, "%s_%s", case_name, writer_name[which]);
  memset(err, 'Z', sizeof err);
  int rc = call_writer(which, path, video, C, T, H, W, opt, err, sizeof err);
  const char *problem = rc == -1 ? err_problem(err, sizeof err, needle) : NULL;
  int has_tmp = 0, n = watch ? count_entries(watch, &has_tmp) : entries;
  if (rc != -1)
    failf(name, "returned %d, expected -1", rc);
  else if (problem)
    failf(name, "%s: %s", problem, err);
  else if (n != entries || has_tmp)
    failf(name, "%s holds %d entries (a temporary: %d), expected %d: %s", watch, n, has_tmp, entries, err);
  else
    pass(name, "%s", err);
}

static void check_errors(void) {
  char dir[700], path[900], sub[900];
  if (make_dir("errors", dir, sizeof dir)) {
    failf("errors", "cannot create %s", dir);
    return;
  }
  const int C = 3, T = 3, H = 4, W = 4;
  float *video = make_pattern(C, T, H, W);
  video_write_options opt = video_write_defaults();
  const char *file_for[] = {"x.gif", "x", "x.png"};
  for (int k = 0; k < 3; k++) {
    writer w = (writer)k;
    /* a folder that does not exist */
    snprintf(path, sizeof path, "%s/no_such_folder/%s", dir, file_for[k]);
    expect_failure("missing_folder", w, path, video, C, T, H, W, &opt, path, dir, 0);
    /* a path through a regular file (ENOTDIR): unwritable whoever runs the test */
    snprintf(sub, sizeof sub, "%s/plain_file", dir);
    FILE *f = fopen(sub, "w");
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/plain_file/%s", dir, file_for[k]);
    expect_failure("path_through_a_file", w, path, video, C, T, H, W, &opt, path, dir, 1);
    unlink(sub);
    /* zero frames, no channels, no data */
    snprintf(path, sizeof path, "%s/%s", dir, file_for[k]);
    expect_failure("zero_frames", w, path, video, C, 0, H, W, &opt, path, dir, 0);
    expect_failure("zero_channels", w, path, video, 0, T, H, W, &opt, path, dir, 0);
    expect_failure("null_video", w, path, NULL, C, T, H, W, &opt, path, dir, 0);
    video_write_options bad = opt;
    bad.upscale = 0;
    expect_failure("upscale_0", w, path, video, C, T, H, W, &bad, path, dir, 0);
  }
  video_write_options bad = opt;
  bad.fps = 0;
  snprintf(path, sizeof path, "%s/x.gif", dir);
  expect_failure("fps_0", WRITE_GIF, path, video, C, T, H, W, &bad, path, dir, 0);
  bad = opt;
  bad.upscale = 4096; /* 20 x 4096 > 65535 */
  float wide[20] = {0};
  expect_failure("wider_than_gif_allows", WRITE_GIF, path, wide, 1, 1, 1, 20, &bad, path, dir, 0);

  /* the final name is an existing folder: the whole file is written, then the rename fails; the temporary
   * must go (the folder stays: 1 entry) */
  snprintf(path, sizeof path, "%s/is_a_folder", dir);
  mkdir(path, 0755);
  expect_failure("target_is_a_folder", WRITE_GIF, path, video, C, T, H, W, &opt, path, dir, 1);
  expect_failure("target_is_a_folder", WRITE_SHEET, path, video, C, T, H, W, &opt, path, dir, 1);
  rmdir(path);
  /* frames: frame 2's name is a folder, so frames 0 and 1 are renamed before the failure and must be removed */
  char prefix[800];
  snprintf(prefix, sizeof prefix, "%s/roll", dir);
  snprintf(path, sizeof path, "%s_f002.png", prefix);
  mkdir(path, 0755);
  expect_failure("rename_rollback", WRITE_FRAMES, prefix, video, C, T, H, W, &opt, path, dir, 1);
  rmdir(path);
  free(video);
}

/* A write that fails half-way (RLIMIT_FSIZE stands in for a full disk; works for root too). Frames 0..2 of
 * the frame set are flat (small files), frame 3 is noise (too big), so three temporaries exist when it fails. */
static void check_write_failure(void) {
  char dir[700], path[900];
  if (make_dir("disk_full", dir, sizeof dir)) {
    failf("disk_full", "cannot create %s", dir);
    return;
  }
  const int C = 3, T = 4, H = 64, W = 64;
  size_t plane = (size_t)H * W;
  float *video = malloc(sizeof(float) * C * T * plane);
  uint32_t state = 12345;
  for (int c = 0; c < C; c++)
    for (int t = 0; t < T; t++)
      for (size_t i = 0; i < plane; i++) {
        state = state * 1664525u + 1013904223u;
        video[((size_t)c * T + t) * plane + i] = t < 3 ? 0.25f : (float)(state >> 8) / 8388608.0f - 1.0f;
      }
  struct rlimit old, small;
  getrlimit(RLIMIT_FSIZE, &old);
  small = old;
  small.rlim_cur = 4000;
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  if (setrlimit(RLIMIT_FSIZE, &small) != 0) {
    failf("disk_full", "setrlimit: %s", strerror(errno));
  } else {
    video_write_options opt = video_write_defaults();
    opt.upscale = 2;
    snprintf(path, sizeof path, "%s/x.gif", dir);
    expect_failure("disk_full", WRITE_GIF, path, video, C, T, H, W, &opt, path, dir, 0);
    snprintf(path, sizeof path, "%s/x", dir);
    expect_failure("disk_full", WRITE_FRAMES, path, video, C, T, H, W, &opt, "x_f003.png", dir, 0);
    snprintf(path, sizeof path, "%s/x.png", dir);
    expect_failure("disk_full", WRITE_SHEET, path, video, C, T, H, W, &opt, path, dir, 0);
    setrlimit(RLIMIT_FSIZE, &old);
  }
  signal(SIGXFSZ, old_handler);
  free(video);
}

int main(void) {
  const char *tmpdir;
  if (make_scratch_dir(root, sizeof root, "tpdiff_test_video_write", &tmpdir) != 0) {
    failf("setup", "cannot create a folder under %s: %s", tmpdir, strerror(errno));
    return test_exit_code();
  }
  /* 6x7x6 cube: nearest level per channel, at most 25 off for red and blue, 21 for green */
  const int cube_tol[3] = {25, 21, 25}, exact[3] = {0, 0, 0};
  check_gif("gif_rgb_upscaled", 3, 5, 6, 7, 3, 10.0, 10, cube_tol);
  check_gif("gif_gray_exact", 1, 4, 5, 9, 1, 8.0, 13, exact);
  check_gif("gif_fps_above_50_plays_at_50", 3, 2, 2, 2, 1, 1000.0, 2, cube_tol);
  check_gif("gif_one_frame_4_channels", 4, 1, 3, 3, 2, 25.0, 4, cube_tol);
  check_png_frames("png_frames_rgb_upscaled", 3, 4, 5, 7, 2);
  check_png_frames("png_frames_gray", 1, 3, 6, 4, 1);
  check_png_frames("png_frames_1001_names", 1, 1001, 1, 1, 1);
  check_png_sheet("png_sheet_grid_gap");
  check_clamp_and_channels();
  check_errors();
  check_write_failure();
  remove_tree(root);
  test_summary("test_video_write", NULL);
  return test_exit_code();
}
