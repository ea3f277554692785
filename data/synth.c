/* synth.c — the synthetic video sets of synth.h: moving shapes and moving Fashion-MNIST garments. */
#include "data/synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "kernels/kernels.h"

/* Each object draws from its own block of this many uniforms; block 0 is reserved for clip-wide draws. */
#define UNIFORMS_PER_OBJECT 16
#define MAX_SIDE 4096
#define MAX_FRAMES 65536

/* Slots inside an object's block of uniforms. */
enum { U_KIND, U_IMAGE, U_SIZE, U_COLOR, U_SATURATION, U_X0, U_Y0, U_SPEED, U_ANGLE };

/* Saturated colours for shapes, RGB in [0, 1]. */
static const float shape_colors[][3] = {
    {0.95f, 0.15f, 0.15f}, /* red */
    {0.15f, 0.85f, 0.20f}, /* green */
    {0.20f, 0.35f, 1.00f}, /* blue */
    {0.95f, 0.90f, 0.15f}, /* yellow */
    {0.15f, 0.85f, 0.90f}, /* cyan */
    {0.90f, 0.20f, 0.90f}, /* magenta */
    {0.95f, 0.95f, 0.95f}, /* white */
};
#define SHAPE_COLOR_COUNT ((int)(sizeof shape_colors / sizeof shape_colors[0]))

static const char *const shape_names[SYNTH_SHAPE_CLASSES] = {"square", "disc", "triangle", "cross"};
static const char *const fashion_names[SYNTH_FASHION_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

int synth_kind_from_name(const char *name) {
  if (!name) return -1;
  if (!strcmp(name, "shapes")) return SYNTH_SHAPES;
  if (!strcmp(name, "fashion")) return SYNTH_FASHION;
  return -1;
}

const char *synth_kind_name(int kind) {
  return kind == SYNTH_SHAPES ? "shapes" : kind == SYNTH_FASHION ? "fashion" : "unknown";
}

int synth_num_classes(const synth_set *s) {
  return s->spec.kind == SYNTH_FASHION ? SYNTH_FASHION_CLASSES : SYNTH_SHAPE_CLASSES;
}

const char *synth_class_name(const synth_set *s, int label) {
  if (label < 0 || label >= synth_num_classes(s)) return "unknown";
  return s->spec.kind == SYNTH_FASHION ? fashion_names[label] : shape_names[label];
}

size_t synth_clip_floats(const synth_set *s) {
  return (size_t)s->spec.channels * s->spec.frames * s->spec.height * s->spec.width;
}

void synth_close(synth_set *s) {
  if (!s) return;
  free(s->fashion_pixels);
  free(s->fashion_labels);
  free(s->class_images);
  memset(s, 0, sizeof *s); /* a closed set has no objects: synth_clip refuses it */
}

const uint8_t *synth_fashion_image(const synth_set *s, long image, int *label) {
  if (s->spec.kind != SYNTH_FASHION || image < 0 || image >= s->fashion_count) return NULL;
  if (label) *label = s->fashion_labels[image];
  return s->fashion_pixels + (size_t)image * SYNTH_FASHION_SIDE * SYNTH_FASHION_SIDE;
}

/* ---- Fashion-MNIST IDX files ------------------------------------------------------------------- */

static uint32_t big_endian_u32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Finds "<dir>/<base>.gz" or "<dir>/<base>" into path. Returns 0, or -1 with err naming the path expected. */
static int find_idx_file(const char *dir, const char *base, char *path, size_t path_size, char *err, size_t err_size) {
  struct stat st;
  snprintf(path, path_size, "%s/%s.gz", dir, base);
  if (stat(path, &st) == 0) return 0;
  snprintf(path, path_size, "%s/%s", dir, base);
  if (stat(path, &st) == 0) return 0;
  snprintf(err, err_size,
           "%s/%s.gz: not found (nor %s without .gz): install the Debian package dataset-fashion-mnist "
           "(scripts/setup.sh) or point TPDIFF_FASHION_MNIST_DIR at a folder holding the IDX files",
           dir, base, base);
  return -1;
}

/* Reads exactly size bytes from f. Returns 0, or -1 with err naming path and what is missing. */
static int read_exactly(gzFile f, const char *path, void *buf, size_t size, const char *what, char *err,
                        size_t err_size) {
  size_t done = 0;
  while (done < size) {
    unsigned chunk = (unsigned)((size - done) > (1u << 30) ? (1u << 30) : (size - done));
    int n = gzread(f, (char *)buf + done, chunk);
    if (n < 0) {
      int code;
      const char *msg = gzerror(f, &code);
      snprintf(err, err_size, "%s: cannot read %s: %s", path, what,
               code == Z_ERRNO ? strerror(errno) : (msg ? msg : "zlib error"));
      return -1;
    }
    if (n == 0) {
      snprintf(err, err_size, "%s: truncated: %s needs %zu bytes, the file ends after %zu", path, what, size, done);
      return -1;
    }
    done += (size_t)n;
  }
  return 0;
}

/* Opens an IDX file (gzipped or plain) and checks its header: magic, count (and 28x28 for images). */
static gzFile open_idx(const char *path, uint32_t magic, int header_bytes, long *count, char *err, size_t err_size) {
  gzFile f = gzopen(path, "rb");
  if (!f) {
    snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno ? errno : ENOMEM));
    return NULL;
  }
  unsigned char header[16];
  if (read_exactly(f, path, header, (size_t)header_bytes, "the IDX header", err, err_size)) {
    gzclose(f);
    return NULL;
  }
  if (big_endian_u32(header) != magic) {
    snprintf(err, err_size, "%s: not an IDX %s file (magic 0x%08x, expected 0x%08x)", path,
             magic == 0x803 ? "image" : "label", big_endian_u32(header), magic);
    gzclose(f);
    return NULL;
  }
  uint32_t n = big_endian_u32(header + 4);
  if (n == 0 || n > 10000000u) {
    snprintf(err, err_size, "%s: implausible item count %u", path, n);
    gzclose(f);
    return NULL;
  }
  if (magic == 0x803 &&
      (big_endian_u32(header + 8) != SYNTH_FASHION_SIDE || big_endian_u32(header + 12) != SYNTH_FASHION_SIDE)) {
    snprintf(err, err_size, "%s: images are %ux%u, expected 28x28", path, big_endian_u32(header + 8),
             big_endian_u32(header + 12));
    gzclose(f);
    return NULL;
  }
  *count = (long)n;
  return f;
}

static int load_fashion(synth_set *s, char *err, size_t err_size) {
  const char *split = s->spec.fashion_test_split ? "t10k" : "train";
  char base[64], images_path[1200], labels_path[1200];
  snprintf(base, sizeof base, "%s-images-idx3-ubyte", split);
  if (find_idx_file(s->dir, base, images_path, sizeof images_path, err, err_size)) return -1;
  snprintf(base, sizeof base, "%s-labels-idx1-ubyte", split);
  if (find_idx_file(s->dir, base, labels_path, sizeof labels_path, err, err_size)) return -1;

  long n_images = 0, n_labels = 0;
  gzFile f = open_idx(images_path, 0x803, 16, &n_images, err, err_size);
  if (!f) return -1;
  size_t image_bytes = (size_t)SYNTH_FASHION_SIDE * SYNTH_FASHION_SIDE;
  s->fashion_pixels = malloc((size_t)n_images * image_bytes);
  if (!s->fashion_pixels) {
    snprintf(err, err_size, "%s: out of memory for %ld images", images_path, n_images);
    gzclose(f);
    return -1;
  }
  int rc = read_exactly(f, images_path, s->fashion_pixels, (size_t)n_images * image_bytes, "the pixels", err, err_size);
  gzclose(f);
  if (rc) return -1;

  f = open_idx(labels_path, 0x801, 8, &n_labels, err, err_size);
  if (!f) return -1;
  if (n_labels != n_images) {
    snprintf(err, err_size, "%s: %ld labels for the %ld images of %s", labels_path, n_labels, n_images, images_path);
    gzclose(f);
    return -1;
  }
  s->fashion_labels = malloc((size_t)n_labels);
  if (!s->fashion_labels) {
    snprintf(err, err_size, "%s: out of memory for %ld labels", labels_path, n_labels);
    gzclose(f);
    return -1;
  }
  rc = read_exactly(f, labels_path, s->fashion_labels, (size_t)n_labels, "the labels", err, err_size);
  gzclose(f);
  if (rc) return -1;

  /* group the image indices by class (counting sort, so the order inside a class is the file order) */
  long counts[SYNTH_FASHION_CLASSES] = {0};
  for (long i = 0; i < n_labels; i++) {
    if (s->fashion_labels[i] >= SYNTH_FASHION_CLASSES) {
      snprintf(err, err_size, "%s: label %d of item %ld is outside 0..9", labels_path, s->fashion_labels[i], i);
      return -1;
    }
    counts[s->fashion_labels[i]]++;
  }
  s->class_start[0] = 0;
  for (int c = 0; c < SYNTH_FASHION_CLASSES; c++) {
    if (counts[c] == 0) {
      snprintf(err, err_size, "%s: no image of class %d (%s)", labels_path, c, fashion_names[c]);
      return -1;
    }
    s->class_start[c + 1] = s->class_start[c] + counts[c];
  }
  s->class_images = malloc(sizeof(long) * (size_t)n_labels);
  if (!s->class_images) {
    snprintf(err, err_size, "%s: out of memory for the class index", labels_path);
    return -1;
  }
  long next[SYNTH_FASHION_CLASSES];
  memcpy(next, s->class_start, sizeof next);
  for (long i = 0; i < n_labels; i++) s->class_images[next[s->fashion_labels[i]]++] = i;
  s->fashion_count = n_images;
  return 0;
}

/* ---- open ------------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

int synth_open(synth_set *s, const synth_spec *spec, char *err, size_t err_size) {
  memset(s, 0, sizeof *s);
  if (!spec) {
    snprintf(err, err_size, "synth: no spec (NULL pointer)");
    return -1;
  }
  synth_spec sp = *spec;
  if (sp.kind != SYNTH_SHAPES && sp.kind != SYNTH_FASHION) {
    snprintf(err, err_size, "synth: kind %d is neither shapes (%d) nor fashion (%d)", sp.kind, SYNTH_SHAPES,
             SYNTH_FASHION);
    return -1;
  }
  if (sp.channels != 1 && sp.channels != 3) {
    snprintf(err, err_size, "synth: channels must be 1 or 3 (got %d)", sp.channels);
    return -1;
  }
  if (sp.frames < 1 || sp.frames > MAX_FRAMES) {
    snprintf(err, err_size, "synth: frames must be in 1..%d (got %d)", MAX_FRAMES, sp.frames);
    return -1;
  }
  if (sp.height < 8 || sp.width < 8 || sp.height > MAX_SIDE || sp.width > MAX_SIDE) {
    snprintf(err, err_size, "synth: height and width must be in 8..%d (got %dx%d)", MAX_SIDE, sp.height, sp.width);
    return -1;
  }
  if (sp.objects < 1 || sp.objects > SYNTH_MAX_OBJECTS) {
    snprintf(err, err_size, "synth: objects must be in 1..%d (got %d)", SYNTH_MAX_OBJECTS, sp.objects);
    return -1;
  }
  int side = sp.height < sp.width ? sp.height : sp.width;
  if (!(sp.speed_min >= 0) || !(sp.speed_max >= sp.speed_min) || !isfinite(sp.speed_max)) {
    snprintf(err, err_size, "synth: speed range [%g, %g] pixels per frame is not 0 <= min <= max", sp.speed_min,
             sp.speed_max);
    return -1;
  }
  if (sp.speed_min == 0 && sp.speed_max == 0) {
    sp.speed_min = 0.02f * side;
    sp.speed_max = 0.06f * side;
  }
  if (!(sp.object_size >= 0) || !isfinite(sp.object_size)) {
    snprintf(err, err_size, "synth: object_size %g is not a size in pixels", sp.object_size);
    return -1;
  }
  if (sp.kind == SYNTH_SHAPES) {
    /* the centre bounces inside [size/2 + 1, side - size/2 - 1] */
    float largest = sp.object_size > 0 ? sp.object_size : 0.4f * side;
    if (sp.object_size > 0 && (sp.object_size < 2 || largest + 2 > side)) {
      snprintf(err, err_size, "synth: object_size %g must be in 2..%d for %dx%d clips (1 pixel margin)", sp.object_size,
               side - 2, sp.height, sp.width);
      return -1;
    }
  } else {
    int size = sp.object_size > 0 ? (int)lroundf(sp.object_size) : (int)lround(0.625 * side);
    if (sp.object_size == 0 && size > SYNTH_FASHION_SIDE) size = SYNTH_FASHION_SIDE;
    if (size < 4 || size > SYNTH_MAX_SPRITE_SIDE || size + 1 > side) {
      snprintf(err, err_size, "synth: garment size %d must be in 4..%d and leave a pixel in %dx%d clips", size,
               SYNTH_MAX_SPRITE_SIDE, sp.height, sp.width);
      return -1;
    }
    sp.object_size = (float)size;
    const char *dir = (sp.fashion_dir && sp.fashion_dir[0]) ? sp.fashion_dir : getenv("TPDIFF_FASHION_MNIST_DIR");
    if (!dir || !dir[0]) dir = SYNTH_FASHION_DEFAULT_DIR;
    if (snprintf(s->dir, sizeof s->dir, "%s", dir) >= (int)sizeof s->dir) {
      snprintf(err, err_size, "synth: fashion folder path is too long (%zu bytes)", strlen(dir));
      return -1;
    }
  }
  sp.fashion_dir = NULL; /* the caller's string need not outlive the set; s->dir holds the folder used */
  sp.fashion_test_split = sp.fashion_test_split ? 1 : 0;
  s->spec = sp;
  s->key = splitmix64(sp.seed ^ splitmix64(0x73796E7468ull /* "synth" */ + (uint64_t)sp.kind));
  if (sp.kind == SYNTH_FASHION && load_fashion(s, err, err_size)) {
    synth_close(s);
    return -1;
  }
  return 0;
}

/* ---- the generative process ------------------------------------------------------------------- */

static int pick(float u, int n) {
  int i = (int)((double)u * n);
  return i < n ? i : n - 1;
}

/* Hue in [0, 1) -> fully saturated RGB in [0, 1]. */
static void hue_to_rgb(float hue, float rgb[3]) {
  float h = hue * 6.0f;
  int sector = (int)h % 6;
  float f = h - floorf(h);
  float table[6][3] = {{1, f, 0}, {1 - f, 1, 0}, {0, 1, f}, {0, 1 - f, 1}, {f, 0, 1}, {1, 0, 1 - f}};
  memcpy(rgb, table[sector], sizeof table[0]);
}

int synth_clip_objects(const synth_set *s, long index, synth_object *objects) {
  if (index < 0 || !objects || s->spec.objects < 1) return -1;
  const synth_spec *sp = &s->spec;
  float u[UNIFORMS_PER_OBJECT * (SYNTH_MAX_OBJECTS + 1)];
  k_fill_uniform(u, (size_t)UNIFORMS_PER_OBJECT * (sp->objects + 1), s->key, (uint64_t)index, 0);
  int side = sp->height < sp->width ? sp->height : sp->width;
  for (int j = 0; j < sp->objects; j++) {
    const float *uj = u + UNIFORMS_PER_OBJECT * (j + 1);
    synth_object *o = &objects[j];
    memset(o, 0, sizeof *o);
    float rgb[3];
    double half_lo, half_hi; /* distance from the centre to the low / high bound */
    if (sp->kind == SYNTH_SHAPES) {
      o->kind = pick(uj[U_KIND], SYNTH_SHAPE_CLASSES);
      o->image = -1;
      o->size = sp->object_size > 0 ? sp->object_size : (0.25f + 0.15f * uj[U_SIZE]) * (float)side;
      memcpy(rgb, shape_colors[pick(uj[U_COLOR], SHAPE_COLOR_COUNT)], sizeof rgb);
      half_lo = half_hi = o->size / 2.0 + 1.0; /* one pixel from the border: the anti-aliased edge fits */
    } else {
      o->kind = pick(uj[U_KIND], SYNTH_FASHION_CLASSES);
      long first = s->class_start[o->kind], n = s->class_start[o->kind + 1] - first;
      long within = (long)((double)uj[U_IMAGE] * n);
      o->image = s->class_images[first + (within < n ? within : n - 1)];
      o->size = sp->object_size;
      float hue[3], saturation = 0.5f * uj[U_SATURATION];
      hue_to_rgb(uj[U_COLOR], hue);
      for (int c = 0; c < 3; c++) rgb[c] = 1.0f - saturation * (1.0f - hue[c]);
      /* the bilinear shift spreads the S x S sprite over S + 1 pixels from floor(left) */
      half_lo = o->size / 2.0;
      half_hi = o->size / 2.0 + 1.0;
    }
    for (int c = 0; c < 3; c++) o->color[c] = 2.0f * rgb[c] - 1.0f;
    o->x_lo = half_lo;
    o->x_hi = sp->width - half_hi;
    o->y_lo = half_lo;
    o->y_hi = sp->height - half_hi;
    o->x0 = o->x_lo + uj[U_X0] * (o->x_hi - o->x_lo);
    o->y0 = o->y_lo + uj[U_Y0] * (o->y_hi - o->y_lo);
    double speed = sp->speed_min + (double)uj[U_SPEED] * (sp->speed_max - sp->speed_min);
    double angle = 6.283185307179586 * uj[U_ANGLE];
    o->vx = speed * cos(angle);
    o->vy = speed * sin(angle);
  }
  return 0;
}

/* p reflected into [lo, hi] (a triangle wave of period 2 (hi - lo)). */
static double reflect(double p, double lo, double hi) {
  double len = hi - lo;
  if (len <= 0) return lo;
  double q = fmod(p - lo, 2 * len);
  if (q < 0) q += 2 * len;
  return lo + (q <= len ? q : 2 * len - q);
}

void synth_object_center(const synth_object *o, int t, double *cx, double *cy) {
  *cx = reflect(o->x0 + o->vx * t, o->x_lo, o->x_hi);
  *cy = reflect(o->y0 + o->vy * t, o->y_lo, o->y_hi);
}

/* ---- rendering -------------------------------------------------------------------------------- */

/* Length of [d - 1/2, d + 1/2] inside [-r, r]: the exact box-filter coverage of an interval. */
static float box1d(float d, float r) {
  if (d - 0.5f >= -r && d + 0.5f <= r) return 1.0f; /* exactly 1 inside, not (d + 0.5) - (d - 0.5) rounded */
  float lo = d - 0.5f > -r ? d - 0.5f : -r, hi = d + 0.5f < r ? d + 0.5f : r;
  return hi > lo ? hi - lo : 0.0f;
}

static float clamp01(float x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

/* Signed distance (pixels, negative inside) from (dx, dy) to a disc or a triangle of half-size r. The
 * triangle points up, (0, -r), (-r, r), (r, r); its value is the largest distance to the three edge lines:
 * exact inside, an underestimate outside near the corners, and zero exactly on the outline. */
static float shape_distance(int kind, float dx, float dy, float r) {
  if (kind == SYNTH_DISC) return sqrtf(dx * dx + dy * dy) - r;
  const float inv_sqrt5 = 0.4472135955f;
  float bottom = dy - r, left = (-2.0f * dx - (dy + r)) * inv_sqrt5, right = (2.0f * dx - (dy + r)) * inv_sqrt5;
  float d = bottom > left ? bottom : left;
  return d > right ? d : right;
}

/* Coverage in [0, 1] of the pixel whose centre is (dx, dy) from the shape's centre; r = size / 2.
 * Square and cross: exact area (products of 1-D box overlaps). Disc and triangle: a pixel farther than 0.75 from
 * the outline is fully in or out (its corners are within 0.71 of its centre); an edge pixel averages 4 x 4
 * sub-pixels, each a distance ramp a quarter pixel wide. Rendered areas then stay within about 0.5% of the
 * true area wherever the shape sits, so the mass of a moving shape is nearly constant. */
static float shape_coverage(int kind, float dx, float dy, float r) {
  switch (kind) {
    case SYNTH_SQUARE:
      return box1d(dx, r) * box1d(dy, r);
    case SYNTH_CROSS: { /* two bars of half-width 0.4 r: union = A + B - their central square */
      float a = 0.4f * r, wx = box1d(dx, r), wy = box1d(dy, r), nx = box1d(dx, a), ny = box1d(dy, a);
      return wx * ny + nx * wy - nx * ny;
    }
    default: {
      float d = shape_distance(kind, dx, dy, r);
      if (d <= -0.75f) return 1.0f;
      if (d >= 0.75f) return 0.0f;
      float sum = 0;
      for (int sy = 0; sy < 4; sy++)
        for (int sx = 0; sx < 4; sx++)
          sum += clamp01(0.5f - 4.0f * shape_distance(kind, dx + (sx - 1.5f) * 0.25f, dy + (sy - 1.5f) * 0.25f, r));
      return sum * (1.0f / 16.0f);
    }
  }
}

/* Blends colour into the pixel (x, y) of frame t of every channel with alpha a. */
static inline void blend(float *out, const synth_spec *sp, int t, int x, int y, const float color[3], float luma,
                         float a) {
  size_t plane = (size_t)sp->height * sp->width, at = (size_t)y * sp->width + x;
  for (int c = 0; c < sp->channels; c++) {
    float *p = out + ((size_t)c * sp->frames + t) * plane + at;
    float col = sp->channels == 1 ? luma : color[c];
    float v = *p * (1.0f - a) + col * a;
    *p = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v; /* rounding can step a hair outside [-1, 1] */
  }
}

static void draw_shape(float *out, const synth_spec *sp, const synth_object *o, int t, float luma) {
  double cx, cy;
  synth_object_center(o, t, &cx, &cy);
  float r = o->size / 2.0f;
  int x_from = (int)floor(cx - r - 2), x_to = (int)ceil(cx + r + 2);
  int y_from = (int)floor(cy - r - 2), y_to = (int)ceil(cy + r + 2);
  if (x_from < 0) x_from = 0;
  if (y_from < 0) y_from = 0;
  if (x_to > sp->width - 1) x_to = sp->width - 1;
  if (y_to > sp->height - 1) y_to = sp->height - 1;
  for (int y = y_from; y <= y_to; y++)
    for (int x = x_from; x <= x_to; x++) {
      float a = shape_coverage(o->kind, (float)(x + 0.5 - cx), (float)(y + 0.5 - cy), r);
      if (a > 0) blend(out, sp, t, x, y, o->color, luma, a);
    }
}

/* The 28x28 garment resampled to S x S by area averaging, as alpha in [0, 1]: output pixel i covers source
 * [i * 28/S, (i+1) * 28/S); separable, weights[i][k] = overlap with source pixel k / (28/S). */
static void make_sprite(float *sprite, int S, const uint8_t *image) {
  float weights[SYNTH_MAX_SPRITE_SIDE][SYNTH_FASHION_SIDE];
  float rows[SYNTH_MAX_SPRITE_SIDE][SYNTH_FASHION_SIDE]; /* weights x image */
  double step = (double)SYNTH_FASHION_SIDE / S;
  for (int i = 0; i < S; i++)
    for (int k = 0; k < SYNTH_FASHION_SIDE; k++) {
      double lo = fmax(i * step, k), hi = fmin((i + 1) * step, k + 1.0);
      weights[i][k] = hi > lo ? (float)((hi - lo) / step) : 0.0f;
    }
  for (int i = 0; i < S; i++)
    for (int l = 0; l < SYNTH_FASHION_SIDE; l++) {
      float acc = 0;
      for (int k = 0; k < SYNTH_FASHION_SIDE; k++) acc += weights[i][k] * image[k * SYNTH_FASHION_SIDE + l];
      rows[i][l] = acc;
    }
  for (int i = 0; i < S; i++)
    for (int j = 0; j < S; j++) {
      float acc = 0;
      for (int l = 0; l < SYNTH_FASHION_SIDE; l++) acc += rows[i][l] * weights[j][l];
      sprite[i * S + j] = acc * (1.0f / 255.0f);
    }
}

static inline float sprite_at(const float *sprite, int S, int row, int col) {
  return (row < 0 || col < 0 || row >= S || col >= S) ? 0.0f : sprite[row * S + col];
}

/* Places the S x S sprite with its centre at the object's centre, sub-pixel by bilinear interpolation: output
 * pixel x samples sprite coordinate x - left (left = cx - S/2), so each sprite pixel splits between two output
 * pixels and the mass is kept. */
static void draw_garment(float *out, const synth_spec *sp, const synth_object *o, int t, float luma,
                         const float *sprite) {
  int S = (int)o->size;
  double cx, cy;
  synth_object_center(o, t, &cx, &cy);
  double left = cx - S / 2.0, top = cy - S / 2.0;
  int x_from = (int)floor(left), y_from = (int)floor(top);
  for (int y = y_from; y <= y_from + S; y++) {
    if (y < 0 || y >= sp->height) continue;
    double v = y - top;
    int r0 = (int)floor(v);
    float fy = (float)(v - r0);
    for (int x = x_from; x <= x_from + S; x++) {
      if (x < 0 || x >= sp->width) continue;
      double u = x - left;
      int c0 = (int)floor(u);
      float fx = (float)(u - c0);
      float a = (1 - fy) * ((1 - fx) * sprite_at(sprite, S, r0, c0) + fx * sprite_at(sprite, S, r0, c0 + 1)) +
                fy * ((1 - fx) * sprite_at(sprite, S, r0 + 1, c0) + fx * sprite_at(sprite, S, r0 + 1, c0 + 1));
      if (a > 0) blend(out, sp, t, x, y, o->color, luma, a > 1 ? 1 : a);
    }
  }
}

int synth_clip(const synth_set *s, long index, float *out, int *label) {
  if (index < 0 || !out || s->spec.objects < 1) return -1;
  const synth_spec *sp = &s->spec;
  synth_object objects[SYNTH_MAX_OBJECTS];
  if (synth_clip_objects(s, index, objects)) return -1;
  size_t n = synth_clip_floats(s);
  for (size_t i = 0; i < n; i++) out[i] = -1.0f;
  float sprite[SYNTH_MAX_SPRITE_SIDE * SYNTH_MAX_SPRITE_SIDE];
  for (int j = sp->objects - 1; j >= 0; j--) { /* back to front: object 0 (the label) on top */
    const synth_object *o = &objects[j];
    float luma = 0.299f * o->color[0] + 0.587f * o->color[1] + 0.114f * o->color[2];
    if (sp->kind == SYNTH_FASHION) {
      make_sprite(sprite, (int)o->size, synth_fashion_image(s, o->image, NULL));
      for (int t = 0; t < sp->frames; t++) draw_garment(out, sp, o, t, luma, sprite);
    } else {
      for (int t = 0; t < sp->frames; t++) draw_shape(out, sp, o, t, luma);
    }
  }
  if (label) *label = objects[0].kind;
  return 0;
}
