{
  "targets": [
    {
      "target_name": "rrsyncd_native",
      "sources": ["rrsyncd_native.c"],
      "cflags": ["-O3", "-Wall"]
    }
  ]
}
