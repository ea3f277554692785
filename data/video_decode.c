/* video_decode.c — the FFmpeg-backed video decoder (libavformat demux, libavcodec send/receive
 * decode, libswscale crop/resize/RGB24) and the clip cutter on top; the rules are in
 * video_decode.h. */
#include "data/video_decode.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_SIDE 16384 /* refuse output sizes no one trains on before allocating for them */

struct video_decoder {
  char *path;
  video_decode_options opt;
  video_info info;
  AVFormatContext *fmt;
  AVCodecContext *dec;
  AVPacket *pkt;
  int stream;
  AVRational tb;             /* the stream's time base */
  AVRational out_period;     /* 1 / fps as a rational (resampling only) */
  int resample;              /* fps > 0 */
  int64_t default_duration;  /* one frame at the stream's average rate, in tb units; 0 if unknown */
  int tick_parts;            /* 32: times are compared in 1/32 of a tick, exactly */
  AVRational tb_32;          /* tb / tick_parts */
  int64_t tolerance_32;      /* how far timestamps may be off, in tb_32 units (see the header) */
  int demux_eof, decoder_eof;
  long decoded, out_frames;  /* source frames received from the decoder; output frames delivered */
  AVFrame *incoming;         /* the frame decode_one just received */
  AVFrame *cur;              /* the frame whose interval is being sampled */
  int have_cur, cur_end_known;
  int64_t cur_pts, cur_end, pts0, last_pts, last_duration, last_interval;
  AVFrame *next;             /* the frame after cur, whose pts ended cur's interval */
  int have_next;
  int64_t next_pts;
  AVFrame *crop;             /* a reference to the frame being converted, cropped */
  struct SwsContext *sws;
  struct SwsContext *sws_configured; /* the context whose colour details were set for ... */
  int sws_colorspace, sws_range;     /* ... these frame properties */
  uint8_t *rgb_data[4];      /* aligned RGB24 output of sws_scale (what the CLI's frames look like) */
  int rgb_linesize[4];
  uint8_t *cache;            /* cur converted, for repeated output frames when upsampling */
  int cache_valid;
};

video_decode_options video_decode_defaults(void) {
  video_decode_options o = {.height = 0, .width = 0, .fps = 0.0, .resize = VIDEO_RESIZE_AUTO, .threads = 1};
  return o;
}

/* FFmpeg's own log lines are multi-line noise next to our one-line errors: silenced unless
 * TPDIFF_FFMPEG_LOG names a level (quiet, panic, fatal, error, warning, info, verbose, debug). */
static void quiet_ffmpeg_log(void) {
  static int done;
  if (done) return;
  done = 1;
  const char *want = getenv("TPDIFF_FFMPEG_LOG");
  static const struct {
    const char *name;
    int level;
  } levels[] = {{"quiet", AV_LOG_QUIET}, {"panic", AV_LOG_PANIC},     {"fatal", AV_LOG_FATAL},
                {"error", AV_LOG_ERROR}, {"warning", AV_LOG_WARNING}, {"info", AV_LOG_INFO},
                {"verbose", AV_LOG_VERBOSE}, {"debug", AV_LOG_DEBUG}};
  int level = AV_LOG_QUIET;
  for (size_t i = 0; want && i < sizeof levels / sizeof levels[0]; i++)
    if (!strcmp(want, levels[i].name)) level = levels[i].level;
  av_log_set_level(level);
}

static const char *av_error_text(int code, char *buf, size_t size) {
  if (av_strerror(code, buf, size) < 0) snprintf(buf, size, "libav error %d", code);
  return buf;
}

void video_decoder_close(video_decoder *d) {
  if (!d) return;
  av_frame_free(&d->incoming);
  av_frame_free(&d->cur);
  av_frame_free(&d->next);
  av_frame_free(&d->crop);
  av_packet_free(&d->pkt);
  avcodec_free_context(&d->dec);
  avformat_close_input(&d->fmt);
  sws_freeContext(d->sws);
  av_freep(&d->rgb_data[0]);
  free(d->cache);
  free(d->path);
  free(d);
}

/* The video stream to decode: the best one that is not a cover picture; -1 if none. */
static int pick_video_stream(AVFormatContext *fmt) {
  int best = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
  if (best >= 0 && !(fmt->streams[best]->disposition & AV_DISPOSITION_ATTACHED_PIC)) return best;
  for (unsigned i = 0; i < fmt->nb_streams; i++) {
    AVStream *st = fmt->streams[i];
    if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && !(st->disposition & AV_DISPOSITION_ATTACHED_PIC))
      return (int)i;
  }
  return -1;
}

video_decoder *video_decoder_open(const char *path, const video_decode_options *opt_in, char *err,
                                  size_t err_size) {
  video_decode_options opt = opt_in ? *opt_in : video_decode_defaults();
  char why[256];
  if (!path || !*path) {
    snprintf(err, err_size, "(no path): no video file named");
    return NULL;
  }
  if ((opt.height > 0) != (opt.width > 0) || opt.height > MAX_SIDE || opt.width > MAX_SIDE) {
    snprintf(err, err_size, "%s: output size %dx%d: give both sides in 1..%d, or neither", path, opt.height,
             opt.width, MAX_SIDE);
    return NULL;
  }
  if (opt.threads < 0) opt.threads = 0;
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  if (S_ISDIR(st.st_mode)) {
    snprintf(err, err_size, "%s: is a folder, not a video file", path);
    return NULL;
  }
  if (S_ISREG(st.st_mode) && st.st_size == 0) {
    snprintf(err, err_size, "%s: not a video: the file is empty (0 bytes)", path);
    return NULL;
  }
  quiet_ffmpeg_log();
  video_decoder *d = calloc(1, sizeof *d);
  if (!d || !(d->path = strdup(path))) {
    free(d);
    snprintf(err, err_size, "%s: out of memory", path);
    return NULL;
  }
  d->opt = opt;
  int r = avformat_open_input(&d->fmt, path, NULL, NULL);
  if (r < 0) {
    snprintf(err, err_size, "%s: not a video: libavformat cannot open it (%s)", path,
             av_error_text(r, why, sizeof why));
    goto fail;
  }
  /* The "tty" demuxer shows any text file as an ANSI-art video: a text file is not a video. */
  if (!strcmp(d->fmt->iformat->name, "tty")) {
    snprintf(err, err_size, "%s: not a video: a text file", path);
    goto fail;
  }
  if ((r = avformat_find_stream_info(d->fmt, NULL)) < 0) {
    snprintf(err, err_size, "%s: not a video: cannot read stream information (%s)", path,
             av_error_text(r, why, sizeof why));
    goto fail;
  }
  d->stream = pick_video_stream(d->fmt);
  if (d->stream < 0) {
    snprintf(err, err_size, "%s: not a video: no video stream (format %s, %u other streams)", path,
             d->fmt->iformat->name, d->fmt->nb_streams);
    goto fail;
  }
  AVStream *vs = d->fmt->streams[d->stream];
  for (unsigned i = 0; i < d->fmt->nb_streams; i++)
    if ((int)i != d->stream) d->fmt->streams[i]->discard = AVDISCARD_ALL; /* do not even read them */
  const AVCodec *codec = avcodec_find_decoder(vs->codecpar->codec_id);
  if (!codec) {
    snprintf(err, err_size, "%s: no decoder for its video codec %s", path, avcodec_get_name(vs->codecpar->codec_id));
    goto fail;
  }
  if (!(d->dec = avcodec_alloc_context3(codec)) || avcodec_parameters_to_context(d->dec, vs->codecpar) < 0) {
    snprintf(err, err_size, "%s: cannot set up the %s decoder", path, codec->name);
    goto fail;
  }
  d->dec->thread_count = opt.threads;
  d->dec->pkt_timebase = vs->time_base;
  if ((r = avcodec_open2(d->dec, codec, NULL)) < 0) {
    snprintf(err, err_size, "%s: cannot open the %s decoder (%s)", path, codec->name, av_error_text(r, why, sizeof why));
    goto fail;
  }
  if (!(d->pkt = av_packet_alloc()) || !(d->incoming = av_frame_alloc()) || !(d->cur = av_frame_alloc()) ||
      !(d->next = av_frame_alloc()) || !(d->crop = av_frame_alloc())) {
    snprintf(err, err_size, "%s: out of memory", path);
    goto fail;
  }
  d->tb = vs->time_base;
  AVRational rate = vs->avg_frame_rate.num > 0 && vs->avg_frame_rate.den > 0 ? vs->avg_frame_rate : vs->r_frame_rate;
  if (rate.num > 0 && rate.den > 0) {
    d->info.source_fps = av_q2d(rate);
    d->default_duration = av_rescale_q(1, av_inv_q(rate), d->tb);
  }
  d->info.source_width = vs->codecpar->width;
  d->info.source_height = vs->codecpar->height;
  d->info.duration_s = d->fmt->duration > 0 ? d->fmt->duration / (double)AV_TIME_BASE : 0.0;
  d->info.format_name = d->fmt->iformat->name;
  d->info.codec_name = codec->name;
  d->info.width = opt.width > 0 ? opt.width : vs->codecpar->width;
  d->info.height = opt.height > 0 ? opt.height : vs->codecpar->height;
  if (d->info.width < 1 || d->info.height < 1 || d->info.width > MAX_SIDE || d->info.height > MAX_SIDE) {
    snprintf(err, err_size, "%s: video stream has an unusable size %dx%d", path, vs->codecpar->height,
             vs->codecpar->width);
    goto fail;
  }
  /* Timestamps are rounded to the time base (Matroska: 1 ms, so 24 fps frames sit at 0, 42, 83,
   * ... ms): take them as accurate to half a tick, but never more than 1/16 of a frame, where the
   * tick is as long as a frame and timestamps are exact. */
  d->tick_parts = 32;
  d->tolerance_32 = 16;
  if (d->default_duration > 0 && 2 * d->default_duration < d->tolerance_32) d->tolerance_32 = 2 * d->default_duration;
  if (d->tb.den > INT32_MAX / 32) d->tick_parts = 1, d->tolerance_32 = 0; /* absurd time base: exact only */
  d->tb_32 = (AVRational){d->tb.num, d->tb.den * d->tick_parts};
  d->resample = opt.fps > 0;
  if (d->resample) {
    AVRational fps = av_d2q(opt.fps, 100000);
    if (fps.num <= 0 || fps.den <= 0) {
      snprintf(err, err_size, "%s: cannot use %g as a frame rate", path, opt.fps);
      goto fail;
    }
    d->out_period = av_inv_q(fps);
    d->info.fps = av_q2d(fps);
  } else {
    d->info.fps = d->info.source_fps;
  }
  if (av_image_alloc(d->rgb_data, d->rgb_linesize, d->info.width, d->info.height, AV_PIX_FMT_RGB24, 64) < 0 ||
      !(d->cache = malloc((size_t)d->info.width * d->info.height * 3))) {
    snprintf(err, err_size, "%s: out of memory for %dx%d frames", path, d->info.height, d->info.width);
    goto fail;
  }
  d->sws_colorspace = d->sws_range = -1;
  return d;
fail:
  video_decoder_close(d);
  return NULL;
}

const video_info *video_decoder_info(const video_decoder *d) { return &d->info; }
long video_decoder_frames_out(const video_decoder *d) { return d->out_frames; }
long video_decoder_frames_decoded(const video_decoder *d) { return d->decoded; }
int64_t video_decoder_bytes_read(const video_decoder *d) {
  return d->fmt && d->fmt->pb ? avio_tell(d->fmt->pb) : 0;
}

/* Receives the next decoded frame into d->incoming, reading and sending packets as the decoder
 * asks and flushing it at the end of the file. 1 = a frame, 0 = no more frames, -1 = err. */
static int decode_one(video_decoder *d, char *err, size_t err_size) {
  char why[256];
  for (;;) {
    if (d->decoder_eof) return 0;
    int r = avcodec_receive_frame(d->dec, d->incoming);
    if (r == 0) {
      d->decoded++;
      return 1;
    }
    if (r == AVERROR_EOF) {
      d->decoder_eof = 1;
      return 0;
    }
    if (r != AVERROR(EAGAIN)) {
      snprintf(err, err_size, "%s: decode error at source frame %ld: %s", d->path, d->decoded,
               av_error_text(r, why, sizeof why));
      return -1;
    }
    if (d->demux_eof) { /* flushed and still EAGAIN: cannot happen, but never loop forever */
      d->decoder_eof = 1;
      return 0;
    }
    r = av_read_frame(d->fmt, d->pkt);
    if (r == AVERROR_EOF) {
      d->demux_eof = 1;
      avcodec_send_packet(d->dec, NULL); /* enter draining: the decoder hands out what it holds */
      continue;
    }
    if (r < 0) {
      snprintf(err, err_size, "%s: read error after %ld good source frames: %s", d->path, d->decoded,
               av_error_text(r, why, sizeof why));
      return -1;
    }
    if (d->pkt->stream_index != d->stream) {
      av_packet_unref(d->pkt);
      continue;
    }
    r = avcodec_send_packet(d->dec, d->pkt);
    av_packet_unref(d->pkt);
    if (r < 0 && r != AVERROR(EAGAIN)) {
      snprintf(err, err_size, "%s: decode error at source frame %ld: %s", d->path, d->decoded,
               av_error_text(r, why, sizeof why));
      return -1;
    }
  }
}

/* The presentation time of d->incoming in tb units, made up from the previous frame when the file
 * has none, and never before the previous frame (a non-increasing pts gives an empty interval). */
static int64_t incoming_pts(video_decoder *d) {
  int64_t pts = d->incoming->best_effort_timestamp;
  if (pts == AV_NOPTS_VALUE) pts = d->incoming->pts;
  int64_t step = d->last_duration > 0 ? d->last_duration : d->default_duration > 0 ? d->default_duration : 1;
  if (pts == AV_NOPTS_VALUE) pts = d->decoded > 1 ? d->last_pts + step : 0;
  if (d->decoded > 1 && pts < d->last_pts) pts = d->last_pts;
  d->last_pts = pts;
  d->last_duration = d->incoming->pkt_duration;
  return pts;
}

/* Duration of the last frame (at pts cur_pts): its own, else one frame at the average rate, else
 * the previous interval, else one tb unit. */
static int64_t last_frame_duration(const video_decoder *d) {
  if (d->cur->pkt_duration > 0) return d->cur->pkt_duration;
  if (d->default_duration > 0) return d->default_duration;
  if (d->last_interval > 0) return d->last_interval;
  return 1;
}

/* The largest centred window of a w x h frame (sample aspect sar) with display aspect W/H, its
 * offsets on the chroma grid. */
static void centre_crop(int w, int h, AVRational sar, int W, int H, int chroma_w_log2, int chroma_h_log2, int *x,
                        int *y, int *cw, int *ch) {
  if (sar.num <= 0 || sar.den <= 0) sar = (AVRational){1, 1};
  /* display width = w * sar; compare w * sar / h with W / H in integers */
  int64_t lhs = (int64_t)w * sar.num * H, rhs = (int64_t)h * sar.den * W;
  *cw = w;
  *ch = h;
  if (lhs > rhs) /* source is wider: keep the height */
    *cw = (int)(((int64_t)h * W * sar.den * 2 + (int64_t)H * sar.num) / ((int64_t)H * sar.num * 2));
  else if (lhs < rhs) /* source is taller: keep the width */
    *ch = (int)(((int64_t)w * sar.num * H * 2 + (int64_t)W * sar.den) / ((int64_t)W * sar.den * 2));
  if (*cw < 1) *cw = 1;
  if (*ch < 1) *ch = 1;
  if (*cw > w) *cw = w;
  if (*ch > h) *ch = h;
  *x = ((w - *cw) / 2) >> chroma_w_log2 << chroma_w_log2;
  *y = ((h - *ch) / 2) >> chroma_h_log2 << chroma_h_log2;
}

/* Converts frame (cropped, resized, RGB24) into out [H, W, 3] bytes. */
static int convert_frame(video_decoder *d, const AVFrame *frame, uint8_t *out, char *err, size_t err_size) {
  const int W = d->info.width, H = d->info.height;
  const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get((enum AVPixelFormat)frame->format);
  if (!desc || !sws_isSupportedInput((enum AVPixelFormat)frame->format)) {
    snprintf(err, err_size, "%s: frame %ld has pixel format %s, which libswscale cannot convert", d->path,
             d->decoded - 1, desc ? desc->name : "(unknown)");
    return -1;
  }
  av_frame_unref(d->crop);
  if (av_frame_ref(d->crop, frame) < 0) {
    snprintf(err, err_size, "%s: out of memory", d->path);
    return -1;
  }
  int x = 0, y = 0, cw = frame->width, ch = frame->height;
  if (d->opt.width > 0) {
    AVRational sar = av_guess_sample_aspect_ratio(d->fmt, d->fmt->streams[d->stream], (AVFrame *)frame);
    centre_crop(frame->width, frame->height, sar, W, H, desc->log2_chroma_w,
                desc->log2_chroma_h, &x, &y, &cw, &ch);
    d->crop->crop_left = (size_t)x;
    d->crop->crop_top = (size_t)y;
    d->crop->crop_right = (size_t)(frame->width - x - cw);
    d->crop->crop_bottom = (size_t)(frame->height - y - ch);
    if (av_frame_apply_cropping(d->crop, AV_FRAME_CROP_UNALIGNED) < 0) {
      snprintf(err, err_size, "%s: cannot crop frame %ld (%s)", d->path, d->decoded - 1, desc->name);
      return -1;
    }
  } else if (frame->width != W || frame->height != H) {
    snprintf(err, err_size, "%s: frame size changed from %dx%d to %dx%d at source frame %ld; give an output size",
             d->path, H, W, frame->height, frame->width, d->decoded - 1);
    return -1;
  }
  int filter = d->opt.resize == VIDEO_RESIZE_AREA      ? SWS_AREA
               : d->opt.resize == VIDEO_RESIZE_BICUBIC ? SWS_BICUBIC
               : (W < cw && H < ch)                    ? SWS_AREA
                                                       : SWS_BICUBIC;
  d->sws = sws_getCachedContext(d->sws, cw, ch, (enum AVPixelFormat)frame->format, W, H, AV_PIX_FMT_RGB24,
                                filter | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
  if (!d->sws) {
    snprintf(err, err_size, "%s: libswscale cannot convert %s %dx%d to RGB24 %dx%d", d->path, desc->name, cw, ch, W, H);
    return -1;
  }
  /* The colour matrix and range as FFmpeg's scale filter picks them (so our bytes equal the CLI's):
   * the frame's matrix when it is one swscale knows, BT.601 otherwise; the frame's range when it has
   * one. Only for YUV and gray sources; set again only when the context or the frame's say changes. */
  int is_yuv = !(desc->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL));
  if (is_yuv && (d->sws != d->sws_configured || (int)frame->colorspace != d->sws_colorspace ||
                 (int)frame->color_range != d->sws_range)) {
    int *inv_table, *table, src_full, dst_full, brightness, contrast, saturation;
    if (sws_getColorspaceDetails(d->sws, &inv_table, &src_full, &table, &dst_full, &brightness, &contrast,
                                 &saturation) >= 0) {
      int cs = frame->colorspace;
      if (cs < 1 || cs > 10 || cs == 8) cs = AVCOL_SPC_BT470BG;
      const int *coefficients = sws_getCoefficients(cs);
      if (frame->color_range != AVCOL_RANGE_UNSPECIFIED) src_full = frame->color_range == AVCOL_RANGE_JPEG;
      sws_setColorspaceDetails(d->sws, coefficients, src_full, coefficients, dst_full, brightness, contrast,
                               saturation);
    }
    d->sws_configured = d->sws;
    d->sws_colorspace = frame->colorspace;
    d->sws_range = frame->color_range;
  }
  int rows = sws_scale(d->sws, (const uint8_t *const *)d->crop->data, d->crop->linesize, 0, ch, d->rgb_data,
                       d->rgb_linesize);
  av_frame_unref(d->crop);
  if (rows != H) {
    snprintf(err, err_size, "%s: libswscale failed on source frame %ld (%d of %d rows)", d->path, d->decoded - 1,
             rows, H);
    return -1;
  }
  for (int r = 0; r < H; r++) memcpy(out + (size_t)r * W * 3, d->rgb_data[0] + (size_t)r * d->rgb_linesize[0], (size_t)W * 3);
  return 0;
}

/* Hands out frame (converted once into the cache, then copied) as the next output frame. */
static int emit(video_decoder *d, const AVFrame *frame, uint8_t *rgb, char *err, size_t err_size) {
  if (rgb) {
    if (!d->cache_valid) {
      if (convert_frame(d, frame, d->cache, err, err_size) != 0) return -1;
      d->cache_valid = 1;
    }
    memcpy(rgb, d->cache, (size_t)d->info.width * d->info.height * 3);
  }
  d->out_frames++;
  return 1;
}

int video_decoder_next_rgb24(video_decoder *d, uint8_t *rgb, char *err, size_t err_size) {
  if (!d->resample) { /* source rate: every decoded frame once */
    int r = decode_one(d, err, err_size);
    if (r <= 0) return r;
    av_frame_unref(d->cur);
    av_frame_move_ref(d->cur, d->incoming);
    d->cache_valid = 0;
    return emit(d, d->cur, rgb, err, err_size);
  }
  for (;;) {
    if (d->have_cur && d->cur_end_known) {
      /* output time t_k = pts0 + k * out_period is in cur's interval [cur_pts, cur_end) when
       * t_k + tolerance < cur_end (t_k >= cur_pts holds: intervals are contiguous from pts0); the
       * comparison is exact, in units of 1/32 of a time-base tick */
      if (av_compare_ts(d->out_frames, d->out_period, d->tick_parts * (d->cur_end - d->pts0) - d->tolerance_32, d->tb_32) < 0)
        return emit(d, d->cur, rgb, err, err_size);
      if (!d->have_next) return 0; /* the last frame is used up */
      av_frame_unref(d->cur);
      av_frame_move_ref(d->cur, d->next);
      d->last_interval = d->next_pts - d->cur_pts;
      d->cur_pts = d->next_pts;
      d->have_next = 0;
      d->cur_end_known = 0;
      d->cache_valid = 0;
      continue;
    }
    int r = decode_one(d, err, err_size);
    if (r < 0) return -1;
    if (r == 0) {
      if (!d->have_cur) return 0;
      d->cur_end = d->cur_pts + last_frame_duration(d);
      d->cur_end_known = 1;
      continue;
    }
    int64_t pts = incoming_pts(d);
    if (!d->have_cur) {
      av_frame_move_ref(d->cur, d->incoming);
      d->pts0 = d->cur_pts = pts;
      d->have_cur = 1;
      d->cache_valid = 0;
      continue;
    }
    av_frame_move_ref(d->next, d->incoming);
    d->next_pts = pts;
    d->have_next = 1;
    d->cur_end = pts;
    d->cur_end_known = 1;
  }
}

int video_decoder_next(video_decoder *d, float *frame_hwc, char *err, size_t err_size) {
  size_t n = (size_t)d->info.width * d->info.height * 3;
  uint8_t *bytes = NULL;
  if (frame_hwc) {
    /* convert in place: the bytes go to the end of the float buffer, then forward to floats (each
     * float at index i is written after byte i has been read, and bytes sit at or after it) */
    bytes = (uint8_t *)(frame_hwc + n) - n;
  }
  int r = video_decoder_next_rgb24(d, bytes, err, err_size);
  if (r == 1 && frame_hwc)
    for (size_t i = 0; i < n; i++) frame_hwc[i] = (float)bytes[i] / 127.5f - 1.0f;
  return r;
}

/* ---- clips ---------------------------------------------------------------------------------- */

long video_clip_file(const char *path, const video_clip_options *opt, video_clip_fn fn, void *user,
                     video_info *info, char *err, size_t err_size) {
  if (!opt || opt->frames < 1) {
    snprintf(err, err_size, "%s: clips need at least 1 frame", path ? path : "(no path)");
    return -1;
  }
  video_decoder *d = video_decoder_open(path, &opt->decode, err, err_size);
  if (!d) return -1;
  if (info) {
    *info = d->info;
    info->format_name = info->codec_name = NULL;
  }
  const int T = opt->frames, S = opt->stride > 0 ? opt->stride : opt->frames;
  size_t frame_floats = (size_t)d->info.width * d->info.height * 3;
  float *clip = malloc(frame_floats * (size_t)T * sizeof(float));
  char *source = malloc(strlen(path) + 32);
  if (!clip || !source) {
    snprintf(err, err_size, "%s: out of memory for a clip of %d frames of %dx%d", path, T, d->info.height,
             d->info.width);
    free(clip);
    free(source);
    video_decoder_close(d);
    return -1;
  }
  long clips = 0, next_start = 0, frame = 0;
  int filled = 0; /* clip holds output frames [next_start, next_start + filled) */
  int r;
  for (;; frame++) {
    float *slot = frame >= next_start ? clip + frame_floats * (size_t)filled : NULL;
    r = video_decoder_next(d, slot, err, err_size);
    if (r <= 0) break;
    if (!slot) continue;
    if (++filled < T) continue;
    sprintf(source, "%s:%ld", path, next_start);
    if (fn(user, clip, next_start, source, err, err_size) != 0) {
      r = -1;
      break;
    }
    clips++;
    if (opt->max_clips > 0 && clips >= opt->max_clips) break;
    next_start += S;
    if (S < T) {
      memmove(clip, clip + frame_floats * (size_t)S, frame_floats * (size_t)(T - S) * sizeof(float));
      filled = T - S;
    } else {
      filled = 0;
    }
  }
  long frames_seen = video_decoder_frames_out(d);
  double fps = d->info.fps;
  video_decoder_close(d);
  free(clip);
  free(source);
  if (r < 0) return -1;
  if (frames_seen == 0) {
    snprintf(err, err_size, "%s: empty video: 0 frames decoded", path);
    return -1;
  }
  if (clips == 0) {
    snprintf(err, err_size, "%s: video too short: %ld frames at %.4g fps, a clip needs %d", path, frames_seen, fps, T);
    return -1;
  }
  return clips;
}
