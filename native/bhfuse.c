/*
 * bhfuse: a read-only FUSE file system served from JavaScript, on libfuse3's
 * low-level (inode-based) API.
 *
 * libfuse's session loop blocks in read(2) on /dev/fuse, so it runs on a
 * thread of its own and never on Node's event loop.  Each request it reads
 * is handed to JavaScript through a thread-safe function and the loop goes
 * straight back to reading: JavaScript answers later, from the main thread,
 * with one of the reply functions below (libfuse's fuse_reply_* may be
 * called from any thread, once per request).  So many requests are in
 * flight at once (concurrent readers, kernel readahead) on one loop thread.
 *
 * What JavaScript need not see is answered here: statfs, opendir/releasedir
 * (no per-directory state), release (JS is told, no answer needed), forget
 * (JS is told, in one batch per kernel message) and every operation that
 * would write, which fails with EROFS (the mount is also made "ro", so the
 * kernel normally refuses those before they reach us).
 *
 * Lifecycle: mount() creates the session, mounts it and starts the loop
 * thread.  Unmounting is done from outside (umount2 / fusermount3 -u, by the
 * caller): the kernel then ends the connection, the loop's read fails with
 * ENODEV, the thread tells JavaScript "exited" and lets go of the
 * thread-safe function; JavaScript then calls destroy(), which joins the
 * thread and frees the session.  Closing /dev/fuse while the loop thread
 * still reads it would race with the reuse of its descriptor number, hence
 * this order.
 *
 * Plain C against node_api.h and fuse_lowlevel.h, like bhfs.c.  Linux only.
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

/* Operation codes JavaScript receives (src/fsx/fuse.ts mirrors them). */
enum {
  OP_EXITED = 0,
  OP_LOOKUP = 1,
  OP_FORGET = 2,
  OP_GETATTR = 3,
  OP_READLINK = 4,
  OP_OPEN = 5,
  OP_READ = 6,
  OP_RELEASE = 7,
  OP_READDIR = 8,
  OP_GETXATTR = 9,
  OP_LISTXATTR = 10,
  OP_READDIRPLUS = 11,
};

/* The fields of an attribute array (Float64Array) JavaScript replies with. */
enum {
  A_INO, A_MODE, A_NLINK, A_UID, A_GID, A_RDEV, A_SIZE, A_BLOCKS,
  A_ATIME_S, A_ATIME_NS, A_MTIME_S, A_MTIME_NS, A_CTIME_S, A_CTIME_NS,
  A_FIELDS
};

typedef struct {
  struct fuse_session *se;
  pthread_t thread;
  bool thread_started;
  napi_threadsafe_function tsfn;
  int loop_result;
  /* Largest read request the kernel may send, and its readahead (bytes). */
  unsigned max_read;
} bh_mount;

/* One request on its way to JavaScript. */
typedef struct {
  int op;
  fuse_req_t req;
  double ino, a, b, c;
  /* A name, or forget's (ino, nlookup) pairs as doubles; owned. */
  void *bytes;
  size_t bytes_len;
} bh_message;

/* ------------------------------------------------------------------------ */
/* Loop thread → JavaScript                                                 */
/* ------------------------------------------------------------------------ */

static void post(bh_mount *m, bh_message *msg) {
  if (napi_call_threadsafe_function(m->tsfn, msg, napi_tsfn_nonblocking) != napi_ok) {
    /* Only when the function is being torn down: nobody will answer. */
    if (msg->req) fuse_reply_err(msg->req, EIO);
    free(msg->bytes);
    free(msg);
  }
}

static bh_message *message(int op, fuse_req_t req, double ino) {
  bh_message *msg = calloc(1, sizeof *msg);
  if (!msg) return NULL;
  msg->op = op;
  msg->req = req;
  msg->ino = ino;
  return msg;
}

static bool with_name(bh_message *msg, const char *name) {
  size_t len = strlen(name);
  msg->bytes = malloc(len > 0 ? len : 1);
  if (!msg->bytes) return false;
  memcpy(msg->bytes, name, len);
  msg->bytes_len = len;
  return true;
}

static bh_mount *mount_of(fuse_req_t req) { return fuse_req_userdata(req); }

static void send_simple(fuse_req_t req, int op, fuse_ino_t ino, double a, double b, double c, const char *name) {
  bh_message *msg = message(op, req, (double)ino);
  if (!msg || (name && !with_name(msg, name))) {
    free(msg);
    fuse_reply_err(req, ENOMEM);
    return;
  }
  msg->a = a;
  msg->b = b;
  msg->c = c;
  post(mount_of(req), msg);
}

static void op_init(void *userdata, struct fuse_conn_info *conn) {
  bh_mount *m = userdata;
  /* Large reads in few requests: each request costs a round trip to JS. */
  conn->max_readahead = m->max_read;
  conn->max_write = m->max_read; /* libfuse derives the kernel's max_pages from it */
  conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  /* readdirplus (entries with their attributes, so that ls -l, find and tar need no lookup per
   * entry) where the kernel thinks it pays: libfuse asks for READDIRPLUS_AUTO by default. */
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  send_simple(req, OP_LOOKUP, parent, 0, 0, 0, name);
}

static void send_forgets(fuse_req_t req, size_t count, const struct fuse_forget_data *items) {
  bh_mount *m = mount_of(req);
  fuse_reply_none(req);
  bh_message *msg = message(OP_FORGET, NULL, 0);
  double *pairs = malloc(count * 2 * sizeof(double));
  if (!msg || !pairs) {
    /* Without memory, JavaScript keeps those inodes a little longer: harmless. */
    free(msg);
    free(pairs);
    return;
  }
  for (size_t i = 0; i < count; i++) {
    pairs[2 * i] = (double)items[i].ino;
    pairs[2 * i + 1] = (double)items[i].nlookup;
  }
  msg->bytes = pairs;
  msg->bytes_len = count * 2 * sizeof(double);
  post(m, msg);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  struct fuse_forget_data item = {.ino = ino, .nlookup = nlookup};
  send_forgets(req, 1, &item);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  send_forgets(req, count, forgets);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  send_simple(req, OP_GETATTR, ino, 0, 0, 0, NULL);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  send_simple(req, OP_READLINK, ino, 0, 0, 0, NULL);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
    fuse_reply_err(req, EROFS);
    return;
  }
  send_simple(req, OP_OPEN, ino, fi->flags, 0, 0, NULL);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  send_simple(req, OP_READ, ino, (double)size, (double)off, (double)fi->fh, NULL);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  bh_mount *m = mount_of(req); /* before the reply, which frees req */
  double fh = (double)fi->fh;
  fuse_reply_err(req, 0);
  bh_message *msg = message(OP_RELEASE, NULL, (double)ino);
  if (!msg) return;
  msg->a = fh;
  post(m, msg);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  fi->fh = 0;
  fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  send_simple(req, OP_READDIR, ino, (double)size, (double)off, 0, NULL);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  send_simple(req, OP_READDIRPLUS, ino, (double)size, (double)off, 0, NULL);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  (void)fi;
  fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  (void)ino;
  struct statvfs st = {0};
  st.f_bsize = 4096;
  st.f_frsize = 4096;
  st.f_namemax = 255;
  st.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &st);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  send_simple(req, OP_GETXATTR, ino, (double)size, 0, 0, name);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  send_simple(req, OP_LISTXATTR, ino, (double)size, 0, 0, NULL);
}

/* Everything that would change the file system. */
static void erofs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  (void)ino; (void)attr; (void)to_set; (void)fi;
  fuse_reply_err(req, EROFS);
}
static void erofs_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t mode, dev_t rdev) {
  (void)p; (void)n; (void)mode; (void)rdev;
  fuse_reply_err(req, EROFS);
}
static void erofs_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t mode) {
  (void)p; (void)n; (void)mode;
  fuse_reply_err(req, EROFS);
}
static void erofs_name(fuse_req_t req, fuse_ino_t p, const char *n) {
  (void)p; (void)n;
  fuse_reply_err(req, EROFS);
}
static void erofs_symlink(fuse_req_t req, const char *link, fuse_ino_t p, const char *n) {
  (void)link; (void)p; (void)n;
  fuse_reply_err(req, EROFS);
}
static void erofs_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn, unsigned int flags) {
  (void)p; (void)n; (void)np; (void)nn; (void)flags;
  fuse_reply_err(req, EROFS);
}
static void erofs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t np, const char *nn) {
  (void)ino; (void)np; (void)nn;
  fuse_reply_err(req, EROFS);
}
static void erofs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)ino; (void)buf; (void)size; (void)off; (void)fi;
  fuse_reply_err(req, EROFS);
}
static void erofs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags) {
  (void)ino; (void)name; (void)value; (void)size; (void)flags;
  fuse_reply_err(req, EROFS);
}
static void erofs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  (void)ino; (void)name;
  fuse_reply_err(req, EROFS);
}
static void erofs_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t mode, struct fuse_file_info *fi) {
  (void)p; (void)n; (void)mode; (void)fi;
  fuse_reply_err(req, EROFS);
}
static void erofs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, struct fuse_file_info *fi) {
  (void)ino; (void)mode; (void)off; (void)len; (void)fi;
  fuse_reply_err(req, EROFS);
}

static const struct fuse_lowlevel_ops OPS = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .open = op_open,
    .read = op_read,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .setattr = erofs_setattr,
    .mknod = erofs_mknod,
    .mkdir = erofs_mkdir,
    .unlink = erofs_name,
    .rmdir = erofs_name,
    .symlink = erofs_symlink,
    .rename = erofs_rename,
    .link = erofs_link,
    .write = erofs_write,
    .setxattr = erofs_setxattr,
    .removexattr = erofs_removexattr,
    .create = erofs_create,
    .fallocate = erofs_fallocate,
};

static void *loop_thread(void *arg) {
  bh_mount *m = arg;
  /* Signals are Node's business, on its own thread. */
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  m->loop_result = fuse_session_loop(m->se);
  bh_message *msg = message(OP_EXITED, NULL, 0);
  if (msg) {
    msg->a = m->loop_result;
    post(m, msg);
  }
  napi_release_threadsafe_function(m->tsfn, napi_tsfn_release);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* JavaScript side                                                          */
/* ------------------------------------------------------------------------ */

#define CHECK(env, call)                                                      \
  do {                                                                        \
    if ((call) != napi_ok) {                                                  \
      napi_throw_error((env), "ERR_BHFUSE", "N-API call failed: " #call);     \
      return NULL;                                                            \
    }                                                                         \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char text[256];
  snprintf(text, sizeof text, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, text);
  return NULL;
}

/* Calls the JS handler: (op, req, ino, a, b, c, bytes). */
static void call_js(napi_env env, napi_value callback, void *context, void *data) {
  (void)context;
  bh_message *msg = data;
  if (env == NULL || callback == NULL) {
    if (msg->req) fuse_reply_err(msg->req, EIO);
    free(msg->bytes);
    free(msg);
    return;
  }
  napi_value args[7];
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_create_int32(env, msg->op, &args[0]);
  if (msg->req) napi_create_external(env, msg->req, NULL, NULL, &args[1]);
  else args[1] = undefined;
  napi_create_double(env, msg->ino, &args[2]);
  napi_create_double(env, msg->a, &args[3]);
  napi_create_double(env, msg->b, &args[4]);
  napi_create_double(env, msg->c, &args[5]);
  if (msg->bytes) napi_create_buffer_copy(env, msg->bytes_len, msg->bytes, NULL, &args[6]);
  else args[6] = undefined;
  free(msg->bytes);
  fuse_req_t req = msg->req;
  free(msg);
  napi_value result;
  if (napi_call_function(env, undefined, callback, 7, args, &result) != napi_ok) {
    /* The handler threw: answer so that the caller in the kernel is not left waiting. */
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    if (req) fuse_reply_err(req, EIO);
  }
}

static bool get_string(napi_env env, napi_value value, char *out, size_t size) {
  size_t len = 0;
  return napi_get_value_string_utf8(env, value, out, size, &len) == napi_ok && len < size - 1;
}

/* mount(mountpoint: string, options: string, maxRead: number, handler) → handle */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "mount(mountpoint, options, maxRead, handler)");
    return NULL;
  }
  char mountpoint[4096];
  char options[4096];
  if (!get_string(env, argv[0], mountpoint, sizeof mountpoint) || !get_string(env, argv[1], options, sizeof options)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "mountpoint and options must be strings of less than 4 KiB");
    return NULL;
  }
  double max_read = 0;
  CHECK(env, napi_get_value_double(env, argv[2], &max_read));

  bh_mount *m = calloc(1, sizeof *m);
  if (!m) return throw_errno(env, ENOMEM, "mount");
  m->max_read = (unsigned)max_read;

  char *args_v[] = {"bh", "-o", options, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(3, args_v);
  m->se = fuse_session_new(&args, &OPS, sizeof OPS, m);
  if (!m->se) {
    free(m);
    napi_throw_error(env, NULL, "cannot create the FUSE session (libfuse printed why on stderr)");
    return NULL;
  }
  if (fuse_session_mount(m->se, mountpoint) != 0) {
    fuse_session_destroy(m->se);
    free(m);
    napi_throw_error(env, NULL, "cannot mount (libfuse printed why on stderr)");
    return NULL;
  }
  napi_value name;
  CHECK(env, napi_create_string_utf8(env, "bhfuse", NAPI_AUTO_LENGTH, &name));
  if (napi_create_threadsafe_function(env, argv[3], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &m->tsfn) != napi_ok) {
    fuse_session_unmount(m->se);
    fuse_session_destroy(m->se);
    free(m);
    napi_throw_error(env, NULL, "cannot create the thread-safe function");
    return NULL;
  }
  int err = pthread_create(&m->thread, NULL, loop_thread, m);
  if (err != 0) {
    napi_release_threadsafe_function(m->tsfn, napi_tsfn_abort);
    fuse_session_unmount(m->se);
    fuse_session_destroy(m->se);
    free(m);
    return throw_errno(env, err, "cannot start the FUSE thread");
  }
  m->thread_started = true;
  napi_value handle;
  CHECK(env, napi_create_external(env, m, NULL, NULL, &handle));
  return handle;
}

/* destroy(handle): after "exited" only. Joins the loop thread and frees the session. */
static napi_value js_destroy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bh_mount *m = NULL;
  CHECK(env, napi_get_value_external(env, argv[0], (void **)&m));
  if (!m || !m->thread_started) return NULL;
  pthread_join(m->thread, NULL);
  m->thread_started = false;
  fuse_session_unmount(m->se);
  fuse_session_destroy(m->se);
  m->se = NULL;
  return NULL;
}

static fuse_req_t req_arg(napi_env env, napi_value value) {
  void *req = NULL;
  if (napi_get_value_external(env, value, &req) != napi_ok) return NULL;
  return req;
}

#define REQ(env, value, req)                                                      \
  fuse_req_t req = req_arg(env, value);                                           \
  if (!req) {                                                                     \
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "not a FUSE request");     \
    return NULL;                                                                  \
  }

static void attr_from(const double *a, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = (ino_t)a[A_INO];
  st->st_mode = (mode_t)a[A_MODE];
  st->st_nlink = (nlink_t)a[A_NLINK];
  st->st_uid = (uid_t)a[A_UID];
  st->st_gid = (gid_t)a[A_GID];
  st->st_rdev = (dev_t)a[A_RDEV];
  st->st_size = (off_t)a[A_SIZE];
  st->st_blocks = (blkcnt_t)a[A_BLOCKS];
  st->st_blksize = 4096;
  st->st_atim.tv_sec = (time_t)a[A_ATIME_S];
  st->st_atim.tv_nsec = (long)a[A_ATIME_NS];
  st->st_mtim.tv_sec = (time_t)a[A_MTIME_S];
  st->st_mtim.tv_nsec = (long)a[A_MTIME_NS];
  st->st_ctim.tv_sec = (time_t)a[A_CTIME_S];
  st->st_ctim.tv_nsec = (long)a[A_CTIME_NS];
}

static bool fill_attr(napi_env env, napi_value array, struct stat *st) {
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (napi_get_typedarray_info(env, array, &type, &length, &data, NULL, NULL) != napi_ok || type != napi_float64_array || length < A_FIELDS) return false;
  attr_from(data, st);
  return true;
}

/* replyErr(req, errno) */
static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  REQ(env, argv[0], req);
  int32_t err = EIO;
  napi_get_value_int32(env, argv[1], &err);
  fuse_reply_err(req, err);
  return NULL;
}

/* replyEntry(req, attr, entryTimeout, attrTimeout) */
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  REQ(env, argv[0], req);
  struct fuse_entry_param e;
  memset(&e, 0, sizeof e);
  if (!fill_attr(env, argv[1], &e.attr)) {
    fuse_reply_err(req, EIO);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "attributes must be a Float64Array");
    return NULL;
  }
  e.ino = e.attr.st_ino;
  e.generation = 1;
  napi_get_value_double(env, argv[2], &e.entry_timeout);
  napi_get_value_double(env, argv[3], &e.attr_timeout);
  fuse_reply_entry(req, &e);
  return NULL;
}

/* replyAttr(req, attr, timeout) */
static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  REQ(env, argv[0], req);
  struct stat st;
  if (!fill_attr(env, argv[1], &st)) {
    fuse_reply_err(req, EIO);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "attributes must be a Float64Array");
    return NULL;
  }
  double timeout = 0;
  napi_get_value_double(env, argv[2], &timeout);
  fuse_reply_attr(req, &st, timeout);
  return NULL;
}

/* replyOpen(req, fh, keepCache) */
static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  REQ(env, argv[0], req);
  double fh = 0;
  bool keep_cache = false;
  napi_get_value_double(env, argv[1], &fh);
  napi_get_value_bool(env, argv[2], &keep_cache);
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof fi);
  fi.fh = (uint64_t)fh;
  fi.keep_cache = keep_cache ? 1 : 0;
  fuse_reply_open(req, &fi);
  return NULL;
}

/* replyBuffer(req, bytes): read data, a symlink target (readlink), an xattr value or name list. */
static napi_value js_reply_buffer(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  REQ(env, argv[0], req);
  void *data = NULL;
  size_t length = 0;
  if (napi_get_buffer_info(env, argv[1], &data, &length) != napi_ok) {
    fuse_reply_err(req, EIO);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "data must be a Buffer");
    return NULL;
  }
  fuse_reply_buf(req, data, length);
  return NULL;
}

/* replyReadlink(req, target): target bytes, NUL added here. */
static napi_value js_reply_readlink(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  REQ(env, argv[0], req);
  void *data = NULL;
  size_t length = 0;
  char *target = NULL;
  if (napi_get_buffer_info(env, argv[1], &data, &length) != napi_ok || !(target = malloc(length + 1))) {
    fuse_reply_err(req, EIO);
    return NULL;
  }
  memcpy(target, data, length);
  target[length] = 0;
  fuse_reply_readlink(req, target);
  free(target);
  return NULL;
}

/* replyXattrSize(req, size): the answer to a size probe (getxattr/listxattr with size 0). */
static napi_value js_reply_xattr_size(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  REQ(env, argv[0], req);
  double size = 0;
  napi_get_value_double(env, argv[1], &size);
  fuse_reply_xattr(req, (size_t)size);
  return NULL;
}

/*
 * replyDirectory(req, size, firstOffset, inos: Float64Array, modes: Uint32Array, names: Buffer[])
 * Entries from firstOffset on, as many as fit in size bytes; entry i's offset (where the
 * next readdir continues) is firstOffset + i + 1.
 */
static napi_value js_reply_directory(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  REQ(env, argv[0], req);
  double size_d = 0, first_d = 0;
  napi_get_value_double(env, argv[1], &size_d);
  napi_get_value_double(env, argv[2], &first_d);
  size_t size = (size_t)size_d;
  napi_typedarray_type type;
  size_t count = 0, mode_count = 0;
  void *inos_data = NULL, *modes_data = NULL;
  uint32_t name_count = 0;
  if (napi_get_typedarray_info(env, argv[3], &type, &count, &inos_data, NULL, NULL) != napi_ok || type != napi_float64_array ||
      napi_get_typedarray_info(env, argv[4], &type, &mode_count, &modes_data, NULL, NULL) != napi_ok || type != napi_uint32_array ||
      napi_get_array_length(env, argv[5], &name_count) != napi_ok || mode_count != count || name_count != count) {
    fuse_reply_err(req, EIO);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "replyDirectory(req, size, firstOffset, inos, modes, names)");
    return NULL;
  }
  const double *inos = inos_data;
  const uint32_t *modes = modes_data;
  char *buf = malloc(size > 0 ? size : 1);
  if (!buf) {
    fuse_reply_err(req, ENOMEM);
    return NULL;
  }
  size_t used = 0;
  char name[256];
  for (size_t i = 0; i < count; i++) {
    napi_value element;
    void *bytes = NULL;
    size_t length = 0;
    if (napi_get_element(env, argv[5], (uint32_t)i, &element) != napi_ok || napi_get_buffer_info(env, element, &bytes, &length) != napi_ok || length > 255) continue;
    memcpy(name, bytes, length);
    name[length] = 0;
    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_ino = (ino_t)inos[i];
    st.st_mode = modes[i];
    size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(first_d + (double)i + 1));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
  return NULL;
}

/*
 * replyDirectoryPlus(req, size, firstOffset, attrs: Float64Array (A_FIELDS per entry),
 *                    names: Buffer[], timeouts: Float64Array) → entries added
 * readdirplus: like replyDirectory, each entry with its attributes. The kernel takes one
 * reference (as a lookup would) to every entry added but "." and "..": the caller counts them.
 */
static napi_value js_reply_directory_plus(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  REQ(env, argv[0], req);
  double size_d = 0, first_d = 0;
  napi_get_value_double(env, argv[1], &size_d);
  napi_get_value_double(env, argv[2], &first_d);
  size_t size = (size_t)size_d;
  napi_typedarray_type type;
  size_t attr_count = 0, timeout_count = 0;
  void *attrs_data = NULL, *timeouts_data = NULL;
  uint32_t count = 0;
  if (napi_get_typedarray_info(env, argv[3], &type, &attr_count, &attrs_data, NULL, NULL) != napi_ok || type != napi_float64_array ||
      napi_get_array_length(env, argv[4], &count) != napi_ok ||
      napi_get_typedarray_info(env, argv[5], &type, &timeout_count, &timeouts_data, NULL, NULL) != napi_ok || type != napi_float64_array ||
      attr_count != (size_t)count * A_FIELDS || timeout_count != count) {
    fuse_reply_err(req, EIO);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "replyDirectoryPlus(req, size, firstOffset, attrs, names, timeouts)");
    return NULL;
  }
  const double *timeouts = timeouts_data;
  char *buf = malloc(size > 0 ? size : 1);
  if (!buf) {
    fuse_reply_err(req, ENOMEM);
    return NULL;
  }
  size_t used = 0;
  uint32_t added = 0;
  char name[256];
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    void *bytes = NULL;
    size_t length = 0;
    if (napi_get_element(env, argv[4], i, &element) != napi_ok || napi_get_buffer_info(env, element, &bytes, &length) != napi_ok || length > 255) break;
    memcpy(name, bytes, length);
    name[length] = 0;
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    attr_from((const double *)attrs_data + (size_t)i * A_FIELDS, &e.attr);
    e.ino = e.attr.st_ino;
    e.generation = 1;
    e.entry_timeout = timeouts[i];
    e.attr_timeout = timeouts[i];
    size_t need = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)(first_d + (double)i + 1));
    if (need > size - used) break;
    used += need;
    added++;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
  napi_value result;
  CHECK(env, napi_create_uint32(env, added, &result));
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL},
      {"destroy", NULL, js_destroy, NULL, NULL, NULL, napi_default, NULL},
      {"replyErr", NULL, js_reply_err, NULL, NULL, NULL, napi_default, NULL},
      {"replyEntry", NULL, js_reply_entry, NULL, NULL, NULL, napi_default, NULL},
      {"replyAttr", NULL, js_reply_attr, NULL, NULL, NULL, napi_default, NULL},
      {"replyOpen", NULL, js_reply_open, NULL, NULL, NULL, napi_default, NULL},
      {"replyBuffer", NULL, js_reply_buffer, NULL, NULL, NULL, napi_default, NULL},
      {"replyReadlink", NULL, js_reply_readlink, NULL, NULL, NULL, napi_default, NULL},
      {"replyXattrSize", NULL, js_reply_xattr_size, NULL, NULL, NULL, napi_default, NULL},
      {"replyDirectory", NULL, js_reply_directory, NULL, NULL, NULL, napi_default, NULL},
      {"replyDirectoryPlus", NULL, js_reply_directory_plus, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
