// UDP sockets for pchat-endpoint (Linux): datagrams are read in batches with recvmmsg(2) into one
// buffer shared with JavaScript, and JavaScript is called once per batch. Node's own UDP socket
// makes a 64 KiB allocation, an ArrayBuffer, an address object (formatted with inet_ntop) and a
// JavaScript callback per datagram, and one more recvmsg(2) per wake-up to learn the queue is empty;
// at tens of thousands of datagrams a second that is a large share of a SIP server's CPU.
//
// Sends made while JavaScript handles a batch are copied aside and go out together with sendmmsg(2)
// when it returns: one system call, and the peer is woken once for several datagrams rather than
// once each. Other sends (timers, DNS answers) go out at once with sendto(2). A send the kernel
// refuses for want of buffer space (EAGAIN) is copied to a bounded queue and written when the
// socket becomes writable again, as libuv does.
//
// The shared buffer (an ArrayBuffer made by the caller) is laid out as
//   [BATCH slots of SLOT_SIZE bytes][BATCH × 4 int32 of metadata][BATCH × ADDR_TEXT bytes]
// metadata per datagram: length, source port, length of the source address text written for it
// (0: the same address as the datagram before it), and 1 when the datagram was truncated.
// The slots are reused by the next batch: JavaScript copies what it keeps before it returns.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define BATCH 32
#define SLOT_SIZE 65536
#define META_INTS 4
#define ADDR_TEXT 64
#define SHARED_SIZE (BATCH * SLOT_SIZE + BATCH * META_INTS * 4 + BATCH * ADDR_TEXT)
// Batches read per wake-up at most, so one busy socket cannot starve the rest of the event loop.
#define ROUNDS 8
// Bytes queued for sending while the kernel buffer is full; past this, datagrams are dropped.
#define QUEUE_LIMIT (8 * 1024 * 1024)
// Sends held back while a batch is handled: at most this many datagrams and bytes before a flush.
#define SEND_BATCH 64
#define SEND_SPACE (256 * 1024)

typedef struct queued {
  struct queued *next;
  struct sockaddr_storage to;
  socklen_t to_len;
  size_t len;
  char data[];
} queued_t;

typedef struct {
  napi_env env;
  int fd;
  int family;
  uv_poll_t poll;
  int poll_events;
  int closing;     // close() was called: no more reads, sends or callbacks
  int poll_closed; // libuv is done with the poll handle
  int hooked;      // the environment's cleanup hook is registered
  int finalized;   // JavaScript no longer holds the handle
  napi_ref callback;
  napi_ref shared_ref;
  napi_async_context async;
  char *shared;
  int32_t *meta;
  char *addr_text;
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage from[BATCH];
  struct sockaddr_storage last;
  socklen_t last_len;
  int in_batch; // JavaScript is handling a batch: sends are held back until it returns
  int pending;  // sends held back
  size_t pending_bytes;
  char *send_space;
  char *text_space; // a datagram given as text and sent at once is written out here first
  struct mmsghdr send_msgs[SEND_BATCH];
  struct iovec send_iov[SEND_BATCH];
  struct sockaddr_storage send_to[SEND_BATCH];
  queued_t *queue_head;
  queued_t *queue_tail;
  size_t queued_bytes;
  double sends_queued;
  double sends_dropped;
  double receive_errors;
} udp_t;

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) return NULL;                                                            \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char message[256];
  const char *name = uv_err_name(uv_translate_sys_error(err));
  snprintf(message, sizeof message, "%s %s: %s", what, name, strerror(err));
  napi_value code, msg, error;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_set_named_property(env, error, "code", code);
  napi_value errnum;
  napi_create_int32(env, -err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_throw(env, error);
  return NULL;
}

static void release(udp_t *u) {
  if (!u->poll_closed || !u->finalized) return;
  queued_t *q = u->queue_head;
  while (q != NULL) {
    queued_t *next = q->next;
    free(q);
    q = next;
  }
  free(u->send_space);
  free(u->text_space);
  free(u);
}

static void on_poll_closed(uv_handle_t *handle) {
  udp_t *u = handle->data;
  if (u->fd >= 0) close(u->fd);
  u->fd = -1;
  u->poll_closed = 1;
  release(u);
}

static void flush_pending(udp_t *u);

// Stop reading and writing, drop the references to JavaScript, and let libuv close the handle.
static void shut(udp_t *u) {
  if (u->closing) return;
  // What the batch being handled has sent so far still goes.
  flush_pending(u);
  u->closing = 1;
  if (u->callback != NULL) napi_delete_reference(u->env, u->callback);
  if (u->shared_ref != NULL) napi_delete_reference(u->env, u->shared_ref);
  if (u->async != NULL) napi_async_destroy(u->env, u->async);
  u->callback = NULL;
  u->shared_ref = NULL;
  u->async = NULL;
  uv_poll_stop(&u->poll);
  uv_close((uv_handle_t *)&u->poll, on_poll_closed);
}

static void cleanup_hook(void *arg) {
  udp_t *u = arg;
  u->hooked = 0;
  shut(u);
}

static void unhook(udp_t *u) {
  if (!u->hooked) return;
  u->hooked = 0;
  napi_remove_env_cleanup_hook(u->env, cleanup_hook, u);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  (void)env;
  udp_t *u = data;
  unhook(u);
  shut(u);
  u->finalized = 1;
  release(u);
}

static void on_poll(uv_poll_t *handle, int status, int events);

static void set_events(udp_t *u, int events) {
  if (u->closing || events == u->poll_events) return;
  u->poll_events = events;
  uv_poll_start(&u->poll, events, on_poll);
}

static int same_address(const struct sockaddr_storage *a, socklen_t a_len,
                        const struct sockaddr_storage *b, socklen_t b_len) {
  if (a_len != b_len || a->ss_family != b->ss_family) return 0;
  if (a->ss_family == AF_INET)
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0 &&
           x->sin6_scope_id == y->sin6_scope_id;
  }
  return 0;
}

// The text of an address as Node's dgram gives it (inet_ntop, and %scope for scoped IPv6).
static int address_text(const struct sockaddr_storage *sa, char *out, size_t size) {
  if (sa->ss_family == AF_INET) {
    if (inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, size) == NULL) return 0;
    return (int)strlen(out);
  }
  if (sa->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    if (inet_ntop(AF_INET6, &s6->sin6_addr, out, size) == NULL) return 0;
    size_t n = strlen(out);
    if (s6->sin6_scope_id != 0) {
      char name[UV_IF_NAMESIZE];
      size_t name_len = sizeof name;
      if (uv_if_indextoname(s6->sin6_scope_id, name, &name_len) == 0 && n + 1 + name_len < size) {
        out[n++] = '%';
        memcpy(out + n, name, name_len);
        n += name_len;
        out[n] = '\0';
      }
    }
    return (int)n;
  }
  return 0;
}

static int address_port(const struct sockaddr_storage *sa) {
  if (sa->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  if (sa->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return 0;
}

static void deliver(udp_t *u, int count) {
  napi_env env = u->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, global, argv[1], result;
  if (napi_get_reference_value(env, u->callback, &callback) == napi_ok && callback != NULL &&
      napi_get_global(env, &global) == napi_ok && napi_create_int32(env, count, &argv[0]) == napi_ok) {
    u->in_batch = 1;
    napi_status status = napi_make_callback(env, u->async, global, callback, 1, argv, &result);
    u->in_batch = 0;
    flush_pending(u);
    if (status == napi_pending_exception) {
      napi_value error;
      // Handed to process 'uncaughtException', as an exception thrown from any I/O callback is.
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void receive(udp_t *u) {
  for (int round = 0; round < ROUNDS && !u->closing; round++) {
    for (int i = 0; i < BATCH; i++) {
      u->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
      u->msgs[i].msg_hdr.msg_flags = 0;
      u->msgs[i].msg_len = 0;
    }
    int n = recvmmsg(u->fd, u->msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      // EAGAIN: the queue is empty. Anything else (an ICMP error reported on the socket) is
      // counted; the socket stays usable.
      if (errno != EAGAIN && errno != EWOULDBLOCK) u->receive_errors++;
      return;
    }
    if (n == 0) return;
    for (int i = 0; i < n; i++) {
      int32_t *m = u->meta + i * META_INTS;
      socklen_t len = u->msgs[i].msg_hdr.msg_namelen;
      m[0] = (int32_t)u->msgs[i].msg_len;
      m[1] = address_port(&u->from[i]);
      if (same_address(&u->from[i], len, &u->last, u->last_len)) {
        m[2] = 0;
      } else {
        m[2] = address_text(&u->from[i], u->addr_text + i * ADDR_TEXT, ADDR_TEXT);
        memcpy(&u->last, &u->from[i], sizeof u->last);
        u->last_len = len;
      }
      m[3] = (u->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    }
    deliver(u, n);
    if (n < BATCH) return;
  }
}

static void flush_queue(udp_t *u) {
  while (u->queue_head != NULL && !u->closing) {
    queued_t *q = u->queue_head;
    ssize_t r = sendto(u->fd, q->data, q->len, MSG_DONTWAIT, (struct sockaddr *)&q->to, q->to_len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) return;
    // Sent, or refused for good (such a datagram would never go): either way it leaves the queue.
    if (r < 0) u->sends_dropped++;
    u->queue_head = q->next;
    if (u->queue_head == NULL) u->queue_tail = NULL;
    u->queued_bytes -= q->len;
    free(q);
  }
  if (u->queue_head == NULL) set_events(u, UV_READABLE);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  udp_t *u = handle->data;
  if (u->closing) return;
  if (status < 0) {
    u->receive_errors++;
    return;
  }
  if (events & UV_WRITABLE) flush_queue(u);
  if (events & UV_READABLE) receive(u);
}

static udp_t *unwrap(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "not a UDP handle");
    return NULL;
  }
  return data;
}

static int parse_address(int family, const char *host, int port, struct sockaddr_storage *sa,
                         socklen_t *len) {
  memset(sa, 0, sizeof *sa);
  if (family == 6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
    char plain[INET6_ADDRSTRLEN + 32];
    const char *percent = strchr(host, '%');
    size_t n = percent == NULL ? strlen(host) : (size_t)(percent - host);
    if (n >= INET6_ADDRSTRLEN) return 0;
    memcpy(plain, host, n);
    plain[n] = '\0';
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, plain, &s6->sin6_addr) != 1) return 0;
    if (percent != NULL) {
      unsigned int scope = if_nametoindex(percent + 1);
      if (scope == 0) scope = (unsigned int)strtoul(percent + 1, NULL, 10);
      s6->sin6_scope_id = scope;
    }
    *len = sizeof *s6;
    return 1;
  }
  struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
  s4->sin_family = AF_INET;
  s4->sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) return 0;
  *len = sizeof *s4;
  return 1;
}

// open(family 4|6, host, port, bufferSize, shared ArrayBuffer, onBatch(count)) -> handle
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "open(family, host, port, bufferSize, shared, onBatch)");
    return NULL;
  }
  int32_t family, port, buffer_size;
  char host[INET6_ADDRSTRLEN + 32];
  size_t host_len;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_string_latin1(env, argv[1], host, sizeof host, &host_len));
  CHECK(napi_get_value_int32(env, argv[2], &port));
  CHECK(napi_get_value_int32(env, argv[3], &buffer_size));
  void *shared = NULL;
  size_t shared_len = 0;
  CHECK(napi_get_arraybuffer_info(env, argv[4], &shared, &shared_len));
  if (shared_len < SHARED_SIZE) {
    napi_throw_range_error(env, NULL, "shared buffer too small");
    return NULL;
  }
  struct sockaddr_storage sa;
  socklen_t sa_len;
  if (!parse_address(family, host, port, &sa, &sa_len)) {
    napi_throw_type_error(env, "EINVAL", "not an IP address");
    return NULL;
  }
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  if (family == 6) {
    int on = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  }
  if (bind(fd, (struct sockaddr *)&sa, sa_len) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "bind");
  }
  if (buffer_size > 0) {
    // The kernel may cap these (net.core.rmem_max); the defaults still work.
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_size, sizeof buffer_size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_size, sizeof buffer_size);
  }
  udp_t *u = calloc(1, sizeof *u);
  if (u == NULL) {
    close(fd);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  u->env = env;
  u->fd = fd;
  u->family = family;
  u->shared = shared;
  u->meta = (int32_t *)((char *)shared + BATCH * SLOT_SIZE);
  u->addr_text = (char *)shared + BATCH * SLOT_SIZE + BATCH * META_INTS * 4;
  for (int i = 0; i < BATCH; i++) {
    u->iov[i].iov_base = u->shared + (size_t)i * SLOT_SIZE;
    u->iov[i].iov_len = SLOT_SIZE;
    u->msgs[i].msg_hdr.msg_iov = &u->iov[i];
    u->msgs[i].msg_hdr.msg_iovlen = 1;
    u->msgs[i].msg_hdr.msg_name = &u->from[i];
  }
  napi_value resource_name, handle;
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok ||
      napi_create_reference(env, argv[5], 1, &u->callback) != napi_ok ||
      napi_create_reference(env, argv[4], 1, &u->shared_ref) != napi_ok ||
      napi_create_string_utf8(env, "pchat:udp", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, NULL, resource_name, &u->async) != napi_ok ||
      uv_poll_init_socket(loop, &u->poll, fd) != 0) {
    if (u->callback != NULL) napi_delete_reference(env, u->callback);
    if (u->shared_ref != NULL) napi_delete_reference(env, u->shared_ref);
    if (u->async != NULL) napi_async_destroy(env, u->async);
    close(fd);
    free(u);
    napi_throw_error(env, NULL, "cannot set up the UDP handle");
    return NULL;
  }
  u->poll.data = u;
  u->poll_events = UV_READABLE;
  uv_poll_start(&u->poll, UV_READABLE, on_poll);
  napi_add_env_cleanup_hook(env, cleanup_hook, u);
  u->hooked = 1;
  if (napi_create_external(env, u, finalize, NULL, &handle) != napi_ok) {
    unhook(u);
    u->finalized = 1;
    shut(u);
    napi_throw_error(env, NULL, "cannot set up the UDP handle");
    return NULL;
  }
  return handle;
}

// localPort(handle) -> the port the socket is bound to
static napi_value js_local_port(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_t *u = unwrap(env, argv[0]);
  if (u == NULL) return NULL;
  struct sockaddr_storage sa;
  socklen_t len = sizeof sa;
  if (u->fd < 0 || getsockname(u->fd, (struct sockaddr *)&sa, &len) != 0)
    return throw_errno(env, u->fd < 0 ? EBADF : errno, "getsockname");
  CHECK(napi_create_int32(env, address_port(&sa), &result));
  return result;
}

static void enqueue(udp_t *u, const char *data, size_t len, const struct sockaddr_storage *to,
                    socklen_t to_len) {
  if (u->queued_bytes + len > QUEUE_LIMIT) {
    u->sends_dropped++;
    return;
  }
  queued_t *q = malloc(sizeof *q + len);
  if (q == NULL) {
    u->sends_dropped++;
    return;
  }
  q->next = NULL;
  memcpy(&q->to, to, sizeof q->to);
  q->to_len = to_len;
  q->len = len;
  memcpy(q->data, data, len);
  if (u->queue_tail == NULL) u->queue_head = q;
  else u->queue_tail->next = q;
  u->queue_tail = q;
  u->queued_bytes += len;
  u->sends_queued++;
  set_events(u, UV_READABLE | UV_WRITABLE);
}

// Send what the batch held back, in order; what the kernel has no room for goes to the queue.
static void flush_pending(udp_t *u) {
  int done = 0;
  while (done < u->pending && !u->closing) {
    if (u->queue_head != NULL) {
      for (; done < u->pending; done++)
        enqueue(u, u->send_iov[done].iov_base, u->send_iov[done].iov_len, &u->send_to[done],
                u->send_msgs[done].msg_hdr.msg_namelen);
      break;
    }
    int r = sendmmsg(u->fd, u->send_msgs + done, (unsigned int)(u->pending - done), MSG_DONTWAIT);
    if (r >= 0) {
      done += r;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      enqueue(u, u->send_iov[done].iov_base, u->send_iov[done].iov_len, &u->send_to[done],
              u->send_msgs[done].msg_hdr.msg_namelen);
    } else {
      u->sends_dropped++;
    }
    done++;
  }
  u->pending = 0;
  u->pending_bytes = 0;
}

// Record the datagram of `len` bytes at the free end of the send space as held back.
static void hold_at(udp_t *u, size_t len, const struct sockaddr_storage *to, socklen_t to_len) {
  int i = u->pending++;
  char *copy = u->send_space + u->pending_bytes;
  u->pending_bytes += len;
  memcpy(&u->send_to[i], to, sizeof u->send_to[i]);
  u->send_iov[i].iov_base = copy;
  u->send_iov[i].iov_len = len;
  u->send_msgs[i].msg_hdr.msg_name = &u->send_to[i];
  u->send_msgs[i].msg_hdr.msg_namelen = to_len;
  u->send_msgs[i].msg_hdr.msg_iov = &u->send_iov[i];
  u->send_msgs[i].msg_hdr.msg_iovlen = 1;
  u->send_msgs[i].msg_hdr.msg_control = NULL;
  u->send_msgs[i].msg_hdr.msg_controllen = 0;
  u->send_msgs[i].msg_hdr.msg_flags = 0;
}

// Room for `len` bytes at the free end of the send space, flushing what is held first when it is
// full; NULL when the datagram cannot be held and must go at once instead.
static char *reserve(udp_t *u, size_t len) {
  if (len > SEND_SPACE) return NULL;
  if (u->send_space == NULL && (u->send_space = malloc(SEND_SPACE)) == NULL) return NULL;
  if (u->pending == SEND_BATCH || u->pending_bytes + len > SEND_SPACE) flush_pending(u);
  return u->send_space + u->pending_bytes;
}

// Hold a send back until the batch is handled; 0, or -1 when it must go at once instead.
static int hold(udp_t *u, const char *data, size_t len, const struct sockaddr_storage *to,
                socklen_t to_len) {
  char *room = reserve(u, len);
  if (room == NULL) return -1;
  memcpy(room, data, len);
  hold_at(u, len, to, to_len);
  return 0;
}

// send(handle, buffer or latin1 string, port, address) -> 0 sent or queued, or a negative errno
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_t *u = unwrap(env, argv[0]);
  if (u == NULL) return NULL;
  void *data = NULL;
  size_t len = 0;
  int32_t port;
  char host[INET6_ADDRSTRLEN + 32];
  size_t host_len;
  napi_valuetype type;
  CHECK(napi_typeof(env, argv[1], &type));
  int text = type == napi_string;
  if (text) {
    // Latin1 text: one byte per character, written straight where it is sent from.
    CHECK(napi_get_value_string_latin1(env, argv[1], NULL, 0, &len));
  } else {
    CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  }
  CHECK(napi_get_value_int32(env, argv[2], &port));
  CHECK(napi_get_value_string_latin1(env, argv[3], host, sizeof host, &host_len));
  int rc = 0;
  struct sockaddr_storage to;
  socklen_t to_len;
  char *room;
  if (u->closing) rc = -EBADF;
  else if (port <= 0 || port > 65535 || !parse_address(u->family, host, port, &to, &to_len))
    rc = -EINVAL;
  else if (len > SLOT_SIZE) rc = -EMSGSIZE;
  else if (text && u->in_batch && u->queue_head == NULL && (room = reserve(u, len + 1)) != NULL) {
    // Held back like any send in a batch, written into the send space without a copy between
    // (len + 1: the conversion writes a terminating NUL, which is not sent).
    size_t written = 0;
    CHECK(napi_get_value_string_latin1(env, argv[1], room, len + 1, &written));
    hold_at(u, written, &to, to_len);
  } else {
    if (text) {
      if (u->text_space == NULL && (u->text_space = malloc(SLOT_SIZE + 1)) == NULL) {
        napi_throw_error(env, "ENOMEM", "out of memory");
        return NULL;
      }
      size_t written = 0;
      CHECK(napi_get_value_string_latin1(env, argv[1], u->text_space, SLOT_SIZE + 1, &written));
      data = u->text_space;
      len = written;
    }
    if (u->queue_head != NULL) enqueue(u, data, len, &to, to_len); // keep the order
    else if (u->in_batch && hold(u, data, len, &to, to_len) == 0) {
      // goes out when the batch has been handled
    } else {
      ssize_t r;
      do r = sendto(u->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&to, to_len);
      while (r < 0 && errno == EINTR);
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) enqueue(u, data, len, &to, to_len);
        else {
          u->sends_dropped++;
          rc = -errno;
        }
      }
    }
  }
  CHECK(napi_create_int32(env, rc, &result));
  return result;
}

// counters(handle) -> [sends queued, sends dropped, receive errors]
static napi_value js_counters(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result, v;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_t *u = unwrap(env, argv[0]);
  if (u == NULL) return NULL;
  CHECK(napi_create_array_with_length(env, 3, &result));
  double values[3] = {u->sends_queued, u->sends_dropped, u->receive_errors};
  for (uint32_t i = 0; i < 3; i++) {
    CHECK(napi_create_double(env, values[i], &v));
    CHECK(napi_set_element(env, result, i, v));
  }
  return result;
}

// close(handle): stops reading at once; the socket is closed on the next loop turn
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_t *u = unwrap(env, argv[0]);
  if (u == NULL) return NULL;
  unhook(u);
  shut(u);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"localPort", NULL, js_local_port, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"counters", NULL, js_counters, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value constants;
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  CHECK(napi_create_object(env, &constants));
  napi_value v;
  CHECK(napi_create_int32(env, BATCH, &v));
  CHECK(napi_set_named_property(env, constants, "batch", v));
  CHECK(napi_create_int32(env, SLOT_SIZE, &v));
  CHECK(napi_set_named_property(env, constants, "slotSize", v));
  CHECK(napi_create_int32(env, META_INTS, &v));
  CHECK(napi_set_named_property(env, constants, "metaInts", v));
  CHECK(napi_create_int32(env, ADDR_TEXT, &v));
  CHECK(napi_set_named_property(env, constants, "addressText", v));
  CHECK(napi_create_int32(env, SHARED_SIZE, &v));
  CHECK(napi_set_named_property(env, constants, "sharedSize", v));
  CHECK(napi_set_named_property(env, exports, "constants", constants));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
