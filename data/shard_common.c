/* shard_common.c — what the shard writer, reader and data-set opener share: HDF5 errors as one line,
 * IEEE half floats, dtype names, layout checks and the read-only open with clear errors. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "data/shard_internal.h"

void shard_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

typedef struct {
  char innermost[256];
  int checksum;
} h5_error_walk;

/* Walked upward: n == 0 is the most specific error (where HDF5 first noticed the problem). */
static herr_t collect_error(unsigned n, const H5E_error2_t *e, void *data) {
  h5_error_walk *w = data;
  const char *desc = e->desc ? e->desc : "";
  if (n == 0) snprintf(w->innermost, sizeof w->innermost, "%s", desc);
  if (strstr(desc, "Fletcher32") || strstr(desc, "checksum")) w->checksum = 1;
  return 0;
}

int shard_h5_error(char *err, size_t err_size, const char *prefix) {
  h5_error_walk w = {"", 0};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_error, &w);
  H5Eclear2(H5E_DEFAULT);
  /* HDF5's low-level I/O messages go on with time, file name, descriptor and buffer address: the
   * prefix names the file already, so keep only the reason. */
  char *noise = strstr(w.innermost, ": time = ");
  if (noise) *noise = '\0';
  for (char *p = w.innermost; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  if (w.innermost[0])
    snprintf(err, err_size, "%s (HDF5: %s)", prefix, w.innermost);
  else
    snprintf(err, err_size, "%s", prefix);
  return w.checksum;
}

hid_t shard_f16_type(void) {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  if (t < 0) return -1;
  if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

uint16_t shard_f32_to_f16(float v) {
  uint32_t x;
  memcpy(&x, &v, sizeof x);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u)); /* inf, NaN */
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
  if (ax < 0x38800000u) {                                   /* below 2^-14: a half subnormal (or zero) */
    float a;
    memcpy(&a, &ax, sizeof a);
    /* units of 2^-24; rint rounds to nearest even; 0x400 is the smallest normal, encoded the same */
    return (uint16_t)(sign | (uint16_t)rintf(a * 16777216.0f));
  }
  uint32_t mant = ax & 0x7fffffu, exp = (ax >> 23) - 127 + 15;
  uint32_t h = (exp << 10) | (mant >> 13), rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* a carry moves into the exponent: correct */
  return (uint16_t)(sign | h);
}

float shard_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, x;
  if (exp == 0) {
    float v = ldexpf((float)mant, -24);
    return sign ? -v : v;
  }
  if (exp == 31)
    x = sign | 0x7f800000u | (mant << 13);
  else
    x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  float v;
  memcpy(&v, &x, sizeof v);
  return v;
}

const char *shard_dtype_name(shard_dtype d) {
  return d == SHARD_UINT8 ? "uint8" : d == SHARD_FLOAT16 ? "float16" : d == SHARD_FLOAT32 ? "float32" : "?";
}

int shard_dtype_from_name(const char *name) {
  if (!strcmp(name, "uint8")) return SHARD_UINT8;
  if (!strcmp(name, "float16")) return SHARD_FLOAT16;
  if (!strcmp(name, "float32")) return SHARD_FLOAT32;
  return -1;
}

size_t shard_dtype_bytes(shard_dtype d) { return d == SHARD_UINT8 ? 1 : d == SHARD_FLOAT16 ? 2 : 4; }

size_t shard_clip_bytes(const shard_layout *l, int level) {
  if (!l || level < 0 || level >= l->levels || level >= SHARD_MAX_LEVELS) return 0;
  return (size_t)(l->frames >> level) * (size_t)l->height * (size_t)l->width * (size_t)l->channels *
         shard_dtype_bytes(l->dtype);
}

void shard_h5_type_name(hid_t type, char *out, size_t out_size) {
  H5T_class_t cls = H5Tget_class(type);
  size_t bytes = H5Tget_size(type);
  switch (cls) {
    case H5T_INTEGER:
      snprintf(out, out_size, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bytes * 8);
      break;
    case H5T_FLOAT:
      snprintf(out, out_size, "float%zu", bytes * 8);
      break;
    case H5T_STRING:
      snprintf(out, out_size, "string");
      break;
    case H5T_COMPOUND:
      snprintf(out, out_size, "compound");
      break;
    case H5T_ENUM:
      snprintf(out, out_size, "enum");
      break;
    case H5T_VLEN:
      snprintf(out, out_size, "variable-length sequence");
      break;
    case H5T_ARRAY:
      snprintf(out, out_size, "array");
      break;
    default:
      snprintf(out, out_size, "HDF5 type class %d of %zu bytes", (int)cls, bytes);
  }
}

int shard_dtype_of_h5(hid_t type) {
  H5T_class_t cls = H5Tget_class(type);
  size_t bytes = H5Tget_size(type);
  if (cls == H5T_INTEGER && bytes == 1 && H5Tget_sign(type) == H5T_SGN_NONE) return SHARD_UINT8;
  if (cls != H5T_FLOAT) return -1;
  size_t spos, epos, esize, mpos, msize;
  if (H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) < 0) return -1;
  size_t ebias = H5Tget_ebias(type);
  if (bytes == 2 && spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 && ebias == 15)
    return SHARD_FLOAT16;
  if (bytes == 4 && spos == 31 && epos == 23 && esize == 8 && mpos == 0 && msize == 23 && ebias == 127)
    return SHARD_FLOAT32;
  return -1;
}

int shard_layout_check(const shard_layout *l, const char *name, char *err, size_t err_size) {
  if (!l) {
    snprintf(err, err_size, "%s: no layout given", name);
    return -1;
  }
  if (l->frames < 1 || l->height < 1 || l->width < 1 || l->channels < 1) {
    snprintf(err, err_size, "%s: clip shape [T=%d, H=%d, W=%d, C=%d] has an empty dimension", name, l->frames,
             l->height, l->width, l->channels);
    return -1;
  }
  if (l->levels < 1 || l->levels > SHARD_MAX_LEVELS) {
    snprintf(err, err_size, "%s: levels %d is outside 1..%d", name, l->levels, SHARD_MAX_LEVELS);
    return -1;
  }
  if (l->frames % (1 << (l->levels - 1)) != 0) {
    snprintf(err, err_size, "%s: frames %d is not divisible by 2^(levels-1) = %d", name, l->frames,
             1 << (l->levels - 1));
    return -1;
  }
  if ((double)l->frames * l->height * l->width * l->channels > (double)SHARD_MAX_CLIP_ELEMENTS) {
    snprintf(err, err_size, "%s: a clip of %dx%dx%dx%d values is larger than %lu", name, l->frames, l->height, l->width,
             l->channels, SHARD_MAX_CLIP_ELEMENTS);
    return -1;
  }
  if (l->dtype != SHARD_UINT8 && l->dtype != SHARD_FLOAT16 && l->dtype != SHARD_FLOAT32) {
    snprintf(err, err_size, "%s: dtype %d is not uint8, float16 or float32", name, (int)l->dtype);
    return -1;
  }
  if (!isfinite(l->scale) || l->scale == 0 || !isfinite(l->shift) || !isfinite(l->fps) || l->fps < 0) {
    snprintf(err, err_size, "%s: scale %g, shift %g, fps %g: expected finite values, scale != 0, fps >= 0", name,
             l->scale, l->shift, l->fps);
    return -1;
  }
  return 0;
}

hid_t shard_h5_open_readonly(const char *path, char *err, size_t err_size) {
  shard_h5_quiet();
  if (access(path, R_OK) != 0) {
    snprintf(err, err_size, "%s: cannot read: %s", path, strerror(errno));
    return -1;
  }
  htri_t is = H5Fis_hdf5(path);
  if (is == 0) {
    H5Eclear2(H5E_DEFAULT);
    snprintf(err, err_size, "%s: not an HDF5 file (expected a tpdiff shard)", path);
    return -1;
  }
  char prefix[SHARD_PATH_BYTES + 64];
  if (is < 0) {
    snprintf(prefix, sizeof prefix, "%s: cannot open as HDF5 (damaged or not HDF5)", path);
    shard_h5_error(err, err_size, prefix);
    return -1;
  }
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0) H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
  if (f < 0) {
    snprintf(prefix, sizeof prefix, "%s: cannot open as HDF5 (truncated or damaged file)", path);
    shard_h5_error(err, err_size, prefix);
  }
  if (fapl >= 0) H5Pclose(fapl);
  return f;
}
