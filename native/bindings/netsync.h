// Bindings of the network-sync tracker: the events the engine reports, and the tracker itself
// (class SyncTracker) for tests that drive it packet by packet.
#pragma once
#include <napi.h>

#include "netsync/tracker.h"

namespace maelstrom::bindings {
Napi::Object event_object(Napi::Env env, const netsync::Event& e);
Napi::Object tracker_stats_object(Napi::Env env, const netsync::TrackerStats& s);
netsync::TrackerConfig tracker_config(const Napi::Object& o);
void init_netsync(Napi::Env env, Napi::Object exports);
}  // namespace maelstrom::bindings
