/* video_write.c — animated GIF (giflib 5 sequential API) and PNG (libpng) writers for [C, T, H, W] videos. */
#include "data/video_write.h"

#include <errno.h>
#include <gif_lib.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Sizes we refuse before allocating: GIF stores 16-bit sizes; most PNG readers refuse more than a million
 * pixels per side (libpng's default read limit). */
#define GIF_MAX_SIDE 65535L
#define PNG_MAX_SIDE 1000000L
#define MAX_PATH_BYTES 4096

video_write_options video_write_defaults(void) {
  video_write_options o = {.fps = 8.0, .upscale = 1, .sheet_columns = 0, .sheet_gap = 0};
  return o;
}

/* ---- shared pieces ---------------------------------------------------------------------------- */

static uint8_t value_to_byte(float v) {
  if (!(v > -1.0f)) return 0; /* also NaN */
  if (v >= 1.0f) return 255;
  return (uint8_t)floorf((v + 1.0f) * 127.5f + 0.5f);
}

/* 1 for gray (C < 3), 3 for RGB. */
static int out_channels(int C) { return C < 3 ? 1 : 3; }

/* Frame t of video[C, T, H, W] as bytes [H*up, W*up, channels] (channels = out_channels(C)). */
static void frame_to_bytes(uint8_t *out, const float *video, int C, int T, int H, int W, int t, int up) {
  int ch = out_channels(C);
  size_t plane = (size_t)H * W, out_w = (size_t)W * up;
  for (int y = 0; y < H; y++) {
    for (int x = 0; x < W; x++) {
      uint8_t px[3];
      for (int c = 0; c < ch; c++) px[c] = value_to_byte(video[((size_t)c * T + t) * plane + (size_t)y * W + x]);
      for (int dy = 0; dy < up; dy++) {
        uint8_t *row = out + ((size_t)y * up + dy) * out_w * ch;
        for (int dx = 0; dx < up; dx++) memcpy(row + ((size_t)x * up + dx) * ch, px, (size_t)ch);
      }
    }
  }
}

/* Checks the arguments every writer shares; names what is wrong after "<name>: ". */
static int check_video_args(const char *name, const float *video, int C, int T, int H, int W,
                            const video_write_options *opt, char *err, size_t err_size) {
  if (!video) {
    snprintf(err, err_size, "%s: no video data (NULL pointer)", name);
    return -1;
  }
  if (C < 1 || T < 1 || H < 1 || W < 1) {
    snprintf(err, err_size, "%s: video shape [C=%d, T=%d, H=%d, W=%d] has an empty dimension", name, C, T, H, W);
    return -1;
  }
  if (opt->upscale < 1 || opt->upscale > 4096) {
    snprintf(err, err_size, "%s: upscale %d is outside 1..4096", name, opt->upscale);
    return -1;
  }
  return 0;
}

/* "<path>.tmp.<pid>": unique per process, so two processes writing one name never share a temporary. */
static int temp_name(char *tmp, size_t tmp_size, const char *path, char *err, size_t err_size) {
  int n = snprintf(tmp, tmp_size, "%s.tmp.%ld", path, (long)getpid());
  if (n < 0 || (size_t)n >= tmp_size) {
    snprintf(err, err_size, "%s: path too long", path);
    return -1;
  }
  return 0;
}

/* Flushes, fsyncs and closes f (always closes). Returns 0 or the errno of the first failure. */
static int finish_file(FILE *f) {
  int e = 0;
  if (fflush(f) != 0) e = errno;
  if (!e && fsync(fileno(f)) != 0) e = errno;
  if (fclose(f) != 0 && !e) e = errno;
  return e;
}

/* ---- GIF -------------------------------------------------------------------------------------- */

/* giflib calls this for every byte string it writes; we keep the first error because giflib ignores the
 * result of several of its own writes (e.g. the trailer in EGifCloseFile). */
typedef struct {
  FILE *file;
  int error; /* errno of the first failed write, 0 if none */
} gif_sink;

static int gif_output(GifFileType *gif, const GifByteType *bytes, int len) {
  gif_sink *sink = (gif_sink *)gif->UserData;
  if (sink->error) return 0;
  if (len > 0 && fwrite(bytes, 1, (size_t)len, sink->file) != (size_t)len) {
    sink->error = errno ? errno : EIO;
    return 0;
  }
  return len;
}

/* Palette index of an RGB byte triple in the 6x7x6 cube: r*42 + g*6 + b, each the nearest level. */
static int cube_index(const uint8_t *rgb) {
  int r = (rgb[0] * 5 + 127) / 255, g = (rgb[1] * 6 + 127) / 255, b = (rgb[2] * 5 + 127) / 255;
  return r * 42 + g * 6 + b;
}

/* Fills colors[256]: the gray ramp, or the 6x7x6 cube followed by 4 unused black entries. */
static void make_palette(GifColorType *colors, int gray) {
  memset(colors, 0, 256 * sizeof *colors);
  if (gray) {
    for (int i = 0; i < 256; i++) colors[i].Red = colors[i].Green = colors[i].Blue = (GifByteType)i;
    return;
  }
  for (int r = 0; r < 6; r++)
    for (int g = 0; g < 7; g++)
      for (int b = 0; b < 6; b++) {
        GifColorType *c = &colors[r * 42 + g * 6 + b];
        c->Red = (GifByteType)((r * 255 + 2) / 5);
        c->Green = (GifByteType)((g * 255 + 3) / 6);
        c->Blue = (GifByteType)((b * 255 + 2) / 5);
      }
}

/* The GCB delay in hundredths of a second for fps (see the header). */
static int gif_delay_cs(double fps) {
  double d = floor(100.0 / fps + 0.5);
  if (d < 2) d = 2;
  if (d > 65535) d = 65535;
  return (int)d;
}

/* Writes the whole GIF through gif (opened on a sink). Returns 0, or the giflib error code. */
static int gif_encode(GifFileType *gif, const float *video, int C, int T, int H, int W, int up, int delay_cs,
                      uint8_t *frame, GifPixelType *line) {
  int gray = out_channels(C) == 1, ws = W * up, hs = H * up;
  GifColorType colors[256];
  make_palette(colors, gray);
  ColorMapObject *map = GifMakeMapObject(256, colors);
  if (!map) return E_GIF_ERR_NOT_ENOUGH_MEM;
  EGifSetGifVersion(gif, true); /* GIF89a: needed for the loop and delay extensions */
  int rc = EGifPutScreenDesc(gif, ws, hs, 8, 0, map);
  GifFreeMapObject(map); /* giflib keeps its own copy */
  if (rc != GIF_OK) return gif->Error;

  /* Netscape 2.0 application extension: sub-block {1, loop count lo, hi}; count 0 = forever. */
  static const GifByteType netscape_id[11] = {'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0'};
  GifByteType loop_block[3] = {1, 0, 0};
  if (EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE) != GIF_OK ||
      EGifPutExtensionBlock(gif, sizeof netscape_id, netscape_id) != GIF_OK ||
      EGifPutExtensionBlock(gif, sizeof loop_block, loop_block) != GIF_OK || EGifPutExtensionTrailer(gif) != GIF_OK)
    return gif->Error;

  GraphicsControlBlock gcb = {.DisposalMode = DISPOSE_DO_NOT,
                              .UserInputFlag = false,
                              .DelayTime = delay_cs,
                              .TransparentColor = NO_TRANSPARENT_COLOR};
  GifByteType gcb_bytes[4];
  size_t gcb_len = EGifGCBToExtension(&gcb, gcb_bytes);
  for (int t = 0; t < T; t++) {
    frame_to_bytes(frame, video, C, T, H, W, t, up);
    if (EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, (int)gcb_len, gcb_bytes) != GIF_OK ||
        EGifPutImageDesc(gif, 0, 0, ws, hs, false, NULL) != GIF_OK)
      return gif->Error;
    for (int y = 0; y < hs; y++) {
      const uint8_t *row = frame + (size_t)y * ws * (gray ? 1 : 3);
      for (int x = 0; x < ws; x++) line[x] = (GifPixelType)(gray ? row[x] : cube_index(row + 3 * (size_t)x));
      if (EGifPutLine(gif, line, ws) != GIF_OK) return gif->Error;
    }
  }
  return 0;
}

int video_write_gif(const char *path, const float *video, int C, int T, int H, int W, const video_write_options *opt,
                    char *err, size_t err_size) {
  video_write_options defaults = video_write_defaults();
  if (!opt) opt = &defaults;
  if (!path || !path[0]) {
    snprintf(err, err_size, "(gif): empty output path");
    return -1;
  }
  if (check_video_args(path, video, C, T, H, W, opt, err, err_size)) return -1;
  if (!(opt->fps > 0) || !isfinite(opt->fps)) {
    snprintf(err, err_size, "%s: fps %g is not a positive number", path, opt->fps);
    return -1;
  }
  if ((long)W * opt->upscale > GIF_MAX_SIDE || (long)H * opt->upscale > GIF_MAX_SIDE) {
    snprintf(err, err_size, "%s: %dx%d upscaled by %d exceeds GIF's limit of %ld pixels per side", path, W, H,
             opt->upscale, GIF_MAX_SIDE);
    return -1;
  }
  int up = opt->upscale, ws = W * up, hs = H * up;
  char tmp[MAX_PATH_BYTES];
  if (temp_name(tmp, sizeof tmp, path, err, err_size)) return -1;
  uint8_t *frame = malloc((size_t)ws * hs * 3);
  GifPixelType *line = malloc((size_t)ws);
  if (!frame || !line) {
    free(frame);
    free(line);
    snprintf(err, err_size, "%s: out of memory for a %dx%d frame", path, ws, hs);
    return -1;
  }
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    snprintf(err, err_size, "%s: cannot create the temporary file %s: %s", path, tmp, strerror(errno));
    free(frame);
    free(line);
    return -1;
  }
  /* EGifOpen with our own output function rather than EGifOpenFileName: the latter creates the file with
   * mode 0600 and closes it itself, leaving no chance to fsync before the close. */
  gif_sink sink = {.file = f, .error = 0};
  int gif_err = 0;
  GifFileType *gif = EGifOpen(&sink, gif_output, &gif_err);
  if (gif) {
    gif_err = gif_encode(gif, video, C, T, H, W, up, gif_delay_cs(opt->fps), frame, line);
    int close_err = 0;
    if (EGifCloseFile(gif, &close_err) != GIF_OK && !gif_err) gif_err = close_err; /* frees gif either way */
  } else if (!gif_err) {
    gif_err = E_GIF_ERR_NOT_ENOUGH_MEM;
  }
  free(frame);
  free(line);
  int io_err = finish_file(f);
  if (sink.error || gif_err || io_err) {
    if (sink.error || (io_err && !gif_err))
      snprintf(err, err_size, "%s: write failed: %s", path, strerror(sink.error ? sink.error : io_err));
    else
      snprintf(err, err_size, "%s: GIF encoding failed: %s", path, GifErrorString(gif_err));
    unlink(tmp);
    return -1;
  }
  if (rename(tmp, path) != 0) {
    snprintf(err, err_size, "%s: cannot rename %s onto it: %s", path, tmp, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

/* ---- PNG -------------------------------------------------------------------------------------- */

typedef struct {
  char message[256];
} png_failure;

static void on_png_error(png_structp png, png_const_charp message) {
  png_failure *failure = (png_failure *)png_get_error_ptr(png);
  snprintf(failure->message, sizeof failure->message, "%s", message);
  png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp message) {
  (void)png;
  (void)message; /* warnings (e.g. about ancillary chunks) do not fail a write */
}

/* Encodes pixels[height, width, channels] (channels 1 or 3) to f. Returns 0, or -1 with the reason in failure. */
static int png_encode(FILE *f, const uint8_t *pixels, int width, int height, int channels, png_failure *failure) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, failure, on_png_error, on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    snprintf(failure->message, sizeof failure->message, "out of memory for the PNG encoder");
    png_destroy_write_struct(png ? &png : NULL, NULL);
    return -1;
  }
  /* png and info are not modified after setjmp, so they need not be volatile. */
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return -1;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
               channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + (size_t)y * width * channels));
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return 0;
}

/* Writes pixels as a PNG to tmp and fsyncs it (no rename). On failure removes tmp and names path in err. */
static int png_write_temp(const char *path, const char *tmp, const uint8_t *pixels, int width, int height, int channels,
                          char *err, size_t err_size) {
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    snprintf(err, err_size, "%s: cannot create the temporary file %s: %s", path, tmp, strerror(errno));
    return -1;
  }
  png_failure failure = {""};
  errno = 0;
  int rc = png_encode(f, pixels, width, height, channels, &failure);
  int saved_errno = errno;
  int io_err = finish_file(f);
  if (rc || io_err) {
    if (rc && saved_errno)
      snprintf(err, err_size, "%s: PNG write failed: %s (%s)", path, failure.message, strerror(saved_errno));
    else if (rc)
      snprintf(err, err_size, "%s: PNG write failed: %s", path, failure.message);
    else
      snprintf(err, err_size, "%s: write failed: %s", path, strerror(io_err));
    unlink(tmp);
    return -1;
  }
  return 0;
}

int video_png_frame_path(char *out, size_t out_size, const char *prefix, int t) {
  int n = snprintf(out, out_size, "%s_f%03d.png", prefix, t);
  return (n < 0 || (size_t)n >= out_size) ? -1 : 0;
}

/* Frame t's final name and its temporary name. */
static void frame_names(char *final_name, size_t final_size, char *temp, size_t temp_size, const char *prefix, int t) {
  video_png_frame_path(final_name, final_size, prefix, t);
  snprintf(temp, temp_size, "%s.tmp.%ld", final_name, (long)getpid());
}

int video_write_png_frames(const char *prefix, const float *video, int C, int T, int H, int W,
                           const video_write_options *opt, char *err, size_t err_size) {
  video_write_options defaults = video_write_defaults();
  if (!opt) opt = &defaults;
  if (!prefix || !prefix[0]) {
    snprintf(err, err_size, "(png frames): empty output prefix");
    return -1;
  }
  char first[MAX_PATH_BYTES];
  if (video_png_frame_path(first, sizeof first, prefix, 0)) {
    snprintf(err, err_size, "%s: path too long", prefix);
    return -1;
  }
  if (check_video_args(first, video, C, T, H, W, opt, err, err_size)) return -1;
  int up = opt->upscale, ch = out_channels(C);
  if ((long)W * up > PNG_MAX_SIDE || (long)H * up > PNG_MAX_SIDE) {
    snprintf(err, err_size, "%s: %dx%d upscaled by %d exceeds %ld pixels per side", first, W, H, up, PNG_MAX_SIDE);
    return -1;
  }
  int ws = W * up, hs = H * up;
  uint8_t *pixels = malloc((size_t)ws * hs * ch);
  if (!pixels) {
    snprintf(err, err_size, "%s: out of memory for a %dx%d frame", first, ws, hs);
    return -1;
  }
  /* Names are recomputed from (prefix, t) rather than stored (T may be large). They fit: the prefix passed the
   * length check for frame 0, a frame number adds at most 7 digits, a pid at most 20. */
  char final_name[MAX_PATH_BYTES + 16], temp[MAX_PATH_BYTES + 48];
  int written = 0, renamed = 0, rc = 0;
  for (; written < T; written++) {
    frame_names(final_name, sizeof final_name, temp, sizeof temp, prefix, written);
    frame_to_bytes(pixels, video, C, T, H, W, written, up);
    if (png_write_temp(final_name, temp, pixels, ws, hs, ch, err, err_size)) {
      rc = -1;
      break;
    }
  }
  for (; rc == 0 && renamed < T; renamed++) {
    frame_names(final_name, sizeof final_name, temp, sizeof temp, prefix, renamed);
    if (rename(temp, final_name) != 0) {
      snprintf(err, err_size, "%s: cannot rename %s onto it: %s", final_name, temp, strerror(errno));
      rc = -1;
      break;
    }
  }
  if (rc) { /* all or nothing: remove what this call created (png_write_temp removed the failed one) */
    for (int t = 0; t < written; t++) {
      frame_names(final_name, sizeof final_name, temp, sizeof temp, prefix, t);
      unlink(t < renamed ? final_name : temp);
    }
  }
  free(pixels);
  return rc;
}

int video_write_png_sheet(const char *path, const float *video, int C, int T, int H, int W,
                          const video_write_options *opt, char *err, size_t err_size) {
  video_write_options defaults = video_write_defaults();
  if (!opt) opt = &defaults;
  if (!path || !path[0]) {
    snprintf(err, err_size, "(png sheet): empty output path");
    return -1;
  }
  if (check_video_args(path, video, C, T, H, W, opt, err, err_size)) return -1;
  if (opt->sheet_columns < 0 || opt->sheet_gap < 0 || opt->sheet_gap > 4096) {
    snprintf(err, err_size, "%s: sheet columns %d / gap %d must be >= 0 (gap <= 4096)", path, opt->sheet_columns,
             opt->sheet_gap);
    return -1;
  }
  int up = opt->upscale, ch = out_channels(C), gap = opt->sheet_gap;
  int cols = (opt->sheet_columns == 0 || opt->sheet_columns > T) ? T : opt->sheet_columns;
  int rows = (T + cols - 1) / cols;
  long fw = (long)W * up, fh = (long)H * up;
  long sheet_w = cols * fw + (long)(cols - 1) * gap, sheet_h = rows * fh + (long)(rows - 1) * gap;
  if (fw > PNG_MAX_SIDE || fh > PNG_MAX_SIDE || sheet_w > PNG_MAX_SIDE || sheet_h > PNG_MAX_SIDE) {
    snprintf(err, err_size, "%s: a sheet of %d frames of %dx%d upscaled by %d exceeds %ld pixels per side", path, T, W,
             H, up, PNG_MAX_SIDE);
    return -1;
  }
  uint8_t *sheet = malloc((size_t)sheet_w * sheet_h * ch);
  uint8_t *frame = malloc((size_t)fw * fh * ch);
  if (!sheet || !frame) {
    free(sheet);
    free(frame);
    snprintf(err, err_size, "%s: out of memory for a %ldx%ld sheet", path, sheet_w, sheet_h);
    return -1;
  }
  memset(sheet, 255, (size_t)sheet_w * sheet_h * ch);
  for (int t = 0; t < T; t++) {
    frame_to_bytes(frame, video, C, T, H, W, t, up);
    long x0 = (t % cols) * (fw + gap), y0 = (t / cols) * (fh + gap);
    for (long y = 0; y < fh; y++)
      memcpy(sheet + ((size_t)(y0 + y) * sheet_w + x0) * ch, frame + (size_t)y * fw * ch, (size_t)fw * ch);
  }
  free(frame);
  char tmp[MAX_PATH_BYTES];
  int rc = temp_name(tmp, sizeof tmp, path, err, err_size);
  if (!rc) rc = png_write_temp(path, tmp, sheet, (int)sheet_w, (int)sheet_h, ch, err, err_size);
  free(sheet);
  if (!rc && rename(tmp, path) != 0) {
    snprintf(err, err_size, "%s: cannot rename %s onto it: %s", path, tmp, strerror(errno));
    unlink(tmp);
    rc = -1;
  }
  return rc;
}
