/* synth.h — synthetic video data sets with a known generative process, generated in memory: moving shapes,
 * and moving Fashion-MNIST garments. Clip i of a set is a pure function of (kind, seed, i) and the spec, so
 * any clip can be made alone, in any order, on any thread (synth_clip only reads the set).
 *
 * The generative process of one clip (every random number is Philox, k_fill_uniform, keyed by the seed and
 * the kind, stream = clip index; object j draws from its own fixed block of 16 numbers, so object j is the
 * same whatever the object count):
 *   - background -1 (black) in every channel;
 *   - `objects` objects; object j has a kind (shapes: square, disc, triangle, cross; fashion: a garment class
 *     0..9 drawn uniformly, then one image of that class drawn uniformly from the IDX file), a size, a colour,
 *     a centre at frame 0 drawn uniformly inside its bounds and a velocity (speed uniform in
 *     [speed_min, speed_max] pixels per frame, direction uniform);
 *   - the centre at frame t is x0 + vx t reflected into [x_lo, x_hi] (likewise y): the object bounces off the
 *     borders and stays entirely inside the frame;
 *   - objects are composited back to front with their coverage (shapes, anti-aliased) or their intensity
 *     (garments, 0..1) as alpha, object 0 last, so the labelled object is never hidden;
 *   - the label is the kind of object 0: its shape (0..3) or its garment class (0..9).
 * Shapes: colour one of 7 saturated colours, size (side or diameter) uniform in [0.25, 0.4] x min(H, W) unless
 * object_size is set; the shape is rendered with exact box-filter coverage (square, cross) or a signed-distance
 * ramp one pixel wide (disc, triangle). Fashion: the 28x28 garment is resampled to S x S by area averaging (S =
 * object_size, default min(28, round(0.625 min(H, W))): 20 for 32x32 clips, 28 for 64x64) and moved with
 * bilinear sub-pixel shifts (both keep the garment's pixel mass); its colour is a light tint drawn per object
 * (white mixed with a random hue, saturation 0..0.5), so garments are gray-ish but the three channels differ.
 * Pixel coordinates: pixel (x, y) covers [x, x+1) x [y, y+1); a centre is in those units. C = 1 renders the
 * luma of the colour. */
#ifndef TPDIFF_SYNTH_H
#define TPDIFF_SYNTH_H

#include <stddef.h>
#include <stdint.h>

typedef enum { SYNTH_SHAPES = 0, SYNTH_FASHION = 1 } synth_kind;
typedef enum { SYNTH_SQUARE = 0, SYNTH_DISC = 1, SYNTH_TRIANGLE = 2, SYNTH_CROSS = 3 } synth_shape;

#define SYNTH_SHAPE_CLASSES 4
#define SYNTH_FASHION_CLASSES 10
#define SYNTH_MAX_OBJECTS 16
#define SYNTH_FASHION_SIDE 28    /* Fashion-MNIST images are 28x28 */
#define SYNTH_MAX_SPRITE_SIDE 64 /* largest garment side after scaling */
/* Where Debian's dataset-fashion-mnist installs the IDX files; $TPDIFF_FASHION_MNIST_DIR overrides it. */
#define SYNTH_FASHION_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

typedef struct {
  int kind;                            /* synth_kind */
  int channels, frames, height, width; /* clip [C, T, H, W]; C is 1 or 3; H, W >= 8 */
  int objects;                         /* objects per clip, 1..SYNTH_MAX_OBJECTS */
  uint64_t seed;
  float object_size;          /* pixels; 0 = default (see above); fashion: rounded to an integer */
  float speed_min, speed_max; /* pixels per frame; both 0 = default [0.02, 0.06] x min(H, W) */
  const char *fashion_dir;    /* folder of the IDX files (.gz or plain); NULL or "" = $TPDIFF_FASHION_MNIST_DIR,
                                 else SYNTH_FASHION_DEFAULT_DIR; copied by synth_open */
  int fashion_test_split;     /* 0 = train (60000 images), 1 = t10k (10000) */
} synth_spec;

/* One object of a clip, as drawn by the generative process (what synth_clip rendered). */
typedef struct {
  int kind;                      /* synth_shape, or the garment class 0..9 */
  long image;                    /* fashion: index of the garment in the IDX file; -1 for shapes */
  float size;                    /* shapes: side / diameter in pixels; fashion: sprite side S in pixels */
  float color[3];                /* the fully covered colour in [-1, 1] (R, G, B) */
  double x0, y0;                 /* centre at frame 0, pixels */
  double vx, vy;                 /* velocity, pixels per frame (before reflections) */
  double x_lo, x_hi, y_lo, y_hi; /* the centre stays inside these bounds */
} synth_object;

typedef struct {
  synth_spec spec;         /* resolved: defaults filled in; fashion_dir NULL (see dir; s may be copied) */
  char dir[1024];          /* the fashion folder actually used */
  uint64_t key;            /* Philox key derived from (seed, kind) */
  long fashion_count;      /* images loaded (0 for shapes) */
  uint8_t *fashion_pixels; /* [fashion_count, 28, 28], owned */
  uint8_t *fashion_labels; /* [fashion_count], owned */
  long *class_images;      /* image indices grouped by class, owned; class c at class_start[c] .. class_start[c+1] */
  long class_start[SYNTH_FASHION_CLASSES + 1];
} synth_set;

/* "shapes" -> SYNTH_SHAPES, "fashion" -> SYNTH_FASHION, anything else -> -1. */
int synth_kind_from_name(const char *name);
/* "shapes" / "fashion" / "unknown". */
const char *synth_kind_name(int kind);

/* Validates spec, fills defaults and, for fashion, loads the IDX images and labels once (about 0.3 s for the
 * train split). Returns 0, or -1 with one line in err naming the field or the file (a missing file names the
 * path expected and the package dataset-fashion-mnist); on failure s holds nothing to free. */
int synth_open(synth_set *s, const synth_spec *spec, char *err, size_t err_size);

/* Renders clip `index` (>= 0) into out[C, T, H, W] (values in [-1, 1]) and its label into *label (may be
 * NULL). Allocation-free and thread-safe. Returns 0, or -1 when index < 0, out is NULL or s is not open. */
int synth_clip(const synth_set *s, long index, float *out, int *label);

/* The objects clip `index` is made of (spec.objects of them, object 0 labelled) into objects[]; what a test or
 * an evaluation needs to know about the generative process. Returns 0, or -1 when index < 0 or s is not open. */
int synth_clip_objects(const synth_set *s, long index, synth_object *objects);

/* Centre of the object at frame t (bounces included), pixels. */
void synth_object_center(const synth_object *o, int t, double *cx, double *cy);

/* Floats in one clip: C * T * H * W. */
size_t synth_clip_floats(const synth_set *s);

/* Number of labels: 4 for shapes, 10 for fashion. */
int synth_num_classes(const synth_set *s);

/* Name of a class: "square", "disc", "triangle", "cross"; "T-shirt/top", "Trouser", ... "Ankle boot". */
const char *synth_class_name(const synth_set *s, int label);

/* The raw 28x28 garment image `image` (row-major bytes, 0 = background) and its class; NULL when the set is
 * not a fashion set or image is out of range. */
const uint8_t *synth_fashion_image(const synth_set *s, long image, int *label);

/* Frees what synth_open loaded and zeroes s; s may be zeroed or already closed. */
void synth_close(synth_set *s);

#endif
