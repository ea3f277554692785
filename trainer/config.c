/* config.c — the key table expanded from TPDIFF_CONFIG_KEYS, the value parser shared by defaults, YAML
 * scalars and command-line values, config_defaults, and the bounded text helpers that build one-line
 * error messages. The other jobs of the config module live in config_check.c (validation),
 * config_yaml.c (YAML files, overrides, config_load) and config_print.c (printouts); what they share
 * is declared in config_internal.h. */
#include "trainer/config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/config_internal.h"

/* ---- the key table, expanded from config.h ---- */

const key_spec cfg_keys[KEY_COUNT] = {
#define TPDIFF_KEY_SPEC(section, key, type, def, doc) \
  {#section, #key, #type, TYPE_##type, def, doc, offsetof(tpdiff_config, section##_##key), sizeof(tpdiff_cfg_##type)},
    TPDIFF_CONFIG_KEYS(TPDIFF_KEY_SPEC)
#undef TPDIFF_KEY_SPEC
};

/* Referring to KEY_<section>_<key> makes a CHOICES entry for a key that does not exist a compile error. */
typedef struct {
  int key;
  const char *choices; /* "a|b|c" */
} key_choices;

static const key_choices CHOICES[] = {
#define TPDIFF_KEY_CHOICES(section, key, choices) {KEY_##section##_##key, choices},
    TPDIFF_CONFIG_CHOICES(TPDIFF_KEY_CHOICES)
#undef TPDIFF_KEY_CHOICES
};

const char *cfg_choices_of(int key) {
  for (size_t i = 0; i < sizeof CHOICES / sizeof CHOICES[0]; i++)
    if (CHOICES[i].key == key) return CHOICES[i].choices;
  return NULL;
}

void *cfg_field_at(tpdiff_config *cfg, int key) { return (char *)cfg + cfg_keys[key].offset; }
const void *cfg_field_at_const(const tpdiff_config *cfg, int key) { return (const char *)cfg + cfg_keys[key].offset; }

int cfg_same_section(int a, int b) { return strcmp(cfg_keys[a].section, cfg_keys[b].section) == 0; }

/* ---- bounded text helpers ---- */

/* Appends printf output to buf[size] at *used; never overflows, keeps buf terminated. */
void cfg_append(char *buf, size_t size, size_t *used, const char *fmt, ...) {
  if (*used + 1 >= size) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *used, size - *used, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  *used = (size_t)n < size - *used ? *used + (size_t)n : size - 1;
}

/* Length (1..4) of the valid UTF-8 sequence at s[0..len) with its code point, or 0 if invalid. */
size_t cfg_utf8_sequence(const unsigned char *s, size_t len, unsigned long *code_point) {
  if (len == 0) return 0;
  unsigned long cp;
  size_t n;
  if (s[0] < 0x80) {
    *code_point = s[0];
    return 1;
  } else if (s[0] >= 0xC2 && s[0] <= 0xDF) {
    cp = s[0] & 0x1Fu;
    n = 2;
  } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
    cp = s[0] & 0x0Fu;
    n = 3;
  } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
    cp = s[0] & 0x07u;
    n = 4;
  } else {
    return 0;
  }
  if (len < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (s[i] & 0x3Fu);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  *code_point = cp;
  return n;
}

static int valid_utf8(const char *text, size_t len) {
  unsigned long cp;
  for (size_t i = 0; i < len;) {
    size_t n = cfg_utf8_sequence((const unsigned char *)text + i, len - i, &cp);
    if (n == 0) return 0;
    i += n;
  }
  return 1;
}

/* Renders input text[0..len) for a message: one line, control bytes and invalid UTF-8 escaped, cut with
 * "..." to fit buf[size] (size >= 8). */
const char *cfg_shown(const char *text, size_t len, char *buf, size_t size) {
  const unsigned char *s = (const unsigned char *)text;
  size_t used = 0, limit = size - 4; /* room for "..." and the terminator */
  for (size_t i = 0; i < len;) {
    char piece[8];
    size_t piece_len, consumed;
    unsigned long cp;
    size_t seq = cfg_utf8_sequence(s + i, len - i, &cp);
    if (s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
      piece[0] = '\\';
      piece[1] = s[i] == '\n' ? 'n' : s[i] == '\t' ? 't' : 'r';
      piece_len = 2;
      consumed = 1;
    } else if (s[i] < 0x20 || s[i] == 0x7F || seq == 0) {
      snprintf(piece, sizeof piece, "\\x%02x", s[i]);
      piece_len = 4;
      consumed = 1;
    } else {
      memcpy(piece, s + i, seq);
      piece_len = consumed = seq;
    }
    if (used + piece_len > limit && (used + piece_len > size - 1 || i + consumed < len)) {
      memcpy(buf + used, "...", 3);
      used += 3;
      break;
    }
    memcpy(buf + used, piece, piece_len);
    used += piece_len;
    i += consumed;
  }
  buf[used] = '\0';
  return buf;
}

/* Makes err one line: control bytes become '?', a UTF-8 sequence cut by truncation is dropped. */
static void one_line(char *err, size_t err_size) {
  size_t len = strlen(err);
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)err[i] < 0x20 || err[i] == 0x7F) err[i] = '?';
  if (len + 1 == err_size) {
    size_t start = len;
    while (start > 0 && ((unsigned char)err[start - 1] & 0xC0u) == 0x80u) start--;
    if (start > 0 && (unsigned char)err[start - 1] >= 0xC0) {
      unsigned long cp;
      start--;
      if (cfg_utf8_sequence((const unsigned char *)err + start, len - start, &cp) == 0) err[start] = '\0';
    }
  }
}

/* Sets err to "<origin>: <where>: <reason>" (or "<origin>: <reason>" without where); returns -1. */
int cfg_fail(char *err, size_t err_size, const char *origin, const char *where, const char *fmt, ...) {
  if (!err || err_size == 0) return -1;
  size_t used = 0;
  err[0] = '\0';
  cfg_append(err, err_size, &used, "%s: ", origin ? origin : "config");
  if (where) cfg_append(err, err_size, &used, "%s: ", where);
  if (used + 1 < err_size) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + used, err_size - used, fmt, ap);
    va_end(ap);
  }
  one_line(err, err_size);
  return -1;
}

/* "a, b, c" from "a|b|c". */
const char *cfg_choices_text(const char *choices, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (const char *c = choices; *c; c++) {
    if (*c == '|')
      cfg_append(buf, size, &used, ", ");
    else
      cfg_append(buf, size, &used, "%c", *c);
  }
  return buf;
}

/* ---- value parsing: one parser for defaults, YAML scalars and command-line values ---- */

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* Full decimal integer in int range: 0, -1 if not an integer, -2 if out of range. */
static int parse_int(const char *text, size_t len, int *out) {
  char buf[64];
  size_t first = len > 0 && (text[0] == '-' || text[0] == '+') ? 1 : 0;
  if (first == len) return -1;
  for (size_t i = first; i < len; i++)
    if (text[i] < '0' || text[i] > '9') return -1;
  if (len >= sizeof buf) return -2;
  memcpy(buf, text, len);
  buf[len] = '\0';
  errno = 0;
  char *end;
  long value = strtol(buf, &end, 10);
  if (*end != '\0') return -1;
  if (errno == ERANGE || value < INT_MIN || value > INT_MAX) return -2;
  *out = (int)value;
  return 0;
}

/* Full decimal number: 0, -1 if not a number, -2 if not finite. */
int cfg_parse_double(const char *text, size_t len, double *out) {
  char buf[64];
  if (len == 0 || len >= sizeof buf || memchr(text, '\0', len)) return -1;
  memcpy(buf, text, len);
  buf[len] = '\0';
  size_t first = (buf[0] == '-' || buf[0] == '+') ? 1 : 0;
  if (!((buf[first] >= '0' && buf[first] <= '9') || buf[first] == '.')) return -1;
  if (strpbrk(buf, "xXpP")) return -1; /* no hexadecimal floats */
  char *end;
  double value = strtod(buf, &end);
  if (end == buf || *end != '\0') return -1;
  if (!isfinite(value)) return -2;
  *out = value;
  return 0;
}

/* "got 'text'" or "got an empty value", into buf. */
const char *cfg_got(const char *text, size_t len, char *buf, size_t size) {
  char value[SHOWN_MAX];
  if (len == 0)
    snprintf(buf, size, "got an empty value");
  else
    snprintf(buf, size, "got '%s'", cfg_shown(text, len, value, sizeof value));
  return buf;
}

static int parse_list_text(const char *text, size_t len, tpdiff_float_list *list, char *reason, size_t reason_size) {
  char got_text[SHOWN_MAX + 16];
  const char *s = text, *e = text + len;
  memset(list, 0, sizeof *list);
  while (s < e && is_blank(*s)) s++;
  while (e > s && is_blank(e[-1])) e--;
  if (s < e && *s == '[') {
    if (e - s < 2 || e[-1] != ']') {
      snprintf(reason, reason_size, "expected a list of numbers like [0.6, 0.3] or [], %s",
               cfg_got(text, len, got_text, sizeof got_text));
      return -1;
    }
    s++;
    e--;
    while (s < e && is_blank(*s)) s++;
    while (e > s && is_blank(e[-1])) e--;
  }
  if (s == e) return 0;
  size_t entries = 1;
  for (const char *p = s; p < e; p++) entries += *p == ',';
  if (entries > TPDIFF_MAX_STAGES) {
    snprintf(reason, reason_size, "at most %d entries (one per pyramid cut), got %zu", TPDIFF_MAX_STAGES, entries);
    return -1;
  }
  for (const char *p = s;;) {
    const char *comma = memchr(p, ',', (size_t)(e - p));
    const char *item = p, *item_end = comma ? comma : e;
    while (item < item_end && is_blank(*item)) item++;
    while (item_end > item && is_blank(item_end[-1])) item_end--;
    double value;
    int rc = cfg_parse_double(item, (size_t)(item_end - item), &value);
    if (rc != 0) {
      snprintf(reason, reason_size, "entry %d: expected a %snumber, %s", list->count + 1, rc == -2 ? "finite " : "",
               cfg_got(item, (size_t)(item_end - item), got_text, sizeof got_text));
      return -1;
    }
    list->values[list->count++] = value;
    if (!comma) break;
    p = comma + 1;
  }
  return 0;
}

/* Parses text[0..len) as a value of key into the field of cfg. On failure writes the reason (no origin,
 * no key) and leaves the field unchanged. */
int cfg_parse_value(int key, const char *text, size_t len, tpdiff_config *cfg, char *reason, size_t reason_size) {
  const key_spec *spec = &cfg_keys[key];
  void *field = cfg_field_at(cfg, key);
  char got_text[SHOWN_MAX + 16];
  switch (spec->type) {
    case TYPE_INT: {
      int value;
      int rc = parse_int(text, len, &value);
      if (rc == 0) {
        memcpy(field, &value, sizeof value);
        return 0;
      }
      if (rc == -2)
        snprintf(reason, reason_size, "expected an integer in %d..%d, %s", INT_MIN, INT_MAX,
                 cfg_got(text, len, got_text, sizeof got_text));
      else
        snprintf(reason, reason_size, "expected an integer, %s", cfg_got(text, len, got_text, sizeof got_text));
      return -1;
    }
    case TYPE_FLOAT: {
      double value;
      int rc = cfg_parse_double(text, len, &value);
      if (rc == 0) {
        memcpy(field, &value, sizeof value);
        return 0;
      }
      snprintf(reason, reason_size, "expected a %snumber, %s", rc == -2 ? "finite " : "",
               cfg_got(text, len, got_text, sizeof got_text));
      return -1;
    }
    case TYPE_BOOL: {
      static const char *const words[] = {"false", "False", "FALSE", "true", "True", "TRUE"};
      for (int i = 0; i < 6; i++) {
        if (strlen(words[i]) == len && memcmp(words[i], text, len) == 0) {
          int value = i >= 3;
          memcpy(field, &value, sizeof value);
          return 0;
        }
      }
      snprintf(reason, reason_size, "expected true or false, %s", cfg_got(text, len, got_text, sizeof got_text));
      return -1;
    }
    case TYPE_STRING: {
      const char *choices = cfg_choices_of(key);
      int ok = len < spec->size && !memchr(text, '\0', len);
      if (ok && choices) {
        ok = 0;
        for (const char *c = choices; *c;) {
          size_t n = strcspn(c, "|");
          if (n == len && memcmp(c, text, len) == 0) ok = 1;
          c += n + (c[n] == '|');
        }
      }
      if (ok) {
        memset(field, 0, spec->size);
        memcpy(field, text, len);
        return 0;
      }
      char list[REASON_MAX / 2];
      if (choices)
        snprintf(reason, reason_size, "expected one of %s, %s", cfg_choices_text(choices, list, sizeof list),
                 cfg_got(text, len, got_text, sizeof got_text));
      else
        snprintf(reason, reason_size, "expected a word of at most %zu bytes, %s", spec->size - 1,
                 cfg_got(text, len, got_text, sizeof got_text));
      return -1;
    }
    case TYPE_PATH: {
      if (memchr(text, '\0', len)) {
        snprintf(reason, reason_size, "a path cannot contain a NUL byte, %s",
                 cfg_got(text, len, got_text, sizeof got_text));
        return -1;
      }
      if (len >= spec->size) {
        snprintf(reason, reason_size, "a path of at most %zu bytes, got %zu bytes", spec->size - 1, len);
        return -1;
      }
      if (!valid_utf8(text, len)) {
        snprintf(reason, reason_size, "a path must be valid UTF-8, %s", cfg_got(text, len, got_text, sizeof got_text));
        return -1;
      }
      memset(field, 0, spec->size);
      memcpy(field, text, len);
      return 0;
    }
    case TYPE_LIST: {
      tpdiff_float_list list;
      if (parse_list_text(text, len, &list, reason, reason_size)) return -1;
      memcpy(field, &list, sizeof list);
      return 0;
    }
  }
  snprintf(reason, reason_size, "internal error: unknown key type");
  return -1;
}

void config_defaults(tpdiff_config *cfg) {
  memset(cfg, 0, sizeof *cfg); /* padding and string tails too, so configs compare with memcmp */
  for (int k = 0; k < KEY_COUNT; k++) {
    char reason[REASON_MAX];
    if (cfg_parse_value(k, cfg_keys[k].default_text, strlen(cfg_keys[k].default_text), cfg, reason, sizeof reason)) {
      /* A bad default is a bug in config.h, not an input error: stop loudly. */
      fprintf(stderr, "config.h: default of %s.%s: %s\n", cfg_keys[k].section, cfg_keys[k].key, reason);
      abort();
    }
  }
}

/* Shortest %g text that reads back to exactly v (for messages and for write_yaml). */
const char *cfg_shortest(double v, char *buf, size_t size) {
  for (int precision = 1; precision <= 17; precision++) {
    snprintf(buf, size, "%.*g", precision, v);
    double back = strtod(buf, NULL);
    if (memcmp(&back, &v, sizeof v) == 0) break;
  }
  return buf;
}
