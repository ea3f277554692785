/* shard_index.c — index.json of a shard data set: the writer and a small, bounded JSON reader for
 * exactly that document (an object of strings and integers with one array of {name, clips} objects;
 * other keys are skipped, nesting is limited, every read is bounds-checked). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/atomic_file.h"
#include "data/shard_internal.h"

#define INDEX_MAX_BYTES (64L << 20)
#define INDEX_MAX_SHARDS (1 << 22)
#define INDEX_MAX_DEPTH 32
#define INDEX_NAME_BYTES 256

static void set_err(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_size, fmt, ap);
  va_end(ap);
}

/* ---- writing ------------------------------------------------------------------------------ */

/* Writes s as a JSON string (quotes, backslashes and control characters escaped). */
static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20)
      fprintf(f, "\\u%04x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

int shard_write_index(const char *folder, const shard_layout *layout, int count, const char *const *names,
                      const long *clips, char *err, size_t err_size) {
  char path[SHARD_PATH_BYTES];
  int n = snprintf(path, sizeof path, "%s/index.json", folder ? folder : "");
  if (!folder || n < 0 || (size_t)n >= sizeof path) {
    set_err(err, err_size, "%s: path too long (or no folder given)", folder ? folder : "index.json");
    return -1;
  }
  if (shard_layout_check(layout, path, err, err_size) != 0) return -1;
  if (count < 0 || (count > 0 && (!names || !clips))) {
    set_err(err, err_size, "%s: %d shards but no names or clip counts given", path, count);
    return -1;
  }
  for (int i = 0; i < count; i++)
    if (!names[i] || !names[i][0] || strchr(names[i], '/') || clips[i] < 0) {
      set_err(err, err_size, "%s: shard %d: expected a plain file name and clips >= 0", path, i);
      return -1;
    }
  atomic_file af;
  if (atomic_file_open(&af, path, err, err_size) != 0) return -1;
  FILE *f = af.f;
  fprintf(f,
          "{\"format\": \"tpdiff-dataset\", \"version\": 1, \"frames\": %d, \"height\": %d, \"width\": %d, "
          "\"channels\": %d,\n \"levels\": %d, \"dtype\": \"%s\", \"shards\": [",
          layout->frames, layout->height, layout->width, layout->channels, layout->levels,
          shard_dtype_name(layout->dtype));
  for (int i = 0; i < count; i++) {
    fprintf(f, "%s\n  {\"name\": ", i ? "," : "");
    json_string(f, names[i]);
    fprintf(f, ", \"clips\": %ld}", clips[i]);
  }
  fprintf(f, "]}\n");
  return atomic_file_commit(&af, err, err_size);
}

/* ---- reading ------------------------------------------------------------------------------ */

typedef struct {
  const char *s, *path;
  size_t n, pos;
  char *err;
  size_t err_size;
} json_in;

static int fail_at(json_in *j, const char *what) {
  set_err(j->err, j->err_size, "%s: byte %zu: %s", j->path, j->pos, what);
  return -1;
}

static void skip_ws(json_in *j) {
  while (j->pos < j->n && strchr(" \t\r\n", j->s[j->pos]) && j->s[j->pos]) j->pos++;
}

/* Consumes c after optional whitespace; 0 when it was there. */
static int eat(json_in *j, char c) {
  skip_ws(j);
  if (j->pos < j->n && j->s[j->pos] == c) {
    j->pos++;
    return 0;
  }
  return -1;
}

static int hex4(json_in *j, unsigned *out) {
  if (j->n - j->pos < 4) return fail_at(j, "short \\u escape");
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = j->s[j->pos++];
    v = v * 16 + (unsigned)(c >= '0' && c <= '9'   ? c - '0'
                            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                   : 99);
    if (v > 0xffff) return fail_at(j, "bad \\u escape");
  }
  *out = v;
  return 0;
}

/* Parses a string into out (UTF-8; NULL out just skips). Too long for out is an error. */
static int parse_string(json_in *j, char *out, size_t out_size) {
  if (eat(j, '"')) return fail_at(j, "expected a string");
  size_t used = 0;
  for (;;) {
    if (j->pos >= j->n) return fail_at(j, "unterminated string");
    unsigned char c = (unsigned char)j->s[j->pos++];
    unsigned cp = c;
    if (c == '"') break;
    if (c < 0x20) return fail_at(j, "control character inside a string");
    if (c == '\\') {
      if (j->pos >= j->n) return fail_at(j, "unterminated string");
      char e = j->s[j->pos++];
      const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *hit = strchr(from, e);
      if (e == 'u') {
        if (hex4(j, &cp)) return -1;
        if (cp >= 0xd800 && cp < 0xdc00) { /* surrogate pair */
          unsigned lo;
          if (j->n - j->pos < 2 || j->s[j->pos] != '\\' || j->s[j->pos + 1] != 'u') return fail_at(j, "lone surrogate");
          j->pos += 2;
          if (hex4(j, &lo)) return -1;
          if (lo < 0xdc00 || lo > 0xdfff) return fail_at(j, "bad surrogate pair");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (cp == 0) return fail_at(j, "\\u0000 inside a string");
      } else if (e && hit) {
        cp = (unsigned char)to[hit - from];
      } else {
        return fail_at(j, "bad escape in a string");
      }
    }
    char utf8[4];
    size_t len = 0;
    if (c != '\\' || cp < 0x80)
      utf8[len++] = (char)cp; /* raw bytes pass through as they are */
    else if (cp < 0x800)
      utf8[len++] = (char)(0xc0 | cp >> 6), utf8[len++] = (char)(0x80 | (cp & 0x3f));
    else if (cp < 0x10000)
      utf8[len++] = (char)(0xe0 | cp >> 12), utf8[len++] = (char)(0x80 | ((cp >> 6) & 0x3f)),
      utf8[len++] = (char)(0x80 | (cp & 0x3f));
    else
      utf8[len++] = (char)(0xf0 | cp >> 18), utf8[len++] = (char)(0x80 | ((cp >> 12) & 0x3f)),
      utf8[len++] = (char)(0x80 | ((cp >> 6) & 0x3f)), utf8[len++] = (char)(0x80 | (cp & 0x3f));
    if (out) {
      if (used + len >= out_size) return fail_at(j, "string too long");
      memcpy(out + used, utf8, len);
      used += len;
    }
  }
  if (out) out[used] = '\0';
  return 0;
}

/* Parses a JSON number that must be an integer in long range. */
static int parse_long(json_in *j, long *out) {
  skip_ws(j);
  size_t start = j->pos;
  if (j->pos < j->n && j->s[j->pos] == '-') j->pos++;
  size_t digits = 0;
  long v = 0;
  while (j->pos < j->n && j->s[j->pos] >= '0' && j->s[j->pos] <= '9') {
    if (v > (1L << 53)) return fail_at(j, "integer too large");
    v = v * 10 + (j->s[j->pos++] - '0');
    digits++;
  }
  if (!digits || (j->pos < j->n && strchr(".eE", j->s[j->pos]) && j->s[j->pos])) {
    j->pos = start;
    return fail_at(j, "expected an integer");
  }
  *out = j->s[start] == '-' ? -v : v;
  return 0;
}

/* Skips any JSON value (nesting bounded). */
static int skip_value(json_in *j, int depth) {
  if (depth > INDEX_MAX_DEPTH) return fail_at(j, "nested too deeply");
  skip_ws(j);
  if (j->pos >= j->n) return fail_at(j, "expected a value");
  char c = j->s[j->pos];
  if (c == '"') return parse_string(j, NULL, 0);
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    j->pos++;
    if (!eat(j, close)) return 0;
    do {
      if (c == '{' && (parse_string(j, NULL, 0) || (eat(j, ':') && fail_at(j, "expected ':'")))) return -1;
      if (skip_value(j, depth + 1)) return -1;
    } while (!eat(j, ','));
    return eat(j, close) ? fail_at(j, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'") : 0;
  }
  static const char *const words[] = {"true", "false", "null"};
  for (int w = 0; w < 3; w++) {
    const char *word = words[w];
    size_t len = strlen(word);
    if (j->n - j->pos >= len && !memcmp(j->s + j->pos, word, len)) {
      j->pos += len;
      return 0;
    }
  }
  if (c == '-' || (c >= '0' && c <= '9')) {
    j->pos++;
    while (j->pos < j->n && j->s[j->pos] && strchr("0123456789+-.eE", j->s[j->pos])) j->pos++;
    return 0;
  }
  return fail_at(j, "expected a value");
}

/* One {"name": ..., "clips": ...} entry of "shards". */
static int parse_shard(json_in *j, shard_index_doc *doc, int i) {
  char name[INDEX_NAME_BYTES] = "";
  long clips = -1;
  int have_name = 0;
  if (eat(j, '{')) return fail_at(j, "shards: expected an object {\"name\": ..., \"clips\": ...}");
  if (eat(j, '}')) {
    do {
      char key[64];
      if (parse_string(j, key, sizeof key) || (eat(j, ':') && fail_at(j, "expected ':'"))) return -1;
      if (!strcmp(key, "name")) {
        if (parse_string(j, name, sizeof name)) return -1;
        have_name = 1;
      } else if (!strcmp(key, "clips")) {
        if (parse_long(j, &clips)) return -1;
      } else if (skip_value(j, 2)) {
        return -1;
      }
    } while (!eat(j, ','));
    if (eat(j, '}')) return fail_at(j, "shards: expected ',' or '}'");
  }
  if (!have_name || clips < 0) {
    set_err(j->err, j->err_size, "%s: shards[%d]: expected \"name\" (a string) and \"clips\" (an integer >= 0)",
            j->path, i);
    return -1;
  }
  if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
    set_err(j->err, j->err_size, "%s: shards[%d]: name \"%s\" is not a plain file name inside the folder", j->path, i,
            name);
    return -1;
  }
  if (!(doc->names[i] = strdup(name))) {
    set_err(j->err, j->err_size, "%s: out of memory", j->path);
    return -1;
  }
  doc->clips[i] = clips;
  return 0;
}

static int parse_shards(json_in *j, shard_index_doc *doc) {
  if (eat(j, '[')) return fail_at(j, "shards: expected an array");
  if (!eat(j, ']')) return 0;
  int cap = 0;
  do {
    if (doc->count >= INDEX_MAX_SHARDS) return fail_at(j, "shards: too many entries");
    if (doc->count == cap) {
      cap = cap ? cap * 2 : 64;
      char **names = realloc(doc->names, (size_t)cap * sizeof *names);
      if (names) doc->names = names;
      long *clips = realloc(doc->clips, (size_t)cap * sizeof *clips);
      if (clips) doc->clips = clips;
      if (!names || !clips) return fail_at(j, "out of memory");
    }
    doc->names[doc->count] = NULL;
    if (parse_shard(j, doc, doc->count)) return -1;
    doc->count++;
  } while (!eat(j, ','));
  return eat(j, ']') ? fail_at(j, "shards: expected ',' or ']'") : 0;
}

void shard_index_free(shard_index_doc *doc) {
  if (!doc) return;
  for (int i = 0; i < doc->count; i++) free(doc->names[i]);
  free(doc->names);
  free(doc->clips);
  doc->names = NULL;
  doc->clips = NULL;
  doc->count = 0;
}

static int parse_document(json_in *j, shard_index_doc *doc) {
  struct {
    const char *key;
    long *value;
  } ints[] = {{"version", &doc->version}, {"frames", &doc->frames},     {"height", &doc->height},
              {"width", &doc->width},     {"channels", &doc->channels}, {"levels", &doc->levels}};
  enum { N_INTS = sizeof ints / sizeof ints[0] };
  int seen[N_INTS] = {0}, seen_format = 0, seen_dtype = 0, seen_shards = 0;
  if (eat(j, '{')) return fail_at(j, "expected a JSON object");
  if (eat(j, '}')) {
    do {
      char key[64];
      if (parse_string(j, key, sizeof key) || (eat(j, ':') && fail_at(j, "expected ':'"))) return -1;
      int hit = -1;
      for (int k = 0; k < N_INTS; k++)
        if (!strcmp(key, ints[k].key)) hit = k;
      if (hit >= 0) {
        if (parse_long(j, ints[hit].value)) return -1;
        seen[hit] = 1;
      } else if (!strcmp(key, "format")) {
        if (parse_string(j, doc->format, sizeof doc->format)) return -1;
        seen_format = 1;
      } else if (!strcmp(key, "dtype")) {
        if (parse_string(j, doc->dtype, sizeof doc->dtype)) return -1;
        seen_dtype = 1;
      } else if (!strcmp(key, "shards")) {
        if (seen_shards) return fail_at(j, "key shards appears twice");
        if (parse_shards(j, doc)) return -1;
        seen_shards = 1;
      } else if (skip_value(j, 1)) {
        return -1;
      }
    } while (!eat(j, ','));
    if (eat(j, '}')) return fail_at(j, "expected ',' or '}'");
  }
  skip_ws(j);
  if (j->pos != j->n) return fail_at(j, "text after the JSON object");
  const char *missing = !seen_format ? "format" : !seen_dtype ? "dtype" : !seen_shards ? "shards" : NULL;
  for (int k = 0; k < N_INTS && !missing; k++)
    if (!seen[k]) missing = ints[k].key;
  if (missing) {
    set_err(j->err, j->err_size, "%s: key %s is missing", j->path, missing);
    return -1;
  }
  if (strcmp(doc->format, "tpdiff-dataset") != 0) {
    set_err(j->err, j->err_size, "%s: format is \"%s\" (expected \"tpdiff-dataset\")", j->path, doc->format);
    return -1;
  }
  if (doc->version != 1) {
    set_err(j->err, j->err_size, "%s: version is %ld (expected 1)", j->path, doc->version);
    return -1;
  }
  return 0;
}

int shard_index_read(const char *path, shard_index_doc *doc, char *err, size_t err_size) {
  memset(doc, 0, sizeof *doc);
  FILE *f = fopen(path, "rb");
  if (!f) {
    set_err(err, err_size, "%s: cannot read: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > INDEX_MAX_BYTES) {
    set_err(err, err_size, "%s: expected a regular file of at most %ld bytes", path, INDEX_MAX_BYTES);
    fclose(f);
    return -1;
  }
  size_t n = (size_t)st.st_size;
  char *text = malloc(n + 1);
  if (!text || fread(text, 1, n, f) != n) {
    set_err(err, err_size, "%s: cannot read: %s", path, text ? "short read" : "out of memory");
    free(text);
    fclose(f);
    return -1;
  }
  fclose(f);
  text[n] = '\0';
  json_in j = {text, path, n, 0, err, err_size};
  int rc = parse_document(&j, doc);
  free(text);
  if (rc) shard_index_free(doc);
  return rc;
}
