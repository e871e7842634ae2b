/*
 * core/wbuf.c — growable byte buffer; see core/wbuf.h.
 */
#include "core/wbuf.h"

#include <stdlib.h>
#include <string.h>

void wbuf_init(struct wbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void wbuf_init_fixed(struct wbuf *b, uint8_t *storage, size_t cap)
{
	b->data = storage;
	b->len = 0;
	b->cap = cap;
	b->failed = false;
	b->fixed = true;
}

void wbuf_free(struct wbuf *b)
{
	if (!b->fixed)
		free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void wbuf_reset(struct wbuf *b)
{
	b->len = 0;
	b->failed = false;
}

bool wbuf_ok(const struct wbuf *b)
{
	return !b->failed;
}

static bool wbuf_reserve(struct wbuf *b, size_t n)
{
	if (b->failed)
		return false;
	if (b->len + n <= b->cap)
		return true;
	if (b->fixed || b->len + n < b->len) {
		b->failed = true;
		return false;
	}
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n)
		cap *= 2;
	uint8_t *p = realloc(b->data, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void wbuf_put(struct wbuf *b, const void *p, size_t n)
{
	if (n == 0 || !wbuf_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void wbuf_put_u8(struct wbuf *b, uint8_t v)
{
	wbuf_put(b, &v, 1);
}

void wbuf_put_u16(struct wbuf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	wbuf_put(b, x, 2);
}

void wbuf_put_u32(struct wbuf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	wbuf_put(b, x, 4);
}

void wbuf_put_str(struct wbuf *b, const char *s)
{
	wbuf_put(b, s, strlen(s) + 1);
}

void wbuf_patch_u32(struct wbuf *b, size_t off, uint32_t v)
{
	if (b->failed || off + 4 > b->len)
		return;
	b->data[off] = (uint8_t)(v >> 24);
	b->data[off + 1] = (uint8_t)(v >> 16);
	b->data[off + 2] = (uint8_t)(v >> 8);
	b->data[off + 3] = (uint8_t)v;
}
