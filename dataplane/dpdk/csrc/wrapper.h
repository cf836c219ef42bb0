/* What bindgen reads: the DPDK headers rvs uses and the shim's declarations. */
#include "shim.h"
#include <rte_ether.h>
#include <rte_thread.h>
