/* See shim.h. Every function here only forwards to DPDK's inline API. */
#include "shim.h"

int rvs_errno(void) { return rte_errno; }
void rvs_set_errno(int e) { rte_errno = e; }

uint64_t rvs_rdtsc(void) { return rte_rdtsc(); }
uint64_t rvs_get_tsc_hz(void) { return rte_get_tsc_hz(); }
unsigned int rvs_lcore_id(void) { return rte_lcore_id(); }

uint16_t rvs_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t rvs_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
void rvs_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void *rvs_pktmbuf_data(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }
char *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
char *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }

void rvs_pktmbuf_truncate(struct rte_mbuf *m, uint32_t len)
{
	struct rte_mbuf *seg = m;
	uint32_t kept = 0;
	uint16_t segs = 1;

	if (len >= m->pkt_len)
		return;
	/* Find the segment holding byte len-1 (or the first one for len 0). */
	while (seg->next != NULL && kept + seg->data_len < len) {
		kept += seg->data_len;
		seg = seg->next;
		segs++;
	}
	seg->data_len = (uint16_t)(len - kept);
	if (seg->next != NULL) {
		rte_pktmbuf_free(seg->next);
		seg->next = NULL;
	}
	m->nb_segs = segs;
	m->pkt_len = len;
}

int rvs_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail)
{
	return rte_pktmbuf_chain(head, tail);
}

uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t rvs_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
uint32_t rvs_pktmbuf_pkt_len(const struct rte_mbuf *m) { return rte_pktmbuf_pkt_len(m); }
uint16_t rvs_pktmbuf_data_len(const struct rte_mbuf *m) { return rte_pktmbuf_data_len(m); }
uint16_t rvs_pktmbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }
int rvs_pktmbuf_is_contiguous(const struct rte_mbuf *m) { return rte_pktmbuf_is_contiguous(m); }
uint64_t rvs_mbuf_ol_flags(const struct rte_mbuf *m) { return m->ol_flags; }
uint32_t rvs_mbuf_rss_hash(const struct rte_mbuf *m) { return m->hash.rss; }

void rvs_mbuf_set_tx_offload(struct rte_mbuf *m, uint64_t flags, uint16_t l2_len, uint16_t l3_len)
{
	m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_TX_OFFLOAD_MASK) | (flags & RTE_MBUF_F_TX_OFFLOAD_MASK);
	m->l2_len = l2_len;
	m->l3_len = l3_len;
}

uint16_t rvs_mbuf_l2_len(const struct rte_mbuf *m) { return m->l2_len; }
uint16_t rvs_mbuf_l3_len(const struct rte_mbuf *m) { return m->l3_len; }

int rvs_link_get(uint16_t port, int *up, uint32_t *speed_mbps)
{
	struct rte_eth_link link;
	int rc;

	memset(&link, 0, sizeof(link));
	rc = rte_eth_link_get_nowait(port, &link);
	if (rc < 0)
		return rc;
	*up = link.link_status == RTE_ETH_LINK_UP;
	/* Some drivers (net_ring) give a speed while down: only a link up has one. */
	*speed_mbps = !*up || link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed;
	return 0;
}

struct rte_flow *rvs_flow_ipv4_dst_port(uint16_t port, uint32_t dst_ip_be, uint8_t l4_proto,
					uint16_t port_spec, uint16_t port_mask, uint16_t queue,
					int validate_only, int *rc, struct rte_flow_error *err)
{
	struct rte_flow_attr attr;
	struct rte_flow_item pattern[4];
	struct rte_flow_action actions[2];
	struct rte_flow_item_ipv4 ip_spec, ip_mask;
	struct rte_flow_item_tcp tcp_spec, tcp_mask;
	struct rte_flow_item_udp udp_spec, udp_mask;
	struct rte_flow_action_queue q;
	struct rte_flow *flow;

	memset(&attr, 0, sizeof(attr));
	memset(pattern, 0, sizeof(pattern));
	memset(actions, 0, sizeof(actions));
	memset(&ip_spec, 0, sizeof(ip_spec));
	memset(&ip_mask, 0, sizeof(ip_mask));
	memset(&tcp_spec, 0, sizeof(tcp_spec));
	memset(&tcp_mask, 0, sizeof(tcp_mask));
	memset(&udp_spec, 0, sizeof(udp_spec));
	memset(&udp_mask, 0, sizeof(udp_mask));
	memset(&q, 0, sizeof(q));
	memset(err, 0, sizeof(*err));

	attr.ingress = 1;

	pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;
	ip_spec.hdr.dst_addr = dst_ip_be;
	ip_mask.hdr.dst_addr = UINT32_MAX;
	pattern[1].type = RTE_FLOW_ITEM_TYPE_IPV4;
	pattern[1].spec = &ip_spec;
	pattern[1].mask = &ip_mask;
	if (l4_proto == IPPROTO_TCP) {
		tcp_spec.hdr.dst_port = rte_cpu_to_be_16(port_spec);
		tcp_mask.hdr.dst_port = rte_cpu_to_be_16(port_mask);
		pattern[2].type = RTE_FLOW_ITEM_TYPE_TCP;
		pattern[2].spec = &tcp_spec;
		pattern[2].mask = &tcp_mask;
	} else {
		udp_spec.hdr.dst_port = rte_cpu_to_be_16(port_spec);
		udp_mask.hdr.dst_port = rte_cpu_to_be_16(port_mask);
		pattern[2].type = RTE_FLOW_ITEM_TYPE_UDP;
		pattern[2].spec = &udp_spec;
		pattern[2].mask = &udp_mask;
	}
	pattern[3].type = RTE_FLOW_ITEM_TYPE_END;

	q.index = queue;
	actions[0].type = RTE_FLOW_ACTION_TYPE_QUEUE;
	actions[0].conf = &q;
	actions[1].type = RTE_FLOW_ACTION_TYPE_END;

	*rc = rte_flow_validate(port, &attr, pattern, actions, err);
	if (*rc != 0 || validate_only)
		return NULL;
	flow = rte_flow_create(port, &attr, pattern, actions, err);
	if (flow == NULL)
		*rc = -rte_errno;
	return flow;
}
