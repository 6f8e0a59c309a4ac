/*
 * The few socket options Node cannot reach: the original destination of a
 * connection captured by a NAT redirect (nft `redirect`, iptables REDIRECT),
 * and IP_TRANSPARENT for the tproxy method.
 *
 *   originalDst(fd, family)        -> { ip, port }   getsockopt SO_ORIGINAL_DST
 *   setTransparent(fd, family)     -> undefined      setsockopt IP(V6)_TRANSPARENT = 1
 *   getTransparent(fd, family)     -> boolean        getsockopt IP(V6)_TRANSPARENT
 *
 * Failures throw an Error whose `code` is the errno name (e.g. 'ENOENT' when
 * conntrack knows no such connection, 'ENOPROTOOPT' when conntrack is not
 * loaded), with `errno` (number) and `syscall` set like Node's own errors.
 */
#include <node_api.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#ifdef __linux__
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

/* From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>;
 * spelled out so the build needs no kernel headers. */
#define SSH_SO_ORIGINAL_DST 80
#define SSH_IP6T_SO_ORIGINAL_DST 80
#define SSH_SOL_IP 0
#define SSH_SOL_IPV6 41
#define SSH_IP_TRANSPARENT 19
#define SSH_IPV6_TRANSPARENT 75

#define CHECK(call)                                                                        \
  do {                                                                                     \
    if ((call) != napi_ok) {                                                               \
      napi_throw_error(env, NULL, "sshuttle_native: N-API call failed: " #call);            \
      return NULL;                                                                         \
    }                                                                                      \
  } while (0)

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
    default: return NULL;
  }
}

/* Throws Error(message) with code/errno/syscall like a Node system error. */
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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"originalDst", NULL, original_dst, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setTransparent", NULL, set_transparent, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getTransparent", NULL, get_transparent, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
