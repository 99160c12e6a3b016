/*
 * The growing text buffer the wrapper builds its records in, and JSON strings in it.
 * Used by record.c (the records' members) and payload.c (the `running` members).
 */
#include "wrapper.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void add(struct text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 512;
        while (t->len + n + 1 > cap) cap *= 2;
        char *grown = realloc(t->data, cap);
        if (grown == NULL) abort();
        t->data = grown;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

void addf(struct text *t, const char *format, ...) {
    char small[256];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(small, sizeof small, format, args);
    va_end(args);
    if (n < 0) abort();
    if ((size_t)n < sizeof small) {
        add(t, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) abort();
    va_start(args, format);
    vsnprintf(big, (size_t)n + 1, format, args);
    va_end(args);
    add(t, big, (size_t)n);
    free(big);
}

/* The length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 when it is not one: Python's json refuses those. */
static size_t utf8_length(const unsigned char *s) {
    unsigned char low = 0x80, high = 0xbf;
    size_t n;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        if (s[0] == 0xe0) low = 0xa0;
        if (s[0] == 0xed) high = 0x9f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        if (s[0] == 0xf0) low = 0x90;
        if (s[0] == 0xf4) high = 0x8f;
    } else {
        return 0;
    }
    if (s[1] < low || s[1] > high) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return n;
}

/* A JSON string; bytes that are not UTF-8 (a file name, say) become U+FFFD. */
void add_string(struct text *t, const char *s) {
    ADD_LITERAL(t, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        if (*p == '"' || *p == '\\') {
            ADD_LITERAL(t, "\\");
            add(t, (const char *)p++, 1);
        } else if (*p < 0x20) {
            addf(t, "\\u%04x", *p++);
        } else if (*p < 0x80) {
            add(t, (const char *)p++, 1);
        } else {
            size_t n = utf8_length(p);
            if (n == 0) {
                ADD_LITERAL(t, "\\ufffd");
                p++;
            } else {
                add(t, (const char *)p, n);
                p += n;
            }
        }
    }
    ADD_LITERAL(t, "\"");
}
