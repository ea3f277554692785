/* config.c — the run configuration: defaults, YAML loading (libyaml event API), --section.key=value
 * overrides, validation and the YAML / help printouts, all generated from TPDIFF_CONFIG_KEYS. */
#include "trainer/config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

/* ---- the key table, expanded from config.h ---- */

typedef enum { TYPE_INT, TYPE_FLOAT, TYPE_BOOL, TYPE_STRING, TYPE_PATH, TYPE_LIST } value_type;

enum {
#define TPDIFF_KEY_INDEX(section, key, type, def, doc) KEY_##section##_##key,
  TPDIFF_CONFIG_KEYS(TPDIFF_KEY_INDEX)
#undef TPDIFF_KEY_INDEX
      KEY_COUNT
};

typedef struct {
  const char *section;
  const char *key;
  const char *type_name;
  value_type type;
  const char *default_text;
  const char *doc;
  size_t offset; /* of the field in tpdiff_config */
  size_t size;   /* of the field, bytes */
} key_spec;

static const key_spec KEYS[KEY_COUNT] = {
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

/* Range rules of INT keys that need nothing but their own value. */
static const int POSITIVE_KEYS[] = {
    KEY_model_depth,        KEY_model_dim,    KEY_model_heads,  KEY_model_patch,     KEY_data_channels,
    KEY_data_frames,        KEY_data_height,  KEY_data_width,   KEY_train_steps,     KEY_train_clips_per_microbatch,
    KEY_train_microbatches, KEY_sample_steps, KEY_sample_count, KEY_train_log_every, KEY_train_keep,
};
static const int NON_NEGATIVE_KEYS[] = {
    KEY_model_classes,      KEY_train_warmup,  KEY_train_ckpt_every, KEY_train_eval_every,
    KEY_train_sample_every, KEY_data_prefetch, KEY_train_seed,
};

/* Where a key's value came from; a larger number is the more recent source. */
enum { FROM_DEFAULTS = 0, FROM_FILE = 1, FROM_COMMAND_LINE = 2 };

#define COMMAND_LINE "command line"
#define SHOWN_MAX 96 /* bytes of a quoted input value in a message, "..." included */
#define REASON_MAX 384
#define MAX_NESTING 8 /* YAML collections inside each other */

static const char *choices_of(int key) {
  for (size_t i = 0; i < sizeof CHOICES / sizeof CHOICES[0]; i++)
    if (CHOICES[i].key == key) return CHOICES[i].choices;
  return NULL;
}

static void *field_at(tpdiff_config *cfg, int key) { return (char *)cfg + KEYS[key].offset; }
static const void *field_at_const(const tpdiff_config *cfg, int key) { return (const char *)cfg + KEYS[key].offset; }

static int same_section(int a, int b) { return strcmp(KEYS[a].section, KEYS[b].section) == 0; }

/* Index of the first key of the section named text[0..len), or -1. */
static int find_section(const char *text, size_t len) {
  for (int k = 0; k < KEY_COUNT; k++)
    if (strlen(KEYS[k].section) == len && memcmp(KEYS[k].section, text, len) == 0) return k;
  return -1;
}

/* Index of key text[0..len) in the section whose first key is section_first, or -1. */
static int find_key(int section_first, const char *text, size_t len) {
  for (int k = section_first; k < KEY_COUNT && same_section(k, section_first); k++)
    if (strlen(KEYS[k].key) == len && memcmp(KEYS[k].key, text, len) == 0) return k;
  return -1;
}

/* ---- bounded text helpers ---- */

/* Appends printf output to buf[size] at *used; never overflows, keeps buf terminated. */
static void append(char *buf, size_t size, size_t *used, const char *fmt, ...) {
  if (*used + 1 >= size) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *used, size - *used, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  *used = (size_t)n < size - *used ? *used + (size_t)n : size - 1;
}

/* Length (1..4) of the valid UTF-8 sequence at s[0..len) with its code point, or 0 if invalid. */
static size_t utf8_sequence(const unsigned char *s, size_t len, unsigned long *code_point) {
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
    size_t n = utf8_sequence((const unsigned char *)text + i, len - i, &cp);
    if (n == 0) return 0;
    i += n;
  }
  return 1;
}

/* Renders input text[0..len) for a message: one line, control bytes and invalid UTF-8 escaped, cut with
 * "..." to fit buf[size] (size >= 8). */
static const char *shown(const char *text, size_t len, char *buf, size_t size) {
  const unsigned char *s = (const unsigned char *)text;
  size_t used = 0, limit = size - 4; /* room for "..." and the terminator */
  for (size_t i = 0; i < len;) {
    char piece[8];
    size_t piece_len, consumed;
    unsigned long cp;
    size_t seq = utf8_sequence(s + i, len - i, &cp);
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
      if (utf8_sequence((const unsigned char *)err + start, len - start, &cp) == 0) err[start] = '\0';
    }
  }
}

/* Sets err to "<origin>: <where>: <reason>" (or "<origin>: <reason>" without where); returns -1. */
static int fail(char *err, size_t err_size, const char *origin, const char *where, const char *fmt, ...) {
  if (!err || err_size == 0) return -1;
  size_t used = 0;
  err[0] = '\0';
  append(err, err_size, &used, "%s: ", origin ? origin : "config");
  if (where) append(err, err_size, &used, "%s: ", where);
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
static const char *choices_text(const char *choices, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (const char *c = choices; *c; c++) {
    if (*c == '|')
      append(buf, size, &used, ", ");
    else
      append(buf, size, &used, "%c", *c);
  }
  return buf;
}

static const char *known_sections(char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int k = 0; k < KEY_COUNT; k++)
    if (k == 0 || !same_section(k, k - 1)) append(buf, size, &used, "%s%s", k ? ", " : "", KEYS[k].section);
  return buf;
}

static const char *known_keys(int section_first, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int k = section_first; k < KEY_COUNT && same_section(k, section_first); k++)
    append(buf, size, &used, "%s%s", k > section_first ? ", " : "", KEYS[k].key);
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
static int parse_double(const char *text, size_t len, double *out) {
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
static const char *got(const char *text, size_t len, char *buf, size_t size) {
  char value[SHOWN_MAX];
  if (len == 0)
    snprintf(buf, size, "got an empty value");
  else
    snprintf(buf, size, "got '%s'", shown(text, len, value, sizeof value));
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
               got(text, len, got_text, sizeof got_text));
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
    int rc = parse_double(item, (size_t)(item_end - item), &value);
    if (rc != 0) {
      snprintf(reason, reason_size, "entry %d: expected a %snumber, %s", list->count + 1, rc == -2 ? "finite " : "",
               got(item, (size_t)(item_end - item), got_text, sizeof got_text));
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
static int parse_value(int key, const char *text, size_t len, tpdiff_config *cfg, char *reason, size_t reason_size) {
  const key_spec *spec = &KEYS[key];
  void *field = field_at(cfg, key);
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
                 got(text, len, got_text, sizeof got_text));
      else
        snprintf(reason, reason_size, "expected an integer, %s", got(text, len, got_text, sizeof got_text));
      return -1;
    }
    case TYPE_FLOAT: {
      double value;
      int rc = parse_double(text, len, &value);
      if (rc == 0) {
        memcpy(field, &value, sizeof value);
        return 0;
      }
      snprintf(reason, reason_size, "expected a %snumber, %s", rc == -2 ? "finite " : "",
               got(text, len, got_text, sizeof got_text));
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
      snprintf(reason, reason_size, "expected true or false, %s", got(text, len, got_text, sizeof got_text));
      return -1;
    }
    case TYPE_STRING: {
      const char *choices = choices_of(key);
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
        snprintf(reason, reason_size, "expected one of %s, %s", choices_text(choices, list, sizeof list),
                 got(text, len, got_text, sizeof got_text));
      else
        snprintf(reason, reason_size, "expected a word of at most %zu bytes, %s", spec->size - 1,
                 got(text, len, got_text, sizeof got_text));
      return -1;
    }
    case TYPE_PATH: {
      if (memchr(text, '\0', len)) {
        snprintf(reason, reason_size, "a path cannot contain a NUL byte, %s",
                 got(text, len, got_text, sizeof got_text));
        return -1;
      }
      if (len >= spec->size) {
        snprintf(reason, reason_size, "a path of at most %zu bytes, got %zu bytes", spec->size - 1, len);
        return -1;
      }
      if (!valid_utf8(text, len)) {
        snprintf(reason, reason_size, "a path must be valid UTF-8, %s", got(text, len, got_text, sizeof got_text));
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
    if (parse_value(k, KEYS[k].default_text, strlen(KEYS[k].default_text), cfg, reason, sizeof reason)) {
      /* A bad default is a bug in config.h, not an input error: stop loudly. */
      fprintf(stderr, "config.h: default of %s.%s: %s\n", KEYS[k].section, KEYS[k].key, reason);
      abort();
    }
  }
}

/* Shortest %g text that reads back to exactly v (for messages and for write_yaml). */
static const char *shortest(double v, char *buf, size_t size) {
  for (int precision = 1; precision <= 17; precision++) {
    snprintf(buf, size, "%.*g", precision, v);
    double back = strtod(buf, NULL);
    if (memcmp(&back, &v, sizeof v) == 0) break;
  }
  return buf;
}

/* shortest(), always with a '.' so YAML 1.1 readers (PyYAML) see a float; non-finite as YAML spells it. */
static void format_double(double v, char *buf, size_t size) {
  if (isnan(v)) {
    snprintf(buf, size, ".nan");
    return;
  }
  if (isinf(v)) {
    snprintf(buf, size, v > 0 ? ".inf" : "-.inf");
    return;
  }
  char text[40];
  shortest(v, text, sizeof text);
  if (strchr(text, '.')) {
    snprintf(buf, size, "%s", text);
  } else {
    char *e = strchr(text, 'e');
    if (e)
      snprintf(buf, size, "%.*s.0%s", (int)(e - text), text, e);
    else
      snprintf(buf, size, "%s.0", text);
  }
}

/* ---- validation ---- */

typedef struct {
  const tpdiff_config *cfg;
  const unsigned char *from;       /* per key: FROM_* */
  const char *const *origin_names; /* per FROM_* */
  char *err;
  size_t err_size;
} checker;

/* Reports a broken rule on key; related (or -1) is the other key the rule involves: the message names
 * the most recent source of the two, the one the user most likely just changed. */
static int reject(const checker *c, int key, int related, const char *fmt, ...) {
  int from = c->from[key];
  if (related >= 0 && c->from[related] > from) from = c->from[related];
  char where[64], reason[REASON_MAX];
  snprintf(where, sizeof where, "%s.%s", KEYS[key].section, KEYS[key].key);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  return fail(c->err, c->err_size, c->origin_names[from], where, "%s", reason);
}

static int listed(const int *keys, size_t count, int key) {
  for (size_t i = 0; i < count; i++)
    if (keys[i] == key) return 1;
  return 0;
}

static int check_one_key(const checker *c, int k) {
  const void *field = field_at_const(c->cfg, k);
  switch (KEYS[k].type) {
    case TYPE_INT: {
      int v;
      memcpy(&v, field, sizeof v);
      if (listed(POSITIVE_KEYS, sizeof POSITIVE_KEYS / sizeof POSITIVE_KEYS[0], k) && v <= 0)
        return reject(c, k, -1, "must be > 0, got %d", v);
      if (listed(NON_NEGATIVE_KEYS, sizeof NON_NEGATIVE_KEYS / sizeof NON_NEGATIVE_KEYS[0], k) && v < 0)
        return reject(c, k, -1, "must be >= 0, got %d", v);
      if (k == KEY_pyramid_stages && (v < 1 || v > TPDIFF_MAX_STAGES))
        return reject(c, k, -1, "must be in 1..%d, got %d", TPDIFF_MAX_STAGES, v);
      return 0;
    }
    case TYPE_FLOAT: {
      double v;
      memcpy(&v, field, sizeof v);
      char text[40];
      if (!isfinite(v)) return reject(c, k, -1, "must be a finite number, got %g", v);
      shortest(v, text, sizeof text);
      if ((k == KEY_model_class_dropout || k == KEY_train_ema) && !(v >= 0 && v < 1))
        return reject(c, k, -1, "must be in [0, 1), got %s", text);
      if (k == KEY_train_lr && !(v > 0)) return reject(c, k, -1, "must be > 0, got %s", text);
      if ((k == KEY_train_weight_decay || k == KEY_train_grad_clip || k == KEY_sample_cfg) && !(v >= 0))
        return reject(c, k, -1, "must be >= 0, got %s", text);
      return 0;
    }
    case TYPE_BOOL: {
      int v;
      memcpy(&v, field, sizeof v);
      if (v != 0 && v != 1) return reject(c, k, -1, "must be true or false, got %d", v);
      return 0;
    }
    case TYPE_STRING:
    case TYPE_PATH: {
      const char *s = field;
      size_t len = strnlen(s, KEYS[k].size);
      if (len == KEYS[k].size) return reject(c, k, -1, "is not terminated within %zu bytes", KEYS[k].size);
      if (KEYS[k].type == TYPE_STRING) {
        /* Reuses the parser's choice check on a scratch copy. */
        tpdiff_config scratch;
        char reason[REASON_MAX];
        if (parse_value(k, s, len, &scratch, reason, sizeof reason)) return reject(c, k, -1, "%s", reason);
      }
      return 0;
    }
    case TYPE_LIST: {
      tpdiff_float_list list;
      memcpy(&list, field, sizeof list);
      if (list.count < 0 || list.count > TPDIFF_MAX_STAGES)
        return reject(c, k, -1, "must have 0..%d entries, got %d", TPDIFF_MAX_STAGES, list.count);
      for (int i = 0; i < list.count; i++)
        if (!isfinite(list.values[i])) return reject(c, k, -1, "entry %d must be a finite number", i + 1);
      return 0;
    }
  }
  return 0;
}

static int check_config(const checker *c) {
  const tpdiff_config *cfg = c->cfg;
  for (int k = 0; k < KEY_COUNT; k++)
    if (check_one_key(c, k)) return -1;

  /* Shape rules; the single-key checks above already made every divisor positive. */
  if (cfg->model_dim % 4 != 0)
    return reject(c, KEY_model_dim, -1, "%d is not divisible by 4 (the 3-D position embedding splits it)",
                  cfg->model_dim);
  if (cfg->model_dim % cfg->model_heads != 0)
    return reject(c, KEY_model_dim, KEY_model_heads, "%d is not divisible by model.heads = %d", cfg->model_dim,
                  cfg->model_heads);
  if (cfg->data_height % cfg->model_patch != 0)
    return reject(c, KEY_data_height, KEY_model_patch, "%d is not divisible by model.patch = %d", cfg->data_height,
                  cfg->model_patch);
  if (cfg->data_width % cfg->model_patch != 0)
    return reject(c, KEY_data_width, KEY_model_patch, "%d is not divisible by model.patch = %d", cfg->data_width,
                  cfg->model_patch);
  int stages = cfg->pyramid_stages;
  int rate = 1 << (stages - 1);
  if (cfg->data_frames % rate != 0)
    return reject(c, KEY_data_frames, KEY_pyramid_stages, "%d is not divisible by 2^(pyramid.stages-1) = %d",
                  cfg->data_frames, rate);

  const tpdiff_float_list *cuts = &cfg->pyramid_cuts;
  char a[40], b[40];
  if (cuts->count != 0 && cuts->count != stages - 1)
    return reject(c, KEY_pyramid_cuts, KEY_pyramid_stages,
                  "expected pyramid.stages-1 = %d entries or [] (equal cuts), got %d", stages - 1, cuts->count);
  for (int i = 0; i < cuts->count; i++)
    if (!(cuts->values[i] > 0 && cuts->values[i] < 1))
      return reject(c, KEY_pyramid_cuts, -1, "entry %d = %s is not in (0, 1)", i + 1,
                    shortest(cuts->values[i], a, sizeof a));
  for (int i = 1; i < cuts->count; i++)
    if (!(cuts->values[i] < cuts->values[i - 1]))
      return reject(c, KEY_pyramid_cuts, -1, "must be strictly decreasing, but entry %d = %s follows %s", i + 1,
                    shortest(cuts->values[i], a, sizeof a), shortest(cuts->values[i - 1], b, sizeof b));

  if (cfg->sample_cfg != 1.0 && cfg->model_classes == 0)
    return reject(c, KEY_sample_cfg, KEY_model_classes,
                  "guidance needs a class-conditional model: sample.cfg = %s with model.classes = 0 "
                  "(set sample.cfg to 1 or model.classes > 0)",
                  shortest(cfg->sample_cfg, a, sizeof a));
  return 0;
}

int config_validate(const tpdiff_config *cfg, const char *origin, char *err, size_t err_size) {
  unsigned char from[KEY_COUNT];
  memset(from, FROM_DEFAULTS, sizeof from);
  const char *names[3] = {origin ? origin : "config", NULL, NULL};
  checker c = {cfg, from, names, err, err_size};
  return check_config(&c);
}

/* ---- YAML file ---- */

typedef struct {
  yaml_parser_t parser;
  yaml_event_t event;
  int have_event;
  const char *path;
  char *err;
  size_t err_size;
  tpdiff_config *cfg;
  unsigned char *from;
  unsigned long key_line[KEY_COUNT];     /* 1-based line where a key was set, 0 = not yet */
  unsigned long section_line[KEY_COUNT]; /* by the section's first key index */
} yaml_reader;

/* 1-based line of byte offset in the file (for reader errors, which only know the offset). */
static unsigned long line_of_offset(const char *path, size_t offset) {
  FILE *f = fopen(path, "rb");
  unsigned long line = 1;
  if (!f) return line;
  for (size_t i = 0; i < offset; i++) {
    int ch = fgetc(f);
    if (ch == EOF) break;
    line += ch == '\n';
  }
  fclose(f);
  return line;
}

static int yaml_failure(yaml_reader *r) {
  const yaml_parser_t *p = &r->parser;
  char where[64];
  const char *problem = p->problem ? p->problem : "unknown problem";
  switch (p->error) {
    case YAML_MEMORY_ERROR:
      return fail(r->err, r->err_size, r->path, NULL, "out of memory while reading YAML");
    case YAML_READER_ERROR:
      snprintf(where, sizeof where, "line %lu", line_of_offset(r->path, p->problem_offset));
      if (strcmp(problem, "input error") == 0)
        return fail(r->err, r->err_size, r->path, NULL, "cannot read: input error");
      return fail(r->err, r->err_size, r->path, where, "not a YAML text file: %s (byte %zu)", problem,
                  p->problem_offset);
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR:
      snprintf(where, sizeof where, "line %lu, column %lu", (unsigned long)p->problem_mark.line + 1,
               (unsigned long)p->problem_mark.column + 1);
      if (p->context)
        return fail(r->err, r->err_size, r->path, where, "YAML syntax error: %s (%s from line %lu)", problem,
                    p->context, (unsigned long)p->context_mark.line + 1);
      return fail(r->err, r->err_size, r->path, where, "YAML syntax error: %s", problem);
    default:
      return fail(r->err, r->err_size, r->path, NULL, "YAML error: %s", problem);
  }
}

static int next_event(yaml_reader *r) {
  if (r->have_event) yaml_event_delete(&r->event);
  r->have_event = 0;
  if (!yaml_parser_parse(&r->parser, &r->event)) return yaml_failure(r);
  r->have_event = 1;
  return 0;
}

static unsigned long event_line(const yaml_reader *r) { return (unsigned long)r->event.start_mark.line + 1; }

/* "a scalar 'x'", "a sequence", ... for messages about the current event. */
static const char *event_kind(const yaml_reader *r, char *buf, size_t size) {
  char value[SHOWN_MAX];
  switch (r->event.type) {
    case YAML_SCALAR_EVENT:
      snprintf(buf, size, "a scalar '%s'",
               shown((const char *)r->event.data.scalar.value, r->event.data.scalar.length, value, sizeof value));
      break;
    case YAML_SEQUENCE_START_EVENT:
      snprintf(buf, size, "a sequence");
      break;
    case YAML_MAPPING_START_EVENT:
      snprintf(buf, size, "a mapping");
      break;
    case YAML_ALIAS_EVENT:
      snprintf(buf, size, "an alias (anchors and aliases are not supported)");
      break;
    default:
      snprintf(buf, size, "something else");
      break;
  }
  return buf;
}

static const char *type_wanted(int key, char *buf, size_t size) {
  char list[REASON_MAX / 2];
  switch (KEYS[key].type) {
    case TYPE_INT:
      return "an integer";
    case TYPE_FLOAT:
      return "a number";
    case TYPE_BOOL:
      return "true or false";
    case TYPE_STRING:
      if (!choices_of(key)) return "a word";
      snprintf(buf, size, "one of %s", choices_text(choices_of(key), list, sizeof list));
      return buf;
    case TYPE_PATH:
      return "a path";
    case TYPE_LIST:
      return "a list of numbers like [0.6, 0.3] or []";
  }
  return "a value";
}

/* Reads a YAML sequence of numbers (the SEQUENCE_START event is current) into key's LIST field. */
static int read_list(yaml_reader *r, int key, const char *where) {
  tpdiff_float_list list;
  char kind[SHOWN_MAX + 64];
  memset(&list, 0, sizeof list);
  for (;;) {
    if (next_event(r)) return -1;
    if (r->event.type == YAML_SEQUENCE_END_EVENT) break;
    if (list.count == TPDIFF_MAX_STAGES)
      return fail(r->err, r->err_size, r->path, where, "at most %d entries (one per pyramid cut), got more",
                  TPDIFF_MAX_STAGES);
    if (r->event.type != YAML_SCALAR_EVENT)
      return fail(r->err, r->err_size, r->path, where, "entry %d: expected a number, got %s", list.count + 1,
                  event_kind(r, kind, sizeof kind));
    const char *text = (const char *)r->event.data.scalar.value;
    size_t len = r->event.data.scalar.length;
    double value;
    int rc = parse_double(text, len, &value);
    if (rc != 0) {
      char got_text[SHOWN_MAX + 16];
      return fail(r->err, r->err_size, r->path, where, "entry %d: expected a %snumber, %s", list.count + 1,
                  rc == -2 ? "finite " : "", got(text, len, got_text, sizeof got_text));
    }
    list.values[list.count++] = value;
  }
  memcpy(field_at(r->cfg, key), &list, sizeof list);
  return 0;
}

static int is_yaml_null(const yaml_event_t *event) {
  if (event->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
  const char *s = (const char *)event->data.scalar.value;
  size_t len = event->data.scalar.length;
  return len == 0 || (len == 1 && s[0] == '~') ||
         (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

/* Reads "key: value" pairs of one section (its MAPPING_START event is current). */
static int read_section(yaml_reader *r, int section_first) {
  const char *section = KEYS[section_first].section;
  char where[SHOWN_MAX + 32], kind[SHOWN_MAX + 64], list[REASON_MAX / 2], wanted[REASON_MAX / 2];
  for (;;) {
    if (next_event(r)) return -1;
    if (r->event.type == YAML_MAPPING_END_EVENT) return 0;
    if (r->event.type != YAML_SCALAR_EVENT)
      return fail(r->err, r->err_size, r->path, section, "keys must be plain words, got %s",
                  event_kind(r, kind, sizeof kind));
    const char *name = (const char *)r->event.data.scalar.value;
    size_t name_len = r->event.data.scalar.length;
    int key = find_key(section_first, name, name_len);
    if (key < 0) {
      char name_shown[SHOWN_MAX];
      snprintf(where, sizeof where, "%s.%s", section, shown(name, name_len, name_shown, sizeof name_shown));
      return fail(r->err, r->err_size, r->path, where, "unknown key (known keys of %s: %s)", section,
                  known_keys(section_first, list, sizeof list));
    }
    snprintf(where, sizeof where, "%s.%s", section, KEYS[key].key);
    if (r->key_line[key])
      return fail(r->err, r->err_size, r->path, where, "duplicate key (first set on line %lu)", r->key_line[key]);
    r->key_line[key] = event_line(r);

    if (next_event(r)) return -1;
    if (r->event.type == YAML_SCALAR_EVENT && KEYS[key].type != TYPE_LIST) {
      const char *text = (const char *)r->event.data.scalar.value;
      size_t len = r->event.data.scalar.length;
      if (KEYS[key].type == TYPE_PATH && is_yaml_null(&r->event)) len = 0; /* path: ~ means no path */
      char reason[REASON_MAX];
      if (parse_value(key, text, len, r->cfg, reason, sizeof reason))
        return fail(r->err, r->err_size, r->path, where, "%s", reason);
    } else if (r->event.type == YAML_SEQUENCE_START_EVENT && KEYS[key].type == TYPE_LIST) {
      if (read_list(r, key, where)) return -1;
    } else {
      return fail(r->err, r->err_size, r->path, where, "expected %s, got %s", type_wanted(key, wanted, sizeof wanted),
                  event_kind(r, kind, sizeof kind));
    }
    r->from[key] = FROM_FILE;
  }
}

static int read_document(yaml_reader *r) {
  char kind[SHOWN_MAX + 64], list[REASON_MAX / 2];
  if (next_event(r)) return -1; /* stream start */
  if (next_event(r)) return -1;
  if (r->event.type == YAML_STREAM_END_EVENT)
    return fail(r->err, r->err_size, r->path, NULL, "empty file (expected sections such as model:, data:, train:)");
  if (next_event(r)) return -1; /* the document start is current: the document's root follows */
  if (r->event.type == YAML_SCALAR_EVENT && is_yaml_null(&r->event))
    return fail(r->err, r->err_size, r->path, NULL, "empty file (expected sections such as model:, data:, train:)");
  if (r->event.type != YAML_MAPPING_START_EVENT)
    return fail(r->err, r->err_size, r->path, NULL, "the top level must be a mapping of sections (%s), got %s",
                known_sections(list, sizeof list), event_kind(r, kind, sizeof kind));
  for (;;) {
    if (next_event(r)) return -1;
    if (r->event.type == YAML_MAPPING_END_EVENT) break;
    if (r->event.type != YAML_SCALAR_EVENT)
      return fail(r->err, r->err_size, r->path, NULL, "section names must be plain words, got %s",
                  event_kind(r, kind, sizeof kind));
    const char *name = (const char *)r->event.data.scalar.value;
    size_t name_len = r->event.data.scalar.length;
    int first = find_section(name, name_len);
    if (first < 0) {
      char name_shown[SHOWN_MAX];
      return fail(r->err, r->err_size, r->path, shown(name, name_len, name_shown, sizeof name_shown),
                  "unknown section (known sections: %s)", known_sections(list, sizeof list));
    }
    const char *section = KEYS[first].section;
    if (r->section_line[first])
      return fail(r->err, r->err_size, r->path, section, "duplicate section (first on line %lu)",
                  r->section_line[first]);
    r->section_line[first] = event_line(r);
    if (next_event(r)) return -1;
    if (r->event.type != YAML_MAPPING_START_EVENT)
      return fail(r->err, r->err_size, r->path, section,
                  "expected a mapping of keys (indented key: value lines), got %s", event_kind(r, kind, sizeof kind));
    if (read_section(r, first)) return -1;
  }
  if (next_event(r)) return -1; /* document end */
  if (next_event(r)) return -1;
  if (r->event.type != YAML_STREAM_END_EVENT)
    return fail(r->err, r->err_size, r->path, NULL, "more than one YAML document (a config is one mapping)");
  return 0;
}

static int load_file(tpdiff_config *cfg, unsigned char *from, const char *path, char *err, size_t err_size) {
  FILE *f = fopen(path, "rb");
  if (!f) return fail(err, err_size, path, NULL, "cannot read: %s", strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(f);
    return fail(err, err_size, path, NULL, "cannot read: %s", strerror(EISDIR));
  }
  yaml_reader *r = calloc(1, sizeof *r);
  if (!r || !yaml_parser_initialize(&r->parser)) {
    free(r);
    fclose(f);
    return fail(err, err_size, path, NULL, "out of memory while reading YAML");
  }
  yaml_parser_set_input_file(&r->parser, f);
  r->path = path;
  r->err = err;
  r->err_size = err_size;
  r->cfg = cfg;
  r->from = from;
  /* First pass: syntax only, so a YAML error anywhere is reported as such rather than as a wrong value
   * that happened to come before it. */
  int rc = 0, depth = 0;
  do {
    rc = next_event(r);
    if (rc == 0 && (r->event.type == YAML_SEQUENCE_START_EVENT || r->event.type == YAML_MAPPING_START_EVENT) &&
        ++depth > MAX_NESTING) {
      /* A config nests 3 deep (sections, keys, a list); stopping early also keeps libyaml away from
       * deeply nested flow collections, on which its scanner takes quadratic time. */
      char where[32];
      snprintf(where, sizeof where, "line %lu", event_line(r));
      rc = fail(err, err_size, path, where, "collections nested more than %d deep (a config is sections of key: value)",
                MAX_NESTING);
    }
    if (rc == 0 && (r->event.type == YAML_SEQUENCE_END_EVENT || r->event.type == YAML_MAPPING_END_EVENT)) depth--;
  } while (rc == 0 && r->event.type != YAML_STREAM_END_EVENT);
  if (r->have_event) yaml_event_delete(&r->event);
  r->have_event = 0;
  yaml_parser_delete(&r->parser);
  if (rc == 0) {
    rewind(f);
    if (!yaml_parser_initialize(&r->parser)) {
      free(r);
      fclose(f);
      return fail(err, err_size, path, NULL, "out of memory while reading YAML");
    }
    yaml_parser_set_input_file(&r->parser, f);
    rc = read_document(r);
    if (r->have_event) yaml_event_delete(&r->event);
    yaml_parser_delete(&r->parser);
  }
  free(r);
  fclose(f);
  return rc;
}

/* ---- command-line overrides ---- */

static int apply_override(tpdiff_config *cfg, unsigned char *from, const char *arg, char *err, size_t err_size) {
  char arg_shown[SHOWN_MAX], list[REASON_MAX / 2];
  if (!arg) return fail(err, err_size, COMMAND_LINE, "(null)", "expected --section.key=value");
  shown(arg, strlen(arg), arg_shown, sizeof arg_shown);
  if (strncmp(arg, "--", 2) != 0) return fail(err, err_size, COMMAND_LINE, arg_shown, "expected --section.key=value");
  const char *name = arg + 2, *eq = strchr(name, '=');
  const char *dot = eq ? memchr(name, '.', (size_t)(eq - name)) : NULL;
  if (!dot) return fail(err, err_size, COMMAND_LINE, arg_shown, "expected --section.key=value");
  int first = find_section(name, (size_t)(dot - name));
  if (first < 0)
    return fail(err, err_size, COMMAND_LINE, arg_shown, "unknown section (known sections: %s)",
                known_sections(list, sizeof list));
  int key = find_key(first, dot + 1, (size_t)(eq - dot - 1));
  if (key < 0)
    return fail(err, err_size, COMMAND_LINE, arg_shown, "unknown key (known keys of %s: %s)", KEYS[first].section,
                known_keys(first, list, sizeof list));
  char reason[REASON_MAX];
  if (parse_value(key, eq + 1, strlen(eq + 1), cfg, reason, sizeof reason))
    return fail(err, err_size, COMMAND_LINE, arg_shown, "%s", reason);
  from[key] = FROM_COMMAND_LINE;
  return 0;
}

int config_load(tpdiff_config *cfg, const char *path, int nargs, char **args, char *err, size_t err_size) {
  if (err && err_size) err[0] = '\0';
  /* Work on a copy so that a failed load leaves *cfg as it was. */
  tpdiff_config *work = malloc(sizeof *work);
  if (!work) return fail(err, err_size, path ? path : COMMAND_LINE, NULL, "out of memory");
  unsigned char from[KEY_COUNT];
  memset(from, FROM_DEFAULTS, sizeof from);
  config_defaults(work);
  int rc = 0;
  if (path) {
    if (strlen(path) >= sizeof work->source)
      rc = fail(err, err_size, path, NULL, "config path longer than %zu bytes", sizeof work->source - 1);
    else
      memcpy(work->source, path, strlen(path));
    if (rc == 0) rc = load_file(work, from, path, err, err_size);
  }
  if (rc == 0 && nargs > 0 && !args) rc = fail(err, err_size, COMMAND_LINE, NULL, "no arguments given");
  for (int i = 0; rc == 0 && i < nargs; i++) rc = apply_override(work, from, args[i], err, err_size);
  if (rc == 0) {
    const char *names[3] = {"defaults", path ? path : "config", COMMAND_LINE};
    checker c = {work, from, names, err, err_size};
    rc = check_config(&c);
  }
  if (rc == 0) memcpy(cfg, work, sizeof *cfg);
  free(work);
  return rc;
}

/* ---- printing ---- */

/* A string YAML reads back as the same string without quotes: a plain word that cannot be taken for a
 * number, a boolean, null or YAML syntax. */
static int plain_word(const char *s) {
  static const char *const special[] = {"null", "true", "false", "yes", "no", "on", "off", "y", "n"};
  if (!s[0] || (s[0] >= '0' && s[0] <= '9') || s[0] == '-' || s[0] == '+' || s[0] == '.') return 0;
  for (const char *p = s; *p; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
             c == '/' || c == '-' || c == '+';
    if (!ok) return 0;
  }
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
    size_t n = strlen(special[i]);
    if (strlen(s) != n) continue;
    size_t j = 0;
    while (j < n && (s[j] | 0x20) == special[i][j]) j++;
    if (j == n) return 0;
  }
  return 1;
}

/* Writes s as a YAML scalar, double-quoted with escapes when a plain word would not read back. */
static void write_string(FILE *out, const char *s, size_t size) {
  size_t len = strnlen(s, size);
  char copy[TPDIFF_PATH_MAX];
  memcpy(copy, s, len < sizeof copy ? len : sizeof copy - 1);
  copy[len < sizeof copy ? len : sizeof copy - 1] = '\0';
  if (plain_word(copy)) {
    fputs(copy, out);
    return;
  }
  const unsigned char *u = (const unsigned char *)copy;
  len = strlen(copy);
  fputc('"', out);
  for (size_t i = 0; i < len;) {
    unsigned long cp;
    size_t n = utf8_sequence(u + i, len - i, &cp);
    if (n == 0) { /* not UTF-8: no YAML text holds it; keep the output valid YAML */
      fprintf(out, "\\x%02x", u[i]);
      i++;
      continue;
    }
    if (cp == '"' || cp == '\\') {
      fputc('\\', out);
      fputc((int)cp, out);
    } else if (cp == '\n') {
      fputs("\\n", out);
    } else if (cp == '\t') {
      fputs("\\t", out);
    } else if (cp == '\r') {
      fputs("\\r", out);
    } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
      fprintf(out, "\\x%02lx", cp);
    } else if (cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF) {
      /* line separators and non-printables that a YAML reader refuses or folds when raw */
      fprintf(out, "\\u%04lx", cp);
    } else {
      fwrite(u + i, 1, n, out);
    }
    i += n;
  }
  fputc('"', out);
}

static void write_value(FILE *out, const tpdiff_config *cfg, int key) {
  const void *field = field_at_const(cfg, key);
  char number[48];
  switch (KEYS[key].type) {
    case TYPE_INT:
    case TYPE_BOOL: {
      int v;
      memcpy(&v, field, sizeof v);
      if (KEYS[key].type == TYPE_BOOL)
        fputs(v ? "true" : "false", out);
      else
        fprintf(out, "%d", v);
      break;
    }
    case TYPE_FLOAT: {
      double v;
      memcpy(&v, field, sizeof v);
      format_double(v, number, sizeof number);
      fputs(number, out);
      break;
    }
    case TYPE_STRING:
    case TYPE_PATH:
      write_string(out, field, KEYS[key].size);
      break;
    case TYPE_LIST: {
      tpdiff_float_list list;
      memcpy(&list, field, sizeof list);
      int count = list.count < 0 ? 0 : list.count > TPDIFF_MAX_STAGES ? TPDIFF_MAX_STAGES : list.count;
      fputc('[', out);
      for (int i = 0; i < count; i++) {
        format_double(list.values[i], number, sizeof number);
        fprintf(out, "%s%s", i ? ", " : "", number);
      }
      fputc(']', out);
      break;
    }
  }
}

void config_write_yaml(const tpdiff_config *cfg, FILE *out) {
  for (int k = 0; k < KEY_COUNT; k++) {
    if (k == 0 || !same_section(k, k - 1)) fprintf(out, "%s:\n", KEYS[k].section);
    fprintf(out, "  %s: ", KEYS[k].key);
    write_value(out, cfg, k);
    fputc('\n', out);
  }
}

static const char *default_shown(int k) { return KEYS[k].default_text[0] ? KEYS[k].default_text : "\"\""; }

void config_write_help(FILE *out) {
  int name_width = (int)strlen("key"), type_width = (int)strlen("type"), default_width = (int)strlen("default");
  for (int k = 0; k < KEY_COUNT; k++) {
    int name = (int)(strlen(KEYS[k].section) + 1 + strlen(KEYS[k].key));
    int type = (int)strlen(KEYS[k].type_name), def = (int)strlen(default_shown(k));
    if (name > name_width) name_width = name;
    if (type > type_width) type_width = type;
    if (def > default_width) default_width = def;
  }
  fprintf(out, "%-*s  %-*s  %-*s  %s\n", name_width, "key", type_width, "type", default_width, "default", "meaning");
  for (int k = 0; k < KEY_COUNT; k++) {
    char name[64], list[REASON_MAX / 2];
    snprintf(name, sizeof name, "%s.%s", KEYS[k].section, KEYS[k].key);
    fprintf(out, "%-*s  %-*s  %-*s  %s", name_width, name, type_width, KEYS[k].type_name, default_width,
            default_shown(k), KEYS[k].doc);
    if (choices_of(k)) fprintf(out, " [one of: %s]", choices_text(choices_of(k), list, sizeof list));
    fputc('\n', out);
  }
}
