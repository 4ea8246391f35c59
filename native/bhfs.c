/*
 * bhfs: the handful of filesystem syscalls a backup tool needs for exact
 * restores that Node 20's fs does not offer:
 *
 *   - utimensat(..., AT_SYMLINK_NOFOLLOW) with integer seconds + nanoseconds.
 *     fs.utimes/lutimes take a double of seconds, which at today's epoch
 *     cannot represent every nanosecond (~200 ns granularity).
 *   - extended attributes (l* variants only: a backup must record/restore a
 *     symlink's own xattrs, never its target's).
 *   - mkfifo / mknod.
 *
 * Plain C against node_api.h only (no node-addon-api, no C++), so it builds
 * with nothing but gcc and the Node headers.  Every function is a single,
 * fast syscall, so they are synchronous.  Linux only (<sys/xattr.h>
 * signatures differ on macOS).
 *
 * Paths (and xattr names) are accepted as a JS string (encoded as UTF-8) or a
 * Buffer/Uint8Array (passed through byte-exact), because file names on Linux
 * are arbitrary bytes and a restore must recreate them exactly.
 *
 * Errors mimic Node's fs errors: an Error with code ('ENOENT'), errno
 * (NEGATIVE, as Node/libuv report it: -2 for ENOENT), syscall, path, and the
 * message "ENOENT: no such file or directory, lgetxattr '/x'".
 */
#define _GNU_SOURCE
#include <node_api.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

/* Largest integer a JS number holds exactly; beyond it a "number" argument
 * cannot mean one specific integer, so we refuse it rather than guess. */
#define MAX_SAFE_INT 9007199254740991.0

/* The list/get size probe can race with a concurrent writer making the
 * attribute bigger (ERANGE on the second call).  Retry a bounded number of
 * times so a pathological writer cannot make us spin forever. */
#define XATTR_MAX_TRIES 16

/* A NUL-terminated, heap-owned copy of a path/name argument.  We copy even
 * Buffers because the syscalls need the terminating NUL and JS buffers have
 * none. */
typedef struct {
  char *data;
  size_t len; /* bytes, excluding the terminating NUL */
} cbytes;

static void cbytes_free(cbytes *b) {
  free(b->data);
  b->data = NULL;
  b->len = 0;
}

/* ------------------------------------------------------------------------ */
/* Error helpers                                                            */
/* ------------------------------------------------------------------------ */

static const char *errno_name(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    /* On Linux EOPNOTSUPP == ENOTSUP; libuv/Node call it ENOTSUP. */
    case ENOTSUP: return "ENOTSUP";
#if defined(EOPNOTSUPP) && EOPNOTSUPP != ENOTSUP
    case EOPNOTSUPP: return "EOPNOTSUPP";
#endif
    case ENODATA: return "ENODATA";
    case ERANGE: return "ERANGE";
    case E2BIG: return "E2BIG";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ELOOP: return "ELOOP";
    case EIO: return "EIO";
    case EDQUOT: return "EDQUOT";
    case EBADF: return "EBADF";
    case EBUSY: return "EBUSY";
    case EFAULT: return "EFAULT";
    case ENOMEM: return "ENOMEM";
    case EMLINK: return "EMLINK";
    case ENOTEMPTY: return "ENOTEMPTY";
    case EXDEV: return "EXDEV";
    case ENXIO: return "ENXIO";
    case ENODEV: return "ENODEV";
    case EFBIG: return "EFBIG";
    case ETXTBSY: return "ETXTBSY";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case ENOSYS: return "ENOSYS";
    case ESTALE: return "ESTALE";
    default: return NULL;
  }
}

/* If a napi_* call failed without leaving a JS exception pending, raise one
 * so the caller never silently returns undefined. */
static bool napi_ok_or_throw(napi_env env, napi_status status) {
  if (status == napi_ok) return true;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    napi_throw_error(env, NULL,
                     (info && info->error_message) ? info->error_message
                                                   : "bhfs: N-API call failed");
  }
  return false;
}

#define CHECK(env, call)                                  \
  do {                                                    \
    if (!napi_ok_or_throw((env), (call))) goto fail;      \
  } while (0)

/*
 * Throw a Node-style system error for `err` (a positive errno value).
 * `path` may be NULL.  Non-UTF-8 path bytes are decoded lossily (U+FFFD) by
 * napi_create_string_utf8, same as Buffer#toString would.
 */
/*
 * A Node-style system error for `err` (a positive errno value), or NULL with
 * a JS exception pending.  `path` may be NULL.  Non-UTF-8 path bytes are
 * decoded lossily (U+FFFD) by napi_create_string_utf8, same as
 * Buffer#toString would.
 */
static napi_value errno_error(napi_env env, int err, const char *syscall,
                              const cbytes *path) {
  char codebuf[24];
  const char *code = errno_name(err);
  if (code == NULL) {
    snprintf(codebuf, sizeof codebuf, "E%d", err);
    code = codebuf;
  }

  /* GNU strerror_r: thread-safe (worker threads may load this addon). Node
   * words the description in lower case ("no such file or directory"). */
  char descbuf[256];
  const char *d = strerror_r(err, descbuf, sizeof descbuf);
  char desc[256];
  snprintf(desc, sizeof desc, "%s", d ? d : "unknown error");
  desc[0] = (char)tolower((unsigned char)desc[0]);

  size_t cap = strlen(code) + strlen(desc) + strlen(syscall) +
               (path ? path->len : 0) + 16;
  char *msg = malloc(cap);
  if (msg == NULL) {
    napi_throw_error(env, code, "bhfs: out of memory building error");
    return NULL;
  }
  int mlen;
  if (path)
    mlen = snprintf(msg, cap, "%s: %s, %s '%.*s'", code, desc, syscall,
                    (int)path->len, path->data);
  else
    mlen = snprintf(msg, cap, "%s: %s, %s", code, desc, syscall);
  if (mlen < 0) mlen = 0;
  if ((size_t)mlen >= cap) mlen = (int)cap - 1;

  napi_value jcode, jmsg, jerr, jerrno, jsyscall, jpath;
  bool ok = napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) == napi_ok &&
            napi_create_string_utf8(env, msg, (size_t)mlen, &jmsg) == napi_ok &&
            napi_create_error(env, jcode, jmsg, &jerr) == napi_ok &&
            napi_create_int32(env, -err, &jerrno) == napi_ok &&
            napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &jsyscall) == napi_ok;
  free(msg);
  if (!ok) {
    napi_ok_or_throw(env, napi_generic_failure);
    return NULL;
  }
  napi_set_named_property(env, jerr, "errno", jerrno);
  napi_set_named_property(env, jerr, "syscall", jsyscall);
  if (path && napi_create_string_utf8(env, path->data, path->len, &jpath) == napi_ok)
    napi_set_named_property(env, jerr, "path", jpath);
  return jerr;
}

/* Throw errno_error(...). */
static void throw_errno(napi_env env, int err, const char *syscall,
                        const cbytes *path) {
  napi_value error = errno_error(env, err, syscall, path);
  if (error != NULL) napi_throw(env, error);
}

/* ------------------------------------------------------------------------ */
/* Argument helpers (all return false with a JS exception pending on error) */
/* ------------------------------------------------------------------------ */

/* Borrow the bytes of a Uint8Array (Buffer is one).  Other typed arrays and
 * DataViews are refused: their "bytes" depend on host endianness. */
static bool get_uint8array(napi_env env, napi_value v, bool *is_u8,
                           const char **data, size_t *len) {
  bool is_ta = false;
  *is_u8 = false;
  if (!napi_ok_or_throw(env, napi_is_typedarray(env, v, &is_ta))) return false;
  if (!is_ta) return true;
  napi_typedarray_type type;
  size_t length = 0;
  void *ptr = NULL;
  if (!napi_ok_or_throw(env, napi_get_typedarray_info(env, v, &type, &length,
                                                      &ptr, NULL, NULL)))
    return false;
  if (type != napi_uint8_array && type != napi_uint8_clamped_array) return true;
  *is_u8 = true;
  *data = ptr; /* already adjusted by byte_offset */
  *len = length;
  return true;
}

static void throw_arg_type(napi_env env, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg,
           "The \"%s\" argument must be of type string or an instance of "
           "Buffer or Uint8Array",
           what);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

/* string (UTF-8 encoded) or Uint8Array (byte-exact) -> NUL-terminated copy.
 * An embedded NUL would silently truncate the name at the syscall, i.e.
 * operate on a *different* file, so it is an error (as in Node's fs). */
static bool get_path_arg(napi_env env, napi_value v, const char *what,
                         cbytes *out) {
  out->data = NULL;
  out->len = 0;
  napi_valuetype t;
  if (!napi_ok_or_throw(env, napi_typeof(env, v, &t))) return false;

  if (t == napi_string) {
    size_t len = 0;
    if (!napi_ok_or_throw(env, napi_get_value_string_utf8(env, v, NULL, 0, &len)))
      return false;
    out->data = malloc(len + 1);
    if (out->data == NULL) {
      napi_throw_error(env, "ENOMEM", "bhfs: out of memory");
      return false;
    }
    size_t got = 0;
    if (!napi_ok_or_throw(env, napi_get_value_string_utf8(env, v, out->data,
                                                          len + 1, &got))) {
      cbytes_free(out);
      return false;
    }
    out->data[got] = '\0';
    out->len = got;
  } else {
    bool is_u8 = false;
    const char *data = NULL;
    size_t len = 0;
    if (t != napi_object || !get_uint8array(env, v, &is_u8, &data, &len)) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (!pending) throw_arg_type(env, what);
      return false;
    }
    if (!is_u8) {
      throw_arg_type(env, what);
      return false;
    }
    out->data = malloc(len + 1);
    if (out->data == NULL) {
      napi_throw_error(env, "ENOMEM", "bhfs: out of memory");
      return false;
    }
    if (len) memcpy(out->data, data, len);
    out->data[len] = '\0';
    out->len = len;
  }

  if (memchr(out->data, '\0', out->len) != NULL) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "The \"%s\" argument must not contain null bytes", what);
    cbytes_free(out);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
    return false;
  }
  return true;
}

static void throw_range(napi_env env, const char *what, const char *expect) {
  char msg[200];
  snprintf(msg, sizeof msg, "The value of \"%s\" is out of range. It must be %s",
           what, expect);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
}

/* A JS number that is an exact integer in [min, max].  Fractions/NaN are
 * refused instead of truncated: a silently rounded timestamp or device
 * number would be a wrong restore. */
static bool get_int_arg(napi_env env, napi_value v, const char *what,
                        double min, double max, int64_t *out) {
  napi_valuetype t;
  if (!napi_ok_or_throw(env, napi_typeof(env, v, &t))) return false;
  if (t != napi_number) {
    char msg[120];
    snprintf(msg, sizeof msg, "The \"%s\" argument must be of type number", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  double d = 0;
  if (!napi_ok_or_throw(env, napi_get_value_double(env, v, &d))) return false;
  if (!isfinite(d) || floor(d) != d || d < min || d > max) {
    char expect[120];
    snprintf(expect, sizeof expect, "an integer >= %.0f and <= %.0f", min, max);
    throw_range(env, what, expect);
    return false;
  }
  /* Exact now that we know it is an in-range integer. */
  return napi_ok_or_throw(env, napi_get_value_int64(env, v, out));
}

/* dev_t is 64-bit; accept a number (fs.lstat's rdev) or a bigint
 * (fs.lstat(..., {bigint: true}).rdev) without losing bits. */
static bool get_dev_arg(napi_env env, napi_value v, const char *what,
                        uint64_t *out) {
  napi_valuetype t;
  if (!napi_ok_or_throw(env, napi_typeof(env, v, &t))) return false;
  if (t == napi_bigint) {
    bool lossless = false;
    if (!napi_ok_or_throw(env, napi_get_value_bigint_uint64(env, v, out, &lossless)))
      return false;
    if (!lossless) {
      throw_range(env, what, "a bigint >= 0 and < 2n ** 64n");
      return false;
    }
    return true;
  }
  int64_t n = 0;
  if (!get_int_arg(env, v, what, 0, MAX_SAFE_INT, &n)) return false;
  *out = (uint64_t)n;
  return true;
}

/* Fetch exactly `n` callback arguments (missing ones read as undefined and
 * then fail their type checks with a clear message). */
static bool get_args(napi_env env, napi_callback_info info, size_t n,
                     napi_value *argv) {
  size_t argc = n;
  return napi_ok_or_throw(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
}

static napi_value undefined(napi_env env) {
  napi_value u = NULL;
  napi_get_undefined(env, &u);
  return u;
}

/* ------------------------------------------------------------------------ */
/* Exports                                                                  */
/* ------------------------------------------------------------------------ */

/* lutimesNs(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec) */
static napi_value js_lutimes_ns(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  cbytes path = {0};
  int64_t asec, ansec, msec, mnsec;
  if (!get_args(env, info, 5, argv)) return NULL;
  if (!get_path_arg(env, argv[0], "path", &path)) return NULL;
  if (!get_int_arg(env, argv[1], "atimeSec", -MAX_SAFE_INT, MAX_SAFE_INT, &asec) ||
      !get_int_arg(env, argv[2], "atimeNsec", 0, 999999999, &ansec) ||
      !get_int_arg(env, argv[3], "mtimeSec", -MAX_SAFE_INT, MAX_SAFE_INT, &msec) ||
      !get_int_arg(env, argv[4], "mtimeNsec", 0, 999999999, &mnsec))
    goto fail;

  /* time_t is 64-bit on every Linux target Node 20 supports; guard anyway so
   * a 32-bit build refuses instead of wrapping to a different date. */
  if ((int64_t)(time_t)asec != asec || (int64_t)(time_t)msec != msec) {
    throw_errno(env, EOVERFLOW, "utimensat", &path);
    goto fail;
  }
  struct timespec ts[2];
  ts[0].tv_sec = (time_t)asec;
  ts[0].tv_nsec = (long)ansec;
  ts[1].tv_sec = (time_t)msec;
  ts[1].tv_nsec = (long)mnsec;
  if (utimensat(AT_FDCWD, path.data, ts, AT_SYMLINK_NOFOLLOW) != 0) {
    throw_errno(env, errno, "utimensat", &path);
    goto fail;
  }
  cbytes_free(&path);
  return undefined(env);
fail:
  cbytes_free(&path);
  return NULL;
}

/* llistxattr(path) -> string[] */
static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  cbytes path = {0};
  char *buf = NULL;
  ssize_t got = 0;
  napi_value arr;

  if (!get_args(env, info, 1, argv)) return NULL;
  if (!get_path_arg(env, argv[0], "path", &path)) return NULL;

  for (int attempt = 0;; attempt++) {
    ssize_t need = llistxattr(path.data, NULL, 0);
    if (need < 0) {
      throw_errno(env, errno, "llistxattr", &path);
      goto fail;
    }
    if (need == 0) { /* no attributes at all */
      got = 0;
      break;
    }
    buf = malloc((size_t)need);
    if (buf == NULL) {
      throw_errno(env, ENOMEM, "llistxattr", &path);
      goto fail;
    }
    got = llistxattr(path.data, buf, (size_t)need);
    if (got >= 0) break;
    int e = errno;
    free(buf);
    buf = NULL;
    /* ERANGE: the list grew between probe and read; probe again. */
    if (e != ERANGE || attempt + 1 >= XATTR_MAX_TRIES) {
      throw_errno(env, e, "llistxattr", &path);
      goto fail;
    }
  }

  CHECK(env, napi_create_array(env, &arr));
  {
    /* The kernel returns "name1\0name2\0...". */
    uint32_t idx = 0;
    size_t off = 0;
    while (off < (size_t)got) {
      size_t n = strnlen(buf + off, (size_t)got - off);
      if (n > 0) {
        napi_value s;
        CHECK(env, napi_create_string_utf8(env, buf + off, n, &s));
        CHECK(env, napi_set_element(env, arr, idx++, s));
      }
      off += n + 1;
    }
  }
  free(buf);
  cbytes_free(&path);
  return arr;
fail:
  free(buf);
  cbytes_free(&path);
  return NULL;
}

/* lgetxattr(path, name) -> Buffer */
static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  cbytes path = {0}, name = {0};
  char *buf = NULL;
  ssize_t got = 0;
  napi_value result;

  if (!get_args(env, info, 2, argv)) return NULL;
  if (!get_path_arg(env, argv[0], "path", &path)) return NULL;
  if (!get_path_arg(env, argv[1], "name", &name)) goto fail;

  for (int attempt = 0;; attempt++) {
    ssize_t need = lgetxattr(path.data, name.data, NULL, 0);
    if (need < 0) {
      throw_errno(env, errno, "lgetxattr", &path);
      goto fail;
    }
    if (need == 0) { /* attribute exists with an empty value */
      got = 0;
      break;
    }
    buf = malloc((size_t)need);
    if (buf == NULL) {
      throw_errno(env, ENOMEM, "lgetxattr", &path);
      goto fail;
    }
    got = lgetxattr(path.data, name.data, buf, (size_t)need);
    if (got >= 0) break;
    int e = errno;
    free(buf);
    buf = NULL;
    /* ERANGE: the value grew between probe and read; probe again. */
    if (e != ERANGE || attempt + 1 >= XATTR_MAX_TRIES) {
      throw_errno(env, e, "lgetxattr", &path);
      goto fail;
    }
  }

  CHECK(env, napi_create_buffer_copy(env, (size_t)got, got ? buf : "", NULL,
                                     &result));
  free(buf);
  cbytes_free(&name);
  cbytes_free(&path);
  return result;
fail:
  free(buf);
  cbytes_free(&name);
  cbytes_free(&path);
  return NULL;
}

/* lsetxattr(path, name, value: Uint8Array) -- flags 0: create or replace */
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  cbytes path = {0}, name = {0};
  bool is_u8 = false;
  const char *data = NULL;
  size_t len = 0;

  if (!get_args(env, info, 3, argv)) return NULL;
  if (!get_path_arg(env, argv[0], "path", &path)) return NULL;
  if (!get_path_arg(env, argv[1], "name", &name)) goto fail;
  {
    napi_valuetype t;
    CHECK(env, napi_typeof(env, argv[2], &t));
    if (t == napi_object && !get_uint8array(env, argv[2], &is_u8, &data, &len))
      goto fail;
    if (!is_u8) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                            "The \"value\" argument must be an instance of "
                            "Buffer or Uint8Array");
      goto fail;
    }
  }
  /* No JS runs between borrowing `data` and the syscall, so the pointer
   * stays valid.  A zero-length view may have a NULL data pointer. */
  if (lsetxattr(path.data, name.data, len ? data : "", len, 0) != 0) {
    throw_errno(env, errno, "lsetxattr", &path);
    goto fail;
  }
  cbytes_free(&name);
  cbytes_free(&path);
  return undefined(env);
fail:
  cbytes_free(&name);
  cbytes_free(&path);
  return NULL;
}

/* lremovexattr(path, name) */
static napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  cbytes path = {0}, name = {0};

  if (!get_args(env, info, 2, argv)) return NULL;
  if (!get_path_arg(env, argv[0], "path", &path)) return NULL;
  if (!get_path_arg(env, argv[1], "name", &name)) goto fail;
  if (lremovexattr(path.data, name.data) != 0) {
    throw_errno(env, errno, "lremovexattr", &path);
    goto fail;
  }
  cbytes_free(&name);
  cbytes_free(&path);
  return undefined(env);
fail:
  cbytes_free(&name);
  cbytes_free(&path);
  return NULL;
}

/* mkfifo(path, mode) -- permission bits only; the process umask applies. */
static napi_value js_mkfifo(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  cbytes path = {0};
  int64_t mode = 0;

  if (!get_args(env, info, 2, argv)) return NULL;
  if (!get_path_arg(env, argv[0], "path", &path)) return NULL;
  if (!get_int_arg(env, argv[1], "mode", 0, 07777, &mode)) goto fail;
  if (mkfifo(path.data, (mode_t)mode) != 0) {
    throw_errno(env, errno, "mkfifo", &path);
    goto fail;
  }
  cbytes_free(&path);
  return undefined(env);
fail:
  cbytes_free(&path);
  return NULL;
}

/* mknod(path, mode, dev) -- mode includes the S_IF* type bits; dev is the
 * kernel-encoded dev_t exactly as fs.lstat reports it in `rdev`. */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  cbytes path = {0};
  int64_t mode = 0;
  uint64_t dev = 0;

  if (!get_args(env, info, 3, argv)) return NULL;
  if (!get_path_arg(env, argv[0], "path", &path)) return NULL;
  if (!get_int_arg(env, argv[1], "mode", 0, 4294967295.0, &mode) ||
      !get_dev_arg(env, argv[2], "dev", &dev))
    goto fail;
  if ((uint64_t)(dev_t)dev != dev) {
    throw_errno(env, EOVERFLOW, "mknod", &path);
    goto fail;
  }
  if (mknod(path.data, (mode_t)mode, (dev_t)dev) != 0) {
    throw_errno(env, errno, "mknod", &path);
    goto fail;
  }
  cbytes_free(&path);
  return undefined(env);
fail:
  cbytes_free(&path);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* scanDir: one directory's entries with their lstat, off the main thread   */
/* ------------------------------------------------------------------------ */

/*
 * A backup lstat()s every entry of every directory.  Through fs.lstatSync
 * each costs a BigIntStats object (plus Date objects) and a JS/C round trip
 * on the main thread; scanDir does readdir, fstatat and an xattr probe for a
 * whole directory on a libuv thread-pool thread and hands back one buffer:
 *
 *   u32 count, u32 0, then count records of SCAN_RECORD bytes (below), then
 *   the entry names, back to back (records point into them).
 *
 * Records are sorted by name bytes (memcmp, then length: Buffer.compare's
 * order), so a tree can be built in order.  "." and ".." are left out.
 */
enum {
  SCAN_NAME_OFFSET = 0,  /* u32, from the start of the names */
  SCAN_NAME_LENGTH = 4,  /* u32 */
  SCAN_ERRNO = 8,        /* i32: 0, or the errno fstatat failed with */
  SCAN_MODE = 12,        /* u32 st_mode (type bits included) */
  SCAN_UID = 16,         /* u32 */
  SCAN_GID = 20,         /* u32 */
  SCAN_NLINK = 24,       /* f64 */
  SCAN_SIZE = 32,        /* f64 (exact below 2^53 bytes) */
  SCAN_INO = 40,         /* u64 */
  SCAN_DEV = 48,         /* u64 */
  SCAN_RDEV = 56,        /* u64 */
  SCAN_MTIME_NS = 64,    /* i64 ns since the epoch (when SCAN_TIMES_FIT) */
  SCAN_CTIME_NS = 72,    /* i64 */
  SCAN_MTIME_SEC = 80,   /* i64, always */
  SCAN_CTIME_SEC = 88,   /* i64 */
  SCAN_MTIME_NSEC = 96,  /* u32 */
  SCAN_CTIME_NSEC = 100, /* u32 */
  SCAN_XATTRS = 104,     /* i32: 1 has xattrs, 0 none, -1 unknown (probe failed) */
  SCAN_FLAGS = 108,      /* u32: SCAN_TIMES_FIT when both *_NS fields hold the times */
  SCAN_RECORD = 112,
  SCAN_HEADER = 8,
  SCAN_TIMES_FIT = 1,
};

typedef struct {
  size_t name_offset;
  size_t name_length;
} scan_name;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  cbytes path;
  int err;             /* positive errno of the directory itself, or 0 */
  const char *syscall; /* what failed with err */
  char *names;         /* names, back to back */
  size_t names_length;
  scan_name *entries;
  size_t count;
  char *result;        /* the buffer handed to JS */
  size_t result_length;
} scan_job;

/* qsort_r comparator; `names` is the job's names (several pool threads sort at once). */
static int compare_scan_names(const void *a, const void *b, void *names) {
  const scan_name *x = a, *y = b;
  const char *base = names;
  size_t n = x->name_length < y->name_length ? x->name_length : y->name_length;
  int c = memcmp(base + x->name_offset, base + y->name_offset, n);
  if (c != 0) return c;
  return x->name_length < y->name_length ? -1 : x->name_length > y->name_length;
}

static void put_u32(char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_i32(char *p, int32_t v) { memcpy(p, &v, 4); }
static void put_u64(char *p, uint64_t v) { memcpy(p, &v, 8); }
static void put_i64(char *p, int64_t v) { memcpy(p, &v, 8); }
static void put_f64(char *p, double v) { memcpy(p, &v, 8); }

/* *ns = sec * 1e9 + nsec, false when that leaves int64 (beyond the years 1677..2262). */
static bool time_ns(const struct timespec *t, int64_t *ns) {
  int64_t scaled;
  return !__builtin_mul_overflow((int64_t)t->tv_sec, (int64_t)1000000000, &scaled) &&
         !__builtin_add_overflow(scaled, (int64_t)t->tv_nsec, ns);
}

/* Grow *buf (of *cap bytes) to hold at least `need` bytes. */
static bool reserve(char **buf, size_t *cap, size_t need) {
  if (need <= *cap) return true;
  size_t next = *cap ? *cap : 4096;
  while (next < need) next *= 2;
  char *grown = realloc(*buf, next);
  if (grown == NULL) return false;
  *buf = grown;
  *cap = next;
  return true;
}

/* Reads the directory's names (errors set job->err). Runs on a pool thread. */
static int read_names(scan_job *job, DIR *dir) {
  size_t names_cap = 0, entries_cap = 0;
  for (;;) {
    errno = 0;
    struct dirent *d = readdir(dir);
    if (d == NULL) {
      if (errno != 0) {
        job->err = errno;
        job->syscall = "scandir";
        return -1;
      }
      return 0;
    }
    const char *name = d->d_name;
    size_t length = strlen(name);
    if ((length == 1 && name[0] == '.') || (length == 2 && name[0] == '.' && name[1] == '.')) continue;
    if (!reserve(&job->names, &names_cap, job->names_length + length)) goto oom;
    if (job->count * sizeof(scan_name) >= entries_cap) {
      char *grown = (char *)job->entries;
      if (!reserve(&grown, &entries_cap, (job->count + 1) * sizeof(scan_name))) goto oom;
      job->entries = (scan_name *)grown;
    }
    memcpy(job->names + job->names_length, name, length);
    job->entries[job->count].name_offset = job->names_length;
    job->entries[job->count].name_length = length;
    job->names_length += length;
    job->count++;
  }
oom:
  job->err = ENOMEM;
  job->syscall = "scandir";
  return -1;
}

/* 1 when the entry has extended attributes, 0 when not, -1 when unknown. */
static int32_t probe_xattrs(const cbytes *dir, const char *name, size_t length, char *pathbuf, size_t pathcap) {
  size_t need = dir->len + 1 + length + 1;
  if (need > pathcap) return -1;
  memcpy(pathbuf, dir->data, dir->len);
  size_t at = dir->len;
  if (at == 0 || pathbuf[at - 1] != '/') pathbuf[at++] = '/';
  memcpy(pathbuf + at, name, length);
  pathbuf[at + length] = '\0';
  ssize_t size = llistxattr(pathbuf, NULL, 0);
  return size < 0 ? -1 : size > 0;
}

static void scan_execute(napi_env env, void *data) {
  scan_job *job = data;
  int fd = open(job->path.data, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    job->err = errno;
    job->syscall = "scandir";
    return;
  }
  DIR *dir = fdopendir(fd);
  if (dir == NULL) {
    job->err = errno;
    job->syscall = "scandir";
    close(fd);
    return;
  }
  if (read_names(job, dir) != 0) {
    closedir(dir);
    return;
  }
  qsort_r(job->entries, job->count, sizeof(scan_name), compare_scan_names, job->names);

  size_t records = SCAN_HEADER + job->count * SCAN_RECORD;
  job->result_length = records + job->names_length;
  job->result = calloc(1, job->result_length ? job->result_length : 1);
  char name[256 + 1];
  char pathbuf[4096];
  if (job->result == NULL) {
    job->err = ENOMEM;
    job->syscall = "scandir";
    closedir(dir);
    return;
  }
  put_u32(job->result, (uint32_t)job->count);
  size_t names_at = 0;
  for (size_t i = 0; i < job->count; i++) {
    const scan_name *e = &job->entries[i];
    char *r = job->result + SCAN_HEADER + i * SCAN_RECORD;
    memcpy(job->result + records + names_at, job->names + e->name_offset, e->name_length);
    put_u32(r + SCAN_NAME_OFFSET, (uint32_t)names_at);
    put_u32(r + SCAN_NAME_LENGTH, (uint32_t)e->name_length);
    names_at += e->name_length;
    /* Names from readdir are at most NAME_MAX (255) bytes. */
    memcpy(name, job->names + e->name_offset, e->name_length);
    name[e->name_length] = '\0';
    struct stat st;
    if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      put_i32(r + SCAN_ERRNO, errno);
      continue;
    }
    put_u32(r + SCAN_MODE, st.st_mode);
    put_u32(r + SCAN_UID, st.st_uid);
    put_u32(r + SCAN_GID, st.st_gid);
    put_f64(r + SCAN_NLINK, (double)st.st_nlink);
    put_f64(r + SCAN_SIZE, (double)st.st_size);
    put_u64(r + SCAN_INO, (uint64_t)st.st_ino);
    put_u64(r + SCAN_DEV, (uint64_t)st.st_dev);
    put_u64(r + SCAN_RDEV, (uint64_t)st.st_rdev);
    put_i64(r + SCAN_MTIME_SEC, (int64_t)st.st_mtim.tv_sec);
    put_i64(r + SCAN_CTIME_SEC, (int64_t)st.st_ctim.tv_sec);
    put_u32(r + SCAN_MTIME_NSEC, (uint32_t)st.st_mtim.tv_nsec);
    put_u32(r + SCAN_CTIME_NSEC, (uint32_t)st.st_ctim.tv_nsec);
    int64_t mtime_ns, ctime_ns;
    if (time_ns(&st.st_mtim, &mtime_ns) && time_ns(&st.st_ctim, &ctime_ns)) {
      put_i64(r + SCAN_MTIME_NS, mtime_ns);
      put_i64(r + SCAN_CTIME_NS, ctime_ns);
      put_u32(r + SCAN_FLAGS, SCAN_TIMES_FIT);
    }
    put_i32(r + SCAN_XATTRS, probe_xattrs(&job->path, name, e->name_length, pathbuf, sizeof pathbuf));
  }
  closedir(dir);
}

static void scan_complete(napi_env env, napi_status status, void *data) {
  scan_job *job = data;
  napi_value value = NULL;
  if (status != napi_ok) {
    napi_create_string_utf8(env, "bhfs: scanDir was cancelled", NAPI_AUTO_LENGTH, &value);
    napi_value error;
    napi_create_error(env, NULL, value, &error);
    napi_reject_deferred(env, job->deferred, error);
  } else if (job->err != 0) {
    value = errno_error(env, job->err, job->syscall, &job->path);
    if (value == NULL) { /* the exception pending is the reason */
      napi_get_and_clear_last_exception(env, &value);
    }
    napi_reject_deferred(env, job->deferred, value);
  } else if (napi_create_buffer_copy(env, job->result_length, job->result, NULL, &value) == napi_ok) {
    napi_resolve_deferred(env, job->deferred, value);
  } else {
    napi_get_and_clear_last_exception(env, &value);
    napi_reject_deferred(env, job->deferred, value);
  }
  napi_delete_async_work(env, job->work);
  cbytes_free(&job->path);
  free(job->names);
  free(job->entries);
  free(job->result);
  free(job);
}

/* scanDir(path) -> Promise<Buffer> (layout above) */
static napi_value js_scan_dir(napi_env env, napi_callback_info info) {
  napi_value argv[1], promise, name;
  if (!get_args(env, info, 1, argv)) return NULL;
  scan_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    throw_errno(env, ENOMEM, "scandir", NULL);
    return NULL;
  }
  if (!get_path_arg(env, argv[0], "path", &job->path)) {
    free(job);
    return NULL;
  }
  CHECK(env, napi_create_promise(env, &job->deferred, &promise));
  CHECK(env, napi_create_string_utf8(env, "bhfs.scanDir", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_create_async_work(env, NULL, name, scan_execute, scan_complete, job, &job->work));
  CHECK(env, napi_queue_async_work(env, job->work));
  return promise;
fail:
  cbytes_free(&job->path);
  free(job);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"lutimesNs", NULL, js_lutimes_ns, NULL, NULL, NULL, napi_enumerable, NULL},
      {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lremovexattr", NULL, js_lremovexattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mkfifo", NULL, js_mkfifo, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_enumerable, NULL},
      {"scanDir", NULL, js_scan_dir, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0],
                             props) != napi_ok)
    return NULL;
  return exports;
}
