#include "bindings/fuse.h"

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "fuse/session.h"

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <linux/fs.h>

namespace maelstrom::bindings {
namespace {

namespace mf = maelstrom::fuse;

class FuseMountWrap;
// Every mount still up when the environment goes away is unmounted with it.
std::set<FuseMountWrap*> live_mounts;

// What the FUSE thread hands the main thread: nullptr for "requests are queued", else the
// errno that ended the connection.
void call_js(Napi::Env env, Napi::Function, FuseMountWrap* self, int* data);
using Tsfn = Napi::TypedThreadSafeFunction<FuseMountWrap, int, call_js>;

double number(const Napi::Array& a, uint32_t i) { return a.Get(i).As<Napi::Number>().DoubleValue(); }

// [ino, mode, nlink, uid, gid, size, atimeS, atimeNs, mtimeS, mtimeNs, ctimeS, ctimeNs]
mf::Attr attr_of(const Napi::Value& v) {
  Napi::Array a = v.As<Napi::Array>();
  mf::Attr r;
  r.ino = uint64_t(number(a, 0));
  r.mode = uint32_t(number(a, 1));
  r.nlink = uint32_t(number(a, 2));
  r.uid = uint32_t(number(a, 3));
  r.gid = uint32_t(number(a, 4));
  r.size = uint64_t(number(a, 5));
  r.atime = {time_t(number(a, 6)), long(number(a, 7))};
  r.mtime = {time_t(number(a, 8)), long(number(a, 9))};
  r.ctime = {time_t(number(a, 10)), long(number(a, 11))};
  return r;
}

Napi::Array timespec_of(Napi::Env env, const timespec& t) {
  Napi::Array a = Napi::Array::New(env, 2);
  a[0u] = double(t.tv_sec);
  a[1u] = double(t.tv_nsec);
  return a;
}

Napi::Buffer<uint8_t> bytes_of(Napi::Env env, const std::string& s) {
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

Napi::Object request_object(Napi::Env env, mf::Request& r) {
  Napi::Object o = Napi::Object::New(env);
  o["id"] = double(r.id);
  o["op"] = mf::op_name(r.op);
  o["ino"] = double(r.ino);
  switch (r.op) {
    case mf::Op::Lookup: case mf::Op::Unlink: case mf::Op::Rmdir:
      o["name"] = bytes_of(env, r.name);
      break;
    case mf::Op::Mkdir: case mf::Op::Mknod:
      o["name"] = bytes_of(env, r.name);
      o["mode"] = double(r.mode);
      break;
    case mf::Op::Create:
      o["name"] = bytes_of(env, r.name);
      o["mode"] = double(r.mode);
      o["flags"] = double(r.flags);
      break;
    case mf::Op::Symlink:
      o["name"] = bytes_of(env, r.name);
      o["target"] = bytes_of(env, r.name2);
      break;
    case mf::Op::Rename:
      o["name"] = bytes_of(env, r.name);
      o["newParent"] = double(r.ino2);
      o["newName"] = bytes_of(env, r.name2);
      o["flags"] = double(r.flags);
      break;
    case mf::Op::Link:
      o["newParent"] = double(r.ino2);
      o["newName"] = bytes_of(env, r.name);
      break;
    case mf::Op::Forget:
      o["nlookup"] = double(r.size);
      break;
    case mf::Op::Setattr: {
      o["toSet"] = double(r.flags);
      o["setMode"] = double(r.attr.st_mode);
      o["setUid"] = double(r.attr.st_uid);
      o["setGid"] = double(r.attr.st_gid);
      o["setSize"] = double(r.attr.st_size);
      o["atime"] = timespec_of(env, r.attr.st_atim);
      o["mtime"] = timespec_of(env, r.attr.st_mtim);
      o["fh"] = double(r.fh);
      break;
    }
    case mf::Op::Write: {
      auto* data = new std::vector<uint8_t>(std::move(r.data));
      o["data"] = Napi::Buffer<uint8_t>::New(env, data->data(), data->size(), [](Napi::Env, uint8_t*, std::vector<uint8_t>* d) { delete d; }, data);
      o["off"] = double(r.off);
      o["fh"] = double(r.fh);
      break;
    }
    case mf::Op::Read: case mf::Op::Readdir:
      o["off"] = double(r.off);
      o["size"] = double(r.size);
      o["fh"] = double(r.fh);
      break;
    case mf::Op::Fallocate:
      o["off"] = double(r.off);
      o["size"] = double(r.size);
      o["flags"] = double(r.flags);
      o["fh"] = double(r.fh);
      break;
    case mf::Op::Open: case mf::Op::Opendir: case mf::Op::Access:
      o["flags"] = double(r.flags);
      break;
    case mf::Op::Fsync: case mf::Op::Fsyncdir: case mf::Op::Release:
      o["flags"] = double(r.flags);
      o["fh"] = double(r.fh);
      break;
    case mf::Op::Flush: case mf::Op::Releasedir: case mf::Op::Getattr:
      o["fh"] = double(r.fh);
      break;
    default:
      break;
  }
  if (r.op != mf::Op::Forget) {
    o["uid"] = double(r.uid);
    o["gid"] = double(r.gid);
    o["pid"] = double(r.pid);
  }
  return o;
}

class FuseMountWrap : public Napi::ObjectWrap<FuseMountWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "FuseMount",
                       {InstanceMethod<&FuseMountWrap::Reply>("reply"),
                        InstanceMethod<&FuseMountWrap::ReplyEntry>("replyEntry"),
                        InstanceMethod<&FuseMountWrap::ReplyAttr>("replyAttr"),
                        InstanceMethod<&FuseMountWrap::ReplyOpen>("replyOpen"),
                        InstanceMethod<&FuseMountWrap::ReplyCreate>("replyCreate"),
                        InstanceMethod<&FuseMountWrap::ReplyWrite>("replyWrite"),
                        InstanceMethod<&FuseMountWrap::ReplyData>("replyData"),
                        InstanceMethod<&FuseMountWrap::ReplyReadlink>("replyReadlink"),
                        InstanceMethod<&FuseMountWrap::ReplyStatfs>("replyStatfs"),
                        InstanceMethod<&FuseMountWrap::ReplyDir>("replyDir"),
                        InstanceMethod<&FuseMountWrap::InFlight>("inFlight"),
                        InstanceMethod<&FuseMountWrap::ReadaheadKb>("readaheadKb"),
                        InstanceMethod<&FuseMountWrap::Stop>("stop")});
  }

  // new FuseMount({ mountpoint, fsname?, allowOther?, autoUnmount?, entryTimeout?, attrTimeout?, maxWrite?, readaheadKb? },
  //               onRequests(requests[]), onEnded(errno))
  explicit FuseMountWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FuseMountWrap>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    mf::Options opts;
    opts.mountpoint = o.Get("mountpoint").As<Napi::String>().Utf8Value();
    if (o.Get("fsname").IsString()) opts.fsname = o.Get("fsname").As<Napi::String>().Utf8Value();
    if (o.Get("allowOther").IsBoolean()) opts.allow_other = o.Get("allowOther").As<Napi::Boolean>().Value();
    if (o.Get("autoUnmount").IsBoolean()) opts.auto_unmount = o.Get("autoUnmount").As<Napi::Boolean>().Value();
    if (o.Get("entryTimeout").IsNumber()) opts.entry_timeout = o.Get("entryTimeout").As<Napi::Number>().DoubleValue();
    if (o.Get("attrTimeout").IsNumber()) opts.attr_timeout = o.Get("attrTimeout").As<Napi::Number>().DoubleValue();
    if (o.Get("maxWrite").IsNumber()) opts.max_write = o.Get("maxWrite").As<Napi::Number>().Uint32Value();
    if (o.Get("readaheadKb").IsNumber()) opts.readahead_kb = o.Get("readaheadKb").As<Napi::Number>().Uint32Value();
    on_requests_ = Napi::Persistent(info[1].As<Napi::Function>());
    on_ended_ = Napi::Persistent(info[2].As<Napi::Function>());
    tsfn_ = Tsfn::New(env, "smfs mount", 0, 1, this);
    session_ = std::make_unique<mf::Session>(
        [this] { tsfn_.NonBlockingCall(static_cast<int*>(nullptr)); },
        [this](int reason) { tsfn_.NonBlockingCall(new int(reason)); });
    std::string error;
    int err = session_->start(opts, &error);
    if (err < 0) {
      session_.reset();
      tsfn_.Release();
      throw Napi::Error::New(env, error);
    }
    live_mounts.insert(this);
  }

  ~FuseMountWrap() override { Close(); }

  void Close() {
    if (!session_) return;
    session_->stop();
    session_.reset();
    tsfn_.Release();
    live_mounts.erase(this);
  }

  // On the main thread: queued requests (data == nullptr) or the connection's end.
  void Deliver(Napi::Env env, int* data) {
    if (data != nullptr) {
      int reason = *data;
      delete data;
      on_ended_.Call({Napi::Number::New(env, reason)});
      return;
    }
    if (!session_) return;
    std::vector<mf::Request*> batch = session_->take();
    if (batch.empty()) return;
    Napi::Array a = Napi::Array::New(env, batch.size());
    for (size_t i = 0; i < batch.size(); i++) {
      a[uint32_t(i)] = request_object(env, *batch[i]);
      delete batch[i];
    }
    on_requests_.Call({a});
  }

 private:
  uint64_t id_of(const Napi::CallbackInfo& info) { return uint64_t(info[0].As<Napi::Number>().DoubleValue()); }
  Napi::Value done(const Napi::CallbackInfo& info, bool ok) { return Napi::Boolean::New(info.Env(), ok); }
  bool live() const { return session_ != nullptr; }

  Napi::Value Reply(const Napi::CallbackInfo& info) {
    return done(info, live() && session_->reply_err(id_of(info), info[1].As<Napi::Number>().Int32Value()));
  }
  Napi::Value ReplyEntry(const Napi::CallbackInfo& info) {
    return done(info, live() && session_->reply_entry(id_of(info), attr_of(info[1])));
  }
  Napi::Value ReplyAttr(const Napi::CallbackInfo& info) {
    return done(info, live() && session_->reply_attr(id_of(info), attr_of(info[1])));
  }
  Napi::Value ReplyOpen(const Napi::CallbackInfo& info) {
    return done(info, live() && session_->reply_open(id_of(info), uint64_t(info[1].As<Napi::Number>().DoubleValue()),
                                                     info[2].ToBoolean(), info[3].ToBoolean()));
  }
  Napi::Value ReplyCreate(const Napi::CallbackInfo& info) {
    return done(info, live() && session_->reply_create(id_of(info), attr_of(info[1]), uint64_t(info[2].As<Napi::Number>().DoubleValue()),
                                                       info[3].ToBoolean(), info[4].ToBoolean()));
  }
  Napi::Value ReplyWrite(const Napi::CallbackInfo& info) {
    return done(info, live() && session_->reply_write(id_of(info), size_t(info[1].As<Napi::Number>().DoubleValue())));
  }
  Napi::Value ReplyData(const Napi::CallbackInfo& info) {
    Napi::Buffer<uint8_t> b = info[1].As<Napi::Buffer<uint8_t>>();
    return done(info, live() && session_->reply_buf(id_of(info), b.Data(), b.Length()));
  }
  Napi::Value ReplyReadlink(const Napi::CallbackInfo& info) {
    return done(info, live() && session_->reply_readlink(id_of(info), info[1].As<Napi::String>().Utf8Value()));
  }
  // replyStatfs(id, [bsize, blocks, bfree, bavail, files, ffree, namemax])
  Napi::Value ReplyStatfs(const Napi::CallbackInfo& info) {
    Napi::Array a = info[1].As<Napi::Array>();
    mf::StatFs s{uint64_t(number(a, 0)), uint64_t(number(a, 1)), uint64_t(number(a, 2)), uint64_t(number(a, 3)),
                 uint64_t(number(a, 4)), uint64_t(number(a, 5)), uint64_t(number(a, 6))};
    return done(info, live() && session_->reply_statfs(id_of(info), s));
  }
  // replyDir(id, size, [[name, ino, mode, nextOffset], ...])
  Napi::Value ReplyDir(const Napi::CallbackInfo& info) {
    size_t size = size_t(info[1].As<Napi::Number>().DoubleValue());
    Napi::Array a = info[2].As<Napi::Array>();
    std::vector<mf::DirEntry> entries;
    entries.reserve(a.Length());
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Array e = a.Get(i).As<Napi::Array>();
      entries.push_back({e.Get(0u).As<Napi::String>().Utf8Value(), uint64_t(number(e, 1)), uint32_t(number(e, 2)), uint64_t(number(e, 3))});
    }
    return done(info, live() && session_->reply_dir(id_of(info), size, entries));
  }
  Napi::Value InFlight(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), live() ? double(session_->in_flight()) : 0);
  }
  // The kernel's readahead for the mount in KiB, once set; -1 before, or if it cannot be read.
  Napi::Value ReadaheadKb(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), live() ? session_->readahead_kb() : -1);
  }
  // stop(): every open request answered EIO, unmounted (lazily), the connection closed.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Close();
    return info.Env().Undefined();
  }

  std::unique_ptr<mf::Session> session_;
  Tsfn tsfn_;
  Napi::FunctionReference on_requests_;
  Napi::FunctionReference on_ended_;
};

void call_js(Napi::Env env, Napi::Function, FuseMountWrap* self, int* data) {
  if (env == nullptr || self == nullptr) {
    delete data;
    return;
  }
  self->Deliver(env, data);
}

}  // namespace

void init_fuse(Napi::Env env, Napi::Object exports) {
  exports["FuseMount"] = FuseMountWrap::Init(env);
  // The kernel's flags as libfuse names them, for TypeScript to read rather than copy.
  Napi::Object c = Napi::Object::New(env);
  c["setAttrMode"] = FUSE_SET_ATTR_MODE;
  c["setAttrUid"] = FUSE_SET_ATTR_UID;
  c["setAttrGid"] = FUSE_SET_ATTR_GID;
  c["setAttrSize"] = FUSE_SET_ATTR_SIZE;
  c["setAttrAtime"] = FUSE_SET_ATTR_ATIME;
  c["setAttrMtime"] = FUSE_SET_ATTR_MTIME;
  c["setAttrAtimeNow"] = FUSE_SET_ATTR_ATIME_NOW;
  c["setAttrMtimeNow"] = FUSE_SET_ATTR_MTIME_NOW;
  c["renameNoreplace"] = RENAME_NOREPLACE;
  c["renameExchange"] = RENAME_EXCHANGE;
  c["libfuse"] = fuse_pkgversion();
  exports["fuseConstants"] = c;
  env.AddCleanupHook([] {
    for (FuseMountWrap* m : std::set<FuseMountWrap*>(live_mounts)) m->Close();
  });
}

}  // namespace maelstrom::bindings
