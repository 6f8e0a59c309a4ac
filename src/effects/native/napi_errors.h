/*
 * What our addons share: argument checks and errors. Errors look like Node's
 * own system errors: an Error whose message names the call and the errno,
 * with `code` (the errno name, or ERRNO_<n>), `errno` (negative, as libuv's)
 * and `syscall` set. Each addon includes this once, after defining ADDON_NAME.
 */
#ifndef SSHUTTLE_NAPI_ERRORS_H
#define SSHUTTLE_NAPI_ERRORS_H

#include <node_api.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Wraps an N-API call: on failure, throw naming the call, and return NULL. */
#define CHECK(call)                                                                        \
  do {                                                                                     \
    if ((call) != napi_ok) {                                                               \
      napi_throw_error(env, NULL, ADDON_NAME ": N-API call failed: " #call);               \
      return NULL;                                                                         \
    }                                                                                      \
  } while (0)

/*
 * Reads the call's first `n` arguments into argv; fewer is a TypeError
 * (ERR_MISSING_ARGS) naming the expected `usage`, and returns 0.
 */
static int get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv,
                    const char *usage) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, ADDON_NAME ": N-API call failed: napi_get_cb_info");
    return 0;
  }
  if (argc < n) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", usage);
    return 0;
  }
  return 1;
}

static const char *errno_name(int e) {
  switch (e) {
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case EINVAL: return "EINVAL";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case ENOTCONN: return "ENOTCONN";
    case ENOSYS: return "ENOSYS";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EPROTOTYPE: return "EPROTOTYPE";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EAGAIN: return "EAGAIN";
    case EMSGSIZE: return "EMSGSIZE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EIO: return "EIO";
    default: return NULL;
  }
}

static void throw_errno(napi_env env, int e, const char *syscall) {
  char codebuf[32];
  const char *code = errno_name(e);
  if (code == NULL) {
    snprintf(codebuf, sizeof codebuf, "ERRNO_%d", e);
    code = codebuf;
  }
  char msg[160];
  snprintf(msg, sizeof msg, "%s %s (%s)", syscall, code, strerror(e));
  napi_value jcode, jmsg, err, jerrno, jsys;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
      napi_create_error(env, jcode, jmsg, &err) != napi_ok) {
    napi_throw_error(env, code, msg);
    return;
  }
  if (napi_create_int32(env, -e, &jerrno) == napi_ok)
    napi_set_named_property(env, err, "errno", jerrno);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &jsys) == napi_ok)
    napi_set_named_property(env, err, "syscall", jsys);
  napi_throw(env, err);
}

#endif
