{
  # One tiny plain-C N-API addon: the few filesystem syscalls Node 20's fs
  # lacks (ns-precision utimensat on symlinks, xattrs, mkfifo/mknod).
  # Linux only (uses the Linux <sys/xattr.h> signatures).
  "targets": [
    {
      "target_name": "bhfs",
      "sources": ["bhfs.c"],
      # Pin the N-API level so the binary keeps loading on every Node >= 20
      # (we only need what N-API 8 offers: bigint getters, napi_create_error).
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
