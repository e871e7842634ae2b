/*
 * core/list.h — intrusive doubly linked list (a node lives inside its owner).
 */
#ifndef PGT_CORE_LIST_H
#define PGT_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
	struct list_node *next;   /* borrows */
	struct list_node *prev;   /* borrows */
};

#define LIST_INIT(head) { &(head), &(head) }
#define list_entry(node, type, member) ((type *)((char *)(node) - offsetof(type, member)))
#define list_for_each_safe(pos, tmp, head) \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); (pos) = (tmp), (tmp) = (pos)->next)

static inline void list_init(struct list_node *h) { h->next = h->prev = h; }
static inline bool list_empty(const struct list_node *h) { return h->next == h; }
static inline void list_append(struct list_node *h, struct list_node *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}
static inline void list_del(struct list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

#endif
