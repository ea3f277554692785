/* safetensors.c — safetensors writer and validating reader (F32, BF16). */
#include "data/safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/atomic_file.h"
#include "data/json_reader.h"

const char *st_dtype_name(st_dtype d) { return d == ST_BF16 ? "BF16" : "F32"; }
static size_t dtype_bytes(st_dtype d) { return d == ST_BF16 ? 2 : 4; }

uint16_t st_f32_to_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  /* NaN: truncation could clear every mantissa bit and make it an infinity; force a quiet bit */
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu)) return (uint16_t)((u >> 16) | 0x0040u);
  /* round to nearest, ties to even: add 0x7FFF plus the lowest kept bit, then truncate; a carry into
   * the exponent is the correct rounding (up to the next binade, or to infinity past the largest) */
  u += 0x7FFFu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

float st_bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float x;
  memcpy(&x, &u, 4);
  return x;
}

/* ---- writer ---------------------------------------------------------------------------------- */

typedef struct {
  char *buf;
  size_t len, cap;
  int failed;
} text_buf;

static void tb_put(text_buf *t, const char *s, size_t n) {
  if (t->failed) return;
  if (t->len + n + 1 > t->cap) {
    size_t cap = t->cap ? t->cap : 4096;
    while (t->len + n + 1 > cap) cap *= 2;
    char *b = realloc(t->buf, cap);
    if (!b) {
      t->failed = 1;
      return;
    }
    t->buf = b;
    t->cap = cap;
  }
  memcpy(t->buf + t->len, s, n);
  t->len += n;
  t->buf[t->len] = '\0';
}

static void tb_printf(text_buf *t, const char *fmt, ...) {
  char small[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof small) {
    t->failed = 1;
    return;
  }
  tb_put(t, small, (size_t)n);
}

/* A JSON string: quotes, backslashes and control bytes escaped; other bytes as they are (UTF-8). */
static void tb_json_string(text_buf *t, const char *s) {
  tb_put(t, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      tb_put(t, e, 2);
    } else if (c == '\n') {
      tb_put(t, "\\n", 2);
    } else if (c < 0x20) {
      tb_printf(t, "\\u%04x", c);
    } else {
      tb_put(t, (const char *)&c, 1);
    }
  }
  tb_put(t, "\"", 1);
}

static size_t numel_of(const st_tensor_out *t) {
  size_t n = 1;
  for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
  return n;
}

/* The tensor's values in dtype, little-endian, written in chunks (no copy of the whole model). */
static void write_values(FILE *f, const float *x, size_t n, st_dtype dtype) {
  unsigned char chunk[1 << 16];
  size_t per = sizeof chunk / dtype_bytes(dtype);
  for (size_t at = 0; at < n; at += per) {
    size_t m = n - at < per ? n - at : per, bytes = 0;
    for (size_t i = 0; i < m; i++) {
      if (dtype == ST_BF16) {
        uint16_t h = st_f32_to_bf16(x[at + i]);
        chunk[bytes++] = (unsigned char)(h & 0xFF);
        chunk[bytes++] = (unsigned char)(h >> 8);
      } else {
        uint32_t u;
        memcpy(&u, &x[at + i], 4);
        for (int b = 0; b < 4; b++) chunk[bytes++] = (unsigned char)(u >> (8 * b));
      }
    }
    if (fwrite(chunk, 1, bytes, f) != bytes) return; /* the stream's error flag fails the commit */
  }
}

int st_write(const char *path, const st_tensor_out *tensors, int count, st_dtype dtype, const char *const *keys,
             const char *const *values, int nmeta, char *err, size_t err_size) {
  text_buf h = {0};
  tb_put(&h, "{", 1);
  if (nmeta > 0) {
    tb_put(&h, "\"__metadata__\":{", 16);
    for (int i = 0; i < nmeta; i++) {
      if (i) tb_put(&h, ",", 1);
      tb_json_string(&h, keys[i]);
      tb_put(&h, ":", 1);
      tb_json_string(&h, values[i]);
    }
    tb_put(&h, "}", 1);
  }
  uint64_t offset = 0;
  for (int i = 0; i < count; i++) {
    const st_tensor_out *t = &tensors[i];
    if (t->ndim < 0 || t->ndim > ST_MAX_DIMS || strlen(t->name) >= ST_NAME_MAX || t->name[0] == '\0') {
      snprintf(err, err_size, "%s: tensor %d ('%.100s'): bad name or rank %d", path, i, t->name, t->ndim);
      free(h.buf);
      return -1;
    }
    uint64_t bytes = (uint64_t)numel_of(t) * dtype_bytes(dtype);
    if (nmeta > 0 || i) tb_put(&h, ",", 1);
    tb_json_string(&h, t->name);
    tb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(dtype));
    for (int d = 0; d < t->ndim; d++) tb_printf(&h, "%s%zu", d ? "," : "", t->shape[d]);
    tb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset, (unsigned long long)(offset + bytes));
    offset += bytes;
  }
  tb_put(&h, "}", 1);
  while (!h.failed && h.len % 8) tb_put(&h, " ", 1);
  if (h.failed) {
    snprintf(err, err_size, "%s: out of memory for the header", path);
    free(h.buf);
    return -1;
  }
  atomic_file af;
  if (atomic_file_open(&af, path, err, err_size) != 0) {
    free(h.buf);
    return -1;
  }
  unsigned char len8[8];
  for (int b = 0; b < 8; b++) len8[b] = (unsigned char)((uint64_t)h.len >> (8 * b));
  if (fwrite(len8, 1, 8, af.f) == 8 && fwrite(h.buf, 1, h.len, af.f) == h.len)
    for (int i = 0; i < count && !ferror(af.f); i++) write_values(af.f, tensors[i].data, numel_of(&tensors[i]), dtype);
  free(h.buf);
  return atomic_file_commit(&af, err, err_size);
}

/* ---- reader ---------------------------------------------------------------------------------- */

static int st_fail(const st_file *sf, char *err, size_t err_size, const char *fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(err, err_size, "%s: %s", sf->path, what);
  return -1;
}

/* A name for a message: printable ASCII kept, anything else as '?', cut to fit. */
static const char *shown(const char *s, size_t len, char *buf, size_t size) {
  size_t n = 0;
  for (size_t i = 0; i < len && n + 4 < size; i++) buf[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
  if (len > n && n + 4 <= size) memcpy(buf + n, "...", 3), n += 3;
  buf[n] = '\0';
  return buf;
}

static const char *const KNOWN_DTYPES[] = {"F64", "F16", "F8_E4M3", "F8_E5M2", "I64", "I32",  "I16",
                                           "I8",  "U64", "U32",     "U16",     "U8",  "BOOL", NULL};

static int parse_entry(st_file *sf, const json_doc *doc, size_t key, size_t val, st_entry *e, uint64_t data_bytes,
                       char *err, size_t err_size) {
  const json_node *k = &doc->nodes[key], *v = &doc->nodes[val];
  char name[96];
  shown(k->text, k->len, name, sizeof name);
  if (k->len == 0 || k->len >= ST_NAME_MAX || strlen(k->text) != k->len)
    return st_fail(sf, err, err_size, "tensor name '%s': empty, longer than %d bytes or holding a NUL", name,
                   ST_NAME_MAX - 1);
  memcpy(e->name, k->text, k->len + 1);
  if (v->type != JSON_OBJECT)
    return st_fail(sf, err, err_size, "tensor '%s': expected an object {dtype, shape, data_offsets}", name);
  size_t dt = json_object_get(doc, val, "dtype"), sh = json_object_get(doc, val, "shape"),
         of = json_object_get(doc, val, "data_offsets");
  if (dt == (size_t)-1 || sh == (size_t)-1 || of == (size_t)-1 || v->count != 6)
    return st_fail(sf, err, err_size, "tensor '%s': expected exactly the keys dtype, shape and data_offsets", name);
  const json_node *d = &doc->nodes[dt];
  if (d->type != JSON_STRING) return st_fail(sf, err, err_size, "tensor '%s': dtype is not a string", name);
  if (strcmp(d->text, "F32") == 0) {
    e->dtype = ST_F32;
  } else if (strcmp(d->text, "BF16") == 0) {
    e->dtype = ST_BF16;
  } else {
    char dname[40];
    int known = 0;
    for (int i = 0; KNOWN_DTYPES[i]; i++) known |= strcmp(d->text, KNOWN_DTYPES[i]) == 0;
    return st_fail(sf, err, err_size, "tensor '%s': dtype %s%s; tpdiff reads F32 and BF16", name,
                   shown(d->text, d->len, dname, sizeof dname),
                   known ? " is not supported" : " is not a safetensors dtype");
  }
  const json_node *s = &doc->nodes[sh];
  if (s->type != JSON_ARRAY || s->count > ST_MAX_DIMS)
    return st_fail(sf, err, err_size, "tensor '%s': shape must be an array of at most %d integers", name, ST_MAX_DIMS);
  e->ndim = (int)s->count;
  uint64_t numel = 1;
  size_t c = s->first;
  for (int i = 0; i < e->ndim; i++, c = json_next(doc, c)) {
    uint64_t dim;
    if (json_as_u64(&doc->nodes[c], &dim) != 0 || dim > SIZE_MAX)
      return st_fail(sf, err, err_size, "tensor '%s': shape[%d] is not a non-negative integer", name, i);
    e->shape[i] = (size_t)dim;
    if (dim && numel > UINT64_MAX / 4 / dim) return st_fail(sf, err, err_size, "tensor '%s': shape too large", name);
    numel *= dim;
  }
  e->numel = (size_t)numel;
  const json_node *o = &doc->nodes[of];
  uint64_t begin, end;
  if (o->type != JSON_ARRAY || o->count != 2 || json_as_u64(&doc->nodes[o->first], &begin) != 0 ||
      json_as_u64(&doc->nodes[json_next(doc, o->first)], &end) != 0)
    return st_fail(sf, err, err_size, "tensor '%s': data_offsets must be two non-negative integers", name);
  if (begin > end)
    return st_fail(sf, err, err_size, "tensor '%s': data_offsets [%llu, %llu] end before they begin", name,
                   (unsigned long long)begin, (unsigned long long)end);
  if (end > data_bytes)
    return st_fail(sf, err, err_size, "tensor '%s': data_offsets [%llu, %llu] run past the data area (%llu bytes)",
                   name, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_bytes);
  uint64_t bytes = numel * dtype_bytes(e->dtype);
  if (end - begin != bytes)
    return st_fail(sf, err, err_size, "tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, its %s shape needs %llu",
                   name, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)(end - begin),
                   st_dtype_name(e->dtype), (unsigned long long)bytes);
  e->begin = begin;
  e->end = end;
  return 0;
}

static int parse_metadata(st_file *sf, const json_doc *doc, size_t val, char *err, size_t err_size) {
  const json_node *v = &doc->nodes[val];
  if (v->type != JSON_OBJECT) return st_fail(sf, err, err_size, "__metadata__ must be an object of strings");
  int n = (int)(v->count / 2);
  sf->meta_keys = calloc((size_t)n + 1, sizeof(char *));
  sf->meta_values = calloc((size_t)n + 1, sizeof(char *));
  if (!sf->meta_keys || !sf->meta_values) return st_fail(sf, err, err_size, "out of memory");
  size_t i = v->first;
  for (int m = 0; m < n; m++) {
    size_t vi = json_next(doc, i);
    const json_node *k = &doc->nodes[i], *x = &doc->nodes[vi];
    char name[96];
    if (x->type != JSON_STRING)
      return st_fail(sf, err, err_size, "__metadata__ '%s': value is not a string",
                     shown(k->text, k->len, name, sizeof name));
    sf->meta_keys[m] = strdup(k->text);
    sf->meta_values[m] = strdup(x->text);
    sf->meta_count = m + 1;
    if (!sf->meta_keys[m] || !sf->meta_values[m]) return st_fail(sf, err, err_size, "out of memory");
    i = json_next(doc, vi);
  }
  return 0;
}

static const st_file *sort_file; /* qsort has no context argument; st_open runs it single-threaded */
static int by_begin(const void *a, const void *b) {
  const st_entry *x = &sort_file->entries[*(const int *)a], *y = &sort_file->entries[*(const int *)b];
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}
static int by_name(const void *a, const void *b) {
  return strcmp(sort_file->entries[*(const int *)a].name, sort_file->entries[*(const int *)b].name);
}

/* Offsets must tile the data area exactly, as the format requires: no overlap, no hole, no tail. */
static int check_layout(st_file *sf, uint64_t data_bytes, char *err, size_t err_size) {
  int n = sf->count, rc = 0;
  int *order = malloc(sizeof(int) * (size_t)(n ? n : 1));
  if (!order) return st_fail(sf, err, err_size, "out of memory");
  for (int i = 0; i < n; i++) order[i] = i;
  sort_file = sf;
  qsort(order, (size_t)n, sizeof(int), by_name);
  for (int i = 1; i < n && !rc; i++)
    if (strcmp(sf->entries[order[i]].name, sf->entries[order[i - 1]].name) == 0)
      rc = st_fail(sf, err, err_size, "tensor '%.100s' appears twice in the header", sf->entries[order[i]].name);
  qsort(order, (size_t)n, sizeof(int), by_begin);
  uint64_t at = 0;
  for (int i = 0; i < n && !rc; i++) {
    const st_entry *e = &sf->entries[order[i]];
    if (e->begin < at)
      rc =
          st_fail(sf, err, err_size, "tensor '%.100s' data_offsets [%llu, %llu] overlap tensor '%.100s' (ends at %llu)",
                  e->name, (unsigned long long)e->begin, (unsigned long long)e->end, sf->entries[order[i - 1]].name,
                  (unsigned long long)at);
    else if (e->begin > at)
      rc =
          st_fail(sf, err, err_size, "bytes [%llu, %llu) of the data area belong to no tensor (a hole before '%.100s')",
                  (unsigned long long)at, (unsigned long long)e->begin, e->name);
    if (e->end > at) at = e->end;
  }
  if (!rc && at != data_bytes)
    rc = st_fail(sf, err, err_size, "the tensors cover %llu of the %llu data bytes after the header",
                 (unsigned long long)at, (unsigned long long)data_bytes);
  free(order);
  return rc;
}

int st_open(st_file *sf, const char *path, char *err, size_t err_size) {
  memset(sf, 0, sizeof *sf);
  snprintf(sf->path, sizeof sf->path, "%s", path);
  sf->f = fopen(path, "rb");
  if (!sf->f) return st_fail(sf, err, err_size, "cannot open: %s", strerror(errno));
  struct stat st;
  if (fstat(fileno(sf->f), &st) != 0) return st_fail(sf, err, err_size, "cannot stat: %s", strerror(errno));
  if (!S_ISREG(st.st_mode)) return st_fail(sf, err, err_size, "not a regular file");
  sf->file_bytes = (uint64_t)st.st_size;
  unsigned char len8[8];
  if (sf->file_bytes < 8 || fread(len8, 1, 8, sf->f) != 8)
    return st_fail(sf, err, err_size, "truncated: %llu bytes, fewer than the 8-byte header length",
                   (unsigned long long)sf->file_bytes);
  uint64_t hlen = 0;
  for (int b = 7; b >= 0; b--) hlen = (hlen << 8) | len8[b];
  if (hlen > sf->file_bytes - 8)
    return st_fail(sf, err, err_size,
                   "header length %llu runs past the end of the file (%llu bytes): truncated or not a safetensors file",
                   (unsigned long long)hlen, (unsigned long long)sf->file_bytes);
  if (hlen > ST_HEADER_MAX || hlen < 2)
    return st_fail(sf, err, err_size, "header length %llu outside [2, %llu]", (unsigned long long)hlen,
                   (unsigned long long)ST_HEADER_MAX);
  sf->data_start = 8 + hlen;
  uint64_t data_bytes = sf->file_bytes - sf->data_start;
  char *header = malloc((size_t)hlen);
  if (!header) return st_fail(sf, err, err_size, "out of memory for a %llu-byte header", (unsigned long long)hlen);
  if (fread(header, 1, (size_t)hlen, sf->f) != hlen) {
    free(header);
    return st_fail(sf, err, err_size, "short read of the header");
  }
  json_doc doc = {0};
  char why[256];
  int rc = 0;
  if (header[0] != '{') {
    rc = st_fail(sf, err, err_size, "the header does not start with '{': not a safetensors file");
  } else if (json_parse(&doc, header, (size_t)hlen, why, sizeof why) != 0) {
    rc = st_fail(sf, err, err_size, "header JSON %s", why);
  } else if (doc.nodes[0].type != JSON_OBJECT) {
    rc = st_fail(sf, err, err_size, "the header is not a JSON object");
  } else {
    size_t members = doc.nodes[0].count / 2;
    sf->entries = calloc(members ? members : 1, sizeof(st_entry));
    if (!sf->entries) rc = st_fail(sf, err, err_size, "out of memory");
    size_t k = doc.nodes[0].first;
    for (size_t m = 0; m < members && !rc; m++) {
      size_t v = json_next(&doc, k);
      if (strcmp(doc.nodes[k].text, "__metadata__") == 0 && doc.nodes[k].len == 12) {
        if (sf->meta_keys)
          rc = st_fail(sf, err, err_size, "__metadata__ appears twice");
        else
          rc = parse_metadata(sf, &doc, v, err, err_size);
      } else {
        rc = parse_entry(sf, &doc, k, v, &sf->entries[sf->count], data_bytes, err, err_size);
        if (!rc) sf->count++;
      }
      k = json_next(&doc, v);
    }
    if (!rc) rc = check_layout(sf, data_bytes, err, err_size);
  }
  json_free(&doc);
  free(header);
  return rc;
}

void st_close(st_file *sf) {
  if (sf->f) fclose(sf->f);
  for (int i = 0; i < sf->meta_count; i++) {
    free(sf->meta_keys[i]);
    free(sf->meta_values[i]);
  }
  free(sf->meta_keys);
  free(sf->meta_values);
  free(sf->entries);
  memset(sf, 0, sizeof *sf);
}

const st_entry *st_find(const st_file *sf, const char *name) {
  for (int i = 0; i < sf->count; i++)
    if (strcmp(sf->entries[i].name, name) == 0) return &sf->entries[i];
  return NULL;
}

const char *st_meta(const st_file *sf, const char *key) {
  for (int i = 0; i < sf->meta_count; i++)
    if (strcmp(sf->meta_keys[i], key) == 0) return sf->meta_values[i];
  return NULL;
}

int st_read(st_file *sf, const st_entry *e, float *out, char *err, size_t err_size) {
  if (fseeko(sf->f, (off_t)(sf->data_start + e->begin), SEEK_SET) != 0)
    return st_fail(sf, err, err_size, "tensor '%.100s': cannot seek: %s", e->name, strerror(errno));
  unsigned char chunk[1 << 16];
  size_t bytes = dtype_bytes(e->dtype), per = sizeof chunk / bytes;
  for (size_t at = 0; at < e->numel; at += per) {
    size_t m = e->numel - at < per ? e->numel - at : per;
    if (fread(chunk, bytes, m, sf->f) != m)
      return st_fail(sf, err, err_size, "tensor '%.100s': short read (the file changed or is damaged)", e->name);
    for (size_t i = 0; i < m; i++) {
      const unsigned char *c = chunk + i * bytes;
      if (e->dtype == ST_BF16) {
        out[at + i] = st_bf16_to_f32((uint16_t)(c[0] | (c[1] << 8)));
      } else {
        uint32_t u = (uint32_t)c[0] | ((uint32_t)c[1] << 8) | ((uint32_t)c[2] << 16) | ((uint32_t)c[3] << 24);
        memcpy(&out[at + i], &u, 4);
      }
    }
  }
  return 0;
}
