// The queue of network-sync events between the engine threads and JavaScript (drain_events).
// Internal to native/engine.
#pragma once
#include <algorithm>
#include <mutex>
#include <vector>

#include "engine/engine.h"

namespace maelstrom::engine {

// Events collect under the codec lock and move to the shared queue in batches.
class Engine::Events : public netsync::EventSink {
 public:
  static constexpr size_t kMax = 1 << 20;
  void event(const netsync::Event& e) override {
    local_.push_back(e);
    if (local_.size() >= 4096) publish();
  }
  void publish() {
    if (local_.empty()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    size_t room = kMax - std::min(kMax, shared_.size());
    size_t n = std::min(room, local_.size());
    shared_.insert(shared_.end(), local_.begin(), local_.begin() + long(n));
    dropped_ += local_.size() - n;
    local_.clear();
  }
  std::vector<netsync::Event> take() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<netsync::Event> out;
    out.swap(shared_);
    return out;
  }
  uint64_t dropped() {
    std::lock_guard<std::mutex> lock(mutex_);
    return dropped_;
  }

 private:
  std::vector<netsync::Event> local_;
  std::mutex mutex_;
  std::vector<netsync::Event> shared_;
  uint64_t dropped_ = 0;
};

}  // namespace maelstrom::engine
