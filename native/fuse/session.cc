#define FUSE_USE_VERSION 34
#include "fuse/session.h"

#include <fuse_lowlevel.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace maelstrom::fuse {
namespace {

Session* session_of(fuse_req_t req) { return static_cast<Session*>(fuse_req_userdata(req)); }

void fill_ctx(fuse_req_t req, Request* r) {
  const fuse_ctx* c = fuse_req_ctx(req);
  r->uid = c->uid;
  r->gid = c->gid;
  r->pid = uint32_t(c->pid);
}

Request* request(fuse_req_t req, Op op, fuse_ino_t ino) {
  Request* r = new Request();
  r->op = op;
  r->ino = ino;
  fill_ctx(req, r);
  return r;
}

void on_init(void* userdata, fuse_conn_info* conn) {
  Session* s = static_cast<Session*>(userdata);
  conn->max_write = s->options().max_write;
  conn->max_readahead = conn->max_readahead > (1u << 20) ? (1u << 20) : conn->max_readahead;
  // The kernel answers locks itself (no getlk/setlk/flock here); no writeback cache: every
  // write comes to us, and sizes and times are ours to tell.
  conn->want &= ~unsigned(FUSE_CAP_WRITEBACK_CACHE);
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  s->init_done();
}

// A mount point as /proc/self/mountinfo writes it (space, tab, newline and backslash in octal).
std::string mountinfo_escape(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\\') {
      char esc[5];
      snprintf(esc, sizeof esc, "\\%03o", static_cast<unsigned char>(c));
      out += esc;
    } else {
      out += c;
    }
  }
  return out;
}

// The device (major:minor) of the mount at `mountpoint`, from /proc/self/mountinfo: the last
// line for it (a mount over another is listed after it).
std::string mount_device(const std::string& mountpoint) {
  FILE* f = fopen("/proc/self/mountinfo", "re");
  if (!f) return "";
  std::string want = mountinfo_escape(mountpoint), found;
  char* line = nullptr;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    // id parent major:minor root mountpoint ...
    char dev[64], point[4096];
    if (sscanf(line, "%*s %*s %63s %*s %4095s", dev, point) == 2 && want == point) found = dev;
  }
  free(line);
  fclose(f);
  return found;
}

void on_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Request* r = request(req, Op::Lookup, parent);
  r->name = name;
  session_of(req)->push(req, r);
}

void on_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  session_of(req)->push_forget(ino, nlookup);
  fuse_reply_none(req);
}

void on_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; i++) session_of(req)->push_forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void on_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Request* r = request(req, Op::Getattr, ino);
  if (fi) r->fh = fi->fh;
  session_of(req)->push(req, r);
}

void on_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  Request* r = request(req, Op::Setattr, ino);
  r->attr = *attr;
  r->flags = uint32_t(to_set);
  r->mode = attr->st_mode;
  if (fi) r->fh = fi->fh;
  session_of(req)->push(req, r);
}

void on_readlink(fuse_req_t req, fuse_ino_t ino) { session_of(req)->push(req, request(req, Op::Readlink, ino)); }

void on_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
  Request* r = request(req, Op::Mknod, parent);
  r->name = name;
  r->mode = mode;
  session_of(req)->push(req, r);
}

void on_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Request* r = request(req, Op::Mkdir, parent);
  r->name = name;
  r->mode = mode;
  session_of(req)->push(req, r);
}

void on_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Request* r = request(req, Op::Unlink, parent);
  r->name = name;
  session_of(req)->push(req, r);
}

void on_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Request* r = request(req, Op::Rmdir, parent);
  r->name = name;
  session_of(req)->push(req, r);
}

void on_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  Request* r = request(req, Op::Symlink, parent);
  r->name = name;
  r->name2 = link;
  session_of(req)->push(req, r);
}

void on_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname, unsigned flags) {
  Request* r = request(req, Op::Rename, parent);
  r->name = name;
  r->ino2 = newparent;
  r->name2 = newname;
  r->flags = flags;
  session_of(req)->push(req, r);
}

void on_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  Request* r = request(req, Op::Link, ino);
  r->ino2 = newparent;
  r->name = newname;
  session_of(req)->push(req, r);
}

void on_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Request* r = request(req, Op::Open, ino);
  r->flags = uint32_t(fi->flags);
  session_of(req)->push(req, r);
}

void on_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  Request* r = request(req, Op::Read, ino);
  r->size = size;
  r->off = uint64_t(off);
  r->fh = fi->fh;
  session_of(req)->push(req, r);
}

void on_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  Request* r = request(req, Op::Write, ino);
  r->data.assign(reinterpret_cast<const uint8_t*>(buf), reinterpret_cast<const uint8_t*>(buf) + size);
  r->off = uint64_t(off);
  r->fh = fi->fh;
  r->flags = uint32_t(fi->flags);
  session_of(req)->push(req, r);
}

void on_flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Request* r = request(req, Op::Flush, ino);
  r->fh = fi->fh;
  session_of(req)->push(req, r);
}

void on_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Request* r = request(req, Op::Release, ino);
  r->fh = fi->fh;
  r->flags = uint32_t(fi->flags);
  session_of(req)->push(req, r);
}

void on_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  Request* r = request(req, Op::Fsync, ino);
  r->fh = fi->fh;
  r->flags = uint32_t(datasync);
  session_of(req)->push(req, r);
}

void on_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Request* r = request(req, Op::Opendir, ino);
  r->flags = uint32_t(fi->flags);
  session_of(req)->push(req, r);
}

void on_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  Request* r = request(req, Op::Readdir, ino);
  r->size = size;
  r->off = uint64_t(off);
  r->fh = fi->fh;
  session_of(req)->push(req, r);
}

void on_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Request* r = request(req, Op::Releasedir, ino);
  r->fh = fi->fh;
  session_of(req)->push(req, r);
}

void on_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  Request* r = request(req, Op::Fsyncdir, ino);
  r->fh = fi->fh;
  r->flags = uint32_t(datasync);
  session_of(req)->push(req, r);
}

void on_statfs(fuse_req_t req, fuse_ino_t ino) { session_of(req)->push(req, request(req, Op::Statfs, ino)); }

void on_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  Request* r = request(req, Op::Access, ino);
  r->flags = uint32_t(mask);
  session_of(req)->push(req, r);
}

void on_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  Request* r = request(req, Op::Create, parent);
  r->name = name;
  r->mode = mode;
  r->flags = uint32_t(fi->flags);
  session_of(req)->push(req, r);
}

void on_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info* fi) {
  Request* r = request(req, Op::Fallocate, ino);
  r->flags = uint32_t(mode);
  r->off = uint64_t(offset);
  r->size = uint64_t(length);
  r->fh = fi->fh;
  session_of(req)->push(req, r);
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops o{};
  o.init = on_init;
  o.lookup = on_lookup;
  o.forget = on_forget;
  o.forget_multi = on_forget_multi;
  o.getattr = on_getattr;
  o.setattr = on_setattr;
  o.readlink = on_readlink;
  o.mknod = on_mknod;
  o.mkdir = on_mkdir;
  o.unlink = on_unlink;
  o.rmdir = on_rmdir;
  o.symlink = on_symlink;
  o.rename = on_rename;
  o.link = on_link;
  o.open = on_open;
  o.read = on_read;
  o.write = on_write;
  o.flush = on_flush;
  o.release = on_release;
  o.fsync = on_fsync;
  o.opendir = on_opendir;
  o.readdir = on_readdir;
  o.releasedir = on_releasedir;
  o.fsyncdir = on_fsyncdir;
  o.statfs = on_statfs;
  o.access = on_access;
  o.create = on_create;
  o.fallocate = on_fallocate;
  return o;
}();

fuse_entry_param entry_of(const Attr& a, const Options& o) {
  fuse_entry_param e{};
  e.ino = a.ino;
  e.generation = 1;
  e.attr_timeout = o.attr_timeout;
  e.entry_timeout = o.entry_timeout;
  e.attr.st_ino = a.ino;
  e.attr.st_mode = a.mode;
  e.attr.st_nlink = a.nlink;
  e.attr.st_uid = a.uid;
  e.attr.st_gid = a.gid;
  e.attr.st_size = off_t(a.size);
  e.attr.st_blksize = 4096;
  e.attr.st_blocks = blkcnt_t((a.size + 511) / 512);
  e.attr.st_atim = a.atime;
  e.attr.st_mtim = a.mtime;
  e.attr.st_ctim = a.ctime;
  return e;
}

}  // namespace

const char* op_name(Op op) {
  static const char* const names[] = {
    "lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir", "symlink", "rename", "link",
    "open", "read", "write", "flush", "release", "fsync", "opendir", "readdir", "releasedir", "fsyncdir", "statfs", "create",
    "access", "fallocate",
  };
  static_assert(sizeof(names) / sizeof(names[0]) == size_t(Op::Count_), "a name for every op");
  return names[size_t(op)];
}

Session::Session(std::function<void()> wake, std::function<void(int)> ended) : wake_(std::move(wake)), ended_(std::move(ended)) {}

Session::~Session() { stop(); }

int Session::start(const Options& o, std::string* error) {
  options_ = o;
  std::string opts = "fsname=" + o.fsname + ",subtype=smfs,default_permissions";
  if (o.allow_other) opts += ",allow_other";
  if (o.auto_unmount) opts += ",auto_unmount";
  std::string argv0 = "smfs";
  std::string dash_o = "-o";
  char* argv[] = {argv0.data(), dash_o.data(), opts.data(), nullptr};
  fuse_args args = FUSE_ARGS_INIT(3, argv);
  int err;
  se_ = fuse_session_new(&args, &kOps, sizeof(kOps), this);
  if (!se_) {
    *error = "fuse_session_new failed (bad options?)";
    return -EINVAL;
  }
  if (fuse_session_mount(se_, o.mountpoint.c_str()) != 0) {
    *error = "cannot mount on " + o.mountpoint + " (is it a directory? is /dev/fuse there? is fusermount3 installed?)";
    err = -EIO;
    goto out_session;
  }
  mounted_ = true;
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) {
    err = -errno;
    *error = std::string("eventfd: ") + strerror(errno);
    goto out_unmount;
  }
  running_ = true;
  thread_ = std::thread([this] { run(); });
  return 0;

out_unmount:
  fuse_session_unmount(se_);
  mounted_ = false;
out_session:
  fuse_session_destroy(se_);
  se_ = nullptr;
  return err;
}

void Session::run() {
  int fd = fuse_session_fd(se_);
  fuse_buf buf{};
  int reason = 0;
  for (;;) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int n = poll(p, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      reason = errno;
      break;
    }
    if (p[1].revents) break;  // asked to stop
    int res = fuse_session_receive_buf(se_, &buf);
    if (res == -EINTR || res == -EAGAIN) continue;
    if (res <= 0) {
      reason = res == 0 ? ENODEV : -res;
      break;
    }
    fuse_session_process_buf(se_, &buf);
    // The kernel sets the mount's readahead from the INIT answer (never above its 128 KiB
    // default); after that, the bdi's read_ahead_kb raises it.
    if (init_done_ && !readahead_tried_) {
      readahead_tried_ = true;
      set_readahead();
    }
  }
  free(buf.mem);
  running_ = false;
  if (reason != 0 && ended_) ended_(reason);
}

// Root only (sysfs); anyone else keeps the kernel's readahead, which is only slower.
void Session::set_readahead() {
  std::string dev = mount_device(options_.mountpoint);
  if (dev.empty()) return;
  std::string file = "/sys/class/bdi/" + dev + "/read_ahead_kb";
  if (options_.readahead_kb > 0) {
    FILE* f = fopen(file.c_str(), "we");
    if (f) {
      fprintf(f, "%u\n", options_.readahead_kb);
      fclose(f);
    }
  }
  FILE* f = fopen(file.c_str(), "re");
  if (!f) return;
  int kb = -1;
  if (fscanf(f, "%d", &kb) == 1) readahead_kb_ = kb;
  fclose(f);
}

void Session::stop() {
  if (!se_) return;
  if (thread_.joinable()) {
    uint64_t one = 1;
    if (write(stop_fd_, &one, sizeof one) < 0) { /* the thread may have ended by itself */ }
    thread_.join();
  }
  std::vector<fuse_req_t> open;
  std::vector<Request*> queued;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    for (auto& [id, req] : open_) open.push_back(req);
    open_.clear();
    queued.swap(queue_);
  }
  for (fuse_req_t req : open) fuse_reply_err(req, EIO);
  for (Request* r : queued) delete r;
  if (mounted_) fuse_session_unmount(se_);
  mounted_ = false;
  fuse_session_destroy(se_);
  se_ = nullptr;
  if (stop_fd_ >= 0) close(stop_fd_);
  stop_fd_ = -1;
}

void Session::push(fuse_req_t req, Request* r) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) {
      delete r;
      fuse_reply_err(req, EIO);
      return;
    }
    r->id = next_id_++;
    open_[r->id] = req;
    was_empty = queue_.empty();
    queue_.push_back(r);
  }
  if (was_empty && wake_) wake_();
}

void Session::push_forget(uint64_t ino, uint64_t nlookup) {
  Request* r = new Request();
  r->op = Op::Forget;
  r->ino = ino;
  r->size = nlookup;
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) {
      delete r;
      return;
    }
    was_empty = queue_.empty();
    queue_.push_back(r);
  }
  if (was_empty && wake_) wake_();
}

std::vector<Request*> Session::take() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Request*> out;
  out.swap(queue_);
  return out;
}

uint64_t Session::in_flight() {
  std::lock_guard<std::mutex> lock(mu_);
  return open_.size();
}

fuse_req_t Session::claim(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = open_.find(id);
  if (it == open_.end()) return nullptr;
  fuse_req_t req = it->second;
  open_.erase(it);
  return req;
}

bool Session::reply_err(uint64_t id, int err) {
  fuse_req_t req = claim(id);
  if (!req) return false;
  fuse_reply_err(req, err);
  return true;
}

bool Session::reply_entry(uint64_t id, const Attr& a) {
  fuse_req_t req = claim(id);
  if (!req) return false;
  fuse_entry_param e = entry_of(a, options_);
  fuse_reply_entry(req, &e);
  return true;
}

bool Session::reply_attr(uint64_t id, const Attr& a) {
  fuse_req_t req = claim(id);
  if (!req) return false;
  fuse_entry_param e = entry_of(a, options_);
  fuse_reply_attr(req, &e.attr, options_.attr_timeout);
  return true;
}

bool Session::reply_open(uint64_t id, uint64_t fh, bool direct_io, bool keep_cache) {
  fuse_req_t req = claim(id);
  if (!req) return false;
  fuse_file_info fi{};
  fi.fh = fh;
  fi.direct_io = direct_io;
  fi.keep_cache = keep_cache;
  fuse_reply_open(req, &fi);
  return true;
}

bool Session::reply_create(uint64_t id, const Attr& a, uint64_t fh, bool direct_io, bool keep_cache) {
  fuse_req_t req = claim(id);
  if (!req) return false;
  fuse_entry_param e = entry_of(a, options_);
  fuse_file_info fi{};
  fi.fh = fh;
  fi.direct_io = direct_io;
  fi.keep_cache = keep_cache;
  fuse_reply_create(req, &e, &fi);
  return true;
}

bool Session::reply_write(uint64_t id, size_t count) {
  fuse_req_t req = claim(id);
  if (!req) return false;
  fuse_reply_write(req, count);
  return true;
}

bool Session::reply_buf(uint64_t id, const void* data, size_t len) {
  fuse_req_t req = claim(id);
  if (!req) return false;
  fuse_reply_buf(req, static_cast<const char*>(data), len);
  return true;
}

bool Session::reply_readlink(uint64_t id, const std::string& target) {
  fuse_req_t req = claim(id);
  if (!req) return false;
  fuse_reply_readlink(req, target.c_str());
  return true;
}

bool Session::reply_statfs(uint64_t id, const StatFs& s) {
  fuse_req_t req = claim(id);
  if (!req) return false;
  struct statvfs v{};
  v.f_bsize = s.bsize;
  v.f_frsize = s.bsize;
  v.f_blocks = s.blocks;
  v.f_bfree = s.bfree;
  v.f_bavail = s.bavail;
  v.f_files = s.files;
  v.f_ffree = s.ffree;
  v.f_favail = s.ffree;
  v.f_namemax = s.namemax;
  fuse_reply_statfs(req, &v);
  return true;
}

// As many entries as fit in `size` bytes; each carries the offset of the one after it.
bool Session::reply_dir(uint64_t id, size_t size, const std::vector<DirEntry>& entries) {
  fuse_req_t req = claim(id);
  if (!req) return false;
  std::vector<char> buf(size);
  size_t used = 0;
  for (const DirEntry& e : entries) {
    struct stat st{};
    st.st_ino = e.ino;
    st.st_mode = e.mode;
    size_t need = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st, off_t(e.next_off));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
  return true;
}

}  // namespace maelstrom::fuse
