/* config_internal.h — what the parts of the config module share, private to trainer/config*.c: the key
 * table expanded from TPDIFF_CONFIG_KEYS, the value parser, the checker entry point and the bounded
 * text helpers that build one-line error messages.
 *
 * The module is split by job: config.c (table, value parsing, defaults, text helpers), config_check.c
 * (validation), config_yaml.c (YAML files, command-line overrides, config_load) and config_print.c
 * (YAML and help printouts). Shared functions carry the cfg_ prefix because libtpdiff.a links them
 * with every other module. */
#ifndef TPDIFF_CONFIG_INTERNAL_H
#define TPDIFF_CONFIG_INTERNAL_H

#include <stddef.h>

#include "trainer/config.h"

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

/* Every key in TPDIFF_CONFIG_KEYS order, indexed by KEY_<section>_<key>; a section's keys are adjacent. */
extern const key_spec cfg_keys[KEY_COUNT];

/* Where a key's value came from; a larger number is the more recent source. */
enum { FROM_DEFAULTS = 0, FROM_FILE = 1, FROM_COMMAND_LINE = 2 };

#define SHOWN_MAX 96 /* bytes of a quoted input value in a message, "..." included */
#define REASON_MAX 640 /* room for the list of a section's keys (train has 22) */

/* Allowed values of a STRING key as "a|b|c" (from TPDIFF_CONFIG_CHOICES), or NULL when any word goes. */
const char *cfg_choices_of(int key);

/* Address of key's field inside cfg. */
void *cfg_field_at(tpdiff_config *cfg, int key);
const void *cfg_field_at_const(const tpdiff_config *cfg, int key);

/* 1 if keys a and b belong to the same section. */
int cfg_same_section(int a, int b);

/* ---- bounded text helpers ---- */

/* Appends printf output to buf[size] at *used; never overflows, keeps buf terminated. */
void cfg_append(char *buf, size_t size, size_t *used, const char *fmt, ...);

/* Length (1..4) of the valid UTF-8 sequence at s[0..len) with its code point, or 0 if invalid. */
size_t cfg_utf8_sequence(const unsigned char *s, size_t len, unsigned long *code_point);

/* Renders input text[0..len) for a message: one line, control bytes and invalid UTF-8 escaped, cut with
 * "..." to fit buf[size] (size >= 8). Returns buf. */
const char *cfg_shown(const char *text, size_t len, char *buf, size_t size);

/* Sets err to "<origin>: <where>: <reason>" (or "<origin>: <reason>" without where) as one line;
 * returns -1. Does nothing but return -1 when err is NULL or err_size is 0. */
int cfg_fail(char *err, size_t err_size, const char *origin, const char *where, const char *fmt, ...);

/* "a, b, c" from "a|b|c", into buf; returns buf. */
const char *cfg_choices_text(const char *choices, char *buf, size_t size);

/* "got 'text'" or "got an empty value", into buf; returns buf. */
const char *cfg_got(const char *text, size_t len, char *buf, size_t size);

/* Shortest %g text that reads back to exactly v (for messages and for write_yaml); returns buf. */
const char *cfg_shortest(double v, char *buf, size_t size);

/* ---- value parsing: one parser for defaults, YAML scalars and command-line values ---- */

/* Full decimal number text[0..len) (no hexadecimal floats): 0, -1 if not a number, -2 if not finite. */
int cfg_parse_double(const char *text, size_t len, double *out);

/* Parses text[0..len) as a value of key into the field of cfg. On failure writes the reason (no origin,
 * no key) into reason[reason_size], leaves the field unchanged and returns -1. */
int cfg_parse_value(int key, const char *text, size_t len, tpdiff_config *cfg, char *reason, size_t reason_size);

/* ---- validation ---- */

/* Checks every rule of config_validate on cfg. from[KEY_COUNT] holds each key's FROM_* source and
 * origin_names[FROM_*] the name of each source: a message names the most recent source of the keys a
 * broken rule involves. Returns 0, or -1 with err set. */
int cfg_check(const tpdiff_config *cfg, const unsigned char *from, const char *const *origin_names, char *err,
              size_t err_size);

#endif
