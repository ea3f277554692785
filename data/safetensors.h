/* safetensors.h — the safetensors format (huggingface/safetensors): an 8-byte little-endian header
 * length N, N bytes of JSON {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets":
 * [begin, end]}, ...}, then the tensors' raw little-endian bytes; offsets are relative to the end of
 * the header. tpdiff writes F32 or BF16 tensors in the given order with contiguous offsets and reads
 * F32 and BF16 (BF16 widened to fp32). Every read is bounds-checked: the reader refuses a header
 * length past the end of the file, malformed JSON, unknown dtypes, shapes whose size disagrees with
 * the offsets, offsets out of range, overlapping or leaving holes, and duplicate names. */
#ifndef TPDIFF_SAFETENSORS_H
#define TPDIFF_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ST_MAX_DIMS 8
#define ST_NAME_MAX 256
/* The reference implementation refuses headers above 100 MB; so do we, before allocating. */
#define ST_HEADER_MAX ((uint64_t)100 * 1000 * 1000)

typedef enum { ST_F32, ST_BF16 } st_dtype;

/* "F32" / "BF16". */
const char *st_dtype_name(st_dtype d);

/* fp32 -> bf16 with round-to-nearest-even; NaN stays NaN (quiet, sign kept), +-inf stays inf. */
uint16_t st_f32_to_bf16(float x);
/* bf16 -> fp32 (exact). */
float st_bf16_to_f32(uint16_t h);

/* One tensor to write: name, shape, and numel fp32 values (host memory, C order). */
typedef struct {
  const char *name;
  int ndim;
  const size_t *shape;
  const float *data;
} st_tensor_out;

/* Writes tensors[0..count) in that order as dtype, with metadata pairs keys[i] -> values[i]
 * (nmeta of them, written as "__metadata__"), to path through a temporary name, fsync and rename.
 * The header is padded with spaces to a multiple of 8 bytes, as the reference writer does, so the
 * data that follows is aligned. Returns 0, or -1 with one line in err naming the file. */
int st_write(const char *path, const st_tensor_out *tensors, int count, st_dtype dtype, const char *const *keys,
             const char *const *values, int nmeta, char *err, size_t err_size);

/* One tensor of an opened file. */
typedef struct {
  char name[ST_NAME_MAX];
  st_dtype dtype;
  int ndim;
  size_t shape[ST_MAX_DIMS];
  size_t numel;
  uint64_t begin, end; /* byte offsets into the data area */
} st_entry;

/* An opened, validated file; the tensors are read on demand with st_read. */
typedef struct {
  char path[1024];
  FILE *f;
  uint64_t file_bytes, data_start; /* data_start = 8 + header length */
  st_entry *entries;               /* in the header's order */
  int count;
  char **meta_keys, **meta_values; /* "__metadata__" (may be empty) */
  int meta_count;
} st_file;

/* Opens and validates path (see the top of this file). Returns 0, or -1 with one line in err that
 * names the file and the reason (and the tensor, where one is at fault). st_close is safe either way. */
int st_open(st_file *sf, const char *path, char *err, size_t err_size);
void st_close(st_file *sf);

/* The entry called name, or NULL. */
const st_entry *st_find(const st_file *sf, const char *name);
/* The metadata value for key, or NULL. */
const char *st_meta(const st_file *sf, const char *key);

/* Reads entry e's values as fp32 into out[e->numel]. 0, or -1 with one line in err (a short read:
 * the file changed since st_open). */
int st_read(st_file *sf, const st_entry *e, float *out, char *err, size_t err_size);

#endif
