// What a JavaScript environment (the main thread, or a worker) has opened and not yet closed:
// gateway engines, delay lines, loss programs. Kept per environment (env.SetInstanceData, as
// better-sqlite3 keeps its Addon), and closed when the environment goes away, so that no engine
// thread or XDP program outlives it. A wrapped object registers itself when it opens and leaves
// when it closes; it holds the registry by shared_ptr, so one finalized after the environment's
// data still finds it.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <unordered_map>

namespace maelstrom::bindings {

class Live {
 public:
  void add(const void* object, std::function<void()> close) { open_[object] = std::move(close); }
  void remove(const void* object) { open_.erase(object); }
  void close_all() {
    auto open = std::move(open_);
    open_.clear();
    for (auto& [object, close] : open) close();
  }

 private:
  std::unordered_map<const void*, std::function<void()>> open_;
};

struct InstanceData {
  std::shared_ptr<Live> live = std::make_shared<Live>();
  ~InstanceData() { live->close_all(); }
};

inline void init_instance_data(Napi::Env env) { env.SetInstanceData<InstanceData>(new InstanceData); }
inline std::shared_ptr<Live> live(Napi::Env env) { return env.GetInstanceData<InstanceData>()->live; }

}  // namespace maelstrom::bindings
