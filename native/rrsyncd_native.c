/*
 * Syscalls Node's fs module lacks, for the sandbox: nanosecond timestamps (libuv truncates
 * utimes to microseconds) and device/fifo creation, all relative to a directory fd and never
 * following a final symlink. And rsync's weak block checksum in bulk, for the generator.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

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
    case ENOTEMPTY: name = "ENOTEMPTY"; break;
    case EISDIR: name = "EISDIR"; break;
    case EXDEV: name = "EXDEV"; break;
    case ENAMETOOLONG: name = "ENAMETOOLONG"; break;
    case EMLINK: name = "EMLINK"; break;
    case EBUSY: name = "EBUSY"; break;
    case EDQUOT: name = "EDQUOT"; break;
    case EFBIG: name = "EFBIG"; break;
    case EOPNOTSUPP: name = "EOPNOTSUPP"; break;
    case ENOMEM: name = "ENOMEM"; break;
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


/* Copies a Buffer argument into a NUL-terminated path; rejects empty, over-long and NUL-containing. */
static int get_name(napi_env env, napi_value v, char *out, size_t cap, int allow_slash) {
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) return -1;
  if (len == 0 || len >= cap || memchr(data, 0, len)) return -1;
  if (!allow_slash && memchr(data, '/', len)) return -1;
  memcpy(out, data, len);
  out[len] = 0;
  return 0;
}

#define ARGS(n)                                   \
  size_t argc = n;                                \
  napi_value argv[n];                             \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL); \
  if (argc < n) {                                 \
    napi_throw_type_error(env, NULL, "missing arguments"); \
    return NULL;                                  \
  }

static napi_value num(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

/* openat(dirfd, leaf, flags, mode) -> fd. The leaf is one path component. */
static napi_value js_openat(napi_env env, napi_callback_info info) {
  ARGS(4);
  int64_t dirfd, flags, mode;
  char name[256];
  if (!get_i64(env, argv[0], &dirfd) || get_name(env, argv[1], name, sizeof name, 0) || !get_i64(env, argv[2], &flags) ||
      !get_i64(env, argv[3], &mode))
    return throw_errno(env, EINVAL, "openat");
  int fd = openat((int)dirfd, name, (int)flags | O_CLOEXEC, (mode_t)mode);
  if (fd < 0) return throw_errno(env, errno, "openat");
  return num(env, fd);
}

static void fill_stat(const struct stat *st, double *o) {
  o[0] = st->st_mode;
  o[1] = (double)st->st_size;
  o[2] = (double)st->st_mtim.tv_sec;
  o[3] = (double)st->st_mtim.tv_nsec;
  o[4] = (double)st->st_atim.tv_sec;
  o[5] = (double)st->st_atim.tv_nsec;
  o[6] = st->st_uid;
  o[7] = st->st_gid;
  o[8] = (double)st->st_dev;
  o[9] = (double)st->st_ino;
  o[10] = (double)st->st_nlink;
  o[11] = (double)st->st_rdev;
}

/* lstatat(dirfd, leaf, out Float64Array(12)) -> true, or false when missing (ENOENT/ENOTDIR). */
static napi_value js_lstatat(napi_env env, napi_callback_info info) {
  ARGS(3);
  int64_t dirfd;
  char name[256];
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (!get_i64(env, argv[0], &dirfd) || get_name(env, argv[1], name, sizeof name, 0) ||
      napi_get_typedarray_info(env, argv[2], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_float64_array || length < 12)
    return throw_errno(env, EINVAL, "lstatat");
  struct stat st;
  napi_value out;
  if (fstatat((int)dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      napi_get_boolean(env, false, &out);
      return out;
    }
    return throw_errno(env, errno, "lstatat");
  }
  fill_stat(&st, (double *)data);
  napi_get_boolean(env, true, &out);
  return out;
}

/* renameat(olddirfd, oldleaf, newdirfd, newleaf) */
static napi_value js_renameat(napi_env env, napi_callback_info info) {
  ARGS(4);
  int64_t a, b;
  char n1[256], n2[256];
  if (!get_i64(env, argv[0], &a) || get_name(env, argv[1], n1, sizeof n1, 0) || !get_i64(env, argv[2], &b) ||
      get_name(env, argv[3], n2, sizeof n2, 0))
    return throw_errno(env, EINVAL, "renameat");
  if (renameat((int)a, n1, (int)b, n2) != 0) return throw_errno(env, errno, "renameat");
  return NULL;
}

/* linkat(olddirfd, oldleaf, newdirfd, newleaf): never follows a symlink leaf. */
static napi_value js_linkat(napi_env env, napi_callback_info info) {
  ARGS(4);
  int64_t a, b;
  char n1[256], n2[256];
  if (!get_i64(env, argv[0], &a) || get_name(env, argv[1], n1, sizeof n1, 0) || !get_i64(env, argv[2], &b) ||
      get_name(env, argv[3], n2, sizeof n2, 0))
    return throw_errno(env, EINVAL, "linkat");
  if (linkat((int)a, n1, (int)b, n2, 0) != 0) return throw_errno(env, errno, "linkat");
  return NULL;
}

/* linkfd(fd, newdirfd, newleaf): gives the open file `fd` (an O_TMPFILE one) the name newleaf.
 * Returns false when newleaf exists (EEXIST); never replaces anything. */
static napi_value js_linkfd(napi_env env, napi_callback_info info) {
  ARGS(3);
  int64_t fd, dirfd;
  char leaf[256], proc[64];
  if (!get_i64(env, argv[0], &fd) || !get_i64(env, argv[1], &dirfd) || get_name(env, argv[2], leaf, sizeof leaf, 0) ||
      strcmp(leaf, ".") == 0 || strcmp(leaf, "..") == 0)
    return throw_errno(env, EINVAL, "linkat");
  napi_value out;
  /* AT_EMPTY_PATH skips resolving the /proc path; without CAP_DAC_READ_SEARCH it fails with
   * ENOENT, and from then on only the /proc way is tried. */
  static int empty_path_works = 1;
  int r = -1;
  if (empty_path_works) {
    r = linkat((int)fd, "", (int)dirfd, leaf, AT_EMPTY_PATH);
    if (r != 0 && errno == ENOENT) empty_path_works = 0;
  }
  if (!empty_path_works) {
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", (int)fd);
    r = linkat(AT_FDCWD, proc, (int)dirfd, leaf, AT_SYMLINK_FOLLOW);
  }
  if (r == 0) {
    napi_get_boolean(env, true, &out);
    return out;
  }
  if (errno != EEXIST) return throw_errno(env, errno, "linkat");
  napi_get_boolean(env, false, &out);
  return out;
}

/* startWriteback(fd, offset, length): sync_file_range(SYNC_FILE_RANGE_WRITE), i.e. start writing
 * that range back without waiting for it. Best effort: errors are ignored. */
static napi_value js_start_writeback(napi_env env, napi_callback_info info) {
  ARGS(3);
  int64_t fd, off, len;
  if (get_i64(env, argv[0], &fd) && get_i64(env, argv[1], &off) && get_i64(env, argv[2], &len) && off >= 0 && len > 0)
    sync_file_range((int)fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
  return NULL;
}

/* punchHole(fd, offset, length): fallocate(PUNCH_HOLE|KEEP_SIZE), deallocating a range that
 * reads back as zeros (-S in place). Throws with the errno (EOPNOTSUPP where unsupported). */
static napi_value js_punch_hole(napi_env env, napi_callback_info info) {
  ARGS(3);
  int64_t fd, off, len;
  if (!get_i64(env, argv[0], &fd) || !get_i64(env, argv[1], &off) || !get_i64(env, argv[2], &len) || off < 0 || len <= 0)
    return throw_errno(env, EINVAL, "fallocate");
  if (fallocate((int)fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) != 0)
    return throw_errno(env, errno, "fallocate");
  return NULL;
}

/* readdirfd(dirfd): the names in a directory (an O_PATH fd will do), without "." and "..",
 * sorted bytewise (as libuv's scandir, which node:fs uses, sorts them), as latin1 strings. */
static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static napi_value js_readdirfd(napi_env env, napi_callback_info info) {
  ARGS(1);
  int64_t dirfd;
  if (!get_i64(env, argv[0], &dirfd)) return throw_errno(env, EINVAL, "readdir");
  int fd = openat((int)dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "readdir");
  DIR *d = fdopendir(fd);
  if (!d) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "readdir");
  }
  /* The names go one after another into `pool` (offsets in `offs`: the pool may move). */
  size_t n = 0, cap = 64, used = 0, pool_cap = 4096;
  char *pool = malloc(pool_cap);
  size_t *offs = malloc(cap * sizeof *offs);
  char **names = NULL;
  int err = (pool && offs) ? 0 : ENOMEM;
  struct dirent *de;
  while (!err) {
    errno = 0;
    if (!(de = readdir(d))) {
      err = errno;
      break;
    }
    const char *nm = de->d_name;
    if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
    size_t len = strlen(nm) + 1;
    if (used + len > pool_cap) {
      while (used + len > pool_cap) pool_cap *= 2;
      char *p = realloc(pool, pool_cap);
      if (!p) { err = ENOMEM; break; }
      pool = p;
    }
    if (n == cap) {
      size_t *o = realloc(offs, 2 * cap * sizeof *offs);
      if (!o) { err = ENOMEM; break; }
      offs = o;
      cap *= 2;
    }
    memcpy(pool + used, nm, len);
    offs[n++] = used;
    used += len;
  }
  closedir(d);
  napi_value arr = NULL;
  if (!err && !(names = malloc((n ? n : 1) * sizeof *names))) err = ENOMEM;
  if (!err) {
    for (size_t i = 0; i < n; i++) names[i] = pool + offs[i];
    qsort(names, n, sizeof *names, cmp_names);
    napi_create_array_with_length(env, n, &arr);
    for (size_t i = 0; i < n; i++) {
      napi_value str;
      napi_create_string_latin1(env, names[i], NAPI_AUTO_LENGTH, &str);
      napi_set_element(env, arr, (uint32_t)i, str);
    }
  }
  free(names);
  free(pool);
  free(offs);
  if (err) return throw_errno(env, err, "readdir");
  return arr;
}

/* lstatmany(dirfd, names: string[], out: Float64Array): fstatat(AT_SYMLINK_NOFOLLOW) of each
 * single-component name (latin1), without following a symlink leaf; out holds 13 numbers per
 * name: 0 or the errno, then the 12 fields of lstatat. One call per directory instead of one per
 * entry. Returns the number of names done. */
static napi_value js_lstatmany(napi_env env, napi_callback_info info) {
  ARGS(3);
  int64_t dirfd;
  uint32_t count;
  bool is_array;
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (!get_i64(env, argv[0], &dirfd) || napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &count) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_float64_array || length < (size_t)count * 13)
    return throw_errno(env, EINVAL, "lstatat");
  double *o = data;
  for (uint32_t i = 0; i < count; i++, o += 13) {
    napi_value v;
    char name[257];
    size_t len = 0;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok ||
        napi_get_value_string_latin1(env, v, name, sizeof name, &len) != napi_ok || len == 0 || len > 255 ||
        memchr(name, '/', len) || strlen(name) != len || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
      o[0] = EINVAL;
      continue;
    }
    struct stat st;
    if (fstatat((int)dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      o[0] = errno;
      continue;
    }
    o[0] = 0;
    fill_stat(&st, o + 1);
  }
  return num(env, count);
}

/* releaseFreedMemory(): gives the memory malloc keeps after frees (Buffers of finished
 * transfers) back to the kernel. glibc only; a no-op elsewhere. */
static napi_value js_release_freed_memory(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  return NULL;
}

void rrsyncd_low_memory_notification(void); /* rrsyncd_gc.cc */

/* lowMemoryNotification(): V8's full, memory-reducing GC (stop-the-world; only when idle). */
static napi_value js_low_memory_notification(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  rrsyncd_low_memory_notification();
  return NULL;
}

/* unlinkat(dirfd, leaf, isDir) */
static napi_value js_unlinkat(napi_env env, napi_callback_info info) {
  ARGS(3);
  int64_t dirfd;
  char name[256];
  bool isdir = false;
  if (!get_i64(env, argv[0], &dirfd) || get_name(env, argv[1], name, sizeof name, 0))
    return throw_errno(env, EINVAL, "unlinkat");
  napi_get_value_bool(env, argv[2], &isdir);
  if (unlinkat((int)dirfd, name, isdir ? AT_REMOVEDIR : 0) != 0) return throw_errno(env, errno, isdir ? "rmdir" : "unlink");
  return NULL;
}

/* mkdirat(dirfd, leaf, mode) */
static napi_value js_mkdirat(napi_env env, napi_callback_info info) {
  ARGS(3);
  int64_t dirfd, mode;
  char name[256];
  if (!get_i64(env, argv[0], &dirfd) || get_name(env, argv[1], name, sizeof name, 0) || !get_i64(env, argv[2], &mode))
    return throw_errno(env, EINVAL, "mkdirat");
  if (mkdirat((int)dirfd, name, (mode_t)mode) != 0) return throw_errno(env, errno, "mkdirat");
  return NULL;
}

/* symlinkat(target, dirfd, leaf) */
static napi_value js_symlinkat(napi_env env, napi_callback_info info) {
  ARGS(3);
  int64_t dirfd;
  char target[4097], name[256];
  if (get_name(env, argv[0], target, sizeof target, 1) || !get_i64(env, argv[1], &dirfd) ||
      get_name(env, argv[2], name, sizeof name, 0))
    return throw_errno(env, EINVAL, "symlinkat");
  if (symlinkat(target, (int)dirfd, name) != 0) return throw_errno(env, errno, "symlinkat");
  return NULL;
}

/* flockex(fd) -> true when an exclusive non-blocking flock was taken, false when it is held elsewhere. */
static napi_value js_flockex(napi_env env, napi_callback_info info) {
  ARGS(1);
  int64_t fd;
  napi_value out;
  if (!get_i64(env, argv[0], &fd)) return throw_errno(env, EINVAL, "flock");
  if (flock((int)fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      napi_get_boolean(env, false, &out);
      return out;
    }
    return throw_errno(env, errno, "flock");
  }
  napi_get_boolean(env, true, &out);
  return out;
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

/*
 * rsync's weak block checksum ("sum1") of consecutive blocks, the generator's hot loop:
 * buf[start, end) is cut into blocks of `blength` bytes (the last may be shorter) and each
 * block's sum goes to out[index++]. Bytes are signed chars. With a = sum(x_i) and
 * b = sum(i * x_i) over a block of n bytes, s1 = a and s2 = sum((n - i) * x_i) = n * a - b; only
 * the low 16 bits of each are kept, so uint32 wrap-around is harmless. Unlike the running-sum
 * form, this has no dependency between iterations and vectorises (an AVX2 clone is picked at
 * load time where the CPU has it).
 */
__attribute__((target_clones("avx2", "default")))
static uint32_t block_sum1(const int8_t *p, size_t n) {
  uint32_t a = 0, b = 0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    uint32_t ca = 0, cb = 0;
    for (unsigned k = 0; k < 16; k++) {
      int32_t x = p[i + k];
      ca += (uint32_t)x;
      cb += (uint32_t)(k * x);
    }
    b += cb + (uint32_t)i * ca;
    a += ca;
  }
  for (; i < n; i++) {
    int32_t x = p[i];
    a += (uint32_t)x;
    b += (uint32_t)i * (uint32_t)x;
  }
  uint32_t s1 = a, s2 = (uint32_t)n * a - b;
  return (s1 & 0xffff) | (s2 << 16);
}

/* sum1Blocks(buf: Uint8Array, start, end, blength, out: Uint32Array, index): count written */
static napi_value js_sum1_blocks(napi_env env, napi_callback_info info) {
  ARGS(6);
  napi_typedarray_type bt, ot;
  size_t blen, olen, boff, ooff;
  void *bdata, *odata;
  napi_value bab, oab;
  int64_t start, end, blength, index;
  if (napi_get_typedarray_info(env, argv[0], &bt, &blen, &bdata, &bab, &boff) != napi_ok || bt != napi_uint8_array ||
      napi_get_typedarray_info(env, argv[4], &ot, &olen, &odata, &oab, &ooff) != napi_ok || ot != napi_uint32_array ||
      !get_i64(env, argv[1], &start) || !get_i64(env, argv[2], &end) || !get_i64(env, argv[3], &blength) ||
      !get_i64(env, argv[5], &index)) {
    napi_throw_type_error(env, NULL, "sum1Blocks(Uint8Array, start, end, blength, Uint32Array, index)");
    return NULL;
  }
  if (start < 0 || end < start || (uint64_t)end > blen || blength <= 0 || index < 0) {
    napi_throw_range_error(env, NULL, "sum1Blocks: bad range");
    return NULL;
  }
  uint64_t count = ((uint64_t)(end - start) + (uint64_t)blength - 1) / (uint64_t)blength;
  if ((uint64_t)index + count > olen) {
    napi_throw_range_error(env, NULL, "sum1Blocks: output too small");
    return NULL;
  }
  const int8_t *p = (const int8_t *)bdata + start;
  uint32_t *out = (uint32_t *)odata + index;
  size_t left = (size_t)(end - start);
  for (uint64_t j = 0; j < count; j++) {
    size_t n = left < (size_t)blength ? left : (size_t)blength;
    out[j] = block_sum1(p, n);
    p += n;
    left -= n;
  }
  return num(env, (double)count);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"utimensat", NULL, js_utimensat, NULL, NULL, NULL, napi_default, NULL},
      {"futimens", NULL, js_futimens, NULL, NULL, NULL, napi_default, NULL},
      {"mknodat", NULL, js_mknodat, NULL, NULL, NULL, napi_default, NULL},
      {"openat", NULL, js_openat, NULL, NULL, NULL, napi_default, NULL},
      {"lstatat", NULL, js_lstatat, NULL, NULL, NULL, napi_default, NULL},
      {"lstatmany", NULL, js_lstatmany, NULL, NULL, NULL, napi_default, NULL},
      {"renameat", NULL, js_renameat, NULL, NULL, NULL, napi_default, NULL},
      {"linkat", NULL, js_linkat, NULL, NULL, NULL, napi_default, NULL},
      {"linkfd", NULL, js_linkfd, NULL, NULL, NULL, napi_default, NULL},
      {"readdirfd", NULL, js_readdirfd, NULL, NULL, NULL, napi_default, NULL},
      {"releaseFreedMemory", NULL, js_release_freed_memory, NULL, NULL, NULL, napi_default, NULL},
      {"lowMemoryNotification", NULL, js_low_memory_notification, NULL, NULL, NULL, napi_default, NULL},
      {"startWriteback", NULL, js_start_writeback, NULL, NULL, NULL, napi_default, NULL},
      {"punchHole", NULL, js_punch_hole, NULL, NULL, NULL, napi_default, NULL},
      {"unlinkat", NULL, js_unlinkat, NULL, NULL, NULL, napi_default, NULL},
      {"mkdirat", NULL, js_mkdirat, NULL, NULL, NULL, napi_default, NULL},
      {"symlinkat", NULL, js_symlinkat, NULL, NULL, NULL, napi_default, NULL},
      {"flockex", NULL, js_flockex, NULL, NULL, NULL, napi_default, NULL},
      {"sum1Blocks", NULL, js_sum1_blocks, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
