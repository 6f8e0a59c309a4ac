{
  "targets": [
    {
      "target_name": "sshuttle_native",
      "sources": ["src/effects/native/sshuttle_native.c"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    },
    {
      "target_name": "sshuttle_netlink",
      "sources": ["src/effects/native/sshuttle_netlink.c"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    },
    {
      "target_name": "sshuttle_unix",
      "sources": ["src/effects/native/sshuttle_unix.c"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
