/*
 * Process-level calls Node lacks (running in the background, memory):
 *
 *   sendDatagram(path, buffer) -> undefined   one datagram to a Unix datagram
 *                                             socket (sd_notify's $NOTIFY_SOCKET,
 *                                             syslog's /dev/log); a leading '@'
 *                                             names an abstract socket
 *   setsid()                   -> number      a new session (leave the terminal)
 *   dropPages(start, length)   -> undefined   madvise(MADV_DONTNEED) on our own
 *                                             mapping (start a bigint address):
 *                                             the caller checks it is safe
 *
 * Failures throw an Error with `code` (errno name when known) and `syscall`.
 * A separate module from sshuttle_native.c, so the socket-option addon and
 * this one change independently.
 */
#define ADDON_NAME "sshuttle_unix"
#include "napi_errors.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>


static napi_value send_datagram(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, "sendDatagram(path, buffer)")) return NULL;
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], addr.sun_path, sizeof addr.sun_path, &len) !=
          napi_ok ||
      len == 0 || len >= sizeof addr.sun_path - 1) {
    napi_throw_type_error(env, NULL, "sendDatagram: path must be a non-empty string < 107 bytes");
    return NULL;
  }
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0'; /* abstract namespace */
  void *data = NULL;
  size_t size = 0;
  if (napi_get_buffer_info(env, argv[1], &data, &size) != napi_ok) {
    napi_throw_type_error(env, NULL, "sendDatagram: data must be a Buffer");
    return NULL;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket");
    return NULL;
  }
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  ssize_t n = sendto(fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&addr, alen);
  int e = errno;
  close(fd);
  if (n < 0) {
    throw_errno(env, e, "sendto");
    return NULL;
  }
  napi_value undef;
  CHECK(napi_get_undefined(env, &undef));
  return undef;
}

static napi_value do_setsid(napi_env env, napi_callback_info info) {
  (void)info;
  pid_t sid = setsid();
  if (sid < 0) {
    throw_errno(env, errno, "setsid");
    return NULL;
  }
  napi_value result;
  CHECK(napi_create_int32(env, (int32_t)sid, &result));
  return result;
}

static napi_value drop_pages(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, "dropPages(start, length)")) return NULL;
  uint64_t start = 0;
  bool lossless = false;
  int64_t length = 0;
  if (napi_get_value_bigint_uint64(env, argv[0], &start, &lossless) != napi_ok || !lossless ||
      napi_get_value_int64(env, argv[1], &length) != napi_ok || length <= 0) {
    napi_throw_type_error(env, NULL, "dropPages: start must be a bigint, length a positive number");
    return NULL;
  }
  if (madvise((void *)(uintptr_t)start, (size_t)length, MADV_DONTNEED) != 0) {
    throw_errno(env, errno, "madvise");
    return NULL;
  }
  napi_value undef;
  CHECK(napi_get_undefined(env, &undef));
  return undef;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sendDatagram", NULL, send_datagram, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setsid", NULL, do_setsid, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dropPages", NULL, drop_pages, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
