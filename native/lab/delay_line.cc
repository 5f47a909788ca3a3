#include "lab/delay_line.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/clock.h"

namespace maelstrom::lab {
namespace {

constexpr size_t kMaxFrame = 65536;
// Timer wake-ups on a VM come 50-150 us late: sleep until this long before a deadline and poll
// without sleeping for the rest, so frames leave within a few microseconds of it.
constexpr uint64_t kSpinNs = 300'000;
// A SCHED_FIFO thread is woken at once (no other task runs first) and its timers have no slack,
// so under load it sleeps closer to the deadline; it spins without yielding (a yield would go to
// no one) and keeps the CPU from everything else meanwhile. With frames queued back to back the
// spin is short: its cost is paid per deadline. With at most kSparseFrames frames queued in
// each direction (a ping, a trickle) it spins as long as the ordinary thread, so that the VM's
// timer (50-150 us late) does not make those few frames late, at a cost of at most
// kSpinNs per frame.
constexpr uint64_t kSpinRealtimeNs = 30'000;
constexpr size_t kSparseFrames = 2;

uint64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

// A raw socket that sees every frame arriving on one interface and sends frames out of it.
int open_port(int ifindex) {
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (fd < 0) return -errno;
  int one = 1, buf = 8 << 20;
  // Our own transmissions would otherwise come back to us as outgoing frames. The kernel's
  // arrival time of each frame (SO_TIMESTAMPNS) starts its delay, so a thread descheduled
  // while frames wait in the socket sends them late (and counts it), not later unseen. The
  // send buffer is large so that what falls due at once after such a pause is not refused.
  if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = ifindex;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

}  // namespace

int late_bucket(uint64_t late_ns) {
  if (late_ns < 1024) return 0;
  int octave = 63 - __builtin_clzll(late_ns);           // 10 and up
  int sub = int((late_ns >> (octave - 2)) & 3);          // the two bits after the leading one
  return std::min(kLateBuckets - 1, 1 + (octave - 10) * 4 + sub);
}

uint64_t late_bucket_floor_ns(int bucket) {
  if (bucket <= 0) return 0;
  int octave = (bucket - 1) / 4 + 10;
  int sub = (bucket - 1) % 4;
  return (uint64_t(4 + sub) << (octave - 2));
}

int DelayLine::start(const DelayLineConfig& config) {
  config_ = config;
  delay_ns_.store(config.delay_ns);
  rate_bps_.store(config.rate_bps);
  queue_bytes_.store(config.queue_bytes);
  fd_a_ = open_port(config.ifindex_a);
  if (fd_a_ < 0) return fd_a_;
  fd_b_ = open_port(config.ifindex_b);
  if (fd_b_ < 0) {
    int err = fd_b_;
    close(fd_a_);
    fd_a_ = -1;
    return err;
  }
  ab_.in = fd_a_;
  ab_.out = fd_b_;
  ba_.in = fd_b_;
  ba_.out = fd_a_;
  running_.store(true);
  thread_ = std::thread([this] { run(); });
  return 0;
}

void DelayLine::stop() {
  if (running_.exchange(false)) thread_.join();
  if (fd_a_ >= 0) close(fd_a_);
  if (fd_b_ >= 0) close(fd_b_);
  fd_a_ = fd_b_ = -1;
}

void DelayLine::stats(DirectionStats* a_to_b, DirectionStats* b_to_a) {
  while (stats_lock_.test_and_set(std::memory_order_acquire)) {
  }
  // PACKET_STATISTICS resets on read: accumulate.
  for (Direction* d : {&ab_, &ba_}) {
    tpacket_stats st{};
    socklen_t len = sizeof st;
    if (d->in >= 0 && getsockopt(d->in, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) d->stats.socket_drops += st.tp_drops;
  }
  *a_to_b = ab_.stats;
  *b_to_a = ba_.stats;
  stats_lock_.clear(std::memory_order_release);
}

void DelayLine::receive(Direction& d, uint64_t now) {
  const uint64_t delay = delay_ns_.load(std::memory_order_relaxed);
  const uint64_t rate = rate_bps_.load(std::memory_order_relaxed);
  const uint64_t depth = queue_bytes_.load(std::memory_order_relaxed);
  // Kernel timestamps are CLOCK_REALTIME; the deadlines are CLOCK_MONOTONIC.
  const int64_t mono_minus_real = int64_t(now) - int64_t(realtime_ns());
  // A bounded batch, so a busy direction cannot keep due frames from leaving.
  for (int i = 0; i < 32; i++) {
    std::vector<uint8_t> buf;
    if (!spare_.empty()) {
      buf = std::move(spare_.back());
      spare_.pop_back();
    }
    buf.resize(kMaxFrame);
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(d.in, &msg, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      spare_.push_back(std::move(buf));
      return;
    }
    // The kernel's arrival stamp counts where the link has a rate (its queue is computed from
    // it). Without one, frames leave the delay after the thread read them: taking the stamps
    // there too made every frame that waited out a pause of the thread due at once, and the
    // bursts overflowed the veths' backlog downstream (the gateway tests lost data and repairs
    // that the emulator never dropped).
    uint64_t arrived = now;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); rate > 0 && c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts;
        memcpy(&ts, CMSG_DATA(c), sizeof ts);
        int64_t t = int64_t(ts.tv_sec) * 1'000'000'000ll + ts.tv_nsec + mono_minus_real;
        if (t > 0 && uint64_t(t) < now) arrived = uint64_t(t);
      }
    }
    if (size_t(n) > kMaxFrame || d.queued_bytes + size_t(n) > config_.max_queue_bytes) {
      d.stats.queue_drops++;
      spare_.push_back(std::move(buf));
      continue;
    }
    uint64_t deadline = arrived + delay;
    if (rate > 0) {
      // The link serialises frames one after another: this one starts when it is free.
      uint64_t start = std::max(arrived, d.busy_until);
      uint64_t backlog = uint64_t((unsigned __int128)(start - arrived) * rate / 8'000'000'000ull);
      if (backlog + size_t(n) > depth) {
        d.stats.tail_drops++;
        spare_.push_back(std::move(buf));
        continue;
      }
      d.stats.queue_max_bytes = std::max<uint64_t>(d.stats.queue_max_bytes, backlog + size_t(n));
      d.busy_until = start + uint64_t((unsigned __int128)size_t(n) * 8'000'000'000ull / rate);
      deadline = d.busy_until + delay;
    }
    buf.resize(size_t(n));
    d.queued_bytes += size_t(n);
    d.queue.push_back(Frame{deadline, std::move(buf)});
  }
}

void DelayLine::send_due(Direction& d, uint64_t now) {
  while (!d.queue.empty() && d.queue.front().deadline <= now) {
    Frame& f = d.queue.front();
    uint64_t late = now - f.deadline;
    ssize_t n = send(d.out, f.bytes.data(), f.bytes.size(), 0);
    while (stats_lock_.test_and_set(std::memory_order_acquire)) {
    }
    if (n < 0) {
      d.stats.send_errors++;
    } else {
      d.stats.packets++;
      d.stats.bytes += f.bytes.size();
      d.stats.late_sum_ns += late;
      d.stats.late_max_ns = std::max(d.stats.late_max_ns, late);
      if (late > 100'000) d.stats.late_over_100us++;
      d.stats.late_hist[late_bucket(late)]++;
    }
    stats_lock_.clear(std::memory_order_release);
    d.queued_bytes -= f.bytes.size();
    spare_.push_back(std::move(f.bytes));
    d.queue.pop_front();
    now = monotonic_ns();
  }
}

void DelayLine::run() {
  prctl(PR_SET_TIMERSLACK, 1UL);  // wake at the deadline, not up to 50 us after it
  uint64_t spin = kSpinNs;
  if (config_.realtime_priority > 0) {
    sched_param sp{};
    sp.sched_priority = config_.realtime_priority;
    int err = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    realtime_error_.store(err);
    if (err == 0) spin = kSpinRealtimeNs;
  }
  {
    int policy = 0;
    sched_param sp{};
    pthread_getschedparam(pthread_self(), &policy, &sp);
    policy_.store(policy);
  }
  const bool realtime = spin == kSpinRealtimeNs;
  pollfd fds[2] = {{fd_a_, POLLIN, 0}, {fd_b_, POLLIN, 0}};
  while (running_.load(std::memory_order_relaxed)) {
    uint64_t now = monotonic_ns();
    send_due(ab_, now);
    send_due(ba_, now);
    uint64_t next = now + 50'000'000;  // wake at least every 50 ms to notice stop()
    if (!ab_.queue.empty()) next = std::min(next, ab_.queue.front().deadline);
    if (!ba_.queue.empty()) next = std::min(next, ba_.queue.front().deadline);
    now = monotonic_ns();
    timespec timeout{0, 0};
    uint64_t margin = spin;
    if (realtime && ab_.queue.size() <= kSparseFrames && ba_.queue.size() <= kSparseFrames) margin = kSpinNs;
    if (next > now + margin) {
      uint64_t sleep = next - now - margin;
      timeout = timespec{time_t(sleep / 1'000'000'000), long(sleep % 1'000'000'000)};
    }
    int ready = ppoll(fds, 2, &timeout, nullptr);
    if (ready > 0) {
      now = monotonic_ns();
      if (fds[0].revents & POLLIN) receive(ab_, now);
      if (fds[1].revents & POLLIN) receive(ba_, now);
    } else if (timeout.tv_sec == 0 && timeout.tv_nsec == 0 && !realtime) {
      sched_yield();  // waiting out the last stretch before a deadline: let others run meanwhile
    }
  }
}

}  // namespace maelstrom::lab
