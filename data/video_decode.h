/* video_decode.h — decodes real video files with FFmpeg's libraries (anything libavformat opens: mp4,
 * webm, mkv, avi, y4m, animated GIF, ...) into frames for tpdiff-prep: resampled to a target frame
 * rate, centre-cropped to the target aspect ratio, resized to H x W and delivered one frame at a time
 * (a decoder is an iterator), so a long video never needs memory for all of its frames.
 *
 * Stream: the best video stream by av_find_best_stream; a cover picture (attached_pic) is not a
 * video.
 *
 * Frame-rate rule (fps > 0): a decoded frame i covers the presentation-time interval
 * [pts_i, pts_{i+1}) (the last frame [pts_last, pts_last + its duration), the duration taken from
 * the frame, else from the stream's average frame rate, else from the previous interval). Output
 * frame k is taken at time t_k = pts_0 + k / fps, and it is the decoded frame whose interval
 * contains t_k. Timestamps are rounded to the stream's time base (Matroska/WebM: 1 ms, so 24 fps
 * frames sit at 0, 42, 83 ms), so a pts is taken as accurate to half a tick, capped at 1/16 of a
 * frame: t_k counts as in the next frame's interval when it lies less than that tolerance before
 * the next frame's start. Otherwise the comparison is exact (fps as a rational with denominator
 * <= 100000, so 30000/1001 stays exact): 24 -> 12 fps keeps frames 0, 2, 4, ..., 24 -> 10 fps
 * frame floor(2.4 k), 24 -> 48 fps repeats each frame twice, and a 24 fps Matroska file at 24 fps
 * keeps every frame. A frame whose pts does not increase is an interval of length 0 and is never
 * chosen. The number of output frames is about duration * fps. With fps <= 0 every decoded frame is
 * delivered once, in presentation order (the source rate).
 *
 * Crop: the largest centred window of the source with the target aspect ratio W/H, measured on the
 * display (the sample aspect ratio is honoured, so anamorphic video is cropped as it is seen); its
 * offsets are rounded down to the chroma grid so luma and chroma stay aligned.
 *
 * Resize (libswscale, with SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT so chroma is interpolated to every
 * RGB pixel and rounding is exact): SWS_AREA when the crop is shrunk in both directions, which is
 * the usual case (1080p -> 64x64): every output pixel is the average of the source pixels it
 * covers, which removes aliasing without bicubic's overshoot halos; SWS_BICUBIC otherwise (an
 * enlargement or the same size, where SWS_AREA would fall back to bilinear). The colour matrix and
 * range come from the frame (BT.601 limited range when it says nothing), as FFmpeg's scale filter
 * does, so at the source size the bytes equal `ffmpeg -i F -sws_flags bicubic+accurate_rnd+
 * full_chroma_int -f rawvideo -pix_fmt rgb24`.
 *
 * Pixels: RGB24 bytes b become floats b / 127.5 - 1 in [-1, 1], frame layout [H, W, 3] (channels
 * last, the shard's order); a uint8 shard (scale 2/255, shift -1) stores b again exactly.
 *
 * Errors: every function returns -1 (or NULL) with ONE line in err that starts with the file name:
 * not a video (cannot open, no video stream, no decoder), a read or decode error (with the index of
 * the last good source frame), and, from the clip cutter, an empty video (0 frames) and a video
 * shorter than one clip (how many frames it had and how many were needed). Nothing here crashes on
 * a bad file. */
#ifndef TPDIFF_VIDEO_DECODE_H
#define TPDIFF_VIDEO_DECODE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  VIDEO_RESIZE_AUTO = 0, /* SWS_AREA when shrinking in both directions, else SWS_BICUBIC (see above) */
  VIDEO_RESIZE_AREA = 1,
  VIDEO_RESIZE_BICUBIC = 2,
} video_resize_kind;

typedef struct {
  int height, width;        /* output frame size, >= 1 each; <= 0 for both = the source size, no crop */
  double fps;               /* output frames per second; <= 0 keeps the source rate */
  video_resize_kind resize; /* which libswscale filter; AUTO by default */
  int threads;              /* decoder threads: 0 = libavcodec's choice (one per core), 1 = single-threaded */
} video_decode_options;

/* fps 0 (source rate), size 0x0 (source size), AUTO resize, threads 1. */
video_decode_options video_decode_defaults(void);

/* What the decoder found, filled by video_decoder_open. */
typedef struct {
  int source_width, source_height; /* coded size of the first frame's stream */
  double source_fps;               /* the stream's average (else real base) frame rate; 0 if unknown */
  double duration_s;               /* container's estimate; 0 if unknown */
  int width, height;               /* output frame size */
  double fps;                      /* output rate: the target, or source_fps when keeping the source rate */
  const char *format_name;         /* libavformat's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" */
  const char *codec_name;          /* e.g. "h264" */
} video_info;

typedef struct video_decoder video_decoder;

/* Opens path and its best video stream. opt NULL = video_decode_defaults(). Returns NULL with err
 * when path is missing, a folder, empty (0 bytes), not a media file, has no video stream or no
 * decoder for it. The caller closes what it gets. */
video_decoder *video_decoder_open(const char *path, const video_decode_options *opt, char *err, size_t err_size);

/* The stream and the output geometry (valid until close). */
const video_info *video_decoder_info(const video_decoder *d);

/* Decodes up to the next output frame and writes it as bytes [height, width, 3] (RGB24) into rgb.
 * rgb NULL skips the colour conversion (a frame the caller will not use). Returns 1 with a frame,
 * 0 at the end of the video, -1 with err (a read or decode error names the source frame index). */
int video_decoder_next_rgb24(video_decoder *d, uint8_t *rgb, char *err, size_t err_size);

/* As video_decoder_next_rgb24, but writes floats in [-1, 1] [height, width, 3] (b / 127.5 - 1). */
int video_decoder_next(video_decoder *d, float *frame_hwc, char *err, size_t err_size);

/* Output frames delivered so far; source frames decoded so far; bytes of the file read so far. */
long video_decoder_frames_out(const video_decoder *d);
long video_decoder_frames_decoded(const video_decoder *d);
int64_t video_decoder_bytes_read(const video_decoder *d);

void video_decoder_close(video_decoder *d);

/* ---- clips ---------------------------------------------------------------------------------- */

typedef struct {
  video_decode_options decode; /* size and rate of the frames */
  int frames;                  /* T: frames per clip, >= 1 */
  int stride;                  /* output frames between the starts of consecutive clips; <= 0 = frames
                                  (back to back); < frames overlaps them, > frames leaves gaps */
  long max_clips;              /* stop after this many clips of one file; <= 0 = no limit */
} video_clip_options;

/* Called once per clip: clip_thwc [T, H, W, 3] floats in [-1, 1] (valid only during the call),
 * start_frame its first frame's index at the output rate, source the text "<path>:<start_frame>".
 * Returns 0 to go on, or -1 with err to stop (video_clip_file then returns -1 with that err). */
typedef int (*video_clip_fn)(void *user, const float *clip_thwc, long start_frame, const char *source, char *err,
                             size_t err_size);

/* Cuts path into clips of opt->frames frames starting at output frames 0, stride, 2*stride, ...
 * (a clip that would run past the last frame is not made) and hands each to fn, streaming: memory
 * for one clip plus one frame. Returns the number of clips (>= 1), or -1 with err: any error of the
 * decoder, an empty video ("0 frames"), a video shorter than one clip ("N frames at F fps, a clip
 * needs T"), or fn's error. info, when not NULL, receives the decoder's info (its strings become
 * NULL after return). */
long video_clip_file(const char *path, const video_clip_options *opt, video_clip_fn fn, void *user,
                     video_info *info, char *err, size_t err_size);

#endif
