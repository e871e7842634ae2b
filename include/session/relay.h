/*
 * session/relay.h — forwarding between a client and its active backend.
 *
 * Bytes are forwarded without parsing bodies and without waiting for whole
 * messages: only the 5-byte header of each message is read, to keep track of
 * message boundaries (so pgturnout can inject or intercept at a boundary)
 * and of the transaction status in ReadyForQuery. Backpressure: when the
 * receiving side's output grows over RELAY_HIGH_WATERMARK the sending side
 * stops being read until the output drains under RELAY_LOW_WATERMARK.
 */
#ifndef PGT_SESSION_RELAY_H
#define PGT_SESSION_RELAY_H

#define RELAY_HIGH_WATERMARK (256 * 1024)
#define RELAY_LOW_WATERMARK (64 * 1024)

struct client;
struct server;

/* Processes what the client has sent (CL_ACTIVE). */
void relay_client_input(struct client *c);
/* Processes what a READY server has sent. */
void relay_server_input(struct server *s);
/* Hands a ReadyForQuery that dual writes held back to the client, and runs
 * what follows it (transaction boundary, resuming the client's input). */
void relay_release_ready(struct client *c, char status);
/* Output of the client drained: resume reading the server. */
void relay_client_drained(struct client *c);
/* Output of the server drained: resume reading the client. */
void relay_server_drained(struct server *s);

#endif
