/*
 * core/wbuf.h — a growable byte buffer for building messages.
 *
 * Used to assemble protocol messages before handing them to the connection
 * layer in one piece. A wbuf that failed to grow is "broken": further writes
 * are ignored and wbuf_ok() says false, so builders check once at the end.
 */
#ifndef PGT_CORE_WBUF_H
#define PGT_CORE_WBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wbuf {
	uint8_t *data;          /* owns (unless fixed) */
	size_t len;
	size_t cap;
	bool failed;
	bool fixed;             /* data is caller storage; never realloc'd */
};

/* A buffer over caller storage (no allocation until it overflows, then it fails). */
void wbuf_init_fixed(struct wbuf *b, uint8_t *storage, size_t cap);
void wbuf_init(struct wbuf *b);
void wbuf_free(struct wbuf *b);
void wbuf_reset(struct wbuf *b);
bool wbuf_ok(const struct wbuf *b);

void wbuf_put(struct wbuf *b, const void *p, size_t n);
void wbuf_put_u8(struct wbuf *b, uint8_t v);
void wbuf_put_u16(struct wbuf *b, uint16_t v);
void wbuf_put_u32(struct wbuf *b, uint32_t v);
void wbuf_put_str(struct wbuf *b, const char *s);   /* with its NUL */
/* Overwrites 4 bytes at offset OFF with V (big-endian). */
void wbuf_patch_u32(struct wbuf *b, size_t off, uint32_t v);

#endif
