// A FUSE mount over libfuse3's low-level API, with no N-API in it: one thread reads the
// kernel's requests from /dev/fuse and queues them; whoever owns the session (the binding, for
// JavaScript) takes them in batches and answers each by its id, from any thread, whenever the
// answer is ready. libfuse's fuse_reply_* may be called from any thread, so no FUSE thread
// ever waits for an answer and any number of requests may be in flight.
#pragma once
#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

struct fuse_session;
struct fuse_req;

namespace maelstrom::fuse {

enum class Op : uint8_t {
  Lookup, Forget, Getattr, Setattr, Readlink, Mknod, Mkdir, Unlink, Rmdir, Symlink, Rename, Link,
  Open, Read, Write, Flush, Release, Fsync, Opendir, Readdir, Releasedir, Fsyncdir, Statfs, Create,
  Access, Fallocate, Count_,
};

const char* op_name(Op op);

// One request of the kernel's, copied out of libfuse's buffer.
struct Request {
  uint64_t id = 0;          // 0: needs no answer (forget)
  Op op = Op::Lookup;
  uint64_t ino = 0;         // the node, or the parent for lookup, mkdir, create, ...
  uint64_t ino2 = 0;        // rename: the new parent; link: the new parent
  std::string name;         // lookup, mkdir, ...: the entry's name; rename: the old name
  std::string name2;        // rename: the new name; symlink: the target
  uint64_t off = 0;         // read, write, readdir, fallocate
  uint64_t size = 0;        // read, readdir: bytes asked for; forget: lookups to drop; fallocate: length
  uint32_t flags = 0;       // open, create: open(2) flags; rename: RENAME_*; fsync: datasync; setattr: FUSE_SET_ATTR_*; fallocate: mode
  uint32_t mode = 0;        // mkdir, create, mknod; setattr: the new mode
  uint64_t fh = 0;          // the handle open/create/opendir gave
  uint32_t uid = 0, gid = 0;  // the caller's
  uint32_t pid = 0;
  struct stat attr {};      // setattr: the new values (size, uid, gid, times)
  std::vector<uint8_t> data;  // write
};

struct Options {
  std::string mountpoint;
  std::string fsname = "smfs";
  bool allow_other = true;
  bool auto_unmount = true;   // fusermount3 unmounts if the process dies
  double entry_timeout = 1.0;
  double attr_timeout = 1.0;
  unsigned max_write = 1 << 20;
  // The kernel's readahead for the mount (its bdi's read_ahead_kb), set once the connection is
  // up: FUSE starts at 128 KiB, which makes a sequential read four requests per MiB. 0 leaves it.
  unsigned readahead_kb = 1024;
};

// One node's attributes, as answers carry them.
struct Attr {
  uint64_t ino = 0;
  uint32_t mode = 0;
  uint32_t nlink = 1;
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  timespec atime{}, mtime{}, ctime{};
};

struct DirEntry {
  std::string name;
  uint64_t ino;
  uint32_t mode;
  uint64_t next_off;
};

struct StatFs {
  uint64_t bsize, blocks, bfree, bavail, files, ffree, namemax;
};

class Session {
 public:
  // wake: called on the FUSE thread when the queue becomes non-empty. ended: called once on the
  // FUSE thread when it stops reading, with 0 when asked to stop, else the errno that ended the
  // connection (ENODEV: unmounted from outside).
  Session(std::function<void()> wake, std::function<void(int)> ended);
  ~Session();

  // Mounts and starts the thread. Returns 0 or -errno; `error` says what failed.
  int start(const Options& o, std::string* error);
  // Stops reading, answers every request still open with EIO, unmounts (lazily) and closes the
  // connection. Safe to call more than once, from the owner's thread only.
  void stop();

  std::vector<Request*> take();
  uint64_t in_flight();

  // Answers; false when the id is unknown (answered already, or the session stopped).
  bool reply_err(uint64_t id, int err);
  bool reply_entry(uint64_t id, const Attr& a);
  bool reply_attr(uint64_t id, const Attr& a);
  bool reply_open(uint64_t id, uint64_t fh, bool direct_io, bool keep_cache);
  bool reply_create(uint64_t id, const Attr& a, uint64_t fh, bool direct_io, bool keep_cache);
  bool reply_write(uint64_t id, size_t count);
  bool reply_buf(uint64_t id, const void* data, size_t len);
  bool reply_readlink(uint64_t id, const std::string& target);
  bool reply_statfs(uint64_t id, const StatFs& s);
  bool reply_dir(uint64_t id, size_t size, const std::vector<DirEntry>& entries);

  // Called from libfuse's callbacks on the FUSE thread.
  void push(fuse_req* req, Request* r);
  void push_forget(uint64_t ino, uint64_t nlookup);
  const Options& options() const { return options_; }
  void init_done() { init_done_ = true; }
  // The readahead in effect (KiB), once set; -1 before, or if it could not be read (not root).
  int readahead_kb() const { return readahead_kb_.load(); }

 private:
  void run();
  void set_readahead();
  fuse_req* claim(uint64_t id);

  std::function<void()> wake_;
  std::function<void(int)> ended_;
  Options options_;
  fuse_session* se_ = nullptr;
  int stop_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> running_{false};
  bool mounted_ = false;
  bool init_done_ = false;       // the FUSE thread's only
  bool readahead_tried_ = false;
  std::atomic<int> readahead_kb_{-1};

  std::mutex mu_;
  std::vector<Request*> queue_;
  std::unordered_map<uint64_t, fuse_req*> open_;
  uint64_t next_id_ = 1;
  bool stopped_ = false;
};

}  // namespace maelstrom::fuse
