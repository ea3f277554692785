/* json_reader.c — strict recursive-descent JSON parser into a pre-order node array. */
#include "data/json_reader.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *text;
  size_t len, pos;
  json_doc *doc;
  size_t cap; /* nodes allocated */
  size_t str_used, str_cap;
  char *err;
  size_t err_size;
} parser;

static int fail(parser *p, const char *fmt, ...) {
  char what[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(p->err, p->err_size, "at byte %zu: %s", p->pos, what);
  return -1;
}

static void skip_space(parser *p) {
  while (p->pos < p->len) {
    char c = p->text[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static long new_node(parser *p, json_type type) {
  if (p->doc->count == p->cap) {
    size_t cap = p->cap ? 2 * p->cap : 64;
    json_node *n = realloc(p->doc->nodes, cap * sizeof *n);
    if (!n) return fail(p, "out of memory");
    p->doc->nodes = n;
    p->cap = cap;
  }
  size_t i = p->doc->count++;
  json_node *n = &p->doc->nodes[i];
  memset(n, 0, sizeof *n);
  n->type = type;
  n->offset = p->pos;
  n->first = i + 1;
  return (long)i;
}

/* Appends len bytes to the string area; the area is sized in json_parse so this never overflows. */
static char *str_put(parser *p, const char *s, size_t len) {
  char *at = p->doc->strings + p->str_used;
  memcpy(at, s, len);
  p->str_used += len;
  return at;
}

static int hex4(parser *p, unsigned *out) {
  if (p->len - p->pos < 4) return fail(p, "a \\u escape needs 4 hex digits");
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p->text[p->pos + (size_t)i];
    unsigned d = (c >= '0' && c <= '9')   ? (unsigned)(c - '0')
                 : (c >= 'a' && c <= 'f') ? (unsigned)(c - 'a' + 10)
                 : (c >= 'A' && c <= 'F') ? (unsigned)(c - 'A' + 10)
                                          : 16u;
    if (d == 16) return fail(p, "a \\u escape needs 4 hex digits");
    v = v * 16 + d;
  }
  p->pos += 4;
  *out = v;
  return 0;
}

static size_t utf8_encode(unsigned long cp, char *out) {
  if (cp < 0x80) return out[0] = (char)cp, 1;
  if (cp < 0x800) return out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), 2;
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Length of the valid UTF-8 sequence at s[0..avail) (1..4), or 0 when it is not valid UTF-8. */
static size_t utf8_valid(const unsigned char *s, size_t avail) {
  unsigned char c = s[0];
  size_t n;
  unsigned long cp, min;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0)
    n = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0)
    n = 3, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0)
    n = 4, cp = c & 0x07, min = 0x10000;
  else
    return 0;
  if (avail < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

static int parse_string(parser *p) {
  long id = new_node(p, JSON_STRING);
  if (id < 0) return -1;
  p->pos++; /* the opening quote */
  size_t start = p->str_used;
  for (;;) {
    if (p->pos >= p->len) return fail(p, "unterminated string");
    unsigned char c = (unsigned char)p->text[p->pos];
    if (c == '"') break;
    if (c < 0x20) return fail(p, "control character 0x%02x inside a string", c);
    if (c != '\\') {
      size_t n = utf8_valid((const unsigned char *)p->text + p->pos, p->len - p->pos);
      if (!n) return fail(p, "invalid UTF-8 inside a string");
      str_put(p, p->text + p->pos, n);
      p->pos += n;
      continue;
    }
    p->pos++;
    if (p->pos >= p->len) return fail(p, "unterminated escape");
    char e = p->text[p->pos++];
    static const char escapes[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
    const char *simple = strchr(escapes, e);
    if (e && simple) {
      str_put(p, &decoded[simple - escapes], 1);
      continue;
    }
    if (e != 'u') {
      if (e > 0x20 && e < 0x7f) return fail(p, "unknown escape \\%c", e);
      return fail(p, "unknown escape (byte 0x%02x)", (unsigned char)e);
    }
    unsigned hi, lo;
    if (hex4(p, &hi) != 0) return -1;
    unsigned long cp = hi;
    if (hi >= 0xDC00 && hi <= 0xDFFF) return fail(p, "lone low surrogate \\u%04x", hi);
    if (hi >= 0xD800 && hi <= 0xDBFF) {
      if (p->len - p->pos < 2 || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u')
        return fail(p, "high surrogate \\u%04x without a low one", hi);
      p->pos += 2;
      if (hex4(p, &lo) != 0) return -1;
      if (lo < 0xDC00 || lo > 0xDFFF) return fail(p, "high surrogate \\u%04x without a low one", hi);
      cp = 0x10000 + (((unsigned long)hi - 0xD800) << 10) + (lo - 0xDC00);
    }
    char buf[4];
    /* a decoded escape never takes more bytes than its 6- or 12-byte source, so the area holds it */
    str_put(p, buf, utf8_encode(cp, buf));
  }
  p->pos++;
  str_put(p, "", 1);
  json_node *n = &p->doc->nodes[id];
  n->text = p->doc->strings + start; /* the area is allocated once, so the pointer stays valid */
  n->len = p->str_used - start - 1;
  n->end = (size_t)id + 1;
  return 0;
}

static int parse_number(parser *p) {
  long id = new_node(p, JSON_NUMBER);
  if (id < 0) return -1;
  size_t s = p->pos, i = s;
  const char *t = p->text;
#define DIGIT(k) ((k) < p->len && t[k] >= '0' && t[k] <= '9')
  if (i < p->len && t[i] == '-') i++;
  if (!DIGIT(i)) return (p->pos = i, fail(p, "a digit"));
  if (t[i] == '0') {
    i++;
    if (DIGIT(i)) return (p->pos = i, fail(p, "no leading zeros in a number"));
  } else {
    while (DIGIT(i)) i++;
  }
  if (i < p->len && t[i] == '.') {
    i++;
    if (!DIGIT(i)) return (p->pos = i, fail(p, "a digit after '.'"));
    while (DIGIT(i)) i++;
  }
  if (i < p->len && (t[i] == 'e' || t[i] == 'E')) {
    i++;
    if (i < p->len && (t[i] == '+' || t[i] == '-')) i++;
    if (!DIGIT(i)) return (p->pos = i, fail(p, "a digit in the exponent"));
    while (DIGIT(i)) i++;
  }
#undef DIGIT
  json_node *n = &p->doc->nodes[id];
  n->text = str_put(p, t + s, i - s);
  str_put(p, "", 1);
  n->len = i - s;
  n->end = (size_t)id + 1;
  p->pos = i;
  return 0;
}

static int parse_value(parser *p, int depth);

static int parse_container(parser *p, int depth, int is_object) {
  if (depth >= JSON_MAX_DEPTH) return fail(p, "nesting deeper than %d", JSON_MAX_DEPTH);
  long id = new_node(p, is_object ? JSON_OBJECT : JSON_ARRAY);
  if (id < 0) return -1;
  char close = is_object ? '}' : ']';
  size_t count = 0;
  p->pos++;
  skip_space(p);
  if (p->pos < p->len && p->text[p->pos] == close) {
    p->pos++;
  } else {
    for (;;) {
      skip_space(p);
      if (is_object) {
        if (p->pos >= p->len || p->text[p->pos] != '"') return fail(p, "a string key");
        if (parse_string(p) != 0) return -1;
        count++;
        skip_space(p);
        if (p->pos >= p->len || p->text[p->pos] != ':') return fail(p, "':' after an object key");
        p->pos++;
      }
      if (parse_value(p, depth + 1) != 0) return -1;
      count++;
      skip_space(p);
      if (p->pos >= p->len) return fail(p, "'%c' or ','", close);
      if (p->text[p->pos] == ',') {
        p->pos++;
        continue;
      }
      if (p->text[p->pos] != close) return fail(p, "'%c' or ','", close);
      p->pos++;
      break;
    }
  }
  json_node *n = &p->doc->nodes[id];
  n->count = count;
  n->end = p->doc->count;
  return 0;
}

static int literal(parser *p, const char *word, json_type type) {
  size_t n = strlen(word);
  if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0) return fail(p, "a JSON value");
  long id = new_node(p, type);
  if (id < 0) return -1;
  p->doc->nodes[id].end = (size_t)id + 1;
  p->pos += n;
  return 0;
}

static int parse_value(parser *p, int depth) {
  skip_space(p);
  if (p->pos >= p->len) return fail(p, "a JSON value, found the end");
  char c = p->text[p->pos];
  if (c == '{') return parse_container(p, depth, 1);
  if (c == '[') return parse_container(p, depth, 0);
  if (c == '"') return parse_string(p);
  if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p);
  if (c == 't') return literal(p, "true", JSON_TRUE);
  if (c == 'f') return literal(p, "false", JSON_FALSE);
  if (c == 'n') return literal(p, "null", JSON_NULL);
  return fail(p, "a JSON value");
}

int json_parse(json_doc *doc, const char *text, size_t len, char *err, size_t err_size) {
  memset(doc, 0, sizeof *doc);
  parser p = {text, len, 0, doc, 0, 0, 0, err, err_size};
  /* every decoded string or number (plus its NUL) fits in the bytes its source takes with the
   * quotes or the following delimiter; + 1 covers a number that ends the text */
  p.str_cap = len + 1;
  doc->strings = malloc(p.str_cap);
  if (!doc->strings) return fail(&p, "out of memory");
  if (parse_value(&p, 0) != 0) return -1;
  skip_space(&p);
  if (p.pos != len) return fail(&p, "the end of the text after the value");
  return 0;
}

void json_free(json_doc *doc) {
  free(doc->nodes);
  free(doc->strings);
  memset(doc, 0, sizeof *doc);
}

size_t json_next(const json_doc *doc, size_t i) { return doc->nodes[i].end; }

size_t json_object_get(const json_doc *doc, size_t obj, const char *key) {
  const json_node *o = &doc->nodes[obj];
  if (o->type != JSON_OBJECT) return (size_t)-1;
  size_t klen = strlen(key), i = o->first;
  for (size_t m = 0; m < o->count / 2; m++) {
    const json_node *k = &doc->nodes[i];
    size_t v = json_next(doc, i);
    if (k->len == klen && memcmp(k->text, key, klen) == 0) return v;
    i = json_next(doc, v);
  }
  return (size_t)-1;
}

int json_as_u64(const json_node *n, uint64_t *out) {
  if (n->type != JSON_NUMBER || n->len == 0) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n->len; i++) {
    char c = n->text[i];
    if (c < '0' || c > '9') return -1;
    unsigned d = (unsigned)(c - '0');
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}
