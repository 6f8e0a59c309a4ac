/*
 * One netlink round trip, for what has no command-line tool we can count on
 * (conntrack: conntrack-tools is rarely installed):
 *
 *   netlinkTalk(protocol, request, terminals, timeoutMs) -> Buffer
 *       opens a netlink socket of `protocol` (12: NETLINK_NETFILTER), sends
 *       `request` (one or more netlink messages, built in TypeScript) to the
 *       kernel, and returns every message received until `terminals` of them
 *       were NLMSG_DONE or NLMSG_ERROR (the end of a dump, or one ack per
 *       request sent with NLM_F_ACK). Decoding is TypeScript's job.
 *
 * Blocking, with SO_RCVTIMEO: it is called a few times at start by the
 * firewall helper, never on a data path. Failures throw an Error with `code`
 * (errno name: EPERM without CAP_NET_ADMIN, EPROTONOSUPPORT without the
 * kernel module, EAGAIN on timeout, EMSGSIZE past the size cap) and `syscall`.
 */
#define ADDON_NAME "sshuttle_netlink"
#include "napi_errors.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#endif

/* A dump of a very busy conntrack table is a few MB; past this, give up. */
#define MAX_REPLY_BYTES (64u * 1024u * 1024u)
#define RECV_BUFFER_BYTES (256u * 1024u)

#ifdef __linux__

/* How many DONE/ERROR messages one datagram holds. */
static uint32_t count_terminals(const uint8_t *p, size_t len) {
  uint32_t n = 0;
  while (len >= sizeof(struct nlmsghdr)) {
    const struct nlmsghdr *h = (const struct nlmsghdr *)p;
    if (h->nlmsg_len < sizeof(struct nlmsghdr) || h->nlmsg_len > len) break;
    if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) n++;
    size_t step = NLMSG_ALIGN(h->nlmsg_len);
    if (step > len) break;
    p += step;
    len -= step;
  }
  return n;
}

static napi_value netlink_talk(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv, "netlinkTalk(protocol, request, terminals, timeoutMs)"))
    return NULL;
  int32_t protocol, terminals, timeout_ms;
  void *request;
  size_t request_len;
  CHECK(napi_get_value_int32(env, argv[0], &protocol));
  CHECK(napi_get_buffer_info(env, argv[1], &request, &request_len));
  CHECK(napi_get_value_int32(env, argv[2], &terminals));
  CHECK(napi_get_value_int32(env, argv[3], &timeout_ms));

  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) {
    throw_errno(env, errno, "socket(AF_NETLINK)");
    return NULL;
  }
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, request, request_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
    int e = errno;
    close(fd);
    throw_errno(env, e, "sendto(netlink)");
    return NULL;
  }

  uint8_t *out = NULL;
  size_t out_len = 0, out_cap = 0;
  uint8_t *buf = malloc(RECV_BUFFER_BYTES);
  if (buf == NULL) {
    close(fd);
    throw_errno(env, ENOMEM, "malloc");
    return NULL;
  }
  int failure = 0;
  const char *failed_call = "recv(netlink)";
  int32_t seen = 0;
  while (seen < terminals) {
    ssize_t n = recv(fd, buf, RECV_BUFFER_BYTES, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      failure = errno == EWOULDBLOCK ? EAGAIN : errno;
      break;
    }
    if (n == 0) break;
    if (out_len + (size_t)n > MAX_REPLY_BYTES) {
      failure = EMSGSIZE;
      break;
    }
    if (out_len + (size_t)n > out_cap) {
      size_t cap = out_cap == 0 ? RECV_BUFFER_BYTES : out_cap;
      while (cap < out_len + (size_t)n) cap *= 2;
      uint8_t *grown = realloc(out, cap);
      if (grown == NULL) {
        failure = ENOMEM;
        failed_call = "realloc";
        break;
      }
      out = grown;
      out_cap = cap;
    }
    memcpy(out + out_len, buf, (size_t)n);
    out_len += (size_t)n;
    seen += (int32_t)count_terminals(buf, (size_t)n);
  }
  free(buf);
  close(fd);
  if (failure != 0) {
    free(out);
    throw_errno(env, failure, failed_call);
    return NULL;
  }
  napi_value result;
  void *data;
  if (napi_create_buffer_copy(env, out_len, out_len == 0 ? "" : (const void *)out, &data, &result) !=
      napi_ok) {
    free(out);
    napi_throw_error(env, NULL, "sshuttle_netlink: napi_create_buffer_copy failed");
    return NULL;
  }
  free(out);
  return result;
}

#else
static napi_value netlink_talk(napi_env env, napi_callback_info info) {
  (void)info;
  throw_errno(env, ENOSYS, "netlink (Linux only)");
  return NULL;
}
#endif

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"netlinkTalk", NULL, netlink_talk, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
