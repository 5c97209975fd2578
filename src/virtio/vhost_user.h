/*
 * vhost-user front-end (QEMU's docs/interop/vhost-user.rst): vmm hands a
 * virtio device's rings and guest RAM to a back-end process over a Unix
 * socket; the back-end then serves the queues itself, reading kicks from
 * and writing calls to eventfds that vmm passes along.
 *
 * Order of calls, as the specification expects them:
 *   vhu_connect() (or vhu_init_fd()), vhu_handshake(),
 *   [vhu_get_queue_num()], then, once the driver has set FEATURES_OK and
 *   DRIVER_OK: vhu_set_features(), vhu_set_mem_table(), and per ring
 *   vhu_set_vring_num(), _addr(), _base(), _call(), then _kick() (a kick
 *   starts the ring, which can then signal at once), and, with protocol
 *   features (rings start disabled), vhu_set_vring_enable(on).
 *   vhu_get_vring_base() stops a ring (a reset, a snapshot) and says
 *   where the back-end got to. vhu_close() at the end.
 *
 * Every call is synchronous and bounded: each request (its send, and its
 * reply where one comes) gets timeout_ms. Calls return 0 or -errno and
 * leave a one-line reason in v->err. After -ETIMEDOUT, -ECONNRESET,
 * -EPROTO or a socket error the stream is out of step (a late reply
 * would answer the next request), so the connection is marked broken and
 * every later call is -ENOTCONN until vhu_close(); -EIO (the back-end
 * refused a request under REPLY_ACK), -EINVAL and -EOPNOTSUPP (nothing
 * was sent) leave it usable. Not thread-safe: one caller at a time.
 */
#ifndef VMM_VIRTIO_VHOST_USER_H
#define VMM_VIRTIO_VHOST_USER_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"
#include "mem.h"

/* Feature bit 30 (unused by virtio): the back-end speaks protocol features. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30
/* Protocol feature bits this front-end knows (the spec's numbering). */
#define VHOST_USER_PROTOCOL_F_MQ	0
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
/* What vhu_handshake() accepts of the back-end's protocol features. */
#define VHU_PROTOCOL_FEATURES                                                                      \
	((1ULL << VHOST_USER_PROTOCOL_F_MQ) | (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK))

#define VHU_MAX_REGIONS	       8    /* memory regions in one SET_MEM_TABLE */
#define VHU_MAX_VRING	       0xff /* ring indexes fit in bits 0-7 */
#define VHU_DEFAULT_TIMEOUT_MS 5000 /* when a caller passes timeout_ms <= 0 */

struct vhost_user {
	int fd;			    /* connected socket, -1 when closed */
	bool broken;		    /* out of step: every call is -ENOTCONN */
	uint64_t features;	    /* the back-end's GET_FEATURES */
	uint64_t protocol_features; /* negotiated (0 without bit 30) */
	int timeout_ms;		    /* bound on each request and its reply */
	char err[160];		    /* last error, one line */
};

/*
 * Connect to the back-end listening at path (AF_UNIX, SOCK_STREAM,
 * close-on-exec, non-blocking; a full listen backlog is retried until
 * timeout_ms). -errno with v->err naming the path; v->fd is -1 then.
 */
int vhu_connect(struct vhost_user *v, const char *path, int timeout_ms) WUR;
/* Take an already connected socket (a socketpair in tests); v owns it. */
void vhu_init_fd(struct vhost_user *v, int fd, int timeout_ms);
/* Close the socket (the back-end sees the hang-up); safe to repeat. */
void vhu_close(struct vhost_user *v);

/*
 * First exchange on a new connection: GET_FEATURES into v->features; if
 * it offers VHOST_USER_F_PROTOCOL_FEATURES, GET_PROTOCOL_FEATURES and
 * SET_PROTOCOL_FEATURES with its intersection with VHU_PROTOCOL_FEATURES
 * (into v->protocol_features); then SET_OWNER. With REPLY_ACK
 * negotiated, every later request without a reply of its own (SET_OWNER
 * on) asks for one and fails with -EIO when the back-end reports an error.
 */
int vhu_handshake(struct vhost_user *v) WUR;
/* GET_QUEUE_NUM: the most queues the back-end serves. -EOPNOTSUPP without MQ. */
int vhu_get_queue_num(struct vhost_user *v, uint64_t *num) WUR;
/*
 * SET_FEATURES: the virtio features the driver accepted (a subset of
 * v->features, else -EINVAL), plus VHOST_USER_F_PROTOCOL_FEATURES when
 * the back-end offered it.
 */
int vhu_set_features(struct vhost_user *v, uint64_t features) WUR;
/*
 * SET_MEM_TABLE: one region per mem->regions[i] (gpa, size, the hva as
 * the user address, mmap offset 0), its memfd passed along in the same
 * message. -EINVAL (nothing sent) when a region has no fd (RAM not
 * created shared) or there are none or too many.
 */
int vhu_set_mem_table(struct vhost_user *v, const struct guest_mem *mem) WUR;

/*
 * Ring set-up, ring idx <= VHU_MAX_VRING (else -EINVAL). The ring
 * addresses are vmm's host virtual addresses inside guest RAM: the
 * back-end translates them through the mem table's user addresses, so
 * vhu_set_mem_table() comes first. base is the next available index the
 * back-end should read (0 on a fresh ring).
 */
int vhu_set_vring_num(struct vhost_user *v, unsigned int idx, unsigned int num) WUR;
int vhu_set_vring_addr(struct vhost_user *v, unsigned int idx, uint64_t desc_hva, uint64_t used_hva,
		       uint64_t avail_hva) WUR;
int vhu_set_vring_base(struct vhost_user *v, unsigned int idx, unsigned int base) WUR;
/*
 * The eventfds: kick (driver -> back-end; a kick starts the ring), call
 * (back-end -> driver, an irqfd in practice), err (the back-end's ring
 * errors). The back-end gets its own copy of fd; the caller keeps its
 * one. fd < 0 sends the spec's no-fd flag: the back-end polls the ring
 * (kick) or vmm polls the used ring (call).
 */
int vhu_set_vring_kick(struct vhost_user *v, unsigned int idx, int fd) WUR;
int vhu_set_vring_call(struct vhost_user *v, unsigned int idx, int fd) WUR;
int vhu_set_vring_err(struct vhost_user *v, unsigned int idx, int fd) WUR;
/*
 * SET_VRING_ENABLE. Without protocol features there is no such message:
 * a started ring is enabled already, so on is 0 with nothing sent, off
 * is -EOPNOTSUPP.
 */
int vhu_set_vring_enable(struct vhost_user *v, unsigned int idx, bool on) WUR;
/*
 * GET_VRING_BASE: stops ring idx and waits for the back-end's next
 * available index (into *base). After it the ring needs the whole
 * set-up again (num, addr, base, call, kick) to restart.
 */
int vhu_get_vring_base(struct vhost_user *v, unsigned int idx, unsigned int *base) WUR;

#endif
