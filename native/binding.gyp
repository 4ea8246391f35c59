{
  # Two small plain-C N-API addons, Linux only.
  "targets": [
    {
      # The few filesystem syscalls Node 20's fs lacks (ns-precision utimensat
      # on symlinks, xattrs, mkfifo/mknod), using the Linux <sys/xattr.h> signatures.
      "target_name": "bhfs",
      "sources": ["bhfs.c"],
      # Pin the N-API level so the binary keeps loading on every Node >= 20
      # (we only need what N-API 8 offers: bigint getters, napi_create_error).
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    {
      # A read-only FUSE file system served from JavaScript (`bh mount`), on
      # libfuse3 (Debian: libfuse3-dev to build, fuse3 to mount). A separate
      # binary so that every other command loads without libfuse3.
      "target_name": "bhfuse",
      "sources": ["bhfuse.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"]
    }
  ]
}
