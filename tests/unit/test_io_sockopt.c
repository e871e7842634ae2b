/*
 * Unit tests of io/sockopt.c: keepalive settings are set on a TCP socket
 * (read back with getsockopt), zeros leave the system's values, off turns
 * SO_KEEPALIVE off, and a unix socket gets only SO_KEEPALIVE.
 */
#include "io/sockopt.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

static int get_opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);
	assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
	return v;
}

static void test_sockopt_sets_every_keepalive_option(void **state)
{
	(void)state;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct keepalive_opts o = { true, 17, 5, 4, 12345 };
	assert_int_equal(sockopt_keepalive(fd, &o), 0);
	assert_int_equal(get_opt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
	assert_int_equal(get_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 17);
	assert_int_equal(get_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 5);
	assert_int_equal(get_opt(fd, IPPROTO_TCP, TCP_KEEPCNT), 4);
	assert_int_equal(get_opt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 12345);
	close(fd);
}

static void test_sockopt_zero_keeps_the_system_values(void **state)
{
	(void)state;
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd < 0)
		fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	int idle = get_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE);
	int intvl = get_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL);
	int cnt = get_opt(fd, IPPROTO_TCP, TCP_KEEPCNT);
	struct keepalive_opts o = { true, 0, 0, 0, 0 };
	assert_int_equal(sockopt_keepalive(fd, &o), 0);
	assert_int_equal(get_opt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
	assert_int_equal(get_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE), idle);
	assert_int_equal(get_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL), intvl);
	assert_int_equal(get_opt(fd, IPPROTO_TCP, TCP_KEEPCNT), cnt);
	assert_int_equal(get_opt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
	close(fd);
}

static void test_sockopt_off_clears_keepalive_but_keeps_user_timeout(void **state)
{
	(void)state;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	int idle = get_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE);
	struct keepalive_opts on = { true, 0, 0, 0, 0 };
	assert_int_equal(sockopt_keepalive(fd, &on), 0);
	struct keepalive_opts off = { false, 30, 0, 0, 2000 };
	assert_int_equal(sockopt_keepalive(fd, &off), 0);
	assert_int_equal(get_opt(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
	assert_int_equal(get_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE), idle);
	assert_int_equal(get_opt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 2000);
	close(fd);
}

static void test_sockopt_unix_socket_gets_only_so_keepalive(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct keepalive_opts o = { true, 17, 5, 4, 1000 };
	assert_int_equal(sockopt_keepalive(sv[0], &o), 0);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sockopt_sets_every_keepalive_option),
		cmocka_unit_test(test_sockopt_zero_keeps_the_system_values),
		cmocka_unit_test(test_sockopt_off_clears_keepalive_but_keeps_user_timeout),
		cmocka_unit_test(test_sockopt_unix_socket_gets_only_so_keepalive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
