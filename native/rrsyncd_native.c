/*
 * Syscalls Node's fs module lacks, for the sandbox: nanosecond timestamps (libuv truncates
 * utimes to microseconds) and device/fifo creation, all relative to a directory fd and never
 * following a final symlink.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char code[32];
  const char *name = "EIO";
  switch (err) {
    case ENOENT: name = "ENOENT"; break;
    case EEXIST: name = "EEXIST"; break;
    case ELOOP: name = "ELOOP"; break;
    case ENOTDIR: name = "ENOTDIR"; break;
    case EPERM: name = "EPERM"; break;
    case EACCES: name = "EACCES"; break;
    case EINVAL: name = "EINVAL"; break;
    case EBADF: name = "EBADF"; break;
    case ENOSPC: name = "ENOSPC"; break;
    case EROFS: name = "EROFS"; break;
  }
  strncpy(code, name, sizeof code - 1);
  code[sizeof code - 1] = 0;
  char msg[128];
  snprintf(msg, sizeof msg, "%s: %s", syscall, strerror(err));
  napi_throw_error(env, code, msg);
  return NULL;
}

static int get_i64(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok;
}

/* Fills ts from (sec, nsec); nsec < 0 means "leave unchanged" (UTIME_OMIT). */
static void to_timespec(int64_t sec, int64_t nsec, struct timespec *ts) {
  if (nsec < 0) {
    ts->tv_sec = 0;
    ts->tv_nsec = UTIME_OMIT;
  } else {
    ts->tv_sec = (time_t)sec;
    ts->tv_nsec = (long)nsec;
  }
}

/* utimensat(dirfd, name, atimeSec, atimeNsec, mtimeSec, mtimeNsec[, follow]): AT_SYMLINK_NOFOLLOW
 * unless follow is true (only for /proc/self/fd magic links of pinned inodes). */
static napi_value js_utimensat(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t dirfd, as, an, ms, mn;
  void *name;
  size_t namelen;
  if (argc < 6 || !get_i64(env, argv[0], &dirfd) ||
      napi_get_buffer_info(env, argv[1], &name, &namelen) != napi_ok ||
      !get_i64(env, argv[2], &as) || !get_i64(env, argv[3], &an) ||
      !get_i64(env, argv[4], &ms) || !get_i64(env, argv[5], &mn)) {
    napi_throw_type_error(env, NULL, "utimensat(dirfd, nameBuffer, as, an, ms, mn)");
    return NULL;
  }
  char path[4097];
  if (namelen == 0 || namelen > 4096 || memchr(name, 0, namelen)) return throw_errno(env, EINVAL, "utimensat");
  memcpy(path, name, namelen);
  path[namelen] = 0;
  struct timespec ts[2];
  to_timespec(as, an, &ts[0]);
  to_timespec(ms, mn, &ts[1]);
  bool follow = false;
  if (argc >= 7) napi_get_value_bool(env, argv[6], &follow);
  if (utimensat((int)dirfd, path, ts, follow ? 0 : AT_SYMLINK_NOFOLLOW) != 0) return throw_errno(env, errno, "utimensat");
  return NULL;
}

/* futimens(fd, atimeSec, atimeNsec, mtimeSec, mtimeNsec) */
static napi_value js_futimens(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd, as, an, ms, mn;
  if (argc < 5 || !get_i64(env, argv[0], &fd) || !get_i64(env, argv[1], &as) || !get_i64(env, argv[2], &an) ||
      !get_i64(env, argv[3], &ms) || !get_i64(env, argv[4], &mn)) {
    napi_throw_type_error(env, NULL, "futimens(fd, as, an, ms, mn)");
    return NULL;
  }
  struct timespec ts[2];
  to_timespec(as, an, &ts[0]);
  to_timespec(ms, mn, &ts[1]);
  if (futimens((int)fd, ts) != 0) return throw_errno(env, errno, "futimens");
  return NULL;
}

/* mknodat(dirfd, name, mode, major, minor): devices, fifos and sockets. */
static napi_value js_mknodat(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t dirfd, mode, maj, min;
  void *name;
  size_t namelen;
  if (argc < 5 || !get_i64(env, argv[0], &dirfd) ||
      napi_get_buffer_info(env, argv[1], &name, &namelen) != napi_ok || !get_i64(env, argv[2], &mode) ||
      !get_i64(env, argv[3], &maj) || !get_i64(env, argv[4], &min)) {
    napi_throw_type_error(env, NULL, "mknodat(dirfd, nameBuffer, mode, major, minor)");
    return NULL;
  }
  char path[4097];
  if (namelen == 0 || namelen > 4096 || memchr(name, 0, namelen) || memchr(name, '/', namelen))
    return throw_errno(env, EINVAL, "mknodat");
  memcpy(path, name, namelen);
  path[namelen] = 0;
  if (mknodat((int)dirfd, path, (mode_t)mode, makedev((unsigned)maj, (unsigned)min)) != 0)
    return throw_errno(env, errno, "mknodat");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"utimensat", NULL, js_utimensat, NULL, NULL, NULL, napi_default, NULL},
      {"futimens", NULL, js_futimens, NULL, NULL, NULL, napi_default, NULL},
      {"mknodat", NULL, js_mknodat, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
