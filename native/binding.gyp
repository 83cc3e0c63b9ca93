{
  "targets": [
    {
      "target_name": "cairn_native",
      "sources": ["cairn_native.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
