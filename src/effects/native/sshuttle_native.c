/*
 * The few socket options Node cannot reach: the original destination of a
 * connection captured by a NAT redirect (nft `redirect`, iptables REDIRECT),
 * and IP_TRANSPARENT for the tproxy method.
 *
 *   originalDst(fd, family)        -> { ip, port }   getsockopt SO_ORIGINAL_DST
 *   setTransparent(fd, family)     -> undefined      setsockopt IP(V6)_TRANSPARENT = 1
 *   getTransparent(fd, family)     -> boolean        getsockopt IP(V6)_TRANSPARENT
 *
 * and the tproxy sockets, which must be transparent before they are bound:
 *
 *   transparentSocket(family, kind, ip, port, backlog) -> fd
 *       kind 'tcp': a listening TCP socket (IP(V6)_TRANSPARENT set before
 *       bind, IPv6 only for family 6), ready for net.Server#listen({ fd }).
 *       kind 'udp': a bound UDP socket that also asks for the original
 *       destination of every datagram (IP_RECVORIGDSTADDR /
 *       IPV6_RECVORIGDSTADDR).
 *   udpReceive(fd, family, onDatagram) -> { close() }
 *       watches the UDP socket with libuv (uv_poll: no busy waiting), reads
 *       every queued datagram with recvmsg and calls
 *       onDatagram(data, srcIp, srcPort, dstIp, dstPort) (dst null when the
 *       kernel gave none). close() stops watching and closes the fd.
 *   sendFrom(family, fromIp, fromPort, toIp, toPort, data) -> bytes sent
 *       sends one datagram from an address that need not be ours (a socket
 *       with SO_REUSEADDR + IP(V6)_TRANSPARENT bound to from, kept for the
 *       next datagram from there), as sshuttle answers local applications
 *       for remote peers.
 *
 * Failures throw an Error whose `code` is the errno name (e.g. 'ENOENT' when
 * conntrack knows no such connection, 'ENOPROTOOPT' when conntrack is not
 * loaded), with `errno` (number) and `syscall` set like Node's own errors.
 */
#define ADDON_NAME "sshuttle_native"
#include "napi_errors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#ifdef __linux__
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

/* From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>;
 * spelled out so the build needs no kernel headers. */
#define SSH_SO_ORIGINAL_DST 80
#define SSH_IP6T_SO_ORIGINAL_DST 80
#define SSH_SOL_IP 0
#define SSH_SOL_IPV6 41
#define SSH_IP_TRANSPARENT 19
#define SSH_IPV6_TRANSPARENT 75
#define SSH_IP_RECVORIGDSTADDR 20
#define SSH_IP_ORIGDSTADDR 20
#define SSH_IPV6_RECVORIGDSTADDR 74
#define SSH_IPV6_ORIGDSTADDR 74

/* Reads (fd: int32, family: 4|6) from the call; returns 0 and throws on bad input. */
static int read_fd_family(napi_env env, napi_callback_info info, int *fd, int *family) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  napi_valuetype t0, t1;
  if (argc < 2 || napi_typeof(env, argv[0], &t0) != napi_ok ||
      napi_typeof(env, argv[1], &t1) != napi_ok || t0 != napi_number || t1 != napi_number) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (fd: number, family: 4 | 6)");
    return 0;
  }
  int32_t f, fam;
  if (napi_get_value_int32(env, argv[0], &f) != napi_ok ||
      napi_get_value_int32(env, argv[1], &fam) != napi_ok) return 0;
  if (fam != 4 && fam != 6) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "family must be 4 or 6");
    return 0;
  }
  *fd = f;
  *family = fam;
  return 1;
}

static napi_value original_dst(napi_env env, napi_callback_info info) {
  int fd, family;
  if (!read_fd_family(env, info, &fd, &family)) return NULL;
#ifdef __linux__
  char text[INET6_ADDRSTRLEN];
  int port;
  if (family == 4) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    if (getsockopt(fd, SSH_SOL_IP, SSH_SO_ORIGINAL_DST, &sa, &len) != 0) {
      throw_errno(env, errno, "getsockopt(SO_ORIGINAL_DST)");
      return NULL;
    }
    inet_ntop(AF_INET, &sa.sin_addr, text, sizeof text);
    port = ntohs(sa.sin_port);
  } else {
    struct sockaddr_in6 sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    if (getsockopt(fd, SSH_SOL_IPV6, SSH_IP6T_SO_ORIGINAL_DST, &sa, &len) != 0) {
      throw_errno(env, errno, "getsockopt(IP6T_SO_ORIGINAL_DST)");
      return NULL;
    }
    inet_ntop(AF_INET6, &sa.sin6_addr, text, sizeof text);
    port = ntohs(sa.sin6_port);
  }
  napi_value result, jip, jport;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &jip));
  CHECK(napi_create_int32(env, port, &jport));
  CHECK(napi_set_named_property(env, result, "ip", jip));
  CHECK(napi_set_named_property(env, result, "port", jport));
  return result;
#else
  (void)fd;
  (void)family;
  throw_errno(env, ENOSYS, "getsockopt(SO_ORIGINAL_DST)");
  return NULL;
#endif
}

static napi_value set_transparent(napi_env env, napi_callback_info info) {
  int fd, family;
  if (!read_fd_family(env, info, &fd, &family)) return NULL;
#ifdef __linux__
  int one = 1;
  int rc = family == 4
               ? setsockopt(fd, SSH_SOL_IP, SSH_IP_TRANSPARENT, &one, sizeof one)
               : setsockopt(fd, SSH_SOL_IPV6, SSH_IPV6_TRANSPARENT, &one, sizeof one);
  if (rc != 0) {
    throw_errno(env, errno, family == 4 ? "setsockopt(IP_TRANSPARENT)" : "setsockopt(IPV6_TRANSPARENT)");
    return NULL;
  }
  napi_value undef;
  CHECK(napi_get_undefined(env, &undef));
  return undef;
#else
  (void)fd;
  (void)family;
  throw_errno(env, ENOSYS, "setsockopt(IP_TRANSPARENT)");
  return NULL;
#endif
}

static napi_value get_transparent(napi_env env, napi_callback_info info) {
  int fd, family;
  if (!read_fd_family(env, info, &fd, &family)) return NULL;
#ifdef __linux__
  int value = 0;
  socklen_t len = sizeof value;
  int rc = family == 4 ? getsockopt(fd, SSH_SOL_IP, SSH_IP_TRANSPARENT, &value, &len)
                       : getsockopt(fd, SSH_SOL_IPV6, SSH_IPV6_TRANSPARENT, &value, &len);
  if (rc != 0) {
    throw_errno(env, errno, family == 4 ? "getsockopt(IP_TRANSPARENT)" : "getsockopt(IPV6_TRANSPARENT)");
    return NULL;
  }
  napi_value result;
  CHECK(napi_get_boolean(env, value != 0, &result));
  return result;
#else
  (void)fd;
  (void)family;
  throw_errno(env, ENOSYS, "getsockopt(IP_TRANSPARENT)");
  return NULL;
#endif
}

#ifdef __linux__
/* ------------------------------------------------------------------------ */
/* tproxy sockets                                                            */
/* ------------------------------------------------------------------------ */

static int get_int_arg(napi_env env, napi_value v, int32_t *out, const char *what) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number ||
      napi_get_value_int32(env, v, out) != napi_ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a number", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
  }
  return 1;
}

static int get_str_arg(napi_env env, napi_value v, char *buf, size_t size, const char *what) {
  napi_valuetype t;
  size_t len;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string ||
      napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok || len + 1 >= size) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a short string", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
  }
  return 1;
}

/* Fills sa from (family, ip, port); 0 and a thrown error when ip does not parse. */
static int make_sockaddr(napi_env env, int family, const char *ip, int port,
                         struct sockaddr_storage *sa, socklen_t *len) {
  memset(sa, 0, sizeof *sa);
  if (port < 0 || port > 65535) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "port must be 0..65535");
    return 0;
  }
  if (family == 4) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &s4->sin_addr) != 1) goto bad;
    *len = sizeof *s4;
  } else {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, ip, &s6->sin6_addr) != 1) goto bad;
    *len = sizeof *s6;
  }
  return 1;
bad:
  napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "not an IP address of that family");
  return 0;
}

static int set_transparent_fd(int fd, int family) {
  int one = 1;
  return family == 4 ? setsockopt(fd, SSH_SOL_IP, SSH_IP_TRANSPARENT, &one, sizeof one)
                     : setsockopt(fd, SSH_SOL_IPV6, SSH_IPV6_TRANSPARENT, &one, sizeof one);
}

/* Throws for errno e after closing fd (errno saved by the caller). */
static napi_value fail_fd(napi_env env, int fd, int e, const char *syscall) {
  if (fd >= 0) close(fd);
  throw_errno(env, e, syscall);
  return NULL;
}

#define UDP_RCVBUF (4 * 1024 * 1024)

static napi_value transparent_socket(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv, "expected (family, kind, ip, port, backlog)")) return NULL;
  int32_t family, port, backlog;
  char kind[8], ip[INET6_ADDRSTRLEN + 1];
  if (!get_int_arg(env, argv[0], &family, "family") ||
      !get_str_arg(env, argv[1], kind, sizeof kind, "kind") ||
      !get_str_arg(env, argv[2], ip, sizeof ip, "ip") ||
      !get_int_arg(env, argv[3], &port, "port") ||
      !get_int_arg(env, argv[4], &backlog, "backlog"))
    return NULL;
  if (family != 4 && family != 6) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "family must be 4 or 6");
    return NULL;
  }
  int tcp = strcmp(kind, "tcp") == 0;
  if (!tcp && strcmp(kind, "udp") != 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "kind must be 'tcp' or 'udp'");
    return NULL;
  }
  struct sockaddr_storage sa;
  socklen_t salen;
  if (!make_sockaddr(env, family, ip, port, &sa, &salen)) return NULL;

  int fd = socket(family == 4 ? AF_INET : AF_INET6,
                  (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_fd(env, -1, errno, "socket");
  int one = 1;
  /* TCP: like Node's listeners (a restarted client rebinds its port at once). */
  if (tcp && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    return fail_fd(env, fd, errno, "setsockopt(SO_REUSEADDR)");
  if (family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
    return fail_fd(env, fd, errno, "setsockopt(IPV6_V6ONLY)");
  if (set_transparent_fd(fd, family) != 0)
    return fail_fd(env, fd, errno,
                   family == 4 ? "setsockopt(IP_TRANSPARENT)" : "setsockopt(IPV6_TRANSPARENT)");
  if (!tcp) {
    /* Room for bursts while the event loop is busy: root may exceed rmem_max
     * (SO_RCVBUFFORCE), others get what rmem_max allows; failing is not fatal. */
    int size = UDP_RCVBUF;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
      (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    int rc = family == 4
                 ? setsockopt(fd, SSH_SOL_IP, SSH_IP_RECVORIGDSTADDR, &one, sizeof one)
                 : setsockopt(fd, SSH_SOL_IPV6, SSH_IPV6_RECVORIGDSTADDR, &one, sizeof one);
    if (rc != 0)
      return fail_fd(env, fd, errno,
                     family == 4 ? "setsockopt(IP_RECVORIGDSTADDR)"
                                 : "setsockopt(IPV6_RECVORIGDSTADDR)");
  }
  if (bind(fd, (struct sockaddr *)&sa, salen) != 0) return fail_fd(env, fd, errno, "bind");
  if (tcp && listen(fd, backlog > 0 ? backlog : 511) != 0)
    return fail_fd(env, fd, errno, "listen");
  napi_value result;
  CHECK(napi_create_int32(env, fd, &result));
  return result;
}

/* A UDP socket watched by libuv. */
typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int fd;
  int family;
  int closing;
  int delivering;
} udp_watch;

#define UDP_MAX 65536
#define UDP_BATCH 64

static void addr_text(const struct sockaddr *sa, char *text, size_t size, int *port) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &s4->sin_addr, text, size);
    *port = ntohs(s4->sin_port);
  } else {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &s6->sin6_addr, text, size);
    *port = ntohs(s6->sin6_port);
  }
}

static void on_udp_closed(uv_handle_t *h) {
  udp_watch *w = (udp_watch *)h->data;
  close(w->fd);
  free(w);
}

static void udp_release(udp_watch *w) {
  if (w->callback != NULL) napi_delete_reference(w->env, w->callback);
  w->callback = NULL;
  if (w->context != NULL) napi_async_destroy(w->env, w->context);
  w->context = NULL;
  uv_close((uv_handle_t *)&w->poll, on_udp_closed);
}

static void udp_stop(udp_watch *w) {
  if (w->closing) return;
  w->closing = 1;
  uv_poll_stop(&w->poll);
  /* Closed from inside onDatagram: the batch in progress still holds the
   * callback scope; it releases the rest when it ends. */
  if (!w->delivering) udp_release(w);
}

/* Calls onDatagram for one datagram (inside the batch's callback scope);
 * returns 0 when the batch must stop (the watch was closed, or a failure). */
static int deliver(udp_watch *w, napi_value recv, napi_value cb, const char *data, size_t n,
                   const struct sockaddr *src, const struct sockaddr *dst) {
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return 0;
  napi_value args[5], result;
  char stext[INET6_ADDRSTRLEN], dtext[INET6_ADDRSTRLEN];
  int sport = 0, dport = 0;
  addr_text(src, stext, sizeof stext, &sport);
  int ok = napi_create_buffer_copy(env, n, data, NULL, &args[0]) == napi_ok &&
           napi_create_string_utf8(env, stext, NAPI_AUTO_LENGTH, &args[1]) == napi_ok &&
           napi_create_int32(env, sport, &args[2]) == napi_ok;
  if (ok && dst != NULL) {
    addr_text(dst, dtext, sizeof dtext, &dport);
    ok = napi_create_string_utf8(env, dtext, NAPI_AUTO_LENGTH, &args[3]) == napi_ok &&
         napi_create_int32(env, dport, &args[4]) == napi_ok;
  } else if (ok) {
    ok = napi_get_null(env, &args[3]) == napi_ok && napi_get_null(env, &args[4]) == napi_ok;
  }
  if (ok) {
    napi_status st = napi_call_function(env, recv, cb, 5, args, &result);
    napi_value err;
    if (st == napi_pending_exception && napi_get_and_clear_last_exception(env, &err) == napi_ok) {
      napi_fatal_exception(env, err);
      ok = 0;
    } else if (st != napi_ok) {
      fprintf(stderr, "sshuttle_native: calling onDatagram failed (napi status %d)\n", (int)st);
      ok = 0;
    }
  }
  napi_close_handle_scope(env, scope);
  return ok && !w->closing;
}

/* One wakeup reads up to UDP_BATCH datagrams and hands them to JS inside ONE
 * callback scope: process.nextTick and promise jobs run once after the
 * batch, not after every datagram, so what the datagrams cause (mux frames,
 * ssh packets) leaves together. */
static void on_udp_readable(uv_poll_t *h, int status, int events) {
  udp_watch *w = (udp_watch *)h->data;
  (void)events;
  if (w->closing || status < 0) return;
  napi_env env = w->env;
  napi_handle_scope outer;
  if (napi_open_handle_scope(env, &outer) != napi_ok) return;
  napi_value resource, recv, cb;
  napi_callback_scope cscope;
  if (napi_create_object(env, &resource) != napi_ok || napi_get_global(env, &recv) != napi_ok ||
      napi_get_reference_value(env, w->callback, &cb) != napi_ok ||
      napi_open_callback_scope(env, resource, w->context, &cscope) != napi_ok) {
    napi_close_handle_scope(env, outer);
    return;
  }
  w->delivering = 1;
  static char buf[UDP_MAX];
  for (int i = 0; i < UDP_BATCH; i++) {
    struct sockaddr_storage src;
    char control[256];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_name = &src;
    msg.msg_namelen = sizeof src;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(w->fd, &msg, MSG_DONTWAIT);
    if (n < 0) break; /* EAGAIN: drained; anything else: wait for the next wakeup */
    const struct sockaddr *dst = NULL;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
      if ((c->cmsg_level == SSH_SOL_IP && c->cmsg_type == SSH_IP_ORIGDSTADDR) ||
          (c->cmsg_level == SSH_SOL_IPV6 && c->cmsg_type == SSH_IPV6_ORIGDSTADDR))
        dst = (const struct sockaddr *)CMSG_DATA(c);
    }
    if (!deliver(w, recv, cb, buf, (size_t)n, (const struct sockaddr *)&src, dst)) break;
  }
  /* Closing the scope runs the tick queue: onDatagram's follow-ups, possibly
   * a close() of this watch, which then only marks it. */
  napi_close_callback_scope(env, cscope);
  w->delivering = 0;
  if (w->closing) udp_release(w);
  napi_close_handle_scope(env, outer);
}

static napi_value udp_watch_close(napi_env env, napi_callback_info info) {
  void *data;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, NULL, &data));
  udp_watch **slot = (udp_watch **)data;
  if (*slot != NULL) udp_stop(*slot);
  *slot = NULL;
  napi_value undef;
  CHECK(napi_get_undefined(env, &undef));
  return undef;
}

static void free_slot(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value udp_receive(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, family;
  napi_valuetype t;
  if (argc < 3 || !get_int_arg(env, argv[0], &fd, "fd") ||
      !get_int_arg(env, argv[1], &family, "family"))
    return NULL;
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "onDatagram must be a function");
    return NULL;
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  udp_watch *w = calloc(1, sizeof *w);
  udp_watch **slot = calloc(1, sizeof *slot);
  if (w == NULL || slot == NULL) {
    free(w);
    free(slot);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  w->env = env;
  w->fd = fd;
  w->family = family;
  napi_value name;
  if (napi_create_string_utf8(env, "sshuttle:udp", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &w->context) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &w->callback) != napi_ok) {
    free(w);
    free(slot);
    napi_throw_error(env, NULL, "sshuttle_native: cannot set up the UDP callback");
    return NULL;
  }
  int rc = uv_poll_init_socket(loop, &w->poll, fd);
  if (rc != 0) {
    napi_delete_reference(env, w->callback);
    napi_async_destroy(env, w->context);
    free(w);
    free(slot);
    throw_errno(env, -rc, "uv_poll_init");
    return NULL;
  }
  w->poll.data = w;
  rc = uv_poll_start(&w->poll, UV_READABLE, on_udp_readable);
  if (rc != 0) {
    udp_stop(w);
    free(slot);
    throw_errno(env, -rc, "uv_poll_start");
    return NULL;
  }
  *slot = w;
  napi_value result, closer;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_function(env, "close", NAPI_AUTO_LENGTH, udp_watch_close, slot, &closer));
  CHECK(napi_add_finalizer(env, result, slot, free_slot, NULL, NULL));
  CHECK(napi_set_named_property(env, result, "close", closer));
  return result;
}

/* Reply sockets, one per remote address we answer from, kept open: a fresh
 * socket per datagram (socket, three setsockopts, bind, close) cost more
 * than the rest of a datagram's trip through the client. Unconnected, so
 * tproxy's socket lookup never hands them an application's datagrams (only
 * connected sockets match an established lookup). Few remote peers talk at
 * once; the oldest entry makes room for a new one. */
#define REPLY_SOCKETS 128

typedef struct {
  int fd;
  socklen_t len;
  struct sockaddr_storage from;
} reply_entry;

static reply_entry reply_cache[REPLY_SOCKETS];
static int reply_used;
static int reply_next;

static void reply_forget(int fd) {
  for (int i = 0; i < reply_used; i++) {
    if (reply_cache[i].fd == fd) {
      close(fd);
      reply_cache[i].fd = -1;
      reply_cache[i].len = 0;
      return;
    }
  }
  close(fd);
}

/* A bound transparent UDP socket sending from `from`: cached or new.
 * Returns the fd, or -errno. */
static int reply_socket(int family, const struct sockaddr_storage *from, socklen_t flen) {
  for (int i = 0; i < reply_used; i++) {
    if (reply_cache[i].len == flen && memcmp(&reply_cache[i].from, from, flen) == 0)
      return reply_cache[i].fd;
  }
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1, small = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      (family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
      set_transparent_fd(fd, family) != 0 ||
      bind(fd, (const struct sockaddr *)from, flen) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  /* It never reads: the smallest receive buffer the kernel allows. */
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  int slot;
  if (reply_used < REPLY_SOCKETS) {
    slot = reply_used++;
  } else {
    slot = reply_next;
    reply_next = (reply_next + 1) % REPLY_SOCKETS;
    if (reply_cache[slot].fd >= 0) close(reply_cache[slot].fd);
  }
  reply_cache[slot].fd = fd;
  reply_cache[slot].len = flen;
  memcpy(&reply_cache[slot].from, from, flen);
  return fd;
}

static napi_value send_from(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!get_args(env, info, 6, argv, "expected (family, fromIp, fromPort, toIp, toPort, data)"))
    return NULL;
  int32_t family, fport, tport;
  char fip[INET6_ADDRSTRLEN + 1], tip[INET6_ADDRSTRLEN + 1];
  if (!get_int_arg(env, argv[0], &family, "family") ||
      !get_str_arg(env, argv[1], fip, sizeof fip, "fromIp") ||
      !get_int_arg(env, argv[2], &fport, "fromPort") ||
      !get_str_arg(env, argv[3], tip, sizeof tip, "toIp") ||
      !get_int_arg(env, argv[4], &tport, "toPort"))
    return NULL;
  if (family != 4 && family != 6) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "family must be 4 or 6");
    return NULL;
  }
  bool is_buffer;
  void *data;
  size_t len;
  if (napi_is_buffer(env, argv[5], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[5], &data, &len) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "data must be a Buffer");
    return NULL;
  }
  struct sockaddr_storage from, to;
  socklen_t flen, tlen;
  if (!make_sockaddr(env, family, fip, fport, &from, &flen) ||
      !make_sockaddr(env, family, tip, tport, &to, &tlen))
    return NULL;
  int fd = reply_socket(family, &from, flen);
  if (fd < 0) {
    int e = -fd;
    throw_errno(env, e, e == EADDRINUSE || e == EADDRNOTAVAIL ? "bind" : "socket");
    return NULL;
  }
  ssize_t n = sendto(fd, data, len, 0, (struct sockaddr *)&to, tlen);
  if (n < 0) {
    int e = errno;
    /* A full send buffer is not the socket's fault; anything else is. */
    if (e != EAGAIN && e != EWOULDBLOCK && e != ENOBUFS) reply_forget(fd);
    throw_errno(env, e, "sendto");
    return NULL;
  }
  napi_value result;
  CHECK(napi_create_int64(env, (int64_t)n, &result));
  return result;
}

#else
static napi_value not_linux(napi_env env, napi_callback_info info) {
  (void)info;
  throw_errno(env, ENOSYS, "tproxy sockets (Linux only)");
  return NULL;
}
#define transparent_socket not_linux
#define udp_receive not_linux
#define send_from not_linux
#endif

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"originalDst", NULL, original_dst, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setTransparent", NULL, set_transparent, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getTransparent", NULL, get_transparent, NULL, NULL, NULL, napi_enumerable, NULL},
      {"transparentSocket", NULL, transparent_socket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpReceive", NULL, udp_receive, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendFrom", NULL, send_from, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
