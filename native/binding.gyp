{
  "targets": [
    {
      "target_name": "rrsyncd_native",
      "sources": ["rrsyncd_native.c", "rrsyncd_gc.cc"],
      "cflags": ["-O3", "-Wall"]
    }
  ]
}
