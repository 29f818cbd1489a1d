// The one thing N-API (C) cannot do: ask V8 for its memory-reducing full GC, which also gives the
// heap's emptied pages back to the kernel. Called by rrsyncd only when no session is running.
#include <v8.h>

extern "C" void rrsyncd_low_memory_notification(void) {
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->LowMemoryNotification();
}
