/*
 * rvs DPDK shim: non-inline wrappers for DPDK's static-inline fast-path functions, so Rust
 * can call them. Compiled by build.rs with the cflags pkg-config gives for libdpdk.
 */
#ifndef RVS_DPDK_SHIM_H
#define RVS_DPDK_SHIM_H

#include <stdint.h>
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_flow.h>

/* Error reporting (rte_errno is a per-thread variable). */
int rvs_errno(void);
void rvs_set_errno(int e);

/* Time and lcores. */
uint64_t rvs_rdtsc(void);
uint64_t rvs_get_tsc_hz(void);
unsigned int rvs_lcore_id(void);

/* Bursts. */
uint16_t rvs_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t rvs_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* Mbufs. */
struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp);
void rvs_pktmbuf_free(struct rte_mbuf *m);
void *rvs_pktmbuf_data(struct rte_mbuf *m);
char *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
void rvs_pktmbuf_truncate(struct rte_mbuf *m, uint32_t len);
int rvs_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail);
uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_tailroom(const struct rte_mbuf *m);
uint32_t rvs_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_data_len(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_nb_segs(const struct rte_mbuf *m);
int rvs_pktmbuf_is_contiguous(const struct rte_mbuf *m);
uint64_t rvs_mbuf_ol_flags(const struct rte_mbuf *m);
uint32_t rvs_mbuf_rss_hash(const struct rte_mbuf *m);
void rvs_mbuf_set_tx_offload(struct rte_mbuf *m, uint64_t flags, uint16_t l2_len, uint16_t l3_len);
uint16_t rvs_mbuf_l2_len(const struct rte_mbuf *m);
uint16_t rvs_mbuf_l3_len(const struct rte_mbuf *m);

/* Ports. */
/* The link's state and speed in Mbit/s (0 while down or unknown); 0 or a negative errno. */
int rvs_link_get(uint16_t port, int *up, uint32_t *speed_mbps);

/* rte_flow: ETH / IPV4 dst / TCP|UDP dst port (masked) -> QUEUE. With validate_only, only
 * rte_flow_validate runs and NULL is returned (check rte_errno / err). */
struct rte_flow *rvs_flow_ipv4_dst_port(uint16_t port, uint32_t dst_ip_be, uint8_t l4_proto,
					uint16_t port_spec, uint16_t port_mask, uint16_t queue,
					int validate_only, int *rc, struct rte_flow_error *err);

#endif
